//! `cpu`: CPU utilisation of a workload's ready pods → its replicas, with the
//! HorizontalPodAutoscaler's maths ([`engine::decide_replicas`]).

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

use super::{
    kind::{Deciding, Kind, SecretUse, Unit},
    plan::{Current, Planned},
    platform::Platform,
};
use crate::{
    crd::{CpuTrigger, ReplicaBounds, ScaleTargetRef, Trigger},
    engine::scaling::{self as engine, CpuInput, MAX_PERCENT, Sample, ScalingHistory, short},
};

pub struct Cpu<'a> {
    trigger: &'a Trigger,
    spec: &'a CpuTrigger,
    target: &'a ScaleTargetRef,
    replicas: &'a ReplicaBounds,
}

impl<'a> Cpu<'a> {
    pub(super) fn new(trigger: &'a Trigger, spec: &'a CpuTrigger) -> Result<Self, &'static str> {
        match (&trigger.scale_target_ref, &trigger.replicas) {
            (Some(target), Some(replicas)) => Ok(Cpu {
                trigger,
                spec,
                target,
                replicas,
            }),
            _ => Err(
                "a cpu trigger needs scaleTargetRef (the workload to scale) and replicas (its min and max)",
            ),
        }
    }
}

impl Kind for Cpu<'_> {
    fn trigger(&self) -> &Trigger {
        self.trigger
    }

    fn as_str(&self) -> &'static str {
        "cpu"
    }

    fn threshold(&self) -> f64 {
        f64::from(self.spec.utilization)
    }

    fn unit(&self) -> Unit {
        Unit::Percent
    }

    /// None: `behavior` (stabilization windows, rate policies) paces a cpu trigger instead.
    fn default_cooldown(&self) -> Duration {
        Duration::ZERO
    }

    fn plausible_max(&self) -> (f64, &'static str) {
        (MAX_PERCENT, "CPU utilisation %")
    }

    /// A utilisation implying more replicas than a workload can have
    /// (`current × utilisation / target > 2^31 - 1`) is not a measurement.
    fn implausible(&self, value: f64, current: Option<&Current>) -> Option<String> {
        let Some(Current::Replicas(current)) = current else {
            return None;
        };
        let implied = f64::from(*current) * value / self.threshold();
        (implied > f64::from(i32::MAX)).then(|| {
            format!(
                "CPU utilisation % {} implies {} replicas, more than a workload can have: not a measurement",
                short(value),
                short(implied.ceil())
            )
        })
    }

    /// Above the target by more than the 10 % tolerance, where the HPA maths starts adding replicas.
    fn is_active(&self, value: f64) -> bool {
        let target = self.threshold();
        target > 0.0 && value > target && !engine::within_tolerance(value, target)
    }

    fn query(&self) -> Option<&str> {
        self.spec.query.as_deref()
    }

    fn assumed_start(&self) -> Option<Current> {
        Some(Current::Replicas(self.replicas.min))
    }

    fn secrets(&self) -> Vec<SecretUse<'_>> {
        Vec::new()
    }

    fn decide(&self, d: Deciding<'_>, history: &mut ScalingHistory) -> (Option<Planned>, String) {
        let Current::Replicas(current) = d.current else {
            return super::plan::misfit(d.current);
        };
        let input = CpuInput {
            utilization: d.sample,
            target: self.spec.utilization,
            current_replicas: *current,
            bounds: self.replicas,
            behavior: self.trigger.behavior.as_deref(),
        };
        let decision = engine::decide_replicas(&input, history, d.now);
        let action = decision.action.map(|c| Planned::Scale {
            from: c.from,
            to: c.to,
        });
        (action, decision.reason)
    }

    /// `cpu.query` from Prometheus, else the metrics API over the target's pods.
    fn sample<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Sample> {
        async move {
            match &self.spec.query {
                Some(query) => io.prometheus_query(query).await,
                None => io.metrics_api_cpu(self.target).await,
            }
        }
        .boxed()
    }

    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>> {
        async move { io.replicas(self.target).await.map(Current::Replicas) }.boxed()
    }

    fn act<'s>(
        &'s self,
        io: &'s Platform<'_>,
        action: &'s Planned,
    ) -> BoxFuture<'s, Result<String, String>> {
        async move {
            match action {
                Planned::Scale { from, to } => io.scale(self.target, *from, *to).await,
                other => Err(super::plan::unfit(other, self.as_str())),
            }
        }
        .boxed()
    }
}
