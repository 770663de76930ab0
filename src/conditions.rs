//! metav1.Condition bookkeeping: `lastTransitionTime` moves only when a condition's status changes.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// A condition as decided by the reconciler, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merges desired conditions with the previous ones: a condition whose status is unchanged keeps
/// its `lastTransitionTime`; a new or flipped one gets `now`. Conditions not desired are dropped.
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: truncate(&d.message, 1024),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Bounded text for condition messages and event notes (the apiserver caps both).
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time_even_if_the_message_changes() {
        let first = merge(
            &[],
            &[Desired::new("Ready", false, "TargetNotFound", "a")],
            Some(1),
            ts(100),
        );
        let second = merge(
            &first,
            &[Desired::new("Ready", false, "TargetNotFound", "b")],
            Some(2),
            ts(200),
        );
        assert_eq!(second[0].last_transition_time, Time(ts(100)));
        assert_eq!(second[0].message, "b");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_the_transition_time() {
        let first = merge(
            &[],
            &[Desired::new("Ready", false, "TargetNotFound", "a")],
            Some(1),
            ts(100),
        );
        let second = merge(
            &first,
            &[Desired::new("Ready", true, "Ready", "ok")],
            Some(1),
            ts(200),
        );
        assert_eq!(second[0].last_transition_time, Time(ts(200)));
        assert_eq!(second[0].status, "True");
    }

    #[test]
    fn merging_the_same_decision_twice_is_a_fixed_point() {
        let desired = [Desired::new("Ready", true, "Ready", "ok")];
        let first = merge(&[], &desired, Some(3), ts(100));
        assert_eq!(merge(&first, &desired, Some(3), ts(999)), first);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 4), "é…");
        assert_eq!(truncate("short", 10), "short");
    }
}
