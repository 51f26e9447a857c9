//! The cluster port: one TLS listener per node whose protocols are told apart by ALPN, and the
//! dialing side of it.
//!
//! A connection is accepted only after a TLS 1.3 handshake in which the client presents the
//! pinned cluster certificate ([`crate::tls`]) and asks, by ALPN, for a protocol that has a
//! registered [`StreamHandler`]. Anything else — no certificate, another certificate, no or an
//! unknown protocol, a handshake that does not finish in time — is dropped without a byte of
//! application data. The handler then owns the connection as a [`FramedStream`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::frame::{FramedStream, DEFAULT_MAX_FRAME_BYTES};
use crate::identity::CLUSTER_SERVER_NAME;
use crate::tls::ClusterTls;

/// ALPN id of raft messages (append entries, votes, snapshots) and membership changes.
pub const ALPN_RAFT: &[u8] = b"kura-raft/1";
/// ALPN id of request forwarding from a standby to the active node.
pub const ALPN_FORWARD: &[u8] = b"kura-forward/1";
/// ALPN id of standby heartbeats to the active node.
pub const ALPN_HEARTBEAT: &[u8] = b"kura-heartbeat/1";
/// ALPN id of the invalidation stream from the active node to standbys.
pub const ALPN_INVALIDATE: &[u8] = b"kura-invalidate/1";

/// Limits of the cluster listener.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// A client that has not finished its TLS handshake after this long is dropped.
    pub handshake_timeout: Duration,
    /// Most connections (handshaking or established) at once; more are dropped at accept.
    pub max_connections: usize,
    /// Largest frame a handler's stream accepts or sends.
    pub max_frame_bytes: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            handshake_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Who is on the other end of an accepted cluster connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket address.
    pub remote_addr: SocketAddr,
    /// The protocol negotiated by ALPN.
    pub alpn: Vec<u8>,
}

/// Serves one protocol of the cluster port. `handle` owns the connection until it returns.
#[async_trait]
pub trait StreamHandler: Send + Sync + 'static {
    /// Serves one authenticated connection.
    async fn handle(&self, stream: FramedStream, peer: PeerInfo);
}

type Handlers = RwLock<BTreeMap<Vec<u8>, Arc<dyn StreamHandler>>>;

struct Shared {
    tls: Arc<ClusterTls>,
    handlers: Handlers,
    opts: ListenerOptions,
}

/// A running cluster listener. Dropping it (or [`ClusterListener::shutdown`]) stops accepting
/// and closes every connection it accepted.
pub struct ClusterListener {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClusterListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterListener")
            .field("local_addr", &self.local_addr)
            .field("protocols", &self.protocols())
            .finish()
    }
}

impl ClusterListener {
    /// Binds `addr` and starts accepting. Protocols are added with [`Self::register`]; until
    /// then every client is refused at the handshake.
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ClusterTls>,
        opts: ListenerOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            tls,
            handlers: RwLock::new(BTreeMap::new()),
            opts,
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        tracing::info!(%local_addr, "cluster listener started");
        Ok(ClusterListener {
            shared,
            local_addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `alpn` with `handler` on connections accepted from now on (replacing an earlier
    /// handler of the same protocol).
    pub fn register(&self, alpn: &[u8], handler: Arc<dyn StreamHandler>) {
        self.shared
            .handlers
            .write()
            .expect("handlers lock")
            .insert(alpn.to_vec(), handler);
    }

    /// Stops offering `alpn` to new connections; connections already being served go on.
    pub fn unregister(&self, alpn: &[u8]) {
        self.shared
            .handlers
            .write()
            .expect("handlers lock")
            .remove(alpn);
    }

    /// The protocols offered, in ALPN order.
    pub fn protocols(&self) -> Vec<Vec<u8>> {
        self.shared
            .handlers
            .read()
            .expect("handlers lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Stops accepting, closes every accepted connection and waits for their tasks to end.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("listener task lock").take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "cluster listener task failed");
            }
        }
    }
}

impl Drop for ClusterListener {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(shared.opts.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%remote, "cluster listener at its connection limit; dropping");
                        continue;
                    };
                    conns.spawn(serve(shared.clone(), tcp, remote, permit));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cluster listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
    tracing::info!("cluster listener stopped");
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    remote: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let protocols: Vec<Vec<u8>> = shared
        .handlers
        .read()
        .expect("handlers lock")
        .keys()
        .cloned()
        .collect();
    if protocols.is_empty() {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(shared.tls.server_config(protocols));
    let tls = match tokio::time::timeout(shared.opts.handshake_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "cluster handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "cluster handshake timed out");
            return;
        }
    };
    let Some(alpn) = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec) else {
        tracing::debug!(%remote, "cluster client negotiated no protocol");
        return;
    };
    let handler = shared
        .handlers
        .read()
        .expect("handlers lock")
        .get(&alpn)
        .cloned();
    let Some(handler) = handler else {
        return;
    };
    let stream = FramedStream::new(
        tokio_rustls::TlsStream::Server(tls),
        shared.opts.max_frame_bytes,
    );
    handler
        .handle(
            stream,
            PeerInfo {
                remote_addr: remote,
                alpn,
            },
        )
        .await;
}

/// Errors of dialing a peer's cluster port.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The cluster address cannot be parsed.
    #[error("invalid cluster address {0:?}")]
    InvalidAddress(String),
    /// The TCP connection failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address dialed.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The TLS handshake failed (for example: the peer does not hold the cluster identity).
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// The address dialed.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The peer does not serve the requested protocol.
    #[error("{addr} does not serve {protocol}")]
    NoProtocol {
        /// The address dialed.
        addr: String,
        /// The protocol asked for.
        protocol: String,
    },
    /// Dialing did not finish in time.
    #[error("dialing {0} timed out")]
    Timeout(String),
}

/// Turns a cluster address (`https://host:port`, or `host:port`) into `host:port`.
pub fn socket_target(cluster_addr: &str) -> Result<&str, DialError> {
    let s = cluster_addr.trim();
    let s = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some(_) => return Err(DialError::InvalidAddress(cluster_addr.to_string())),
        None => s,
    };
    let s = s.trim_end_matches('/');
    let valid = !s.is_empty()
        && !s.contains('/')
        && s.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(s)
    } else {
        Err(DialError::InvalidAddress(cluster_addr.to_string()))
    }
}

/// Dials `cluster_addr` with the cluster identity and asks for `alpn`, giving up after
/// `timeout`. Returns the framed stream and the identity generation it was made with.
///
/// With TLS 1.3 the server checks the client certificate after the client considers the
/// handshake done: a peer that refuses this node's certificate shows up as a failed first
/// read, not as a dial error.
pub async fn dial(
    tls: &ClusterTls,
    cluster_addr: &str,
    alpn: &[u8],
    timeout: Duration,
    max_frame_bytes: usize,
) -> Result<(FramedStream, u64), DialError> {
    let target = socket_target(cluster_addr)?;
    let (generation, config) = tls.client_config(alpn);
    let work = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|source| DialError::Connect {
                addr: target.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(CLUSTER_SERVER_NAME).expect("valid server name");
        let stream = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| DialError::Handshake {
                addr: target.to_string(),
                source,
            })?;
        if stream.get_ref().1.alpn_protocol() != Some(alpn) {
            return Err(DialError::NoProtocol {
                addr: target.to_string(),
                protocol: String::from_utf8_lossy(alpn).into_owned(),
            });
        }
        Ok(stream)
    };
    let stream = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| DialError::Timeout(target.to_string()))??;
    Ok((
        FramedStream::new(tokio_rustls::TlsStream::Client(stream), max_frame_bytes),
        generation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_addresses_parse() {
        assert_eq!(
            socket_target("https://10.0.0.1:8201").unwrap(),
            "10.0.0.1:8201"
        );
        assert_eq!(
            socket_target("HTTPS://node-a:8201/").unwrap(),
            "node-a:8201"
        );
        assert_eq!(socket_target("node-a:8201").unwrap(), "node-a:8201");
        assert_eq!(socket_target("https://[::1]:8201").unwrap(), "[::1]:8201");
        for bad in [
            "",
            "http://a:1",
            "https://a",
            "https://a:x",
            "https://:1",
            "a:1/p",
        ] {
            assert!(socket_target(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod socket_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::identity::ClusterIdentity;
    use crate::tls::PinnedVerifier;

    /// Echoes every frame back, prefixed with the protocol name.
    struct Echo {
        served: AtomicUsize,
    }

    #[async_trait]
    impl StreamHandler for Echo {
        async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
            self.served.fetch_add(1, Ordering::SeqCst);
            while let Ok(Some(frame)) = stream.recv().await {
                let mut out = peer.alpn.clone();
                out.push(b':');
                out.extend_from_slice(&frame);
                if stream.send_flush(&out).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn server() -> (ClusterListener, Arc<ClusterTls>, Arc<Echo>) {
        let tls = Arc::new(ClusterTls::new(ClusterIdentity::generate().unwrap()).unwrap());
        let listener = ClusterListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            tls.clone(),
            ListenerOptions {
                handshake_timeout: Duration::from_millis(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let echo = Arc::new(Echo {
            served: AtomicUsize::new(0),
        });
        listener.register(ALPN_RAFT, echo.clone());
        listener.register(ALPN_HEARTBEAT, echo.clone());
        (listener, tls, echo)
    }

    fn addr(l: &ClusterListener) -> String {
        format!("https://{}", l.local_addr())
    }

    /// Whether a request on `stream` gets any answer.
    async fn answered<S>(stream: &mut FramedStream<S>) -> bool
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        if stream.send_flush(b"ping").await.is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.recv()).await,
            Ok(Ok(Some(_)))
        )
    }

    #[tokio::test]
    async fn protocols_are_multiplexed_by_alpn() {
        let (listener, tls, echo) = server().await;
        let t = Duration::from_secs(5);
        let (mut raft, _) = dial(&tls, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .unwrap();
        let (mut hb, generation) = dial(&tls, &addr(&listener), ALPN_HEARTBEAT, t, 1 << 20)
            .await
            .unwrap();
        assert_eq!(generation, 1);
        raft.send_flush(b"a").await.unwrap();
        hb.send_flush(b"b").await.unwrap();
        assert_eq!(raft.recv().await.unwrap().unwrap(), b"kura-raft/1:a");
        assert_eq!(hb.recv().await.unwrap().unwrap(), b"kura-heartbeat/1:b");
        // The same connection carries request after request.
        raft.send_flush(b"c").await.unwrap();
        assert_eq!(raft.recv().await.unwrap().unwrap(), b"kura-raft/1:c");
        assert_eq!(echo.served.load(Ordering::SeqCst), 2);

        // A protocol nobody serves is refused at the handshake.
        let err = dial(&tls, &addr(&listener), ALPN_FORWARD, t, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::Handshake { .. }), "{err}");
        listener.unregister(ALPN_HEARTBEAT);
        assert_eq!(listener.protocols(), vec![ALPN_RAFT.to_vec()]);
        assert!(dial(&tls, &addr(&listener), ALPN_HEARTBEAT, t, 1 << 20)
            .await
            .is_err());
        assert_eq!(echo.served.load(Ordering::SeqCst), 2);
        listener.shutdown().await;
        // Shutdown closes accepted connections too.
        assert!(!answered(&mut raft).await);
    }

    #[tokio::test]
    async fn peers_without_the_cluster_certificate_get_nothing() {
        let (listener, tls, echo) = server().await;
        let t = Duration::from_secs(5);

        // Another identity: the client refuses the server (and the server the client).
        let stranger = ClusterTls::new(ClusterIdentity::generate().unwrap()).unwrap();
        let err = dial(&stranger, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::Handshake { .. }), "{err}");

        // A stranger that trusts the server's certificate but presents its own: the server
        // rejects it after the client believes the handshake is done; no answer comes.
        stranger
            .set_identity(
                stranger.identity(),
                vec![tls.identity().certificate().clone()],
            )
            .unwrap();
        if let Ok((mut s, _)) = dial(&stranger, &addr(&listener), ALPN_RAFT, t, 1 << 20).await {
            assert!(!answered(&mut s).await);
        }

        // No client certificate at all.
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(vec![tls
                    .identity()
                    .certificate()
                    .clone()])))
                .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_RAFT.to_vec()];
        let tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
        let name = ServerName::try_from(CLUSTER_SERVER_NAME).unwrap();
        if let Ok(s) = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        {
            let mut s = FramedStream::new(s, 1 << 20);
            assert!(!answered(&mut s).await);
        }

        // Plain TCP speaking something else, and a client that never finishes its handshake.
        let mut raw = TcpStream::connect(listener.local_addr()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut buf),
        )
        .await
        .expect("the server closes the connection");
        assert!(!buf.starts_with(b"HTTP"));
        let silent = TcpStream::connect(listener.local_addr()).await.unwrap();
        let mut silent = silent;
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut silent, &mut byte),
        )
        .await
        .expect("a silent client is dropped after the handshake timeout");
        assert!(matches!(closed, Ok(0) | Err(_)));

        assert_eq!(echo.served.load(Ordering::SeqCst), 0, "no handler ever ran");
        // The rightful holder still gets in.
        let (mut ok, _) = dial(&tls, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .unwrap();
        assert!(answered(&mut ok).await);
    }

    #[tokio::test]
    async fn a_new_identity_applies_to_new_connections() {
        let (listener, tls, _) = server().await;
        let t = Duration::from_secs(5);
        let old = tls.identity();
        let client = ClusterTls::new(old.clone()).unwrap();
        let (mut before, _) = dial(&client, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .unwrap();
        assert!(answered(&mut before).await);
        // The server moves to a new identity and stops trusting the old one.
        tls.set_identity(ClusterIdentity::generate().unwrap(), Vec::new())
            .unwrap();
        assert!(dial(&client, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .is_err());
        // The client takes on the new identity and gets in again.
        client.set_identity(tls.identity(), Vec::new()).unwrap();
        let (mut after, generation) = dial(&client, &addr(&listener), ALPN_RAFT, t, 1 << 20)
            .await
            .unwrap();
        assert_eq!(generation, 2);
        assert!(answered(&mut after).await);
    }
}
