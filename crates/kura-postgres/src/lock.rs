//! The HA lock: one row of the lock table, timed by the database's clock. See the crate
//! documentation for the design, its timing and the fencing argument.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kura_storage::{HaLock, LockGuard, Result, StorageError};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::pool::Pool;
use crate::{db_err, describe};

/// The lock's timing. All three are measured by the database's clock where it matters
/// (`valid_until`); the intervals are local sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    /// How long one acquisition or renewal keeps the lock (`valid_until = now() + ttl`).
    pub ttl: Duration,
    /// Pause between two renewals by the holder (must be well below `ttl`).
    pub renew_interval: Duration,
    /// Pause between two acquisition attempts by a standby.
    pub retry_interval: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            ttl: Duration::from_millis(1500),
            renew_interval: Duration::from_millis(300),
            retry_interval: Duration::from_millis(250),
        }
    }
}

/// What this node knows of the lock.
enum Fence {
    /// Never competed for the lock: writes are not fenced (a sealed node being initialised).
    Unfenced,
    /// Competing, but not holding: every write fails with `NotLeader`.
    NotHolding,
    /// Holding under `identity`: writes are fenced by it.
    Holding {
        identity: String,
        lost: watch::Sender<bool>,
    },
}

struct LockInner {
    pool: Arc<Pool>,
    key: String,
    timing: LockTiming,
    fence: Mutex<Fence>,
    /// The identity of an acquisition in progress (so that a release can remove a row that
    /// was inserted just before the acquisition was abandoned).
    pending: Mutex<Option<String>>,
    /// The lock's own connection: renewals never wait for a busy pool.
    conn: tokio::sync::Mutex<Option<Client>>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The PostgreSQL HA lock (see the crate documentation).
pub struct PostgresLock {
    inner: Arc<LockInner>,
}

/// Time allowed for one acquisition or release statement.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

impl PostgresLock {
    pub(crate) fn new(pool: Arc<Pool>, key: String, timing: LockTiming) -> PostgresLock {
        PostgresLock {
            inner: Arc::new(LockInner {
                pool,
                key,
                timing,
                fence: Mutex::new(Fence::Unfenced),
                pending: Mutex::new(None),
                conn: tokio::sync::Mutex::new(None),
                renewer: Mutex::new(None),
            }),
        }
    }

    /// The lock's timing.
    pub fn timing(&self) -> LockTiming {
        self.inner.timing
    }

    /// The identity under which this node holds the lock, if it does.
    pub fn identity(&self) -> Option<String> {
        match &*self.inner.fence.lock().expect("fence lock") {
            Fence::Holding { identity, .. } => Some(identity.clone()),
            _ => None,
        }
    }

    /// Whether this node competes for the lock without holding it (an unsealed standby, or a
    /// node that released or lost it). A node that never competed (sealed, being initialised)
    /// answers `false`, as does the holder.
    pub(crate) fn is_standby(&self) -> bool {
        matches!(
            &*self.inner.fence.lock().expect("fence lock"),
            Fence::NotHolding
        )
    }

    /// For a write: `Ok(None)` unfenced, `Ok(Some(identity))` fenced by the held lock,
    /// `Err(NotLeader)` when competing without holding.
    pub(crate) fn fence(&self) -> Result<Option<String>> {
        match &*self.inner.fence.lock().expect("fence lock") {
            Fence::Unfenced => Ok(None),
            Fence::NotHolding => Err(StorageError::NotLeader),
            Fence::Holding { identity, .. } => Ok(Some(identity.clone())),
        }
    }

    /// A write found the lock no longer ours: signal the loss at once.
    pub(crate) fn fenced_out(&self, identity: &str) {
        self.inner
            .mark_lost(identity, "a write found the lock held by another node");
    }

    async fn try_acquire(
        &self,
        identity: &str,
        value: &str,
    ) -> std::result::Result<bool, ExecError> {
        let inner = &self.inner;
        let ttl_ms = inner.timing.ttl.as_millis() as f64;
        let rows = inner
            .exec(
                Stmt::Acquire,
                &[&identity, &inner.key, &value, &ttl_ms],
                STATEMENT_TIMEOUT,
            )
            .await?;
        Ok(rows == 1)
    }
}

/// A failed statement on the lock's connection.
#[derive(Debug)]
struct ExecError {
    message: String,
    /// The database is read-only (SQLSTATE 25006): a hot standby, which cannot take the lock
    /// until it is promoted. The connection itself is healthy and is kept.
    read_only: bool,
}

impl ExecError {
    fn other(message: impl Into<String>) -> ExecError {
        ExecError {
            message: message.into(),
            read_only: false,
        }
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The statements run on the lock's connection.
#[derive(Clone, Copy)]
enum Stmt {
    Acquire,
    Renew,
    Release,
}

impl LockInner {
    /// Runs one statement on the lock's connection (opened when needed) within `limit`;
    /// returns the number of rows affected. A connection that failed or timed out is dropped.
    async fn exec(
        &self,
        stmt: Stmt,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        limit: Duration,
    ) -> std::result::Result<u64, ExecError> {
        let sql = match stmt {
            Stmt::Acquire => &self.pool.sql.acquire,
            Stmt::Renew => &self.pool.sql.renew,
            Stmt::Release => &self.pool.sql.release,
        };
        let mut guard = self.conn.lock().await;
        let run = async {
            if guard.as_ref().is_none_or(|c| c.is_closed()) {
                let client = self.pool.connect_raw().await.map_err(ExecError::other)?;
                // Never wait long behind a row lock (a stalled writer): fail and retry.
                client
                    .batch_execute("SET lock_timeout = 500; SET statement_timeout = 1000")
                    .await
                    .map_err(|e| ExecError::other(describe(&e)))?;
                *guard = Some(client);
            }
            let client = guard.as_ref().expect("lock connection");
            client
                .execute(sql.as_str(), params)
                .await
                .map_err(|e| ExecError {
                    message: describe(&e),
                    read_only: e.code()
                        == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
                })
        };
        let result = match tokio::time::timeout(limit, run).await {
            Ok(r) => r,
            Err(_) => Err(ExecError::other("timed out")),
        };
        if matches!(&result, Err(e) if !e.read_only) {
            // Whatever state the connection is in, start afresh next time.
            *guard = None;
        }
        result
    }

    fn mark_lost(&self, identity: &str, why: &str) {
        let mut fence = self.fence.lock().expect("fence lock");
        if let Fence::Holding { identity: id, lost } = &*fence {
            if id == identity {
                tracing::warn!("HA lock lost: {why}");
                let _ = lost.send(true);
                *fence = Fence::NotHolding;
            }
        }
    }

    /// The holder's renewal loop (see the crate documentation for the timing).
    async fn renew_loop(self: Arc<Self>, identity: String, mut deadline: Instant) {
        let t = self.timing;
        let ttl_ms = t.ttl.as_millis() as f64;
        loop {
            let next = (Instant::now() + t.renew_interval).min(deadline);
            tokio::time::sleep_until(next).await;
            if !self.holds(&identity) {
                return;
            }
            let sent = Instant::now();
            if sent >= deadline {
                self.mark_lost(&identity, "the lock could not be renewed before it expired");
                return;
            }
            let limit = deadline - sent;
            match self
                .exec(Stmt::Renew, &[&identity, &self.key, &ttl_ms], limit)
                .await
            {
                Ok(1) => deadline = sent + t.ttl,
                Ok(_) => {
                    self.mark_lost(&identity, "the lock expired or was taken by another node");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the HA lock failed; retrying");
                }
            }
        }
    }

    fn holds(&self, identity: &str) -> bool {
        matches!(&*self.fence.lock().expect("fence lock"), Fence::Holding { identity: id, .. } if id == identity)
    }
}

#[async_trait]
impl HaLock for PostgresLock {
    async fn acquire(&self, value: Vec<u8>) -> Result<LockGuard> {
        {
            let mut fence = self.inner.fence.lock().expect("fence lock");
            if let Fence::Holding { lost, .. } = &*fence {
                // Acquiring again while holding: the old hold ends here (it expires).
                let _ = lost.send(true);
            }
            *fence = Fence::NotHolding;
        }
        if let Some(old) = self.inner.renewer.lock().expect("renewer lock").take() {
            old.abort();
        }
        let value = String::from_utf8_lossy(&value).into_owned();
        let identity = uuid::Uuid::new_v4().to_string();
        *self.inner.pending.lock().expect("pending lock") = Some(identity.clone());
        let mut failures = 0u32;
        let sent = loop {
            let sent = Instant::now();
            match self.try_acquire(&identity, &value).await {
                Ok(true) => break sent,
                Ok(false) => failures = 0,
                // A hot standby: the lock cannot be taken here until an operator promotes the
                // database; keep trying, quietly (this is the normal state of such a node).
                Err(e) if e.read_only => {
                    failures = 0;
                    tracing::debug!(error = %e, "the database is read-only; waiting for it to be promoted");
                }
                Err(e) => {
                    if failures.is_multiple_of(20) {
                        tracing::warn!(error = %e, "taking the HA lock failed; retrying");
                    }
                    failures += 1;
                }
            }
            tokio::time::sleep(self.inner.timing.retry_interval).await;
        };
        let (tx, rx) = watch::channel(false);
        {
            let mut fence = self.inner.fence.lock().expect("fence lock");
            *fence = Fence::Holding {
                identity: identity.clone(),
                lost: tx,
            };
            *self.inner.pending.lock().expect("pending lock") = None;
        }
        let task = tokio::spawn(
            self.inner
                .clone()
                .renew_loop(identity, sent + self.inner.timing.ttl),
        );
        if let Some(old) = self
            .inner
            .renewer
            .lock()
            .expect("renewer lock")
            .replace(task)
        {
            old.abort();
        }
        Ok(LockGuard { lost: rx })
    }

    async fn release(&self) -> Result<()> {
        if let Some(task) = self.inner.renewer.lock().expect("renewer lock").take() {
            task.abort();
        }
        let identities: Vec<String> = {
            let mut fence = self.inner.fence.lock().expect("fence lock");
            let mut ids = Vec::new();
            if let Fence::Holding { identity, lost } = &*fence {
                ids.push(identity.clone());
                let _ = lost.send(true);
            }
            if !matches!(*fence, Fence::Unfenced) {
                *fence = Fence::NotHolding;
            }
            ids.extend(self.inner.pending.lock().expect("pending lock").take());
            ids
        };
        for id in identities {
            self.inner
                .exec(Stmt::Release, &[&id, &self.inner.key], STATEMENT_TIMEOUT)
                .await
                .map_err(|e| StorageError::Io(format!("postgresql: releasing the HA lock: {e}")))?;
        }
        Ok(())
    }

    async fn holder(&self) -> Result<Option<Vec<u8>>> {
        let conn = self.inner.pool.get().await?;
        let stmt = conn
            .stmts()
            .holder
            .clone()
            .ok_or_else(|| StorageError::Unavailable("HA is not enabled".into()))?;
        let row = conn
            .client()
            .query_opt(&stmt, &[&self.inner.key])
            .await
            .map_err(db_err)?;
        Ok(row
            .and_then(|r| r.get::<_, Option<String>>(0))
            .map(String::into_bytes))
    }
}
