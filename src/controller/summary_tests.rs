use proptest::prelude::*;
use serde_json::json;

use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn subscription(secret: &str, every: Option<&str>) -> Notification {
    let mut n = json!({"webhookSecretRef": {"name": secret, "key": "url"}});
    if let Some(every) = every {
        n["summaryEvery"] = json!(every);
    }
    serde_json::from_value(n).unwrap()
}

/// Runs `schedule` and feeds its entries back, as the status write would.
fn reconcile_at(
    n: &[Notification],
    status: &mut Vec<SummaryStatus>,
    live: bool,
    s: i64,
) -> Schedule {
    let out = schedule(n, status, live, Some(at(0)), at(s));
    *status = out.entries.clone();
    out
}

#[test]
fn the_first_update_goes_out_at_once_and_the_next_one_period_later() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    let first = reconcile_at(&n, &mut status, true, 0);
    assert_eq!(
        first.due,
        vec![Due {
            index: 0,
            since: None
        }]
    );
    assert_eq!(first.next_in, Some(Duration::from_secs(3600)));
    assert_eq!(
        status,
        vec![SummaryStatus {
            webhook: "war-room/url".into(),
            last_sent_at: Time(at(0)),
            next_at: Some(Time(at(3600))),
            offsets_sent: vec![],
        }]
    );

    let before = reconcile_at(&n, &mut status, true, 3599);
    assert!(before.due.is_empty());
    assert_eq!(before.next_in, Some(Duration::from_secs(1)));
    assert_eq!(before.entries, first.entries, "nothing to write in between");

    let due = reconcile_at(&n, &mut status, true, 3600);
    assert_eq!(
        due.due,
        vec![Due {
            index: 0,
            since: Some(at(0))
        }]
    );
    assert_eq!(status[0].last_sent_at, Time(at(3600)));
}

#[test]
fn after_an_outage_one_update_is_sent_not_the_backlog() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    let late = reconcile_at(&n, &mut status, true, 5 * 3600 + 17);
    assert_eq!(late.due.len(), 1);
    let again = reconcile_at(&n, &mut status, true, 5 * 3600 + 18);
    assert!(again.due.is_empty());
    assert_eq!(status[0].next_at, Some(Time(at(6 * 3600 + 17))));
}

#[test]
fn a_finished_launch_stops_the_updates_and_keeps_the_last_time() {
    let n = [subscription("war-room", Some("1h"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    let done = reconcile_at(&n, &mut status, false, 7200);
    assert!(done.due.is_empty());
    assert_eq!(done.next_in, None);
    assert_eq!(status[0].last_sent_at, Time(at(0)));
    assert_eq!(status[0].next_at, None);
    assert!(!live(Some(Phase::Completed)) && !live(Some(Phase::Aborted)));
    assert!(live(None) && live(Some(Phase::Paused)) && live(Some(Phase::RolledBack)));

    let never_started = schedule(&n, &[], false, None, at(0));
    assert_eq!(never_started, Schedule::default());
}

#[test]
fn subscriptions_without_summary_every_get_no_schedule_and_one_webhook_gets_one() {
    let n = [
        subscription("events-only", None),
        subscription("war-room", Some("30m")),
        subscription("war-room", Some("5m")),
        subscription("execs", Some("4h")),
    ];
    let out = schedule(&n, &[], true, None, at(0));
    let due: Vec<usize> = out.due.iter().map(|d| d.index).collect();
    assert_eq!(due, vec![1, 3]);
    let webhooks: Vec<&str> = out.entries.iter().map(|e| e.webhook.as_str()).collect();
    assert_eq!(webhooks, ["war-room/url", "execs/url"]);
    assert_eq!(out.next_in, Some(Duration::from_secs(1800)));
}

#[test]
fn a_zero_period_is_floored_instead_of_flooding() {
    let n = [subscription("war-room", Some("0s"))];
    let mut status = Vec::new();
    reconcile_at(&n, &mut status, true, 0);
    assert!(reconcile_at(&n, &mut status, true, 0).due.is_empty());
    assert_eq!(reconcile_at(&n, &mut status, true, 1).due.len(), 1);
}

proptest! {
    /// However often (and irregularly) the policy is reconciled, updates are at least one period
    /// apart, and none is more than one reconcile late.
    #[test]
    fn updates_are_one_period_apart_whatever_the_reconcile_times(
        every in 1i64..600,
        gaps in proptest::collection::vec(0i64..900, 1..200),
    ) {
        let n = [subscription("war-room", Some(&format!("{every}s")))];
        let mut status = Vec::new();
        let (mut t, mut sent) = (0i64, Vec::new());
        for gap in gaps {
            let overdue = sent.last().is_none_or(|last| t - last >= every);
            let due = !reconcile_at(&n, &mut status, true, t).due.is_empty();
            // An update falling due between two reconciles goes out at the second one.
            prop_assert_eq!(due, overdue, "at {}s after {:?}", t, sent);
            if due {
                sent.push(t);
            }
            t += gap;
        }
        prop_assert_eq!(sent.first(), Some(&0));
        for pair in sent.windows(2) {
            prop_assert!(pair[1] - pair[0] >= every, "{:?}", sent);
        }
    }
}

fn at_offsets(secret: &str, offsets: &[&str]) -> Notification {
    let n = json!({"webhookSecretRef": {"name": secret, "key": "url"}, "summaryAt": offsets});
    serde_json::from_value(n).unwrap()
}

#[test]
fn offsets_count_from_the_launch_start_and_each_goes_out_once() {
    let n = [at_offsets("ext", &["0s", "4h", "8h"])];
    let mut status = Vec::new();
    // Not started: nothing is due, nothing is recorded, nothing is scheduled.
    let waiting = schedule(&n, &status, true, None, at(0));
    assert!(waiting.due.is_empty() && waiting.entries.is_empty() && waiting.next_in.is_none());
    let first = schedule(&n, &status, true, Some(at(100)), at(100));
    assert_eq!(
        first.due,
        vec![Due {
            index: 0,
            since: None
        }]
    );
    assert_eq!(first.next_in, Some(Duration::from_secs(4 * 3600)));
    status = first.entries;
    let again = schedule(&n, &status, true, Some(at(100)), at(101));
    assert!(again.due.is_empty(), "H+0 is sent once");
    let h4 = schedule(&n, &status, true, Some(at(100)), at(100 + 4 * 3600));
    assert_eq!(
        h4.due,
        vec![Due {
            index: 0,
            since: Some(at(100))
        }]
    );
    status = h4.entries;
    assert_eq!(status[0].next_at, Some(Time(at(100 + 8 * 3600))));
    // A finished launch still gets its fixed updates.
    let h8 = schedule(&n, &status, false, Some(at(100)), at(100 + 8 * 3600));
    assert_eq!(h8.due.len(), 1);
    status = h8.entries;
    assert_eq!(status[0].next_at, None, "every offset sent");
    assert!(
        schedule(&n, &status, true, Some(at(100)), at(100 + 99 * 3600))
            .due
            .is_empty()
    );
}

#[test]
fn offsets_missed_during_an_outage_are_sent_as_one_update() {
    let n = [at_offsets("ext", &["0s", "4h", "8h", "12h"])];
    let first = schedule(&n, &[], true, Some(at(0)), at(0));
    let late = schedule(&n, &first.entries, true, Some(at(0)), at(9 * 3600));
    assert_eq!(late.due.len(), 1);
    let sent: Vec<String> = late.entries[0]
        .offsets_sent
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(sent, ["0s", "4h", "8h"]);
    assert_eq!(late.entries[0].next_at, Some(Time(at(12 * 3600))));
}

#[test]
fn a_period_and_offsets_share_one_schedule_and_the_earliest_next() {
    let mut n = at_offsets("war-room", &["30m"]);
    n.summary_every = Some("1h".parse().unwrap());
    let first = schedule(std::slice::from_ref(&n), &[], true, Some(at(0)), at(0));
    assert_eq!(first.due.len(), 1, "the periodic update goes out at once");
    assert_eq!(first.entries[0].next_at, Some(Time(at(1800))));
    let half = schedule(
        std::slice::from_ref(&n),
        &first.entries,
        true,
        Some(at(0)),
        at(1800),
    );
    assert_eq!(half.due.len(), 1);
    assert_eq!(half.entries[0].next_at, Some(Time(at(1800 + 3600))));
}

#[test]
fn sub_second_offsets_and_times_settle_instead_of_writing_every_reconcile() {
    let mut n = at_offsets("ext", &["1500ms", "0.0001s"]);
    n.summary_every = Some("1.5s".parse().unwrap());
    let n = [n];
    let started = Some(Timestamp::from_second(1_800_000_000).unwrap());
    let now = |ms: i64| Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap();
    let first = schedule(&n, &[], true, started, now(250));
    assert_eq!(first.due.len(), 1);
    // The same second, read back from status: nothing due, nothing to write.
    let again = schedule(&n, &first.entries, true, started, now(900));
    assert!(again.due.is_empty());
    assert_eq!(again.entries, first.entries);
}
