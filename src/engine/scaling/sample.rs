//! One reading of a trigger's metric: a value, or the explicit fact that it could not be read.

/// One reading of a trigger's metric.
///
/// Sources never turn a failure into a made-up zero: they return [`Sample::Unknown`], and the
/// engine then takes no action in either direction.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    /// The value read: percent for `cpu` and `redisMemory`, a count for `kafkaLag` (messages)
    /// and `databaseConnections` (connections).
    Value(f64),
    /// The metric could not be read.
    Unknown {
        /// Which source failed, e.g. `prometheus http://prometheus:9090`.
        source: String,
        /// Why, e.g. `query returned no series`.
        error: String,
    },
}

impl Sample {
    /// A sample whose `source` failed with `error`.
    pub fn unknown(source: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Unknown {
            source: source.into(),
            error: error.into(),
        }
    }

    /// The value, when one was read.
    pub fn value(&self) -> Option<f64> {
        match self {
            Self::Value(v) => Some(*v),
            Self::Unknown { .. } => None,
        }
    }
}

/// The sample's value when it can be acted upon (known, finite, not negative), else why not.
/// `what` names the metric, e.g. `CPU utilisation`.
pub(crate) fn usable(sample: &Sample, what: &str) -> Result<f64, String> {
    match sample {
        Sample::Unknown { source, error } => {
            Err(format!("{what} is unknown: {source} failed: {error}"))
        }
        Sample::Value(v) if !v.is_finite() => Err(format!("{what} sample {v} is not a number")),
        Sample::Value(v) if *v < 0.0 => Err(format!("{what} sample {} is negative", num(*v))),
        Sample::Value(v) => Ok(*v),
    }
}

/// The largest percentage a source can plausibly report (`cpu`, `redisMemory`): pods using
/// 1,000× their CPU request, or Redis at 1,000× its `maxmemory`. Beyond it a sample is not a
/// measurement (a broken exporter, a query summing the wrong series) and is treated as unknown.
pub const MAX_PERCENT: f64 = 100_000.0;
/// The largest plausible Kafka lag: Kafka offsets are 64-bit signed integers.
pub const MAX_LAG: f64 = 9.2e18;
/// The largest plausible connection count (PostgreSQL caps `max_connections` at 262,143).
pub const MAX_CONNECTIONS: f64 = 1_000_000.0;

impl Sample {
    /// This sample, or an unknown one when its value cannot be a measurement: not a number,
    /// negative, or above `max`. `what` names the metric and its unit, e.g. `CPU utilisation %`.
    pub fn vetted(self, max: f64, what: &str) -> Sample {
        match self {
            Sample::Value(v) if v.is_nan() => {
                Sample::unknown("sample", format!("{what} is not a number"))
            }
            Sample::Value(v) if v < 0.0 => Sample::unknown(
                "sample",
                format!("{what} {} is negative: not a measurement", short(v)),
            ),
            Sample::Value(v) if v > max => Sample::unknown(
                "sample",
                format!(
                    "{what} {} is above the plausible maximum {}: not a measurement",
                    short(v),
                    short(max)
                ),
            ),
            sample => sample,
        }
    }
}

/// A number for a message, bounded in length: [`num`] up to a billion, scientific beyond.
pub fn short(v: f64) -> String {
    if v.is_finite() && v.abs() < 1e9 {
        num(v)
    } else {
        format!("{v:.3e}")
    }
}

/// A number for a human: at most two decimals, no trailing zeros (`72`, `72.5`, `0.33`).
pub fn num(v: f64) -> String {
    let text = format!("{:.2}", if v == 0.0 { 0.0 } else { v });
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_without_trailing_zeros() {
        for (v, shown) in [
            (72.0, "72"),
            (72.5, "72.5"),
            (1.0 / 3.0, "0.33"),
            (50_000.0, "50000"),
            (-0.0, "0"),
            (-0.001, "0"),
        ] {
            assert_eq!(num(v), shown, "{v}");
        }
    }

    #[test]
    fn implausible_samples_become_unknown_with_the_reason() {
        let vet = |v: f64| Sample::Value(v).vetted(MAX_PERCENT, "CPU utilisation %");
        assert_eq!(vet(72.5), Sample::Value(72.5));
        assert_eq!(vet(0.0), Sample::Value(0.0));
        let Sample::Unknown { source, error } = vet(1e308) else {
            panic!("1e308 % is not a measurement")
        };
        assert_eq!(source, "sample");
        assert_eq!(
            error,
            "CPU utilisation % 1.000e308 is above the plausible maximum 100000: not a measurement"
        );
        assert!(matches!(vet(f64::INFINITY), Sample::Unknown { .. }));
        assert!(matches!(vet(f64::NAN), Sample::Unknown { .. }));
        let Sample::Unknown { error, .. } = vet(-3.0) else {
            panic!("a negative sample is not a measurement")
        };
        assert_eq!(error, "CPU utilisation % -3 is negative: not a measurement");
    }

    #[test]
    fn unknown_non_finite_and_negative_samples_are_not_usable() {
        let unknown = Sample::unknown("prometheus http://p:9090", "timeout");
        assert_eq!(
            usable(&unknown, "CPU utilisation").unwrap_err(),
            "CPU utilisation is unknown: prometheus http://p:9090 failed: timeout"
        );
        assert!(usable(&Sample::Value(f64::NAN), "lag").is_err());
        assert!(usable(&Sample::Value(f64::INFINITY), "lag").is_err());
        assert!(usable(&Sample::Value(-1.0), "lag").is_err());
        assert_eq!(usable(&Sample::Value(0.0), "lag"), Ok(0.0));
    }
}
