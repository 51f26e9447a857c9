//! The mount tables (secrets engines and auth methods) and the router that finds a request's
//! mount by longest prefix.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kura_logical::{LogicalBackend, MountInfo, SpecialPaths, SystemView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Storage key of the secrets-engine mount table.
pub const MOUNT_TABLE_KEY: &str = "core/mounts";
/// Storage key of the auth-method mount table.
pub const AUTH_TABLE_KEY: &str = "core/auth";

/// Which table a mount lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A secrets engine (`sys/mounts`).
    Secret,
    /// An auth method (`sys/auth`), routed under `auth/`.
    Auth,
}

/// Tunable settings of a mount. TTLs in seconds; 0 means "system default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    /// Default lease TTL (seconds, 0 = inherit).
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Maximum lease TTL (seconds, 0 = inherit).
    #[serde(default)]
    pub max_lease_ttl: u64,
    /// Disable caching (accepted for compatibility).
    #[serde(default)]
    pub force_no_cache: bool,
    /// `unauth` or `hidden` (UI listing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listing_visibility: String,
    /// Request keys not HMAC'd in audit logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_request_keys: Vec<String>,
    /// Response keys not HMAC'd in audit logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_response_keys: Vec<String>,
    /// Request headers passed to the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_request_headers: Vec<String>,
    /// Response headers the backend may set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_response_headers: Vec<String>,
    /// Token type for auth mounts (`default-service`...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_type: String,
}

/// One entry of a mount table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountEntry {
    /// Path with trailing slash, without `auth/` for auth mounts (`secret/`, `userpass/`).
    pub path: String,
    /// Engine type.
    #[serde(rename = "type")]
    pub backend_type: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// UUID; the storage prefix derives from it.
    pub uuid: String,
    /// Accessor (`kv_1a2b3c4d`).
    pub accessor: String,
    /// Tunables.
    #[serde(default)]
    pub config: MountConfig,
    /// Options (`version` for kv).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Local (not replicated) mount.
    #[serde(default)]
    pub local: bool,
    /// Seal wrapping (accepted, not meaningful here).
    #[serde(default)]
    pub seal_wrap: bool,
    /// External entropy access (accepted).
    #[serde(default)]
    pub external_entropy_access: bool,
    /// Which table.
    pub kind: MountKind,
}

impl MountEntry {
    /// The path as routed (`auth/` prefix for auth mounts).
    pub fn route_path(&self) -> String {
        match self.kind {
            MountKind::Secret => self.path.clone(),
            MountKind::Auth => format!("auth/{}", self.path),
        }
    }

    /// Storage prefix of the mount's data.
    pub fn storage_prefix(&self) -> String {
        match (self.kind, self.backend_type.as_str()) {
            (_, "system") => "sys/".to_string(),
            (MountKind::Auth, "token") => "sys/token/".to_string(),
            (MountKind::Secret, _) => format!("logical/{}/", self.uuid),
            (MountKind::Auth, _) => format!("auth/{}/", self.uuid),
        }
    }

    /// The info handed to the backend factory.
    pub fn info(&self) -> MountInfo {
        MountInfo {
            uuid: self.uuid.clone(),
            path: self.route_path(),
            backend_type: self.backend_type.clone(),
            accessor: self.accessor.clone(),
            options: self.options.clone(),
        }
    }

    /// The entry as `sys/mounts` and `sys/auth` show it.
    pub fn to_api(&self) -> Value {
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
        });
        let c = config.as_object_mut().expect("object");
        if !self.config.listing_visibility.is_empty() {
            c.insert(
                "listing_visibility".into(),
                json!(self.config.listing_visibility),
            );
        }
        for (k, v) in [
            (
                "audit_non_hmac_request_keys",
                &self.config.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &self.config.audit_non_hmac_response_keys,
            ),
            (
                "passthrough_request_headers",
                &self.config.passthrough_request_headers,
            ),
            (
                "allowed_response_headers",
                &self.config.allowed_response_headers,
            ),
        ] {
            if !v.is_empty() {
                c.insert(k.into(), json!(v));
            }
        }
        if !self.config.token_type.is_empty() {
            c.insert("token_type".into(), json!(self.config.token_type));
        }
        let options = if self.options.is_empty() {
            Value::Null
        } else {
            json!(self.options)
        };
        let mut v = json!({
            "accessor": self.accessor,
            "config": config,
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": options,
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.kura", crate::VERSION),
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.backend_type,
            "uuid": self.uuid,
        });
        if matches!(
            self.backend_type.as_str(),
            "kv" | "userpass" | "approle" | "transit" | "pki"
        ) {
            v["deprecation_status"] = json!("supported");
        }
        v
    }
}

/// The live settings a mounted backend sees through [`SystemView`].
pub struct MountView {
    /// The mount's tunables, updated on tune.
    pub config: RwLock<MountConfig>,
    /// System default lease TTL.
    pub system_default_ttl: Duration,
    /// System maximum lease TTL.
    pub system_max_ttl: Duration,
    /// True when this node is a standby.
    pub standby: Arc<std::sync::atomic::AtomicBool>,
}

impl SystemView for MountView {
    fn default_lease_ttl(&self) -> Duration {
        let c = self.config.read().expect("mount view lock");
        match c.default_lease_ttl {
            0 => self.system_default_ttl.min(self.max_lease_ttl()),
            s => Duration::from_secs(s),
        }
    }

    fn max_lease_ttl(&self) -> Duration {
        let c = self.config.read().expect("mount view lock");
        match c.max_lease_ttl {
            0 => self.system_max_ttl,
            s => Duration::from_secs(s),
        }
    }

    fn is_standby(&self) -> bool {
        self.standby.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A mount with its running backend.
pub struct Mounted {
    /// The table entry.
    pub entry: MountEntry,
    /// The backend instance.
    pub backend: Arc<dyn LogicalBackend>,
    /// Live settings.
    pub view: Arc<MountView>,
    /// The backend's special paths, asked once when the mount starts.
    pub special: SpecialPaths,
}

/// Both mount tables, with running backends, ordered for longest-prefix routing.
#[derive(Default, Clone)]
pub struct Router {
    /// Mounts sorted by descending route-path length.
    mounts: Vec<Arc<Mounted>>,
    /// Their route paths, computed once (same order).
    routes: Vec<String>,
}

impl Router {
    /// Builds a router from mounted backends.
    pub fn new(mut mounts: Vec<Arc<Mounted>>) -> Self {
        mounts.sort_by_key(|m| std::cmp::Reverse(m.entry.route_path().len()));
        let routes = mounts.iter().map(|m| m.entry.route_path()).collect();
        Router { mounts, routes }
    }

    /// The mount serving `path` (longest prefix; `secret` matches `secret/`).
    pub fn route(&self, path: &str) -> Option<&Arc<Mounted>> {
        self.routes
            .iter()
            .position(|rp| path.starts_with(rp.as_str()) || path == rp.trim_end_matches('/'))
            .map(|i| &self.mounts[i])
    }

    /// All mounts of one kind, sorted by path.
    pub fn entries(&self, kind: MountKind) -> Vec<&Arc<Mounted>> {
        let mut v: Vec<_> = self
            .mounts
            .iter()
            .filter(|m| m.entry.kind == kind)
            .collect();
        v.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
        v
    }

    /// Every mount.
    pub fn all(&self) -> &[Arc<Mounted>] {
        &self.mounts
    }
}

/// Normalises a user-supplied mount path: no leading slash, one trailing slash.
pub fn normalize_mount_path(path: &str) -> String {
    let p = path.trim_matches('/');
    format!("{p}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_paths() {
        assert_eq!(normalize_mount_path("/foo/bar/"), "foo/bar/");
        assert_eq!(normalize_mount_path("foo"), "foo/");
    }

    #[test]
    fn entry_prefixes() {
        let e = MountEntry {
            path: "userpass/".into(),
            backend_type: "userpass".into(),
            description: String::new(),
            uuid: "u1".into(),
            accessor: "a".into(),
            config: MountConfig::default(),
            options: BTreeMap::new(),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            kind: MountKind::Auth,
        };
        assert_eq!(e.route_path(), "auth/userpass/");
        assert_eq!(e.storage_prefix(), "auth/u1/");
        assert!(e.to_api()["options"].is_null());
    }
}
