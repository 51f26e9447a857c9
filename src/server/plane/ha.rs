//! The cluster plane of a node whose storage has no replication of its own (PostgreSQL with
//! `ha_enabled`): the cluster port serves request forwarding, standby heartbeats and the
//! invalidation stream; there is no raft.
//!
//! # The invalidation stream (`kura-invalidate/1`)
//!
//! The database tells standbys nothing about writes, so the active node tells them: every
//! commit it makes is published as `{index, lsn, keys}` (see `kura_postgres::StreamBatch`).
//! A standby dials the active node's cluster address and receives, in order:
//!
//! 1. `hello {index, lsn}`: the stream position at subscription, with `lsn` at least the
//!    primary's WAL insert position at that moment. The standby waits until the database it
//!    reads from has replayed `lsn`, drops every cache, takes `index` as its applied index and
//!    only then serves reads.
//! 2. `batch {index, lsn, keys}` per commit: the standby waits until its read database has
//!    replayed `lsn`, then invalidates `keys` and raises its index to `index`.
//! 3. `ping` every [`PING_INTERVAL`] when there is nothing else to send.
//!
//! A stream that ends, stays silent past [`STREAM_SILENCE`], lags behind the active node's
//! buffer, or whose active node is no longer the one holding the lock, is dropped: the standby
//! stops serving reads at once (it forwards everything), drops its caches and subscribes
//! again, rather than serve data it may not have been told about.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use kura_cluster::{
    dial, ClusterIdentity, ClusterListener, ClusterTls, FramedStream, ListenerOptions, PeerInfo,
    StreamHandler, ALPN_INVALIDATE,
};
use kura_core::autopilot::{Echo, EchoTable};
use kura_core::cluster::{
    ClusterPlane, ClusterPlaneError, ForwardedRequest, ForwardedResponse, IdentityBytes,
};
use kura_core::{Core, HaState};
use kura_postgres::{PostgresBackend, StreamBatch, StreamPosition};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{Forwarder, DIAL_TIMEOUT};

/// The active node sends a ping when it has sent nothing else for this long.
pub const PING_INTERVAL: Duration = Duration::from_millis(500);
/// A standby that has heard nothing on its stream for this long drops it.
pub const STREAM_SILENCE: Duration = Duration::from_secs(2);
/// How often a standby checks that the node it follows is still the active one.
const ACTIVE_CHECK: Duration = Duration::from_millis(250);
/// Pause between two subscription attempts.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);
/// Largest stream frame (a batch lists the keys of one transaction).
const MAX_STREAM_FRAME: usize = 16 * 1024 * 1024;
/// Most batches written before one flush.
const MAX_COALESCED: usize = 256;

/// One message of the invalidation stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// The position at subscription.
    Hello {
        /// Stream index.
        index: u64,
        /// WAL position the read database must have replayed.
        lsn: u64,
    },
    /// One commit.
    Batch {
        /// Stream index of the commit.
        index: u64,
        /// WAL position of the commit.
        lsn: u64,
        /// Keys written or deleted.
        keys: Vec<String>,
    },
    /// Nothing to report; the stream is alive.
    Ping,
}

/// The cluster plane without raft.
pub struct HaPlane {
    listener: ClusterListener,
    tls: Arc<ClusterTls>,
    forwarder: Forwarder,
    echoes: Arc<EchoTable>,
    name: String,
}

impl HaPlane {
    /// Binds the cluster port at `bind` with a throwaway identity (replaced by the cluster's
    /// once unsealed). `name` is this node's name in `sys/ha-status`.
    pub async fn start(bind: std::net::SocketAddr, name: String) -> anyhow::Result<Arc<Self>> {
        let throwaway = ClusterIdentity::generate()
            .map_err(|e| anyhow::anyhow!("generating a cluster identity: {e}"))?;
        let tls =
            Arc::new(ClusterTls::new(throwaway).map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?);
        let listener = ClusterListener::bind(bind, tls.clone(), ListenerOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("binding the cluster port {bind}: {e}"))?;
        Ok(Arc::new(HaPlane {
            listener,
            forwarder: Forwarder::new(tls.clone()),
            tls,
            echoes: Arc::new(EchoTable::default()),
            name,
        }))
    }

    /// The cluster listener (services are registered on it).
    pub fn listener(&self) -> &ClusterListener {
        &self.listener
    }

    /// The cluster TLS settings.
    pub fn tls(&self) -> Arc<ClusterTls> {
        self.tls.clone()
    }

    /// The table of standbys' echoes this node records while active.
    pub fn echo_table(&self) -> Arc<EchoTable> {
        self.echoes.clone()
    }
}

#[async_trait]
impl ClusterPlane for HaPlane {
    fn is_raft(&self) -> bool {
        false
    }

    fn generate_identity(&self) -> Result<IdentityBytes, ClusterPlaneError> {
        super::generate_identity()
    }

    fn install_identity(&self, identity: &[u8]) -> Result<(), ClusterPlaneError> {
        if super::install_identity(&self.tls, identity)? {
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

    fn node_id(&self) -> String {
        self.name.clone()
    }

    fn echoes(&self) -> Vec<(Echo, std::time::SystemTime)> {
        self.echoes.fresh()
    }
}

/// Serves the invalidation stream on the active node.
pub struct InvalidationService {
    /// The core (the stream is served only while it is active).
    pub core: Weak<Core>,
    /// The storage whose commits are streamed.
    pub backend: PostgresBackend,
}

impl InvalidationService {
    async fn serve(&self, stream: &mut FramedStream) -> Result<(), String> {
        let Some(core) = self.core.upgrade() else {
            return Ok(());
        };
        if core.current_state() != HaState::Active {
            return Err("this node is not the active node".into());
        }
        let mut state = core.ha_state();
        drop(core);
        let (mut pos, mut rx) = self.backend.subscribe_commits();
        // Writes made before this node published anything (by an earlier active node) must
        // be replayed too before the standby reads: the primary's current position.
        let now = self
            .backend
            .current_wal_lsn()
            .await
            .map_err(|e| e.to_string())?;
        pos.lsn = pos.lsn.max(now);
        send(
            stream,
            &StreamMessage::Hello {
                index: pos.index,
                lsn: pos.lsn,
            },
        )
        .await?;
        stream.flush().await.map_err(|e| e.to_string())?;
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rx.recv() => {
                    let first = match r {
                        Ok(b) => b,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            return Err(format!("the standby fell {n} commits behind"));
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    };
                    send(stream, &batch_message(first)).await?;
                    for _ in 1..MAX_COALESCED {
                        match rx.try_recv() {
                            Ok(b) => send(stream, &batch_message(b)).await?,
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                return Err(format!("the standby fell {n} commits behind"));
                            }
                            Err(_) => break,
                        }
                    }
                    stream.flush().await.map_err(|e| e.to_string())?;
                    ping.reset();
                }
                _ = ping.tick() => {
                    send(stream, &StreamMessage::Ping).await?;
                    stream.flush().await.map_err(|e| e.to_string())?;
                }
                r = state.changed() => {
                    if r.is_err() || *state.borrow() != HaState::Active {
                        return Err("this node is no longer the active node".into());
                    }
                }
            }
        }
    }
}

fn batch_message(b: StreamBatch) -> StreamMessage {
    StreamMessage::Batch {
        index: b.index,
        lsn: b.lsn,
        keys: b.keys,
    }
}

async fn send(stream: &mut FramedStream, msg: &StreamMessage) -> Result<(), String> {
    let bytes = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
    stream.send(&bytes).await.map_err(|e| e.to_string())
}

#[async_trait]
impl StreamHandler for InvalidationService {
    async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
        match self.serve(&mut stream).await {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(standby = %peer.remote_addr, reason = %e, "invalidation stream closed")
            }
        }
        let _ = stream.close().await;
    }
}

/// On every node: while it is a standby, follows the active node's invalidation stream
/// (subscribing again whenever it drops); standby reads are allowed only while it flows.
pub async fn follow_active(core: Weak<Core>, tls: Arc<ClusterTls>, backend: PostgresBackend) {
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
        }
        first = false;
        let Some(c) = core.upgrade() else { return };
        if !c.current_state().is_standby() {
            let mut state = c.ha_state();
            drop(c);
            // Wait for a change of state rather than poll.
            let _ = tokio::time::timeout(Duration::from_secs(1), state.changed()).await;
            continue;
        }
        let Some(ad) = c.leader_advertisement().await else {
            continue;
        };
        let stream = match dial(
            &tls,
            &ad.cluster_addr,
            ALPN_INVALIDATE,
            DIAL_TIMEOUT,
            MAX_STREAM_FRAME,
        )
        .await
        {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!(active = %ad.cluster_addr, error = %e, "invalidation stream: dialing the active node failed");
                continue;
            }
        };
        let outcome = follow_stream(&c, &backend, stream, &ad.cluster_addr).await;
        // Whatever ended the stream, this node may have missed writes: no reads from it
        // until it has subscribed again, and nothing it cached survives.
        c.set_standby_reads_ready(false).await;
        backend.stream_lost();
        match outcome {
            Ok(()) => tracing::debug!("invalidation stream ended"),
            Err(e) if c.current_state().is_standby() => {
                tracing::info!(active = %ad.cluster_addr, reason = %e, "invalidation stream dropped; subscribing again")
            }
            Err(e) => tracing::debug!(reason = %e, "invalidation stream closed"),
        }
    }
}

/// Frames of a stream, read by their own task (a frame read cannot be interrupted halfway).
fn spawn_reader(mut stream: FramedStream) -> (mpsc::Receiver<Result<Vec<u8>, String>>, Reader) {
    let (tx, rx) = mpsc::channel(1024);
    let handle = tokio::spawn(async move {
        loop {
            let r = match stream.recv().await {
                Ok(Some(f)) => Ok(f),
                Ok(None) => Err("closed by the active node".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let end = r.is_err();
            if tx.send(r).await.is_err() || end {
                return;
            }
        }
    });
    (rx, Reader(handle))
}

/// Stops the reader task when dropped.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `cluster_addr` is still the active node and this node still a standby.
async fn still_following(core: &Core, cluster_addr: &str) -> bool {
    core.current_state().is_standby()
        && core
            .leader_advertisement()
            .await
            .is_some_and(|ad| ad.cluster_addr == cluster_addr)
}

/// Runs `work` while checking, every [`ACTIVE_CHECK`], that the stream is still worth
/// following; `Err` when it is not.
async fn while_following<T>(
    core: &Core,
    cluster_addr: &str,
    check: &mut tokio::time::Interval,
    work: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return Ok(r),
            _ = check.tick() => {
                if !still_following(core, cluster_addr).await {
                    return Err("the node followed is no longer the active node".into());
                }
            }
        }
    }
}

async fn follow_stream(
    core: &Core,
    backend: &PostgresBackend,
    stream: FramedStream,
    cluster_addr: &str,
) -> Result<(), String> {
    let (mut frames, _reader) = spawn_reader(stream);
    let mut check = tokio::time::interval(ACTIVE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut synced = false;
    loop {
        let next = while_following(
            core,
            cluster_addr,
            &mut check,
            tokio::time::timeout(STREAM_SILENCE, frames.recv()),
        )
        .await?;
        let frame = match next {
            Err(_) => return Err("the stream went silent".into()),
            Ok(None) => return Err("the stream reader stopped".into()),
            Ok(Some(f)) => f?,
        };
        let msg: StreamMessage =
            serde_json::from_slice(&frame).map_err(|e| format!("malformed stream message: {e}"))?;
        match msg {
            StreamMessage::Hello { index, lsn } if !synced => {
                while_following(
                    core,
                    cluster_addr,
                    &mut check,
                    backend.resync(StreamPosition { index, lsn }),
                )
                .await?
                .map_err(|e| format!("catching up with the active node: {e}"))?;
                synced = true;
                core.set_standby_reads_ready(true).await;
                tracing::info!(active = %cluster_addr, index, "following the active node's writes");
            }
            StreamMessage::Batch { index, lsn, keys } if synced => {
                while_following(
                    core,
                    cluster_addr,
                    &mut check,
                    backend.apply_remote(StreamBatch { index, lsn, keys }),
                )
                .await?
                .map_err(|e| format!("applying a batch: {e}"))?;
            }
            StreamMessage::Ping => {}
            other => return Err(format!("unexpected stream message {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_have_a_stable_wire_form() {
        let hello = StreamMessage::Hello { index: 7, lsn: 9 };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"type":"hello","index":7,"lsn":9}"#
        );
        let batch = StreamMessage::Batch {
            index: 10,
            lsn: 10,
            keys: vec!["logical/a".into()],
        };
        let back: StreamMessage =
            serde_json::from_slice(&serde_json::to_vec(&batch).unwrap()).unwrap();
        assert_eq!(back, batch);
        assert_eq!(
            serde_json::from_str::<StreamMessage>(r#"{"type":"ping"}"#).unwrap(),
            StreamMessage::Ping
        );
        assert!(serde_json::from_str::<StreamMessage>(r#"{"type":"nope"}"#).is_err());
    }
}
