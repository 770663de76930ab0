//! A Deployment's CPU as a test drives it, published for a real Prometheus to scrape.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use liftoff_testenv::MetricsExporter;
use tokio::task::JoinHandle;

/// Total demand in "percent of one pod's request": the exporter publishes
/// `cpu_utilization{app="<deployment>",namespace="<ns>"}` = `demand ÷ replicas`, re-read every
/// 100 ms, as a real Deployment's utilisation falls when pods are added. (A fixed utilisation
/// would ask for more pods forever.) Publishing stops when the last clone is dropped.
#[derive(Clone)]
pub struct Load {
    demand: Arc<AtomicU64>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Load {
    pub fn start(
        exporter: Arc<MetricsExporter>,
        client: Client,
        ns: &str,
        deployment: &str,
        demand: f64,
    ) -> Load {
        let shared = Arc::new(AtomicU64::new(demand.to_bits()));
        let (ns, deployment, level) = (ns.to_owned(), deployment.to_owned(), shared.clone());
        let task = tokio::spawn(async move {
            let labels = [("app", deployment.as_str()), ("namespace", ns.as_str())];
            loop {
                // While the apiserver is unreachable (a chaos test restarts it), the last
                // published utilisation stays, as a real pod's would.
                let Ok(scale) = Api::<Deployment>::namespaced(client.clone(), &ns)
                    .get_scale(&deployment)
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(1);
                let demand = f64::from_bits(level.load(Ordering::SeqCst));
                exporter.set("cpu_utilization", &labels, demand / f64::from(replicas));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Load {
            demand: shared,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    pub fn demand(&self) -> f64 {
        f64::from_bits(self.demand.load(Ordering::SeqCst))
    }

    /// Sets the total demand: e.g. 280 makes 2 replicas run at 140 %, 4 replicas at 70 %.
    pub fn set(&self, demand: f64) {
        self.demand.store(demand.to_bits(), Ordering::SeqCst);
    }
}
