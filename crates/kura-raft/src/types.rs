//! The openraft type configuration: node ids, node descriptions, the replicated command.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::snapshot::SnapshotFile;

/// A raft node id. Operators name nodes with strings (`node_id` in the `storage "raft"` stanza);
/// each node picks a random non-zero `u64` the first time it opens its storage and keeps it
/// there. The name ↔ id mapping of every member travels in the membership ([`KuraNode::name`]).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of Kura's integrated storage.
    pub TypeConfig:
        D = Command,
        R = (),
        NodeId = NodeId,
        Node = KuraNode,
        SnapshotData = SnapshotFile,
);

/// A log entry of Kura's raft log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A raft handle with Kura's type configuration.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A membership with its log id, as stored in the state machine.
pub type StoredMembership = openraft::StoredMembership<NodeId, KuraNode>;
/// A membership configuration.
pub type Membership = openraft::Membership<NodeId, KuraNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, KuraNode>;
/// A snapshot with its data file.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// openraft's storage error for this configuration.
pub type RaftStorageError = openraft::StorageError<NodeId>;
/// openraft's metrics for this configuration.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, KuraNode>;

/// What the membership knows about a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KuraNode {
    /// The node's name (`node_id` from its configuration).
    pub name: String,
    /// The node's API address (`api_addr`), advertised to clients and standbys.
    pub api_addr: String,
    /// The node's cluster address (`cluster_addr`), where raft messages are sent.
    pub cluster_addr: String,
}

impl fmt::Display for KuraNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.cluster_addr)
    }
}

/// One storage operation inside a replicated transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Write `value` at `key`.
    Put {
        /// Key written.
        key: String,
        /// Value written.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// Key deleted.
        key: String,
    },
}

impl Op {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

impl From<kura_storage::TxnOp> for Op {
    fn from(op: kura_storage::TxnOp) -> Self {
        match op {
            kura_storage::TxnOp::Put { key, value } => Op::Put { key, value },
            kura_storage::TxnOp::Delete { key } => Op::Delete { key },
        }
    }
}

/// The HA lock holder as recorded in the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The raft id of the leader that acquired the lock.
    pub node: NodeId,
    /// The term in which it acquired it: the record is only valid while that term lasts.
    pub term: u64,
    /// The value it advertises (the node's identity, chosen by the caller of `acquire`).
    pub value: Vec<u8>,
}

/// The replicated command: the application data of one raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Storage transactions, each applied atomically, in order. Writes that queue up while
    /// the previous entry is being committed travel together in one entry (group commit).
    Write(Vec<Vec<Op>>),
    /// The leader of `term` holds the HA lock and advertises `value`.
    SetHolder(Holder),
    /// Node `node` released the HA lock.
    ClearHolder {
        /// The node that releases the lock.
        node: NodeId,
    },
    /// Replaces every key and value with these (a restored snapshot), keys in ascending order.
    Restore(Vec<(String, Vec<u8>)>),
}

impl Command {
    /// The storage keys this command writes, in order.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Command::Write(txns) => txns
                .iter()
                .flat_map(|t| t.iter().map(|op| op.key().to_string()))
                .collect(),
            // A restore reports the keys it changed when it is applied.
            Command::SetHolder(_) | Command::ClearHolder { .. } | Command::Restore(_) => Vec::new(),
        }
    }
}
