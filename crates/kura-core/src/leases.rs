//! Leases on secrets: registration when a backend returns one, lookup, renewal, revocation
//! (single, by prefix, forced), revocation when the creating token goes, and expiry on time.
//! Entries live under `sys/expire/` inside the barrier, so pending revocations survive a
//! restart: on unseal every stored lease is put back on the expiration queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kura_logical::{LeaseInfo, LogicalError, Response, Result, Storage, StorageExt, SystemView};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::{Core, Runtime};
use crate::util::{random_base62, rfc3339_secs, unix_now};
use crate::view::BarrierView;

const ID_PREFIX: &str = "id/";
const TOKEN_PREFIX: &str = "token/";

/// A stored lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseEntry {
    pub lease_id: String,
    /// The request path that created the secret (`pki/issue/web`).
    pub path: String,
    /// Salted hash of the token that created it (empty if none).
    pub token_hash: String,
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default)]
    pub last_renewal: Option<i64>,
    pub lease: LeaseInfo,
}

/// Lease ids contain `/`; the token index stores them with a reversible escape.
fn escape(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

/// The lease store.
pub(crate) struct LeaseStore {
    view: BarrierView,
}

/// Lets the token store revoke a token's leases without knowing about leases.
#[async_trait]
pub(crate) trait TokenLeases: Send + Sync {
    /// Revokes every lease created by the token with this hash.
    async fn revoke_for_token(&self, token_hash: &str) -> Result<()>;
}

impl LeaseStore {
    pub fn new(view: BarrierView) -> Self {
        LeaseStore { view }
    }

    pub async fn get(&self, id: &str) -> Result<Option<LeaseEntry>> {
        self.view.get_json(&format!("{ID_PREFIX}{id}")).await
    }

    async fn put(&self, e: &LeaseEntry) -> Result<()> {
        let mut ops = vec![kura_storage::TxnOp::Put {
            key: format!("{ID_PREFIX}{}", e.lease_id),
            value: serde_json::to_vec(e).map_err(|err| LogicalError::Internal(err.to_string()))?,
        }];
        if !e.token_hash.is_empty() {
            ops.push(kura_storage::TxnOp::Put {
                key: format!("{TOKEN_PREFIX}{}/{}", e.token_hash, escape(&e.lease_id)),
                value: Vec::new(),
            });
        }
        self.view.transaction(ops).await
    }

    async fn remove(&self, e: &LeaseEntry) -> Result<()> {
        let mut ops = vec![kura_storage::TxnOp::Delete {
            key: format!("{ID_PREFIX}{}", e.lease_id),
        }];
        if !e.token_hash.is_empty() {
            ops.push(kura_storage::TxnOp::Delete {
                key: format!("{TOKEN_PREFIX}{}/{}", e.token_hash, escape(&e.lease_id)),
            });
        }
        self.view.transaction(ops).await
    }

    /// Every lease id under a prefix (recursively).
    pub async fn ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let (dir, rest) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let all = self
            .view
            .list_recursive(&format!("{ID_PREFIX}{dir}"))
            .await?;
        Ok(all
            .into_iter()
            .filter(|k| k.starts_with(rest))
            .map(|k| format!("{dir}{k}"))
            .collect())
    }

    /// Immediate children of a prefix, for `LIST sys/leases/lookup/<prefix>`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.view.list(&format!("{ID_PREFIX}{prefix}")).await
    }

    /// Every stored lease with its expiry, for the expiration queue at unseal.
    pub async fn all(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for id in self.view.list_recursive(ID_PREFIX).await? {
            if let Some(e) = self.get(&id).await? {
                out.push((id, e.expire_time));
            }
        }
        Ok(out)
    }

    async fn ids_for_token(&self, token_hash: &str) -> Result<Vec<String>> {
        Ok(self
            .view
            .list(&format!("{TOKEN_PREFIX}{token_hash}/"))
            .await?
            .into_iter()
            .map(|k| unescape(&k))
            .collect())
    }
}

impl Core {
    /// Registers the lease a backend returned with a secret; fills in its id.
    pub(crate) async fn register_lease(
        &self,
        rt: &Runtime,
        path: &str,
        token_hash: &str,
        system: &dyn SystemView,
        lease: &mut LeaseInfo,
    ) -> Result<()> {
        let max = system.max_lease_ttl();
        if lease.ttl.is_zero() {
            lease.ttl = system.default_lease_ttl();
        }
        if lease.ttl > max {
            lease.ttl = max;
        }
        let now = unix_now();
        lease.lease_id = format!("{}/{}", path.trim_end_matches('/'), random_base62(24));
        let entry = LeaseEntry {
            lease_id: lease.lease_id.clone(),
            path: path.to_string(),
            token_hash: token_hash.to_string(),
            issue_time: now,
            expire_time: now + lease.ttl.as_secs() as i64,
            last_renewal: None,
            lease: lease.clone(),
        };
        rt.leases.put(&entry).await?;
        rt.expiration
            .track_lease(&entry.lease_id, entry.expire_time);
        Ok(())
    }

    /// Revokes one lease: the backend undoes the secret, then the entry goes. With `force`,
    /// a backend error does not keep the lease.
    pub(crate) async fn revoke_lease(&self, rt: &Runtime, id: &str, force: bool) -> Result<()> {
        let Some(entry) = rt.leases.get(id).await? else {
            return Ok(());
        };
        let router = rt.router();
        if let Some(m) = router.route(&entry.path) {
            let rel = entry.path.get(m.entry.route_path().len()..).unwrap_or("");
            if let Err(e) = m.backend.revoke_lease(rel, &entry.lease).await {
                if !force {
                    return Err(e);
                }
                tracing::warn!(lease_id = %id, error = %e, "forced revocation: backend failed");
            }
        }
        rt.leases.remove(&entry).await
    }

    /// Revokes every lease under a prefix.
    pub(crate) async fn revoke_lease_prefix(
        &self,
        rt: &Runtime,
        prefix: &str,
        force: bool,
    ) -> Result<()> {
        for id in rt.leases.ids_under(prefix).await? {
            self.revoke_lease(rt, &id, force).await?;
        }
        Ok(())
    }

    /// Renews a lease through its backend, within the mount's maximum TTL from issue.
    pub(crate) async fn renew_lease(
        &self,
        rt: &Runtime,
        id: &str,
        increment: Duration,
    ) -> Result<Response> {
        let mut entry = rt
            .leases
            .get(id)
            .await?
            .ok_or_else(|| LogicalError::bad("lease not found"))?;
        if !entry.lease.renewable {
            return Err(LogicalError::bad("lease is not renewable"));
        }
        let router = rt.router();
        let m = router
            .route(&entry.path)
            .ok_or_else(|| LogicalError::bad("lease not found"))?;
        let rel = entry
            .path
            .get(m.entry.route_path().len()..)
            .unwrap_or("")
            .to_string();
        let mut renewed = m.backend.renew_lease(&rel, &entry.lease, increment).await?;
        let now = unix_now();
        let hard_end = entry.issue_time + m.view.max_lease_ttl().as_secs() as i64;
        let mut ttl = if renewed.ttl.is_zero() {
            increment
        } else {
            renewed.ttl
        };
        if ttl.is_zero() {
            ttl = m.view.default_lease_ttl();
        }
        let mut expire = now + ttl.as_secs() as i64;
        let mut warnings = Vec::new();
        if expire > hard_end {
            expire = hard_end;
            warnings.push("TTL of the lease was capped by the mount's max TTL".to_string());
        }
        renewed.ttl = Duration::from_secs((expire - now).max(0) as u64);
        renewed.lease_id = entry.lease_id.clone();
        entry.lease = renewed.clone();
        entry.expire_time = expire;
        entry.last_renewal = Some(now);
        rt.leases.put(&entry).await?;
        rt.expiration.track_lease(&entry.lease_id, expire);
        Ok(Response {
            lease: Some(renewed),
            warnings,
            ..Default::default()
        })
    }

    /// `sys/leases/lookup`.
    pub(crate) async fn lookup_lease(&self, rt: &Runtime, id: &str) -> Result<Response> {
        let e = rt
            .leases
            .get(id)
            .await?
            .ok_or_else(|| LogicalError::bad("invalid lease"))?;
        Ok(Response::from_json(json!({
            "id": e.lease_id,
            "issue_time": rfc3339_secs(e.issue_time),
            "expire_time": rfc3339_secs(e.expire_time),
            "last_renewal": e.last_renewal.map(rfc3339_secs),
            "renewable": e.lease.renewable,
            "ttl": (e.expire_time - unix_now()).max(0),
        })))
    }

    /// Called by the expiration task when a lease's time is up.
    pub(crate) async fn expire_lease(&self, id: &str) -> Result<()> {
        let Some(rt) = self.runtime() else {
            return Ok(());
        };
        match rt.leases.get(id).await? {
            Some(e) if e.expire_time <= unix_now() => self.revoke_lease(&rt, id, false).await,
            _ => Ok(()),
        }
    }
}

/// Revokes a token's leases when the token goes.
pub(crate) struct TokenLeaseRevoker {
    pub core: std::sync::Weak<Core>,
}

#[async_trait]
impl TokenLeases for TokenLeaseRevoker {
    async fn revoke_for_token(&self, token_hash: &str) -> Result<()> {
        let Some(core) = self.core.upgrade() else {
            return Ok(());
        };
        let Some(rt) = core.runtime() else {
            return Ok(());
        };
        for id in rt.leases.ids_for_token(token_hash).await? {
            core.revoke_lease(&rt, &id, false).await?;
        }
        Ok(())
    }
}

/// Shared handle to the lease store.
pub(crate) type Leases = Arc<LeaseStore>;
