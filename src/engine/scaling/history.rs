//! What the CPU maths remembers between samples: past recommendations (for the stabilization
//! windows) and past scale events (for the rate policies). The caller keeps it per trigger.

use std::time::Duration as StdDuration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Upper bound on the entries of each list in a [`ScalingHistory`]. Entries older than the longest
/// window or period are pruned first; this cap only matters for very long windows sampled very
/// often (at a 15s interval it covers more than 4 hours), and then drops the oldest entries.
pub const MAX_HISTORY_ENTRIES: usize = 1024;

/// The replica count the metric asked for at `at`, before stabilization, rate limits and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// When the sample was taken.
    pub at: Timestamp,
    /// The replicas it asked for.
    pub replicas: i32,
}

/// A scale that was applied: `change` replicas (positive up, negative down) at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When the scale was applied.
    pub at: Timestamp,
    /// Replicas added (positive) or removed (negative).
    pub change: i32,
}

/// The history of one CPU trigger, kept by the caller between samples and handed to every
/// [`decide_replicas`](super::decide_replicas) call, which records the new recommendation and
/// prunes what no window or period needs any more.
///
/// An empty history means "just started": the first decision then behaves as if the current
/// replica count had been recommended at `now`, so a restarted operator waits a whole
/// scale-down stabilization window before it removes replicas (as the HPA controller does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingHistory {
    /// Past recommendations, oldest first.
    pub recommendations: Vec<Recommendation>,
    /// Past scale events, oldest first.
    pub scale_events: Vec<ScaleEvent>,
}

impl ScalingHistory {
    /// Records a scale from `from` to `to` replicas applied at `at`. Call it once the `/scale`
    /// update succeeded, so that a failed update does not use up the rate policies' allowance.
    pub fn record_scale(&mut self, at: Timestamp, from: i32, to: i32) {
        let change = i64::from(to) - i64::from(from);
        if change != 0 {
            let change = change.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            self.scale_events.push(ScaleEvent { at, change });
            cap(&mut self.scale_events);
        }
    }

    /// Records the recommendation `replicas` at `now`, seeding an empty history with `current`
    /// first, and drops recommendations older than `keep` and scale events older than `keep_events`.
    pub(crate) fn observe(
        &mut self,
        now: Timestamp,
        current: i32,
        replicas: i32,
        keep: StdDuration,
        keep_events: StdDuration,
    ) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                at: now,
                replicas: current,
            });
        }
        self.recommendations.retain(|r| within(r.at, keep, now));
        self.scale_events.retain(|e| within(e.at, keep_events, now));
        self.recommendations
            .push(Recommendation { at: now, replicas });
        cap(&mut self.recommendations);
    }

    /// Recommendations made within `window` before `now`.
    pub(crate) fn recommended_within(
        &self,
        window: StdDuration,
        now: Timestamp,
    ) -> impl Iterator<Item = i32> + '_ {
        self.recommendations
            .iter()
            .filter(move |r| within(r.at, window, now))
            .map(|r| r.replicas)
    }

    /// Net replicas added by scale events within `period` before `now`.
    pub(crate) fn change_within(&self, period: StdDuration, now: Timestamp) -> i64 {
        self.scale_events
            .iter()
            .filter(|e| within(e.at, period, now))
            .map(|e| i64::from(e.change))
            .sum()
    }
}

fn cap<T>(entries: &mut Vec<T>) {
    if entries.len() > MAX_HISTORY_ENTRIES {
        entries.drain(..entries.len() - MAX_HISTORY_ENTRIES);
    }
}

/// Whether `at` lies within the `window` that ends at `now` (`now - window < at`). Instants after
/// `now` count as within; a zero window contains nothing.
fn within(at: Timestamp, window: StdDuration, now: Timestamp) -> bool {
    let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
    now.duration_since(at) < window
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_holds_the_instants_after_its_start_up_to_and_beyond_now() {
        let now = Timestamp::from_second(1_000).unwrap();
        let ago = |s: i64| Timestamp::from_second(1_000 - s).unwrap();
        let window = StdDuration::from_secs(60);
        assert!(within(ago(0), window, now));
        assert!(within(ago(59), window, now));
        assert!(!within(ago(60), window, now), "the start itself is outside");
        assert!(within(ago(-5), window, now), "a later instant is inside");
        assert!(
            !within(ago(0), StdDuration::ZERO, now),
            "a zero window is empty"
        );
        assert!(within(ago(999), StdDuration::MAX, now));
    }

    #[test]
    fn only_real_changes_are_recorded_and_the_lists_stay_bounded() {
        let mut history = ScalingHistory::default();
        let at = Timestamp::from_second(0).unwrap();
        history.record_scale(at, 3, 3);
        assert!(history.scale_events.is_empty());
        for i in 0..MAX_HISTORY_ENTRIES as i32 + 10 {
            history.record_scale(at, 3, 4 + i);
        }
        assert_eq!(history.scale_events.len(), MAX_HISTORY_ENTRIES);
        assert_eq!(
            history.scale_events[0].change, 11,
            "the 10 oldest were dropped"
        );
    }
}
