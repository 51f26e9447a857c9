//! The cluster plane of a node: the cluster port (request forwarding, heartbeats, and with
//! raft storage the raft transport and membership), over `kura-cluster`.
//!
//! Identity bootstrap: the identity lives only inside the barrier (`core/cluster/identity`).
//! Until a node is unsealed it presents a throwaway identity that no peer trusts, so a sealed
//! node takes no part in raft (it cannot vote or receive the log) and serves nothing on the
//! cluster port. The first active node of a new cluster generates the identity; a restarted
//! member reads it from its copy of the storage when unsealed; a new raft node receives it by
//! answering the bootstrap challenge (see `kura_core::cluster`). With PostgreSQL every node
//! reads it from the shared database once unsealed ([`ha`]).

pub mod ha;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kura_client::{Client, ClientConfig};
use kura_cluster::{
    dial, ClusterIdentity, ClusterNode, ClusterTls, FramedStream, PeerInfo, StreamHandler,
    ALPN_FORWARD, ALPN_HEARTBEAT,
};
use kura_core::autopilot::{
    Autopilot, AutopilotConfig, AutopilotState, Echo, EchoTable, ServerObservation, ECHO_INTERVAL,
};
use kura_core::cluster::{
    BootstrapAnswerReply, BootstrapChallenge, ClusterPlane, ClusterPlaneError, ForwardedRequest,
    ForwardedResponse, IdentityBytes, RaftPeer,
};
use kura_core::Core;
use kura_http::ListenerSettings;

/// Time allowed for one forwarded request (dial included).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);
/// Time allowed to dial the active node.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest forwarded message.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Idle forwarding connections kept.
const MAX_IDLE: usize = 16;
/// Time allowed for a raft membership change.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS settings for the joining node's calls to a leader's API.
#[derive(Debug, Clone, Default)]
pub struct JoinTls {
    /// `leader_ca_cert_file`.
    pub ca_cert: Option<std::path::PathBuf>,
    /// `leader_client_cert_file`.
    pub client_cert: Option<std::path::PathBuf>,
    /// `leader_client_key_file`.
    pub client_key: Option<std::path::PathBuf>,
    /// `leader_tls_servername`.
    pub server_name: Option<String>,
}

/// The raft node's cluster plane.
pub struct RaftPlane {
    node: Arc<ClusterNode>,
    tls: Arc<ClusterTls>,
    forwarder: Forwarder,
    /// TLS settings per leader API address (from the `retry_join` blocks).
    join_tls: Vec<(String, JoinTls)>,
    /// Standbys' heartbeats received while this node is active.
    echoes: Arc<EchoTable>,
    /// Autopilot's memory (used while this node leads).
    autopilot: Autopilot,
    /// The raft term in which this node last led, and since when: contact times from
    /// before are not this leadership's.
    led_since: Mutex<Option<(u64, tokio::time::Instant)>>,
    /// Whether this node wants to vote (told to the active node in its heartbeats).
    desired_voter: AtomicBool,
}

/// Largest heartbeat frame.
const MAX_ECHO_FRAME: usize = 64 * 1024;

/// Serves standbys' heartbeats (`kura-heartbeat/1`): each frame is an [`Echo`], answered
/// with an empty JSON object.
pub struct HeartbeatService {
    /// Where echoes are recorded.
    pub echoes: Arc<EchoTable>,
}

#[async_trait]
impl StreamHandler for HeartbeatService {
    async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
        loop {
            let frame = match stream.recv().await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => return,
            };
            match serde_json::from_slice::<Echo>(&frame) {
                Ok(echo) => self.echoes.record(echo),
                Err(e) => {
                    tracing::warn!(peer = %peer.remote_addr, error = %e, "malformed heartbeat");
                    return;
                }
            }
            if stream.send_flush(b"{}").await.is_err() {
                return;
            }
        }
    }
}

/// On a standby: sends this node's echo to the active node every [`ECHO_INTERVAL`], over
/// one kept connection (redialled when the active node or the identity changes).
pub async fn heartbeat_loop<F>(core: Arc<Core>, tls: Arc<ClusterTls>, echo: F)
where
    F: Fn() -> Echo + Send + 'static,
{
    let mut conn: Option<(String, u64, FramedStream)> = None;
    let mut ticker = tokio::time::interval(ECHO_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = core.ha_state();
    loop {
        // A new standby echoes at once rather than on the next tick.
        tokio::select! {
            _ = ticker.tick() => {}
            r = state.changed() => if r.is_err() { return },
        }
        if !core.current_state().is_standby() {
            conn = None;
            continue;
        }
        let Some(ad) = core.leader_advertisement().await else {
            continue;
        };
        let Ok(payload) = serde_json::to_vec(&echo()) else {
            continue;
        };
        let generation = tls.generation();
        let reuse = matches!(&conn, Some((a, g, _)) if *a == ad.cluster_addr && *g == generation);
        if !reuse {
            conn = match dial(
                &tls,
                &ad.cluster_addr,
                ALPN_HEARTBEAT,
                DIAL_TIMEOUT,
                MAX_ECHO_FRAME,
            )
            .await
            {
                Ok((stream, g)) => Some((ad.cluster_addr.clone(), g, stream)),
                Err(e) => {
                    tracing::debug!(active = %ad.cluster_addr, error = %e, "heartbeat: dialing the active node failed");
                    None
                }
            };
        }
        if let Some((_, _, stream)) = conn.as_mut() {
            let sent = tokio::time::timeout(DIAL_TIMEOUT, async {
                stream.send_flush(&payload).await?;
                stream.recv_some().await
            })
            .await;
            if !matches!(sent, Ok(Ok(_))) {
                tracing::debug!(active = %ad.cluster_addr, "heartbeat not acknowledged");
                conn = None;
            }
        }
    }
}

/// On every node: one autopilot round per [`kura_core::autopilot::TICK`] (it acts only
/// on the active node).
pub async fn autopilot_loop(core: std::sync::Weak<Core>) {
    loop {
        tokio::time::sleep(kura_core::autopilot::TICK).await;
        let Some(core) = core.upgrade() else { return };
        core.autopilot_tick().await;
    }
}

impl RaftPlane {
    /// A plane over a started cluster node.
    pub fn new(
        node: Arc<ClusterNode>,
        tls: Arc<ClusterTls>,
        join_tls: Vec<(String, JoinTls)>,
    ) -> Self {
        RaftPlane {
            node,
            forwarder: Forwarder::new(tls.clone()),
            tls,
            join_tls,
            echoes: Arc::new(EchoTable::default()),
            autopilot: Autopilot::new(),
            led_since: Mutex::new(None),
            desired_voter: AtomicBool::new(true),
        }
    }

    /// Sets whether this node wants to vote (`retry_join_as_non_voter` clears it).
    pub fn set_desired_voter(&self, voter: bool) {
        self.desired_voter.store(voter, Ordering::Relaxed);
    }

    /// The table of echoes this node records while active.
    pub fn echo_table(&self) -> Arc<EchoTable> {
        self.echoes.clone()
    }

    /// This node's heartbeat.
    pub fn echo(&self) -> Echo {
        let me = self.node.me();
        let applied = self
            .node
            .backend()
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0);
        Echo {
            node_id: me.name.clone(),
            api_addr: me.api_addr.clone(),
            cluster_addr: me.cluster_addr.clone(),
            version: kura_core::VERSION.to_string(),
            voter: self.desired_voter.load(Ordering::Relaxed),
            applied_index: applied,
        }
    }

    fn client(&self, addr: &str) -> Result<Client, ClusterPlaneError> {
        // The settings of the block naming this leader; for an address given some other
        // way (`sys/storage/raft/join`), the first block's.
        let tls = self
            .join_tls
            .iter()
            .find(|(a, _)| a.trim_end_matches('/') == addr.trim_end_matches('/'))
            .or(self.join_tls.first())
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let cfg = ClientConfig {
            address: addr.to_string(),
            ca_cert: tls.ca_cert,
            client_cert: tls.client_cert,
            client_key: tls.client_key,
            tls_server_name: tls.server_name,
            timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        Client::new(cfg).map_err(|e| ClusterPlaneError::Join(e.to_string()))
    }

    async fn post(
        &self,
        addr: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ClusterPlaneError> {
        let resp = self
            .client(addr)?
            .request(kura_client::Method::PUT, path, &[], Some(body))
            .await
            .map_err(|e| ClusterPlaneError::Join(format!("{addr}: {e}")))?;
        if !resp.is_success() {
            return Err(ClusterPlaneError::Join(format!(
                "{addr}: {}",
                resp.api_error()
            )));
        }
        resp.json()
            .cloned()
            .ok_or_else(|| ClusterPlaneError::Join(format!("{addr}: empty answer")))
    }
}

/// A new cluster identity, serialized.
pub fn generate_identity() -> Result<IdentityBytes, ClusterPlaneError> {
    Ok(ClusterIdentity::generate()
        .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?
        .to_bytes())
}

/// Makes `identity` (serialized) the one `tls` presents and trusts; `true` when it changed
/// (connections made with the old one should then be dropped).
pub fn install_identity(tls: &ClusterTls, identity: &[u8]) -> Result<bool, ClusterPlaneError> {
    let id = ClusterIdentity::from_bytes(identity)
        .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?;
    if id.fingerprint() == tls.identity().fingerprint() {
        return Ok(false);
    }
    tls.set_identity(id, Vec::new())
        .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?;
    tracing::info!("cluster identity installed");
    Ok(true)
}

/// Request forwarding to the active node: frames over kept `kura-forward/1` connections
/// (redialled when the identity changes).
pub struct Forwarder {
    tls: Arc<ClusterTls>,
    idle: Mutex<Vec<(String, u64, FramedStream)>>,
}

impl Forwarder {
    /// A forwarder dialling with `tls`.
    pub fn new(tls: Arc<ClusterTls>) -> Self {
        Forwarder {
            tls,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Forgets every kept connection (the identity changed).
    pub fn clear(&self) {
        self.idle.lock().expect("forward pool").clear();
    }

    /// Sends `req` to the active node at `cluster_addr` and returns its answer.
    pub async fn forward(
        &self,
        cluster_addr: &str,
        req: &ForwardedRequest,
    ) -> Result<ForwardedResponse, ClusterPlaneError> {
        let payload =
            serde_json::to_vec(req).map_err(|e| ClusterPlaneError::Forward(e.to_string()))?;
        let reply = self.exchange(cluster_addr, &payload).await?;
        serde_json::from_slice(&reply).map_err(|e| ClusterPlaneError::Forward(e.to_string()))
    }

    async fn exchange(
        &self,
        cluster_addr: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, ClusterPlaneError> {
        let generation = self.tls.generation();
        let pooled = {
            let mut idle = self.idle.lock().expect("forward pool");
            idle.iter()
                .position(|(a, g, _)| a == cluster_addr && *g == generation)
                .map(|i| idle.swap_remove(i).2)
        };
        if let Some(mut stream) = pooled {
            // A pooled connection may have been closed by the peer: retry once on a new one.
            if let Ok(reply) = send_recv(&mut stream, payload).await {
                self.put_back(cluster_addr, generation, stream);
                return Ok(reply);
            }
        }
        let (mut stream, generation) = dial(
            &self.tls,
            cluster_addr,
            ALPN_FORWARD,
            DIAL_TIMEOUT,
            MAX_FRAME,
        )
        .await
        .map_err(|e| ClusterPlaneError::Unreachable(e.to_string()))?;
        let reply = send_recv(&mut stream, payload).await?;
        self.put_back(cluster_addr, generation, stream);
        Ok(reply)
    }

    fn put_back(&self, addr: &str, generation: u64, stream: FramedStream) {
        let mut idle = self.idle.lock().expect("forward pool");
        if idle.len() < MAX_IDLE {
            idle.push((addr.to_string(), generation, stream));
        }
    }
}

async fn send_recv(
    stream: &mut FramedStream,
    payload: &[u8],
) -> Result<Vec<u8>, ClusterPlaneError> {
    let work = async {
        stream.send_flush(payload).await?;
        stream.recv_some().await
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, work).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(ClusterPlaneError::Forward(e.to_string())),
        Err(_) => Err(ClusterPlaneError::Forward("timed out".into())),
    }
}

#[async_trait]
impl ClusterPlane for RaftPlane {
    fn is_raft(&self) -> bool {
        true
    }

    fn generate_identity(&self) -> Result<IdentityBytes, ClusterPlaneError> {
        generate_identity()
    }

    fn install_identity(&self, identity: &[u8]) -> Result<(), ClusterPlaneError> {
        if install_identity(&self.tls, identity)? {
            self.node.transport().clear_pool();
            self.forwarder.clear();
        }
        Ok(())
    }

    async fn forward(
        &self,
        cluster_addr: &str,
        req: &ForwardedRequest,
    ) -> Result<ForwardedResponse, ClusterPlaneError> {
        self.forwarder.forward(cluster_addr, req).await
    }

    fn peers(&self) -> Vec<RaftPeer> {
        self.node
            .peers()
            .into_iter()
            .map(|p| RaftPeer {
                address: kura_cluster::listener::socket_target(&p.node.cluster_addr)
                    .map(str::to_string)
                    .unwrap_or_else(|_| p.node.cluster_addr.clone()),
                api_address: p.node.api_addr.clone(),
                cluster_address: p.node.cluster_addr.clone(),
                node_id: p.node.name,
                leader: p.leader,
                voter: p.voter,
            })
            .collect()
    }

    fn autopilot_evaluate(&self, cfg: &AutopilotConfig) -> Option<AutopilotState> {
        let backend = self.node.backend();
        if !backend.is_leader() {
            *self.led_since.lock().expect("led since") = None;
            return None;
        }
        let m = backend.metrics().borrow().clone();
        let since = {
            let mut led = self.led_since.lock().expect("led since");
            match *led {
                Some((term, since)) if term == m.current_term => since,
                _ => {
                    self.autopilot.reset();
                    let now = tokio::time::Instant::now();
                    *led = Some((m.current_term, now));
                    now
                }
            }
        };
        let me = backend.node_id();
        let leader_index = m.last_log_index.unwrap_or(0);
        let observed: Vec<ServerObservation> = self
            .node
            .peers()
            .into_iter()
            .map(|p| {
                let leader = p.id == me;
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&p.id).copied().flatten());
                let (last_term, last_index) = if leader {
                    (m.current_term, leader_index)
                } else {
                    matched
                        .map(|l| (l.leader_id.term, l.index))
                        .unwrap_or((0, 0))
                };
                let last_contact = if leader {
                    Duration::ZERO
                } else {
                    self.node
                        .last_contact(p.id)
                        .filter(|c| *c >= since)
                        .unwrap_or(since)
                        .elapsed()
                };
                ServerObservation {
                    address: kura_cluster::listener::socket_target(&p.node.cluster_addr)
                        .map(str::to_string)
                        .unwrap_or_else(|_| p.node.cluster_addr.clone()),
                    name: p.node.name,
                    voter: p.voter,
                    leader,
                    last_contact,
                    last_term,
                    last_index,
                }
            })
            .collect();
        let fresh = self.echoes.fresh();
        let my_name = self.node.me().name.clone();
        let echo_of = |name: &str| {
            if name == my_name {
                return Some((
                    self.desired_voter.load(Ordering::Relaxed),
                    kura_core::VERSION.to_string(),
                ));
            }
            fresh
                .iter()
                .find(|(e, _)| e.node_id == name)
                .map(|(e, _)| (e.voter, e.version.clone()))
        };
        Some(
            self.autopilot
                .evaluate(cfg, &observed, echo_of, std::time::SystemTime::now()),
        )
    }

    async fn promote_peer(&self, node_id: &str) -> Result<(), ClusterPlaneError> {
        self.node
            .promote(node_id)
            .await
            .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
    }

    fn echoes(&self) -> Vec<(Echo, std::time::SystemTime)> {
        self.echoes.fresh()
    }

    async fn remove_peer(&self, node_id: &str) -> Result<(), ClusterPlaneError> {
        self.node
            .remove_peer(node_id, MEMBERSHIP_TIMEOUT)
            .await
            .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
    }

    async fn join_raft(&self, cluster_addr: &str, voter: bool) -> Result<(), ClusterPlaneError> {
        self.set_desired_voter(voter);
        self.node
            .join(cluster_addr, voter, MEMBERSHIP_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
    }

    fn node_id(&self) -> String {
        self.node.me().name.clone()
    }

    async fn bootstrap(&self) -> Result<(), ClusterPlaneError> {
        let backend = self.node.backend();
        let raft = backend.raft();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterPlaneError::Membership(e.to_string()))?;
        if !initialized {
            tracing::info!(node = %self.node.me().name, "forming a new raft cluster");
            raft.initialize(std::collections::BTreeMap::from([(
                backend.node_id(),
                self.node.me().clone(),
            )]))
            .await
            .map_err(|e| ClusterPlaneError::Membership(e.to_string()))?;
        }
        let deadline = tokio::time::Instant::now() + MEMBERSHIP_TIMEOUT;
        while !backend.is_leader() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterPlaneError::NoActive);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn snapshot_save(&self) -> Result<Vec<u8>, ClusterPlaneError> {
        self.node
            .backend()
            .export_snapshot()
            .await
            .map_err(|e| ClusterPlaneError::Storage(e.to_string()))
    }

    async fn snapshot_read(
        &self,
        data: Vec<u8>,
    ) -> Result<Vec<(String, Vec<u8>)>, ClusterPlaneError> {
        self.node
            .backend()
            .read_snapshot(data)
            .await
            .map_err(|e| match e {
                kura_storage::StorageError::Corrupt(m) => ClusterPlaneError::BadSnapshot(m),
                other => ClusterPlaneError::Storage(other.to_string()),
            })
    }

    async fn snapshot_restore(
        &self,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), ClusterPlaneError> {
        self.node
            .backend()
            .restore_snapshot(pairs)
            .await
            .map(|_| ())
            .map_err(|e| ClusterPlaneError::Storage(e.to_string()))
    }

    async fn fetch_challenge(
        &self,
        leader_api_addr: &str,
        server_id: &str,
    ) -> Result<BootstrapChallenge, ClusterPlaneError> {
        let v = self
            .post(
                leader_api_addr,
                "sys/storage/raft/bootstrap/challenge",
                serde_json::json!({ "server_id": server_id }),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ClusterPlaneError::Join(e.to_string()))
    }

    async fn send_answer(
        &self,
        leader_api_addr: &str,
        server_id: &str,
        answer: &str,
    ) -> Result<BootstrapAnswerReply, ClusterPlaneError> {
        let v = self
            .post(
                leader_api_addr,
                "sys/storage/raft/bootstrap/answer",
                serde_json::json!({ "server_id": server_id, "answer": answer }),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ClusterPlaneError::Join(e.to_string()))
    }
}

/// Serves requests forwarded by standbys (`kura-forward/1`) through the HTTP pipeline.
pub struct ForwardService {
    /// The core.
    pub core: Arc<Core>,
    /// Limits applied to forwarded requests (the first API listener's).
    pub settings: ListenerSettings,
}

#[async_trait]
impl StreamHandler for ForwardService {
    async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
        loop {
            let frame = match stream.recv().await {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(peer = %peer.remote_addr, error = %e, "forwarding stream ended");
                    return;
                }
            };
            let req: ForwardedRequest = match serde_json::from_slice(&frame) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(peer = %peer.remote_addr, error = %e, "malformed forwarded request");
                    return;
                }
            };
            let resp = kura_http::handle_forwarded(self.core.clone(), &self.settings, req).await;
            let bytes = match serde_json::to_vec(&resp) {
                Ok(b) => b,
                Err(_) => return,
            };
            if stream.send_flush(&bytes).await.is_err() {
                return;
            }
        }
    }
}
