//! A Go-style duration string (`90s`, `15m`, `2h30m`), as used across Kubernetes APIs.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration as StdDuration};

use serde::{Deserialize, Serialize};

/// A duration written the way Kubernetes and Go write them: `500ms`, `90s`, `15m`, `2h`, `1h30m`.
///
/// The apiserver rejects anything else with a message naming the field; the operator never sees
/// an unparsable value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(StdDuration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    pub const fn as_std(&self) -> StdDuration {
        self.0
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Self(d)
    }
}

impl From<Duration> for StdDuration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("invalid duration \"\": empty".into());
        }
        let parsed: kube::core::Duration = s
            .parse()
            .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
        if parsed.is_negative() {
            return Err(format!("invalid duration {s:?}: must not be negative"));
        }
        Ok(Self(parsed.into()))
    }
}

/// Compact and parseable: `2h`, `1h30m`, `90s` is shown as `1m30s`, `250ms`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if total == 0 {
            return write!(f, "{millis}ms");
        }
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || millis > 0 {
            write!(f, "{s}")?;
            if millis > 0 {
                write!(f, ".{millis:03}")?;
            }
            write!(f, "s")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The same grammar as Go's `time.ParseDuration`, without a sign: one or more `<number><unit>`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

impl schemars::JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{}')", DURATION_PATTERN.replace('\\', "\\\\")),
                "message": "must be a duration such as 30s, 15m, 2h or 1h30m (units: ms, s, m, h)",
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!("90s".parse::<Duration>().unwrap().as_std().as_secs(), 90);
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap().as_std().as_secs(),
            5400
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap().as_std().as_millis(),
            250
        );
    }

    #[test]
    fn rejects_garbage_and_negative_durations() {
        assert!("2 hours".parse::<Duration>().is_err());
        assert!("-5m".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }

    #[test]
    fn displays_compactly_and_reparses() {
        for (text, shown) in [
            ("15m", "15m"),
            ("90s", "1m30s"),
            ("2h", "2h"),
            ("250ms", "250ms"),
            ("1.5s", "1.500s"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d: Duration = serde_json::from_str("\"15m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"15m\"");
    }
}
