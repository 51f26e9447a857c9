//! Kura's HTTP listener (layer 1 in DESIGN.md): turns HTTP into a core [`Request`] and a core
//! [`Response`] back into OpenBao's JSON shapes and status codes. Enforces body-size limits and
//! request deadlines, terminates TLS. It knows nothing about storage.

mod convert;
mod forward;
mod spool;
mod tls;
mod xff;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kura_core::Core;
use tokio::net::TcpListener;

pub use convert::{handle, MAX_REQUEST_SIZE_DEFAULT};
pub use forward::handle_forwarded;
pub use tls::{load_tls_config, TlsError, TlsSettings};
pub use xff::{AddrBlock, XffSettings};

/// Settings of one `listener "tcp"`.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Address to bind.
    pub address: SocketAddr,
    /// TLS, unless `tls_disable`.
    pub tls: Option<TlsSettings>,
    /// Largest accepted body in bytes.
    pub max_request_size: usize,
    /// Deadline for one request.
    pub max_request_duration: Duration,
    /// `X-Forwarded-For` handling (`x_forwarded_for_*`).
    pub x_forwarded_for: XffSettings,
}

/// The certificate chain (DER, the client's own first) a TLS client presented, attached to
/// each of its requests as an extension.
#[derive(Debug, Clone)]
pub struct ClientCertChain(pub Arc<Vec<Vec<u8>>>);

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    settings: ListenerSettings,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    /// Binds the socket and loads certificates (errors name the file).
    pub async fn bind(settings: ListenerSettings) -> Result<Self, TlsError> {
        let acceptor = match &settings.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(load_tls_config(
                t,
            )?))),
            None => None,
        };
        let tcp = TcpListener::bind(settings.address)
            .await
            .map_err(|e| TlsError::Io(format!("binding {}: {e}", settings.address)))?;
        Ok(Listener {
            tcp,
            settings,
            acceptor,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves connections until the task is dropped.
    pub async fn serve(self, core: Arc<Core>) {
        let settings = Arc::new(self.settings);
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let core = core.clone();
            let settings = settings.clone();
            let acceptor = self.acceptor.clone();
            tokio::spawn(async move {
                let service = |chain: Option<ClientCertChain>| {
                    service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        let core = core.clone();
                        let settings = settings.clone();
                        if let Some(chain) = &chain {
                            req.extensions_mut().insert(chain.clone());
                        }
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(core, &settings, peer, req).await,
                            )
                        }
                    })
                };
                let builder = auto::Builder::new(TokioExecutor::new());
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            let chain = tls.get_ref().1.peer_certificates().map(|certs| {
                                ClientCertChain(Arc::new(
                                    certs.iter().map(|c| c.as_ref().to_vec()).collect(),
                                ))
                            });
                            builder
                                .serve_connection(TokioIo::new(tls), service(chain))
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service(None))
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}
