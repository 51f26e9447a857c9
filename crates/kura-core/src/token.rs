//! The token store: tokens kept by salted hash under `sys/token/`, with accessors, parent links,
//! roles, TTLs and use limits.

use std::collections::BTreeMap;
use std::time::Duration;

use kura_logical::{LogicalError, Result, Storage, StorageExt};
use kura_storage::TxnOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::util::{random_base62, random_bytes, rfc3339_secs, unix_now};
use crate::view::BarrierView;

const SALT_KEY: &str = "salt";
const ID_PREFIX: &str = "id/";
const ACCESSOR_PREFIX: &str = "accessor/";
const PARENT_PREFIX: &str = "parent/";
const ROLE_PREFIX: &str = "roles/";
/// Most parsed token entries kept in memory (a few hundred bytes each: about 4 MiB at most).
/// The cache is dropped whole when it fills; entries are re-read from storage on demand.
const TOKEN_CACHE_MAX: usize = 8192;

/// A stored token. The token ID itself is never stored: entries are keyed by its salted hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// Salted hash of the token ID (the storage key).
    pub hash: String,
    /// The accessor.
    pub accessor: String,
    /// Hash of the parent token, empty for orphans.
    #[serde(default)]
    pub parent: String,
    /// Attached policies.
    pub policies: Vec<String>,
    /// Creation path (`auth/token/create`, `auth/userpass/login/bob`).
    pub path: String,
    /// Metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Display name.
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    #[serde(default)]
    pub num_uses: i64,
    /// Creation time (Unix seconds).
    pub creation_time: i64,
    /// TTL at creation (seconds, 0 = none).
    #[serde(default)]
    pub creation_ttl: i64,
    /// Expiry (Unix seconds), 0 = never.
    #[serde(default)]
    pub expire_time: i64,
    /// Explicit maximum TTL (seconds).
    #[serde(default)]
    pub explicit_max_ttl: i64,
    /// Maximum lifetime from the issuing mount or role (seconds, 0 = the system maximum).
    #[serde(default)]
    pub max_ttl: i64,
    /// Period (seconds) for periodic tokens.
    #[serde(default)]
    pub period: i64,
    /// Renewable.
    #[serde(default)]
    pub renewable: bool,
    /// Token role name.
    #[serde(default)]
    pub role: String,
    /// Entity ID.
    #[serde(default)]
    pub entity_id: String,
    /// Bound CIDRs.
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
}

impl TokenEntry {
    /// True if the token has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expire_time != 0 && now >= self.expire_time
    }

    /// Remaining TTL in seconds.
    pub fn ttl(&self, now: i64) -> i64 {
        if self.expire_time == 0 {
            0
        } else {
            (self.expire_time - now).max(0)
        }
    }

    /// True for tokens carrying the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// The lookup response data. `id` is only known when the caller presented the token.
    pub fn lookup_data(&self, id: Option<&str>) -> Value {
        let now = unix_now();
        let expire = if self.expire_time == 0 {
            Value::Null
        } else {
            json!(rfc3339_secs(self.expire_time))
        };
        json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": expire,
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id.unwrap_or(""),
            "issue_time": rfc3339_secs(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_empty(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.ttl(now),
            "type": "service",
            "period": if self.period > 0 { json!(self.period) } else { Value::Null },
            "role": if self.role.is_empty() { Value::Null } else { json!(self.role) },
        })
    }
}

/// A token role (`auth/token/roles/<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenRole {
    /// Role name.
    pub name: String,
    /// Policies tokens of this role may have.
    #[serde(default)]
    pub allowed_policies: Vec<String>,
    /// Policies tokens of this role may not have.
    #[serde(default)]
    pub disallowed_policies: Vec<String>,
    /// Tokens are orphans.
    #[serde(default)]
    pub orphan: bool,
    /// Tokens are renewable.
    #[serde(default = "yes")]
    pub renewable: bool,
    /// Period (seconds).
    #[serde(default)]
    pub token_period: i64,
    /// Explicit max TTL (seconds).
    #[serde(default)]
    pub token_explicit_max_ttl: i64,
    /// Path suffix.
    #[serde(default)]
    pub path_suffix: String,
    /// Token TTL (seconds).
    #[serde(default)]
    pub token_ttl: i64,
    /// Token max TTL (seconds).
    #[serde(default)]
    pub token_max_ttl: i64,
    /// Token use limit.
    #[serde(default)]
    pub token_num_uses: i64,
    /// Bound CIDRs.
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    /// Token type.
    #[serde(default = "default_service")]
    pub token_type: String,
    /// Do not attach `default`.
    #[serde(default)]
    pub token_no_default_policy: bool,
}

fn yes() -> bool {
    true
}

fn default_service() -> String {
    "default-service".to_string()
}

impl TokenRole {
    /// The role as `auth/token/roles/<name>` returns it.
    pub fn to_api(&self) -> Value {
        json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": [],
            "disallowed_policies_glob": [],
            "orphan": self.orphan,
            "renewable": self.renewable,
            "period": self.token_period,
            "token_period": self.token_period,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "path_suffix": self.path_suffix,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_num_uses": self.token_num_uses,
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_type": self.token_type,
            "token_no_default_policy": self.token_no_default_policy,
            "allowed_entity_aliases": Value::Null,
            "token_policies": [],
        })
    }
}

#[derive(Serialize, Deserialize)]
struct AccessorEntry {
    accessor: String,
    token_hash: String,
}

/// What to create: the output of the create handler's validation.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// Explicit ID (root only), else random.
    pub id: Option<String>,
    /// Policies (final, sorted).
    pub policies: Vec<String>,
    /// Parent hash, empty for orphans.
    pub parent: String,
    /// Creation path.
    pub path: String,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Display name.
    pub display_name: String,
    /// Use limit.
    pub num_uses: i64,
    /// TTL.
    pub ttl: Duration,
    /// Explicit max TTL.
    pub explicit_max_ttl: Duration,
    /// Maximum lifetime (zero = the system maximum).
    pub max_ttl: Duration,
    /// Period.
    pub period: Duration,
    /// Renewable.
    pub renewable: bool,
    /// Role.
    pub role: String,
    /// Bound CIDRs.
    pub bound_cidrs: Vec<String>,
}

/// The token store.
pub struct TokenStore {
    view: BarrierView,
    /// HMAC key made from the store's salt (built once: hashing is on every request's path).
    salt: aws_lc_rs::hmac::Key,
    /// The cubbyhole mount's storage: a revoked token's cubbyhole is deleted with it.
    cubbyhole: std::sync::RwLock<Option<BarrierView>>,
    /// Revokes a token's leases when the token goes.
    leases: std::sync::RwLock<Option<std::sync::Arc<dyn crate::leases::TokenLeases>>>,
    /// Parsed entries by hash, so the per-request lookup neither decrypts nor parses.
    cache: std::sync::RwLock<std::collections::HashMap<String, std::sync::Arc<TokenEntry>>>,
    /// Bumped by every invalidation: a lookup that raced one does not cache what it read.
    generation: std::sync::atomic::AtomicU64,
}

impl TokenStore {
    /// Opens the store, creating its salt on first use (active node only).
    pub async fn open(view: BarrierView) -> Result<Self> {
        let salt = match view.get(SALT_KEY).await? {
            Some(s) => s,
            None => {
                let s = random_bytes(32);
                view.put(SALT_KEY, s.clone()).await?;
                s
            }
        };
        Ok(TokenStore {
            view,
            salt: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &salt),
            cubbyhole: std::sync::RwLock::new(None),
            leases: std::sync::RwLock::new(None),
            cache: std::sync::RwLock::new(std::collections::HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Sets what revokes a token's leases on revocation.
    pub(crate) fn set_lease_revoker(&self, r: std::sync::Arc<dyn crate::leases::TokenLeases>) {
        *self.leases.write().expect("lease revoker lock") = Some(r);
    }

    /// Sets the cubbyhole storage to clean up when tokens are revoked.
    pub fn set_cubbyhole(&self, view: Option<BarrierView>) {
        *self.cubbyhole.write().expect("cubbyhole lock") = view;
    }

    /// Salted hash of a token ID or accessor.
    pub fn hash(&self, id: &str) -> String {
        let mac = aws_lc_rs::hmac::sign(&self.salt, id.as_bytes());
        // Into a buffer sized up front (hex::encode collects chars one by one; this runs on
        // every request).
        let mut out = vec![0u8; mac.as_ref().len() * 2];
        hex::encode_to_slice(mac.as_ref(), &mut out).expect("buffer sized for the MAC");
        String::from_utf8(out).expect("hex digits are ASCII")
    }

    /// Creates and persists a token; returns the token ID and its entry.
    pub async fn create(&self, spec: NewToken) -> Result<(String, TokenEntry)> {
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| format!("s.{}", random_base62(24)));
        let hash = self.hash(&id);
        if self
            .view
            .get(&format!("{ID_PREFIX}{hash}"))
            .await?
            .is_some()
        {
            return Err(LogicalError::bad(
                "cannot create a token with a duplicate ID",
            ));
        }
        let accessor = random_base62(24);
        let now = unix_now();
        let ttl = spec.ttl.as_secs() as i64;
        let entry = TokenEntry {
            hash: hash.clone(),
            accessor: accessor.clone(),
            parent: spec.parent.clone(),
            policies: spec.policies,
            path: spec.path,
            meta: spec.meta,
            display_name: spec.display_name,
            num_uses: spec.num_uses,
            creation_time: now,
            creation_ttl: ttl,
            expire_time: if ttl > 0 { now + ttl } else { 0 },
            explicit_max_ttl: spec.explicit_max_ttl.as_secs() as i64,
            max_ttl: spec.max_ttl.as_secs() as i64,
            period: spec.period.as_secs() as i64,
            renewable: spec.renewable && ttl > 0,
            role: spec.role,
            entity_id: String::new(),
            bound_cidrs: spec.bound_cidrs,
        };
        let mut ops = vec![
            TxnOp::Put {
                key: format!("{ID_PREFIX}{hash}"),
                value: serde_json::to_vec(&entry).map_err(internal)?,
            },
            TxnOp::Put {
                key: format!("{ACCESSOR_PREFIX}{}", self.hash(&accessor)),
                value: serde_json::to_vec(&AccessorEntry {
                    accessor,
                    token_hash: hash.clone(),
                })
                .map_err(internal)?,
            },
        ];
        if !entry.parent.is_empty() {
            ops.push(TxnOp::Put {
                key: format!("{PARENT_PREFIX}{}/{hash}", entry.parent),
                value: Vec::new(),
            });
        }
        self.view.transaction(ops).await?;
        Ok((id, entry))
    }

    /// Looks up a token by ID; expired tokens are treated as absent.
    pub async fn lookup(&self, id: &str) -> Result<Option<TokenEntry>> {
        if id.is_empty() {
            return Ok(None);
        }
        self.lookup_hash(&self.hash(id)).await
    }

    /// Looks up a token by its hash; expired tokens are treated as absent.
    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>> {
        let cached = self
            .cache
            .read()
            .expect("token cache lock")
            .get(hash)
            .cloned();
        let entry = match cached {
            Some(e) => Some(TokenEntry::clone(&e)),
            None => {
                let seen = self.generation.load(std::sync::atomic::Ordering::SeqCst);
                let entry: Option<TokenEntry> =
                    self.view.get_json(&format!("{ID_PREFIX}{hash}")).await?;
                if let Some(e) = &entry {
                    self.remember(e, seen);
                }
                entry
            }
        };
        Ok(entry.filter(|e| !e.expired(unix_now())))
    }

    fn remember(&self, entry: &TokenEntry, seen: u64) {
        let mut cache = self.cache.write().expect("token cache lock");
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != seen {
            return;
        }
        if cache.len() >= TOKEN_CACHE_MAX {
            cache.clear();
        }
        cache.insert(entry.hash.clone(), std::sync::Arc::new(entry.clone()));
    }

    /// Forgets the cached entry of a token (it changed in storage, here or on another node).
    pub fn invalidate(&self, hash: &str) {
        let mut cache = self.cache.write().expect("token cache lock");
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(hash);
    }

    /// Resolves an accessor to the token hash.
    pub async fn hash_for_accessor(&self, accessor: &str) -> Result<Option<String>> {
        let entry: Option<AccessorEntry> = self
            .view
            .get_json(&format!("{ACCESSOR_PREFIX}{}", self.hash(accessor)))
            .await?;
        Ok(entry.map(|e| e.token_hash))
    }

    /// All accessors.
    pub async fn accessors(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for key in self.view.list(ACCESSOR_PREFIX).await? {
            if let Some(e) = self
                .view
                .get_json::<AccessorEntry>(&format!("{ACCESSOR_PREFIX}{key}"))
                .await?
            {
                out.push(e.accessor);
            }
        }
        Ok(out)
    }

    /// Persists an updated entry.
    pub async fn save(&self, entry: &TokenEntry) -> Result<()> {
        self.invalidate(&entry.hash);
        self.view
            .put_json(&format!("{ID_PREFIX}{}", entry.hash), entry)
            .await?;
        self.invalidate(&entry.hash);
        Ok(())
    }

    /// Counts one use of a token with a use limit. Returns true if that was its last use (the
    /// caller revokes it after the request).
    pub async fn use_token(&self, entry: &mut TokenEntry) -> Result<bool> {
        if entry.num_uses <= 0 {
            return Ok(false);
        }
        entry.num_uses -= 1;
        if entry.num_uses == 0 {
            entry.num_uses = -1;
            self.save(entry).await?;
            return Ok(true);
        }
        self.save(entry).await?;
        Ok(false)
    }

    /// Revokes a token and, recursively, all its children.
    pub async fn revoke_tree(&self, hash: &str) -> Result<()> {
        let mut stack = vec![hash.to_string()];
        let mut order = Vec::new();
        while let Some(h) = stack.pop() {
            for child in self.view.list(&format!("{PARENT_PREFIX}{h}/")).await? {
                stack.push(child.trim_end_matches('/').to_string());
            }
            order.push(h);
        }
        // Children first, so an interrupted revocation never leaves an orphaned subtree.
        for h in order.into_iter().rev() {
            self.revoke_one(&h).await?;
        }
        Ok(())
    }

    /// Revokes a token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<()> {
        for child in self.view.list(&format!("{PARENT_PREFIX}{hash}/")).await? {
            let child = child.trim_end_matches('/');
            let key = format!("{ID_PREFIX}{child}");
            if let Some(mut e) = self.view.get_json::<TokenEntry>(&key).await? {
                e.parent.clear();
                self.save(&e).await?;
            }
            self.view
                .delete(&format!("{PARENT_PREFIX}{hash}/{child}"))
                .await?;
        }
        self.revoke_one(hash).await
    }

    async fn revoke_one(&self, hash: &str) -> Result<()> {
        let key = format!("{ID_PREFIX}{hash}");
        let Some(entry) = self.view.get_json::<TokenEntry>(&key).await? else {
            return Ok(());
        };
        let revoker = self.leases.read().expect("lease revoker lock").clone();
        if let Some(r) = revoker {
            r.revoke_for_token(hash).await?;
        }
        self.invalidate(hash);
        let mut ops = vec![
            TxnOp::Delete { key },
            TxnOp::Delete {
                key: format!("{ACCESSOR_PREFIX}{}", self.hash(&entry.accessor)),
            },
        ];
        if !entry.parent.is_empty() {
            ops.push(TxnOp::Delete {
                key: format!("{PARENT_PREFIX}{}/{hash}", entry.parent),
            });
        }
        self.view.transaction(ops).await?;
        // Again after the commit: a lookup racing the revocation may have re-cached it.
        self.invalidate(hash);
        let cubbyhole = self.cubbyhole.read().expect("cubbyhole lock").clone();
        if let Some(cubby) = cubbyhole {
            let keys = cubby.list_recursive(&format!("{hash}/")).await?;
            for chunk in keys.chunks(256) {
                cubby
                    .transaction(
                        chunk
                            .iter()
                            .map(|k| TxnOp::Delete {
                                key: format!("{hash}/{k}"),
                            })
                            .collect(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Every stored token (hash, expiry), for the expiration sweeper.
    pub async fn all_expiring(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for key in self.view.list(ID_PREFIX).await? {
            if let Some(e) = self
                .view
                .get_json::<TokenEntry>(&format!("{ID_PREFIX}{key}"))
                .await?
            {
                if e.expire_time != 0 {
                    out.push((key, e.expire_time));
                }
            }
        }
        Ok(out)
    }

    /// Reads a role.
    pub async fn role(&self, name: &str) -> Result<Option<TokenRole>> {
        self.view.get_json(&format!("{ROLE_PREFIX}{name}")).await
    }

    /// Writes a role.
    pub async fn set_role(&self, role: &TokenRole) -> Result<()> {
        self.view
            .put_json(&format!("{ROLE_PREFIX}{}", role.name), role)
            .await
    }

    /// Deletes a role.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("{ROLE_PREFIX}{name}")).await
    }

    /// Role names.
    pub async fn roles(&self) -> Result<Vec<String>> {
        self.view.list(ROLE_PREFIX).await
    }
}

fn internal(e: serde_json::Error) -> LogicalError {
    LogicalError::Internal(e.to_string())
}
