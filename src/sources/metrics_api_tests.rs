//! The HPA-style maths on plain values, and pod/PodMetrics decoding (no server).

use super::*;

fn pod(name: &str, counted: bool, requests: &[Option<f64>], usage: Option<f64>) -> PodCpu {
    PodCpu {
        name: name.into(),
        counted,
        requests: requests
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("c{i}"), *r))
            .collect(),
        usage,
    }
}

#[test]
fn utilization_is_usage_over_requests_of_ready_pods() {
    let pods = [
        pod("a", true, &[Some(0.5), Some(0.5)], Some(0.8)),
        pod("b", true, &[Some(1.0)], Some(0.6)),
        // Not ready: neither its usage nor its request counts.
        pod("c", false, &[Some(1.0)], Some(5.0)),
    ];
    let percent = utilization(&pods, "app=api").unwrap();
    assert!((percent - 70.0).abs() < 1e-9, "{percent}");
}

#[test]
fn ready_pods_without_a_sample_are_left_out() {
    let pods = [
        pod("a", true, &[Some(1.0)], Some(0.9)),
        pod("new", true, &[None], None),
    ];
    assert!((utilization(&pods, "s").unwrap() - 90.0).abs() < 1e-9);
}

#[test]
fn a_container_without_request_is_an_error_naming_it() {
    let pods = [pod("api-7d9", true, &[Some(1.0), None], Some(0.5))];
    let err = utilization(&pods, "app=api").unwrap_err();
    assert_eq!(
        err.to_string(),
        "container c1 of pod api-7d9 has no CPU request; CPU utilization is measured against requests"
    );
}

#[test]
fn no_ready_pods_or_no_samples_are_errors_not_zero() {
    let pods = [pod("a", false, &[Some(1.0)], Some(0.1))];
    assert_eq!(
        utilization(&pods, "app=api"),
        Err(MetricsApiError::NoReadyPods {
            count: 1,
            selector: "app=api".into()
        })
    );
    let pods = [pod("a", true, &[Some(1.0)], None)];
    assert!(matches!(
        utilization(&pods, "app=api"),
        Err(MetricsApiError::NoSamples { .. })
    ));
}

#[test]
fn cpu_quantities_parse_in_cores() {
    for (text, cores) in [
        ("250m", 0.25),
        ("1", 1.0),
        ("1.5", 1.5),
        ("12345678n", 0.012_345_678),
        ("500u", 0.0005),
        ("2k", 2000.0),
        ("1e3", 1000.0),
    ] {
        let parsed = parse_cpu(text).unwrap_or_else(|| panic!("{text}"));
        assert!((parsed - cores).abs() < 1e-12, "{text}: {parsed}");
    }
    for bad in ["", "m", "abc", "-1", "1x", "NaN"] {
        assert_eq!(parse_cpu(bad), None, "{bad}");
    }
}

#[test]
fn pods_and_pod_metrics_decode_from_api_json() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "api-0"},
        "spec": {"containers": [
            {"name": "app", "resources": {"requests": {"cpu": "500m"}}},
            {"name": "sidecar", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
        ]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    let metrics = serde_json::json!({"containers": [
        {"name": "app", "usage": {"cpu": "300000000n", "memory": "10Mi"}},
        {"name": "sidecar", "usage": {"cpu": "20m"}}
    ]});
    let usage = BTreeMap::from([("api-0".to_string(), pod_usage("api-0", &metrics).unwrap())]);
    let cpu = pod_cpu(&pod, &usage).unwrap();
    assert!(cpu.counted);
    assert_eq!(cpu.requests.len(), 2);
    let percent = utilization(&[cpu], "s").unwrap();
    assert!((percent - 320.0 / 600.0 * 100.0).abs() < 1e-9, "{percent}");
}

#[test]
fn terminating_and_finished_pods_are_not_counted() {
    let mut pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "deletionTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    assert!(!pod_cpu(&pod, &BTreeMap::new()).unwrap().counted);
    pod.metadata.deletion_timestamp = None;
    assert!(pod_cpu(&pod, &BTreeMap::new()).unwrap().counted);
    pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert!(!pod_cpu(&pod, &BTreeMap::new()).unwrap().counted);
}
