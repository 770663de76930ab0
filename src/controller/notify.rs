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
//! so a retried message is never overtaken by the news that followed it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
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

/// The last message in line per (webhook, policy): the next one waits for it. Keyed by a digest,
/// so the map holds no webhook URL; two lines that share a digest merely wait for each other.
#[derive(Clone, Default)]
struct Lines {
    last: Arc<Mutex<HashMap<u64, Last>>>,
    ids: Arc<AtomicU64>,
}

/// A message in line: `delivered` resolves (to an error: its sender is dropped) once it was
/// delivered or given up.
struct Last {
    id: u64,
    delivered: oneshot::Receiver<()>,
}

impl Lines {
    /// Puts a message at the end of `key`'s line: its id, what it must wait for, and the sender
    /// to drop once it is done.
    fn join(&self, key: u64) -> (u64, Option<oneshot::Receiver<()>>, oneshot::Sender<()>) {
        let (done, delivered) = oneshot::channel();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let before = last.insert(key, Last { id, delivered });
        (id, before.map(|b| b.delivered), done)
    }

    /// A message is done: its line is forgotten unless another message joined it since.
    fn leave(&self, key: u64, id: u64) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.get(&key).is_some_and(|l| l.id == id) {
            last.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    let lines = http.lines.clone();
    let (id, before, done) = lines.join(key);
    let (http, failures) = (client, failures.clone());
    tokio::spawn(async move {
        if let Some(before) = before {
            // Either way (sent, or the sender dropped) the message before is done.
            let _ = before.await;
        }
        if let Err(e) = deliver(&http, &url, &body).await {
            warn!(error = %e, "notification not delivered after {ATTEMPTS} tries");
            failures.inc();
        }
        lines.leave(key, id);
        drop(done);
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
        let (first, none, first_done) = lines.join(1);
        assert!(none.is_none(), "an empty line: nothing to wait for");
        let (second, mut before, second_done) = lines.join(1);
        assert_eq!(
            before.as_mut().unwrap().try_recv(),
            Err(oneshot::error::TryRecvError::Empty),
            "the second waits while the first is in flight"
        );
        let (_, other, _other_done) = lines.join(2);
        assert!(other.is_none(), "another line does not wait");

        // The first is done: the second may go; the line is still the second's.
        lines.leave(1, first);
        drop(first_done);
        before.unwrap().await.unwrap_err();
        assert_eq!(lines.len(), 2);
        lines.leave(1, second);
        drop(second_done);
        assert_eq!(lines.len(), 1, "a line with nothing in it is forgotten");
        let (_, fresh, _) = lines.join(1);
        assert!(fresh.is_none());
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
