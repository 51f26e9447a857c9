//! PostgreSQL storage for Kura (`storage "postgresql"`), with an HA lock and fencing.
//!
//! # Schema
//!
//! OpenBao's, unchanged, so that a Kura node and data written by `bao` are interchangeable at
//! the storage level (created when absent unless `skip_create_table = "true"`):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS openbao_kv_store (
//!   parent_path TEXT COLLATE "C" NOT NULL,
//!   path        TEXT COLLATE "C",
//!   key         TEXT COLLATE "C",
//!   value       BYTEA,
//!   CONSTRAINT pkey PRIMARY KEY (path, key));
//! CREATE INDEX IF NOT EXISTS parent_path_idx ON openbao_kv_store (parent_path);
//! CREATE TABLE IF NOT EXISTS openbao_ha_locks (
//!   ha_key      TEXT COLLATE "C" NOT NULL,
//!   ha_identity TEXT COLLATE "C" NOT NULL,
//!   ha_value    TEXT COLLATE "C",
//!   valid_until TIMESTAMP WITH TIME ZONE NOT NULL,
//!   CONSTRAINT ha_key PRIMARY KEY (ha_key));
//! ```
//!
//! A key `a/b/c` is stored as `parent_path = "/a/"`, `path = "/a/b/"`, `key = "c"` (a top-level
//! key `c` as `("", "/", "c")`), and `list("a/")` is OpenBao's query: the keys whose `path` is
//! `/a/`, plus the first segment of every `path` below it, found through `parent_path`.
//! `transaction()` is one PostgreSQL transaction. Connections come from a small pool bounded by
//! `max_parallel` (default 128), keeping at most `max_idle_connections` idle (default 16; Go's
//! `database/sql` default of 2 would reopen connections under load); every statement is
//! prepared once per connection.
//!
//! TLS to the database follows the URL's `sslmode` as libpq does (rustls with the aws-lc-rs
//! provider; no OpenSSL): `disable`; `allow`/`prefer` (the default: TLS when the server offers
//! it, certificate not verified); `require` (TLS, certificate not verified unless `sslrootcert`
//! is given, then as `verify-ca`); `verify-ca` (chain checked against `sslrootcert`);
//! `verify-full` (chain and host name). `sslcert`/`sslkey` present a client certificate.
//!
//! # HA lock
//!
//! One row of `openbao_ha_locks` (`ha_key = "core/lock"`), timed only by the database's clock
//! (`now()`), so the nodes' clocks play no part:
//!
//! - **acquire**: every [`LockTiming::retry_interval`] (250 ms) a standby runs OpenBao's upsert
//!   with a fresh random `ha_identity`: insert the row, or take it over if `valid_until < now()`.
//!   One row affected means this node holds the lock until `now() + ttl` (ttl 1.5 s).
//! - **renew**: every [`LockTiming::renew_interval`] (300 ms) the holder extends
//!   `valid_until = now() + ttl`, but only while the row still carries its identity and has not
//!   expired (unlike OpenBao, a holder never silently re-takes a lock that expired: someone else
//!   may have been active in between). No row updated → the lock is lost at once. A failed or
//!   timed-out renewal is retried until the local deadline (the send time of the last successful
//!   renewal + ttl, measured on the monotonic clock, so never later than the database's
//!   `valid_until`) passes; then the lock is lost. Loss flips the guard's `lost` channel.
//! - **release** (seal, shutdown, failed activation): the row is deleted, so a standby takes over
//!   within one retry interval.
//!
//! Failover after `kill -9` of the active node: the lock expires at most `ttl` after its last
//! renewal, and a standby notices within one retry interval: at most 1.5 s + 0.25 s (+ the new
//! active node's activation), about 1 s on average. A renewal must fail for longer than
//! `ttl - renew_interval` = 1.2 s (four renewals in a row) before a healthy active node steps down.
//!
//! # Fencing
//!
//! Timing alone cannot stop a node that was paused (SIGSTOP, a VM freeze, a long GC-like stall)
//! or partitioned from writing after its lock expired and another node took over. So once a
//! node has started to compete for the lock, **every write transaction** (`put`, `delete`,
//! `transaction`) starts with
//!
//! ```sql
//! SELECT 1 FROM openbao_ha_locks
//!  WHERE ha_key = 'core/lock' AND ha_identity = $me AND valid_until > clock_timestamp()
//!  FOR KEY SHARE
//! ```
//!
//! in the same transaction as its writes, and rolls back with [`StorageError::NotLeader`] when
//! no row comes back. Why this is safe:
//!
//! - Another node can only take the lock by updating that row with an `INSERT ... ON CONFLICT
//!   DO UPDATE` that assigns the key column, which takes the row's `FOR UPDATE` lock, the one
//!   lock that conflicts with `FOR KEY SHARE`. (Releasing deletes the row: `FOR UPDATE` too.)
//!   So while a write transaction of the holder is open, nobody can
//!   take the lock; the takeover is serialised after the holder's commit (or abort). Every write
//!   the old holder commits therefore precedes the new holder's acquisition, and the new holder,
//!   which reads only after acquiring, sees it.
//! - A write transaction that starts after the takeover sees the new identity (each statement of
//!   a READ COMMITTED transaction reads the latest committed row, and `FOR KEY SHARE`
//!   re-checks the newest version of a row it had to wait for), returns no row, and rolls back:
//!   nothing lands.
//! - A node paused *inside* a write transaction would block the takeover for as long as it is
//!   paused, so every pooled connection sets `idle_in_transaction_session_timeout` (1 s): the
//!   server ends such a session, rolling back its transaction and freeing the row; the resumed
//!   node's commit then fails. The lock connection sets `lock_timeout`, so an acquisition attempt
//!   never waits long behind a stalled writer: it fails and is retried.
//! - The holder's own renewal updates only `valid_until`, which takes the weaker `FOR NO KEY
//!   UPDATE` lock; it does not conflict with `FOR KEY SHARE`, so renewals never wait for the
//!   holder's writes. (With `FOR SHARE` they did: under a steady stream of overlapping writes
//!   the row was never free, renewals timed out, and the active node lost its lock.)
//!
//! A node that has not yet started to compete for the lock (a sealed node being initialised)
//! writes unfenced, as every OpenBao node always does; from its first `acquire` on, writes
//! outside a held lock fail with `NotLeader`. With `ha_enabled` off, nothing is fenced.
//!
//! # Standbys: the commit stream and reads from a replica
//!
//! The database tells a standby nothing about the active node's writes, so the active node
//! tells it over the cluster port. Every successful commit learns its WAL position in the same
//! message as its `COMMIT` (`COMMIT; SELECT pg_current_wal_flush_lsn()`), and is published,
//! in one critical section, as a [`StreamBatch`] `{index, lsn, keys}` to
//! [`PostgresBackend::subscribe_commits`] receivers (which the cluster plane forwards to
//! standbys) and as a [`WriteBatch`] on this node's own [`WriteNotifier`]; the [`Indexed`]
//! applied index follows. The index is `max(previous index + 1, lsn)`: strictly increasing in
//! publication order (commits on different connections can finish out of LSN order, and two
//! of them may read the same flush position), and never below the LSN, so indexes keep
//! growing across a change of active node.
//!
//! A standby takes batches in with [`PostgresBackend::apply_remote`], which waits until the
//! database it reads from has replayed the batch's LSN before it publishes the keys and raises
//! its applied index; [`PostgresBackend::resync`] does the same for the position a
//! subscription starts at, and [`PostgresBackend::stream_lost`] drops every cache.
//!
//! `read_connection_url` (Kura's own option) names a streaming replica: while this node
//! competes for the lock without holding it (a standby), `get` and `list` go there; the active
//! node, a node that has not yet competed (sealed, being initialised) and a node without
//! `ha_enabled` read from `connection_url`. Tables are never created through it.
//!
//! `connection_url` may itself point at a hot standby: the node connects (table creation is
//! skipped), its lock attempts fail quietly as read-only, and once an operator promotes that
//! database (`pg_ctl promote`) the node takes the lock as soon as the last holder's
//! `valid_until` has passed. There is no Kura-specific failover step.

mod lock;
mod pool;
#[cfg(feature = "test-support")]
pub mod testing;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kura_storage::{
    validate_key, Backend, HaLock, Indexed, Result, StorageError, TxnOp, WriteBatch, WriteNotifier,
};
use tokio::sync::{broadcast, watch};

pub use lock::{LockTiming, PostgresLock};
use pool::{Pool, Sql};

/// The lock key, as OpenBao's core names it.
pub const LOCK_KEY: &str = "core/lock";
/// Default data table.
pub const DEFAULT_TABLE: &str = "openbao_kv_store";
/// Default lock table.
pub const DEFAULT_HA_TABLE: &str = "openbao_ha_locks";
/// Default `max_parallel` (OpenBao's `physical.DefaultParallelOperations`).
pub const DEFAULT_MAX_PARALLEL: usize = 128;
/// Default number of idle connections kept (OpenBao leaves Go's `database/sql` default of 2,
/// which reopens connections under load).
pub const DEFAULT_MAX_IDLE: usize = 16;

/// Errors of configuration or connection (start-up); operations return [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// An option has a bad value.
    #[error("storage \"postgresql\": {0}")]
    Option(String),
    /// The connection URL or its TLS settings are unusable.
    #[error("storage \"postgresql\": connection_url: {0}")]
    Url(String),
    /// The database could not be reached or refused a statement.
    #[error("storage \"postgresql\": {0}")]
    Database(String),
}

/// The options of `storage "postgresql"`.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `connection_url`: a `postgres://` URL or a `key=value` connection string.
    pub connection_url: String,
    /// `read_connection_url` (Kura's own): a streaming replica that serves `get` and `list`
    /// while this node is a standby (see the crate documentation). Unset: reads go to
    /// `connection_url`.
    pub read_connection_url: Option<String>,
    /// `table` (default `openbao_kv_store`).
    pub table: String,
    /// `ha_table` (default `openbao_ha_locks`).
    pub ha_table: String,
    /// `ha_enabled` (default false).
    pub ha_enabled: bool,
    /// `max_parallel`: most connections open at once (default 128).
    pub max_parallel: usize,
    /// `max_idle_connections`: most connections kept idle (default 16).
    pub max_idle_connections: usize,
    /// `skip_create_table` (default false).
    pub skip_create_table: bool,
    /// Lock timing (not an OpenBao option; tests shorten it).
    pub lock_timing: LockTiming,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection URLs may carry a password: never printed.
        f.debug_struct("PostgresOptions")
            .field("read_replica", &self.read_connection_url.is_some())
            .field("table", &self.table)
            .field("ha_table", &self.ha_table)
            .field("ha_enabled", &self.ha_enabled)
            .field("max_parallel", &self.max_parallel)
            .field("max_idle_connections", &self.max_idle_connections)
            .field("skip_create_table", &self.skip_create_table)
            .field("lock_timing", &self.lock_timing)
            .finish_non_exhaustive()
    }
}

/// The option names this backend understands (others get a warning from the caller).
pub const KNOWN_OPTIONS: &[&str] = &[
    "connection_url",
    "read_connection_url",
    "table",
    "ha_table",
    "ha_enabled",
    "max_parallel",
    "max_idle_connections",
    "skip_create_table",
    "transaction_max_parallel",
    "max_connect_retries",
];

impl PostgresOptions {
    /// Defaults around a connection URL.
    pub fn new(connection_url: impl Into<String>) -> Self {
        PostgresOptions {
            connection_url: connection_url.into(),
            read_connection_url: None,
            table: DEFAULT_TABLE.into(),
            ha_table: DEFAULT_HA_TABLE.into(),
            ha_enabled: false,
            max_parallel: DEFAULT_MAX_PARALLEL,
            max_idle_connections: DEFAULT_MAX_IDLE,
            skip_create_table: false,
            lock_timing: LockTiming::default(),
        }
    }

    /// Reads the options as OpenBao hands them to its backend (`map[string]string`).
    pub fn from_map(map: &BTreeMap<String, String>) -> std::result::Result<Self, PostgresError> {
        let mut o = PostgresOptions::new(map.get("connection_url").cloned().unwrap_or_default());
        if let Some(u) = map.get("read_connection_url") {
            if !u.trim().is_empty() {
                o.read_connection_url = Some(u.clone());
            }
        }
        if let Some(t) = map.get("table") {
            o.table = t.clone();
        }
        if let Some(t) = map.get("ha_table") {
            o.ha_table = t.clone();
        }
        if let Some(v) = map.get("ha_enabled") {
            o.ha_enabled = parse_bool("ha_enabled", v)?;
        }
        if let Some(v) = map.get("skip_create_table") {
            o.skip_create_table = parse_bool("skip_create_table", v)?;
        }
        if let Some(v) = map.get("max_parallel") {
            o.max_parallel = parse_count("max_parallel", v)?.max(1);
        }
        if let Some(v) = map.get("max_idle_connections") {
            o.max_idle_connections = parse_count("max_idle_connections", v)?;
        }
        if o.connection_url.trim().is_empty() {
            return Err(PostgresError::Option(
                "connection_url must be set (or BAO_PG_CONNECTION_URL)".into(),
            ));
        }
        Ok(o)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(name: &str, v: &str) -> std::result::Result<bool, PostgresError> {
    match v.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(PostgresError::Option(format!(
            "{name}: {other:?} is not a boolean"
        ))),
    }
}

fn parse_count(name: &str, v: &str) -> std::result::Result<usize, PostgresError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| PostgresError::Option(format!("{name}: {v:?} is not a number")))?;
    Ok(n.max(0) as usize)
}

/// Quotes an identifier as OpenBao's `dbutil.QuoteIdentifier` does.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Splits a storage key into OpenBao's `(parent_path, path, key)`.
pub fn split_key(full: &str) -> (String, String, String) {
    let pieces: Vec<&str> = full.split('/').collect();
    let depth = pieces.len();
    let key = pieces[depth - 1].to_string();
    match depth {
        1 => (String::new(), "/".into(), key),
        2 => ("/".into(), format!("/{}/", pieces[0]), key),
        _ => (
            format!("/{}/", pieces[..depth - 2].join("/")),
            format!("/{}/", pieces[..depth - 1].join("/")),
            key,
        ),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern (OpenBao passes the prefix unescaped; for
/// keys without those characters the results are the same).
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn db_err(e: tokio_postgres::Error) -> StorageError {
    StorageError::Io(format!("postgresql: {}", describe(&e)))
}

/// The server's message when there is one (tokio-postgres' `Display` says only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            // tokio-postgres's own text is generic ("error connecting to server"): add the
            // causes (the refused address, the TLS failure...).
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}

/// One batch of this node's committed writes, as streamed to standbys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamBatch {
    /// The batch's stream index: strictly increasing in publication order, at least `lsn`.
    pub index: u64,
    /// A WAL position at or past the commit's record (`pg_current_wal_flush_lsn()` read just
    /// after the commit): a replica that has replayed it shows the writes.
    pub lsn: u64,
    /// The keys written or deleted, in the transaction's order.
    pub keys: Vec<String>,
}

/// A position in the commit stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamPosition {
    /// The index of the last published batch (0 before any).
    pub index: u64,
    /// The WAL position of the last published commit of this node (0 before any).
    pub lsn: u64,
}

/// Capacity of the commit and write-notification channels (a receiver further behind than this
/// sees `Lagged`).
const STREAM_CAPACITY: usize = 4096;

/// How often a replica's replay position is polled while waiting for it.
const REPLAY_POLL: Duration = Duration::from_millis(1);

/// How long [`PostgresBackend::apply_remote`] and [`PostgresBackend::resync`] wait between two
/// warnings about a replica that lags (they wait without limit).
const LAG_WARNING: Duration = Duration::from_secs(5);

/// PostgreSQL storage. Cheap to clone (shared state).
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<Pool>,
    /// The pool of `read_connection_url`, when set.
    read_pool: Option<Arc<Pool>>,
    lock: Option<Arc<PostgresLock>>,
    /// Serialises publication: the index arithmetic, both broadcasts and the applied index
    /// move together, so every receiver sees batches in index order.
    published: std::sync::Mutex<Published>,
    commits: broadcast::Sender<StreamBatch>,
    notify: broadcast::Sender<WriteBatch>,
    /// The applied index (also the index of the last batch published by this node).
    applied: watch::Sender<u64>,
    /// The highest replay position seen on the read database (a shortcut for waits).
    replayed: std::sync::atomic::AtomicU64,
}

/// What the publication mutex guards besides the applied index.
struct Published {
    /// The WAL position of this node's last published commit.
    last_lsn: u64,
}

impl PostgresBackend {
    /// Connects (one connection is opened to check the server, and one to the read replica
    /// when `read_connection_url` is set), creates the tables unless `skip_create_table` (never
    /// through the read replica), and prepares the HA lock when `ha_enabled`.
    pub async fn connect(opts: PostgresOptions) -> std::result::Result<Self, PostgresError> {
        let sql = Arc::new(Sql::new(&opts.table, &opts.ha_table));
        let pool = open_pool(&opts.connection_url, &opts, sql.clone(), opts.ha_enabled)?;
        {
            let conn = pool.connect_raw().await.map_err(|e| {
                PostgresError::Database(format!("connecting to the database failed: {e}"))
            })?;
            check_version(&conn).await?;
            if !opts.skip_create_table {
                create_tables(&conn, &opts).await?;
            }
        }
        let read_pool = match &opts.read_connection_url {
            Some(url) => {
                let read = open_pool(url, &opts, sql, false)?;
                let conn = read.connect_raw().await.map_err(|e| {
                    PostgresError::Database(format!(
                        "read_connection_url: connecting to the database failed: {e}"
                    ))
                })?;
                check_version(&conn).await?;
                Some(read)
            }
            None => None,
        };
        let lock = opts.ha_enabled.then(|| {
            Arc::new(PostgresLock::new(
                pool.clone(),
                LOCK_KEY.to_string(),
                opts.lock_timing,
            ))
        });
        let (commits, _) = broadcast::channel(STREAM_CAPACITY);
        let (notify, _) = broadcast::channel(STREAM_CAPACITY);
        let (applied, _) = watch::channel(0);
        Ok(PostgresBackend {
            inner: Arc::new(Inner {
                pool,
                read_pool,
                lock,
                published: std::sync::Mutex::new(Published { last_lsn: 0 }),
                commits,
                notify,
                applied,
                replayed: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// The HA lock, when `ha_enabled` (also through [`Backend::ha_lock`]).
    pub fn lock(&self) -> Option<Arc<PostgresLock>> {
        self.inner.lock.clone()
    }

    /// Whether reads go to a separate read database (`read_connection_url` set).
    pub fn has_read_replica(&self) -> bool {
        self.inner.read_pool.is_some()
    }

    /// The pool `get` and `list` use: the read replica while this node competes for the lock
    /// without holding it, the primary otherwise (the active node reads its own writes; a node
    /// that never competed, such as one being initialised, too).
    fn read_pool(&self) -> &Arc<Pool> {
        match (&self.inner.read_pool, &self.inner.lock) {
            (Some(read), Some(lock)) if lock.is_standby() => read,
            _ => &self.inner.pool,
        }
    }

    /// The database's current WAL flush position (`pg_current_wal_flush_lsn()`) as a number:
    /// at or past every commit this node's writes made (they are committed with a flush, see
    /// [`COMMIT_AND_POSITION`]), and on disk, so a replica reaches it. Fails on a read replica.
    pub async fn current_wal_lsn(&self) -> Result<u64> {
        let conn = self.inner.pool.get().await?;
        let row = conn
            .client()
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(db_err)?;
        parse_lsn(row.get::<_, &str>(0))
    }

    /// Atomically: the position of the last published commit and a receiver of every later one.
    pub fn subscribe_commits(&self) -> (StreamPosition, broadcast::Receiver<StreamBatch>) {
        let published = self.inner.published.lock().expect("publication lock");
        let position = StreamPosition {
            index: *self.inner.applied.borrow(),
            lsn: published.last_lsn,
        };
        (position, self.inner.commits.subscribe())
    }

    /// On a standby: waits until the database this node reads from has replayed `batch.lsn`
    /// (without limit, warning every few seconds; errors of the read database are retried the
    /// same way), then publishes `WriteBatch { index: batch.index, keys, reset: false }` on the
    /// write notifier and raises the applied index to `batch.index`.
    pub async fn apply_remote(&self, batch: StreamBatch) -> Result<()> {
        self.wait_replayed_patiently(batch.lsn).await;
        self.publish_remote(WriteBatch::new(batch.index, batch.keys));
        Ok(())
    }

    /// On a standby, after (re)subscribing: waits until the read database has replayed
    /// `pos.lsn` (as [`apply_remote`](Self::apply_remote) does), then publishes
    /// `WriteBatch { index: pos.index, keys: [], reset: true }` and sets the applied index to
    /// `max(current, pos.index)`.
    pub async fn resync(&self, pos: StreamPosition) -> Result<()> {
        self.wait_replayed_patiently(pos.lsn).await;
        self.publish_remote(WriteBatch {
            index: pos.index,
            keys: Vec::new(),
            reset: true,
        });
        Ok(())
    }

    /// The stream from the active node dropped: publishes a reset batch (no keys,
    /// `reset: true`) at the current applied index, so caches are dropped.
    pub fn stream_lost(&self) {
        // Read first: the watch's read guard must be gone before publishing writes to it.
        let index = *self.inner.applied.borrow();
        self.publish_remote(WriteBatch {
            index,
            keys: Vec::new(),
            reset: true,
        });
    }

    /// Publishes a batch learnt from the active node on this node's notifier and raises the
    /// applied index to its index (never lowers it), in the publication's critical section.
    fn publish_remote(&self, batch: WriteBatch) {
        let _published = self.inner.published.lock().expect("publication lock");
        let index = batch.index;
        let _ = self.inner.notify.send(batch);
        self.inner.applied.send_if_modified(|applied| {
            let raise = index > *applied;
            *applied = (*applied).max(index);
            raise
        });
    }

    /// Waits until the read database (the one `get` and `list` use now) has replayed WAL up to
    /// `lsn`: on a streaming replica (`pg_is_in_recovery()`) polls `pg_last_wal_replay_lsn()`
    /// about every millisecond; on a primary returns at once.
    /// `Err(StorageError::IndexTimeout(lsn))` after `timeout`.
    pub async fn wait_replayed(&self, lsn: u64, timeout: Duration) -> Result<()> {
        use std::sync::atomic::Ordering;
        if lsn == 0 || self.inner.replayed.load(Ordering::Relaxed) >= lsn {
            return Ok(());
        }
        let pool = self.read_pool().clone();
        let wait = async {
            let conn = pool.get().await?;
            loop {
                let msgs = conn
                    .client()
                    .simple_query("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                    .await
                    .map_err(db_err)?;
                let row = msgs
                    .iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                        _ => None,
                    })
                    .ok_or_else(|| StorageError::Io("postgresql: no replay position".into()))?;
                if row.get(0) != Some("t") {
                    // A primary (or a replica promoted meanwhile) has every commit it knows.
                    return Ok(());
                }
                if let Some(text) = row.get(1) {
                    let replayed = parse_lsn(text)?;
                    self.inner.replayed.fetch_max(replayed, Ordering::Relaxed);
                    if replayed >= lsn {
                        return Ok(());
                    }
                }
                tokio::time::sleep(REPLAY_POLL).await;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(StorageError::IndexTimeout(lsn)),
        }
    }

    /// [`wait_replayed`](Self::wait_replayed) without a limit: a lagging replica or a failing
    /// read database is reported every few seconds and waited for.
    async fn wait_replayed_patiently(&self, lsn: u64) {
        let started = tokio::time::Instant::now();
        loop {
            match self.wait_replayed(lsn, LAG_WARNING).await {
                Ok(()) => return,
                Err(StorageError::IndexTimeout(_)) => tracing::warn!(
                    lsn = %format_lsn(lsn),
                    waited_secs = started.elapsed().as_secs(),
                    "the read database has not replayed a commit of the active node yet; waiting"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the replay position of the read database failed; retrying");
                    tokio::time::sleep(LAG_WARNING).await;
                }
            }
        }
    }

    /// Publishes this node's commit of `keys`, whose record ends at or before `lsn`.
    fn publish_commit(&self, lsn: u64, keys: Vec<String>) {
        let mut published = self.inner.published.lock().expect("publication lock");
        // Commits made on different connections can finish (and get here) out of LSN order, so
        // the LSN alone is not a usable stream index: a standby applies batches in order and
        // claims each batch's index once it took it in, so indexes must strictly increase in
        // publication order, or it would claim an index before it saw a batch published later
        // with a lower one. Keeping the index at least the LSN makes indexes keep growing when
        // another node becomes active on the same database (its LSNs are past every earlier
        // commit).
        let index = (*self.inner.applied.borrow() + 1).max(lsn);
        published.last_lsn = lsn;
        let _ = self.inner.commits.send(StreamBatch {
            index,
            lsn,
            keys: keys.clone(),
        });
        let _ = self.inner.notify.send(WriteBatch::new(index, keys));
        self.inner.applied.send_replace(index);
    }

    /// Runs `ops` in one transaction, fenced by the HA lock when this node competes for it,
    /// and publishes it once committed.
    async fn commit(&self, ops: Vec<TxnOp>) -> Result<()> {
        for op in &ops {
            validate_key(op.key())?;
        }
        let fence = match &self.inner.lock {
            Some(lock) => lock.fence()?,
            None => None,
        };
        let keys: Vec<String> = ops.iter().map(|op| op.key().to_string()).collect();
        let mut conn = self.inner.pool.get().await?;
        let sql = conn.stmts().clone();
        // The transaction is run by hand so that its COMMIT and the read of the WAL position
        // travel in one message. Until it has ended, the connection is never pooled again.
        conn.set_in_transaction(true);
        let client = conn.client();
        client.batch_execute("BEGIN").await.map_err(db_err)?;
        let fenced = async {
            if let Some(identity) = &fence {
                let stmt = sql.fence.as_ref().ok_or(StorageError::NotLeader)?;
                let rows = client
                    .query(stmt, &[&LOCK_KEY, identity])
                    .await
                    .map_err(db_err)?;
                if rows.is_empty() {
                    return Err(StorageError::NotLeader);
                }
            }
            Ok(())
        };
        // The fence and the writes are sent together (pipelined); the server runs them in
        // order, and nothing is committed unless the fence returned its row.
        let writes = futures::future::try_join_all(ops.iter().map(|op| {
            let sql = &sql;
            async move {
                match op {
                    TxnOp::Put { key, value } => {
                        let (parent, path, k) = split_key(key);
                        client
                            .execute(&sql.put, &[&parent, &path, &k, value])
                            .await
                            .map_err(db_err)
                    }
                    TxnOp::Delete { key } => {
                        let (_, path, k) = split_key(key);
                        client
                            .execute(&sql.delete, &[&path, &k])
                            .await
                            .map_err(db_err)
                    }
                }
            }
        }));
        let (fence_result, write_result) = futures::join!(fenced, writes);
        if let Err(e) = fence_result.and(write_result.map(|_| ())) {
            let rolled_back = client.batch_execute("ROLLBACK").await.is_ok();
            conn.set_in_transaction(!rolled_back);
            if e == StorageError::NotLeader {
                if let (Some(lock), Some(identity)) = (&self.inner.lock, &fence) {
                    lock.fenced_out(identity);
                }
            }
            return Err(e);
        }
        let lsn = match client.simple_query(COMMIT_AND_POSITION).await {
            Ok(msgs) => msgs
                .iter()
                .rev()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(parse_lsn),
                    _ => None,
                })
                .unwrap_or_else(|| Err(StorageError::Io("postgresql: no WAL position".into()))),
            Err(e) if e.as_db_error().is_some() => {
                // The server refused the COMMIT (a deferred check): rolled back, nothing to tell.
                conn.set_in_transaction(false);
                return Err(db_err(e));
            }
            Err(e) => Err(db_err(e)),
        };
        match lsn {
            Ok(lsn) => {
                conn.set_in_transaction(false);
                drop(conn);
                self.publish_commit(lsn, keys);
                Ok(())
            }
            Err(e) => {
                // The connection failed around the COMMIT: it may have committed. Tell the
                // standbys about the keys anyway (a needless invalidation is harmless), at a
                // position read afresh, which is past the commit if there was one.
                drop(conn);
                match tokio::time::timeout(Duration::from_secs(2), self.current_wal_lsn()).await {
                    Ok(Ok(lsn)) => self.publish_commit(lsn, keys),
                    _ => tracing::warn!(
                        "a commit's outcome is unknown and could not be published to standbys"
                    ),
                }
                Err(e)
            }
        }
    }
}

/// Ends a write transaction and reads its WAL position, in one message.
///
/// The position is the WAL *flush* position read just after the commit. A commit made with
/// `synchronous_commit` other than `off` returns only once the WAL is flushed past its record,
/// so the flush position is at or past it; and it is WAL that exists on disk, which a replica
/// receives. (The insert position, `pg_current_wal_insert_lsn()`, can point past records that
/// nothing flushes on an idle server, or past a page header; a replica may never reach it.)
/// With `synchronous_commit = off` on the server, this transaction alone is committed with
/// `local` instead, so that the position covers it; stronger settings are left as they are.
const COMMIT_AND_POSITION: &str = "SELECT set_config('synchronous_commit', 'local', true) \
     WHERE current_setting('synchronous_commit') = 'off'; \
     COMMIT; \
     SELECT pg_current_wal_flush_lsn()::text";

/// Formats a WAL position as PostgreSQL does (`X/Y`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// A pool for `url` with the options' limits (TLS per the URL's `sslmode`).
fn open_pool(
    url: &str,
    opts: &PostgresOptions,
    sql: Arc<Sql>,
    ha: bool,
) -> std::result::Result<Arc<Pool>, PostgresError> {
    let (config, tls) = tls::prepare(url)?;
    Ok(Arc::new(Pool::new(
        config,
        tls,
        sql,
        ha,
        opts.max_parallel,
        opts.max_idle_connections,
    )))
}

async fn check_version(conn: &tokio_postgres::Client) -> std::result::Result<(), PostgresError> {
    let version: i32 = conn
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| PostgresError::Database(describe(&e)))?
        .get(0);
    if version < 90500 {
        return Err(PostgresError::Database(
            "PostgreSQL version must be at least 9.5".into(),
        ));
    }
    Ok(())
}

/// Parses `X/Y` (hex) into `X << 32 | Y`.
pub fn parse_lsn(text: &str) -> Result<u64> {
    let (hi, lo) = text
        .split_once('/')
        .ok_or_else(|| StorageError::Corrupt(format!("bad LSN {text:?}")))?;
    let hi = u64::from_str_radix(hi, 16)
        .map_err(|_| StorageError::Corrupt(format!("bad LSN {text:?}")))?;
    let lo = u64::from_str_radix(lo, 16)
        .map_err(|_| StorageError::Corrupt(format!("bad LSN {text:?}")))?;
    Ok((hi << 32) | lo)
}

async fn create_tables(
    conn: &tokio_postgres::Client,
    opts: &PostgresOptions,
) -> std::result::Result<(), PostgresError> {
    let table = quote_ident(&opts.table);
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
           parent_path TEXT COLLATE \"C\" NOT NULL, \
           path TEXT COLLATE \"C\", \
           key TEXT COLLATE \"C\", \
           value BYTEA, \
           CONSTRAINT pkey PRIMARY KEY (path, key)); \
         CREATE INDEX IF NOT EXISTS parent_path_idx ON {table} (parent_path);"
    );
    if opts.ha_enabled {
        let ha = quote_ident(&opts.ha_table);
        ddl.push_str(&format!(
            " CREATE TABLE IF NOT EXISTS {ha} (\
               ha_key TEXT COLLATE \"C\" NOT NULL, \
               ha_identity TEXT COLLATE \"C\" NOT NULL, \
               ha_value TEXT COLLATE \"C\", \
               valid_until TIMESTAMP WITH TIME ZONE NOT NULL, \
               CONSTRAINT ha_key PRIMARY KEY (ha_key));"
        ));
    }
    match conn.batch_execute(&format!("BEGIN; {ddl} COMMIT;")).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK").await;
            match e.code().map(|c| c.code()) {
                // Another node created them at the same moment (unique_violation on the
                // catalogue, duplicate_table), or the database is read-only (a replica).
                Some("23505") | Some("42P07") => Ok(()),
                Some("25006") => {
                    tracing::warn!("skipping table creation: the database is read-only");
                    Ok(())
                }
                _ => Err(PostgresError::Database(format!(
                    "creating the tables failed: {}",
                    describe(&e)
                ))),
            }
        }
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        validate_key(key)?;
        let (_, path, k) = split_key(key);
        let conn = self.read_pool().get().await?;
        let row = conn
            .client()
            .query_opt(&conn.stmts().get, &[&path, &k])
            .await
            .map_err(db_err)?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.commit(vec![TxnOp::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.commit(vec![TxnOp::Delete {
            key: key.to_string(),
        }])
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("/{prefix}");
        let like = like_prefix(&full);
        let conn = self.read_pool().get().await?;
        let rows = conn
            .client()
            .query(&conn.stmts().list, &[&full, &like])
            .await
            .map_err(db_err)?;
        let mut out: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .filter(|k| !k.is_empty())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.commit(ops).await
    }

    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.inner
            .lock
            .clone()
            .map(|l| l as Arc<dyn HaLock + 'static>)
    }

    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        Some(Arc::new(Handle(self.inner.clone())))
    }

    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        Some(Arc::new(Handle(self.inner.clone())))
    }
}

/// The write notifier and the index of a [`PostgresBackend`].
struct Handle(Arc<Inner>);

impl WriteNotifier for Handle {
    fn subscribe(&self) -> broadcast::Receiver<WriteBatch> {
        self.0.notify.subscribe()
    }
}

#[async_trait]
impl Indexed for Handle {
    fn applied_index(&self) -> u64 {
        *self.0.applied.borrow()
    }

    async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.0.applied.subscribe();
        let waited = match tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StorageError::Unavailable("index channel closed".into())),
            Err(_) => Err(StorageError::IndexTimeout(index)),
        };
        waited
    }
}

/// How long pooled connections may sit idle inside a transaction before the server ends the
/// session (and rolls back): bounds how long a paused node can hold up a lock takeover.
pub(crate) const IDLE_IN_TXN_TIMEOUT: Duration = Duration::from_millis(1000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_as_openbao() {
        assert_eq!(split_key("c"), ("".into(), "/".into(), "c".into()));
        assert_eq!(split_key("a/c"), ("/".into(), "/a/".into(), "c".into()));
        assert_eq!(
            split_key("a/b/c"),
            ("/a/".into(), "/a/b/".into(), "c".into())
        );
        assert_eq!(
            split_key("a/b/c/d"),
            ("/a/b/".into(), "/a/b/c/".into(), "d".into())
        );
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_prefix("/a_b/"), "/a\\_b/%");
        assert_eq!(like_prefix("/x%\\/"), "/x\\%\\\\/%");
    }

    #[test]
    fn lsn_parses() {
        assert_eq!(parse_lsn("0/16B3748").unwrap(), 0x16B3748);
        assert_eq!(parse_lsn("1/0").unwrap(), 1 << 32);
        assert!(parse_lsn("zz").is_err());
        assert_eq!(format_lsn(0x1_0016_B374), "1/16B374");
        assert_eq!(
            parse_lsn(&format_lsn(0xAB_CDEF_0123)).unwrap(),
            0xAB_CDEF_0123
        );
    }

    #[test]
    fn options_parse() {
        let mut m = BTreeMap::new();
        assert!(PostgresOptions::from_map(&m).is_err());
        m.insert("connection_url".into(), "postgres://u@h/db".into());
        m.insert("ha_enabled".into(), "true".into());
        m.insert("max_parallel".into(), "7".into());
        m.insert("table".into(), "kv".into());
        let o = PostgresOptions::from_map(&m).unwrap();
        assert!(o.ha_enabled);
        assert_eq!(o.max_parallel, 7);
        assert_eq!(o.table, "kv");
        assert_eq!(o.ha_table, DEFAULT_HA_TABLE);
        assert!(!format!("{o:?}").contains("postgres://"));
        assert_eq!(o.read_connection_url, None);
        m.insert(
            "read_connection_url".into(),
            "postgres://u:secret@replica/db".into(),
        );
        let o = PostgresOptions::from_map(&m).unwrap();
        assert_eq!(
            o.read_connection_url.as_deref(),
            Some("postgres://u:secret@replica/db")
        );
        assert!(!format!("{o:?}").contains("secret"));
        assert!(KNOWN_OPTIONS.contains(&"read_connection_url"));
        m.insert("skip_create_table".into(), "maybe".into());
        assert!(PostgresOptions::from_map(&m).is_err());
    }
}
