//! Leader election against a real kube-apiserver: the elector on its own, then two real operator
//! processes of which exactly one acts, and the other takes over when the leader dies.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use liftoff::{
    crd::LaunchPolicy,
    leader::{Elector, LeaseSettings, State},
};
use liftoff_testenv::ControlPlane;
use serde_json::json;
use support::{Operator, control_plane, eventually, kubectl};
use tokio::task::JoinHandle;

/// A short lease keeps the tests quick: renew every 1 s, retry every 0.4 s, renew deadline 2 s.
const FAST: Duration = Duration::from_secs(3);
/// Slack for request latency and polling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(2);

struct Candidate {
    state: State,
    task: JoinHandle<()>,
}

fn candidate(client: &Client, ns: &str, identity: &str, settings: LeaseSettings) -> Candidate {
    let state = State::default();
    let elector = Elector::new(client.clone(), ns, "liftoff", identity, settings);
    let task = tokio::spawn(elector.run(state.clone()));
    Candidate { state, task }
}

async fn lease(client: &Client, ns: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("liftoff")
        .await
        .ok()?
}

async fn holder(client: &Client, ns: &str) -> Option<String> {
    lease(client, ns).await?.spec?.holder_identity
}

async fn becomes_leader(c: &Candidate, within: Duration, who: &str) {
    eventually(within, &format!("{who} leads"), || async {
        c.state.is_leader().then_some(())
    })
    .await;
}

#[tokio::test]
async fn of_two_electors_exactly_one_leads_and_the_lease_names_it() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("lease").await.unwrap();
    // Renew deadline 3.3 s: a slow request on a loaded machine does not look like a crash.
    let lease = Duration::from_secs(5);
    let settings = LeaseSettings::from_duration(lease);
    let a = candidate(&client, &ns, "a", settings);
    let b = candidate(&client, &ns, "b", settings);

    let leader = eventually(SLACK, "a leader", || async {
        match (a.state.is_leader(), b.state.is_leader()) {
            (true, false) => Some("a"),
            (false, true) => Some("b"),
            _ => None,
        }
    })
    .await;
    assert_eq!(holder(&client, &ns).await.as_deref(), Some(leader));

    // Over two full lease durations (several renewals) leadership neither moves nor doubles.
    let until = Instant::now() + 2 * lease;
    while Instant::now() < until {
        let (a_leads, b_leads) = (a.state.is_leader(), b.state.is_leader());
        assert!(!(a_leads && b_leads), "both lead");
        assert_eq!(if a_leads { "a" } else { "b" }, leader, "leadership moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder(&client, &ns).await.as_deref(), Some(leader));
}

#[tokio::test]
async fn a_holder_that_stops_renewing_is_replaced_once_its_lease_runs_out() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("lease").await.unwrap();
    let settings = LeaseSettings::from_duration(FAST);
    let a = candidate(&client, &ns, "a", settings);
    becomes_leader(&a, SLACK, "a").await;
    let b = candidate(&client, &ns, "b", settings);
    eventually(SLACK, "b follows", || async {
        (b.state.role() == liftoff::leader::Role::Follower).then_some(())
    })
    .await;

    a.task.abort(); // a crash: no release, the lease just stops being renewed
    let stopped = Instant::now();
    becomes_leader(&b, FAST + settings.retry_every + SLACK, "b").await;
    let took = stopped.elapsed();
    assert!(
        took >= FAST - settings.renew_every,
        "b took over after {took:?}, before a's lease of {FAST:?} can have run out"
    );
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("b"));
    let transitions = lease(&client, &ns).await.unwrap().spec.unwrap();
    assert_eq!(transitions.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_leader_that_resigns_hands_over_within_one_retry_not_one_lease() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("lease").await.unwrap();
    // A long lease: waiting for it to run out would take 20 s.
    let settings = LeaseSettings::from_duration(Duration::from_secs(20));
    let a = candidate(&client, &ns, "a", settings);
    becomes_leader(&a, SLACK, "a").await;
    let b = candidate(&client, &ns, "b", settings);
    eventually(SLACK, "b follows", || async {
        (b.state.role() == liftoff::leader::Role::Follower).then_some(())
    })
    .await;

    a.state.resign();
    tokio::time::timeout(SLACK, a.task)
        .await
        .expect("the elector stops after resigning")
        .unwrap();
    assert!(!a.state.is_leader());
    let resigned = Instant::now();
    becomes_leader(&b, settings.retry_every + SLACK, "b").await;
    assert!(resigned.elapsed() < settings.duration / 2);
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("b"));
}

// ---- two real operator processes ----

async fn start_operator(cp: &ControlPlane, ns: &str, identity: &str, duration: &str) -> Operator {
    Operator::start_elected(cp, ns, identity, duration, &[]).await
}

async fn apply_policy(cp: &ControlPlane, ns: &str, name: &str) {
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: app, image: registry.example/app:1}}]}}
---
apiVersion: liftoff.dev/v1alpha1
kind: LaunchPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  scaling:
    triggers:
      - name: cpu
        cpu: {{}}
        scaleTargetRef: {{kind: Deployment, name: {name}}}
        replicas: {{min: 1, max: 3}}
"#
    );
    let (ok, _, err) = kubectl(cp, &["apply", "-f", "-"], Some(&manifest)).await;
    assert!(ok, "{err}");
}

/// Waits until the policy's Ready condition is True: only a leading operator writes it.
async fn reconciled(client: &Client, ns: &str, name: &str, within: Duration) {
    let api: Api<LaunchPolicy> = Api::namespaced(client.clone(), ns);
    eventually(within, &format!("{name} reconciled to Ready"), || async {
        let status = api.get(name).await.ok()?.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn of_two_operators_one_acts_and_the_other_takes_over_after_kill_9() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("ha").await.unwrap();
    let a = start_operator(&cp, &ns, "op-a", "4s").await;
    eventually(SLACK, "op-a leads", || async {
        a.leads().await.then_some(())
    })
    .await;
    let b = start_operator(&cp, &ns, "op-b", "4s").await;

    apply_policy(&cp, &ns, "first").await;
    reconciled(&client, &ns, "first", Duration::from_secs(20)).await;
    assert!(a.leads().await && !b.leads().await);
    assert!(
        !b.logs().contains("starting the controller"),
        "the standby must not run the controller:\n{}",
        b.logs()
    );
    assert_eq!(b.metric("liftoff_reconciles_total").await, 0.0);
    assert_eq!(
        b.metric("liftoff_ready").await,
        1.0,
        "a standby stays ready"
    );

    a.kill().await;
    let killed = Instant::now();
    let lease = Duration::from_secs(4);
    eventually(lease + SLACK + SLACK, "op-b leads", || async {
        b.leads().await.then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("op-b"));

    apply_policy(&cp, &ns, "second").await;
    reconciled(&client, &ns, "second", Duration::from_secs(20)).await;
    assert!(b.logs().contains("starting the controller"));
    eprintln!("op-b took over {took:?} after op-a was killed");
}

#[tokio::test]
async fn sigterm_on_the_leading_operator_hands_over_without_waiting_for_the_lease() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("ha").await.unwrap();
    let a = start_operator(&cp, &ns, "op-a", "30s").await;
    eventually(SLACK, "op-a leads", || async {
        a.leads().await.then_some(())
    })
    .await;
    let b = start_operator(&cp, &ns, "op-b", "30s").await;
    assert!(!b.leads().await);

    let status = a.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "a terminated leader exits 0: {status}");
    let terminated = Instant::now();
    // retry_every is 4 s for a 30 s lease; the lease itself is never waited for.
    eventually(Duration::from_secs(4) + SLACK, "op-b leads", || async {
        b.leads().await.then_some(())
    })
    .await;
    assert!(terminated.elapsed() < Duration::from_secs(15));
    apply_policy(&cp, &ns, "after-handover").await;
    reconciled(&client, &ns, "after-handover", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn an_operator_whose_lease_is_taken_exits_non_zero_at_once() {
    let cp = control_plane().await;
    let client = cp.client().await.unwrap();
    let ns = cp.create_namespace("ha").await.unwrap();
    let op = start_operator(&cp, &ns, "op-a", "6s").await;
    eventually(SLACK, "op-a leads", || async {
        op.leads().await.then_some(())
    })
    .await;

    // Another writer takes the Lease (as a peer would after a network partition).
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let now = MicroTime(Timestamp::now());
    let patch = json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60}});
    api.patch("liftoff", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    // It notices at its next renewal (every 2 s) and exits with an error.
    let status = op.exits_within(Duration::from_secs(2) + SLACK).await;
    assert!(!status.success(), "losing the lease must exit non-zero");
    let lease = api.get("liftoff").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("intruder"),
        "a deposed leader must not write the Lease back"
    );
}
