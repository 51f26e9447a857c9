//! Kura's integrated storage (`storage "raft"`): openraft over redb.
//!
//! [`RaftBackend::open`] opens (or creates) `<path>/kura.redb` — raft log, vote, state machine,
//! snapshot metadata — and `<path>/snapshots/`, starts openraft and, on first start, initialises
//! a cluster whose single voter is this node. Every write is replicated through the raft log,
//! committed durably (fsync) and applied to the state machine before it is acknowledged; reads
//! and lists are served from the local state machine without taking any write lock.
//!
//! Writes: each `put`, `delete` or `transaction` is one atomic [`Command::Write`] transaction.
//! openraft 0.9 fsyncs every `client_write` separately, so a single writer task groups the
//! transactions that queue up while the previous log entry commits into the next entry (group
//! commit: one fsync for many writes); each transaction is still applied atomically and in order.
//! State-machine applies are not fsynced on their own: they become durable with the next log
//! commit, and after a crash raft re-applies the log (see `db`).
//!
//! Capabilities: a write notifier (one [`WriteBatch`] per applied log entry, in log order, with
//! the raft log index; entries without keys — blank, membership, HA records — report an empty
//! key list, and an installed snapshot reports every key it changed), an [`Indexed`] applied
//! index, and an HA lock whose holder is the raft leader.
//!
//! Cluster-ready seams: node ids are operator-chosen strings mapped to random `u64` raft ids
//! (stored locally, and in the membership's [`KuraNode`]s); the membership lives in the state
//! machine and in snapshots; peers are reached through a [`RaftTransport`] that the cluster layer
//! provides ([`NoTransport`] for a node without peers).

#![warn(missing_docs)]

mod codec;
mod db;
mod log_store;
mod network;
mod snapshot;
mod state_machine;
mod types;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use kura_storage::{
    children_of, validate_key, Backend, HaLock, Indexed, LockGuard, Result, StorageError, TxnOp,
    WriteBatch, WriteNotifier,
};
use openraft::{ServerState, SnapshotPolicy};
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use codec::{decode_entry, encode_command, encode_entry, DecodeError};
pub use log_store::LogStore;
pub use network::{
    CancelFuture, NetworkFactory, NoRoute, NoTransport, PeerClient, RaftTransport, RpcError,
    SnapshotError,
};
pub use snapshot::SnapshotFile;
pub use state_machine::{SnapshotBuilder, StateMachine};
pub use types::{
    Command, Entry, Holder, KuraNode, LogId, Membership, NodeId, Op, Raft, RaftMetrics,
    RaftStorageError, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};

use db::{DbError, DbResult, NodeIdentity, KV, LOG_META, META_NODE};
use state_machine::SmShared;
use writer::{BatchLimits, Pending, WriteReq};

/// Default limit of one value: 16 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Default number of log entries between snapshots (OpenBao's `snapshot_threshold`).
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 8192;
/// Default number of log entries kept after a snapshot (OpenBao's `trailing_logs`).
pub const DEFAULT_TRAILING_LOGS: u64 = 10_000;
/// Default byte bound of redb's page cache.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How long a step-down waits for another node to take over leadership.
pub const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Name of the database file inside the raft directory.
pub const DB_FILE: &str = "kura.redb";
/// Name of the snapshot directory inside the raft directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// How to open the raft storage.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Directory of the raft data (`path` in the `storage "raft"` stanza).
    pub path: PathBuf,
    /// This node's name (`node_id`). Empty: use the name stored by an earlier start, or make
    /// up a random one on the first start.
    pub node_id: String,
    /// Advertised API address of this node, recorded in the membership.
    pub api_addr: String,
    /// Advertised cluster address of this node, recorded in the membership.
    pub cluster_addr: String,
    /// Initialise a single-voter cluster of this node when the storage was never initialised.
    /// A node that is going to join an existing cluster sets this to `false`.
    pub initialize: bool,
    /// Largest value accepted, in bytes; larger ones fail with
    /// [`StorageError::ValueTooLarge`].
    pub max_value_bytes: usize,
    /// Log entries between two snapshots.
    pub snapshot_threshold: u64,
    /// Log entries kept after a snapshot (for followers that lag behind).
    pub trailing_logs: u64,
    /// Byte bound of redb's page cache.
    pub cache_bytes: usize,
    /// Leader heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max: Duration,
    /// Most key and value bytes grouped into one log entry.
    pub max_batch_bytes: usize,
    /// Most transactions grouped into one log entry.
    pub max_batch_txns: usize,
    /// Log entries submitted and not yet applied; writes arriving meanwhile are grouped.
    pub max_inflight_entries: usize,
    /// Capacity of the write-notification channel (a slower subscriber sees `Lagged`).
    pub notify_capacity: usize,
    /// How long [`RaftBackend::open`] waits for a single-voter node to become leader and
    /// apply its whole log.
    pub ready_timeout: Duration,
}

impl RaftOptions {
    /// Options with defaults for a node named `node_id` storing its data under `path`.
    pub fn new(path: impl Into<PathBuf>, node_id: impl Into<String>) -> Self {
        RaftOptions {
            path: path.into(),
            node_id: node_id.into(),
            api_addr: String::new(),
            cluster_addr: String::new(),
            initialize: true,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            snapshot_threshold: DEFAULT_SNAPSHOT_THRESHOLD,
            trailing_logs: DEFAULT_TRAILING_LOGS,
            cache_bytes: DEFAULT_CACHE_BYTES,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            max_batch_bytes: 8 * 1024 * 1024,
            max_batch_txns: 1024,
            max_inflight_entries: 1,
            notify_capacity: 4096,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors of opening or shutting down the raft storage.
#[derive(Debug, thiserror::Error)]
pub enum RaftBackendError {
    /// The data directory could not be created or read.
    #[error("raft storage directory {path:?}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The database could not be opened or read.
    #[error("raft database: {0}")]
    Database(String),
    /// The storage belongs to a node with another name.
    #[error("raft storage belongs to node {stored:?}, but node_id is {configured:?}")]
    NodeIdMismatch {
        /// The name stored on disk.
        stored: String,
        /// The configured name.
        configured: String,
    },
    /// The raft timing options are inconsistent.
    #[error("invalid raft options: {0}")]
    Options(String),
    /// openraft failed to start or to initialise the cluster.
    #[error("raft failed to start: {0}")]
    Raft(String),
    /// A single-voter node did not become leader in time.
    #[error("raft node did not become leader within {0:?}")]
    NotReady(Duration),
}

impl From<DbError> for RaftBackendError {
    fn from(e: DbError) -> Self {
        RaftBackendError::Database(e.to_string())
    }
}

/// The HA lock held by this node.
struct Held {
    lost: watch::Sender<bool>,
}

struct Inner {
    raft: Raft,
    id: NodeId,
    name: String,
    max_value_bytes: usize,
    /// The raft directory (snapshot exports and restores are staged here).
    dir: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    writer: Mutex<Option<mpsc::Sender<WriteReq>>>,
    notify: broadcast::Sender<WriteBatch>,
    applied: watch::Receiver<u64>,
    held: Mutex<Option<Held>>,
    closed: AtomicBool,
}

/// The raft storage backend. Cloning is cheap and shares the node.
#[derive(Clone)]
pub struct RaftBackend {
    inner: Arc<Inner>,
}

fn dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> RaftBackendError + '_ {
    move |source| RaftBackendError::Dir {
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Loads (or creates) this node's identity.
fn resolve_identity(
    db: &Database,
    configured: &str,
) -> std::result::Result<NodeIdentity, RaftBackendError> {
    let stored: Option<NodeIdentity> = db::read_json(db, LOG_META, META_NODE)?;
    match stored {
        Some(id) if configured.is_empty() || id.name == configured => Ok(id),
        Some(id) => Err(RaftBackendError::NodeIdMismatch {
            stored: id.name,
            configured: configured.to_string(),
        }),
        None => {
            let random = loop {
                let v = uuid::Uuid::new_v4().as_u64_pair().0;
                if v != 0 {
                    break v;
                }
            };
            let name = if configured.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                configured.to_string()
            };
            let ident = NodeIdentity { name, id: random };
            db::write_json(db, LOG_META, META_NODE, &ident, true)?;
            Ok(ident)
        }
    }
}

impl RaftBackend {
    /// Opens the raft storage of a node without peers (see [`Self::open_with_transport`]).
    pub async fn open(opts: RaftOptions) -> std::result::Result<Self, RaftBackendError> {
        Self::open_with_transport(opts, Arc::new(NoTransport)).await
    }

    /// Opens (or creates) the raft storage under `opts.path`, starts raft with `transport` for
    /// its peers, initialises a single-voter cluster if the storage is new and
    /// `opts.initialize` is set, and — when this node is the only voter — waits until it leads
    /// and has applied its whole log, so that reads see every committed write.
    pub async fn open_with_transport(
        opts: RaftOptions,
        transport: Arc<dyn RaftTransport>,
    ) -> std::result::Result<Self, RaftBackendError> {
        let config = openraft::Config {
            cluster_name: "kura".into(),
            heartbeat_interval: opts.heartbeat_interval.as_millis() as u64,
            election_timeout_min: opts.election_timeout_min.as_millis() as u64,
            election_timeout_max: opts.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_threshold.max(1)),
            max_in_snapshot_log_to_keep: opts.trailing_logs,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftBackendError::Options(e.to_string()))?;

        let snap_dir = opts.path.join(SNAPSHOT_DIR);
        create_private_dir(&opts.path).map_err(dir_err(&opts.path))?;
        create_private_dir(&snap_dir).map_err(dir_err(&snap_dir))?;

        let db_path = opts.path.join(DB_FILE);
        let cache = opts.cache_bytes;
        let configured = opts.node_id.clone();
        let snap_dir2 = snap_dir.clone();
        let (db, ident, applied) =
            tokio::task::spawn_blocking(move || -> std::result::Result<_, RaftBackendError> {
                if !db_path.exists() {
                    // Created here so that it is private to the owner; redb initialises it.
                    snapshot::private_file(&db_path).map_err(|e| {
                        RaftBackendError::Database(format!("creating {db_path:?}: {e}"))
                    })?;
                }
                let db = redb::Builder::new()
                    .set_cache_size(cache)
                    .create(&db_path)
                    .map_err(|e| RaftBackendError::Database(format!("{db_path:?}: {e}")))?;
                db::create_tables(&db)?;
                let ident = resolve_identity(&db, &configured)?;
                let current = state_machine::read_current_snapshot(&db)?;
                state_machine::clean_snapshot_dir(
                    &snap_dir2,
                    current.as_ref().map(|c| c.file.as_str()),
                )
                .map_err(dir_err(&snap_dir2))?;
                let (applied, _) = state_machine::read_applied(&db)?;
                Ok((Arc::new(db), ident, applied))
            })
            .await
            .map_err(|e| RaftBackendError::Database(e.to_string()))??;

        let (notify, _) = broadcast::channel(opts.notify_capacity.max(16));
        let (applied_tx, applied_rx) = watch::channel(applied.map_or(0, |l| l.index));
        let shared = Arc::new(SmShared {
            db: db.clone(),
            snap_dir,
            notify: notify.clone(),
            applied: applied_tx,
            snapshot_lock: tokio::sync::Mutex::new(()),
        });
        let raft = Raft::new(
            ident.id,
            Arc::new(config),
            NetworkFactory::new(transport),
            LogStore::new(db.clone()),
            StateMachine::new(shared),
        )
        .await
        .map_err(|e| RaftBackendError::Raft(e.to_string()))?;

        let me = KuraNode {
            name: ident.name.clone(),
            api_addr: opts.api_addr.clone(),
            cluster_addr: opts.cluster_addr.clone(),
        };
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer::run(
            raft.clone(),
            rx,
            BatchLimits {
                max_bytes: opts.max_batch_bytes,
                max_txns: opts.max_batch_txns.max(1),
                max_inflight: opts.max_inflight_entries.max(1),
            },
        ));
        let backend = RaftBackend {
            inner: Arc::new(Inner {
                raft,
                id: ident.id,
                name: ident.name,
                // Values are framed with 32-bit lengths.
                max_value_bytes: opts.max_value_bytes.min(u32::MAX as usize),
                dir: opts.path.clone(),
                db: RwLock::new(Some(db)),
                writer: Mutex::new(Some(tx)),
                notify,
                applied: applied_rx,
                held: Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
        };
        if let Err(e) = backend.start(me, &opts).await {
            // Stop raft and close the database so a later open can succeed.
            if let Err(shutdown) = backend.shutdown().await {
                tracing::warn!(error = %shutdown, "raft shutdown after a failed open");
            }
            return Err(e);
        }
        Ok(backend)
    }

    /// Initialises the cluster if needed, waits until a single voter is ready, and clears a
    /// stale HA holder record of this node.
    async fn start(
        &self,
        me: KuraNode,
        opts: &RaftOptions,
    ) -> std::result::Result<(), RaftBackendError> {
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        if !initialized && opts.initialize {
            tracing::info!(node = %me.name, id = self.inner.id, "initialising single-node raft cluster");
            raft.initialize(BTreeMap::from([(self.inner.id, me)]))
                .await
                .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        }
        self.await_ready(opts.ready_timeout).await?;
        self.clear_own_holder().await
    }

    /// Clears an HA holder record this node left behind before it restarted: nobody holds the
    /// lock until `acquire` is called again.
    ///
    /// Only a single voter does this: a member of a larger cluster may believe after a restart
    /// that it still leads (openraft restores a committed vote for itself) while it cannot reach
    /// its peers — waiting for that entry to commit would block the start forever. In a larger
    /// cluster the next node to take the lock overwrites the record anyway.
    async fn clear_own_holder(&self) -> std::result::Result<(), RaftBackendError> {
        let single_voter = self
            .inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .eq([self.inner.id]);
        if !self.is_leader() || !single_voter {
            return Ok(());
        }
        let db = self
            .database()
            .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        let holder = tokio::task::spawn_blocking(move || state_machine::read_holder(&db))
            .await
            .map_err(|e| RaftBackendError::Database(e.to_string()))??;
        if holder.is_some_and(|h| h.node == self.inner.id) {
            self.inner
                .submit(Pending::Other(Command::ClearHolder {
                    node: self.inner.id,
                }))
                .await
                .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// For a single-voter cluster: elect now and wait for the leader to apply its whole log.
    async fn await_ready(&self, timeout: Duration) -> std::result::Result<(), RaftBackendError> {
        let raft = &self.inner.raft;
        let id = self.inner.id;
        let voters = raft
            .with_raft_state(|st| {
                st.membership_state
                    .effective()
                    .voter_ids()
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        if voters != [id] {
            return Ok(());
        }
        if raft.metrics().borrow().state != ServerState::Leader {
            raft.trigger()
                .elect()
                .await
                .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        }
        raft.wait(Some(timeout))
            .metrics(
                |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(id)
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "single-voter node is leader and has applied its log",
            )
            .await
            .map_err(|_| RaftBackendError::NotReady(timeout))?;
        Ok(())
    }

    /// Stops raft, waits until its tasks let go of the database, makes every applied change
    /// durable and closes the database. Later operations fail with
    /// [`StorageError::Unavailable`].
    pub async fn shutdown(&self) -> std::result::Result<(), RaftBackendError> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.writer.lock().expect("writer lock").take();
        if let Some(held) = self.inner.held.lock().expect("ha lock").take() {
            held.lost.send_replace(true);
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| RaftBackendError::Raft(e.to_string()))?;
        let db = self.inner.db.write().expect("db lock").take();
        let Some(db) = db else {
            return Ok(());
        };
        // The state machine worker and snapshot builders finish on their own after the raft
        // core stops; wait for them to drop their handles.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while Arc::strong_count(&db) > 1 {
            if tokio::time::Instant::now() > deadline {
                return Err(RaftBackendError::Database(
                    "raft tasks still hold the database after 30s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::spawn_blocking(move || -> std::result::Result<(), DbError> {
            // An empty durable commit persists the state machine's non-fsynced applies.
            let txn = db.begin_write()?;
            txn.commit()?;
            drop(db);
            Ok(())
        })
        .await
        .map_err(|e| RaftBackendError::Database(e.to_string()))??;
        Ok(())
    }

    /// The openraft handle: the cluster layer feeds incoming RPCs to it and changes membership.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// This node's raft id.
    pub fn node_id(&self) -> NodeId {
        self.inner.id
    }

    /// This node's name (`node_id` in the configuration).
    pub fn node_name(&self) -> &str {
        &self.inner.name
    }

    /// The members of the cluster as this node knows them: raft id, name and addresses.
    pub fn members(&self) -> BTreeMap<NodeId, KuraNode> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect()
    }

    /// A watch of openraft's metrics (state, leader, term, log and applied indexes).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.inner.raft.metrics()
    }

    /// Whether this node is currently the raft leader.
    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// Builds a snapshot of everything applied so far and waits (at most `timeout`) until it is
    /// the current snapshot; returns its last log id. Log entries older than the snapshot minus
    /// `trailing_logs` are then purged.
    pub async fn snapshot(&self, timeout: Duration) -> Result<Option<LogId>> {
        self.check_open()?;
        let applied = self.inner.raft.metrics().borrow().last_applied;
        let deadline = tokio::time::Instant::now() + timeout;
        // A trigger is ignored while a snapshot (possibly an older one, started by the policy)
        // is being built: trigger again until one covers `applied`.
        let m = loop {
            self.inner
                .raft
                .trigger()
                .snapshot()
                .await
                .map_err(writer::map_fatal)?;
            let slice = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(200));
            match self
                .inner
                .raft
                .wait(Some(slice))
                .metrics(|m| m.snapshot >= applied, "snapshot built")
                .await
            {
                Ok(m) => break m,
                Err(openraft::metrics::WaitError::Timeout(..))
                    if tokio::time::Instant::now() < deadline => {}
                Err(openraft::metrics::WaitError::Timeout(..)) => {
                    return Err(StorageError::IndexTimeout(applied.map_or(0, |l| l.index)))
                }
                Err(openraft::metrics::WaitError::ShuttingDown) => {
                    return Err(StorageError::Unavailable("raft is stopped".into()))
                }
            }
        };
        Ok(m.snapshot)
    }

    /// Every key and value of the state machine as of one consistent read, in the snapshot file
    /// format (see the `snapshot` module): what `sys/storage/raft/snapshot` hands out.
    pub async fn export_snapshot(&self) -> Result<Vec<u8>> {
        let db = self.database()?;
        let staging = self
            .inner
            .dir
            .join(format!("export-{}.tmp", uuid::Uuid::new_v4().simple()));
        tokio::task::spawn_blocking(move || -> DbResult<Vec<u8>> {
            let result = (|| -> DbResult<Vec<u8>> {
                let txn = db.begin_read()?;
                let (applied, membership) = {
                    let meta = txn.open_table(db::SM_META)?;
                    let applied: Option<LogId> =
                        db::get_json::<Option<LogId>, _>(&meta, db::SM_APPLIED)?.flatten();
                    let membership: StoredMembership =
                        db::get_json(&meta, db::SM_MEMBERSHIP)?.unwrap_or_default();
                    (applied, membership)
                };
                let header = snapshot::SnapshotHeader {
                    meta: SnapshotMeta {
                        last_log_id: applied,
                        last_membership: membership,
                        snapshot_id: format!("export-{}", uuid::Uuid::new_v4().simple()),
                    },
                    holder: None,
                };
                let mut w = snapshot::SnapshotWriter::create(&staging, &header)?;
                let kv = txn.open_table(KV)?;
                for item in kv.iter()? {
                    let (k, v) = item?;
                    w.record(k.value(), v.value())?;
                }
                w.finish()?;
                Ok(std::fs::read(&staging)?)
            })();
            let _ = std::fs::remove_file(&staging);
            result
        })
        .await
        .map_err(|e| StorageError::Io(e.to_string()))?
        .map_err(|e| e.to_storage())
    }

    /// Checks a snapshot made by [`Self::export_snapshot`] (format and checksum) and returns
    /// its keys and values, in key order. Nothing is changed.
    pub async fn read_snapshot(&self, data: Vec<u8>) -> Result<Vec<(String, Vec<u8>)>> {
        self.check_open()?;
        let staging = self
            .inner
            .dir
            .join(format!("restore-{}.tmp", uuid::Uuid::new_v4().simple()));
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(String, Vec<u8>)>> {
            let result = (|| {
                std::fs::write(&staging, &data)?;
                drop(data);
                let (mut reader, _header) = snapshot::SnapshotReader::open(&staging)?;
                let mut pairs = Vec::new();
                while let Some(pair) = reader.next()? {
                    pairs.push(pair);
                }
                Ok(pairs)
            })();
            let _ = std::fs::remove_file(&staging);
            result
        })
        .await
        .map_err(|e| StorageError::Io(e.to_string()))?
        .map_err(|e| StorageError::Corrupt(format!("invalid snapshot: {e}")))
    }

    /// Replaces every key and value of the cluster with `pairs` (from [`Self::read_snapshot`])
    /// through the raft log; returns the index at which the restore was applied. Membership and
    /// the HA holder are not part of a restore.
    pub async fn restore_snapshot(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<u64> {
        self.check_open()?;
        for (key, value) in &pairs {
            validate_key(key)?;
            if value.len() > self.inner.max_value_bytes {
                return Err(StorageError::ValueTooLarge {
                    key: key.clone(),
                    size: value.len(),
                    limit: self.inner.max_value_bytes,
                });
            }
        }
        self.inner
            .submit(Pending::Other(Command::Restore(pairs)))
            .await
    }

    /// Applies `ops` atomically through the raft log and returns the log index at which they
    /// were applied.
    pub async fn write(&self, ops: Vec<TxnOp>) -> Result<u64> {
        let mut size = 0usize;
        for op in &ops {
            validate_key(op.key())?;
            size += op.key().len();
            if let TxnOp::Put { key, value } = op {
                if value.len() > self.inner.max_value_bytes {
                    return Err(StorageError::ValueTooLarge {
                        key: key.clone(),
                        size: value.len(),
                        limit: self.inner.max_value_bytes,
                    });
                }
                size += value.len();
            }
        }
        if ops.is_empty() {
            return Ok(*self.inner.applied.borrow());
        }
        let ops = ops.into_iter().map(Op::from).collect();
        self.inner.submit(Pending::Txn(ops, size)).await
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StorageError::Unavailable(
                "raft storage is shut down".into(),
            ));
        }
        Ok(())
    }

    fn database(&self) -> Result<Arc<Database>> {
        self.check_open()?;
        self.inner
            .db
            .read()
            .expect("db lock")
            .clone()
            .ok_or_else(|| StorageError::Unavailable("raft storage is shut down".into()))
    }

    /// Runs a read-only closure against the state machine's key-value table.
    async fn read_kv<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> db::DbResult<T>
            + Send
            + 'static,
    {
        let db = self.database()?;
        tokio::task::spawn_blocking(move || -> db::DbResult<T> {
            let txn = db.begin_read()?;
            let table = txn.open_table(KV)?;
            f(&table)
        })
        .await
        .map_err(|e| StorageError::Io(e.to_string()))?
        .map_err(|e| e.to_storage())
    }
}

impl Inner {
    async fn submit(&self, pending: Pending) -> Result<u64> {
        let sender = self
            .writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or_else(|| StorageError::Unavailable("raft storage is shut down".into()))?;
        let (done, rx) = oneshot::channel();
        sender
            .send(WriteReq { pending, done })
            .await
            .map_err(|_| StorageError::Unavailable("raft storage is shut down".into()))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("raft storage is shut down".into()))?
    }
}

/// Immediate children of `prefix` in the key-value table, skipping over the contents of each
/// child folder with a fresh range seek instead of reading every key below it.
fn list_children(
    table: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> db::DbResult<Vec<String>> {
    let mut out = Vec::new();
    let mut start = prefix.to_string();
    'seek: loop {
        for item in table.range::<&str>(start.as_str()..)? {
            let (k, _) = item?;
            let key = k.value();
            let Some(rest) = key.strip_prefix(prefix) else {
                break 'seek;
            };
            if let Some(i) = rest.find('/') {
                out.push(rest[..=i].to_string());
                // '0' is the character after '/': the first key past this folder.
                start = format!("{prefix}{}0", &rest[..i]);
                continue 'seek;
            }
            if !rest.is_empty() {
                out.push(rest.to_string());
            }
        }
        break;
    }
    Ok(children_of("", out.iter().map(|s| s.as_str())))
}

#[async_trait]
impl Backend for RaftBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        validate_key(key)?;
        let key = key.to_string();
        self.read_kv(move |t| Ok(t.get(key.as_str())?.map(|v| v.value().to_vec())))
            .await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.write(vec![TxnOp::Put {
            key: key.to_string(),
            value,
        }])
        .await
        .map(|_| ())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(vec![TxnOp::Delete {
            key: key.to_string(),
        }])
        .await
        .map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_string();
        self.read_kv(move |t| list_children(t, &prefix)).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.write(ops).await.map(|_| ())
    }

    fn name(&self) -> &'static str {
        "raft"
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        Some(Arc::new(RaftHaLock(self.inner.clone())))
    }

    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        Some(Arc::new(RaftIndex(self.inner.clone())))
    }

    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        Some(Arc::new(RaftIndex(self.inner.clone())))
    }
}

/// The write-notification and applied-index capabilities.
struct RaftIndex(Arc<Inner>);

impl WriteNotifier for RaftIndex {
    fn subscribe(&self) -> broadcast::Receiver<WriteBatch> {
        self.0.notify.subscribe()
    }
}

#[async_trait]
impl Indexed for RaftIndex {
    fn applied_index(&self) -> u64 {
        *self.0.applied.borrow()
    }

    async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.0.applied.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index))
            .await
            .map(|r| r.map(|_| ()));
        match waited {
            Err(_) => Err(StorageError::IndexTimeout(index)),
            Ok(Err(_)) => Err(StorageError::Unavailable("raft is stopped".into())),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// The HA lock: held by the raft leader.
///
/// `acquire` waits until this node leads, then records `value` with the leader's term in the
/// state machine (through the log), so every node can answer `holder()`. The guard's `lost`
/// flips when openraft's metrics show that this node stopped leading or the term changed (or
/// raft stopped). `release` flips `lost` and clears the record; the node stays raft leader (a
/// leadership transfer needs peers, which is the cluster's business).
struct RaftHaLock(Arc<Inner>);

fn leads(m: &RaftMetrics, id: NodeId) -> bool {
    m.state == ServerState::Leader && m.current_leader == Some(id)
}

async fn watch_leadership(
    mut metrics: watch::Receiver<RaftMetrics>,
    id: NodeId,
    term: u64,
    lost: watch::Sender<bool>,
) {
    let mut released = lost.subscribe();
    loop {
        {
            let m = metrics.borrow_and_update();
            if !leads(&m, id) || m.current_term != term {
                break;
            }
        }
        tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = released.wait_for(|l| *l) => return,
        }
    }
    tracing::warn!(term, "raft leadership lost");
    lost.send_replace(true);
}

#[async_trait]
impl HaLock for RaftHaLock {
    async fn acquire(&self, value: Vec<u8>) -> Result<LockGuard> {
        let inner = &self.0;
        loop {
            if inner.closed.load(Ordering::SeqCst) {
                return Err(StorageError::Unavailable(
                    "raft storage is shut down".into(),
                ));
            }
            let mut metrics = inner.raft.metrics();
            let term = loop {
                {
                    let m = metrics.borrow_and_update();
                    if leads(&m, inner.id) {
                        break m.current_term;
                    }
                }
                if metrics.changed().await.is_err() {
                    return Err(StorageError::Unavailable("raft is stopped".into()));
                }
            };
            let record = Command::SetHolder(Holder {
                node: inner.id,
                term,
                value: value.clone(),
            });
            match inner.submit(Pending::Other(record)).await {
                Ok(_) => {}
                // Leadership moved while recording the holder: wait for it again.
                Err(StorageError::NotLeader) => continue,
                Err(StorageError::Unavailable(_)) if !inner.closed.load(Ordering::SeqCst) => {
                    continue
                }
                Err(e) => return Err(e),
            }
            let (lost, lost_rx) = watch::channel(false);
            tokio::spawn(watch_leadership(
                inner.raft.metrics(),
                inner.id,
                term,
                lost.clone(),
            ));
            if let Some(old) = inner.held.lock().expect("ha lock").replace(Held { lost }) {
                old.lost.send_replace(true);
            }
            return Ok(LockGuard { lost: lost_rx });
        }
    }

    async fn release(&self) -> Result<()> {
        let inner = &self.0;
        let Some(held) = inner.held.lock().expect("ha lock").take() else {
            return Ok(());
        };
        held.lost.send_replace(true);
        match inner
            .submit(Pending::Other(Command::ClearHolder { node: inner.id }))
            .await
        {
            Ok(_) | Err(StorageError::NotLeader) | Err(StorageError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Hands leadership to another voter: clears the holder record, then stops sending
    /// heartbeats so that the followers' leader lease runs out and one of them is elected
    /// (openraft 0.9 has no leadership transfer). Heartbeats resume once another node leads, or
    /// after [`STEP_DOWN_TIMEOUT`] if none does.
    async fn step_down(&self) -> Result<bool> {
        let inner = &self.0;
        let voters: Vec<NodeId> = inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        self.release().await?;
        if voters.iter().all(|v| *v == inner.id) {
            return Ok(false);
        }
        let id = inner.id;
        inner.raft.runtime_config().heartbeat(false);
        let moved = inner
            .raft
            .wait(Some(STEP_DOWN_TIMEOUT))
            .metrics(|m| !leads(m, id), "another node leads")
            .await;
        inner.raft.runtime_config().heartbeat(true);
        match moved {
            Ok(_) => Ok(true),
            Err(_) => {
                tracing::warn!("step-down: no other node took over leadership");
                Ok(false)
            }
        }
    }

    async fn holder(&self) -> Result<Option<Vec<u8>>> {
        let backend = RaftBackend {
            inner: self.0.clone(),
        };
        let db = backend.database()?;
        let holder = tokio::task::spawn_blocking(move || state_machine::read_holder(&db))
            .await
            .map_err(|e| StorageError::Io(e.to_string()))?
            .map_err(|e| e.to_storage())?;
        let m = self.0.raft.metrics();
        let m = m.borrow();
        Ok(holder
            .filter(|h| m.current_leader == Some(h.node) && m.current_term == h.term)
            .map(|h| h.value))
    }
}

#[cfg(test)]
mod tests;
