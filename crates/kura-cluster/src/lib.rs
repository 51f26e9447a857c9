//! Kura's cluster plane: how Kura nodes talk to each other.
//!
//! - [`identity`]: the cluster identity — an ECDSA P-521 key and self-signed certificate that
//!   the active node generates and shares with unsealed standbys through the barrier.
//! - [`tls`]: mutual TLS 1.3 pinned to the cluster certificate, in both directions.
//! - [`listener`]: one TLS port per node, protocols multiplexed by ALPN (`kura-raft/1`,
//!   `kura-forward/1`, `kura-heartbeat/1`, `kura-invalidate/1`), each served by a registered
//!   [`StreamHandler`] over a [`FramedStream`]; and [`dial`], the other end.
//! - [`frame`]: length-prefixed frames.
//! - [`wire`], [`transport`], [`service`]: raft over the cluster port — the
//!   [`kura_raft::RaftTransport`] that sends raft RPCs with a connection pool per peer, and the
//!   handler that feeds received RPCs to the local openraft node — plus join and peer removal.
//! - [`node`]: [`ClusterNode`], all of it put together around a [`kura_raft::RaftBackend`].
//!
//! Why frames and not gRPC: the cluster port terminates TLS itself and dispatches by ALPN, so
//! what remains per protocol is a request/response exchange on a dedicated stream. A 4-byte
//! length prefix does that with no code generation, no HTTP/2 layer and no extra build time;
//! log entries reuse kura-raft's versioned binary encoding and openraft's own serde types
//! cover the rest (see [`wire`]).
//!
//! Admission: in this crate the gate is the mutual-TLS identity alone — a node holding the
//! cluster certificate and key may join. The unseal-key challenge of
//! `sys/storage/raft/bootstrap/challenge` / `answer` belongs to the core and comes on top.

#![warn(missing_docs)]

pub mod frame;
pub mod identity;
pub mod listener;
pub mod node;
pub mod service;
pub mod tls;
pub mod transport;
pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

pub use frame::{ClusterIo, FrameError, FramedStream};
pub use identity::{ClusterIdentity, IdentityError, CLUSTER_SERVER_NAME};
pub use listener::{
    dial, ClusterListener, DialError, ListenerOptions, PeerInfo, StreamHandler, ALPN_FORWARD,
    ALPN_HEARTBEAT, ALPN_INVALIDATE, ALPN_RAFT,
};
pub use node::{ClusterNode, ClusterNodeOptions, Peer};
pub use service::{RaftService, ServiceOptions};
pub use tls::ClusterTls;
pub use transport::{CallError, ClusterTransport, TransportOptions};
pub use wire::{JoinReply, JoinRequest, LeaderHint, MembershipError};

/// Errors of the cluster plane's operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster port could not be bound.
    #[error("binding the cluster port {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The raft storage failed to open or shut down.
    #[error(transparent)]
    Raft(#[from] kura_raft::RaftBackendError),
    /// The cluster identity is unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An exchange with a peer failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The cluster refused a membership request.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// An operation did not finish in time.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The time allowed.
        after: Duration,
    },
}
