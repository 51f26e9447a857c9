//! A backend whose data and HA lock live in different places (`ha_storage`): every data
//! operation goes to one backend, the HA lock comes from another.
//!
//! The lock's backend cannot fence the data backend's writes (they are different systems), so a
//! paused former active node may still write to the data store until it notices that it lost the
//! lock; OpenBao's `ha_storage` has the same property. Keeping data and lock in one PostgreSQL
//! database gives fenced writes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Backend, HaLock, Indexed, Result, TxnOp, WriteNotifier};

/// Data from `data`, the HA lock from `ha`.
pub struct SplitHaBackend {
    data: Arc<dyn Backend>,
    lock: Arc<dyn HaLock>,
}

impl SplitHaBackend {
    /// Combines a data backend with the HA lock of another; `None` if `ha` offers no lock.
    pub fn new(data: Arc<dyn Backend>, ha: &Arc<dyn Backend>) -> Option<Self> {
        Some(SplitHaBackend {
            data,
            lock: ha.ha_lock()?,
        })
    }
}

#[async_trait]
impl Backend for SplitHaBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.data.get(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.data.put(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.data.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.data.list(prefix).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.data.transaction(ops).await
    }

    fn name(&self) -> &'static str {
        self.data.name()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        Some(self.lock.clone())
    }

    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        self.data.write_notifier()
    }

    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        self.data.indexed()
    }

    fn drop_caches(&self) {
        self.data.drop_caches();
    }
}
