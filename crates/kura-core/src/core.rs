//! The core: seal and unseal, the unsealed runtime (router, token and policy stores), and the
//! request pipeline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use kura_barrier::{shamir, Barrier, SEAL_CONFIG_PATH};
use kura_logical::{
    BackendConfig, LogicalBackend, LogicalError, Operation, Request, Response, Result, Storage,
    StorageExt,
};
use kura_policy::Capability;
use kura_storage::Backend;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::expiration::Expiration;
use crate::ha::HaState;
use crate::mounts::{
    MountConfig, MountEntry, MountKind, MountView, Mounted, Router, AUTH_TABLE_KEY, MOUNT_TABLE_KEY,
};
use crate::policy_store::PolicyStore;
use crate::token::{NewToken, TokenEntry, TokenStore};
use crate::token_backend::TokenBackend;
use crate::util::{new_uuid, random_bytes};
use crate::view::{barrier_err, BarrierView};

/// Creates a backend instance for a mount.
pub type BackendFactory =
    Arc<dyn Fn(BackendConfig) -> Result<Arc<dyn LogicalBackend>> + Send + Sync>;

/// Server-wide settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// System default lease TTL (OpenBao: 768h).
    pub default_lease_ttl: Duration,
    /// System maximum lease TTL (OpenBao: 768h).
    pub max_lease_ttl: Duration,
    /// Cluster name from the configuration (generated if absent).
    pub cluster_name: Option<String>,
    /// Address advertised to clients (`api_addr`).
    pub api_addr: Option<String>,
    /// Address advertised to peers (`cluster_addr`).
    pub cluster_addr: Option<String>,
    /// Standbys forward everything instead of serving reads.
    pub disable_standby_reads: bool,
    /// Serve the legacy unauthenticated `sys/rekey/*` endpoints (a listener enabled them).
    pub unauthed_rekey: bool,
    /// Serve the legacy unauthenticated `sys/generate-root/*` endpoints.
    pub unauthed_generate_root: bool,
    /// Audit devices and settings.
    pub audit: crate::audit::AuditOptions,
}

impl Default for CoreConfig {
    fn default() -> Self {
        let month = Duration::from_secs(768 * 3600);
        CoreConfig {
            default_lease_ttl: month,
            max_lease_ttl: month,
            cluster_name: None,
            api_addr: None,
            cluster_addr: None,
            disable_standby_reads: false,
            unauthed_rekey: false,
            unauthed_generate_root: false,
            audit: Default::default(),
        }
    }
}

/// Identity of the cluster, created at initialisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterInfo {
    /// Cluster UUID.
    pub id: String,
    /// Cluster name.
    pub name: String,
}

/// The seal configuration, stored in plaintext next to the barrier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    #[serde(default)]
    pub nonce: String,
}

/// What `sys/init` returns.
pub struct InitResult {
    /// Unseal key shares.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// The initial root token.
    pub root_token: String,
}

/// A response with the storage index the node had applied when it answered.
pub struct HandledResponse {
    /// The response (status in `status`, 204/200 decided by the listener).
    pub response: Response,
}

#[derive(Default)]
pub(crate) struct UnsealProgress {
    pub nonce: String,
    pub shares: Vec<Zeroizing<Vec<u8>>>,
}

/// State that exists only while the node is unsealed.
pub(crate) struct Runtime {
    pub router: RwLock<Arc<Router>>,
    /// The `sys/` entry of the mount table (served by the core itself, not a backend).
    pub system_mount: MountEntry,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub expiration: Arc<Expiration>,
    pub leases: crate::leases::Leases,
}

impl Runtime {
    pub fn router(&self) -> Arc<Router> {
        self.router.read().expect("router lock").clone()
    }
}

/// Storage key of the cluster identity.
const CLUSTER_INFO_KEY: &str = "core/cluster-info";

/// The Kura core.
pub struct Core {
    pub(crate) config: CoreConfig,
    pub(crate) physical: Arc<dyn Backend>,
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) progress: tokio::sync::Mutex<UnsealProgress>,
    pub(crate) ha: watch::Sender<HaState>,
    pub(crate) runtime: RwLock<Option<Arc<Runtime>>>,
    pub(crate) factories: BTreeMap<String, BackendFactory>,
    pub(crate) standby: Arc<AtomicBool>,
    /// Serialises seal/unseal and mount-table changes.
    pub(crate) state_lock: tokio::sync::Mutex<()>,
    /// A weak handle to this core, for background tasks.
    pub(crate) self_ref: std::sync::Weak<Core>,
    /// Root-token generation and rekey progress.
    pub(crate) recovery: tokio::sync::Mutex<crate::recovery::RecoveryState>,
    /// Enabled audit devices.
    pub(crate) audit: kura_audit::AuditBroker,
    /// The audit settings of the configuration (replaced on SIGHUP).
    pub(crate) audit_config: RwLock<crate::audit::AuditOptions>,
    /// The cluster plane, when the storage is clustered (see [`Core::set_cluster_plane`]).
    pub(crate) cluster: RwLock<Option<Arc<dyn crate::cluster::ClusterPlane>>>,
    /// This node's UUID: the HA lock value and the key of its `core/leader/` entry.
    pub(crate) node_uuid: String,
    /// The HA task, while unsealed with an HA lock.
    pub(crate) ha_task: std::sync::Mutex<Option<crate::ha::HaTask>>,
    /// The cluster name and ID, while unsealed (standbys included).
    pub(crate) info: RwLock<Option<ClusterInfo>>,
    /// A raft join waiting for unseal keys.
    pub(crate) join: tokio::sync::Mutex<Option<crate::cluster::PendingJoin>>,
    /// The last active-node advertisement read: (uuid, entry).
    pub(crate) leader_cache:
        std::sync::Mutex<Option<(String, crate::cluster::LeaderAdvertisement)>>,
    /// When this node last became active (RFC 3339).
    pub(crate) active_time: RwLock<Option<String>>,
    /// The storage index up to which a standby has invalidated its caches.
    pub(crate) invalidated: watch::Sender<u64>,
    /// The invalidation manager, while unsealed with HA.
    pub(crate) invalidation: std::sync::Mutex<Option<crate::invalidation::InvalidationTask>>,
    /// Whether a standby may serve reads: cleared while the write notifications it depends on
    /// are not flowing (the invalidation stream of PostgreSQL HA is down), so that it forwards
    /// everything rather than serve stale data. Always set with raft.
    pub(crate) standby_reads_ready: AtomicBool,
}

impl Core {
    /// A sealed core over `physical`, with the given engine factories (by type name).
    pub fn new(
        config: CoreConfig,
        physical: Arc<dyn Backend>,
        factories: BTreeMap<String, BackendFactory>,
    ) -> Arc<Self> {
        let barrier = Arc::new(Barrier::new(physical.clone()));
        let (ha, _) = watch::channel(HaState::Sealed);
        Arc::new_cyclic(|self_ref| Core {
            self_ref: self_ref.clone(),
            recovery: tokio::sync::Mutex::new(Default::default()),
            audit: kura_audit::AuditBroker::new(),
            audit_config: RwLock::new(config.audit.clone()),
            config,
            physical,
            barrier,
            progress: tokio::sync::Mutex::new(UnsealProgress::default()),
            ha,
            runtime: RwLock::new(None),
            factories,
            standby: Arc::new(AtomicBool::new(false)),
            state_lock: tokio::sync::Mutex::new(()),
            cluster: RwLock::new(None),
            node_uuid: new_uuid(),
            ha_task: std::sync::Mutex::new(None),
            info: RwLock::new(None),
            join: tokio::sync::Mutex::new(None),
            leader_cache: std::sync::Mutex::new(None),
            active_time: RwLock::new(None),
            invalidated: watch::channel(0).0,
            invalidation: std::sync::Mutex::new(None),
            standby_reads_ready: AtomicBool::new(true),
        })
    }

    /// Attaches the cluster plane (clustered storage). Call before unsealing.
    pub fn set_cluster_plane(&self, plane: Arc<dyn crate::cluster::ClusterPlane>) {
        *self.cluster.write().expect("cluster lock") = Some(plane);
    }

    /// The cluster plane, if attached.
    pub fn cluster_plane(&self) -> Option<Arc<dyn crate::cluster::ClusterPlane>> {
        self.cluster.read().expect("cluster lock").clone()
    }

    /// The cluster plane when it runs raft (integrated storage); `None` otherwise.
    pub fn raft_plane(&self) -> Option<Arc<dyn crate::cluster::ClusterPlane>> {
        self.cluster_plane().filter(|p| p.is_raft())
    }

    /// Watches the HA state.
    pub fn ha_state(&self) -> watch::Receiver<HaState> {
        self.ha.subscribe()
    }

    /// The current HA state.
    pub fn current_state(&self) -> HaState {
        *self.ha.borrow()
    }

    /// The storage index this node has applied (0 without an indexed backend).
    pub fn applied_index(&self) -> u64 {
        self.physical.indexed().map_or(0, |i| i.applied_index())
    }

    /// True when the storage has an applied index (raft): responses carry `X-Vault-Index`.
    pub fn indexed_storage(&self) -> bool {
        self.physical.indexed().is_some()
    }

    /// The physical backend's name (`raft`, `inmem`).
    pub fn storage_type(&self) -> &'static str {
        self.physical.name()
    }

    /// True if the storage offers an HA lock.
    pub fn ha_enabled(&self) -> bool {
        self.physical.ha_lock().is_some()
    }

    /// The core configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub(crate) fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.read().expect("runtime lock").clone()
    }

    /// The cluster identity, once unsealed.
    pub fn cluster_info(&self) -> Option<ClusterInfo> {
        self.info.read().expect("info lock").clone()
    }

    /// Runs `f` on the cluster ID without copying it; `None` while it is unknown (sealed).
    pub fn with_cluster_id<T>(&self, f: impl FnOnce(&str) -> T) -> Option<T> {
        self.info
            .read()
            .expect("info lock")
            .as_ref()
            .map(|i| f(&i.id))
    }

    /// True if the barrier has been initialised.
    pub async fn is_initialized(&self) -> Result<bool> {
        self.barrier.is_initialized().await.map_err(barrier_err)
    }

    /// True while sealed.
    pub fn is_sealed(&self) -> bool {
        self.current_state() == HaState::Sealed
    }

    pub(crate) async fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self.physical.get(SEAL_CONFIG_PATH).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| LogicalError::Internal(format!("seal config: {e}"))),
        }
    }

    /// Initialises a new barrier: root key split into `shares` with `threshold`, root token
    /// created. Leaves the node sealed, as OpenBao does.
    pub async fn initialize(&self, shares: u8, threshold: u8) -> Result<InitResult> {
        self.initialize_with(shares, threshold, None).await
    }

    /// Like [`Core::initialize`], with an explicit root token ID (dev mode).
    pub async fn initialize_with(
        &self,
        shares: u8,
        threshold: u8,
        root_token_id: Option<String>,
    ) -> Result<InitResult> {
        let _guard = self.state_lock.lock().await;
        if self.is_initialized().await? {
            return Err(LogicalError::bad("Vault is already initialized"));
        }
        self.bootstrap_cluster().await?;
        if shares == 0 {
            return Err(LogicalError::bad(
                "number of key shares must be at least one",
            ));
        }
        if threshold == 0 || threshold > shares {
            return Err(LogicalError::bad(
                "invalid seal configuration: threshold must be between 1 and the number of shares",
            ));
        }
        if shares > 1 && threshold == 1 {
            return Err(LogicalError::bad(
                "invalid seal configuration: threshold must be greater than one for multiple shares",
            ));
        }
        let root_key = Zeroizing::new(random_bytes(32));
        let keys: Vec<Zeroizing<Vec<u8>>> = if shares == 1 {
            vec![root_key.clone()]
        } else {
            shamir::split(&root_key, shares, threshold)
                .map_err(|e| LogicalError::Internal(e.to_string()))?
                .into_iter()
                .map(Zeroizing::new)
                .collect()
        };
        self.barrier
            .initialize(&root_key)
            .await
            .map_err(barrier_err)?;
        self.barrier.unseal(&root_key).await.map_err(barrier_err)?;
        let result = self.first_setup(root_token_id).await;
        self.barrier.seal();
        let root_token = result?;
        self.write_seal_config(&SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
            nonce: String::new(),
        })
        .await?;
        Ok(InitResult { keys, root_token })
    }

    pub(crate) async fn write_seal_config(&self, cfg: &SealConfig) -> Result<()> {
        self.physical
            .put(
                SEAL_CONFIG_PATH,
                serde_json::to_vec(cfg).map_err(|e| LogicalError::Internal(e.to_string()))?,
            )
            .await?;
        Ok(())
    }

    /// Writes what a new cluster needs inside the barrier; returns the root token.
    async fn first_setup(&self, root_token_id: Option<String>) -> Result<String> {
        let core_view = BarrierView::new(self.barrier.clone(), "");
        let name = self
            .config
            .cluster_name
            .clone()
            .unwrap_or_else(|| format!("vault-cluster-{}", hex::encode(random_bytes(4))));
        core_view
            .put_json(
                CLUSTER_INFO_KEY,
                &ClusterInfo {
                    id: new_uuid(),
                    name,
                },
            )
            .await?;
        let policies = PolicyStore::new(BarrierView::new(self.barrier.clone(), "sys/policy/"));
        policies.ensure_default().await?;
        core_view
            .put_json(MOUNT_TABLE_KEY, &default_mounts())
            .await?;
        core_view.put_json(AUTH_TABLE_KEY, &default_auth()).await?;
        let tokens = TokenStore::open(BarrierView::new(self.barrier.clone(), "sys/token/")).await?;
        let (id, _) = tokens
            .create(NewToken {
                id: root_token_id,
                policies: vec!["root".into()],
                path: "auth/token/root".into(),
                display_name: "root".into(),
                ..Default::default()
            })
            .await?;
        Ok(id)
    }

    /// Adds one unseal key share. Returns true once unsealed.
    pub async fn submit_unseal_key(&self, key: &[u8]) -> Result<bool> {
        let _guard = self.state_lock.lock().await;
        if self.runtime().is_some() {
            return Ok(true);
        }
        let cfg = match self.seal_config().await? {
            Some(c) => c,
            None => self
                .pending_join_seal_config()
                .await
                .ok_or_else(|| LogicalError::bad("Vault is not initialized"))?,
        };
        let mut progress = self.progress.lock().await;
        if progress.nonce.is_empty() {
            progress.nonce = new_uuid();
        }
        if progress.shares.iter().any(|s| s.as_slice() == key) {
            return Ok(false);
        }
        progress.shares.push(Zeroizing::new(key.to_vec()));
        if progress.shares.len() < cfg.secret_threshold as usize {
            return Ok(false);
        }
        let shares = std::mem::take(&mut progress.shares);
        progress.nonce.clear();
        drop(progress);
        let root_key = combine_shares(cfg.secret_threshold, &shares)?;
        if self.join_pending().await {
            self.complete_join(&root_key).await?;
        }
        self.barrier.unseal(&root_key).await.map_err(|e| {
            if e.is_sealed() {
                LogicalError::Sealed
            } else {
                LogicalError::bad(format!("failed to unseal: {e}"))
            }
        })?;
        if let Err(e) = self.post_unseal().await {
            self.barrier.seal();
            return Err(e);
        }
        // Outside the state lock: the HA task takes it to activate.
        drop(_guard);
        self.settle_ha().await;
        Ok(true)
    }

    /// Unseals with the root key directly (dev mode, tests).
    pub async fn unseal_with_keys(&self, keys: &[Zeroizing<Vec<u8>>]) -> Result<()> {
        for k in keys {
            if self.submit_unseal_key(k).await? {
                return Ok(());
            }
        }
        Err(LogicalError::bad("not enough keys to unseal"))
    }

    /// Current unseal progress: (shares so far, nonce).
    pub async fn unseal_progress(&self) -> (usize, String) {
        let p = self.progress.lock().await;
        (p.shares.len(), p.nonce.clone())
    }

    /// Discards unseal progress.
    pub async fn reset_unseal(&self) {
        let mut p = self.progress.lock().await;
        p.shares.clear();
        p.nonce.clear();
    }

    /// After the barrier is unsealed: without an HA lock the node becomes active at once; with
    /// one it becomes a standby and the HA task (see [`crate::ha`]) makes it active whenever it
    /// holds the lock.
    async fn post_unseal(&self) -> Result<()> {
        let core_view = BarrierView::new(self.barrier.clone(), "");
        let cluster: ClusterInfo = core_view
            .get_json(CLUSTER_INFO_KEY)
            .await?
            .ok_or_else(|| LogicalError::Internal("cluster info missing".into()))?;
        *self.info.write().expect("info lock") = Some(cluster);
        match self.physical.ha_lock() {
            None => self.activate().await,
            Some(lock) => self.start_ha(lock).await,
        }
    }

    /// The stored mount and auth tables, secrets mounts first (the defaults where a table was
    /// never written).
    async fn stored_mount_entries(&self) -> Result<Vec<MountEntry>> {
        let core_view = BarrierView::new(self.barrier.clone(), "");
        let mut entries: Vec<MountEntry> = core_view
            .get_json(MOUNT_TABLE_KEY)
            .await?
            .unwrap_or_else(default_mounts);
        entries.extend(
            core_view
                .get_json::<Vec<MountEntry>>(AUTH_TABLE_KEY)
                .await?
                .unwrap_or_else(default_auth),
        );
        Ok(entries)
    }

    /// Builds the runtime over the stored tables. `read_only`: for a read-serving standby —
    /// nothing is written (no default policy, no token salt) and no expiration task runs.
    pub(crate) async fn build_runtime(&self, read_only: bool) -> Result<Arc<Runtime>> {
        let policies = Arc::new(PolicyStore::new(BarrierView::new(
            self.barrier.clone(),
            "sys/policy/",
        )));
        if !read_only {
            policies.ensure_default().await?;
        }
        let tokens =
            Arc::new(TokenStore::open(BarrierView::new(self.barrier.clone(), "sys/token/")).await?);
        let mut mounts = self.stored_mount_entries().await?;
        let mut mounted = Vec::new();
        let system_mount = match mounts.iter().position(|m| m.backend_type == "system") {
            Some(i) => mounts.remove(i),
            None => default_mounts().remove(0),
        };
        for entry in mounts {
            match self.instantiate(entry.clone(), &tokens, &policies) {
                Ok(m) => mounted.push(m),
                Err(e) => {
                    tracing::error!(path = %entry.path, kind = %entry.backend_type, error = %e, "failed to start mount");
                }
            }
        }
        let cubbyhole = mounted
            .iter()
            .find(|m| m.entry.backend_type == "cubbyhole")
            .map(|m| BarrierView::new(self.barrier.clone(), m.entry.storage_prefix()));
        tokens.set_cubbyhole(cubbyhole);
        let leases = Arc::new(crate::leases::LeaseStore::new(BarrierView::new(
            self.barrier.clone(),
            "sys/expire/",
        )));
        tokens.set_lease_revoker(Arc::new(crate::leases::TokenLeaseRevoker {
            core: self.self_ref.clone(),
        }));
        let expiration = if read_only {
            Expiration::passive()
        } else {
            Expiration::start(tokens.clone(), &leases, self.self_ref.clone()).await?
        };
        Ok(Arc::new(Runtime {
            router: RwLock::new(Arc::new(Router::new(mounted))),
            system_mount,
            tokens,
            policies,
            expiration,
            leases,
        }))
    }

    /// Builds the runtime (router, stores, expiration, audit) and goes active.
    ///
    /// What a standby cached came from write notifications; a storage without a replicated
    /// log (PostgreSQL) cannot promise that the last writes of a failed active node were
    /// notified, so the new active node starts from the storage itself: caches dropped and
    /// the keyring read again.
    pub(crate) async fn activate(&self) -> Result<()> {
        self.drop_runtime().await;
        self.barrier.set_read_only(false);
        self.physical.drop_caches();
        self.barrier.reload_keyring().await.map_err(barrier_err)?;
        let runtime = self.build_runtime(false).await?;
        if let Err(e) = self.start_audit().await {
            runtime.expiration.stop();
            return Err(e);
        }
        *self.runtime.write().expect("runtime lock") = Some(runtime);
        self.standby.store(false, Ordering::Relaxed);
        self.ha.send_replace(HaState::Active);
        Ok(())
    }

    /// Drops the runtime, if any: stops expiration, cleans the backends up, closes audit.
    pub(crate) async fn drop_runtime(&self) {
        let runtime = self.runtime.write().expect("runtime lock").take();
        if let Some(rt) = runtime {
            rt.expiration.stop();
            for m in rt.router().all() {
                m.backend.cleanup().await;
            }
        }
        self.audit.clear();
    }

    /// Drops the active runtime: the node goes back to standby (still unsealed), serving reads
    /// unless `disable_standby_reads`.
    pub(crate) async fn deactivate(&self) {
        self.standby.store(true, Ordering::Relaxed);
        self.barrier.set_read_only(true);
        self.ha.send_replace(HaState::Standby);
        self.drop_runtime().await;
        self.serve_standby_reads().await;
    }

    /// On a standby: builds a read-only runtime and serves reads from local storage; every
    /// write fails with the typed read-only error and is forwarded to the active node.
    pub(crate) async fn serve_standby_reads(&self) {
        if self.config.disable_standby_reads
            || self.physical.write_notifier().is_none()
            || !self.standby_reads_ready.load(Ordering::Acquire)
        {
            self.forward_everything();
            return;
        }
        self.barrier.set_read_only(true);
        let runtime = match self.build_runtime(true).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "this standby cannot serve reads; it forwards everything");
                self.forward_everything();
                return;
            }
        };
        if let Err(e) = self.start_audit().await {
            tracing::warn!(error = %e, "audit devices did not open: this standby forwards everything");
            self.forward_everything();
            return;
        }
        *self.runtime.write().expect("runtime lock") = Some(runtime);
        if self.current_state() == HaState::Standby {
            self.ha.send_replace(HaState::ReadServingStandby);
        }
    }

    /// A standby that cannot serve reads (no runtime) says so: it forwards everything.
    fn forward_everything(&self) {
        if self.current_state() == HaState::ReadServingStandby {
            self.ha.send_replace(HaState::Standby);
        }
    }

    /// Allows or stops standby reads (see `standby_reads_ready`). Stopping drops a standby's
    /// read runtime at once (it then forwards everything); allowing builds it again.
    pub async fn set_standby_reads_ready(&self, ready: bool) {
        let was = self.standby_reads_ready.swap(ready, Ordering::AcqRel);
        if was == ready {
            return;
        }
        let _state = self.state_lock.lock().await;
        if !self.current_state().is_standby() {
            return;
        }
        if ready {
            if self.runtime().is_none() {
                self.serve_standby_reads().await;
            }
        } else {
            self.forward_everything();
            self.drop_runtime().await;
        }
    }

    /// A standby saw the mount or auth table change: rebuilds the router, keeping the backends
    /// of mounts that are still there (their tunables updated), starting new ones and cleaning
    /// up removed ones.
    pub(crate) async fn reload_mounts_on_standby(&self, rt: &Arc<Runtime>) -> Result<()> {
        let mut entries = self.stored_mount_entries().await?;
        entries.retain(|e| e.backend_type != "system");
        let old = rt.router();
        let mut mounted = Vec::with_capacity(entries.len());
        for entry in entries {
            let existing = old.all().iter().find(|m| {
                m.entry.uuid == entry.uuid
                    && m.entry.path == entry.path
                    && m.entry.kind == entry.kind
                    && m.entry.backend_type == entry.backend_type
                    && m.entry.options == entry.options
            });
            match existing {
                Some(m) => {
                    *m.view.config.write().expect("mount config lock") = entry.config.clone();
                    mounted.push(Arc::new(Mounted {
                        entry,
                        backend: m.backend.clone(),
                        view: m.view.clone(),
                        special: m.special.clone(),
                    }));
                }
                None => match self.instantiate(entry.clone(), &rt.tokens, &rt.policies) {
                    Ok(m) => mounted.push(m),
                    Err(e) => {
                        tracing::error!(path = %entry.path, error = %e, "failed to start mount on a standby")
                    }
                },
            }
        }
        let removed: Vec<Arc<Mounted>> = old
            .all()
            .iter()
            .filter(|m| !mounted.iter().any(|n| Arc::ptr_eq(&n.backend, &m.backend)))
            .cloned()
            .collect();
        *rt.router.write().expect("router lock") = Arc::new(Router::new(mounted));
        for m in removed {
            m.backend.cleanup().await;
        }
        Ok(())
    }

    /// Starts the backend for a mount entry.
    pub(crate) fn instantiate(
        &self,
        entry: MountEntry,
        tokens: &Arc<TokenStore>,
        policies: &Arc<PolicyStore>,
    ) -> Result<Arc<Mounted>> {
        let view = Arc::new(MountView {
            config: RwLock::new(entry.config.clone()),
            system_default_ttl: self.config.default_lease_ttl,
            system_max_ttl: self.config.max_lease_ttl,
            standby: self.standby.clone(),
        });
        let backend: Arc<dyn LogicalBackend> = match entry.backend_type.as_str() {
            "token" => Arc::new(TokenBackend::new(
                tokens.clone(),
                policies.clone(),
                view.clone(),
            )),
            other => {
                let factory = self.factories.get(other).ok_or_else(|| {
                    LogicalError::bad(format!("plugin not found in the catalog: {other}"))
                })?;
                factory(BackendConfig {
                    mount: entry.info(),
                    storage: Arc::new(BarrierView::new(
                        self.barrier.clone(),
                        entry.storage_prefix(),
                    )),
                    system: view.clone(),
                })?
            }
        };
        let special = backend.special_paths();
        Ok(Arc::new(Mounted {
            entry,
            backend,
            view,
            special,
        }))
    }

    /// Seals the node: drops the runtime, zeroizes keys.
    pub async fn seal(&self) -> Result<()> {
        self.stop_ha().await;
        self.stop_invalidation();
        let _guard = self.state_lock.lock().await;
        self.drop_runtime().await;
        if let Some(lock) = self.physical.ha_lock() {
            let _ = lock.release().await;
        }
        self.barrier.seal();
        self.barrier.set_read_only(false);
        self.reset_unseal().await;
        *self.info.write().expect("info lock") = None;
        *self.leader_cache.lock().expect("leader cache lock") = None;
        self.ha.send_replace(HaState::Sealed);
        Ok(())
    }

    /// Runs one request through the pipeline.
    pub async fn handle_request(&self, mut req: Request) -> Result<Response> {
        if !req.namespace.is_empty() && req.namespace != "root" && req.namespace != "root/" {
            return Err(LogicalError::bad(format!(
                "namespace {:?} does not exist (only the root namespace exists)",
                req.namespace
            )));
        }
        req.namespace.clear();
        if let Some(resp) = self.handle_unauthenticated_sys(&req).await? {
            return Ok(resp);
        }
        let on_standby =
            match self.current_state() {
                HaState::Active => false,
                HaState::Sealed => return Err(LogicalError::Sealed),
                HaState::ReadServingStandby => true,
                HaState::Standby => return Err(LogicalError::Coded {
                    status: 503,
                    message:
                        "this node is a standby: the request must be forwarded to the active node"
                            .into(),
                }),
            };
        let rt = self.runtime().ok_or(LogicalError::Sealed)?;
        let router = rt.router();
        let is_sys = req.path == "sys" || req.path.starts_with("sys/");
        let mounted = if is_sys {
            None
        } else {
            Some(router.route(&req.path).cloned().ok_or_else(|| {
                if on_standby {
                    // The mount may be new on the active node: it routes the request.
                    return LogicalError::Storage(kura_storage::StorageError::ReadOnly);
                }
                LogicalError::Coded {
                    status: 404,
                    message: format!(
                        "no handler for route {:?}. route entry not found.",
                        req.path
                    ),
                }
            })?)
        };
        if let Some(m) = &mounted {
            let rp = m.entry.route_path();
            req.mount_point = rp.clone();
            req.relative_path = req.path.get(rp.len()..).unwrap_or("").to_string();
        } else {
            req.mount_point = "sys/".into();
            req.relative_path = req.path.strip_prefix("sys/").unwrap_or("").to_string();
        }
        if req.operation == Operation::List && !req.path.ends_with('/') {
            req.path.push('/');
            if !req.relative_path.is_empty() {
                req.relative_path.push('/');
            }
        }

        let special = match &mounted {
            Some(m) => &m.special,
            None => crate::sys::special_paths(),
        };
        let unauthenticated = matches_any(&special.unauthenticated, &req.relative_path);

        // Token and ACL.
        let mut token_entry: Option<TokenEntry> = None;
        let mut denied = false;
        if !unauthenticated {
            let entry = rt
                .tokens
                .lookup(&req.client_token)
                .await?
                .filter(|e| e.num_uses >= 0)
                .ok_or(LogicalError::PermissionDenied)?;
            if !entry.bound_cidrs.is_empty() {
                let allowed = req.remote_addr.is_some_and(|ip| {
                    entry
                        .bound_cidrs
                        .iter()
                        .any(|c| crate::util::cidr_contains(c, ip))
                });
                if !allowed {
                    return Err(LogicalError::PermissionDenied);
                }
            }
            req.token = Some(Arc::new(kura_logical::TokenContext {
                client_token: req.client_token.clone(),
                accessor: entry.accessor.clone(),
                policies: entry.policies.clone(),
                display_name: entry.display_name.clone(),
                entity_id: entry.entity_id.clone(),
                meta: entry.meta.clone(),
                is_root: entry.is_root(),
                storage_id: entry.hash.clone(),
            }));
            // Existence check turns an update into a create where the target is absent.
            if req.operation == Operation::Update {
                if let Some(m) = &mounted {
                    if let Some(false) = m.backend.exists(&req).await? {
                        req.operation = Operation::Create;
                    }
                }
            }
            let acl = rt.policies.acl(&entry.policies).await?;
            // The UI mount endpoints only need a valid token: the handler checks that the
            // token can reach something under the mount, as OpenBao does.
            let acl_exempt = is_sys && req.relative_path.starts_with("internal/ui/mounts");
            let cap = capability_for(req.operation);
            let params = matches!(
                req.operation,
                Operation::Create | Operation::Update | Operation::Patch
            )
            .then_some(&req.data);
            let decision = acl.check(&req.path, cap, params);
            denied = !decision.allowed && !acl_exempt;
            if matches_any(&special.root, &req.relative_path) {
                let sudo = acl.check(&req.path, Capability::SUDO, None);
                denied |= !sudo.allowed;
            }

            token_entry = Some(entry);
        }
        if on_standby
            && must_forward_from_standby(&req, mounted.as_deref(), token_entry.as_ref(), is_sys)
        {
            return Err(LogicalError::Storage(kura_storage::StorageError::ReadOnly));
        }

        // Audit: fail closed — a request no device can record is refused before it runs.
        // With no device enabled there is nothing to record and no record is built.
        let record = (!self.audit.is_empty()).then(|| {
            let mut r = self.audit_request(&req, token_entry.as_ref(), mounted.as_deref());
            if denied {
                r.error = "permission denied".into();
            }
            r
        });
        // A standby records a request only once it knows it served it: a request that turns
        // out to need a write is forwarded, and the active node records it.
        if let Some(r) = record.as_ref().filter(|_| !on_standby) {
            self.audit_log_request(r)?;
        }
        let result = if denied {
            Err(LogicalError::PermissionDenied)
        } else {
            self.execute(&rt, &req, mounted.as_ref(), token_entry, is_sys)
                .await
        };
        if on_standby && result.as_ref().is_err_and(|e| e.is_read_only()) {
            return result;
        }
        if let Some(r) = &record {
            if on_standby {
                self.audit_log_request(r)?;
            }
            self.audit_log_response(r, &result, mounted.as_deref())?;
        }
        result
    }

    /// Runs an authorised request: the backend, then login tokens, leases and wrapping.
    async fn execute(
        &self,
        rt: &Arc<Runtime>,
        req: &Request,
        mounted: Option<&Arc<Mounted>>,
        mut token_entry: Option<TokenEntry>,
        is_sys: bool,
    ) -> Result<Response> {
        let mut last_use = false;
        if let Some(entry) = token_entry.as_mut() {
            last_use = rt.tokens.use_token(entry).await?;
        }

        let result = match mounted {
            Some(m) => m.backend.handle(req).await,
            None => self.handle_sys(rt, req).await,
        };
        if last_use {
            if let Some(entry) = &token_entry {
                rt.tokens.revoke_tree(&entry.hash).await?;
            }
        }
        let mut resp = result?;
        if let (Some(m), Some(r)) = (mounted, resp.as_mut()) {
            if m.entry.kind == MountKind::Auth && m.entry.backend_type != "token" {
                if let Some(auth) = r.auth.as_mut() {
                    self.issue_login_token(rt, m, req, auth, &mut r.warnings)
                        .await?;
                }
            }
        }
        if let (Some(m), Some(r)) = (mounted, resp.as_mut()) {
            // KV returns a TTL hint, not a lease (as in OpenBao: no lease for kv mounts).
            if m.entry.backend_type != "kv" {
                if let Some(lease) = r.lease.as_mut().filter(|l| l.lease_id.is_empty()) {
                    let token_hash = token_entry
                        .as_ref()
                        .map(|e| e.hash.clone())
                        .unwrap_or_default();
                    self.register_lease(rt, &req.path, &token_hash, m.view.as_ref(), lease)
                        .await?;
                }
            }
        }
        if let Some(auth) = resp.as_ref().and_then(|r| r.auth.as_ref()) {
            rt.expiration
                .track_token(&rt.tokens.hash(&auth.client_token), auth.lease_duration);
        }
        let forced_wrap = is_sys && req.relative_path == "wrapping/wrap";
        let wrap_ttl = match req.wrap_ttl {
            Some(t) => Some(t),
            None if forced_wrap => Some(crate::wrapping::DEFAULT_WRAP_TTL),
            None => None,
        }
        .filter(|t| !t.is_zero());
        if let Some(ttl) = wrap_ttl {
            if let Some(r) = resp.take_if(|r| r.data.is_some() || r.auth.is_some()) {
                return self.wrap_response(rt, r, ttl, &req.path).await;
            }
        }
        match resp {
            Some(r) => Ok(r),
            None if matches!(req.operation, Operation::Read | Operation::List) => {
                Err(LogicalError::NotFound)
            }
            None => Ok(Response {
                status: Some(204),
                ..Default::default()
            }),
        }
    }

    /// Turns the `auth` a login handler returned into a real token: policies, TTLs clamped by
    /// the mount, an orphan token whose path is the login path.
    async fn issue_login_token(
        &self,
        rt: &Runtime,
        mount: &Mounted,
        req: &Request,
        auth: &mut kura_logical::Auth,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        use kura_logical::SystemView;
        let mut policies: Vec<String> = auth
            .policies
            .iter()
            .chain(auth.token_policies.iter())
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if !auth.no_default_policy && !policies.iter().any(|p| p == "root") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        let mount_max = mount.view.max_lease_ttl();
        let max = match auth.max_ttl {
            0 => mount_max,
            s => Duration::from_secs(s).min(mount_max),
        };
        let explicit_max = Duration::from_secs(auth.explicit_max_ttl);
        let period = Duration::from_secs(auth.period);
        let mut ttl = if !period.is_zero() {
            period
        } else if auth.ttl > 0 {
            Duration::from_secs(auth.ttl)
        } else {
            mount.view.default_lease_ttl()
        };
        if !explicit_max.is_zero() && ttl > explicit_max {
            ttl = explicit_max;
        }
        if period.is_zero() && ttl > max {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                kura_config::duration::format_duration(ttl),
                kura_config::duration::format_duration(max)
            ));
            ttl = max;
        }
        let mount_name = mount.entry.path.trim_end_matches('/').replace('/', "-");
        let display_name = if auth.display_name.is_empty() {
            mount_name
        } else {
            format!("{mount_name}-{}", auth.display_name)
        };
        let (id, entry) = rt
            .tokens
            .create(NewToken {
                policies: policies.clone(),
                path: req.path.clone(),
                meta: auth.metadata.clone().unwrap_or_default(),
                display_name,
                num_uses: auth.num_uses as i64,
                ttl,
                explicit_max_ttl: explicit_max,
                max_ttl: max,
                period,
                renewable: true,
                bound_cidrs: auth.bound_cidrs.clone(),
                ..Default::default()
            })
            .await?;
        auth.client_token = id;
        auth.accessor = entry.accessor.clone();
        auth.lease_duration = entry.creation_ttl as u64;
        auth.renewable = entry.renewable;
        auth.policies = policies.clone();
        auth.token_policies = policies;
        auth.orphan = true;
        auth.token_type = "service".into();
        Ok(())
    }

    /// Creates a token directly (dev-mode bootstrap and tests).
    pub async fn create_token(&self, policies: Vec<String>, ttl: Duration) -> Result<String> {
        let rt = self.runtime().ok_or(LogicalError::Sealed)?;
        let (id, _) = rt
            .tokens
            .create(NewToken {
                policies,
                path: "auth/token/create".into(),
                display_name: "token".into(),
                ttl,
                renewable: true,
                ..Default::default()
            })
            .await?;
        Ok(id)
    }

    /// Mounts a secrets engine (used by dev mode and `sys/mounts`).
    pub async fn mount(
        &self,
        path: &str,
        backend_type: &str,
        description: &str,
        config: MountConfig,
        options: BTreeMap<String, String>,
        kind: MountKind,
    ) -> Result<()> {
        crate::sys::mount_engine(self, path, backend_type, description, config, options, kind).await
    }

    /// The barrier (for key status and raw-storage tests).
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    pub(crate) fn core_view(&self) -> BarrierView {
        BarrierView::new(self.barrier.clone(), "")
    }

    pub(crate) async fn persist_tables(&self, rt: &Runtime, router: &Router) -> Result<()> {
        let mut mounts: Vec<MountEntry> = vec![rt.system_mount.clone()];
        mounts.extend(
            router
                .entries(MountKind::Secret)
                .into_iter()
                .map(|m| m.entry.clone()),
        );
        let auth: Vec<MountEntry> = router
            .entries(MountKind::Auth)
            .into_iter()
            .map(|m| m.entry.clone())
            .collect();
        let view = self.core_view();
        view.transaction(vec![
            kura_storage::TxnOp::Put {
                key: MOUNT_TABLE_KEY.into(),
                value: serde_json::to_vec(&mounts)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?,
            },
            kura_storage::TxnOp::Put {
                key: AUTH_TABLE_KEY.into(),
                value: serde_json::to_vec(&auth)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?,
            },
        ])
        .await
    }
}

/// Combines unseal-key shares into the key they were split from (with a threshold of one, the
/// single share is the key itself).
pub(crate) fn combine_shares(
    threshold: u8,
    shares: &[Zeroizing<Vec<u8>>],
) -> Result<Zeroizing<Vec<u8>>> {
    if threshold <= 1 {
        return shares
            .first()
            .cloned()
            .ok_or_else(|| LogicalError::bad("no key shares given"));
    }
    let refs: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
    shamir::combine(&refs)
        .map(Zeroizing::new)
        .map_err(|e| LogicalError::bad(e.to_string()))
}

/// Decodes an unseal key given as hex or base64.
pub(crate) fn decode_key(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(b);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| LogicalError::bad("'key' must be a valid hex or base64 string"))
}

/// `sys/` paths a read-serving standby runs itself although the operation is not a read: they
/// compute an answer without writing.
const SYS_UPDATES_SERVED_ON_STANDBY: &[&str] = &[
    "capabilities",
    "capabilities-self",
    "capabilities-accessor",
    "tools/hash",
    "tools/random",
    "wrapping/lookup",
];

/// Whether a read-serving standby hands this request to the active node before running it:
/// response wrapping, use-limited tokens, writes to `sys/` and auth mounts (logins and their
/// configuration), and whatever a backend's path table marks as forwarded. Anything else runs
/// locally and is forwarded only if it tries to write.
fn must_forward_from_standby(
    req: &Request,
    mounted: Option<&Mounted>,
    token: Option<&TokenEntry>,
    is_sys: bool,
) -> bool {
    if req.wrap_ttl.is_some() || token.is_some_and(|t| t.num_uses > 0) {
        return true;
    }
    let read = matches!(req.operation, Operation::Read | Operation::List);
    if is_sys {
        let p = req.relative_path.trim_end_matches('/');
        return !read
            && !SYS_UPDATES_SERVED_ON_STANDBY
                .iter()
                .any(|s| p == *s || p.starts_with(&format!("{s}/")));
    }
    match mounted {
        Some(m) => {
            (m.entry.kind == MountKind::Auth && !read)
                || m.backend
                    .forwards_on_standby(&req.relative_path, req.operation)
        }
        None => !read,
    }
}

fn capability_for(op: Operation) -> Capability {
    match op {
        Operation::Read | Operation::Help => Capability::READ,
        Operation::Create => Capability::CREATE,
        Operation::Update => Capability::UPDATE,
        Operation::Patch => Capability::PATCH,
        Operation::Delete => Capability::DELETE,
        Operation::List => Capability::LIST,
    }
}

/// Matches a path against special-path patterns (a trailing `*` is a prefix match).
pub(crate) fn matches_any(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| special_path_matches(p, path))
}

/// One special-path pattern: a trailing `*` matches any rest, and a `+` segment matches exactly
/// one non-empty path segment (`issuer/+/pem`), as in OpenBao.
fn special_path_matches(pattern: &str, path: &str) -> bool {
    let (pattern, prefix) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    if !pattern.contains('+') {
        return if prefix {
            path.starts_with(pattern)
        } else {
            path == pattern || path.trim_end_matches('/') == pattern
        };
    }
    let path = if prefix {
        path
    } else {
        path.trim_end_matches('/')
    };
    let wanted: Vec<&str> = pattern.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() < wanted.len() || (!prefix && segments.len() != wanted.len()) {
        return false;
    }
    wanted.iter().zip(&segments).enumerate().all(|(i, (w, s))| {
        if *w == "+" {
            !s.is_empty()
        } else if prefix && i + 1 == wanted.len() {
            s.starts_with(w)
        } else {
            s == w
        }
    })
}

fn mount_entry(path: &str, backend_type: &str, description: &str, kind: MountKind) -> MountEntry {
    let accessor_prefix = match kind {
        MountKind::Secret => backend_type.to_string(),
        MountKind::Auth => format!("auth_{backend_type}"),
    };
    MountEntry {
        path: path.into(),
        backend_type: backend_type.into(),
        description: description.into(),
        uuid: new_uuid(),
        accessor: format!("{accessor_prefix}_{}", hex::encode(random_bytes(4))),
        config: MountConfig::default(),
        options: BTreeMap::new(),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        kind,
    }
}

pub(crate) fn new_mount_entry(
    path: &str,
    backend_type: &str,
    description: &str,
    kind: MountKind,
) -> MountEntry {
    mount_entry(path, backend_type, description, kind)
}

fn default_mounts() -> Vec<MountEntry> {
    let mut cubbyhole = mount_entry(
        "cubbyhole/",
        "cubbyhole",
        "per-token private secret storage",
        MountKind::Secret,
    );
    cubbyhole.local = true;
    vec![
        mount_entry(
            "sys/",
            "system",
            "system endpoints used for control, policy and debugging",
            MountKind::Secret,
        ),
        cubbyhole,
    ]
}

fn default_auth() -> Vec<MountEntry> {
    let mut token = mount_entry(
        "token/",
        "token",
        "token based credentials",
        MountKind::Auth,
    );
    token.config.token_type = "default-service".into();
    vec![token]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_path_matching() {
        let pats = vec![
            "login/*".to_string(),
            "accessors*".to_string(),
            "exact".to_string(),
        ];
        assert!(matches_any(&pats, "login/bob"));
        assert!(matches_any(&pats, "accessors/"));
        assert!(matches_any(&pats, "exact"));
        assert!(!matches_any(&pats, "exactly"));
        assert!(!matches_any(&pats, "logi"));

        let plus = vec!["issuer/+/pem".to_string(), "issuer/+/crl/*".to_string()];
        assert!(matches_any(&plus, "issuer/default/pem"));
        assert!(matches_any(&plus, "issuer/default/pem/"));
        assert!(!matches_any(&plus, "issuer//pem"));
        assert!(!matches_any(&plus, "issuer/a/b/pem"));
        assert!(!matches_any(&plus, "issuer/default/der"));
        assert!(matches_any(&plus, "issuer/x/crl/pem"));
        assert!(!matches_any(&plus, "issuer/x/crl"));
    }

    #[test]
    fn decodes_hex_and_base64_keys() {
        assert_eq!(decode_key("0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_key("AQI=").unwrap(), vec![1, 2]);
        assert_eq!(decode_key("!!").unwrap_err().status(), 400);
    }
}
