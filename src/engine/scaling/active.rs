//! Whether a trigger is beyond its threshold: `status.triggers[].active` and the displays.

use super::{
    cpu::within_tolerance,
    sample::{MAX_CONNECTIONS, MAX_LAG, MAX_PERCENT, Sample, short, usable},
};
use crate::crd::Trigger;

/// The threshold a trigger's sample is compared with, in the sample's unit: the target
/// utilisation (%) for `cpu`, messages for `kafkaLag`, connections for `databaseConnections`,
/// % of `maxmemory` for `redisMemory`. `None` for a trigger without a metric kind.
pub fn threshold(trigger: &Trigger) -> Option<f64> {
    if let Some(cpu) = &trigger.cpu {
        Some(f64::from(cpu.utilization))
    } else if let Some(kafka) = &trigger.kafka_lag {
        Some(kafka.threshold as f64)
    } else if let Some(db) = &trigger.database_connections {
        Some(db.threshold as f64)
    } else {
        trigger
            .redis_memory
            .as_ref()
            .map(|redis| f64::from(redis.threshold))
    }
}

/// `sample` as read for `trigger`, or unknown (with the reason) when it cannot be a measurement:
/// not a number, negative, above the kind's plausible maximum ([`MAX_PERCENT`], [`MAX_LAG`],
/// [`MAX_CONNECTIONS`]), or, for `cpu`, implying more replicas than a workload can have
/// (`current × utilisation / target > 2^31 - 1`) given `current_replicas`.
pub fn vet(trigger: &Trigger, sample: Sample, current_replicas: Option<i32>) -> Sample {
    let (max, what) = if trigger.cpu.is_some() {
        (MAX_PERCENT, "CPU utilisation %")
    } else if trigger.kafka_lag.is_some() {
        (MAX_LAG, "Kafka lag")
    } else if trigger.database_connections.is_some() {
        (MAX_CONNECTIONS, "connection count")
    } else {
        (MAX_PERCENT, "Redis memory %")
    };
    let sample = sample.vetted(max, what);
    match (&trigger.cpu, sample.value(), current_replicas) {
        (Some(cpu), Some(v), Some(current)) if cpu.utilization > 0 => {
            let implied = f64::from(current) * v / f64::from(cpu.utilization);
            if implied > f64::from(i32::MAX) {
                return Sample::unknown(
                    "sample",
                    format!(
                        "CPU utilisation % {} implies {} replicas, more than a workload can have: not a measurement",
                        short(v),
                        short(implied.ceil())
                    ),
                );
            }
            sample
        }
        _ => sample,
    }
}

/// Whether `sample` puts `trigger` beyond its threshold, i.e. asks for more capacity:
/// for `cpu`, utilisation above the target by more than the 10 % tolerance (where the HPA maths
/// starts adding replicas); for the other kinds, strictly above the threshold (where they act).
///
/// An unknown or invalid sample is never active: the error is reported on its own
/// (`status.triggers[].error`), not as a breach.
pub fn is_active(trigger: &Trigger, sample: &Sample) -> bool {
    let (Ok(value), Some(threshold)) = (usable(sample, "metric"), threshold(trigger)) else {
        return false;
    };
    if trigger.cpu.is_some() {
        threshold > 0.0 && value > threshold && !within_tolerance(value, threshold)
    } else {
        value > threshold
    }
}
