//! Scaling paused by annotations on the LaunchPolicy, without a spec edit: the control the war
//! room reaches for during an incident. Unlike the rollout's commands (`liftoff.dev/pause`, applied
//! once), these hold for as long as the annotation is there:
//!
//! - `liftoff.dev/pause-scaling`: no action at all on the named triggers' targets;
//! - `liftoff.dev/pause-scale-in`: no action that removes capacity (fewer replicas);
//! - `liftoff.dev/pause-scale-out`: no action that adds capacity (replicas, partitions, a bigger
//!   database class).
//!
//! Each value is `*` (every trigger) or a comma-separated list of trigger names. Samples, status,
//! metrics and recommendations go on; a decision the pause blocks is shown as what would have
//! been done. Removing the annotation resumes at the next sample.

use std::collections::BTreeMap;

use super::plan::{Hold, Planned};

pub const PAUSE_SCALING: &str = "liftoff.dev/pause-scaling";
pub const PAUSE_SCALE_IN: &str = "liftoff.dev/pause-scale-in";
pub const PAUSE_SCALE_OUT: &str = "liftoff.dev/pause-scale-out";

/// Which way a trigger's scaling is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paused {
    /// Every action on the target.
    Both,
    /// Actions that remove capacity.
    In,
    /// Actions that add capacity.
    Out,
}

impl Paused {
    /// Whether the pause blocks `action`. Telling people (a recommendation, a signal) is never
    /// blocked: it changes nothing.
    pub fn blocks(self, action: &Planned) -> bool {
        let out = match action {
            Planned::Scale { from, to } => to > from,
            Planned::Partitions { .. }
            | Planned::ResizeDatabase { .. }
            | Planned::ResizeCache { .. } => true,
            Planned::Recommend { .. } | Planned::Signal => return false,
        };
        match self {
            Paused::Both => true,
            Paused::In => !out,
            Paused::Out => out,
        }
    }
}

/// Whether an annotation's value names `trigger`: `*`, or one of its comma-separated names.
fn names(value: Option<&String>, trigger: &str) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|n| n == "*" || n == trigger)
    })
}

/// How the annotations pause `trigger`, if they do.
pub fn paused(annotations: &BTreeMap<String, String>, trigger: &str) -> Option<Paused> {
    let named = |key: &str| names(annotations.get(key), trigger);
    match (
        named(PAUSE_SCALING),
        named(PAUSE_SCALE_IN),
        named(PAUSE_SCALE_OUT),
    ) {
        (true, _, _) | (false, true, true) => Some(Paused::Both),
        (false, true, false) => Some(Paused::In),
        (false, false, true) => Some(Paused::Out),
        (false, false, false) => None,
    }
}

/// The pause annotations that name `trigger`, for the console.
pub fn naming(annotations: &BTreeMap<String, String>, trigger: &str) -> Vec<&'static str> {
    [PAUSE_SCALING, PAUSE_SCALE_IN, PAUSE_SCALE_OUT]
        .into_iter()
        .filter(|key| names(annotations.get(*key), trigger))
        .collect()
}

/// A sentence for each pause annotation that names no trigger of the policy (a typo pauses
/// nothing), for the console.
pub fn unknown_names(annotations: &BTreeMap<String, String>, triggers: &[&str]) -> Vec<String> {
    [PAUSE_SCALING, PAUSE_SCALE_IN, PAUSE_SCALE_OUT]
        .into_iter()
        .filter_map(|key| Some((key, annotations.get(key)?)))
        .flat_map(|(key, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && *n != "*" && !triggers.contains(n))
                .map(move |n| {
                    format!("{key}: {n:?} is no trigger of this policy, so it pauses nothing")
                })
        })
        .collect()
}

/// The hold a trigger's plan is under: the policy's own (suspended, not ready), else its pause.
pub fn hold(
    policy: Option<Hold>,
    annotations: &BTreeMap<String, String>,
    trigger: &str,
) -> Option<Hold> {
    policy.or_else(|| paused(annotations, trigger).map(Hold::Paused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const UP: Planned = Planned::Scale { from: 2, to: 4 };
    const DOWN: Planned = Planned::Scale { from: 4, to: 2 };

    #[test]
    fn a_pause_names_every_trigger_or_some_by_name() {
        let all = annotations(&[(PAUSE_SCALING, "*")]);
        assert_eq!(paused(&all, "api-cpu"), Some(Paused::Both));
        let some = annotations(&[(PAUSE_SCALE_IN, "api-cpu, redis-memory")]);
        assert_eq!(paused(&some, "redis-memory"), Some(Paused::In));
        assert_eq!(paused(&some, "task-lag"), None);
        let both = annotations(&[(PAUSE_SCALE_IN, "api-cpu"), (PAUSE_SCALE_OUT, "*")]);
        assert_eq!(paused(&both, "api-cpu"), Some(Paused::Both));
        assert_eq!(paused(&both, "task-lag"), Some(Paused::Out));
        // A name is matched whole, and an empty value pauses nothing.
        assert_eq!(
            paused(&annotations(&[(PAUSE_SCALING, "api")]), "api-cpu"),
            None
        );
        assert_eq!(
            paused(&annotations(&[(PAUSE_SCALING, "")]), "api-cpu"),
            None
        );
    }

    #[test]
    fn a_direction_blocks_only_its_own_actions_and_never_a_recommendation() {
        let partitions = Planned::Partitions { from: 3, to: 6 };
        let recommend = Planned::Recommend {
            of: "db".into(),
            from: "db.r6g.large".into(),
            to: "db.r6g.xlarge".into(),
        };
        assert!(Paused::In.blocks(&DOWN) && !Paused::In.blocks(&UP));
        assert!(Paused::Out.blocks(&UP) && Paused::Out.blocks(&partitions));
        assert!(!Paused::Out.blocks(&DOWN));
        assert!(Paused::Both.blocks(&UP) && Paused::Both.blocks(&DOWN));
        for paused in [Paused::Both, Paused::In, Paused::Out] {
            assert!(!paused.blocks(&recommend) && !paused.blocks(&Planned::Signal));
        }
    }

    #[test]
    fn a_mistyped_name_is_pointed_out() {
        let typo = annotations(&[(PAUSE_SCALE_IN, "api-cpu,api-cup,"), (PAUSE_SCALING, "*")]);
        assert_eq!(
            unknown_names(&typo, &["api-cpu"]),
            [
                r#"liftoff.dev/pause-scale-in: "api-cup" is no trigger of this policy, so it pauses nothing"#
            ]
        );
    }

    #[test]
    fn the_policys_own_hold_comes_first() {
        let all = annotations(&[(PAUSE_SCALING, "*")]);
        assert_eq!(
            hold(Some(Hold::Suspended), &all, "api"),
            Some(Hold::Suspended)
        );
        assert_eq!(hold(None, &all, "api"), Some(Hold::Paused(Paused::Both)));
        assert_eq!(hold(None, &BTreeMap::new(), "api"), None);
    }
}
