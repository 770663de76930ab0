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

    /// The longest duration a policy may hold: 8760h (one year). The schema refuses longer ones
    /// at admission and the parser refuses them too (an object stored before the bound existed
    /// is reported as invalid), so time arithmetic on a policy's durations cannot overflow.
    pub const MAX: Self = Self::from_secs(8760 * 3600);

    /// A CEL rule for a duration field: at least `min` (a duration literal such as `1s`).
    /// Evaluated only on well-formed values, so a malformed one gets the grammar's message alone.
    pub fn at_least(min: &str, field: &str) -> kube::core::Rule {
        kube::core::Rule::new(format!(
            "!self.matches('{}') || duration(self) >= duration('{min}')",
            cel_pattern()
        ))
        .message(format!("{field} must be at least {min}").as_str())
    }
}

fn cel_pattern() -> String {
    DURATION_PATTERN.replace('\\', "\\\\")
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

    /// Go's `time.ParseDuration` grammar without a sign, with checked arithmetic: any string is
    /// either a duration of at most [`Duration::MAX`] or an error, never a panic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
            .map(Self)
            .map_err(|why| format!("invalid duration {:?}: {why}", truncate(s)))
    }
}

/// At most this many characters of a bad input are quoted back in an error.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse(s: &str) -> Result<StdDuration, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s == "0" {
        return Ok(StdDuration::ZERO);
    }
    let max = Duration::MAX.0.as_nanos();
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let whole_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(len)
            }
            None => ("", after),
        };
        if whole.is_empty() || (fraction.is_empty() && after.len() + whole_len < rest.len()) {
            return Err("expected a number before each unit, e.g. 90s or 1.5h");
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit (ns, us, ms, s, m or h)"),
            _ => return Err("unknown unit (use ns, us, ms, s, m or h)"),
        };
        const TOO_LONG: &str = "longer than the 8760h (one year) Liftoff accepts";
        // More than 39 digits cannot fit a u128; a value that long is beyond the ceiling anyway.
        let whole = match whole.trim_start_matches('0') {
            "" => 0,
            digits => digits.parse::<u128>().map_err(|_| TOO_LONG)?,
        };
        // Beyond the ceiling already: refused before any arithmetic that could overflow.
        if whole > max / nanos_per_unit {
            return Err(TOO_LONG);
        }
        let mut part = whole * nanos_per_unit;
        // Fractional digits beyond a nanosecond's precision of the unit change nothing.
        let mut scale = nanos_per_unit;
        for digit in fraction.bytes().map(|b| u128::from(b - b'0')) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            part += digit * scale;
        }
        total = total.checked_add(part).ok_or(TOO_LONG)?;
        if total > max {
            return Err(TOO_LONG);
        }
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "overflow")?;
    Ok(StdDuration::new(secs, (total % 1_000_000_000) as u32))
}

/// Compact and parseable: `2h`, `1h30m`, `90s` is shown as `1m30s`, `250ms`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if total == 0 {
            return match millis {
                0 => f.write_str("0s"),
                _ => write!(f, "{millis}ms"),
            };
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

/// As shown ([`fmt::Display`]), or in nanoseconds when it has a part below a millisecond that
/// the shown form would lose: the policy cache keeps specs as JSON, so what is written must read
/// back the same.
impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.subsec_nanos() % 1_000_000 {
            0 => s.collect_str(self),
            _ => s.collect_str(&format_args!("{}ns", self.0.as_nanos())),
        }
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
                "rule": format!("self.matches('{}')", cel_pattern()),
                "message": "must be a duration such as 30s, 15m, 2h or 1h30m (units: ms, s, m, h)",
            }, {
                "rule": format!("!self.matches('{}') || duration(self) <= duration('8760h')", cel_pattern()),
                "message": "must be at most 8760h (one year)",
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
    fn overflowing_durations_are_errors_not_panics() {
        for text in [
            "99999999999999999999h",
            "9999999999999999999999999999999999999999999999h",
            "8761h",
            "8760h1ns",
            "600000m",
            "5000h5000h",
            // A whole number that fits u128 once multiplied, plus a fraction that would not.
            "94522879700260684295381835.9h",
            "5671372782015641057722910123.9m",
        ] {
            let err = text.parse::<Duration>().unwrap_err();
            assert!(err.contains("longer than the 8760h"), "{text}: {err}");
        }
        assert_eq!("8760h".parse::<Duration>().unwrap(), Duration::MAX);
        assert_eq!(
            "0000000000000000000000000000000000000000001s"
                .parse::<Duration>()
                .unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn go_grammar_edge_cases() {
        let ok = |t: &str| t.parse::<Duration>().unwrap().as_std();
        assert_eq!(ok("0"), StdDuration::ZERO);
        assert_eq!(ok("0s"), StdDuration::ZERO);
        assert_eq!(ok("1.5h"), StdDuration::from_secs(5400));
        assert_eq!(ok("1h0.5m"), StdDuration::from_secs(3630));
        assert_eq!(ok("1.0000000001s"), StdDuration::new(1, 0));
        assert_eq!(ok("1500us"), StdDuration::from_micros(1500));
        assert_eq!(ok("2\u{00b5}s"), StdDuration::from_micros(2));
        assert_eq!(ok("7ns"), StdDuration::from_nanos(7));
        for bad in [
            "1s-1s", "0s-1ns", "1", "h", "1.h", ".5s", "1d", "1e5s", "-1s", "+1s", "1 s", "1s ",
            "1.s",
        ] {
            assert!(
                bad.parse::<Duration>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn an_error_quotes_a_bounded_prefix_of_the_input() {
        let long = "9".repeat(10_000) + "h";
        let err = long.parse::<Duration>().unwrap_err();
        assert!(err.len() < 200, "{err}");
    }

    proptest::proptest! {
        /// Any string at all: a duration within the ceiling or an error, never a panic; what
        /// parses, prints and parses back to the same value (to the millisecond shown).
        #[test]
        fn any_string_parses_or_fails_cleanly(text in "\\PC{0,40}") {
            if let Ok(d) = text.parse::<Duration>() {
                proptest::prop_assert!(d <= Duration::MAX);
            }
        }

        #[test]
        fn duration_shaped_strings_parse_or_fail_cleanly(
            text in "([0-9]{1,25}(\\.[0-9]{1,12})?(ns|us|ms|s|m|h)){1,4}"
        ) {
            match text.parse::<Duration>() {
                Ok(d) => {
                    proptest::prop_assert!(d <= Duration::MAX);
                    let millis = StdDuration::from_millis(d.as_std().as_millis() as u64);
                    let shown: Duration = d.to_string().parse().unwrap();
                    proptest::prop_assert_eq!(shown.as_std(), millis);
                }
                Err(e) => proptest::prop_assert!(e.contains("longer than"), "{}: {}", text, e),
            }
        }

        /// What is written reads back exactly, below a millisecond too (the policy cache keeps
        /// specs as JSON).
        #[test]
        fn any_duration_reads_back_from_json_exactly(
            text in "([0-9]{1,9}(\\.[0-9]{1,9})?(ns|us|ms|s|m|h)){1,3}"
        ) {
            if let Ok(d) = text.parse::<Duration>() {
                let json = serde_json::to_string(&d).unwrap();
                let back: Duration = serde_json::from_str(&json).unwrap();
                proptest::prop_assert_eq!(back, d, "{} -> {}", text, json);
            }
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d: Duration = serde_json::from_str("\"15m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"15m\"");
        let d: Duration = serde_json::from_str("\"100500us\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"100500000ns\"");
    }
}
