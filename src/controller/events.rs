//! Kubernetes Events for what Liftoff decides. Publishing is best effort: a failure is logged,
//! never allowed to fail a reconcile.
//!
//! An Event repeated within [`SERIES_WINDOW`] of its last occurrence (same policy, type, reason
//! and note) is folded into the first one's `series` (count and last time, one small patch)
//! instead of a new object. kube's and client-go's recorders fold too, but key on the object's
//! resourceVersion, which every status write changes, so a policy's repeats were rarely folded.
//! kube's recorder also kept each Event of the window whole with its key, ~3 KiB: a start over
//! 10,000 stored launches, an Event each, held ~30 MiB for six minutes (docs/benchmarks.md).
//! [`SeriesBook`] keeps a digest, a name and a count.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
    runtime::events::EventType,
};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::warn;

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, ObjectMeta},
    jiff::Timestamp,
};

use crate::{conditions, crd::LaunchPolicy};

/// Writes Liftoff sends the apiserver at once, status and Events together: a fresh operator
/// over 10,000 stored policies would otherwise fire thousands at the same moment, and an
/// apiserver that cannot take them answers 504. Each write is quick, so a wait for a turn is
/// short; a slow Prometheus or a dead address holds no turn (only writes do).
pub const WRITES_IN_FLIGHT: usize = 32;

/// How long after its last repeat an Event still takes the next repeat into its series: six
/// minutes, as in kube's and client-go's recorders.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The component Events name as their reporter (`reportingController`).
const REPORTER: &str = "liftoff";

/// Publishes Events, at most [`WRITES_IN_FLIGHT`] writes (shared with the status writes: see
/// [`Publisher::turns`]) at a time, folding repeats into series.
pub struct Publisher {
    client: Client,
    /// This replica (`reportingInstance`): its pod's name in a cluster, so that the Events of
    /// shards and replicas are told apart.
    instance: String,
    turns: Arc<Semaphore>,
    series: Mutex<SeriesBook>,
}

impl Publisher {
    pub fn new(client: Client) -> Publisher {
        // At most the apiserver's limit for `reportingInstance`.
        let instance = prefix(&crate::leader::default_identity(), 128).to_string();
        Publisher {
            client,
            instance,
            turns: Arc::new(Semaphore::new(WRITES_IN_FLIGHT)),
            series: Mutex::new(SeriesBook::default()),
        }
    }

    /// The turns every write to the apiserver takes one of.
    pub fn turns(&self) -> &Semaphore {
        &self.turns
    }

    /// Creates the Event, or patches the series of the same Event published within
    /// [`SERIES_WINDOW`] (a new one when the apiserver no longer has it: Events expire there).
    async fn send(&self, event: &Draft<'_>) -> Result<(), kube::Error> {
        let key = event.digest();
        let namespace = event.regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let repeat = self.book().repeat(key, Instant::now());
        if let Some((name, count)) = repeat {
            let patch = json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.book().observed(key, name, count, Instant::now());
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let created = api
            .create(&PostParams::default(), &event.to_event(now, &self.instance))
            .await?;
        if let Some(name) = created.metadata.name {
            self.book().observed(key, name.into(), 1, Instant::now());
        }
        Ok(())
    }

    fn book(&self) -> std::sync::MutexGuard<'_, SeriesBook> {
        // A panic while holding it leaves nothing half-written: the book is still usable.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Events published in the last [`SERIES_WINDOW`], by a digest of what makes two the same.
#[derive(Default)]
struct SeriesBook {
    sent: HashMap<u64, Sent>,
    /// When entries past the window were last dropped.
    swept: Option<Instant>,
}

/// One Event of the window: its name, how many times it was published, when last.
struct Sent {
    name: Box<str>,
    count: i32,
    last: Instant,
}

impl SeriesBook {
    /// How often entries past the window are dropped: a sweep visits every entry.
    const SWEEP_EVERY: Duration = Duration::from_secs(10);

    /// The name of the Event `key` repeats and its count with this repeat, if it is still in
    /// the window at `now`.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<(Box<str>, i32)> {
        if self
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= Self::SWEEP_EVERY)
        {
            self.sent
                .retain(|_, s| now.saturating_duration_since(s.last) < SERIES_WINDOW);
            self.swept = Some(now);
        }
        let sent = self.sent.get(&key)?;
        (now.saturating_duration_since(sent.last) < SERIES_WINDOW)
            .then(|| (sent.name.clone(), sent.count.saturating_add(1)))
    }

    /// Records that the Event `name` was published for the `count`th time at `now`.
    fn observed(&mut self, key: u64, name: Box<str>, count: i32, now: Instant) {
        let sent = self.sent.entry(key).or_insert(Sent {
            name: name.clone(),
            count,
            last: now,
        });
        // A new Event (the last one was gone from the apiserver) starts its own series; of two
        // repeats patched at once, the higher count stands. (Two that read the same count both
        // write it, and the series counts one less: Events are best effort.)
        if *sent.name != *name || count >= sent.count {
            *sent = Sent {
                name,
                count,
                last: now,
            };
        }
    }
}

/// An Event to publish.
struct Draft<'a> {
    regarding: &'a ObjectReference,
    type_: EventType,
    reason: &'a str,
    note: String,
}

impl Draft<'_> {
    /// What makes two Events the same: the object (not its resourceVersion, which every status
    /// write changes), the type, the reason and the note.
    fn digest(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let r = self.regarding;
        (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(&mut hasher);
        (
            matches!(self.type_, EventType::Warning),
            self.reason,
            &self.note,
        )
            .hash(&mut hasher);
        hasher.finish()
    }

    fn to_event(&self, now: Timestamp, instance: &str) -> Event {
        let name = self.regarding.name.as_deref().unwrap_or(REPORTER);
        // A name is at most 253 characters, and the suffix takes up to 17 of them.
        let name = prefix(name, 236);
        Event {
            metadata: ObjectMeta {
                namespace: self.regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(
                match self.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            reason: Some(self.reason.to_string()),
            action: Some(action(&self.note)),
            note: Some(self.note.clone()),
            regarding: Some(self.regarding.clone()),
            reporting_controller: Some(REPORTER.into()),
            reporting_instance: Some(instance.into()),
            ..Event::default()
        }
    }
}

/// Emits an event when a condition's status or reason differs from the stored object's: Normal
/// when the new state is `healthy`, Warning otherwise. A healthy condition seen for the first
/// time is not announced, `Ready` included: a new policy's status says it is Ready, and an Event
/// per policy would double the apiserver writes it takes to bring a fleet to Ready.
pub async fn on_transition(
    recorder: &Publisher,
    policy: &LaunchPolicy,
    condition: &Condition,
    healthy: bool,
) {
    let previous = policy
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, &condition.type_));
    match previous {
        Some(p) if p.status == condition.status && p.reason == condition.reason => return,
        None if healthy => return,
        _ => {}
    }
    let type_ = if healthy {
        EventType::Normal
    } else {
        EventType::Warning
    };
    publish(
        recorder,
        policy,
        type_,
        &condition.reason,
        &condition.message,
    )
    .await;
}

/// A Warning event for a failed reconcile; `reason` is a stable PascalCase category. `policy`
/// may be a LaunchPolicy or a cached one that could not be read.
pub async fn warning<K>(recorder: &Publisher, policy: &K, reason: &str, note: &str)
where
    K: Resource<DynamicType = ()>,
{
    publish_ref(
        recorder,
        &policy.object_ref(&()),
        EventType::Warning,
        reason,
        note,
    )
    .await;
}

/// Publishes one event about `policy`; failures are logged and otherwise ignored.
pub async fn publish(
    recorder: &Publisher,
    policy: &LaunchPolicy,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    publish_ref(recorder, &policy.object_ref(&()), type_, reason, note).await;
}

/// Publishes one event about the object `regarding`; failures are logged and otherwise ignored.
pub async fn publish_ref(
    recorder: &Publisher,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Draft {
        regarding,
        type_,
        reason,
        note: conditions::truncate(note, 1000),
    };
    // Never closed: a turn is always granted in the end.
    let _turn = recorder.turns.acquire().await;
    if let Err(e) = recorder.send(&event).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The Event's `action` (required, at most 128 characters): a digest of the note, so that
/// Events that differ in their note differ in their action too for tools that group by it.
fn action(note: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    note.hash(&mut hasher);
    format!("Reconcile-{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn different_notes_get_different_actions_and_equal_notes_the_same() {
        let a = super::action("entered stage internal-beta (100 users)");
        let b = super::action("entered stage gradual (500 users)");
        assert_ne!(a, b);
        assert_eq!(a, super::action("entered stage internal-beta (100 users)"));
        assert!(a.len() <= 128);
    }

    use std::time::{Duration, Instant};

    use super::{SERIES_WINDOW, SeriesBook};

    #[test]
    fn a_repeat_within_the_window_continues_the_series_and_one_after_it_starts_anew() {
        let t0 = Instant::now();
        let mut book = SeriesBook::default();
        assert_eq!(book.repeat(7, t0), None);
        book.observed(7, "p.1".into(), 1, t0);
        let at = t0 + Duration::from_secs(60);
        assert_eq!(book.repeat(7, at), Some(("p.1".into(), 2)));
        assert_eq!(book.repeat(8, at), None, "another Event");
        book.observed(7, "p.1".into(), 2, at);
        // The window runs from the last repeat.
        let later = at + SERIES_WINDOW - Duration::from_secs(1);
        assert_eq!(book.repeat(7, later), Some(("p.1".into(), 3)));
        assert_eq!(book.repeat(7, at + SERIES_WINDOW), None);
    }

    #[test]
    fn an_event_of_a_policy_with_the_longest_name_has_a_valid_name() {
        use k8s_openapi::{api::core::v1::ObjectReference, jiff::Timestamp};
        let regarding = ObjectReference {
            name: Some("p".repeat(253)),
            ..ObjectReference::default()
        };
        let draft = super::Draft {
            regarding: &regarding,
            type_: kube::runtime::events::EventType::Normal,
            reason: "StageAdvanced",
            note: "entered stage internal-beta".into(),
        };
        let event = draft.to_event(Timestamp::now(), "liftoff-7d9f-x2v");
        assert!(event.metadata.name.unwrap().len() <= 253);
        assert_eq!(
            event.reporting_instance.as_deref(),
            Some("liftoff-7d9f-x2v")
        );
    }

    #[test]
    fn the_window_past_entries_are_dropped_and_the_higher_count_stands() {
        let t0 = Instant::now();
        let mut book = SeriesBook::default();
        for key in 0..1000 {
            book.observed(key, "e".into(), 1, t0);
        }
        book.observed(5000, "fresh".into(), 3, t0 + SERIES_WINDOW);
        // Two repeats patched at once, the lower count recorded last.
        book.observed(5000, "fresh".into(), 2, t0 + SERIES_WINDOW);
        assert_eq!(
            book.repeat(5000, t0 + SERIES_WINDOW + Duration::from_secs(10)),
            Some(("fresh".into(), 4))
        );
        assert_eq!(book.sent.len(), 1, "the old entries were swept");
    }

    #[test]
    fn an_event_created_anew_takes_the_series_over() {
        let t0 = Instant::now();
        let mut book = SeriesBook::default();
        book.observed(7, "p.1".into(), 5, t0);
        // The apiserver no longer had p.1: p.2 was created, and the next repeat patches it.
        book.observed(7, "p.2".into(), 1, t0);
        assert_eq!(book.repeat(7, t0), Some(("p.2".into(), 2)));
    }
}
