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

/// A Kubernetes API error in one line for status, Events and the war room: the apiserver's own
/// message and code (`HTTP 422: … denied request: …`), not the client's debug dump.
pub fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("HTTP {}: {}", status.code, status.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_api_error_reads_as_the_apiservers_message() {
        let status = kube::core::Status::failure("the api may run at most 3 replicas", "Invalid")
            .with_code(422);
        let e = kube::Error::Api(Box::new(status));
        assert_eq!(
            super::api_reason(&e),
            "HTTP 422: the api may run at most 3 replicas"
        );
    }
}
