//! `kafkaLag`: a consumer group's total lag on a topic → more partitions, never fewer
//! ([`engine::decide_partitions`]), through the Kafka admin API or a Strimzi `KafkaTopic`; with
//! `consumers`, the consumer workload's replicas follow the lag within the partition count,
//! the partitions raised first when the consumers need more ([`engine::decide_consumers`]).

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

use super::{
    kind::{AddressUse, Deciding, Kind, SecretUse, Unit},
    plan::{Current, Planned},
    platform::Platform,
};
use crate::{
    crd::{ConsumerScaling, KafkaLagTrigger, LocalObjectRef, PartitionPolicy, Trigger},
    engine::scaling::{
        self as engine, ConsumerInput, ConsumerStep, KAFKA_LAG_COOLDOWN, MAX_LAG, PartitionInput,
        Sample, ScalingHistory,
    },
    sources::address::{Destination, kafka_bootstrap},
};

pub struct KafkaLag<'a> {
    trigger: &'a Trigger,
    spec: &'a KafkaLagTrigger,
    partitions: &'a PartitionPolicy,
    consumers: Option<&'a ConsumerScaling>,
}

impl<'a> KafkaLag<'a> {
    pub(super) fn new(
        trigger: &'a Trigger,
        spec: &'a KafkaLagTrigger,
    ) -> Result<Self, &'static str> {
        let partitions = trigger
            .partitions
            .as_ref()
            .ok_or("a kafkaLag trigger needs partitions (at least partitions.max)")?;
        Ok(KafkaLag {
            trigger,
            spec,
            partitions,
            consumers: trigger.consumers.as_deref(),
        })
    }

    fn strimzi_topic(&self) -> Option<&'a LocalObjectRef> {
        self.partitions.strimzi_kafka_topic_ref.as_ref()
    }
}

impl Kind for KafkaLag<'_> {
    fn trigger(&self) -> &Trigger {
        self.trigger
    }

    fn as_str(&self) -> &'static str {
        "kafkaLag"
    }

    fn threshold(&self) -> f64 {
        self.spec.threshold as f64
    }

    fn unit(&self) -> Unit {
        Unit::Count
    }

    fn default_cooldown(&self) -> Duration {
        KAFKA_LAG_COOLDOWN
    }

    fn plausible_max(&self) -> (f64, &'static str) {
        (MAX_LAG, "Kafka lag")
    }

    fn assumed_start(&self) -> Option<Current> {
        None
    }

    fn secrets(&self) -> Vec<SecretUse<'_>> {
        // A LaunchSource's Secret (with its own namespace) is the platform team's.
        self.spec
            .auth_secret_ref
            .iter()
            .filter(|s| s.namespace.is_none())
            .map(|s| SecretUse {
                field: "kafkaLag.authSecretRef",
                name: &s.name,
                key: None,
            })
            .collect()
    }

    fn addresses(&self) -> Vec<AddressUse<'_>> {
        kafka_bootstrap(&self.spec.bootstrap_servers)
            .into_iter()
            .map(|(host, port)| AddressUse {
                field: match self.spec.source_ref {
                    Some(_) => "kafkaLag.sourceRef",
                    None => "kafkaLag.bootstrapServers",
                },
                destination: Destination::Kafka,
                host,
                port,
            })
            .collect()
    }

    fn decide(&self, d: Deciding<'_>, _: &mut ScalingHistory) -> (Option<Planned>, String) {
        let current = match (d.current, self.consumers) {
            (Current::Partitions(current), None) => current,
            (
                Current::Consumed {
                    partitions,
                    consumers: replicas,
                },
                Some(consumers),
            ) => {
                let input = ConsumerInput {
                    lag: d.sample,
                    threshold: self.spec.threshold,
                    partitions: (*partitions, self.partitions.max),
                    consumers: *replicas,
                    lag_per_replica: consumers.lag_per_replica,
                    bounds: (consumers.min, consumers.max),
                    cooldown: self.trigger.cooldown,
                    last_action_at: d.last_action_at,
                };
                let decision = engine::decide_consumers(&input, d.now);
                let action = decision.action.map(|step| match step {
                    ConsumerStep::Partitions(c) => Planned::Partitions {
                        from: c.from,
                        to: c.to,
                    },
                    ConsumerStep::Consumers(c) => Planned::Scale {
                        from: c.from,
                        to: c.to,
                    },
                });
                return (action, decision.reason);
            }
            (current, _) => return super::plan::misfit(current),
        };
        let input = PartitionInput {
            lag: d.sample,
            threshold: self.spec.threshold,
            current_partitions: *current,
            max_partitions: self.partitions.max,
            cooldown: self.trigger.cooldown,
            last_action_at: d.last_action_at,
        };
        let decision = engine::decide_partitions(&input, d.now);
        let action = decision.action.map(|c| Planned::Partitions {
            from: c.from,
            to: c.to,
        });
        (action, decision.reason)
    }

    fn sample<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Sample> {
        io.kafka_lag(self.spec).boxed()
    }

    /// The `KafkaTopic`'s `spec.partitions` when Strimzi manages the topic, else the brokers';
    /// and the consumer workload's replicas.
    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>> {
        async move {
            let count = match self.strimzi_topic() {
                Some(topic) => io.strimzi_partitions(&topic.name).await?,
                None => io.kafka_partitions(self.spec).await?,
            };
            match self.consumers {
                None => Ok(Current::Partitions(count)),
                Some(consumers) => Ok(Current::Consumed {
                    partitions: count,
                    consumers: io.replicas(&consumers.scale_target_ref).await?,
                }),
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
            match (action, self.consumers) {
                (Planned::Partitions { from, to }, _) => match self.strimzi_topic() {
                    Some(topic) => io.set_strimzi_partitions(&topic.name, *from, *to).await,
                    None => io.add_partitions(self.spec, *to).await,
                },
                (Planned::Scale { from, to }, Some(consumers)) => {
                    io.scale(&consumers.scale_target_ref, *from, *to).await
                }
                (other, _) => Err(super::plan::unfit(other, self.as_str())),
            }
        }
        .boxed()
    }
}
