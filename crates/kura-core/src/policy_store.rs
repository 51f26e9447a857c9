//! Stored ACL policies and a cache of compiled ACLs keyed by policy set.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kura_logical::{LogicalError, Result, Storage, StorageExt};
use kura_policy::{Acl, Policy};
use serde::{Deserialize, Serialize};

use crate::view::BarrierView;

/// Upper bound on cached compiled ACLs; the cache is cleared when it fills.
const ACL_CACHE_MAX: usize = 4096;

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

/// Policies under `sys/policy/`, parsed once and cached.
pub struct PolicyStore {
    view: BarrierView,
    parsed: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<String, Arc<Acl>>>,
}

impl PolicyStore {
    /// A store over the `sys/policy/` view.
    pub fn new(view: BarrierView) -> Self {
        PolicyStore {
            view,
            parsed: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
        }
    }

    /// Creates the `default` policy if it is missing.
    pub async fn ensure_default(&self) -> Result<()> {
        if self.view.get("default").await?.is_none() {
            self.set("default", kura_policy::DEFAULT_POLICY).await?;
        }
        Ok(())
    }

    /// Reads a policy (parsed). `root` is virtual and never stored.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        let name = name.to_lowercase();
        if let Some(p) = self.parsed.read().expect("policy lock").get(&name) {
            return Ok(Some(p.clone()));
        }
        if name == kura_policy::RESPONSE_WRAPPING_POLICY_NAME {
            let policy = Arc::new(
                Policy::parse(&name, kura_policy::RESPONSE_WRAPPING_POLICY)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?,
            );
            self.parsed
                .write()
                .expect("policy lock")
                .insert(name, policy.clone());
            return Ok(Some(policy));
        }
        let Some(stored) = self.view.get_json::<StoredPolicy>(&name).await? else {
            return Ok(None);
        };
        let policy = Arc::new(
            Policy::parse(&stored.name, &stored.raw)
                .map_err(|e| LogicalError::Internal(format!("stored policy {name}: {e}")))?,
        );
        self.parsed
            .write()
            .expect("policy lock")
            .insert(name, policy.clone());
        Ok(Some(policy))
    }

    /// The raw text of a policy.
    pub async fn raw(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .view
            .get_json::<StoredPolicy>(&name.to_lowercase())
            .await?
            .map(|p| p.raw))
    }

    /// Parses and stores a policy. A policy that does not parse is a 400 with the reason.
    pub async fn set(&self, name: &str, raw: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" {
            return Err(LogicalError::bad("cannot update \"root\" policy"));
        }
        if name.is_empty() {
            return Err(LogicalError::bad("policy name must be provided"));
        }
        Policy::parse(&name, raw)
            .map_err(|e| LogicalError::bad(format!("failed to parse policy: {e}")))?;
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    raw: raw.to_string(),
                },
            )
            .await?;
        self.invalidate(&name);
        Ok(())
    }

    /// Deletes a policy; `root` and `default` cannot be deleted.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" || name == "default" {
            return Err(LogicalError::bad(format!(
                "cannot delete \"{name}\" policy"
            )));
        }
        self.view.delete(&name).await?;
        self.invalidate(&name);
        Ok(())
    }

    /// Policy names, sorted, with `root` included as OpenBao lists it.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .view
            .list("")
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect();
        names.push("root".to_string());
        names.sort();
        Ok(names)
    }

    /// Drops cached state for a policy (after a write here or on another node).
    pub fn invalidate(&self, name: &str) {
        self.parsed.write().expect("policy lock").remove(name);
        self.acls.write().expect("policy lock").clear();
    }

    /// The compiled ACL for a set of policy names (missing policies are skipped).
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        if names.iter().any(|n| n == "root") {
            return Ok(Arc::new(Acl::root()));
        }
        let mut sorted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let key = sorted.join(",");
        if let Some(acl) = self.acls.read().expect("policy lock").get(&key) {
            return Ok(acl.clone());
        }
        let mut policies = Vec::with_capacity(sorted.len());
        for n in &sorted {
            if let Some(p) = self.get(n).await? {
                policies.push(p);
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        let mut cache = self.acls.write().expect("policy lock");
        if cache.len() >= ACL_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, acl.clone());
        Ok(acl)
    }
}
