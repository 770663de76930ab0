//! Whether a trigger is beyond its threshold: `status.triggers[].active` and the displays.

use super::{
    cpu::within_tolerance,
    sample::{Sample, usable},
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
