//! Publishing the current cohort to the application: a ConfigMap with stable keys, and an
//! OpenFeature flagd flag definition whose `fractional` targeting admits the cohort.
//!
//! Both are written with server-side apply under Liftoff's field manager
//! ([`crate::actuators::configmap`]), from the rollout state in status only (never from a decision
//! not yet recorded), so publishing again is harmless and a restart re-publishes exactly what
//! status says. Both are owned by the policy: deleting the policy deletes them.
//!
//! **flagd precision.** `fractional` hashes each `targetingKey` into a bucket; weights
//! `users : population − users` admit each user with probability users ÷ population. With `P`
//! distinct users the admitted count is binomial: mean `users`, standard deviation
//! `√(users × (1 − users ÷ population))` — e.g. 100 of 20,000 admits 100 ± 20 (2σ). A user's
//! bucket is stable, so users admitted at 100 stay admitted at 500. For an exact cap, have the
//! application read `maxUsers` from the ConfigMap and admit by its own allowlist.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::{
    actuators::configmap,
    crd::{CohortSpec, FlagdCohort, LaunchPolicy, RolloutState, Users},
};

/// Key of the flag definition in the flagd ConfigMap.
pub const FLAGD_KEY: &str = "flags.flagd.json";

/// The cohort ConfigMap's data: `maxUsers` (a number or `All`), `stage`, `stageIndex`, `phase`
/// and `updatedAt` (when the current stage was entered).
pub fn cohort_data(state: &RolloutState) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("maxUsers".into(), state.users.to_string()),
        ("stage".into(), state.stage_name.clone().unwrap_or_default()),
        (
            "stageIndex".into(),
            state.stage.map(|s| s.to_string()).unwrap_or_default(),
        ),
        ("phase".into(), state.phase.as_str().into()),
        (
            "updatedAt".into(),
            state
                .stage_started_at
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        ),
    ])
}

/// The flagd flag definition admitting `users` of `population`.
pub fn flagd_definition(flag: &FlagdCohort, users: Users) -> Value {
    let population = flag.population.max(1) as u64;
    let (default, targeting) = match users {
        Users::All => ("on", None),
        Users::Count(0) => ("off", None),
        Users::Count(n) if n >= population => ("on", None),
        Users::Count(n) => (
            "off",
            Some(json!({"fractional": [["on", n], ["off", population - n]]})),
        ),
    };
    let mut definition = json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": default,
    });
    if let Some(targeting) = targeting {
        definition["targeting"] = targeting;
    }
    json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": { flag.flag_key.clone(): definition },
    })
}

/// Applies both ConfigMaps of `policy`'s cohort `spec` from `state`.
pub async fn publish(
    client: &Client,
    policy: &LaunchPolicy,
    spec: &CohortSpec,
    state: &RolloutState,
) -> Result<(), String> {
    let namespace = policy.namespace().unwrap_or_default();
    let owner = configmap::owned_by(policy);
    let apply = |name: &str, data| {
        let name = name.to_string();
        let (namespace, owner) = (namespace.clone(), owner.clone());
        async move {
            configmap::apply(client, &namespace, &name, owner.as_ref(), data)
                .await
                .map_err(|e| format!("cannot publish the cohort to ConfigMap {name}: {e}"))
        }
    };
    if let Some(cm) = &spec.config_map {
        apply(&cm.name, cohort_data(state)).await?;
    }
    if let Some(flag) = &spec.flagd {
        let text = serde_json::to_string_pretty(&flagd_definition(flag, state.users))
            .map_err(|e| e.to_string())?;
        apply(&flag.config_map, BTreeMap::from([(FLAGD_KEY.into(), text)])).await?;
    }
    Ok(())
}

/// Whether every ConfigMap of `spec` in `namespace` already holds what [`publish`] would write
/// for `state`, i.e. the application sees the stage that status records.
pub async fn is_published(
    client: &Client,
    namespace: &str,
    spec: &CohortSpec,
    state: &RolloutState,
) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    if let Some(cm) = &spec.config_map {
        let data = api.get_opt(&cm.name).await?.and_then(|c| c.data);
        if data != Some(cohort_data(state)) {
            return Ok(false);
        }
    }
    if let Some(flag) = &spec.flagd {
        let data = api.get_opt(&flag.config_map).await?.and_then(|c| c.data);
        let published = data
            .as_ref()
            .and_then(|d| d.get(FLAGD_KEY))
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        if published != Some(flagd_definition(flag, state.users)) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Phase;

    fn flag() -> FlagdCohort {
        FlagdCohort {
            config_map: "flags".into(),
            flag_key: "new-platform".into(),
            population: 20_000,
        }
    }

    #[test]
    fn the_flag_admits_users_out_of_population_and_everyone_at_all() {
        let some = flagd_definition(&flag(), Users::Count(500));
        let f = &some["flags"]["new-platform"];
        assert_eq!(f["defaultVariant"], "off");
        assert_eq!(
            f["targeting"]["fractional"],
            json!([["on", 500], ["off", 19_500]])
        );
        let all = flagd_definition(&flag(), Users::All);
        assert_eq!(all["flags"]["new-platform"]["defaultVariant"], "on");
        assert!(all["flags"]["new-platform"].get("targeting").is_none());
        let none = flagd_definition(&flag(), Users::Count(0));
        assert_eq!(none["flags"]["new-platform"]["defaultVariant"], "off");
        assert!(none["flags"]["new-platform"].get("targeting").is_none());
    }

    #[test]
    fn the_configmap_has_stable_keys() {
        let state = RolloutState {
            phase: Phase::Baking,
            stage: Some(1),
            stage_name: Some("gradual".into()),
            users: Users::Count(500),
            ..Default::default()
        };
        let data = cohort_data(&state);
        assert_eq!(data["maxUsers"], "500");
        assert_eq!(data["stage"], "gradual");
        assert_eq!(data["stageIndex"], "1");
        assert_eq!(data["phase"], "Baking");
        assert_eq!(data.len(), 5);
    }
}
