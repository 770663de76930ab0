//! When launch updates fall due (`spec.notifications[].summaryEvery` and `summaryAt`), and what
//! they say — status light, H+X, users, key metrics, issues, actions since the last update, next
//! update — from the status just decided. Pure: the reconcile records the schedule in
//! `status.summaries` and sends after that write, so an update goes out at most once per period
//! or offset, however often the policy is reconciled or the operator restarts.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use crate::{
    crd::{Duration as SpecDuration, Notification, SummaryStatus},
    engine::rollout::Phase,
};

/// Floor for `summaryEvery`, so a `0s` cannot turn into a flood.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// What the summary schedule decided for one reconcile.
#[derive(Debug, Default, PartialEq)]
pub struct Schedule {
    /// `status.summaries` to record.
    pub entries: Vec<SummaryStatus>,
    /// The updates to send now.
    pub due: Vec<Due>,
    /// Time until the next update falls due, if any is scheduled.
    pub next_in: Option<Duration>,
}

/// One launch update to send now.
#[derive(Debug, PartialEq)]
pub struct Due {
    /// Index into `spec.notifications` of the subscription.
    pub index: usize,
    /// When the previous update to this webhook went out (the update lists the actions since).
    pub since: Option<Timestamp>,
}

/// The `status.summaries` key of a subscription: its Secret and key, never the URL.
pub fn webhook_key(n: &Notification) -> String {
    format!("{}/{}", n.webhook_secret_ref.name, n.webhook_secret_ref.key)
}

/// Whether the launch still warrants periodic updates: a policy without a rollout always does; a
/// rollout stops being reported every period once it is `Completed` or `Aborted` (those have
/// their own notification). Updates at fixed offsets (`summaryAt`) are sent whatever the phase.
pub fn live(phase: Option<Phase>) -> bool {
    !matches!(phase, Some(Phase::Completed | Phase::Aborted))
}

/// Decides which subscriptions get an update now. Periodic: the first update goes out at once,
/// each later one `summaryEvery` after the previous (one update after a long outage, not a
/// backlog). Offsets: each `summaryAt` offset once the launch has started, the ones that fell due
/// together sent as one update. Two subscriptions to the same webhook share one schedule (the
/// first one's).
pub fn schedule(
    notifications: &[Notification],
    previous: &[SummaryStatus],
    live: bool,
    started: Option<Timestamp>,
    now: Timestamp,
) -> Schedule {
    // Status keeps times to the second: so does the schedule, or a time read back would never
    // equal the one computed and every reconcile would write.
    let now = to_second(now);
    let started = started.map(to_second);
    let mut out = Schedule::default();
    for (i, n) in notifications.iter().enumerate() {
        let every = n.summary_every.map(|d| whole(d).as_std().max(MIN_EVERY));
        let offsets: Vec<SpecDuration> = n.summary_at.iter().map(|o| whole(*o)).collect();
        if every.is_none() && n.summary_at.is_empty() {
            continue;
        }
        let webhook = webhook_key(n);
        if out.entries.iter().any(|e| e.webhook == webhook) {
            continue;
        }
        let stored = previous.iter().find(|e| e.webhook == webhook);
        let last = stored.map(|e| e.last_sent_at.0);
        let mut sent: Vec<SpecDuration> =
            stored.map(|e| e.offsets_sent.clone()).unwrap_or_default();
        // Offsets no longer in the spec are forgotten; the ones due now are marked sent.
        sent.retain(|o| offsets.contains(o));
        let at = |o: &SpecDuration| started.map(|s| add(s, (*o).into()));
        let offsets_due: Vec<SpecDuration> = offsets
            .iter()
            .filter(|o| !sent.contains(o) && at(o).is_some_and(|t| t <= now))
            .copied()
            .collect();
        let periodic_due = live && every.is_some_and(|e| last.is_none_or(|l| now >= add(l, e)));
        let due = periodic_due || !offsets_due.is_empty();
        sent.extend(offsets_due);
        sent.sort();
        sent.dedup();
        let last_sent = if due { Some(now) } else { last };
        let Some(last_sent) = last_sent else {
            // Offsets only, none due yet: nothing to record.
            out.next_in = next_offset(&offsets, &sent, started)
                .map_or(out.next_in, |t| earliest(out.next_in, t, now));
            continue;
        };
        if due {
            out.due.push(Due {
                index: i,
                since: last,
            });
        }
        let periodic_next = every.filter(|_| live).map(|e| add(last_sent, e));
        let next_at = match (periodic_next, next_offset(&offsets, &sent, started)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(next) = next_at {
            out.next_in = earliest(out.next_in, next, now);
        }
        out.entries.push(SummaryStatus {
            webhook,
            last_sent_at: Time(last_sent),
            next_at: next_at.map(Time),
            offsets_sent: sent,
        });
    }
    out
}

/// When the next offset not yet sent falls due.
fn next_offset(
    offsets: &[SpecDuration],
    sent: &[SpecDuration],
    started: Option<Timestamp>,
) -> Option<Timestamp> {
    let started = started?;
    offsets
        .iter()
        .filter(|o| !sent.contains(o))
        .map(|o| add(started, (*o).into()))
        .min()
}

/// A duration in whole seconds (`1.5s` counts as `1s`).
fn whole(d: SpecDuration) -> SpecDuration {
    SpecDuration::from_secs(d.as_std().as_secs())
}

fn to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

fn earliest(current: Option<Duration>, at: Timestamp, now: Timestamp) -> Option<Duration> {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
    Some(current.map_or(wait, |c| c.min(wait)))
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
