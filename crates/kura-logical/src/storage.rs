//! The storage view a backend reads and writes: plaintext above the barrier, scoped to the
//! backend's mount.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use kura_storage::TxnOp;
use serde::{de::DeserializeOwned, Serialize};

use crate::{LogicalError, Result};

/// A backend's storage view. Keys are relative to the view; writes on a standby fail with the
/// typed `ReadOnly` storage error.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes one key.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Deletes one key.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Lists immediate children of `prefix` (`name` or `name/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Applies writes atomically.
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()>;
}

/// JSON helpers over any [`Storage`].
#[async_trait]
pub trait StorageExt: Storage {
    /// Reads and decodes a JSON value.
    async fn get_json<T: DeserializeOwned + Send>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LogicalError::Internal(format!("decoding {key}: {e}"))),
        }
    }

    /// Encodes and writes a JSON value.
    async fn put_json<T: Serialize + Sync>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| LogicalError::Internal(e.to_string()))?;
        self.put(key, bytes).await
    }

    /// Lists every key under `prefix`, recursively, relative to `prefix`.
    async fn list_recursive(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(dir) = pending.pop() {
            for child in self.list(&format!("{prefix}{dir}")).await? {
                let full = format!("{dir}{child}");
                if child.ends_with('/') {
                    pending.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// A plain in-memory [`Storage`] for backend unit tests.
#[derive(Default)]
pub struct MemoryStorage {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    read_only: std::sync::atomic::AtomicBool,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes writes fail with the typed `ReadOnly` error, as on a standby.
    pub fn set_read_only(&self, ro: bool) {
        self.read_only
            .store(ro, std::sync::atomic::Ordering::SeqCst);
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LogicalError::Storage(kura_storage::StorageError::ReadOnly));
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.data.lock().expect("lock").get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.check_writable()?;
        kura_storage::validate_key(key)?;
        self.data
            .lock()
            .expect("lock")
            .insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.check_writable()?;
        self.data.lock().expect("lock").remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let data = self.data.lock().expect("lock");
        let keys = data
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(kura_storage::children_of(prefix, keys))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        self.check_writable()?;
        let mut data = self.data.lock().expect("lock");
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_and_recursive_list() {
        let s = MemoryStorage::new();
        s.put_json("a/b", &serde_json::json!({"x": 1}))
            .await
            .unwrap();
        s.put_json("a/c/d", &1u32).await.unwrap();
        let v: serde_json::Value = s.get_json("a/b").await.unwrap().unwrap();
        assert_eq!(v["x"], 1);
        assert_eq!(s.list_recursive("a/").await.unwrap(), vec!["b", "c/d"]);
        s.set_read_only(true);
        assert!(s.put("z", vec![]).await.unwrap_err().is_read_only());
    }
}
