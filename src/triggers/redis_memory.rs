//! `redisMemory`: Redis memory as a percentage of `maxmemory` (`INFO memory` or PromQL) → one
//! more replica of `scaleTargetRef`, the next ElastiCache node type (`cacheResize`: a
//! recommendation, or with `approval: Automatic` a patch of the ACK `ReplicationGroup`), or only
//! a signal when there is neither ([`engine::decide_redis_step`]).

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

use super::{
    kind::{Deciding, Kind, SecretUse, Unit},
    plan::{Current, Planned},
    platform::Platform,
};
use crate::{
    crd::{
        CacheResizePolicy, RedisMemoryTrigger, ReplicaBounds, ScaleTargetRef, SecretKeyRef, Trigger,
    },
    engine::scaling::{
        self as engine, Ladder, MAX_PERCENT, REDIS_MEMORY_COOLDOWN, RedisAction, RedisInput,
        RedisTarget, ResizeAction, Sample, ScalingHistory,
    },
};

pub struct RedisMemory<'a> {
    trigger: &'a Trigger,
    spec: &'a RedisMemoryTrigger,
    source: Source<'a>,
    target: Target<'a>,
}

/// What the trigger scales up.
enum Target<'a> {
    /// A workload, one replica at a time within its bounds.
    Replicas(&'a ScaleTargetRef, &'a ReplicaBounds),
    /// An ElastiCache replication group, one node type at a time.
    NodeType(&'a CacheResizePolicy),
    /// Nothing: the trigger only signals.
    Nothing,
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
        let target = match (
            &trigger.scale_target_ref,
            &trigger.replicas,
            &trigger.cache_resize,
        ) {
            (Some(_), _, Some(_)) => {
                return Err(
                    "a redisMemory trigger resizes either a StatefulSet (scaleTargetRef) or an \
                     ElastiCache node type (cacheResize), not both",
                );
            }
            (Some(target), Some(replicas), None) => Target::Replicas(target, replicas),
            (Some(_), None, None) => {
                return Err("a redisMemory trigger with a scaleTargetRef needs replicas.max");
            }
            (None, _, Some(cache)) => Target::NodeType(cache),
            (None, _, None) => Target::Nothing,
        };
        Ok(RedisMemory {
            trigger,
            spec,
            source,
            target,
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
        Some(match self.target {
            Target::Replicas(_, replicas) => Current::Replicas(replicas.min),
            Target::NodeType(cache) => Current::Class(start_node_type(cache)?),
            Target::Nothing => Current::Nothing,
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
        let target = match (d.current, &self.target) {
            (Current::Replicas(current), Target::Replicas(_, bounds)) => RedisTarget::Replicas {
                current: *current,
                max: bounds.max,
            },
            (Current::Class(current), Target::NodeType(cache)) => RedisTarget::NodeType {
                ladder: ladder(cache),
                current: Some(current),
            },
            (Current::Nothing, Target::Nothing) => RedisTarget::Nothing,
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
            RedisAction::Resize(ResizeAction::Apply(c)) => Planned::ResizeCache {
                from: c.from,
                to: c.to,
            },
            RedisAction::Resize(ResizeAction::Recommend(c)) => Planned::Recommend {
                of: c.resource,
                from: c.from,
                to: c.to,
            },
            RedisAction::Signal => Planned::Signal,
        });
        (action, decision.reason)
    }

    fn next_size(&self, current: &str) -> Option<String> {
        let Target::NodeType(cache) = &self.target else {
            return None;
        };
        let rung = engine::next_rung(&cache.node_type_ladder, current);
        rung.next().map(str::to_owned)
    }

    fn approved(&self, from: &str, to: &str) -> Result<Planned, String> {
        match &self.target {
            Target::NodeType(cache) if cache.ack_replication_group_ref.is_some() => {
                Ok(Planned::ResizeCache {
                    from: from.into(),
                    to: to.into(),
                })
            }
            Target::NodeType(_) => Err(
                "cacheResize.ackReplicationGroupRef is not set, so Liftoff has no \
                 ReplicationGroup to patch: set it, or resize by hand"
                    .into(),
            ),
            Target::Replicas(..) | Target::Nothing => {
                Err("a redisMemory trigger without cacheResize makes no recommendation".into())
            }
        }
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

    /// The workload's replicas; the ACK `ReplicationGroup`'s node type, else
    /// `cacheResize.currentNodeType`, else the ladder's first rung; or nothing.
    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>> {
        async move {
            match self.target {
                Target::Replicas(target, _) => io.replicas(target).await.map(Current::Replicas),
                Target::NodeType(cache) => match &cache.ack_replication_group_ref {
                    Some(ack) => io.cache_node_type(&ack.name).await.map(Current::Class),
                    None => start_node_type(cache)
                        .map(Current::Class)
                        .ok_or_else(|| "cacheResize.nodeTypeLadder is empty".to_string()),
                },
                Target::Nothing => Ok(Current::Nothing),
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
            match (action, &self.target) {
                (Planned::Scale { from, to }, Target::Replicas(target, _)) => {
                    io.scale(target, *from, *to).await
                }
                (Planned::ResizeCache { from, to }, Target::NodeType(cache)) => {
                    let ack = cache
                        .ack_replication_group_ref
                        .as_ref()
                        .ok_or("a node type change needs cacheResize.ackReplicationGroupRef")?;
                    io.set_cache_node_type(&ack.name, to).await?;
                    Ok(format!(
                        "set ReplicationGroup {} (ElastiCache {}) node type from {from} to {to}",
                        ack.name, cache.replication_group_id
                    ))
                }
                (Planned::Recommend { of, from, to }, Target::NodeType(_)) => Ok(format!(
                    "recommended resizing ElastiCache {of} from {from} to {to} (approval Manual: \
                     a person applies it)"
                )),
                (Planned::Signal, _) => Ok(
                    "signalled high Redis memory (no scaleTargetRef or cacheResize, so nothing \
                     was scaled)"
                        .into(),
                ),
                (other, _) => Err(super::plan::unfit(other, self.as_str())),
            }
        }
        .boxed()
    }
}

/// `cacheResize.currentNodeType`, else the ladder's first rung.
fn start_node_type(cache: &CacheResizePolicy) -> Option<String> {
    cache
        .current_node_type
        .clone()
        .or_else(|| cache.node_type_ladder.first().cloned())
}

/// The replication group's ladder, for the engine.
fn ladder(cache: &CacheResizePolicy) -> Ladder<'_> {
    Ladder {
        resource: &cache.replication_group_id,
        rung: "node type",
        rungs: &cache.node_type_ladder,
        approval: cache.approval,
        ack: cache
            .ack_replication_group_ref
            .as_ref()
            .map(|r| ("ReplicationGroup", r.name.as_str())),
        ack_field: "ackReplicationGroupRef",
    }
}
