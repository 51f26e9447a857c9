//! How raft messages leave this node.
//!
//! openraft asks a [`RaftNetworkFactory`] for one client per peer. Kura's factory hands out
//! [`PeerClient`]s that delegate every RPC to one [`RaftTransport`] — the seam where the cluster
//! layer plugs in its transport over the cluster TLS port. A node without a transport (a single
//! node) uses [`NoTransport`], which reports every peer as unreachable: it has no peers, so an
//! RPC to any node is an RPC to a node it cannot reach.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use openraft::error::{
    Fatal, InstallSnapshotError, RPCError, RaftError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Vote};

use crate::types::{KuraNode, NodeId, Snapshot, TypeConfig};

/// Error of a raft RPC.
pub type RpcError<E = openraft::error::Infallible> =
    RPCError<NodeId, KuraNode, RaftError<NodeId, E>>;
/// Error of sending a full snapshot.
pub type SnapshotError = StreamingError<TypeConfig, Fatal<NodeId>>;
/// A future that resolves when the replication stream that sends a snapshot is closed.
pub type CancelFuture = Pin<Box<dyn Future<Output = ReplicationClosed> + Send>>;

/// Carries raft RPCs to other nodes. The receiving side hands them to
/// [`crate::RaftBackend::raft`] (`append_entries`, `vote`, `install_full_snapshot`...).
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends an AppendEntries RPC to `target`.
    async fn append_entries(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError>;

    /// Sends a RequestVote RPC to `target`.
    async fn vote(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError>;

    /// Sends one chunk of a snapshot (openraft's chunked transfer) to `target`.
    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>>;

    /// Sends a whole snapshot to `target`, giving up when `cancel` resolves.
    async fn full_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        vote: Vote<NodeId>,
        snapshot: Snapshot,
        cancel: CancelFuture,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError>;
}

/// The reason [`NoTransport`] gives for every RPC.
#[derive(Debug, Clone, thiserror::Error)]
#[error("raft node {target} ({node}) is unreachable: this node has no cluster transport")]
pub struct NoRoute {
    /// The node the RPC was for.
    pub target: NodeId,
    /// What the membership says about it.
    pub node: KuraNode,
}

/// The transport of a node without peers: every RPC fails with `Unreachable`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransport;

impl NoTransport {
    fn unreachable(target: NodeId, node: &KuraNode) -> Unreachable {
        Unreachable::new(&NoRoute {
            target,
            node: node.clone(),
        })
    }
}

#[async_trait]
impl RaftTransport for NoTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        node: &KuraNode,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        Err(RPCError::Unreachable(Self::unreachable(target, node)))
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &KuraNode,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        Err(RPCError::Unreachable(Self::unreachable(target, node)))
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        Err(RPCError::Unreachable(Self::unreachable(target, node)))
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        _vote: Vote<NodeId>,
        _snapshot: Snapshot,
        _cancel: CancelFuture,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError> {
        Err(StreamingError::Unreachable(Self::unreachable(target, node)))
    }
}

/// The [`RaftNetworkFactory`] given to openraft: one [`PeerClient`] per peer, all sharing one
/// transport.
#[derive(Clone)]
pub struct NetworkFactory {
    transport: Arc<dyn RaftTransport>,
}

impl NetworkFactory {
    /// A factory whose clients send through `transport`.
    pub fn new(transport: Arc<dyn RaftTransport>) -> Self {
        NetworkFactory { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &KuraNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// openraft's client for one peer: forwards to the transport with the peer's id and address.
pub struct PeerClient {
    target: NodeId,
    node: KuraNode,
    transport: Arc<dyn RaftTransport>,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.transport
            .append_entries(self.target, &self.node, rpc, option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.transport
            .install_snapshot(self.target, &self.node, rpc, option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.transport
            .vote(self.target, &self.node, rpc, option)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError> {
        self.transport
            .full_snapshot(
                self.target,
                &self.node,
                vote,
                snapshot,
                Box::pin(cancel),
                option,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    #[tokio::test]
    async fn no_transport_reports_unreachable() {
        let mut factory = NetworkFactory::new(Arc::new(NoTransport));
        let node = KuraNode {
            name: "peer".into(),
            api_addr: String::new(),
            cluster_addr: "https://peer:8201".into(),
        };
        let mut client = factory.new_client(42, &node).await;
        let opt = RPCOption::new(Duration::from_secs(1));
        let vote = client
            .vote(
                VoteRequest::new(
                    Vote::new(1, 1),
                    Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
                ),
                opt.clone(),
            )
            .await;
        match vote {
            Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("42")),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        let append = client
            .append_entries(
                AppendEntriesRequest {
                    vote: Vote::new_committed(1, 1),
                    prev_log_id: None,
                    entries: vec![],
                    leader_commit: None,
                },
                opt,
            )
            .await;
        assert!(matches!(append, Err(RPCError::Unreachable(_))));
    }
}
