//! The redb file (`<path>/kura.redb`): tables, small typed records, and error plumbing.
//!
//! One database holds the raft log, the vote, the state machine and the snapshot metadata, so
//! a single fsync (the log append's commit) also persists every state-machine change made before
//! it: state-machine applies commit without their own fsync ([`redb::Durability::None`]) and
//! ride on the next log commit. After a crash the state machine may be behind the log, never
//! ahead of it, and raft re-applies the difference.

use std::sync::Arc;

use openraft::{AnyError, StorageIOError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::DecodeError;
use crate::types::{NodeId, RaftStorageError};

/// Raft log entries by index (encoded with [`crate::codec::encode_entry`]).
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft log metadata: vote, committed, last purged log id, node identity (JSON records).
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The state machine's key-value data.
pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// State machine metadata: last applied, membership, HA holder, current snapshot (JSON).
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

/// `LOG_META` key of the vote.
pub(crate) const META_VOTE: &str = "vote";
/// `LOG_META` key of the last committed log id.
pub(crate) const META_COMMITTED: &str = "committed";
/// `LOG_META` key of the last purged log id.
pub(crate) const META_PURGED: &str = "purged";
/// `LOG_META` key of this node's identity (name and raft id).
pub(crate) const META_NODE: &str = "node";
/// `SM_META` key of the last applied log id.
pub(crate) const SM_APPLIED: &str = "applied";
/// `SM_META` key of the last applied membership.
pub(crate) const SM_MEMBERSHIP: &str = "membership";
/// `SM_META` key of the HA lock holder.
pub(crate) const SM_HOLDER: &str = "holder";
/// `SM_META` key of the current snapshot's metadata and file name.
pub(crate) const SM_SNAPSHOT: &str = "snapshot";

/// Internal errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// redb failed.
    #[error(transparent)]
    Redb(#[from] redb::Error),
    /// Stored bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A JSON record did not (de)serialize.
    #[error("bad stored record: {0}")]
    Json(#[from] serde_json::Error),
    /// A file operation failed.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Join(String),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(e.into())
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<tokio::task::JoinError> for DbError {
    fn from(e: tokio::task::JoinError) -> Self {
        DbError::Join(e.to_string())
    }
}

impl DbError {
    /// As an openraft error about the log.
    pub(crate) fn log_read(self) -> RaftStorageError {
        StorageIOError::read_logs(AnyError::new(&self)).into()
    }

    /// As an openraft error about writing the log.
    pub(crate) fn log_write(self) -> RaftStorageError {
        StorageIOError::write_logs(AnyError::new(&self)).into()
    }

    /// As an openraft error about the vote.
    pub(crate) fn vote(self, write: bool) -> RaftStorageError {
        if write {
            StorageIOError::write_vote(AnyError::new(&self)).into()
        } else {
            StorageIOError::read_vote(AnyError::new(&self)).into()
        }
    }

    /// As an openraft error about the state machine.
    pub(crate) fn sm(self, write: bool) -> RaftStorageError {
        if write {
            StorageIOError::write_state_machine(AnyError::new(&self)).into()
        } else {
            StorageIOError::read_state_machine(AnyError::new(&self)).into()
        }
    }

    /// As an openraft error about a snapshot.
    pub(crate) fn snapshot(self, write: bool) -> RaftStorageError {
        if write {
            StorageIOError::write_snapshot(None, AnyError::new(&self)).into()
        } else {
            StorageIOError::read_snapshot(None, AnyError::new(&self)).into()
        }
    }

    /// As a [`kura_storage::StorageError`].
    pub(crate) fn to_storage(&self) -> kura_storage::StorageError {
        match self {
            DbError::Decode(e) => kura_storage::StorageError::Corrupt(e.to_string()),
            DbError::Json(e) => kura_storage::StorageError::Corrupt(e.to_string()),
            DbError::Redb(redb::Error::Corrupted(e)) => {
                kura_storage::StorageError::Corrupt(e.clone())
            }
            other => kura_storage::StorageError::Io(other.to_string()),
        }
    }
}

/// Result of internal storage operations.
pub(crate) type DbResult<T> = Result<T, DbError>;

/// This node's identity as stored in `LOG_META`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct NodeIdentity {
    /// The configured name (`node_id`).
    pub name: String,
    /// The raft id chosen for it.
    pub id: NodeId,
}

/// Creates every table (a no-op when they exist) with a durable commit.
pub(crate) fn create_tables(db: &Database) -> DbResult<()> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(LOG_META)?;
    txn.open_table(KV)?;
    txn.open_table(SM_META)?;
    txn.commit()?;
    Ok(())
}

/// Reads a JSON record from a `&str → &[u8]` table.
pub(crate) fn get_json<T, Tbl>(table: &Tbl, key: &str) -> DbResult<Option<T>>
where
    T: DeserializeOwned,
    Tbl: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

/// Writes a JSON record to a `&str → &[u8]` table.
pub(crate) fn put_json<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> DbResult<()> {
    let bytes = serde_json::to_vec(value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Reads one JSON record from `table` in a fresh read transaction.
pub(crate) fn read_json<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&'static str, &'static [u8]>,
    key: &str,
) -> DbResult<Option<T>> {
    let txn = db.begin_read()?;
    let t = txn.open_table(table)?;
    get_json(&t, key)
}

/// Writes one JSON record to `table` in its own transaction of the given durability.
pub(crate) fn write_json<T: Serialize>(
    db: &Database,
    table: TableDefinition<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
    durable: bool,
) -> DbResult<()> {
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(redb::Durability::None)?;
    }
    {
        let mut t = txn.open_table(table)?;
        put_json(&mut t, key, value)?;
    }
    txn.commit()?;
    Ok(())
}

/// Runs blocking database work off the async runtime.
pub(crate) async fn blocking<T, F>(db: &Arc<Database>, f: F) -> DbResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> DbResult<T> + Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db)).await?
}
