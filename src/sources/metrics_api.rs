//! CPU utilization of a workload's pods from the Kubernetes metrics API (`metrics.k8s.io`,
//! served by metrics-server), with the HorizontalPodAutoscaler's semantics.
//!
//! [`cpu_utilization`] lists the pods matching a label selector and their `PodMetrics`, then
//! returns `Σ CPU usage / Σ CPU requests × 100` over the pods that count:
//!
//! - pods that are not **Ready**, are terminating, or have finished (Succeeded/Failed) are
//!   skipped, like pods the metrics API has no sample for yet;
//! - every container of a counted pod must request CPU: a missing request is an error naming
//!   the pod and container (utilization relative to nothing is meaningless; the HPA refuses it
//!   too). Init containers are not counted;
//! - no matching pods, no ready pods, or no samples for any ready pod are errors, never 0 %.
//!
//! The metrics API is read as untyped `DynamicObject`s (`metrics.k8s.io/v1beta1`, kind
//! `PodMetrics`), so no extra crate is needed. Where it is not served, the error says so and
//! suggests a PromQL query instead. [`utilization`] and [`parse_cpu`] are the pure halves.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::Selector;
use std::collections::BTreeMap;

/// Why the utilization could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsApiError {
    #[error("the pod selector is not valid: {reason}")]
    InvalidSelector { reason: String },
    #[error("could not list {what} in namespace {namespace}: {reason}")]
    Api {
        what: &'static str,
        namespace: String,
        reason: String,
    },
    #[error(
        "the metrics API (metrics.k8s.io/v1beta1) is not served in this cluster; install metrics-server or use a PromQL query for CPU"
    )]
    NotServed,
    #[error("no pods match {selector} in namespace {namespace}")]
    NoPods { namespace: String, selector: String },
    #[error("none of the {count} pods matching {selector} is ready")]
    NoReadyPods { count: usize, selector: String },
    #[error("the metrics API has no CPU usage yet for the ready pods matching {selector}")]
    NoSamples { selector: String },
    #[error(
        "container {container} of pod {pod} has no CPU request; CPU utilization is measured against requests"
    )]
    MissingRequest { pod: String, container: String },
    #[error("pod {pod} reports a CPU quantity that cannot be read: {quantity:?}")]
    InvalidQuantity { pod: String, quantity: String },
}

/// One pod as the calculation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodCpu {
    pub name: String,
    /// Ready, not terminating, not finished.
    pub counted: bool,
    /// Each container's CPU request in cores (`None`: the container requests no CPU).
    pub requests: Vec<(String, Option<f64>)>,
    /// The pod's CPU usage in cores from the metrics API (`None`: no sample yet).
    pub usage: Option<f64>,
}

/// CPU usage of the matching ready pods as a percentage of their requests.
pub async fn cpu_utilization(
    client: &kube::Client,
    namespace: &str,
    selector: &LabelSelector,
) -> Result<f64, MetricsApiError> {
    let selector = Selector::try_from(selector.clone())
        .map_err(|e| MetricsApiError::InvalidSelector { reason: e.0 })?;
    let shown = selector.to_string();
    let params = ListParams::default().labels_from(&selector);
    let api_error = |what, e: kube::Error| MetricsApiError::Api {
        what,
        namespace: namespace.to_string(),
        reason: e.to_string(),
    };
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(|e| api_error("pods", e))?;
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "pods");
    let metrics = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .list(&params)
        .await
        .map_err(|e| match &e {
            kube::Error::Api(status) if status.code == 404 => MetricsApiError::NotServed,
            _ => api_error("pod metrics", e),
        })?;
    let mut usage = BTreeMap::new();
    for m in &metrics.items {
        let name = m.metadata.name.clone().unwrap_or_default();
        usage.insert(name.clone(), pod_usage(&name, &m.data)?);
    }
    let pods: Vec<PodCpu> = pods
        .items
        .iter()
        .map(|pod| pod_cpu(pod, &usage))
        .collect::<Result<_, _>>()?;
    if pods.is_empty() {
        return Err(MetricsApiError::NoPods {
            namespace: namespace.to_string(),
            selector: shown,
        });
    }
    utilization(&pods, &shown)
}

/// Σ usage / Σ requests × 100 over counted pods with a sample (see the module docs).
pub fn utilization(pods: &[PodCpu], selector: &str) -> Result<f64, MetricsApiError> {
    let counted: Vec<&PodCpu> = pods.iter().filter(|p| p.counted).collect();
    if counted.is_empty() {
        return Err(MetricsApiError::NoReadyPods {
            count: pods.len(),
            selector: selector.to_string(),
        });
    }
    let (mut used, mut requested) = (0.0, 0.0);
    for pod in counted.iter().filter(|p| p.usage.is_some()) {
        for (container, request) in &pod.requests {
            match request {
                Some(cores) if *cores > 0.0 => requested += cores,
                _ => {
                    return Err(MetricsApiError::MissingRequest {
                        pod: pod.name.clone(),
                        container: container.clone(),
                    });
                }
            }
        }
        used += pod.usage.unwrap_or_default();
    }
    if requested == 0.0 {
        return Err(MetricsApiError::NoSamples {
            selector: selector.to_string(),
        });
    }
    Ok(used / requested * 100.0)
}

/// A CPU quantity (`250m`, `1`, `1.5`, `12345678n`, `2k`) in cores.
pub fn parse_cpu(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * scale)
}

fn pod_usage(pod: &str, data: &serde_json::Value) -> Result<f64, MetricsApiError> {
    let containers = data["containers"].as_array().cloned().unwrap_or_default();
    containers.iter().try_fold(0.0, |sum, c| {
        let quantity = c["usage"]["cpu"].as_str().unwrap_or("0");
        parse_cpu(quantity).map(|cores| sum + cores).ok_or_else(|| {
            MetricsApiError::InvalidQuantity {
                pod: pod.to_string(),
                quantity: quantity.to_string(),
            }
        })
    })
}

fn pod_cpu(pod: &Pod, usage: &BTreeMap<String, f64>) -> Result<PodCpu, MetricsApiError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let finished = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let mut requests = Vec::new();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let request = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"));
        let cores = match request {
            Some(q) => Some(
                parse_cpu(&q.0).ok_or_else(|| MetricsApiError::InvalidQuantity {
                    pod: name.clone(),
                    quantity: q.0.clone(),
                })?,
            ),
            None => None,
        };
        requests.push((c.name.clone(), cores));
    }
    Ok(PodCpu {
        usage: usage.get(&name).copied(),
        counted: ready && !finished && !terminating,
        requests,
        name,
    })
}

#[cfg(test)]
#[path = "metrics_api_tests.rs"]
mod tests;
