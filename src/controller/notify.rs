//! Webhook notifications (`spec.notifications`): the journal's news (stage changes, Go
//! requests, gate failures, scaling actions and failures, sources lost and found, kill
//! switches), the launch updates and the launch report, in each webhook's format (Slack, Google
//! Chat, Teams, or the structured JSON).
//!
//! Sending never blocks or fails a reconcile: each message is sent from a background task, retried
//! with exponential backoff ([`ATTEMPTS`] tries, starting at [`FIRST_BACKOFF`]), and a message that
//! still cannot be delivered is logged (without the webhook URL, which is a secret) and counted in
//! `liftoff_notifications_failed_total`. Delivery is at most once per decision: messages are sent
//! after the status write that records the decision. One policy's messages to one webhook arrive in
//! the order they were decided: each waits until the one before it was delivered or given up,
//! so a retried message is never overtaken by the news that followed it. At most [`MAX_QUEUED`]
//! wait in one line; a message past them is dropped and counted like one not delivered.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde_json::json;
use tokio::sync::oneshot;
use tracing::warn;

use super::{lookup::KubeLookup, update::Update};
use crate::{
    crd::{Notification, NotificationEvent, WebhookFormat},
    sources::{
        address::{AddressPolicy, Destination, PolicyResolver, Refusal},
        coalesce::key_of,
    },
};

/// The HTTP client webhooks are sent with, under the operator's address policy: a webhook URL
/// written with an IP is checked before the request, a name on every connection once resolved,
/// and redirects are not followed (the URL in the Secret is the one used).
#[derive(Clone)]
pub struct Webhooks {
    /// `None` when the client could not be built: nothing is sent (fail closed).
    http: Option<reqwest::Client>,
    policy: AddressPolicy,
    lines: Lines,
}

/// The lines of messages waiting per (webhook, policy): each message waits for the one before
/// it. Keyed by a digest, so the map holds no webhook URL; two lines that share a digest merely
/// wait for each other.
#[derive(Clone, Default)]
struct Lines {
    lines: Arc<Mutex<HashMap<u64, Line>>>,
}

/// One line: how many messages are in it, and the last one's `delivered`, which resolves (to an
/// error: its sender is dropped) once that message was delivered or given up.
struct Line {
    queued: usize,
    delivered: oneshot::Receiver<()>,
}

/// The most messages in one line; a message past them is dropped and counted as not delivered,
/// so a webhook that stays down (23.5 s per message given up) holds at most ~6 minutes of news.
pub const MAX_QUEUED: usize = 16;

/// A message's place in its line. Dropping it (delivered, given up, or its task cancelled) leaves
/// the line and lets the next message go.
struct Place {
    lines: Lines,
    key: u64,
    /// What to wait for first: the message before, if any.
    before: Option<oneshot::Receiver<()>>,
    /// Dropped after the place leaves its line: the next message's `before`.
    _done: oneshot::Sender<()>,
}

impl Lines {
    /// A place at the end of `key`'s line, or `None` when the line is full.
    fn join(&self, key: u64) -> Option<Place> {
        let (done, delivered) = oneshot::channel();
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let (queued, before) = match lines.remove(&key) {
            Some(line) if line.queued >= MAX_QUEUED => {
                lines.insert(key, line);
                return None;
            }
            Some(line) => (line.queued + 1, Some(line.delivered)),
            None => (1, None),
        };
        lines.insert(key, Line { queued, delivered });
        Some(Place {
            lines: self.clone(),
            key,
            before,
            _done: done,
        })
    }

    /// A message left its line: the line is forgotten once nothing is in it.
    fn leave(&self, key: u64) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(line) = lines.get_mut(&key) {
            line.queued = line.queued.saturating_sub(1);
            if line.queued == 0 {
                lines.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.lines.leave(self.key);
    }
}

impl Webhooks {
    pub fn new(policy: AddressPolicy) -> Webhooks {
        let resolver = PolicyResolver {
            policy: policy.clone(),
            destination: Destination::Webhook,
        };
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .inspect_err(|e| warn!(error = %e, "cannot build the webhook client; no notification will be sent"))
            .ok();
        Webhooks {
            http,
            policy,
            lines: Lines::default(),
        }
    }

    /// Whether the policy lets `url` be contacted (its host resolved, with its port).
    async fn permits(&self, url: &str) -> bool {
        match self.policy.check_url(Destination::Webhook, url).await {
            Ok(()) => true,
            Err(Refusal::Denied(_)) => false,
            // A name that does not resolve fails as a delivery, like any other.
            Err(Refusal::Unresolved) => true,
        }
    }
}

/// Tries per message.
pub const ATTEMPTS: u32 = 4;
/// Wait before the second try; doubled for each further try.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Bound on one POST.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One message for the war room.
pub struct Message<'a> {
    pub namespace: &'a str,
    pub policy: &'a str,
    /// The event's name (`StageAdvanced`, …, `LaunchUpdate`, `LaunchReport`).
    pub label: &'a str,
    pub text: &'a str,
    /// For a launch update: the update itself (the `Json` format sends every field).
    pub update: Option<&'a Update>,
}

/// The webhook body, in the subscription's format. One text for every chat format, so what the
/// war room reads is the same whichever tool it uses.
pub fn payload(format: WebhookFormat, m: &Message<'_>) -> serde_json::Value {
    let (namespace, policy, label, text) = (m.namespace, m.policy, m.label, m.text);
    match format {
        WebhookFormat::Slack | WebhookFormat::GoogleChat => {
            json!({ "text": format!("[{namespace}/{policy}] {label}: {text}") })
        }
        WebhookFormat::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "weight": "Bolder", "wrap": true,
                "text": format!("{namespace}/{policy}: {label}"),
            })];
            body.extend(
                text.lines()
                    .map(|line| json!({"type": "TextBlock", "wrap": true, "text": line})),
            );
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                    },
                }],
            })
        }
        WebhookFormat::Json => json!({
            "namespace": namespace,
            "policy": policy,
            "event": label,
            "text": text,
            "update": m.update,
        }),
    }
}

/// Label of the launch update (`summaryEvery`, `summaryAt`).
pub const LAUNCH_UPDATE: &str = "LaunchUpdate";

/// Sends `text` to every subscription of `event`, in the background.
pub async fn send(
    http: &Webhooks,
    failures: prometheus::IntCounter,
    lookup: &KubeLookup<'_>,
    subscriptions: &[Notification],
    policy: &str,
    event: NotificationEvent,
    text: &str,
) {
    let message = Message {
        namespace: lookup.namespace,
        policy,
        label: event.as_str(),
        text,
        update: None,
    };
    for subscription in subscriptions.iter().filter(|s| s.events.contains(&event)) {
        send_to(http, &failures, lookup, subscription, &message).await;
    }
}

/// Sends `message` to one subscription, in the background, after the policy's earlier messages to
/// the same webhook.
pub async fn send_to(
    http: &Webhooks,
    failures: &prometheus::IntCounter,
    lookup: &KubeLookup<'_>,
    subscription: &Notification,
    message: &Message<'_>,
) {
    let r = &subscription.webhook_secret_ref;
    let url = match lookup.secret(&r.name).await {
        Ok(Some(secret)) => secret.text(&r.key),
        _ => None,
    };
    let Some(url) = url else {
        warn!(secret = %r.name, key = %r.key, "notification not sent: the webhook Secret or key is missing");
        failures.inc();
        return;
    };
    let Some(client) = http.http.clone() else {
        failures.inc();
        return;
    };
    if !http.permits(&url).await {
        warn!(secret = %r.name, key = %r.key, "notification not sent: the webhook address is refused by the operator's address policy");
        failures.inc();
        return;
    }
    let body = payload(subscription.format, message);
    let key = key_of((&url, message.namespace, message.policy));
    let Some(mut place) = http.lines.join(key) else {
        warn!(secret = %r.name, key = %r.key, "notification dropped: {MAX_QUEUED} messages of this policy already wait for the webhook");
        failures.inc();
        return;
    };
    let (http, failures) = (client, failures.clone());
    tokio::spawn(async move {
        if let Some(before) = place.before.take() {
            // Either way (sent, or the sender dropped) the message before is done.
            let _ = before.await;
        }
        if let Err(e) = deliver(&http, &url, &body).await {
            warn!(error = %e, "notification not delivered after {ATTEMPTS} tries");
            failures.inc();
        }
        drop(place);
    });
}

async fn deliver(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match http.post(url).timeout(TIMEOUT).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            // Never echo the URL: reqwest errors carry it, so keep only the kind of failure.
            Ok(r) => last = format!("the webhook answered HTTP {}", r.status().as_u16()),
            Err(e) if e.is_timeout() => last = "the webhook timed out".into(),
            Err(e) if e.is_connect() => last = "could not connect to the webhook".into(),
            Err(_) => last = "the request to the webhook failed".into(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage_advanced() -> Message<'static> {
        Message {
            namespace: "emr",
            policy: "emr-platform",
            label: "StageAdvanced",
            text: "entered stage gradual (500 users)\nsecond line",
            update: None,
        }
    }

    #[test]
    fn slack_and_google_chat_get_one_text_naming_the_policy_and_event() {
        let want = json!({"text": "[emr/emr-platform] StageAdvanced: entered stage gradual (500 users)\nsecond line"});
        assert_eq!(payload(WebhookFormat::Slack, &stage_advanced()), want);
        assert_eq!(payload(WebhookFormat::GoogleChat, &stage_advanced()), want);
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_a_block_per_line() {
        let body = payload(WebhookFormat::Teams, &stage_advanced());
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let blocks = card["content"]["body"].as_array().unwrap();
        let texts: Vec<&str> = blocks.iter().map(|b| b["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            [
                "emr/emr-platform: StageAdvanced",
                "entered stage gradual (500 users)",
                "second line"
            ]
        );
    }

    #[tokio::test]
    async fn a_message_waits_for_the_one_before_it_on_its_line_only() {
        let lines = Lines::default();
        let first = lines.join(1).unwrap();
        assert!(first.before.is_none(), "an empty line: nothing to wait for");
        let mut second = lines.join(1).unwrap();
        let mut before = second.before.take().unwrap();
        assert_eq!(
            before.try_recv(),
            Err(oneshot::error::TryRecvError::Empty),
            "the second waits while the first is in flight"
        );
        let other = lines.join(2).unwrap();
        assert!(other.before.is_none(), "another line does not wait");

        // The first is done (or its task cancelled): the second may go.
        drop(first);
        before.await.unwrap_err();
        assert_eq!(lines.len(), 2);
        drop(second);
        assert_eq!(lines.len(), 1, "a line with nothing in it is forgotten");
        assert!(lines.join(1).unwrap().before.is_none());
    }

    #[test]
    fn a_full_line_takes_no_more_and_frees_a_place_as_one_leaves() {
        let lines = Lines::default();
        let mut places: Vec<Place> = (0..MAX_QUEUED).map(|_| lines.join(7).unwrap()).collect();
        assert!(lines.join(7).is_none(), "a full line drops the message");
        assert!(lines.join(8).is_some(), "another line is not full");
        places.remove(0);
        let last = lines.join(7).expect("a place freed");
        assert!(last.before.is_some());
        drop(places);
        drop(last);
        assert_eq!(lines.len(), 0);
    }

    #[test]
    fn json_is_the_structured_message() {
        let body = payload(WebhookFormat::Json, &stage_advanced());
        assert_eq!(body["event"], "StageAdvanced");
        assert_eq!(body["policy"], "emr-platform");
        assert_eq!(body["namespace"], "emr");
        assert!(body["update"].is_null());
    }
}
