//! Time arithmetic on the injected `now`. Everything the machine stores is a whole second,
//! because that is what a `metav1.Time` in status keeps: a state written to status and read back
//! after a restart is exactly the state that was computed.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};

/// `t` without its fraction of a second.
pub(crate) fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// `d` rounded up to whole seconds.
pub(crate) fn ceil_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}

/// `t + d`, saturating at the end of representable time.
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How long from `from` until `to`; zero when `to` is not after `from`.
pub(crate) fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

pub(crate) fn time(t: Timestamp) -> Time {
    Time(t)
}

/// Compact, for people: `1h12m`, `4m30s`, `45s`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_are_compact() {
        assert_eq!(human(Duration::from_secs(72 * 60 + 5)), "1h12m");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        assert_eq!(human(Duration::from_secs(270)), "4m30s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_millis(400)), "0s");
    }

    #[test]
    fn stored_times_drop_the_fraction_and_bakes_round_up() {
        let t = Timestamp::from_millisecond(1_700_000_000_750).unwrap();
        assert_eq!(whole_second(t).as_second(), 1_700_000_000);
        assert_eq!(
            ceil_seconds(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(until(t, whole_second(t)), Duration::ZERO);
    }
}
