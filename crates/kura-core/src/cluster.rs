//! The cluster plane as the core sees it: the [`ClusterPlane`] trait (implemented by the server
//! over `kura-cluster`), the messages of request forwarding, and the raft bootstrap challenge
//! that a joining node must answer before it is given the cluster identity.
//!
//! # Joining (`sys/storage/raft/bootstrap/challenge` and `answer`)
//!
//! 1. The joining node asks the active node for a challenge. The active node draws a random
//!    32-byte secret, stores it through the barrier at `core/raft/challenge/<server_id>` and
//!    answers with the ciphertext of that entry, the entry's path, the stored keyring (which is
//!    itself encrypted with the root key) and the seal configuration.
//! 2. Once the operator has given the joining node enough unseal key shares, it combines them
//!    into the root key, opens the keyring copy in a scratch barrier and decrypts the secret.
//!    A node given the wrong keys cannot: the join stops there.
//! 3. It proves it knows the secret with `HMAC-SHA256(secret, "answer" | server_id)`. The active
//!    node checks the proof (constant time, one use, at most [`CHALLENGE_TTL_SECS`] old) and
//!    replies with the cluster identity encrypted under `HMAC-SHA256(secret, "identity")`, so
//!    nothing on the wire (plain HTTP included) gives the identity away.
//! 4. With the identity the node can speak on the cluster port: it asks to join raft, receives
//!    the replicated storage (keyring included) and unseals with the same root key.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Barrier key of the cluster identity (certificate and private key).
pub const IDENTITY_KEY: &str = "core/cluster/identity";
/// Barrier prefix of the active node's advertisement, `core/leader/<uuid>`.
pub const LEADER_PREFIX: &str = "core/leader/";
/// Barrier prefix of pending bootstrap challenges, `core/raft/challenge/<server_id>`.
pub const CHALLENGE_PREFIX: &str = "core/raft/challenge/";
/// How long a bootstrap challenge may be answered.
pub const CHALLENGE_TTL_SECS: u64 = 300;
/// Most bootstrap challenges pending at once.
pub const MAX_PENDING_CHALLENGES: usize = 64;
/// AAD of the identity encrypted for a joining node.
pub(crate) const JOIN_IDENTITY_AAD: &str = "kura-raft-join-identity";

/// Errors of the cluster plane.
#[derive(Debug, thiserror::Error)]
pub enum ClusterPlaneError {
    /// No active node is known.
    #[error("no active node is known: the cluster has no leader right now")]
    NoActive,
    /// The active node could not be reached: the request was not delivered.
    #[error("the active node is unreachable: {0}")]
    Unreachable(String),
    /// The exchange with the active node failed.
    #[error("forwarding to the active node failed: {0}")]
    Forward(String),
    /// The cluster identity could not be made or used.
    #[error("cluster identity: {0}")]
    Identity(String),
    /// A raft membership operation failed.
    #[error("raft membership: {0}")]
    Membership(String),
    /// A snapshot could not be read: it is damaged or not a snapshot.
    #[error("{0}")]
    BadSnapshot(String),
    /// Raft storage failed.
    #[error("raft storage: {0}")]
    Storage(String),
    /// Asking the leader's API for the bootstrap challenge or sending the answer failed.
    #[error("joining the raft cluster: {0}")]
    Join(String),
}

/// A request forwarded from a standby to the active node, as it arrived at the standby.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query, as received (`/v1/...?...`).
    pub uri: String,
    /// Headers, in order (values that are not UTF-8 are dropped by the standby).
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    /// The client's address as the standby saw it.
    pub remote_addr: String,
    /// The certificate chain the client presented to the standby over TLS (DER, base64,
    /// the client's own certificate first); empty without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cert_chain: Vec<String>,
}

/// The active node's answer to a [`ForwardedRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

/// One raft server, as `sys/storage/raft/configuration` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaftPeer {
    /// The node's name (`node_id`).
    pub node_id: String,
    /// Its cluster address (`host:port`).
    pub address: String,
    /// Its advertised API address.
    pub api_address: String,
    /// Its advertised cluster address (`https://host:port`).
    pub cluster_address: String,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it votes.
    pub voter: bool,
}

/// What the active node hands out at `sys/storage/raft/bootstrap/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapChallenge {
    /// Ciphertext of the challenge entry (base64).
    pub challenge: String,
    /// The entry's storage path (the ciphertext's additional data).
    pub challenge_path: String,
    /// The stored keyring, encrypted with the root key (base64).
    pub keyring: String,
    /// Seal configuration: number of shares.
    pub secret_shares: u8,
    /// Seal configuration: threshold.
    pub secret_threshold: u8,
}

/// What the active node answers at `sys/storage/raft/bootstrap/answer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapAnswerReply {
    /// The cluster identity encrypted for the joining node (base64).
    pub identity: String,
    /// The active node's cluster address.
    pub leader_cluster_addr: String,
}

/// A serialized cluster identity (certificate and private key), wiped on drop.
pub type IdentityBytes = Zeroizing<Vec<u8>>;

/// The cluster plane: the part of a node that talks to other nodes. The core drives it; the
/// server implements it over `kura-cluster` (cluster port, request forwarding, and with raft
/// storage the raft transport and membership). The raft-only operations have defaults that
/// refuse, for a plane without raft (HA on PostgreSQL).
#[async_trait]
pub trait ClusterPlane: Send + Sync + 'static {
    /// Whether this plane runs raft (integrated storage).
    fn is_raft(&self) -> bool;
    /// Generates a new cluster identity, serialized.
    fn generate_identity(&self) -> std::result::Result<IdentityBytes, ClusterPlaneError>;
    /// Makes `identity` (serialized) the identity of the cluster port and its clients.
    fn install_identity(&self, identity: &[u8]) -> std::result::Result<(), ClusterPlaneError>;
    /// Sends `req` to the active node at `cluster_addr` and returns its answer.
    async fn forward(
        &self,
        cluster_addr: &str,
        req: &ForwardedRequest,
    ) -> std::result::Result<ForwardedResponse, ClusterPlaneError>;
    /// This node's name (raft `node_id`, or the configured node name).
    fn node_id(&self) -> String;
    /// The raft servers as this node knows them.
    fn peers(&self) -> Vec<RaftPeer> {
        Vec::new()
    }
    /// Removes the raft server named `node_id`.
    async fn remove_peer(&self, _node_id: &str) -> std::result::Result<(), ClusterPlaneError> {
        Err(not_raft())
    }
    /// Asks the cluster reachable at `cluster_addr` to admit this node (identity installed).
    async fn join_raft(
        &self,
        _cluster_addr: &str,
        _voter: bool,
    ) -> std::result::Result<(), ClusterPlaneError> {
        Err(not_raft())
    }
    /// Makes this node a one-voter raft cluster if it is not part of one yet, and waits until
    /// it leads (called by `sys/init`).
    async fn bootstrap(&self) -> std::result::Result<(), ClusterPlaneError> {
        Ok(())
    }
    /// Fetches a bootstrap challenge from the API at `leader_api_addr`.
    async fn fetch_challenge(
        &self,
        _leader_api_addr: &str,
        _server_id: &str,
    ) -> std::result::Result<BootstrapChallenge, ClusterPlaneError> {
        Err(not_raft())
    }
    /// The cluster's whole data as one snapshot file (`sys/storage/raft/snapshot`).
    async fn snapshot_save(&self) -> std::result::Result<Vec<u8>, ClusterPlaneError> {
        Err(not_raft())
    }
    /// Checks a snapshot file and returns its keys and values; changes nothing.
    async fn snapshot_read(
        &self,
        _data: Vec<u8>,
    ) -> std::result::Result<Vec<(String, Vec<u8>)>, ClusterPlaneError> {
        Err(not_raft())
    }
    /// Replaces the cluster's data with `pairs` through raft.
    async fn snapshot_restore(
        &self,
        _pairs: Vec<(String, Vec<u8>)>,
    ) -> std::result::Result<(), ClusterPlaneError> {
        Err(not_raft())
    }
    /// Sends the answer to the API at `leader_api_addr`.
    async fn send_answer(
        &self,
        _leader_api_addr: &str,
        _server_id: &str,
        _answer: &str,
    ) -> std::result::Result<BootstrapAnswerReply, ClusterPlaneError> {
        Err(not_raft())
    }
    /// Autopilot on the leader: observes the raft servers and evaluates them under `cfg`
    /// (see [`crate::autopilot`]). `None` where autopilot does not run (not the leader, or no
    /// raft).
    fn autopilot_evaluate(
        &self,
        _cfg: &crate::autopilot::AutopilotConfig,
    ) -> Option<crate::autopilot::AutopilotState> {
        None
    }
    /// Makes the raft learner `node_id` a voter (autopilot's server stabilisation).
    async fn promote_peer(&self, _node_id: &str) -> std::result::Result<(), ClusterPlaneError> {
        Err(ClusterPlaneError::Membership(
            "promotion is not supported here".into(),
        ))
    }
    /// The standbys' echoes heard lately, with when each arrived (for `sys/ha-status`).
    fn echoes(&self) -> Vec<(crate::autopilot::Echo, std::time::SystemTime)> {
        Vec::new()
    }
}

/// The refusal of a raft operation by a plane without raft.
fn not_raft() -> ClusterPlaneError {
    ClusterPlaneError::Membership("raft storage is not in use".into())
}

/// What the active node advertises at `core/leader/<uuid>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderAdvertisement {
    /// Its API address.
    pub api_addr: String,
    /// Its cluster address.
    pub cluster_addr: String,
    /// When it became active (RFC 3339).
    pub active_time: String,
}

/// A stored challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredChallenge {
    /// The secret (base64).
    pub secret: String,
    /// Unix seconds when it was made.
    pub created: u64,
}

/// `HMAC-SHA256(secret, label | server_id)`.
pub(crate) fn join_mac(secret: &[u8], label: &str, server_id: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(label.as_bytes());
    ctx.update(&[0]);
    ctx.update(server_id.as_bytes());
    ctx.sign().as_ref().to_vec()
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_messages_round_trip() {
        let req = ForwardedRequest {
            method: "PUT".into(),
            uri: "/v1/secret/data/a?x=1".into(),
            headers: vec![("x-vault-token".into(), "t".into())],
            body: vec![0, 1, 2, 255],
            remote_addr: "127.0.0.1".into(),
            client_cert_chain: Vec::new(),
        };
        let back: ForwardedRequest =
            serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
        assert_eq!(back.body, req.body);
        assert_eq!(back.uri, req.uri);
    }

    #[test]
    fn join_mac_depends_on_label_server_and_secret() {
        let a = join_mac(b"secret-one", "answer", "n2");
        assert_eq!(a, join_mac(b"secret-one", "answer", "n2"));
        assert_ne!(a, join_mac(b"secret-one", "identity", "n2"));
        assert_ne!(a, join_mac(b"secret-one", "answer", "n3"));
        assert_ne!(a, join_mac(b"secret-two", "answer", "n2"));
        assert_eq!(a.len(), 32);
    }
}

/// A raft join that waits for unseal keys: the challenge fetched from the active node.
#[derive(Debug, Clone)]
pub(crate) struct PendingJoin {
    /// The API address the challenge came from.
    pub leader_api_addr: String,
    /// The challenge.
    pub challenge: BootstrapChallenge,
    /// Join as a voter.
    pub voter: bool,
}

/// How long a joined node waits for the replicated keyring before unsealing.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kura_barrier::{Barrier, KEYRING_PATH};
use kura_logical::{LogicalError, Result, Storage as _, StorageExt as _};
use kura_storage::{Backend as _, InmemBackend};

use crate::core::{Core, SealConfig};
use crate::view::BarrierView;

fn plane_err(e: ClusterPlaneError) -> LogicalError {
    match e {
        ClusterPlaneError::NoActive => LogicalError::Coded {
            status: 503,
            message: e.to_string(),
        },
        ClusterPlaneError::BadSnapshot(m) => LogicalError::bad(m),
        other => LogicalError::Coded {
            status: 500,
            message: other.to_string(),
        },
    }
}

fn valid_server_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(LogicalError::bad(
            "server_id must be 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

impl Core {
    fn require_plane(&self) -> Result<Arc<dyn ClusterPlane>> {
        self.raft_plane().ok_or_else(|| {
            LogicalError::bad("raft storage is not in use: this node has no cluster plane")
        })
    }

    fn require_active(&self) -> Result<()> {
        if self.current_state() != crate::HaState::Active {
            return Err(LogicalError::Coded {
                status: 503,
                message: "this node is not the active node".into(),
            });
        }
        Ok(())
    }

    /// Starts joining the raft cluster whose active node serves the API at `leader_api_addr`:
    /// fetches the bootstrap challenge. The join completes when the node is given enough
    /// unseal keys (see the module documentation).
    pub async fn raft_join(&self, leader_api_addr: &str, voter: bool) -> Result<()> {
        let plane = self.require_plane()?;
        if self
            .barrier
            .is_initialized()
            .await
            .map_err(crate::view::barrier_err)?
        {
            return Err(LogicalError::bad(
                "this node's storage is already initialized: it cannot join another cluster",
            ));
        }
        let challenge = plane
            .fetch_challenge(leader_api_addr, &plane.node_id())
            .await
            .map_err(plane_err)?;
        *self.join.lock().await = Some(PendingJoin {
            leader_api_addr: leader_api_addr.to_string(),
            challenge,
            voter,
        });
        tracing::info!(
            leader = leader_api_addr,
            "raft join: challenge received; waiting for unseal keys"
        );
        Ok(())
    }

    /// `retry_join`: tries each leader API address in turn until one hands out a challenge
    /// (or this node's storage is initialized some other way).
    pub async fn retry_join(self: Arc<Self>, leaders: Vec<String>, voter: bool) {
        loop {
            if self.join.lock().await.is_some()
                || self.barrier.is_initialized().await.unwrap_or(true)
            {
                return;
            }
            for addr in &leaders {
                match self.raft_join(addr, voter).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(leader = %addr, error = %e, "retry_join: joining the raft cluster through this leader failed; retrying")
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// The seal configuration of a pending join.
    pub(crate) async fn pending_join_seal_config(&self) -> Option<SealConfig> {
        self.join.lock().await.as_ref().map(|j| SealConfig {
            kind: "shamir".into(),
            secret_shares: j.challenge.secret_shares,
            secret_threshold: j.challenge.secret_threshold,
            nonce: String::new(),
        })
    }

    /// True while a join waits for unseal keys.
    pub async fn join_pending(&self) -> bool {
        self.join.lock().await.is_some()
    }

    /// Completes a pending join with the root key: answers the challenge, installs the cluster
    /// identity, joins raft and waits for the replicated keyring.
    pub(crate) async fn complete_join(&self, root_key: &[u8]) -> Result<()> {
        let Some(pending) = self.join.lock().await.clone() else {
            return Ok(());
        };
        let plane = self.require_plane()?;
        let server_id = plane.node_id();
        let decode = |what: &str, s: &str| {
            B64.decode(s).map_err(|_| {
                LogicalError::bad(format!("raft join: invalid {what} in the challenge"))
            })
        };
        let scratch = Arc::new(InmemBackend::new());
        scratch
            .put(KEYRING_PATH, decode("keyring", &pending.challenge.keyring)?)
            .await?;
        scratch
            .put(
                &pending.challenge.challenge_path,
                decode("challenge", &pending.challenge.challenge)?,
            )
            .await?;
        let barrier = Barrier::new(scratch);
        barrier.unseal(root_key).await.map_err(|_| {
            LogicalError::bad("failed to unseal: the unseal keys do not open the cluster's keyring")
        })?;
        let stored = barrier
            .get(&pending.challenge.challenge_path)
            .await
            .map_err(|_| LogicalError::bad("raft join: the challenge could not be decrypted"))?
            .ok_or_else(|| LogicalError::bad("raft join: empty challenge"))?;
        barrier.seal();
        let stored: StoredChallenge = serde_json::from_slice(&stored)
            .map_err(|e| LogicalError::Internal(format!("raft join challenge: {e}")))?;
        let secret = zeroize::Zeroizing::new(decode("secret", &stored.secret)?);
        let answer = B64.encode(join_mac(&secret, "answer", &server_id));
        let reply = plane
            .send_answer(&pending.leader_api_addr, &server_id, &answer)
            .await
            .map_err(plane_err)?;
        let key = zeroize::Zeroizing::new(join_mac(&secret, "identity", &server_id));
        let identity = zeroize::Zeroizing::new(
            kura_barrier::decrypt_with_key(
                &key,
                JOIN_IDENTITY_AAD,
                &decode("identity", &reply.identity)?,
            )
            .map_err(|_| LogicalError::bad("raft join: the identity could not be decrypted"))?,
        );
        plane.install_identity(&identity).map_err(plane_err)?;
        plane
            .join_raft(&reply.leader_cluster_addr, pending.voter)
            .await
            .map_err(plane_err)?;
        let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
        loop {
            let ready = self
                .barrier
                .is_initialized()
                .await
                .map_err(crate::view::barrier_err)?
                && self.seal_config().await?.is_some();
            if ready {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LogicalError::Internal(
                    "raft join: the cluster's data did not arrive in time".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        *self.join.lock().await = None;
        tracing::info!("raft join complete");
        Ok(())
    }

    /// Before `sys/init` on clustered storage: form a one-node cluster unless this node is
    /// joining one.
    pub(crate) async fn bootstrap_cluster(&self) -> Result<()> {
        let Some(plane) = self.raft_plane() else {
            return Ok(());
        };
        if self.join_pending().await {
            return Err(LogicalError::bad(
                "this node is joining a raft cluster: unseal it with the cluster's keys instead",
            ));
        }
        plane.bootstrap().await.map_err(plane_err)
    }

    /// `sys/storage/raft/bootstrap/challenge` on the active node.
    pub(crate) async fn bootstrap_challenge(&self, server_id: &str) -> Result<BootstrapChallenge> {
        self.require_plane()?;
        self.require_active()?;
        valid_server_id(server_id)?;
        let path = format!("{CHALLENGE_PREFIX}{server_id}");
        let view = BarrierView::new(self.barrier.clone(), "");
        // The endpoint needs no token: bound what it can leave behind.
        let now = crate::util::unix_now().max(0) as u64;
        let mut pending = 0;
        for id in view.list(CHALLENGE_PREFIX).await? {
            let key = format!("{CHALLENGE_PREFIX}{id}");
            match view.get_json::<StoredChallenge>(&key).await? {
                Some(c) if now.saturating_sub(c.created) <= CHALLENGE_TTL_SECS => pending += 1,
                _ => view.delete(&key).await?,
            }
        }
        if pending >= MAX_PENDING_CHALLENGES && view.get(&path).await?.is_none() {
            return Err(LogicalError::Coded {
                status: 429,
                message: "too many pending raft bootstrap challenges; try again later".into(),
            });
        }
        let secret = crate::util::random_bytes(32);
        view.put_json(
            &path,
            &StoredChallenge {
                secret: B64.encode(&secret),
                created: now,
            },
        )
        .await?;
        let ct = self
            .physical
            .get(&path)
            .await?
            .ok_or_else(|| LogicalError::Internal("challenge not stored".into()))?;
        let keyring = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| LogicalError::Internal("keyring missing".into()))?;
        let cfg = self
            .seal_config()
            .await?
            .ok_or_else(|| LogicalError::Internal("seal configuration missing".into()))?;
        Ok(BootstrapChallenge {
            challenge: B64.encode(ct),
            challenge_path: path,
            keyring: B64.encode(keyring),
            secret_shares: cfg.secret_shares,
            secret_threshold: cfg.secret_threshold,
        })
    }

    /// `sys/storage/raft/bootstrap/answer` on the active node.
    pub(crate) async fn bootstrap_answer(
        &self,
        server_id: &str,
        answer: &str,
    ) -> Result<BootstrapAnswerReply> {
        self.require_plane()?;
        self.require_active()?;
        valid_server_id(server_id)?;
        let path = format!("{CHALLENGE_PREFIX}{server_id}");
        let view = BarrierView::new(self.barrier.clone(), "");
        let refused = || LogicalError::Coded {
            status: 403,
            message: "invalid or expired bootstrap answer".into(),
        };
        let stored: StoredChallenge = view.get_json(&path).await?.ok_or_else(refused)?;
        let age = (crate::util::unix_now().max(0) as u64).saturating_sub(stored.created);
        if age > CHALLENGE_TTL_SECS {
            view.delete(&path).await?;
            return Err(refused());
        }
        let secret = zeroize::Zeroizing::new(
            B64.decode(&stored.secret)
                .map_err(|_| LogicalError::Internal("stored challenge is corrupt".into()))?,
        );
        let expected = join_mac(&secret, "answer", server_id);
        let given = B64.decode(answer).map_err(|_| refused())?;
        use subtle::ConstantTimeEq as _;
        if given.len() != expected.len() || !bool::from(given.ct_eq(&expected)) {
            return Err(refused());
        }
        view.delete(&path).await?;
        let identity = zeroize::Zeroizing::new(
            view.get(IDENTITY_KEY)
                .await?
                .ok_or_else(|| LogicalError::Internal("cluster identity missing".into()))?,
        );
        let key = zeroize::Zeroizing::new(join_mac(&secret, "identity", server_id));
        let enc = kura_barrier::encrypt_with_key(&key, JOIN_IDENTITY_AAD, &identity)
            .map_err(|e| LogicalError::Internal(e.to_string()))?;
        Ok(BootstrapAnswerReply {
            identity: B64.encode(enc),
            leader_cluster_addr: self.config.cluster_addr.clone().unwrap_or_default(),
        })
    }

    /// `sys/storage/raft/snapshot` (read): the cluster's whole data, still encrypted by the
    /// barrier, as one snapshot file.
    pub(crate) async fn raft_snapshot_save(&self) -> Result<Vec<u8>> {
        self.require_active()?;
        let state = self
            .require_plane()?
            .snapshot_save()
            .await
            .map_err(plane_err)?;
        let meta = serde_json::to_vec(&serde_json::json!({
            "format": "kura-raft-snapshot-1",
            "index": self.applied_index(),
            "cluster_id": self.cluster_info().map(|c| c.id).unwrap_or_default(),
        }))
        .map_err(|e| LogicalError::Internal(e.to_string()))?;
        let sums = crate::snapshot_archive::sums(&meta, &state);
        let sealed = self
            .barrier
            .encrypt_value("core/snapshot-sums", sums.as_bytes())
            .map_err(crate::view::barrier_err)?;
        crate::snapshot_archive::build(&meta, &state, sums.as_bytes(), &sealed)
    }

    /// `sys/storage/raft/snapshot` and `snapshot-force` (update): replaces the cluster's data
    /// with a snapshot's.
    ///
    /// A snapshot of this cluster (its keyring opens with the current root key) is restored
    /// and the node rebuilds its state from it, staying active. One from another cluster is
    /// refused unless `force`; forced, the node seals afterwards, and it is unsealed with the
    /// unseal keys of the cluster the snapshot came from.
    pub(crate) async fn raft_snapshot_restore(&self, data: Vec<u8>, force: bool) -> Result<()> {
        self.require_active()?;
        let plane = self.require_plane()?;
        if data.is_empty() {
            return Err(LogicalError::bad("no snapshot in the request body"));
        }
        let state = crate::snapshot_archive::state_of(data)?;
        let pairs = plane.snapshot_read(state).await.map_err(plane_err)?;
        let keyring = pairs
            .iter()
            .find(|(k, _)| k == KEYRING_PATH)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| {
                LogicalError::bad("invalid snapshot: it holds no keyring (core/keyring)")
            })?;
        let same_cluster = self.barrier.opens_keyring(keyring);
        if !same_cluster && !force {
            return Err(LogicalError::bad(
                "could not verify the snapshot: its keyring does not open with this cluster's \
                 root key (it comes from another cluster or an older root key); use \
                 snapshot-force to restore it anyway",
            ));
        }
        let state = self.state_lock.lock().await;
        plane.snapshot_restore(pairs).await.map_err(plane_err)?;
        tracing::warn!(same_cluster, "raft snapshot restored");
        if !same_cluster {
            drop(state);
            tracing::warn!("the restored data belongs to another cluster: sealing");
            return self.seal().await;
        }
        self.barrier
            .reload_keyring()
            .await
            .map_err(crate::view::barrier_err)?;
        *self.leader_cache.lock().expect("leader cache lock") = None;
        self.drop_runtime().await;
        let rebuilt = match self.advertise().await {
            Ok(()) => self.activate().await,
            Err(e) => Err(e),
        };
        drop(state);
        if let Err(e) = rebuilt {
            tracing::error!(error = %e, "rebuilding state after a snapshot restore failed; sealing");
            self.seal().await?;
            return Err(e);
        }
        Ok(())
    }

    /// `sys/storage/raft/configuration`: the raft servers.
    pub(crate) fn raft_configuration(&self) -> Result<Vec<RaftPeer>> {
        Ok(self.require_plane()?.peers())
    }

    /// `sys/storage/raft/remove-peer`.
    pub(crate) async fn raft_remove_peer(&self, server_id: &str) -> Result<()> {
        valid_server_id(server_id)?;
        self.require_plane()?
            .remove_peer(server_id)
            .await
            .map_err(plane_err)
    }
}
