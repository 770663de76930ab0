//! The actions Liftoff takes on the world. Each one sets a target value (never a step), so an
//! action repeated after a crash changes nothing the second time.
//!
//! - [`configmap`]: the ConfigMaps that publish the rollout's cohort, owned by their policy;
//! - [`scale`]: the `/scale` subresource of Deployments, StatefulSets and any scalable resource;
//! - [`objects`]: patches of other operators' objects: an ACK `DBInstance`'s class, a Strimzi
//!   `KafkaTopic`'s partitions.
//!
//! Kafka partitions through the admin API are in [`crate::sources::kafka`], next to the client
//! that reads the lag.

pub mod configmap;
pub mod objects;
pub mod scale;
