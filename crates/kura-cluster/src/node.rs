//! [`ClusterNode`]: a raft node on the cluster port — the cluster listener, the raft transport
//! and the raft service put together around a [`RaftBackend`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kura_raft::{KuraNode, NodeId, RaftBackend, RaftOptions};
use openraft::ServerState;
use tokio::time::Instant;

use crate::listener::{ClusterListener, ListenerOptions, ALPN_RAFT};
use crate::service::{leader_hint, membership, RaftService, ServiceOptions};
use crate::tls::ClusterTls;
use crate::transport::{CallError, ClusterTransport, TransportOptions};
use crate::wire::{JoinReply, JoinRequest, LeaderHint, MembershipError};
use crate::ClusterError;

/// Pause between attempts while no leader is known or the target cannot be reached.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Most leader hints followed in one attempt, against hint loops during elections.
const MAX_REDIRECTS: usize = 8;

/// How to start a [`ClusterNode`].
#[derive(Debug, Clone)]
pub struct ClusterNodeOptions {
    /// The raft storage. An empty `cluster_addr` is set to `https://<bound address>`.
    pub raft: RaftOptions,
    /// Where the cluster listener binds (the listener's `cluster_address`).
    pub bind: SocketAddr,
    /// Limits of the cluster listener.
    pub listener: ListenerOptions,
    /// Tuning of the raft transport.
    pub transport: TransportOptions,
    /// Tuning of the raft service.
    pub service: ServiceOptions,
}

impl ClusterNodeOptions {
    /// Default tuning for `raft`, listening on `bind`.
    pub fn new(raft: RaftOptions, bind: SocketAddr) -> Self {
        ClusterNodeOptions {
            raft,
            bind,
            listener: ListenerOptions::default(),
            transport: TransportOptions::default(),
            service: ServiceOptions::default(),
        }
    }
}

/// One member as this node sees the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Raft id.
    pub id: NodeId,
    /// Name and addresses.
    pub node: KuraNode,
    /// Whether it votes (otherwise it is a non-voter, a learner).
    pub voter: bool,
    /// Whether it is the current leader.
    pub leader: bool,
}

/// A raft node reachable on the cluster port.
pub struct ClusterNode {
    backend: RaftBackend,
    listener: ClusterListener,
    transport: Arc<ClusterTransport>,
    service: Arc<RaftService>,
    me: KuraNode,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("me", &self.me)
            .field("id", &self.backend.node_id())
            .field("listener", &self.listener)
            .finish()
    }
}

impl ClusterNode {
    /// Binds the cluster port, opens the raft storage with the cluster transport and starts
    /// serving raft on the port. With `opts.raft.initialize` on new storage, this node forms a
    /// one-voter cluster; a node that is going to [`Self::join`] sets it to `false`.
    pub async fn start(
        mut opts: ClusterNodeOptions,
        tls: Arc<ClusterTls>,
    ) -> Result<Self, ClusterError> {
        let listener = ClusterListener::bind(opts.bind, tls.clone(), opts.listener)
            .await
            .map_err(|source| ClusterError::Bind {
                addr: opts.bind,
                source,
            })?;
        if opts.raft.cluster_addr.is_empty() {
            opts.raft.cluster_addr = format!("https://{}", listener.local_addr());
        }
        let transport = Arc::new(ClusterTransport::new(tls, opts.transport));
        let backend =
            match RaftBackend::open_with_transport(opts.raft.clone(), transport.clone()).await {
                Ok(b) => b,
                Err(e) => {
                    listener.shutdown().await;
                    return Err(e.into());
                }
            };
        let service = Arc::new(RaftService::new(backend.clone(), opts.service));
        listener.register(ALPN_RAFT, service.clone());
        let me = KuraNode {
            name: backend.node_name().to_string(),
            api_addr: opts.raft.api_addr,
            cluster_addr: opts.raft.cluster_addr,
        };
        Ok(ClusterNode {
            backend,
            listener,
            transport,
            service,
            me,
        })
    }

    /// The raft storage backend.
    pub fn backend(&self) -> &RaftBackend {
        &self.backend
    }

    /// The cluster listener (to register further protocols on the same port).
    pub fn listener(&self) -> &ClusterListener {
        &self.listener
    }

    /// The raft transport.
    pub fn transport(&self) -> &Arc<ClusterTransport> {
        &self.transport
    }

    /// This node's name and advertised addresses.
    pub fn me(&self) -> &KuraNode {
        &self.me
    }

    /// The address the cluster port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The members as this node knows them, sorted by raft id.
    pub fn peers(&self) -> Vec<Peer> {
        let (nodes, voters) = membership(&self.backend);
        let leader = self.backend.metrics().borrow().current_leader;
        nodes
            .into_iter()
            .map(|(id, node)| Peer {
                id,
                node,
                voter: voters.contains(&id),
                leader: leader == Some(id),
            })
            .collect()
    }

    /// The current leader, if known (this node included).
    pub fn leader(&self) -> Option<LeaderHint> {
        let m = self.backend.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some(LeaderHint { id, node })
    }

    /// Asks the cluster reachable at `cluster_addr` (any member: a non-leader answers with the
    /// leader, which is then asked) to admit this node — as a learner, then, once it has
    /// caught up, as a voter unless `voter` is false. Retries while no leader is known or the
    /// target is unreachable, until `timeout`. Joining again is harmless: a member that is
    /// already in place is left as it is (its addresses are updated if they changed).
    pub async fn join(
        &self,
        cluster_addr: &str,
        voter: bool,
        timeout: Duration,
    ) -> Result<JoinReply, ClusterError> {
        let req = JoinRequest {
            id: self.backend.node_id(),
            node: self.me.clone(),
            voter,
        };
        self.ask_leader(cluster_addr, timeout, |addr, ttl| {
            let transport = self.transport.clone();
            let req = req.clone();
            async move { transport.request_join(&addr, &req, ttl).await }
        })
        .await
    }

    /// Removes the member named `name` from the cluster (asking the leader when this node does
    /// not lead). The removed node should be shut down: it no longer receives the log.
    pub async fn remove_peer(&self, name: &str, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.backend.is_leader() {
                match self.service.remove(name).await {
                    Err(MembershipError::NotLeader { .. }) => {}
                    other => return other.map_err(ClusterError::from),
                }
            }
            if let Some(hint) = leader_hint(&self.backend) {
                let name = name.to_string();
                return self
                    .ask_leader(
                        &hint.node.cluster_addr,
                        deadline.saturating_duration_since(Instant::now()),
                        |addr, ttl| {
                            let transport = self.transport.clone();
                            let name = name.clone();
                            async move { transport.request_remove(&addr, &name, ttl).await }
                        },
                    )
                    .await;
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(ClusterError::Timeout {
                    what: "removing a raft peer",
                    after: timeout,
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Makes the learner named `name` a voter. Only works on the leader (autopilot runs there).
    pub async fn promote(&self, name: &str) -> Result<(), ClusterError> {
        self.service.promote(name).await.map_err(ClusterError::from)
    }

    /// When the member `id` last answered this node's append-entries requests (sent while
    /// this node leads).
    pub fn last_contact(&self, id: NodeId) -> Option<Instant> {
        self.transport.last_contact(id)
    }

    /// Sends a membership request to `start`, following leader hints and retrying transient
    /// failures for at most `timeout`.
    async fn ask_leader<T, F, Fut>(
        &self,
        start: &str,
        timeout: Duration,
        send: F,
    ) -> Result<T, ClusterError>
    where
        F: Fn(String, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, MembershipError>, CallError>>,
    {
        let deadline = Instant::now() + timeout;
        let mut target = start.to_string();
        let mut redirects = 0;
        loop {
            let ttl = deadline.saturating_duration_since(Instant::now());
            if ttl.is_zero() {
                return Err(ClusterError::Timeout {
                    what: "membership request",
                    after: timeout,
                });
            }
            let last = match send(target.clone(), ttl).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(MembershipError::NotLeader { leader: Some(hint) }))
                    if hint.node.cluster_addr != target && redirects < MAX_REDIRECTS =>
                {
                    tracing::debug!(leader = %hint.node, "following the raft leader hint");
                    target = hint.node.cluster_addr;
                    redirects += 1;
                    continue;
                }
                Ok(Err(e @ MembershipError::NotLeader { .. })) => ClusterError::Membership(e),
                Ok(Err(e)) => return Err(ClusterError::Membership(e)),
                Err(e) => ClusterError::Call(e),
            };
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(last);
            }
            tracing::debug!(target, error = %last, "membership request failed; retrying");
            tokio::time::sleep(RETRY_PAUSE).await;
            target = start.to_string();
            redirects = 0;
        }
    }

    /// Waits until this node's raft reports the given state, or `timeout`.
    pub async fn wait_for_state(
        &self,
        state: ServerState,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        self.backend
            .raft()
            .wait(Some(timeout))
            .state(state, "cluster node state")
            .await
            .map(|_| ())
            .map_err(|_| ClusterError::Timeout {
                what: "waiting for a raft state",
                after: timeout,
            })
    }

    /// Stops the cluster port (closing every connection), then raft and the storage.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        self.listener.shutdown().await;
        self.transport.clear_pool();
        self.backend.shutdown().await?;
        self.transport.clear_pool();
        Ok(())
    }
}
