//! Webhook notifications (`spec.notifications`): the journal's news (stage changes, Go
//! requests, gate failures, scaling actions and failures, sources lost and found, kill
//! switches), the launch updates and the launch report, in each webhook's format (Slack, Google
//! Chat, Teams, or the structured JSON).
//!
//! Sending never blocks or fails a reconcile: each message is sent from a background task, retried
//! with exponential backoff ([`ATTEMPTS`] tries, starting at [`FIRST_BACKOFF`]), and a message that
//! still cannot be delivered is logged (without the webhook URL, which is a secret) and counted in
//! `liftoff_notifications_failed_total`. Delivery is at most once per decision: messages are sent
//! after the status write that records the decision.

use std::time::Duration;

use serde_json::json;
use tracing::warn;

use super::{lookup::KubeLookup, update::Update};
use crate::{
    crd::{Notification, NotificationEvent, WebhookFormat},
    sources::address::{AddressPolicy, Destination, PolicyResolver, Refusal},
};

/// The HTTP client webhooks are sent with, under the operator's address policy: a webhook URL
/// written with an IP is checked before the request, a name on every connection once resolved,
/// and redirects are not followed (the URL in the Secret is the one used).
#[derive(Clone)]
pub struct Webhooks {
    /// `None` when the client could not be built: nothing is sent (fail closed).
    http: Option<reqwest::Client>,
    policy: AddressPolicy,
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
        Webhooks { http, policy }
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

/// Sends `message` to one subscription, in the background.
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
    let (http, failures) = (client, failures.clone());
    tokio::spawn(async move {
        if let Err(e) = deliver(&http, &url, &body).await {
            warn!(error = %e, "notification not delivered after {ATTEMPTS} tries");
            failures.inc();
        }
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

    #[test]
    fn json_is_the_structured_message() {
        let body = payload(WebhookFormat::Json, &stage_advanced());
        assert_eq!(body["event"], "StageAdvanced");
        assert_eq!(body["policy"], "emr-platform");
        assert_eq!(body["namespace"], "emr");
        assert!(body["update"].is_null());
    }
}
