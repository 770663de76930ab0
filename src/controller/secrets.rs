//! Secret values, read with a GET (never a list or watch: the operator can be granted `get` on
//! exactly the Secrets its policies name) and kept in memory for a short while, so that a policy
//! sampled every 15 seconds does not cost the apiserver a request per sample.
//!
//! Values never leave this module in a printable form: [`SecretData`]'s `Debug` shows key names only.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// The keys and values of one Secret.
pub struct SecretData {
    values: BTreeMap<String, Vec<u8>>,
    /// The Secret's resourceVersion, so clients built from it can be rebuilt when it changes.
    pub version: String,
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("version", &self.version)
            .finish()
    }
}

impl SecretData {
    /// The key names.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.values.keys()
    }

    /// A key's value as UTF-8 text, trimmed of surrounding whitespace (a trailing newline is a
    /// common accident when a Secret is created from a file).
    pub fn text(&self, key: &str) -> Option<String> {
        let bytes = self.values.get(key)?;
        Some(String::from_utf8_lossy(bytes).trim().to_owned())
    }

    /// All keys as text, for client settings such as librdkafka properties.
    pub fn texts(&self) -> BTreeMap<String, String> {
        self.values
            .keys()
            .filter_map(|k| Some((k.clone(), self.text(k)?)))
            .collect()
    }
}

struct Entry {
    fetched: Instant,
    secret: Option<Arc<SecretData>>,
}

/// A small time-bounded cache of Secrets. A found Secret is reused for `found_ttl`, a missing
/// one is asked for again after `missing_ttl`; errors are never cached.
pub struct Secrets {
    client: Client,
    found_ttl: Duration,
    missing_ttl: Duration,
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl Secrets {
    pub fn new(client: Client, found_ttl: Duration, missing_ttl: Duration) -> Self {
        Self {
            client,
            found_ttl,
            missing_ttl,
            entries: Mutex::default(),
        }
    }

    /// The Secret `name` in `namespace`, `None` when it does not exist.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretData>>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(entry) = self.entries.lock().unwrap().get(&key) {
            let ttl = if entry.secret.is_some() {
                self.found_ttl
            } else {
                self.missing_ttl
            };
            if entry.fetched.elapsed() < ttl {
                return Ok(entry.secret.clone());
            }
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await
            .map_err(|e| format!("cannot read Secret {namespace}/{name}: {e}"))?;
        let secret = secret.map(|s| {
            let mut values: BTreeMap<String, Vec<u8>> = s
                .string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            values.extend(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            Arc::new(SecretData {
                values,
                version: s.metadata.resource_version.unwrap_or_default(),
            })
        });
        self.entries.lock().unwrap().insert(
            key,
            Entry {
                fetched: Instant::now(),
                secret: secret.clone(),
            },
        );
        Ok(secret)
    }

    /// Forgets expired entries.
    pub fn prune(&self) {
        let longest = self.found_ttl.max(self.missing_ttl);
        self.entries
            .lock()
            .unwrap()
            .retain(|_, e| e.fetched.elapsed() < longest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_key_names_but_never_values() {
        let data = SecretData {
            values: BTreeMap::from([("password".to_string(), b"hunter2\n".to_vec())]),
            version: "7".into(),
        };
        let shown = format!("{data:?}");
        assert!(shown.contains("password"));
        assert!(!shown.contains("hunter2"));
        assert_eq!(data.text("password").as_deref(), Some("hunter2"));
    }
}
