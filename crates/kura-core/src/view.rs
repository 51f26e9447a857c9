//! A barrier view: plaintext storage scoped to a key prefix, as each mount and core subsystem
//! sees it.

use std::sync::Arc;

use async_trait::async_trait;
use kura_barrier::{Barrier, BarrierError};
use kura_logical::{LogicalError, Result, Storage};
use kura_storage::TxnOp;

/// Converts a barrier error into the logical layer's typed error.
pub fn barrier_err(e: BarrierError) -> LogicalError {
    if e.is_sealed() {
        return LogicalError::Sealed;
    }
    match e {
        BarrierError::Storage(s) => LogicalError::Storage(s),
        other => LogicalError::Internal(other.to_string()),
    }
}

/// Storage under `prefix`, encrypted by the barrier.
#[derive(Clone)]
pub struct BarrierView {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl BarrierView {
    /// A view of `barrier` rooted at `prefix` (empty or ending in `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        BarrierView {
            barrier,
            prefix: prefix.into(),
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

#[async_trait]
impl Storage for BarrierView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.barrier.get(&self.full(key)).await.map_err(barrier_err)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.barrier
            .put(&self.full(key), &value)
            .await
            .map_err(barrier_err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.barrier
            .delete(&self.full(key))
            .await
            .map_err(barrier_err)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier
            .list(&self.full(prefix))
            .await
            .map_err(barrier_err)
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                TxnOp::Put { key, value } => TxnOp::Put {
                    key: self.full(&key),
                    value,
                },
                TxnOp::Delete { key } => TxnOp::Delete {
                    key: self.full(&key),
                },
            })
            .collect();
        self.barrier.transaction(ops).await.map_err(barrier_err)
    }
}
