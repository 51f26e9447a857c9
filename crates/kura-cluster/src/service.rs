//! The receiving side of `kura-raft/1`: [`RaftService`] reads requests from a cluster
//! connection and feeds them to the local openraft node; it also admits joining nodes and
//! removes members when this node leads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use kura_raft::{decode_entry, KuraNode, NodeId, RaftBackend, Snapshot};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{ChangeMembers, ServerState};
use tokio::io::AsyncWriteExt;

use crate::frame::{FrameError, FramedStream};
use crate::listener::{PeerInfo, StreamHandler};
use crate::wire::{
    self, AppendHeader, ChunkHeader, FullSnapshotHeader, JoinReply, JoinRequest, LeaderHint,
    MembershipError, RemoveRequest, WireError, KIND_APPEND, KIND_FULL_SNAPSHOT, KIND_JOIN,
    KIND_REMOVE, KIND_SNAPSHOT_CHUNK, KIND_VOTE,
};

/// Tuning of the raft service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// How long the leader waits for a joining node to catch up before it gives up (the node
    /// stays a non-voter; joining again resumes).
    pub catch_up_timeout: Duration,
    /// Whether a node that asks to join as a voter is promoted as soon as it has caught up.
    /// When false, it stays a learner and something else (autopilot's server stabilisation)
    /// promotes it later with [`RaftService::promote`].
    pub promote_on_join: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            idle_timeout: Duration::from_secs(300),
            catch_up_timeout: Duration::from_secs(60),
            promote_on_join: true,
        }
    }
}

/// Why serving a connection stopped early.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("receiving a snapshot: {0}")]
    SnapshotFile(std::io::Error),
}

/// Serves `kura-raft/1` connections for one raft node.
pub struct RaftService {
    backend: RaftBackend,
    opts: ServiceOptions,
    /// Membership changes are made one at a time.
    membership: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService")
            .field("node", &self.backend.node_name())
            .field("opts", &self.opts)
            .finish()
    }
}

#[async_trait]
impl StreamHandler for RaftService {
    async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
        loop {
            let frame = match tokio::time::timeout(self.opts.idle_timeout, stream.recv()).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer.remote_addr, error = %e, "raft connection failed");
                    return;
                }
            };
            let reply = match self.dispatch(&mut stream, &frame).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(peer = %peer.remote_addr, error = %e, "bad raft request; closing");
                    return;
                }
            };
            if let Err(e) = stream.send_flush(&reply).await {
                tracing::debug!(peer = %peer.remote_addr, error = %e, "raft reply not sent");
                return;
            }
        }
    }
}

impl RaftService {
    /// A service for `backend`'s raft node.
    pub fn new(backend: RaftBackend, opts: ServiceOptions) -> Self {
        RaftService {
            backend,
            opts,
            membership: tokio::sync::Mutex::new(()),
        }
    }

    async fn dispatch(
        &self,
        stream: &mut FramedStream,
        frame: &[u8],
    ) -> Result<Vec<u8>, ServeError> {
        let raft = self.backend.raft();
        let (kind, body) = wire::split_header(frame)?;
        match kind {
            KIND_APPEND => {
                let h: AppendHeader = wire::decode(body)?;
                let mut entries = Vec::with_capacity((h.entries as usize).min(1024));
                for _ in 0..h.entries {
                    let bytes = stream.recv_some().await?;
                    entries.push(decode_entry(&bytes).map_err(WireError::from)?);
                }
                let rpc = AppendEntriesRequest {
                    vote: h.vote,
                    prev_log_id: h.prev_log_id,
                    leader_commit: h.leader_commit,
                    entries,
                };
                Ok(wire::reply(&raft.append_entries(rpc).await))
            }
            KIND_VOTE => {
                let rpc: VoteRequest<NodeId> = wire::decode(body)?;
                Ok(wire::reply(&raft.vote(rpc).await))
            }
            KIND_SNAPSHOT_CHUNK => {
                let h: ChunkHeader = wire::decode(body)?;
                let data = stream.recv_some().await?;
                let rpc = InstallSnapshotRequest {
                    vote: h.vote,
                    meta: h.meta,
                    offset: h.offset,
                    data,
                    done: h.done,
                };
                Ok(wire::reply(&raft.install_snapshot(rpc).await))
            }
            KIND_FULL_SNAPSHOT => {
                let h: FullSnapshotHeader = wire::decode(body)?;
                self.receive_snapshot(stream, h).await
            }
            KIND_JOIN => {
                let req: JoinRequest = wire::decode(body)?;
                Ok(wire::reply(&self.admit(req).await))
            }
            KIND_REMOVE => {
                let req: RemoveRequest = wire::decode(body)?;
                Ok(wire::reply(&self.remove(&req.name).await))
            }
            k => Err(WireError::UnknownKind(k).into()),
        }
    }

    /// Receives a streamed snapshot into a file of the state machine and installs it.
    async fn receive_snapshot(
        &self,
        stream: &mut FramedStream,
        h: FullSnapshotHeader,
    ) -> Result<Vec<u8>, ServeError> {
        let raft = self.backend.raft();
        let mut file = match raft.begin_receiving_snapshot().await {
            Ok(file) => file,
            Err(e) => {
                // Drain the data so the connection stays in step, then report raft's failure.
                while !stream.recv_some().await?.is_empty() {}
                let fatal = e.into_fatal().expect("an infallible raft error is fatal");
                return Ok(wire::reply::<(), _>(&Err(fatal)));
            }
        };
        let path = file.path().to_path_buf();
        let received: Result<(), ServeError> = async {
            loop {
                let chunk = stream.recv_some().await?;
                if chunk.is_empty() {
                    break;
                }
                file.write_all(&chunk)
                    .await
                    .map_err(ServeError::SnapshotFile)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = received {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        let res = raft
            .install_full_snapshot(
                h.vote,
                Snapshot {
                    meta: h.meta,
                    snapshot: file,
                },
            )
            .await;
        // An installed snapshot file has been moved into place; one that was not installed
        // (stale vote, older than what is applied) is removed here.
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(wire::reply(&res))
    }

    /// Adds a node to the cluster: as a learner first, then — once it has caught up with the
    /// log — as a voter if asked. Only the leader admits; others answer with a leader hint.
    ///
    /// The gate is the cluster port's mutual TLS: only a holder of the cluster identity can
    /// send this request. (The unseal-key challenge of `sys/storage/raft/bootstrap` comes on
    /// top of it in the core.)
    pub async fn admit(&self, req: JoinRequest) -> Result<JoinReply, MembershipError> {
        let _one_at_a_time = self.membership.lock().await;
        self.ensure_leader()?;
        let raft = self.backend.raft();
        let (nodes, voters) = membership(&self.backend);
        if let Some((&existing, _)) = nodes
            .iter()
            .find(|(id, n)| n.name == req.node.name && **id != req.id)
        {
            return Err(MembershipError::NameTaken {
                name: req.node.name,
                existing,
            });
        }
        match nodes.get(&req.id) {
            None => {
                tracing::info!(node = %req.node, id = req.id, "adding raft learner");
                raft.add_learner(req.id, req.node.clone(), false)
                    .await
                    .map_err(|e| self.write_error(e))?;
            }
            Some(known) if *known != req.node => {
                tracing::info!(node = %req.node, id = req.id, "updating the addresses of a raft member");
                raft.change_membership(
                    ChangeMembers::SetNodes(BTreeMap::from([(req.id, req.node.clone())])),
                    true,
                )
                .await
                .map_err(|e| self.write_error(e))?;
            }
            Some(_) => {}
        }
        let mut voter = voters.contains(&req.id);
        if req.voter && !voter && self.opts.promote_on_join {
            self.wait_caught_up(req.id).await?;
            tracing::info!(node = %req.node, id = req.id, "promoting raft learner to voter");
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([req.id])), true)
                .await
                .map_err(|e| self.write_error(e))?;
            voter = true;
        }
        Ok(JoinReply {
            leader: self.backend.node_id(),
            members: self.backend.members(),
            voter,
        })
    }

    /// Makes the learner named `name` a voter. Only the leader promotes; others answer with a
    /// leader hint. Promoting a voter changes nothing.
    pub async fn promote(&self, name: &str) -> Result<(), MembershipError> {
        let _one_at_a_time = self.membership.lock().await;
        self.ensure_leader()?;
        let (nodes, voters) = membership(&self.backend);
        let Some((&id, _)) = nodes.iter().find(|(_, n)| n.name == name) else {
            return Err(MembershipError::PeerNotFound(name.to_string()));
        };
        if voters.contains(&id) {
            return Ok(());
        }
        tracing::info!(name, id, "promoting raft learner to voter");
        self.backend
            .raft()
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Removes the member named `name` (voter or not) from the cluster. Only the leader
    /// removes; others answer with a leader hint.
    pub async fn remove(&self, name: &str) -> Result<(), MembershipError> {
        let _one_at_a_time = self.membership.lock().await;
        self.ensure_leader()?;
        let (nodes, voters) = membership(&self.backend);
        let Some((&id, _)) = nodes.iter().find(|(_, n)| n.name == name) else {
            return Err(MembershipError::PeerNotFound(name.to_string()));
        };
        let ids = BTreeSet::from([id]);
        let change = if voters.contains(&id) {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        tracing::info!(name, id, "removing raft member");
        self.backend
            .raft()
            .change_membership(change, false)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Waits until the leader has replicated to `id` everything it had when the wait began.
    async fn wait_caught_up(&self, id: NodeId) -> Result<(), MembershipError> {
        let raft = self.backend.raft();
        let target = raft.metrics().borrow().last_log_index;
        let me = self.backend.node_id();
        let waited = raft
            .wait(Some(self.opts.catch_up_timeout))
            .metrics(
                |m| {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&id))
                        .and_then(|l| l.as_ref())
                        .map(|l| l.index);
                    matched >= target
                        || m.state != ServerState::Leader
                        || m.current_leader != Some(me)
                },
                "joining node caught up",
            )
            .await;
        match waited {
            Ok(_) => self.ensure_leader(),
            Err(openraft::metrics::WaitError::Timeout(..)) => {
                Err(MembershipError::CatchUpTimeout {
                    millis: self.opts.catch_up_timeout.as_millis() as u64,
                })
            }
            Err(openraft::metrics::WaitError::ShuttingDown) => {
                Err(MembershipError::Raft("raft is shutting down".into()))
            }
        }
    }

    fn ensure_leader(&self) -> Result<(), MembershipError> {
        if self.backend.is_leader() {
            Ok(())
        } else {
            Err(MembershipError::NotLeader {
                leader: leader_hint(&self.backend),
            })
        }
    }

    fn write_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, KuraNode>>,
    ) -> MembershipError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                MembershipError::NotLeader {
                    leader: match (f.leader_id, f.leader_node) {
                        (Some(id), Some(node)) => Some(LeaderHint { id, node }),
                        _ => None,
                    },
                }
            }
            other => MembershipError::Raft(other.to_string()),
        }
    }
}

/// Every member and the voter ids of the latest membership this node knows.
pub(crate) fn membership(backend: &RaftBackend) -> (BTreeMap<NodeId, KuraNode>, BTreeSet<NodeId>) {
    let m = backend.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    let nodes = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let voters = membership.voter_ids().collect();
    (nodes, voters)
}

/// The leader as this node knows it (not this node).
pub(crate) fn leader_hint(backend: &RaftBackend) -> Option<LeaderHint> {
    let m = backend.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    if id == backend.node_id() && m.state == ServerState::Leader {
        return None;
    }
    let node = m.membership_config.membership().get_node(&id)?.clone();
    Some(LeaderHint { id, node })
}
