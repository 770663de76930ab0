//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one acts.
//!
//! The protocol is client-go's: a candidate reads the Lease; it takes it when nobody holds it or
//! when the holder has not renewed it for `leaseDurationSeconds` *as measured on the candidate's own
//! clock* (from when it last saw the Lease change, so clock skew between nodes does not matter);
//! every write is a replace carrying the `resourceVersion` it read, so of two candidates racing for
//! the same Lease the apiserver lets exactly one win. The leader renews every `renew_every` and
//! gives up leadership when it has not managed to renew for the renew deadline (two thirds of the
//! lease), well before any peer may take over. On shutdown the leader clears `holderIdentity`, so a
//! peer takes over within one retry instead of waiting for the lease to run out.
//!
//! Why not a crate: `kube-lease-manager` 0.13 fits kube 5, but a holder that cannot reach the
//! apiserver keeps reporting itself leader after its lease has expired (no renew deadline), and a
//! released lease is noticed by peers only when its old expiry passes.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tracing::{error, info, warn};

/// Timing of the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a Lease that is not renewed keeps others out (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// How often a candidate retries, and a leader retries a failed renewal.
    pub retry_every: Duration,
}

impl LeaseSettings {
    /// client-go's proportions (15 s lease, 10 s renew deadline, 2 s retry) scaled to `duration`;
    /// the leader renews every third of the lease.
    pub fn from_duration(duration: Duration) -> Self {
        Self {
            duration,
            renew_every: duration / 3,
            retry_every: duration * 2 / 15,
        }
    }

    /// A leader that has not renewed for this long stops leading: two thirds of the lease.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn duration_seconds(&self) -> i32 {
        self.duration.as_secs().clamp(1, i32::MAX as u64) as i32
    }
}

/// Where this process stands in the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Lease has not been read yet.
    Starting,
    /// Someone else holds the Lease (or nobody, and this process has not taken it yet).
    Follower,
    /// This process holds the Lease and may act.
    Leader,
}

/// The election's outcome, shared by the elector (writes it) and the rest of the process (reads it).
#[derive(Clone)]
pub struct State {
    role: watch::Sender<Role>,
    resign: watch::Sender<bool>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("leader", &self.is_leader())
            .finish()
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            role: watch::Sender::new(Role::Starting),
            resign: watch::Sender::new(false),
        }
    }
}

impl State {
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    /// Resolves once this process leads.
    pub async fn wait_until_leader(&self) {
        let mut rx = self.role.subscribe();
        let _ = rx.wait_for(|r| *r == Role::Leader).await;
    }

    /// Resolves when this process stops leading (at once if it does not lead now).
    pub async fn wait_until_not_leader(&self) {
        let mut rx = self.role.subscribe();
        let _ = rx.wait_for(|r| *r != Role::Leader).await;
    }

    /// Every change of role, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Asks the elector to release the Lease (if held) and stop. Call after the work it guarded
    /// has stopped, then await the elector's task.
    pub fn resign(&self) {
        self.resign.send_replace(true);
    }

    fn set(&self, role: Role) {
        self.role
            .send_if_modified(|r| std::mem::replace(r, role) != role);
    }
}

/// What a candidate does after reading the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// It holds the Lease: renew it.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// Someone else holds it and it is still valid.
    Follow(String),
}

/// Decides from the Lease's spec. `unchanged_for` is how long this process has seen the Lease
/// unchanged, on its own clock.
fn next_step(spec: Option<&LeaseSpec>, identity: &str, unchanged_for: Duration) -> Step {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == identity => Step::Renew,
        None => Step::Acquire,
        Some(h) => {
            let secs = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
            if unchanged_for >= Duration::from_secs(secs.max(0) as u64) {
                Step::Acquire
            } else {
                Step::Follow(h.to_string())
            }
        }
    }
}

/// The spec with `identity` holding the Lease from `now` for `settings.duration`.
fn claimed(spec: LeaseSpec, identity: &str, settings: &LeaseSettings, now: Timestamp) -> LeaseSpec {
    let renewing = spec.holder_identity.as_deref() == Some(identity);
    let had_holder = spec
        .holder_identity
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        || spec.acquire_time.is_some();
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(settings.duration_seconds()),
        renew_time: Some(MicroTime(now)),
        acquire_time: if renewing {
            spec.acquire_time
        } else {
            Some(MicroTime(now))
        },
        lease_transitions: match (renewing, had_holder) {
            (true, _) | (false, false) => spec.lease_transitions.or(Some(0)),
            (false, true) => Some(spec.lease_transitions.unwrap_or(0) + 1),
        },
        ..spec
    }
}

/// The spec after its holder stepped down: no holder, and a one-second lease so that even a
/// candidate that does not treat an empty holder as free waits at most a second.
fn released(spec: LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..spec
    }
}

/// How one round of the election ended.
enum Round {
    /// This process holds the Lease (took or renewed it).
    Held,
    /// Another holds it and it is valid.
    NotHeld,
    /// Another writer changed the Lease between read and write.
    Conflict,
}

/// Competes for one Lease until told to resign.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    settings: LeaseSettings,
    /// The Lease's resourceVersion as last seen, and when it was first seen so (local clock).
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        settings: LeaseSettings,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: lease_name.to_string(),
            identity: identity.to_string(),
            settings,
            observed: None,
        }
    }

    /// Runs the election, publishing the outcome in `state`, until [`State::resign`]; then clears
    /// the holder if it leads, so a peer takes over at once.
    pub async fn run(mut self, state: State) {
        let mut resign = state.resign.subscribe();
        let mut last_renewal: Option<Instant> = None;
        loop {
            let leading = state.is_leader();
            let budget = match last_renewal.filter(|_| leading) {
                Some(at) => self.settings.renew_deadline().saturating_sub(at.elapsed()),
                None => self.settings.duration,
            };
            let outcome = tokio::time::timeout(budget, self.try_acquire_or_renew()).await;
            let wait = match outcome {
                Ok(Ok(Round::Held)) => {
                    if !leading {
                        info!(lease = %self.name, identity = %self.identity, "acquired the lease; leading");
                    }
                    last_renewal = Some(Instant::now());
                    state.set(Role::Leader);
                    self.settings.renew_every
                }
                Ok(Ok(Round::NotHeld)) => {
                    if leading {
                        error!(lease = %self.name, "another replica holds the lease; no longer leading");
                    }
                    state.set(Role::Follower);
                    self.settings.retry_every
                }
                Ok(Ok(Round::Conflict)) if !leading => {
                    state.set(Role::Follower);
                    self.settings.retry_every
                }
                Ok(Ok(Round::Conflict)) => self.failed(
                    &state,
                    last_renewal,
                    "another writer changed the lease first",
                ),
                Ok(Err(e)) => self.failed(&state, last_renewal, &e.to_string()),
                Err(_) => self.failed(&state, last_renewal, "request timed out"),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = resign.wait_for(|r| *r) => break,
            }
        }
        if state.is_leader() {
            state.set(Role::Follower);
            match self.release().await {
                Ok(()) => info!(lease = %self.name, "released the lease"),
                Err(e) => {
                    warn!(lease = %self.name, error = %e, "could not release the lease; peers wait for it to expire")
                }
            }
        }
    }

    /// After a failed attempt: a leader past its renew deadline stops leading. Returns the wait.
    fn failed(&self, state: &State, last_renewal: Option<Instant>, error: &str) -> Duration {
        let overdue = last_renewal.is_none_or(|at| at.elapsed() >= self.settings.renew_deadline());
        if state.is_leader() && overdue {
            error!(lease = %self.name, error, "could not renew the lease in time; no longer leading");
            state.set(Role::Follower);
        } else {
            warn!(lease = %self.name, error, "lease request failed; retrying");
        }
        self.settings.retry_every
    }

    /// One round: read the Lease, then take or renew it when that is due.
    async fn try_acquire_or_renew(&mut self) -> Result<Round, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return self.create().await;
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let since = match &self.observed {
            Some((v, at)) if *v == version => *at,
            _ => Instant::now(),
        };
        self.observed = Some((version, since));
        match next_step(lease.spec.as_ref(), &self.identity, since.elapsed()) {
            Step::Follow(_) => Ok(Round::NotHeld),
            Step::Renew | Step::Acquire => {
                let spec = lease.spec.clone().unwrap_or_default();
                let mut updated = lease;
                updated.spec = Some(claimed(
                    spec,
                    &self.identity,
                    &self.settings,
                    Timestamp::now(),
                ));
                self.replace(&updated).await
            }
        }
    }

    async fn create(&mut self) -> Result<Round, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(claimed(
                LeaseSpec::default(),
                &self.identity,
                &self.settings,
                Timestamp::now(),
            )),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Held),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Replaces with the resourceVersion that was read: a conflict means another writer was
    /// first, and the next round reads again.
    async fn replace(&mut self, lease: &Lease) -> Result<Round, kube::Error> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), lease)
            .await
        {
            Ok(_) => Ok(Round::Held),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }
}

/// This replica's identity in the Lease: `POD_NAME` (the chart sets it from the downward API),
/// else the host name plus the process id, so two local processes never share one.
pub fn default_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "liftoff".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests;
