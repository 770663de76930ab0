//! The kinds of trigger, as types. [`Trigger::kind`] is the only code that reads the spec's
//! one-of (`cpu`, `kafkaLag`, `databaseConnections`, `redisMemory`); [`TriggerKind::get`] is the
//! one `match` that turns a kind into its behaviour: the [`Kind`] trait, implemented once per
//! kind in `cpu.rs`, `kafka_lag.rs`, `database_connections.rs` and `redis_memory.rs`.
//! `docs/architecture.md` lists the files a new kind touches.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;

use super::{
    cpu::Cpu,
    database_connections::DatabaseConnections,
    kafka_lag::KafkaLag,
    plan::{Current, Planned},
    platform::Platform,
    redis_memory::RedisMemory,
};
use crate::{
    crd::Trigger,
    engine::scaling::{Sample, ScalingHistory, num},
    sources::address::Destination,
};

/// A trigger whose kind has been read: every step after validation works with this.
pub enum TriggerKind<'a> {
    Cpu(Cpu<'a>),
    KafkaLag(KafkaLag<'a>),
    DatabaseConnections(DatabaseConnections<'a>),
    RedisMemory(RedisMemory<'a>),
}

/// Why a stored trigger has no usable kind. The CRD refuses each of these at admission; a
/// policy stored under an older CRD can still hold one, and is then reported as `InvalidSpec`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trigger {name:?}: {problem}")]
pub struct KindError {
    pub name: String,
    pub problem: String,
}

/// The unit of a trigger's value and threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A percentage, shown as `70%`.
    Percent,
    /// A count (messages, connections), shown as a plain number.
    Count,
}

/// A Secret a trigger reads, and the field (relative to the trigger) that names it.
pub struct SecretUse<'a> {
    pub field: &'static str,
    pub name: &'a str,
    /// The key the trigger needs; `None` when it reads whichever keys are present.
    pub key: Option<&'a str>,
}

/// A network address written in a trigger, and the field that holds it.
pub struct AddressUse<'a> {
    pub field: &'static str,
    pub destination: Destination,
    pub host: &'a str,
    pub port: u16,
}

/// What a kind decides from.
pub struct Deciding<'a> {
    pub sample: &'a Sample,
    pub current: &'a Current,
    /// When this trigger last acted, for its cooldown.
    pub last_action_at: Option<Timestamp>,
    pub now: Timestamp,
}

/// What one kind of trigger measures, how it is read and how it acts.
pub trait Kind: Send + Sync {
    /// The trigger as written.
    fn trigger(&self) -> &Trigger;
    /// The kind's name in status (`status.triggers[].kind`) and in metric labels: the spec's field.
    fn as_str(&self) -> &'static str;
    /// The threshold samples are compared with, in [`Kind::unit`].
    fn threshold(&self) -> f64;
    fn unit(&self) -> Unit;
    /// The minimum time between two actions when the trigger sets no `cooldown`.
    fn default_cooldown(&self) -> Duration;
    /// The largest value a source can plausibly report, and what the value is called; beyond
    /// it a sample is not a measurement and counts as unknown.
    fn plausible_max(&self) -> (f64, &'static str);
    /// Why a plausible `value` still cannot be a measurement given the target's state.
    fn implausible(&self, _value: f64, _current: Option<&Current>) -> Option<String> {
        None
    }
    /// Whether a known `value` puts the trigger beyond its threshold (asks for more capacity).
    fn is_active(&self, value: f64) -> bool {
        value > self.threshold()
    }
    /// The PromQL query the metric is read with, when it is read from Prometheus.
    fn query(&self) -> Option<&str> {
        None
    }
    /// The target's state a replay (`liftoff simulate`) starts from when none is given: the
    /// least the trigger would keep (`replicas.min`, the class in the spec), or nothing to
    /// scale; `None` when the spec does not say (a topic's partition count).
    fn assumed_start(&self) -> Option<Current>;
    /// The Secrets this kind reads.
    fn secrets(&self) -> Vec<SecretUse<'_>>;
    /// The network addresses written in the trigger itself (not in a Secret), with the field
    /// (relative to the trigger) that holds them, for the operator's address policy.
    fn addresses(&self) -> Vec<AddressUse<'_>> {
        Vec::new()
    }
    /// The engine's decision, as an action on the target, and its reason. `history` is the
    /// trigger's memory of recommendations and scales (used by kinds with rate policies).
    fn decide(&self, d: Deciding<'_>, history: &mut ScalingHistory) -> (Option<Planned>, String);
    /// Reads the metric. Never fails: a failure is [`Sample::Unknown`], naming the source.
    fn sample<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Sample>;
    /// Reads the target's state.
    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>>;
    /// The size after `current` on the trigger's ladder (RDS classes, ElastiCache node types),
    /// if it has one and `current` is not its last rung.
    fn next_size(&self, current: &str) -> Option<String> {
        let _ = current;
        None
    }
    /// The action that applies a recommendation from class `from` to `to` a person approved
    /// (`liftoff.dev/approve-resize`), or why this trigger cannot apply it.
    fn approved(&self, from: &str, to: &str) -> Result<Planned, String> {
        let _ = (from, to);
        Err(format!(
            "a {} trigger makes no recommendation to approve",
            self.as_str()
        ))
    }
    /// Applies `action`; on success, one sentence saying what changed.
    fn act<'s>(
        &'s self,
        io: &'s Platform<'_>,
        action: &'s Planned,
    ) -> BoxFuture<'s, Result<String, String>>;
}

impl Trigger {
    /// The workload the trigger scales: `scaleTargetRef`, or a kafkaLag trigger's consumers.
    pub fn workload(&self) -> Option<&crate::crd::ScaleTargetRef> {
        let consumers = self.consumers.as_ref().map(|c| &c.scale_target_ref);
        self.scale_target_ref.as_ref().or(consumers)
    }

    /// The trigger's kind: the only place that reads the one-of, and checks that the fields the
    /// kind needs are there (the same rules as the CRD's).
    pub fn kind(&self) -> Result<TriggerKind<'_>, KindError> {
        let fail = |problem: &str| KindError {
            name: self.name.clone(),
            problem: problem.to_string(),
        };
        let kind = match (
            &self.cpu,
            &self.kafka_lag,
            &self.database_connections,
            &self.redis_memory,
        ) {
            (Some(cpu), None, None, None) => TriggerKind::Cpu(Cpu::new(self, cpu).map_err(fail)?),
            (None, Some(lag), None, None) => {
                TriggerKind::KafkaLag(KafkaLag::new(self, lag).map_err(fail)?)
            }
            (None, None, Some(db), None) => {
                TriggerKind::DatabaseConnections(DatabaseConnections::new(self, db).map_err(fail)?)
            }
            (None, None, None, Some(redis)) => {
                TriggerKind::RedisMemory(RedisMemory::new(self, redis).map_err(fail)?)
            }
            (cpu, lag, db, redis) => {
                let set: Vec<&str> = [
                    ("cpu", cpu.is_some()),
                    ("kafkaLag", lag.is_some()),
                    ("databaseConnections", db.is_some()),
                    ("redisMemory", redis.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .collect();
                let set = match set.is_empty() {
                    true => "no metric".to_string(),
                    false => set.join(" and "),
                };
                return Err(fail(&format!(
                    "sets {set}: set exactly one of cpu, kafkaLag, databaseConnections or redisMemory"
                )));
            }
        };
        let strays: [(&str, bool, &[&str]); 7] = [
            ("partitions", self.partitions.is_some(), &["kafkaLag"]),
            ("consumers", self.consumers.is_some(), &["kafkaLag"]),
            ("cacheResize", self.cache_resize.is_some(), &["redisMemory"]),
            (
                "rdsResize",
                self.rds_resize.is_some(),
                &["databaseConnections"],
            ),
            (
                "scaleTargetRef",
                self.scale_target_ref.is_some(),
                &["cpu", "redisMemory"],
            ),
            ("replicas", self.replicas.is_some(), &["cpu", "redisMemory"]),
            ("behavior", self.behavior.is_some(), &["cpu", "redisMemory"]),
        ];
        for (field, present, kinds) in strays {
            if present && !kinds.contains(&kind.as_str()) {
                return Err(fail(&format!(
                    "{field} only applies to {} triggers",
                    kinds.join(" and ")
                )));
            }
        }
        Ok(kind)
    }
}

impl<'a> TriggerKind<'a> {
    /// The kind's behaviour: the one match over the kinds.
    pub fn get(&self) -> &(dyn Kind + 'a) {
        match self {
            TriggerKind::Cpu(k) => k,
            TriggerKind::KafkaLag(k) => k,
            TriggerKind::DatabaseConnections(k) => k,
            TriggerKind::RedisMemory(k) => k,
        }
    }

    pub fn trigger(&self) -> &Trigger {
        self.get().trigger()
    }

    pub fn as_str(&self) -> &'static str {
        self.get().as_str()
    }

    pub fn threshold(&self) -> f64 {
        self.get().threshold()
    }

    /// A value for display, with its unit: `140%`, `62000`.
    pub fn display(&self, value: f64) -> String {
        let n = num(value);
        match self.get().unit() {
            Unit::Percent => format!("{n}%"),
            Unit::Count => n,
        }
    }

    /// The minimum time between two actions: `cooldown`, or the kind's default.
    pub fn cooldown(&self) -> Duration {
        self.trigger()
            .cooldown
            .map(Into::into)
            .unwrap_or_else(|| self.get().default_cooldown())
    }

    /// `sample`, or unknown (with the reason) when it cannot be a measurement: not a number,
    /// negative, above the kind's plausible maximum, or implausible given the target's state
    /// (see [`Kind::implausible`]).
    pub fn vet(&self, sample: Sample, current: Option<&Current>) -> Sample {
        let (max, what) = self.get().plausible_max();
        let sample = sample.vetted(max, what);
        match sample
            .value()
            .and_then(|v| self.get().implausible(v, current))
        {
            Some(why) => Sample::unknown("sample", why),
            None => sample,
        }
    }

    /// Whether `sample` puts the trigger beyond its threshold. An unknown or invalid sample is
    /// never active: its error is reported on its own (`status.triggers[].error`), not as a breach.
    pub fn is_active(&self, sample: &Sample) -> bool {
        match sample {
            Sample::Value(v) if v.is_finite() && *v >= 0.0 => self.get().is_active(*v),
            _ => false,
        }
    }
}
