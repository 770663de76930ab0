//! Slack-compatible webhook notifications (`spec.notifications`): stage changes, gate failures,
//! pauses, rollbacks, completion and scaling actions, and the periodic launch update
//! (`summaryEvery`), as `{"text": "..."}` POSTs.
//!
//! Sending never blocks or fails a reconcile: each message is sent from a background task, retried
//! with exponential backoff ([`ATTEMPTS`] tries, starting at [`FIRST_BACKOFF`]), and a message that
//! still cannot be delivered is logged (without the webhook URL, which is a secret) and counted in
//! `liftoff_notifications_failed_total`. Delivery is at most once per decision: messages are sent
//! after the status write that records the decision.

use std::time::Duration;

use serde_json::json;
use tracing::warn;

use super::lookup::KubeLookup;
use crate::{
    crd::{Notification, NotificationEvent},
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

/// The webhook body: Slack's `text`, which Mattermost, Rocket.Chat and Teams' Slack-compatible
/// endpoints accept too. `label` is the event's name (`StageAdvanced`, …, or `LaunchUpdate`).
pub fn payload(namespace: &str, policy: &str, label: &str, message: &str) -> serde_json::Value {
    json!({ "text": format!("[{namespace}/{policy}] {label}: {message}") })
}

/// Label of the periodic launch update (`summaryEvery`).
pub const LAUNCH_UPDATE: &str = "LaunchUpdate";

/// Sends `message` to every subscription of `event`, in the background.
pub async fn send(
    http: &Webhooks,
    failures: prometheus::IntCounter,
    lookup: &KubeLookup<'_>,
    subscriptions: &[Notification],
    policy: &str,
    event: NotificationEvent,
    message: &str,
) {
    let label = event.as_str();
    for subscription in subscriptions.iter().filter(|s| s.events.contains(&event)) {
        send_to(
            http,
            &failures,
            lookup,
            subscription,
            policy,
            label,
            message,
        )
        .await;
    }
}

/// Sends `message` labelled `label` to one subscription, in the background.
pub async fn send_to(
    http: &Webhooks,
    failures: &prometheus::IntCounter,
    lookup: &KubeLookup<'_>,
    subscription: &Notification,
    policy: &str,
    label: &str,
    message: &str,
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
    let body = payload(lookup.namespace, policy, label, message);
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

    #[test]
    fn the_payload_is_slack_text_naming_the_policy_and_event() {
        let body = payload(
            "emr",
            "emr-platform",
            "StageAdvanced",
            "entered stage gradual (500 users)",
        );
        assert_eq!(
            body,
            json!({"text": "[emr/emr-platform] StageAdvanced: entered stage gradual (500 users)"})
        );
    }
}
