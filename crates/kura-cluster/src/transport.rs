//! The raft transport over the cluster port: [`ClusterTransport`] implements
//! [`kura_raft::RaftTransport`] by sending `kura-raft/1` requests ([`crate::wire`]) to the
//! peer's `cluster_addr`.
//!
//! Connections are pooled per peer address: an RPC takes an idle connection (or dials a new
//! one), and puts it back only after a complete reply, so a connection abandoned half-way (a
//! timeout, a cancelled future) is simply dropped. A pooled connection that turns out to be dead
//! — the peer restarted — is replaced by a fresh one once, transparently: raft RPCs are safe to
//! resend. Connections made with an older cluster identity are never reused.
//!
//! Errors map to openraft's retry semantics: a peer that cannot be dialed (refused, TLS
//! handshake failed, dial timeout) is `Unreachable` (openraft backs off), a reply that does not
//! arrive in time is `Timeout`, a broken or garbled exchange on an established connection is a
//! `Network` error (retried at once), and an error raised by the peer's raft is a
//! `RemoteError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kura_raft::{
    encode_entry, CancelFuture, KuraNode, NodeId, RaftTransport, RpcError, Snapshot, SnapshotError,
    TypeConfig,
};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, StreamingError,
    Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::Vote;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::time::Instant;

use crate::frame::{FrameError, FramedStream, DEFAULT_MAX_FRAME_BYTES};
use crate::listener::{dial, DialError, ALPN_RAFT};
use crate::tls::ClusterTls;
use crate::wire::{
    self, AppendHeader, ChunkHeader, FullSnapshotHeader, JoinReply, JoinRequest, MembershipError,
    RemoveRequest, WireError, KIND_APPEND, KIND_FULL_SNAPSHOT, KIND_JOIN, KIND_REMOVE,
    KIND_SNAPSHOT_CHUNK, KIND_VOTE,
};

/// Tuning of the raft transport.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Longest wait for a TCP connection and TLS handshake (capped by the RPC's own deadline).
    pub connect_timeout: Duration,
    /// Idle connections kept per peer.
    pub max_idle_per_peer: usize,
    /// An idle connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    /// Largest frame sent or accepted.
    pub max_frame_bytes: usize,
    /// Size of a snapshot data frame when openraft does not ask for one.
    pub snapshot_chunk_bytes: usize,
    /// How long the receiver may take to install a streamed snapshot after the last byte.
    pub snapshot_install_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(2),
            max_idle_per_peer: 4,
            idle_timeout: Duration::from_secs(90),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            snapshot_chunk_bytes: 1024 * 1024,
            snapshot_install_timeout: Duration::from_secs(300),
        }
    }
}

/// Why one exchange with a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be dialed.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The connection broke or carried an invalid frame.
    #[error(transparent)]
    Stream(#[from] FrameError),
    /// The reply did not arrive in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The reply did not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Reading the local snapshot file failed.
    #[error("reading the local snapshot: {0}")]
    Snapshot(std::io::Error),
}

struct Idle {
    stream: FramedStream,
    generation: u64,
    since: Instant,
}

/// The raft transport over the cluster port, with a connection pool per peer.
pub struct ClusterTransport {
    tls: Arc<ClusterTls>,
    opts: TransportOptions,
    pool: Mutex<HashMap<String, Vec<Idle>>>,
    /// When each peer last answered an append-entries request (heartbeats included): the
    /// leader's view of its followers' liveness, for autopilot.
    contacts: Mutex<HashMap<NodeId, Instant>>,
}

impl std::fmt::Debug for ClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTransport")
            .field("opts", &self.opts)
            .field("idle", &self.idle_connections())
            .finish()
    }
}

impl ClusterTransport {
    /// A transport dialing with `tls`.
    pub fn new(tls: Arc<ClusterTls>, opts: TransportOptions) -> Self {
        ClusterTransport {
            tls,
            opts,
            pool: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
        }
    }

    /// When `peer` last answered an append-entries request sent by this node (as leader), if
    /// it ever did.
    pub fn last_contact(&self, peer: NodeId) -> Option<Instant> {
        self.contacts
            .lock()
            .expect("contacts lock")
            .get(&peer)
            .copied()
    }

    /// Idle pooled connections, all peers together.
    pub fn idle_connections(&self) -> usize {
        self.pool
            .lock()
            .expect("pool lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Closes every idle connection.
    pub fn clear_pool(&self) {
        self.pool.lock().expect("pool lock").clear();
    }

    fn take_idle(&self, addr: &str) -> Option<Idle> {
        let generation = self.tls.generation();
        let mut pool = self.pool.lock().expect("pool lock");
        let list = pool.get_mut(addr)?;
        while let Some(idle) = list.pop() {
            if idle.generation == generation && idle.since.elapsed() < self.opts.idle_timeout {
                return Some(idle);
            }
        }
        None
    }

    fn put_idle(&self, addr: &str, stream: FramedStream, generation: u64) {
        if generation != self.tls.generation() || self.opts.max_idle_per_peer == 0 {
            return;
        }
        let mut pool = self.pool.lock().expect("pool lock");
        let list = pool.entry(addr.to_string()).or_default();
        list.retain(|i| i.since.elapsed() < self.opts.idle_timeout);
        if list.len() < self.opts.max_idle_per_peer {
            list.push(Idle {
                stream,
                generation,
                since: Instant::now(),
            });
        }
    }

    /// An idle connection to `addr` (`true`: reused) or a new one.
    async fn checkout(
        &self,
        addr: &str,
        deadline: Instant,
    ) -> Result<(FramedStream, u64, bool), DialError> {
        if let Some(idle) = self.take_idle(addr) {
            return Ok((idle.stream, idle.generation, true));
        }
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(self.opts.connect_timeout);
        let (stream, generation) = dial(
            &self.tls,
            addr,
            ALPN_RAFT,
            timeout,
            self.opts.max_frame_bytes,
        )
        .await?;
        Ok((stream, generation, false))
    }

    /// Sends `frames` as one request and returns the reply frame, over a pooled connection.
    async fn call(
        &self,
        addr: &str,
        frames: &[Vec<u8>],
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + ttl;
        let mut retried = false;
        loop {
            let (mut stream, generation, reused) = self.checkout(addr, deadline).await?;
            let res = tokio::time::timeout_at(deadline, exchange(&mut stream, frames)).await;
            match res {
                Ok(Ok(reply)) => {
                    self.put_idle(addr, stream, generation);
                    return Ok(reply);
                }
                // A pooled connection the peer has closed meanwhile: try once more, fresh.
                Ok(Err(e)) if reused && !retried => {
                    tracing::debug!(addr, error = %e, "pooled cluster connection is dead; redialing");
                    retried = true;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(CallError::Timeout(ttl)),
            }
        }
    }

    /// Sends a request over a connection of its own (membership requests are not resent on
    /// a stale connection: they are not raft RPCs).
    async fn call_once(
        &self,
        addr: &str,
        frame: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + ttl;
        let timeout = ttl.min(self.opts.connect_timeout);
        let (mut stream, _) = tokio::time::timeout_at(
            deadline,
            dial(
                &self.tls,
                addr,
                ALPN_RAFT,
                timeout,
                self.opts.max_frame_bytes,
            ),
        )
        .await
        .map_err(|_| CallError::Timeout(ttl))??;
        let reply = tokio::time::timeout_at(deadline, exchange(&mut stream, &[frame]))
            .await
            .map_err(|_| CallError::Timeout(ttl))??;
        let _ = stream.close().await;
        Ok(reply)
    }

    /// Asks the node at `cluster_addr` to admit a node (see [`crate::ClusterNode::join`]).
    pub async fn request_join(
        &self,
        cluster_addr: &str,
        req: &JoinRequest,
        ttl: Duration,
    ) -> Result<Result<JoinReply, MembershipError>, CallError> {
        let reply = self
            .call_once(cluster_addr, wire::header(KIND_JOIN, req), ttl)
            .await?;
        Ok(wire::decode(&reply)?)
    }

    /// Asks the node at `cluster_addr` to remove the member named `name`.
    pub async fn request_remove(
        &self,
        cluster_addr: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<Result<(), MembershipError>, CallError> {
        let req = RemoveRequest {
            name: name.to_string(),
        };
        let reply = self
            .call_once(cluster_addr, wire::header(KIND_REMOVE, &req), ttl)
            .await?;
        Ok(wire::decode(&reply)?)
    }

    /// One raft RPC: send, decode the reply, map errors to openraft's.
    async fn raft_call<T, E>(
        &self,
        action: RPCTypes,
        from: NodeId,
        target: NodeId,
        node: &KuraNode,
        frames: &[Vec<u8>],
        option: &RPCOption,
    ) -> Result<T, RPCError<NodeId, KuraNode, RaftError<NodeId, E>>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let ttl = option.hard_ttl();
        let res = self.call(&node.cluster_addr, frames, ttl).await;
        let reply = res.map_err(|e| match e {
            CallError::Dial(d) => RPCError::Unreachable(Unreachable::new(&d)),
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: from,
                target,
                timeout,
            }),
            other => RPCError::Network(NetworkError::new(&other)),
        })?;
        let decoded: Result<T, RaftError<NodeId, E>> = wire::decode(&reply)
            .map_err(|e| RPCError::Network(NetworkError::new(&CallError::Wire(e))))?;
        decoded
            .map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(target, node.clone(), e)))
    }

    async fn send_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        vote: Vote<NodeId>,
        snapshot: Snapshot,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError> {
        let addr = node.cluster_addr.as_str();
        let ttl = option.hard_ttl();
        let from = vote.leader_id().voted_for().unwrap_or_default();
        let timeout_err = |timeout| {
            StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: from,
                target,
                timeout,
            })
        };
        let network = |e: CallError| StreamingError::Network(NetworkError::new(&e));
        let (mut stream, generation, _) = self
            .checkout(addr, Instant::now() + ttl)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        let Snapshot {
            meta,
            snapshot: mut file,
        } = snapshot;
        let header = wire::header(
            KIND_FULL_SNAPSHOT,
            &FullSnapshotHeader {
                vote,
                meta: meta.clone(),
            },
        );
        let chunk = option
            .snapshot_chunk_size()
            .unwrap_or(self.opts.snapshot_chunk_bytes)
            .clamp(4096, self.opts.max_frame_bytes.max(4096));
        let local_io = |e: std::io::Error| {
            StreamingError::StorageError(openraft::StorageError::IO {
                source: openraft::StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    openraft::AnyError::new(&CallError::Snapshot(e)),
                ),
            })
        };
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(local_io)?;
        tokio::time::timeout(ttl, stream.send(&header))
            .await
            .map_err(|_| timeout_err(ttl))?
            .map_err(|e| network(e.into()))?;
        let mut buf = vec![0u8; chunk];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await.map_err(local_io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            tokio::time::timeout(ttl, stream.send(&buf[..filled]))
                .await
                .map_err(|_| timeout_err(ttl))?
                .map_err(|e| network(e.into()))?;
        }
        let end = async {
            stream.send(&[]).await?;
            stream.flush().await?;
            stream.recv_some().await
        };
        let wait = self.opts.snapshot_install_timeout.max(ttl);
        let reply = tokio::time::timeout(wait, end)
            .await
            .map_err(|_| timeout_err(wait))?
            .map_err(|e| network(e.into()))?;
        let decoded: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            wire::decode(&reply).map_err(|e| network(e.into()))?;
        self.put_idle(addr, stream, generation);
        decoded.map_err(|e| {
            StreamingError::RemoteError(RemoteError::new_with_node(target, node.clone(), e))
        })
    }
}

/// Writes a request and reads its reply.
async fn exchange(stream: &mut FramedStream, frames: &[Vec<u8>]) -> Result<Vec<u8>, FrameError> {
    for f in frames {
        stream.send(f).await?;
    }
    stream.flush().await?;
    stream.recv_some().await
}

#[async_trait]
impl RaftTransport for ClusterTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let from = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let mut frames = Vec::with_capacity(rpc.entries.len() + 1);
        frames.push(wire::header(
            KIND_APPEND,
            &AppendHeader {
                vote: rpc.vote,
                prev_log_id: rpc.prev_log_id,
                leader_commit: rpc.leader_commit,
                entries: rpc.entries.len() as u32,
            },
        ));
        frames.extend(rpc.entries.iter().map(encode_entry));
        let res = self
            .raft_call(
                RPCTypes::AppendEntries,
                from,
                target,
                node,
                &frames,
                &option,
            )
            .await;
        if res.is_ok() {
            self.contacts
                .lock()
                .expect("contacts lock")
                .insert(target, Instant::now());
        }
        res
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let from = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let frames = [wire::header(KIND_VOTE, &rpc)];
        self.raft_call(RPCTypes::Vote, from, target, node, &frames, &option)
            .await
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        let from = rpc.vote.leader_id().voted_for().unwrap_or_default();
        let frames = [
            wire::header(
                KIND_SNAPSHOT_CHUNK,
                &ChunkHeader {
                    vote: rpc.vote,
                    meta: rpc.meta,
                    offset: rpc.offset,
                    done: rpc.done,
                },
            ),
            rpc.data,
        ];
        self.raft_call(
            RPCTypes::InstallSnapshot,
            from,
            target,
            node,
            &frames,
            &option,
        )
        .await
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        node: &KuraNode,
        vote: Vote<NodeId>,
        snapshot: Snapshot,
        cancel: CancelFuture,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.send_snapshot(target, node, vote, snapshot, &option) => res,
        }
    }
}
