//! The trait every secrets engine and auth method implements.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{LeaseInfo, Operation, Request, Response, Result, Storage};

/// Facts about the mount a backend serves.
#[derive(Debug, Clone, Default)]
pub struct MountInfo {
    /// Mount UUID (the storage prefix is derived from it).
    pub uuid: String,
    /// Mount path with trailing slash (`secret/`, `auth/userpass/`).
    pub path: String,
    /// Engine type (`kv`, `userpass`, ...).
    pub backend_type: String,
    /// Mount accessor (`kv_1a2b3c4d`).
    pub accessor: String,
    /// Mount options (`version` for kv).
    pub options: std::collections::BTreeMap<String, String>,
}

/// What a backend may ask the core about its environment. Values are live: a tune is visible
/// on the next call.
pub trait SystemView: Send + Sync {
    /// The mount's effective default lease TTL.
    fn default_lease_ttl(&self) -> Duration;
    /// The mount's effective maximum lease TTL.
    fn max_lease_ttl(&self) -> Duration;
    /// True when this node is a standby (reads only).
    fn is_standby(&self) -> bool;
}

/// Everything a backend gets when it is created for a mount.
#[derive(Clone)]
pub struct BackendConfig {
    /// The mount.
    pub mount: MountInfo,
    /// Storage scoped to the mount.
    pub storage: Arc<dyn Storage>,
    /// The core's view of the mount's environment.
    pub system: Arc<dyn SystemView>,
}

/// Paths with special handling, relative to the mount. A trailing `*` is a prefix match.
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    /// Paths that need no token (logins).
    pub unauthenticated: Vec<String>,
    /// Paths that need `sudo` in addition to the operation's capability.
    pub root: Vec<String>,
}

/// A secrets engine or auth method mounted at one path.
#[async_trait]
pub trait LogicalBackend: Send + Sync {
    /// The engine type.
    fn backend_type(&self) -> &str;

    /// Handles one request; `Ok(None)` means "no data" (404 for reads, 204 otherwise).
    async fn handle(&self, req: &Request) -> Result<Option<Response>>;

    /// For create/update requests: does the target exist? `None` if the path has no existence
    /// check (the operation stays `Update`).
    async fn exists(&self, _req: &Request) -> Result<Option<bool>> {
        Ok(None)
    }

    /// True if this (relative) path and operation must always run on the active node (logins,
    /// anything with side effects even when the request looks like a read).
    fn forwards_on_standby(&self, _path: &str, _op: Operation) -> bool {
        false
    }

    /// Special paths of this backend.
    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths::default()
    }

    /// A storage key under this backend's prefix (relative to it) changed on another node.
    /// Runs off the apply path with a deadline.
    async fn invalidate(&self, _key: &str) {}

    /// Called once when the mount is removed or the node seals.
    async fn cleanup(&self) {}

    /// Revokes a secret this backend issued under a lease (`path` is the request path that
    /// created it, relative to the mount). The default has nothing to undo.
    async fn revoke_lease(&self, _path: &str, _lease: &LeaseInfo) -> Result<()> {
        Ok(())
    }

    /// Renews a lease: returns it with its new TTL. The default refuses, as for a secret whose
    /// backend cannot extend it.
    async fn renew_lease(
        &self,
        _path: &str,
        _lease: &LeaseInfo,
        _increment: Duration,
    ) -> Result<LeaseInfo> {
        Err(crate::LogicalError::bad("lease is not renewable"))
    }
}
