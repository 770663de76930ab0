//! Liftoff: a Kubernetes operator that scales a product launch on triggers and runs its staged rollout.

pub mod actuators;
pub mod apiserver;
pub mod conditions;
pub mod console;
pub mod controller;
pub mod crd;
pub mod docs;
pub mod engine;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod leader;
pub mod lint;
pub mod metrics;
pub mod rollout_metrics;
pub mod simulate;
pub mod sources;
pub mod telemetry;
pub mod trigger_metrics;
pub mod triggers;

/// Field manager used for every server-side apply Liftoff sends.
pub const FIELD_MANAGER: &str = "liftoff";
