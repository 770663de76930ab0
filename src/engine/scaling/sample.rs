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
