//! The actions Liftoff takes on the world. Each one sets a target value (never a step), so an
//! action repeated after a crash changes nothing the second time.
//!
//! - [`configmap`]: the ConfigMaps that publish the rollout's cohort, owned by their policy;
//! - [`scale`]: the `/scale` subresource of Deployments, StatefulSets and any scalable resource;
//! - [`kafka`]: a Kafka topic's partitions, through the admin API;
//! - [`objects`]: patches of other operators' objects: an ACK `DBInstance`'s class, a Strimzi
//!   `KafkaTopic`'s partitions.

pub mod configmap;
pub mod kafka;
pub mod objects;
pub mod scale;
