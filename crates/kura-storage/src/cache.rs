//! A byte-bounded read cache in front of any backend.
//!
//! Writes made through the cache update it synchronously. Writes that reach the inner backend
//! some other way (raft replication on a standby) arrive through the inner backend's write
//! notifier; the cache applies them in order and only then reports their index as applied, so a
//! caller that waits for an index through [`CachedBackend::indexed`] never reads a stale cached
//! value. A fill that raced with an invalidation is dropped (an epoch counter detects it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lru::LruCache;
use tokio::sync::{broadcast, watch};

use crate::{Backend, HaLock, Indexed, Result, StorageError, TxnOp, WriteNotifier};

/// Per-entry bookkeeping overhead counted against the byte bound.
const ENTRY_OVERHEAD: usize = 64;

/// Default byte bound of the read cache.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

struct CacheState {
    lru: LruCache<String, Option<Arc<Vec<u8>>>>,
    bytes: usize,
    epoch: u64,
}

struct Shared {
    state: Mutex<CacheState>,
    limit: usize,
    /// Highest inner index whose invalidations have been applied to the cache.
    applied: watch::Sender<u64>,
    /// The inner backend's write batches, passed on once the cache has dropped their keys, so
    /// that a subscriber (the invalidation manager) never re-reads a stale cached value.
    relay: broadcast::Sender<crate::WriteBatch>,
}

impl Shared {
    fn cost(key: &str, value: &Option<Arc<Vec<u8>>>) -> usize {
        key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
    }

    fn insert(&self, key: &str, value: Option<Arc<Vec<u8>>>, epoch: Option<u64>) {
        let cost = Self::cost(key, &value);
        if cost > self.limit / 8 {
            return; // never let one value dominate the cache
        }
        let mut st = self.state.lock().expect("cache lock");
        if let Some(seen) = epoch {
            if seen != st.epoch {
                return;
            }
        }
        if let Some(old) = st.lru.put(key.to_string(), value) {
            st.bytes -= Self::cost(key, &old);
        }
        st.bytes += cost;
        while st.bytes > self.limit {
            match st.lru.pop_lru() {
                Some((k, v)) => st.bytes -= Self::cost(&k, &v),
                None => break,
            }
        }
    }

    fn invalidate(&self, key: &str) {
        let mut st = self.state.lock().expect("cache lock");
        st.epoch += 1;
        if let Some(old) = st.lru.pop(key) {
            st.bytes -= Self::cost(key, &old);
        }
    }

    fn clear(&self) {
        let mut st = self.state.lock().expect("cache lock");
        st.epoch += 1;
        st.lru.clear();
        st.bytes = 0;
    }
}

/// A backend wrapper that caches reads (including misses) within a byte bound.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    shared: Arc<Shared>,
    follows_inner: bool,
}

impl CachedBackend {
    /// Wraps `inner` with a cache of at most `limit_bytes`. If the inner backend notifies
    /// writes, a task (on the current tokio runtime) follows them to invalidate the cache.
    pub fn new(inner: Arc<dyn Backend>, limit_bytes: usize) -> Self {
        let start = inner.indexed().map_or(0, |i| i.applied_index());
        let (applied, _) = watch::channel(start);
        let shared = Arc::new(Shared {
            state: Mutex::new(CacheState {
                lru: LruCache::unbounded(),
                bytes: 0,
                epoch: 0,
            }),
            limit: limit_bytes.max(4096),
            applied,
            relay: broadcast::channel(4096).0,
        });
        let mut follows_inner = false;
        if let Some(notifier) = inner.write_notifier() {
            follows_inner = true;
            let rx = notifier.subscribe();
            tokio::spawn(follow(rx, Arc::downgrade(&shared)));
        }
        CachedBackend {
            inner,
            shared,
            follows_inner,
        }
    }

    /// Bytes currently held by the cache (keys, values and overhead).
    pub fn cached_bytes(&self) -> usize {
        self.shared.state.lock().expect("cache lock").bytes
    }

    /// Drops every cached entry.
    pub fn clear(&self) {
        self.shared.clear();
    }
}

async fn follow(mut rx: broadcast::Receiver<crate::WriteBatch>, shared: std::sync::Weak<Shared>) {
    loop {
        let msg = rx.recv().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match msg {
            Ok(batch) => {
                if batch.reset {
                    shared.clear();
                }
                for key in &batch.keys {
                    shared.invalidate(key);
                }
                shared.applied.send_if_modified(|cur| {
                    if batch.index > *cur {
                        *cur = batch.index;
                        true
                    } else {
                        false
                    }
                });
                let _ = shared.relay.send(batch);
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                shared.clear();
                let index = *shared.applied.borrow();
                let _ = shared.relay.send(crate::WriteBatch {
                    index,
                    keys: Vec::new(),
                    reset: true,
                });
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[async_trait]
impl Backend for CachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let epoch = {
            let mut st = self.shared.state.lock().expect("cache lock");
            if let Some(hit) = st.lru.get(key) {
                return Ok(hit.as_ref().map(|v| v.as_ref().clone()));
            }
            st.epoch
        };
        let value = self.inner.get(key).await?;
        self.shared
            .insert(key, value.clone().map(Arc::new), Some(epoch));
        Ok(value)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.shared.invalidate(key);
        let result = self.inner.put(key, value).await;
        self.shared.invalidate(key);
        result
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.shared.invalidate(key);
        let result = self.inner.delete(key).await;
        self.shared.invalidate(key);
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let keys: Vec<String> = ops.iter().map(|o| o.key().to_string()).collect();
        for k in &keys {
            self.shared.invalidate(k);
        }
        let result = self.inner.transaction(ops).await;
        for k in &keys {
            self.shared.invalidate(k);
        }
        result
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.inner.ha_lock()
    }

    fn drop_caches(&self) {
        self.shared.clear();
        self.inner.drop_caches();
    }

    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        if self.follows_inner {
            Some(Arc::new(CacheRelay(self.shared.clone())))
        } else {
            self.inner.write_notifier()
        }
    }

    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        if self.follows_inner {
            Some(Arc::new(CacheIndex(
                self.shared.clone(),
                self.inner.indexed(),
            )))
        } else {
            self.inner.indexed()
        }
    }
}

/// Write batches of the inner backend, relayed after the cache dropped their keys.
struct CacheRelay(Arc<Shared>);

impl WriteNotifier for CacheRelay {
    fn subscribe(&self) -> broadcast::Receiver<crate::WriteBatch> {
        self.0.relay.subscribe()
    }
}

struct CacheIndex(Arc<Shared>, Option<Arc<dyn Indexed>>);

#[async_trait]
impl Indexed for CacheIndex {
    fn applied_index(&self) -> u64 {
        *self.0.applied.borrow()
    }

    fn storage_index(&self) -> u64 {
        let below = self.1.as_ref().map_or(0, |i| i.storage_index());
        below.max(self.applied_index())
    }

    async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.0.applied.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index))
            .await
            .map_err(|_| StorageError::IndexTimeout(index))?
            .map(|_| ())
            .map_err(|_| StorageError::Unavailable("cache index closed".into()));
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InmemBackend;

    #[tokio::test]
    async fn caches_and_invalidates_through_writes() {
        let inner = Arc::new(InmemBackend::new());
        let cache = CachedBackend::new(inner.clone(), 1 << 20);
        cache.put("k", b"v1".to_vec()).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(b"v1".to_vec()));
        assert!(cache.cached_bytes() > 0);
        cache.put("k", b"v2".to_vec()).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(b"v2".to_vec()));
        cache.delete("k").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn follows_writes_made_below_it() {
        let inner = Arc::new(InmemBackend::new());
        let cache = CachedBackend::new(inner.clone(), 1 << 20);
        inner.put("k", b"old".to_vec()).await.unwrap();
        let idx = cache.indexed().unwrap();
        idx.wait_for_index(
            inner.indexed().unwrap().applied_index(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(b"old".to_vec()));
        // A write that bypasses the cache (as raft replication does on a standby).
        inner.put("k", b"new".to_vec()).await.unwrap();
        let target = inner.indexed().unwrap().applied_index();
        idx.wait_for_index(target, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(b"new".to_vec()));
    }

    #[tokio::test]
    async fn stays_within_its_byte_bound() {
        let inner = Arc::new(InmemBackend::new());
        let cache = CachedBackend::new(inner.clone(), 64 * 1024);
        for i in 0..1000 {
            cache.put(&format!("k{i}"), vec![7u8; 512]).await.unwrap();
            cache.get(&format!("k{i}")).await.unwrap();
        }
        assert!(
            cache.cached_bytes() <= 64 * 1024,
            "{}",
            cache.cached_bytes()
        );
        // Evicted entries are still read correctly from below.
        assert_eq!(cache.get("k0").await.unwrap(), Some(vec![7u8; 512]));
    }
}
