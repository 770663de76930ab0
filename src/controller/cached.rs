//! What the policy cache keeps of each LaunchPolicy: its metadata, an outline of what scans of
//! the whole cache read, and its spec and status as deflated JSON, decoded again by each
//! reconcile.
//!
//! At 10,000 policies the cache is most of the operator's memory. A whole launch (4 triggers,
//! 12 gates, notifications, the status of each) took ~16 KiB as Rust values; its spec packs to
//! 2.2 KiB, and decoding it again costs a reconcile tens of microseconds (docs/benchmarks.md).
//! A policy that cannot be read is kept as its metadata and the error, so it is reported on
//! itself and stops nothing else.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Resource,
    core::{DeserializeGuard, NamespaceResourceScope, error_boundary::InvalidObject},
};
use miniz_oxide::{deflate::compress_to_vec, inflate::decompress_to_vec_with_limit};
use serde::{Deserialize, Deserializer, Serialize};

use crate::crd::{LaunchPolicy, LaunchPolicySpec, LaunchPolicyStatus, ScaleTargetRef};

/// Deflate's fastest level: about 40 % of a whole launch's JSON in ~30 µs; the default level
/// saves under a tenth more for several times the time, spent again at every status write.
const LEVEL: u8 = 1;
/// No stored object comes near it (the apiserver refuses requests over 3 MiB); it bounds what a
/// corrupt body could make the decoder allocate.
const MAX_JSON: usize = 16 << 20;

/// A LaunchPolicy as the cache keeps it (see the module's doc).
#[derive(Clone, Debug)]
pub struct CachedPolicy {
    /// The object's metadata, as [`super::slim`] leaves it.
    pub metadata: ObjectMeta,
    content: Content,
}

#[derive(Clone, Debug)]
enum Content {
    /// `{"spec": …, "status": …}` as JSON, deflated.
    Readable { body: Box<[u8]>, outline: Outline },
    /// Why the object is not a LaunchPolicy this version can read.
    Unreadable(String),
}

/// What scans of the whole cache read (which policies a workload or a LaunchSource event
/// concerns, who holds a workload), taken from the spec when the object arrives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outline {
    /// The workloads the triggers scale, in spec order, each with its trigger's name.
    pub scales: Box<[(String, ScaleTargetRef)]>,
    /// Whether every trigger has a kind; a policy whose triggers do not (InvalidSpec) acts on
    /// nothing.
    pub acts: bool,
    /// The LaunchSources the spec names.
    pub sources: Box<[String]>,
}

impl Outline {
    fn of(spec: &LaunchPolicySpec) -> Self {
        let triggers = spec
            .scaling
            .as_ref()
            .map(|s| s.triggers.as_slice())
            .unwrap_or_default();
        Outline {
            scales: triggers
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.workload()?.clone())))
                .collect(),
            acts: crate::triggers::kinds(triggers).is_ok(),
            sources: super::named_sources::names(spec)
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// The JSON the body holds.
#[derive(Serialize)]
struct Body<'a> {
    spec: &'a LaunchPolicySpec,
    status: &'a Option<LaunchPolicyStatus>,
}

#[derive(Deserialize)]
struct OwnedBody {
    spec: LaunchPolicySpec,
    status: Option<LaunchPolicyStatus>,
}

impl CachedPolicy {
    /// Packs `policy` for the cache.
    pub fn new(policy: LaunchPolicy) -> Self {
        let LaunchPolicy {
            metadata,
            spec,
            status,
        } = policy;
        // Serialized whole, then deflated in one call: a deflate stream fed serde's small writes
        // costs ten times as much.
        let json = serde_json::to_vec(&Body {
            spec: &spec,
            status: &status,
        });
        let content = match json {
            Ok(json) => Content::Readable {
                body: compress_to_vec(&json, LEVEL).into_boxed_slice(),
                outline: Outline::of(&spec),
            },
            Err(e) => Content::Unreadable(format!("cannot keep the policy in the cache: {e}")),
        };
        CachedPolicy { metadata, content }
    }

    /// The policy, decoded; or why it cannot be read, with its metadata.
    pub fn policy(&self) -> Result<LaunchPolicy, Box<InvalidObject>> {
        let invalid = |error: String| {
            Box::new(InvalidObject {
                error,
                metadata: self.metadata.clone(),
            })
        };
        let body = match &self.content {
            Content::Readable { body, .. } => body,
            Content::Unreadable(error) => return Err(invalid(error.clone())),
        };
        let json = decompress_to_vec_with_limit(body, MAX_JSON)
            .map_err(|e| invalid(format!("the cached policy is corrupt: {e}")))?;
        let OwnedBody { spec, status } = serde_json::from_slice(&json)
            .map_err(|e| invalid(format!("the cached policy is corrupt: {e}")))?;
        Ok(LaunchPolicy {
            metadata: self.metadata.clone(),
            spec,
            status,
        })
    }

    /// The outline of a readable policy.
    pub fn outline(&self) -> Option<&Outline> {
        match &self.content {
            Content::Readable { outline, .. } => Some(outline),
            Content::Unreadable(_) => None,
        }
    }

    /// The bytes the spec and status take in the cache (0 for an unreadable policy).
    pub fn packed_len(&self) -> usize {
        match &self.content {
            Content::Readable { body, .. } => body.len(),
            Content::Unreadable(_) => 0,
        }
    }
}

impl<'de> Deserialize<'de> for CachedPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DeserializeGuard(read) = DeserializeGuard::<LaunchPolicy>::deserialize(deserializer)?;
        Ok(match read {
            Ok(policy) => CachedPolicy::new(policy),
            Err(InvalidObject { error, metadata }) => CachedPolicy {
                metadata,
                content: Content::Unreadable(error),
            },
        })
    }
}

impl Resource for CachedPolicy {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        LaunchPolicy::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        LaunchPolicy::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        LaunchPolicy::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        LaunchPolicy::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn example(path: &str) -> LaunchPolicy {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
                .unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
            .filter(|v| v["kind"] == "LaunchPolicy")
            .map(|v| serde_yaml::from_value(v).unwrap())
            .next()
            .unwrap()
    }

    #[test]
    fn a_policy_comes_back_from_the_cache_as_it_went_in() {
        for path in ["examples/emr-platform.yaml", "examples/launch-week.yaml"] {
            let mut policy = example(path);
            policy.metadata.namespace = Some("shop".into());
            policy.status = Some(serde_json::from_value(json!({
                "observedGeneration": 3,
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                    "message": "all references resolve", "lastTransitionTime": "2026-12-05T15:00:00Z"}]
            })).unwrap());
            let cached = CachedPolicy::new(policy.clone());
            assert_eq!(cached.policy().unwrap(), policy, "{path}");
        }
    }

    #[test]
    fn a_whole_launch_takes_under_half_its_json() {
        let policy = example("examples/emr-platform.yaml");
        let json = serde_json::to_vec(&policy.spec).unwrap().len();
        let packed = CachedPolicy::new(policy).packed_len();
        assert!(packed * 2 < json, "{packed} bytes for {json} of JSON");
    }

    #[test]
    fn the_outline_names_the_workloads_and_sources_of_the_spec() {
        let policy: LaunchPolicy = serde_json::from_value(json!({
            "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"scaling": {"triggers": [
                {"name": "cpu", "cpu": {"utilization": 70},
                 "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                 "replicas": {"min": 1, "max": 5}},
                {"name": "lag", "kafkaLag": {"sourceRef": {"name": "events"}, "topic": "t",
                    "consumerGroup": "g"},
                 "partitions": {"max": 12},
                 "consumers": {"scaleTargetRef": {"kind": "Deployment", "name": "worker"},
                    "lagPerReplica": 100, "min": 1, "max": 4}}
            ]}}
        }))
        .unwrap();
        let cached = CachedPolicy::new(policy);
        let outline = cached.outline().unwrap();
        let scaled: Vec<_> = outline
            .scales
            .iter()
            .map(|(t, w)| (t.as_str(), w.name.as_str()))
            .collect();
        assert_eq!(scaled, [("cpu", "api"), ("lag", "worker")]);
        assert!(outline.acts);
        assert_eq!(&*outline.sources, ["events".to_string()]);
    }

    #[test]
    fn an_object_that_is_not_a_launch_policy_is_kept_with_its_error() {
        let cached: CachedPolicy = serde_json::from_value(json!({
            "apiVersion": "liftoff.dev/v1alpha1", "kind": "LaunchPolicy",
            "metadata": {"name": "bad", "namespace": "shop"},
            "spec": {"scaling": {"triggers": "not a list"}}
        }))
        .unwrap();
        assert_eq!(cached.metadata.name.as_deref(), Some("bad"));
        assert!(cached.outline().is_none());
        let invalid = cached.policy().unwrap_err();
        assert!(invalid.error.contains("not a list"), "{}", invalid.error);
        assert_eq!(invalid.metadata.name.as_deref(), Some("bad"));
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic() {
        let mut cached = CachedPolicy::new(example("examples/emr-platform.yaml"));
        if let Content::Readable { body, .. } = &mut cached.content {
            let half = body.len() / 2;
            *body = body[..half].into();
        }
        assert!(cached.policy().unwrap_err().error.contains("corrupt"));
    }
}
