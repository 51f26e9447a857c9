//! An in-memory backend (`storage "inmem"`): for dev mode and tests. Data is lost on exit.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::{
    children_of, validate_key, Backend, Indexed, Result, StorageError, TxnOp, WriteBatch,
    WriteNotifier,
};

/// In-memory storage with write notifications and an index (one per committed write).
pub struct InmemBackend {
    inner: Arc<Shared>,
}

struct Shared {
    data: RwLock<BTreeMap<String, Vec<u8>>>,
    notify: broadcast::Sender<WriteBatch>,
    index: watch::Sender<u64>,
}

impl Default for InmemBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl InmemBackend {
    /// Creates an empty in-memory backend.
    pub fn new() -> Self {
        let (notify, _) = broadcast::channel(4096);
        let (index, _) = watch::channel(0);
        InmemBackend {
            inner: Arc::new(Shared {
                data: RwLock::new(BTreeMap::new()),
                notify,
                index,
            }),
        }
    }

    /// A raw dump of every key and value (tests search it for plaintext).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let data = self.inner.data.read().expect("inmem lock");
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn commit(&self, ops: Vec<TxnOp>) -> Result<()> {
        for op in &ops {
            validate_key(op.key())?;
        }
        let keys: Vec<String> = ops.iter().map(|op| op.key().to_string()).collect();
        let index = {
            let mut data = self.inner.data.write().expect("inmem lock");
            for op in ops {
                match op {
                    TxnOp::Put { key, value } => {
                        data.insert(key, value);
                    }
                    TxnOp::Delete { key } => {
                        data.remove(&key);
                    }
                }
            }
            // Bump the index while still holding the write lock so batches are ordered.
            let next = *self.inner.index.borrow() + 1;
            let _ = self.inner.notify.send(WriteBatch::new(next, keys));
            self.inner.index.send_replace(next);
            next
        };
        let _ = index;
        Ok(())
    }
}

#[async_trait]
impl Backend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        validate_key(key)?;
        Ok(self
            .inner
            .data
            .read()
            .expect("inmem lock")
            .get(key)
            .cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.commit(vec![TxnOp::Put {
            key: key.to_string(),
            value,
        }])
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.commit(vec![TxnOp::Delete {
            key: key.to_string(),
        }])
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let data = self.inner.data.read().expect("inmem lock");
        let keys = data
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children_of(prefix, keys))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.commit(ops)
    }

    fn name(&self) -> &'static str {
        "inmem"
    }

    fn write_notifier(&self) -> Option<Arc<dyn WriteNotifier>> {
        Some(Arc::new(InmemHandle(self.inner.clone())))
    }

    fn indexed(&self) -> Option<Arc<dyn Indexed>> {
        Some(Arc::new(InmemHandle(self.inner.clone())))
    }
}

struct InmemHandle(Arc<Shared>);

impl WriteNotifier for InmemHandle {
    fn subscribe(&self) -> broadcast::Receiver<WriteBatch> {
        self.0.notify.subscribe()
    }
}

#[async_trait]
impl Indexed for InmemHandle {
    fn applied_index(&self) -> u64 {
        *self.0.index.borrow()
    }

    async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.0.index.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index))
            .await
            .map_err(|_| StorageError::IndexTimeout(index))?
            .map(|_| ())
            .map_err(|_| StorageError::Unavailable("index channel closed".into()));
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let b = InmemBackend::new();
        b.put("a/b", b"1".to_vec()).await.unwrap();
        b.put("a/c/d", b"2".to_vec()).await.unwrap();
        b.put("ab", b"3".to_vec()).await.unwrap();
        assert_eq!(b.get("a/b").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/"]);
        assert_eq!(b.list("").await.unwrap(), vec!["a/", "ab"]);
        b.delete("a/b").await.unwrap();
        assert_eq!(b.get("a/b").await.unwrap(), None);
        assert!(b.put("", vec![]).await.is_err());
    }

    #[tokio::test]
    async fn notifies_writes_in_order_with_index() {
        let b = InmemBackend::new();
        let mut rx = b.write_notifier().unwrap().subscribe();
        b.transaction(vec![
            TxnOp::Put {
                key: "x".into(),
                value: vec![1],
            },
            TxnOp::Delete { key: "y".into() },
        ])
        .await
        .unwrap();
        b.put("z", vec![2]).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(first.keys, vec!["x", "y"]);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.index, first.index + 1);
        let idx = b.indexed().unwrap();
        assert_eq!(idx.applied_index(), second.index);
        idx.wait_for_index(second.index, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(
            idx.wait_for_index(second.index + 1, Duration::from_millis(10))
                .await,
            Err(StorageError::IndexTimeout(second.index + 1))
        );
    }
}
