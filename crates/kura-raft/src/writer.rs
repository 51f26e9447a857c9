//! Group commit: the single task that turns queued writes into raft log entries.
//!
//! openraft 0.9 appends (and fsyncs) each `client_write` on its own and waits for that flush
//! before it handles the next request, so entries are never grouped below us. Grouping happens
//! here instead: while up to `max_inflight` entries are being committed, new writes queue; the
//! next entry carries every queued transaction (up to a byte and count bound), each still applied
//! atomically and in arrival order. Under load many writes share one fsync.

use std::sync::Arc;

use kura_storage::StorageError;
use openraft::error::{ClientWriteError, Fatal};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::types::{Command, KuraNode, NodeId, Op, Raft};

/// How writes are grouped into log entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Most value and key bytes in one entry (a single larger write still goes alone).
    pub max_bytes: usize,
    /// Most transactions in one entry.
    pub max_txns: usize,
    /// Entries submitted but not yet applied.
    pub max_inflight: usize,
}

/// What a caller wants written.
pub(crate) enum Pending {
    /// A storage transaction and its size in bytes; these are grouped.
    Txn(Vec<Op>, usize),
    /// Any other command; it travels in an entry of its own.
    Other(Command),
}

/// A queued write and where its outcome goes (the log index it was applied at).
pub(crate) struct WriteReq {
    pub pending: Pending,
    pub done: oneshot::Sender<Result<u64, StorageError>>,
}

/// Maps a rejected client write to a storage error.
pub(crate) fn map_client_error(e: ClientWriteError<NodeId, KuraNode>) -> StorageError {
    match e {
        ClientWriteError::ForwardToLeader(f) => match f.leader_id {
            Some(_) => StorageError::NotLeader,
            None => StorageError::Unavailable("raft has no leader".into()),
        },
        ClientWriteError::ChangeMembershipError(e) => StorageError::Unavailable(e.to_string()),
    }
}

/// Maps a fatal raft error to a storage error.
pub(crate) fn map_fatal(e: Fatal<NodeId>) -> StorageError {
    match e {
        Fatal::Stopped => StorageError::Unavailable("raft is stopped".into()),
        Fatal::Panicked => StorageError::Io("raft core panicked".into()),
        Fatal::StorageError(e) => StorageError::Io(e.to_string()),
    }
}

fn respond(
    waiters: Vec<oneshot::Sender<Result<u64, StorageError>>>,
    res: Result<u64, StorageError>,
) {
    for w in waiters {
        let _ = w.send(res.clone());
    }
}

/// Runs until every sender of `rx` is dropped.
pub(crate) async fn run(raft: Raft, mut rx: mpsc::Receiver<WriteReq>, limits: BatchLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight.max(1)));
    let mut carry: Option<WriteReq> = None;
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        // Wait for a slot before collecting: writes arriving meanwhile join this entry.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut waiters = vec![first.done];
        let cmd = match first.pending {
            Pending::Other(cmd) => cmd,
            Pending::Txn(ops, size) => {
                let mut bytes = size;
                let mut txns = vec![ops];
                while txns.len() < limits.max_txns {
                    match rx.try_recv() {
                        Ok(WriteReq {
                            pending: Pending::Txn(ops, size),
                            done,
                        }) if bytes + size <= limits.max_bytes => {
                            bytes += size;
                            txns.push(ops);
                            waiters.push(done);
                        }
                        Ok(other) => {
                            carry = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Command::Write(txns)
            }
        };
        match raft.client_write_ff(cmd).await {
            Err(fatal) => respond(waiters, Err(map_fatal(fatal))),
            Ok(result) => {
                tokio::spawn(async move {
                    let res = match result.await {
                        Ok(Ok(resp)) => Ok(resp.log_id.index),
                        Ok(Err(e)) => Err(map_client_error(e)),
                        Err(_) => Err(StorageError::Unavailable(
                            "raft stopped before the write was applied".into(),
                        )),
                    };
                    respond(waiters, res);
                    drop(permit);
                });
            }
        }
    }
}
