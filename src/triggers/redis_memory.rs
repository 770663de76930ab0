//! `redisMemory`: Redis memory as a percentage of `maxmemory` (`INFO memory` or PromQL) → one
//! more replica of `scaleTargetRef`, or only a signal when there is none
//! ([`engine::decide_redis_step`]).

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

use super::{
    kind::{Deciding, Kind, SecretUse, Unit},
    plan::{Current, Planned},
    platform::Platform,
};
use crate::{
    crd::{RedisMemoryTrigger, ReplicaBounds, ScaleTargetRef, SecretKeyRef, Trigger},
    engine::scaling::{
        self as engine, MAX_PERCENT, REDIS_MEMORY_COOLDOWN, RedisAction, RedisInput, RedisTarget,
        Sample, ScalingHistory,
    },
};

pub struct RedisMemory<'a> {
    trigger: &'a Trigger,
    spec: &'a RedisMemoryTrigger,
    source: Source<'a>,
    /// The workload scaled one step up, with its bounds; `None` when the trigger only signals.
    scaled: Option<(&'a ScaleTargetRef, &'a ReplicaBounds)>,
}

/// Where the memory use is read.
enum Source<'a> {
    Prometheus(&'a str),
    /// `INFO memory` from the server whose URL this Secret key holds.
    Server(&'a SecretKeyRef),
}

impl<'a> RedisMemory<'a> {
    pub(super) fn new(
        trigger: &'a Trigger,
        spec: &'a RedisMemoryTrigger,
    ) -> Result<Self, &'static str> {
        let source = match (&spec.query, &spec.address_secret_ref) {
            (Some(query), None) => Source::Prometheus(query),
            (None, Some(address)) => Source::Server(address),
            _ => return Err("set exactly one of addressSecretRef or query in redisMemory"),
        };
        let scaled = match (&trigger.scale_target_ref, &trigger.replicas) {
            (Some(target), Some(replicas)) => Some((target, replicas)),
            (Some(_), None) => {
                return Err("a redisMemory trigger with a scaleTargetRef needs replicas.max");
            }
            (None, _) => None,
        };
        Ok(RedisMemory {
            trigger,
            spec,
            source,
            scaled,
        })
    }
}

impl Kind for RedisMemory<'_> {
    fn trigger(&self) -> &Trigger {
        self.trigger
    }

    fn as_str(&self) -> &'static str {
        "redisMemory"
    }

    fn threshold(&self) -> f64 {
        f64::from(self.spec.threshold)
    }

    fn unit(&self) -> Unit {
        Unit::Percent
    }

    fn default_cooldown(&self) -> Duration {
        REDIS_MEMORY_COOLDOWN
    }

    fn plausible_max(&self) -> (f64, &'static str) {
        (MAX_PERCENT, "Redis memory %")
    }

    fn query(&self) -> Option<&str> {
        self.spec.query.as_deref()
    }

    fn assumed_start(&self) -> Option<Current> {
        Some(match self.scaled {
            Some((_, replicas)) => Current::Replicas(replicas.min),
            None => Current::Nothing,
        })
    }

    fn secrets(&self) -> Vec<SecretUse<'_>> {
        match self.source {
            Source::Prometheus(_) => Vec::new(),
            Source::Server(address) => vec![SecretUse {
                field: "redisMemory.addressSecretRef",
                name: &address.name,
                key: Some(&address.key),
            }],
        }
    }

    fn decide(&self, d: Deciding<'_>, _: &mut ScalingHistory) -> (Option<Planned>, String) {
        let target = match (d.current, self.scaled) {
            (Current::Replicas(current), Some((_, bounds))) => Some(RedisTarget {
                current_replicas: *current,
                max_replicas: bounds.max,
            }),
            (Current::Nothing, None) => None,
            (current, _) => return super::plan::misfit(current),
        };
        let input = RedisInput {
            memory_percent: d.sample,
            threshold: self.spec.threshold,
            target,
            cooldown: self.trigger.cooldown,
            last_action_at: d.last_action_at,
        };
        let decision = engine::decide_redis_step(&input, d.now);
        let action = decision.action.map(|a| match a {
            RedisAction::ScaleUp(c) => Planned::Scale {
                from: c.from,
                to: c.to,
            },
            RedisAction::Signal => Planned::Signal,
        });
        (action, decision.reason)
    }

    fn sample<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Sample> {
        async move {
            match self.source {
                Source::Prometheus(query) => io.prometheus_query(query).await,
                Source::Server(address) => {
                    io.redis_memory(address, self.spec.max_memory_bytes).await
                }
            }
        }
        .boxed()
    }

    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>> {
        async move {
            match self.scaled {
                Some((target, _)) => io.replicas(target).await.map(Current::Replicas),
                None => Ok(Current::Nothing),
            }
        }
        .boxed()
    }

    fn act<'s>(
        &'s self,
        io: &'s Platform<'_>,
        action: &'s Planned,
    ) -> BoxFuture<'s, Result<String, String>> {
        async move {
            match (action, self.scaled) {
                (Planned::Scale { from, to }, Some((target, _))) => {
                    io.scale(target, *from, *to).await
                }
                (Planned::Signal, _) => Ok(
                    "signalled high Redis memory (no scaleTargetRef, so nothing was scaled)".into(),
                ),
                (other, _) => Err(super::plan::unfit(other, self.as_str())),
            }
        }
        .boxed()
    }
}
