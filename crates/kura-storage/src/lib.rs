//! Physical storage for Kura (layer 5 in DESIGN.md).
//!
//! A small [`Backend`] trait — get, put, delete, list, transactions — and optional capabilities
//! exposed through accessor methods: an HA lock ([`HaLock`]), a write notifier
//! ([`WriteNotifier`]) and a readable, awaitable storage index ([`Indexed`]). Everything above
//! this layer sees only ciphertext (the barrier encrypts before calling down), except the seal
//! configuration and the HA lock.

mod cache;
mod inmem;
mod split;

pub use cache::{CachedBackend, DEFAULT_CACHE_BYTES};
pub use inmem::InmemBackend;
pub use split::SplitHaBackend;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// Errors a physical backend can return. Callers match on the variant, never on the text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// The storage is read-only here (a standby node): the request must go to the active node.
    #[error("storage is read-only on this node")]
    ReadOnly,
    /// This node lost the HA lock (or never held it) and may not write.
    #[error("this node is not the active node")]
    NotLeader,
    /// A key is not valid for this backend (empty, too long, bad characters).
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    /// A value exceeds the backend's size limit.
    #[error("value for {key:?} is too large ({size} bytes, limit {limit})")]
    ValueTooLarge {
        /// The key written.
        key: String,
        /// The value's size in bytes.
        size: usize,
        /// The backend's limit in bytes.
        limit: usize,
    },
    /// A compare-and-swap style check inside a transaction failed.
    #[error("transaction conflict on {0:?}")]
    Conflict(String),
    /// The backend is not reachable or not ready (e.g. raft has no leader yet).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Waiting for an index timed out.
    #[error("timed out waiting for storage index {0}")]
    IndexTimeout(u64),
    /// An I/O or database error.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Stored data could not be decoded.
    #[error("corrupt storage data: {0}")]
    Corrupt(String),
}

/// Result type of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// One operation inside a [`Backend::transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Write `value` at `key`.
    Put {
        /// Key to write.
        key: String,
        /// Value to write.
        value: Vec<u8>,
    },
    /// Delete `key` (no error if absent).
    Delete {
        /// Key to delete.
        key: String,
    },
}

impl TxnOp {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
}

/// The physical storage interface. Keys are `/`-separated paths; values are opaque bytes.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes one key.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Deletes one key; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Lists the immediate children of `prefix` (which is empty or ends with `/`): keys as their
    /// last segment, "folders" as `name/`, sorted, without duplicates.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Applies all operations atomically, in order.
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()>;

    /// A short name for logs and the startup banner (`raft`, `inmem`, ...).
    fn name(&self) -> &'static str;
    /// The HA lock capability, when this backend offers one.
    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        None
    }
    /// The write-notification capability, when this backend offers one.
    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        None
    }
    /// The storage-index capability, when this backend offers one.
    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        None
    }
    /// Drops whatever this backend (or a layer inside it) holds cached, so that the next reads
    /// go to the storage itself. Layers without a cache do nothing.
    fn drop_caches(&self) {}
}

/// A batch of keys written together, in commit order, at one storage index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    /// The storage index at which these writes were applied (raft log index, WAL position...).
    pub index: u64,
    /// The keys written or deleted.
    pub keys: Vec<String>,
    /// True when the sender lost track of some writes (a lagging subscriber upstream): any key
    /// may have changed, so every cache must be dropped.
    pub reset: bool,
}

impl WriteBatch {
    /// A batch of `keys` written at `index`.
    pub fn new(index: u64, keys: Vec<String>) -> Self {
        WriteBatch {
            index,
            keys,
            reset: false,
        }
    }
}

/// Capability: reports every key written, in commit order, with its index.
pub trait WriteNotifier: Send + Sync {
    /// Subscribes to future write batches. A lagging subscriber sees
    /// `RecvError::Lagged` and must drop its caches.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<WriteBatch>;
}

/// Capability: a monotonically increasing applied index that can be read and awaited.
#[async_trait]
pub trait Indexed: Send + Sync {
    /// The highest index applied locally.
    fn applied_index(&self) -> u64;
    /// Waits until `index` has been applied locally, at most `timeout`.
    async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<()>;
    /// The highest index the storage itself has applied, which may be ahead of what a layer
    /// above it (a cache) has taken in. A write acknowledged by the storage is at or below it.
    fn storage_index(&self) -> u64 {
        self.applied_index()
    }
}

/// What an HA lock holder learns when it acquires the lock.
pub struct LockGuard {
    /// Resolves (the receiver sees `true`) when leadership is lost.
    pub lost: tokio::sync::watch::Receiver<bool>,
}

/// Capability: an HA lock. The holder is the active node.
#[async_trait]
pub trait HaLock: Send + Sync {
    /// Waits until this node holds the lock, advertising `value` (the node's identity) while it
    /// does. Returns a guard whose `lost` channel flips to `true` if leadership is lost.
    async fn acquire(&self, value: Vec<u8>) -> Result<LockGuard>;
    /// Releases the lock if held.
    async fn release(&self) -> Result<()>;
    /// The value advertised by the current holder, if any.
    async fn holder(&self) -> Result<Option<Vec<u8>>>;
    /// Gives the lock up so that another node takes it (`sys/step-down`). Returns `true` when
    /// another node may take it over (the caller then leaves it to them for a while), `false`
    /// when no other node can (the caller takes it again). The default releases the lock.
    async fn step_down(&self) -> Result<bool> {
        self.release().await?;
        Ok(true)
    }
}

/// Validates a storage key: non-empty, no leading `/`, no `..` segments, no NUL.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.starts_with('/')
        || key.contains('\0')
        || key.split('/').any(|seg| seg == "..")
    {
        return Err(StorageError::InvalidKey(key.to_string()));
    }
    Ok(())
}

/// Computes the immediate children of `prefix` among sorted `keys` (helper for backends whose
/// native listing is a range scan). `keys` must all start with `prefix`.
pub fn children_of<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let rest = &key[prefix.len()..];
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(|l| l.as_str()) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_groups_folders() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f"];
        let got = children_of("a/", keys.iter().copied());
        assert_eq!(got, vec!["b", "c/", "f"]);
    }

    #[test]
    fn key_validation() {
        assert!(validate_key("core/mounts").is_ok());
        assert_eq!(
            validate_key(""),
            Err(StorageError::InvalidKey(String::new()))
        );
        assert!(validate_key("/abs").is_err());
        assert!(validate_key("a/../b").is_err());
    }
}
