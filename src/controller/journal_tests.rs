use serde_json::json;

use super::*;
use crate::{engine::rollout::EventKind, triggers::Planned};

fn decided_news(
    d: &Decided<'_>,
    stored: Option<&LaunchPolicyStatus>,
    next: &LaunchPolicyStatus,
) -> Vec<JournalEntry> {
    decided(d, stored, next, at(0))
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn status(v: serde_json::Value) -> LaunchPolicyStatus {
    serde_json::from_value(v).unwrap()
}

fn nothing() -> Decided<'static> {
    Decided {
        policy: ("emr", "emr-platform"),
        rollout: &[],
        flips: &[],
    }
}

fn failed(trigger: &str) -> Applied {
    Applied {
        trigger: trigger.into(),
        action: Planned::Scale { from: 2, to: 4 },
        result: Err("the scale subresource answered 403".into()),
        reason: "cpu 92% > 70%".into(),
    }
}

#[test]
fn a_go_request_carries_the_exact_command_for_the_next_stage() {
    let events = [Event {
        kind: EventKind::AwaitingApproval,
        message: "waiting for approval of stage gradual (500 users), index 1".into(),
    }];
    let decided = Decided {
        rollout: &events,
        ..nothing()
    };
    let next = status(json!({"rollout": {"phase": "AwaitingApproval", "stage": 0}}));
    let news = decided_news(&decided, None, &next);
    assert_eq!(news.len(), 1);
    assert_eq!(news[0].event, NotificationEvent::AwaitingApproval);
    assert_eq!(
        news[0].message,
        "waiting for approval of stage gradual (500 users), index 1. To give the Go: \
         kubectl annotate --overwrite -n emr lp/emr-platform liftoff.dev/approve=1@$(date +%s)"
    );
}

#[test]
fn a_failing_action_is_news_once_not_at_every_retry() {
    let applied = [failed("api-cpu")];
    let first = acted(&applied, None, at(0));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event, NotificationEvent::ActionFailed);
    assert!(
        first[0]
            .message
            .starts_with("api-cpu: ScaleUp failed: the scale subresource answered 403")
    );
    let failing = status(json!({"triggers": [
        {"name": "api-cpu", "kind": "cpu", "threshold": "70%", "actionFailedSince": "2027-01-15T08:00:00Z"}
    ]}));
    assert!(acted(&applied, Some(&failing), at(60)).is_empty());
}

#[test]
fn a_source_lost_and_found_is_news_once_each_way() {
    let readable = status(json!({
        "triggers": [{"name": "orders-lag", "kind": "kafkaLag", "threshold": "50000", "value": "10"}],
        "rollout": {"gates": [{"name": "error-rate", "value": 0.0}]}
    }));
    let lost = status(json!({
        "triggers": [{"name": "orders-lag", "kind": "kafkaLag", "threshold": "50000",
                      "error": "kafka: brokers unreachable"}],
        "rollout": {"gates": [{"name": "error-rate", "error": "prometheus: timeout"}]}
    }));
    let news_of = |before: &LaunchPolicyStatus, after: &LaunchPolicyStatus| {
        decided(&nothing(), Some(before), after, at(0))
            .into_iter()
            .map(|e| (e.event, e.message))
            .collect::<Vec<_>>()
    };
    let gone = news_of(&readable, &lost);
    assert_eq!(gone.len(), 2);
    assert_eq!(gone[0].0, NotificationEvent::SourceUnavailable);
    assert!(
        gone[0]
            .1
            .starts_with("trigger orders-lag cannot be read: kafka: brokers unreachable.")
    );
    assert!(
        gone[1]
            .1
            .starts_with("gate error-rate cannot be read: prometheus: timeout.")
    );
    assert!(news_of(&lost, &lost).is_empty(), "still lost: not news");
    let back = news_of(&lost, &readable);
    assert_eq!(
        back,
        [
            (
                NotificationEvent::SourceRecovered,
                "trigger orders-lag is read again".into()
            ),
            (
                NotificationEvent::SourceRecovered,
                "gate error-rate is read again".into()
            ),
        ]
    );
    // A trigger that appears readable is not news; one that appears unreadable is.
    assert!(news_of(&LaunchPolicyStatus::default(), &readable).is_empty());
    assert_eq!(news_of(&LaunchPolicyStatus::default(), &lost).len(), 2);
}

#[test]
fn the_journal_keeps_the_newest_entries_and_counts_the_dropped() {
    let entry = |i: usize| JournalEntry {
        at: Time(at(i as i64)),
        event: NotificationEvent::ScalingAction,
        message: format!("action {i}"),
    };
    let many: Vec<JournalEntry> = (0..MAX_JOURNAL + 5).map(entry).collect();
    let launch = record(None, true, &many, None, at(0)).unwrap();
    assert_eq!(launch.journal.len(), MAX_JOURNAL);
    assert_eq!(launch.journal[0].message, "action 5");
    assert_eq!(launch.journal_dropped, 5);
    let more = record(Some(&launch), true, &[entry(999)], None, at(1)).unwrap();
    assert_eq!(more.journal_dropped, 6);
    assert_eq!(more.started_at, Some(Time(at(0))), "the start is set once");
}

#[test]
fn a_full_journal_drops_scaling_and_source_news_before_milestones() {
    let entry = |i: i64, event| JournalEntry {
        at: Time(at(i)),
        event,
        message: format!("{i}"),
    };
    let mut news = vec![entry(0, NotificationEvent::StageAdvanced)];
    news.extend((1..=MAX_JOURNAL as i64).map(|i| entry(i, NotificationEvent::ScalingAction)));
    news.push(entry(999, NotificationEvent::GateFailed));
    let launch = record(None, true, &news, None, at(0)).unwrap();
    assert_eq!(launch.journal.len(), MAX_JOURNAL);
    assert_eq!(launch.journal[0].event, NotificationEvent::StageAdvanced);
    assert_eq!(
        launch.journal[1].message, "3",
        "the two oldest actions went"
    );
    assert_eq!(launch.journal_dropped, 2);
}

#[test]
fn a_long_message_is_cut_at_a_character() {
    let applied = [Applied {
        reason: "é".repeat(2000),
        ..failed("api-cpu")
    }];
    let mut ok = applied;
    ok[0].result = Ok("scaled".into());
    let news = acted(&ok, None, at(0));
    assert!(news[0].message.len() <= 1024 + '…'.len_utf8());
    assert!(news[0].message.ends_with('…'));
}

#[test]
fn peaks_keep_the_highest_value_once_the_launch_has_started() {
    let sample = |name: &str, value: f64| Sample {
        name: name.into(),
        value,
    };
    let cpu = |v| [sample("trigger/api-cpu", v)];
    assert_eq!(record(None, false, &[], Some(&cpu(50.0)), at(0)), None);
    let first = record(None, true, &[], Some(&cpu(50.0)), at(0)).unwrap();
    let higher = [
        sample("trigger/api-cpu", 91.0),
        sample("gate/p95", f64::NAN),
    ];
    let second = record(Some(&first), true, &[], Some(&higher), at(10)).unwrap();
    let lower = record(Some(&second), true, &[], Some(&cpu(40.0)), at(20)).unwrap();
    let kept = record(Some(&lower), true, &[], None, at(30)).unwrap();
    assert_eq!(
        kept.peaks,
        [Peak {
            name: "trigger/api-cpu".into(),
            value: 91.0,
            at: Time(at(10)),
        }]
    );
    // A trigger no longer in the spec: its peak goes.
    let web = [sample("trigger/web-cpu", 5.0)];
    let renamed = record(Some(&kept), true, &[], Some(&web), at(40)).unwrap();
    let names: Vec<String> = renamed.peaks.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["trigger/web-cpu"]);
}
