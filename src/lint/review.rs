//! What a reviewer would say about a policy the apiserver accepts: each warning names the field,
//! what is risky and what to do. Pure: the policy as written, nothing contacted.

use std::time::Duration;

use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::crd::{Approval, LaunchPolicy};

/// The launch checklist a gate's bound is compared with, by what the gate's name says it checks:
/// (name contains, the checklist's bound, whether the bound is a maximum).
const CHECKLIST: [(&str, f64, bool); 3] = [
    ("error", 0.001, true),
    ("p95", 0.5, true),
    ("login", 0.99, false),
];

/// The warnings for `policy` (`doc` is the same policy as written, to tell a field left to its
/// default from one set on purpose).
pub fn warnings(policy: &LaunchPolicy, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let spec = &policy.spec;
    for (field, query) in queries(policy) {
        if let Err(e) = parse(&query) {
            out.push(format!(
                "{field}: the PromQL does not parse: {}",
                one_line(&e)
            ));
        }
    }
    if let Some(rollout) = &spec.rollout {
        if rollout
            .stages
            .first()
            .is_some_and(|s| s.approval == Approval::Manual)
        {
            out.push(
                "spec.rollout.stages[0].approval: the first stage waits for a Go before anyone \
                 is admitted; the launch plan places the Go after the canary (on stages[1])"
                    .into(),
            );
        }
        if let Some(gates) = &rollout.gates {
            let window = Duration::from(gates.interval)
                .saturating_mul(u32::try_from(gates.failure_threshold).unwrap_or(1));
            for (i, stage) in rollout.stages.iter().enumerate() {
                let Some(bake) = stage.bake.map(Duration::from) else {
                    continue;
                };
                if bake < window {
                    out.push(format!(
                        "spec.rollout.stages[{i}].bake: {} is shorter than the gates' window \
                         ({} checks every {}): the stage cannot end before its gates have \
                         passed, so the bake says less than it seems",
                        stage.bake.map(|b| b.to_string()).unwrap_or_default(),
                        gates.failure_threshold,
                        gates.interval
                    ));
                }
            }
            for (i, check) in gates.checks.iter().enumerate() {
                let field = format!("spec.rollout.gates.checks[{i}]");
                let written = doc.pointer(&format!("/spec/rollout/gates/checks/{i}/onNoData"));
                if written.is_none() && numerator_can_vanish(&check.query) {
                    out.push(format!(
                        "{field}.query ({}): the ratio's numerator can have no series (no \
                         error yet, no pod yet), and then the gate holds the stage (onNoData: \
                         Hold); add `or vector(0)` to the numerator where that means zero, or \
                         say what it means with onNoData",
                        check.name
                    ));
                }
                let name = check.name.to_lowercase();
                for (word, bound, is_max) in CHECKLIST {
                    if !name.contains(word) {
                        continue;
                    }
                    let looser = match is_max {
                        true => check.max.is_some_and(|m| m > bound),
                        false => check.min.is_some_and(|m| m < bound),
                    };
                    if looser {
                        let which = if is_max { "max" } else { "min" };
                        out.push(format!(
                            "{field}.{which} ({}): looser than the launch checklist's {bound}",
                            check.name
                        ));
                    }
                }
            }
        }
    }
    for (i, t) in spec
        .scaling
        .iter()
        .flat_map(|s| s.triggers.iter())
        .enumerate()
    {
        let field = format!("spec.scaling.triggers[{i}]");
        if let Some(r) = &t.replicas
            && r.max <= r.min
        {
            out.push(format!(
                "{field}.replicas ({}): max {} leaves no room above min {}: the trigger can \
                 never scale up",
                t.name, r.max, r.min
            ));
        }
        if let (Some(c), Some(p)) = (&t.consumers, &t.partitions)
            && c.max > p.max
        {
            out.push(format!(
                "{field}.consumers.max ({}): {} is more than partitions.max {}: Liftoff never runs \
                 more consumers than partitions, so at most {} will run",
                t.name, c.max, p.max, p.max
            ));
        }
        let looser = [
            t.cpu
                .as_ref()
                .filter(|c| c.utilization > 70)
                .map(|c| ("cpu.utilization", c.utilization.to_string(), "70")),
            t.kafka_lag
                .as_ref()
                .filter(|k| k.threshold > 50_000)
                .map(|k| ("kafkaLag.threshold", k.threshold.to_string(), "50000")),
            t.database_connections
                .as_ref()
                .filter(|d| d.threshold > 700)
                .map(|d| {
                    (
                        "databaseConnections.threshold",
                        d.threshold.to_string(),
                        "700",
                    )
                }),
            t.redis_memory
                .as_ref()
                .filter(|r| r.threshold > 80)
                .map(|r| ("redisMemory.threshold", r.threshold.to_string(), "80")),
        ];
        for (what, value, plan) in looser.into_iter().flatten() {
            out.push(format!(
                "{field}.{what} ({}): {value} is looser than the launch plan's {plan}",
                t.name
            ));
        }
    }
    out
}

/// Every PromQL query of the policy, with its field.
fn queries(policy: &LaunchPolicy) -> Vec<(String, String)> {
    let spec = &policy.spec;
    let mut out = Vec::new();
    for (i, t) in spec
        .scaling
        .iter()
        .flat_map(|s| s.triggers.iter())
        .enumerate()
    {
        let field = format!("spec.scaling.triggers[{i}]");
        let kinds = [
            ("cpu", t.cpu.as_ref().and_then(|c| c.query.clone())),
            (
                "databaseConnections",
                t.database_connections
                    .as_ref()
                    .and_then(|d| d.query.clone()),
            ),
            (
                "redisMemory",
                t.redis_memory.as_ref().and_then(|r| r.query.clone()),
            ),
        ];
        for (kind, query) in kinds {
            if let Some(q) = query {
                out.push((format!("{field}.{kind}.query"), q));
            }
        }
    }
    let checks = spec
        .rollout
        .iter()
        .flat_map(|r| r.gates.iter())
        .flat_map(|g| &g.checks);
    for (i, c) in checks.enumerate() {
        out.push((
            format!("spec.rollout.gates.checks[{i}].query"),
            c.query.clone(),
        ));
    }
    let metrics = spec.summary.iter().flat_map(|s| &s.metrics);
    for (i, m) in metrics.enumerate() {
        out.push((format!("spec.summary.metrics[{i}].query"), m.query.clone()));
    }
    out
}

/// Whether a query is a ratio whose numerator can come back with no series while the platform
/// is fine: the series counting the events (errors, failures) appear only with the first one,
/// and the numerator has no fallback (`or` with a number or `vector(…)`, `absent…`).
fn numerator_can_vanish(query: &str) -> bool {
    fn ratio_without_fallback(expr: &Expr) -> bool {
        match expr {
            Expr::Binary(b) if b.op.to_string() == "/" => !has_fallback(&b.lhs),
            Expr::Binary(b) => ratio_without_fallback(&b.lhs) || ratio_without_fallback(&b.rhs),
            Expr::Paren(p) => ratio_without_fallback(&p.expr),
            _ => false,
        }
    }
    parse(query).is_ok_and(|expr| ratio_without_fallback(&expr))
}

/// Parses PromQL; a parser panic (a range like `[1e30]`) is a parse error, not a crash.
fn parse(query: &str) -> Result<Expr, String> {
    std::panic::catch_unwind(|| parser::parse(query))
        .unwrap_or_else(|_| Err("a duration or number is out of range".into()))
}

fn has_fallback(expr: &Expr) -> bool {
    match expr {
        Expr::Binary(b) => {
            let or = b.op.to_string() == "or";
            (or && is_constant(&b.rhs)) || has_fallback(&b.lhs) || has_fallback(&b.rhs)
        }
        Expr::Paren(p) => has_fallback(&p.expr),
        Expr::NumberLiteral(_) => true,
        Expr::Call(c) => c.func.name.starts_with("absent") || c.func.name == "vector",
        _ => false,
    }
}

fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_constant(&p.expr),
        Expr::Call(c) => c.func.name == "vector",
        _ => false,
    }
}

fn one_line(e: &str) -> String {
    e.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lint(spec: Value) -> Vec<String> {
        let doc = json!({"apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
                         "metadata": {"name": "p", "namespace": "emr"}, "spec": spec});
        let policy: LaunchPolicy = serde_json::from_value(doc.clone()).unwrap();
        warnings(&policy, &doc)
    }

    #[test]
    fn a_careful_policy_gets_no_warning() {
        let w = lint(json!({
            "prometheus": {"address": "http://prometheus:9090"},
            "scaling": {"triggers": [{"name": "api-cpu", "cpu": {},
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "replicas": {"min": 3, "max": 40}}]},
            "rollout": {"stages": [{"name": "beta", "users": 100, "bake": "2h"},
                                   {"name": "all", "users": "All", "approval": "Manual"}],
                        "gates": {"interval": "1m", "failureThreshold": 3, "checks": [
                            {"name": "error-rate", "max": 0.001,
                             "query": "(sum(rate(errors_total[5m])) or vector(0)) / sum(rate(requests_total[5m]))"},
                            {"name": "p95", "max": 0.5, "onNoData": "Hold",
                             "query": "histogram_quantile(0.95, sum by (le) (rate(latency_bucket[5m])))"}]}}
        }));
        assert_eq!(w, Vec::<String>::new());
    }

    #[test]
    fn a_query_that_crashes_the_parser_is_a_warning() {
        let w = lint(json!({
            "prometheus": {"address": "http://prometheus:9090"},
            "rollout": {"gates": {"checks": [{"name": "x", "max": 1, "query": "rate(x[1e30])"}]}}
        }));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("the PromQL does not parse"));
    }

    #[test]
    fn a_reviewer_names_each_risk_and_its_field() {
        let w = lint(json!({
            "prometheus": {"address": "http://prometheus:9090"},
            "scaling": {"triggers": [{"name": "api-cpu", "cpu": {"utilization": 90},
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "replicas": {"min": 3, "max": 3}},
                {"name": "lag", "kafkaLag": {"bootstrapServers": "k:9092", "topic": "t",
                                             "consumerGroup": "g"},
                 "partitions": {"max": 12},
                 "consumers": {"scaleTargetRef": {"kind": "Deployment", "name": "w"},
                               "lagPerReplica": 1000, "max": 20}}]},
            "rollout": {"stages": [{"name": "beta", "users": 100, "bake": "1m", "approval": "Manual"},
                                   {"name": "all", "users": "All"}],
                        "gates": {"interval": "1m", "failureThreshold": 3, "checks": [
                            {"name": "error-rate", "max": 0.05, "query": "sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))"},
                            {"name": "p95", "max": 0.5, "query": "histogram_quantile(0.95, sum by (le) (rate(x[5m]))"}]}}
        }))
        .join("\n");
        for part in [
            "spec.rollout.gates.checks[1].query: the PromQL does not parse",
            "spec.rollout.stages[0].approval: the first stage waits for a Go",
            "spec.rollout.stages[0].bake: 1m is shorter than the gates' window (3 checks every 1m)",
            "spec.rollout.gates.checks[0].query (error-rate): the ratio's numerator can have no series",
            "spec.rollout.gates.checks[0].max (error-rate): looser than the launch checklist's 0.001",
            "spec.scaling.triggers[0].replicas (api-cpu): max 3 leaves no room above min 3",
            "spec.scaling.triggers[0].cpu.utilization (api-cpu): 90 is looser than the launch plan's 70",
            "spec.scaling.triggers[1].consumers.max (lag): 20 is more than partitions.max 12: \
             Liftoff never runs more consumers than partitions, so at most 12 will run",
        ] {
            assert!(w.contains(part), "{part:?} missing from\n{w}");
        }
    }
}
