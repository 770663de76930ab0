//! CPU → replicas: the scale-up and scale-down stabilization windows and the history they keep.

use super::*;

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    // Default behavior: a 5m scale-down window, and a fresh history counts as "just started".
    let replicas = bounds(1, 40);
    let mut history = ScalingHistory::default();
    for t in (0..300).step_by(15) {
        let decision = decide_cpu(10, 35.0, 70, &replicas, None, &mut history, at(t));
        assert_eq!(decision.action, None, "at {t}s: {}", decision.reason);
        assert!(
            decision.reason.contains(
                "the highest recommendation in the 5m scale-down stabilization window is 10, \
                 so it is held at 10"
            ),
            "at {t}s: {}",
            decision.reason
        );
    }
    let decision = decide_cpu(10, 35.0, 70, &replicas, None, &mut history, at(300));
    assert_eq!(
        decision.action,
        Some(ReplicaChange { from: 10, to: 5 }),
        "{}",
        decision.reason
    );
}

#[test]
fn scale_down_uses_the_highest_recommendation_in_the_window() {
    let replicas = bounds(1, 40);
    let mut history = ScalingHistory::default();
    let mut current = 10;
    let mut step = |t: i64, value: f64, current: i32| {
        decide_cpu(current, value, 70, &replicas, None, &mut history, at(t))
    };
    assert_eq!(step(0, 70.0, current).action, None); // recommends 10
    assert_eq!(step(60, 56.0, current).action, None); // recommends 8
    assert_eq!(step(120, 49.0, current).action, None); // recommends 7
    // At 300s the 10s of t=0 left the window; the highest left is 8.
    let decision = step(300, 35.0, current);
    assert_eq!(
        decision.action,
        Some(ReplicaChange { from: 10, to: 8 }),
        "{}",
        decision.reason
    );
    current = 8;
    // At 360s the 8 of t=60 left too; the highest left is the 7 of t=120.
    let decision = step(360, 35.0, current);
    assert_eq!(
        decision.action,
        Some(ReplicaChange { from: 8, to: 7 }),
        "{}",
        decision.reason
    );
}

#[test]
fn scale_up_stabilization_uses_the_lowest_recommendation_in_the_window() {
    let behavior = ScalingBehavior {
        scale_up: Some(rules(Some(60), vec![], None)),
        scale_down: None,
    };
    let replicas = bounds(1, 40);
    let mut history = ScalingHistory::default();
    let first = decide_cpu(4, 70.0, 70, &replicas, Some(&behavior), &mut history, at(0));
    assert_eq!(first.action, None);
    let spike = decide_cpu(
        4,
        140.0,
        70,
        &replicas,
        Some(&behavior),
        &mut history,
        at(30),
    );
    assert_eq!(spike.action, None);
    assert!(
        spike.reason.contains(
            "the lowest recommendation in the 1m scale-up stabilization window is 4, so it is \
             held at 4"
        ),
        "{}",
        spike.reason
    );
    let sustained = decide_cpu(
        4,
        140.0,
        70,
        &replicas,
        Some(&behavior),
        &mut history,
        at(61),
    );
    assert_eq!(
        sustained.action,
        Some(ReplicaChange { from: 4, to: 8 }),
        "{}",
        sustained.reason
    );
}

#[test]
fn a_short_dip_does_not_remove_replicas_that_a_spike_needs_again() {
    let replicas = bounds(1, 40);
    let mut history = ScalingHistory::default();
    for t in (0..600).step_by(15) {
        // Busy, with a 30s dip to 10 % every 5 minutes.
        let value = if t % 300 < 30 { 10.0 } else { 70.0 };
        let decision = decide_cpu(10, value, 70, &replicas, None, &mut history, at(t));
        assert_eq!(decision.action, None, "at {t}s: {}", decision.reason);
    }
}

#[test]
fn the_history_is_pruned_to_the_longest_window() {
    let replicas = bounds(1, 40);
    let mut history = ScalingHistory::default();
    for t in (0..1800).step_by(15) {
        decide_cpu(10, 70.0, 70, &replicas, None, &mut history, at(t));
        history.record_scale(at(t), 10, 10 + (t % 2) as i32);
    }
    let now = at(1785);
    // 5m window at 15s steps: the 20 samples within it.
    assert_eq!(history.recommendations.len(), 20);
    assert!(
        history
            .recommendations
            .iter()
            .all(|r| now.duration_since(r.at).as_secs() < 300)
    );
    // Scale events are kept for the longest policy period, 15s (plus the one recorded after).
    assert!(
        history
            .scale_events
            .iter()
            .all(|e| now.duration_since(e.at).as_secs() < 15)
    );
}
