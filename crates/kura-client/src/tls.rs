//! TLS for the client: a rustls configuration (aws-lc-rs provider) and a hyper-util connector
//! that speaks plain TCP for `http://` and TLS for `https://`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::ClientConfig;
use crate::error::ClientError;

/// Bundle files tried, in order, when no CA is configured (the same list Go uses on Linux).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn io_err(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Adds every certificate of a PEM file to `roots`; returns how many were added.
fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, ClientError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
        if roots.add(cert).is_ok() {
            added += 1;
        }
    }
    Ok(added)
}

/// Builds the trust store: the configured CA file or directory, else the system bundle.
fn root_store(cfg: &ClientConfig) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &cfg.ca_cert {
        if add_pem_file(&mut roots, path)? == 0 {
            return Err(ClientError::Pem {
                what: "certificate",
                path: path.clone(),
            });
        }
        return Ok(roots);
    }
    if let Some(dir) = &cfg.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_file() {
                add_pem_file(&mut roots, &p)?;
            }
        }
        if roots.is_empty() {
            return Err(ClientError::Pem {
                what: "certificate",
                path: dir.clone(),
            });
        }
        return Ok(roots);
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        candidates.push(PathBuf::from(f));
    }
    candidates.extend(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for c in candidates {
        if c.is_file() && add_pem_file(&mut roots, &c).unwrap_or(0) > 0 {
            break;
        }
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let _ = add_pem_file(&mut roots, &entry.path());
            }
        }
    }
    Ok(roots)
}

/// Builds the rustls client configuration from the client configuration.
pub(crate) fn rustls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if cfg.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
    } else {
        builder.with_root_certificates(root_store(cfg)?)
    };
    let mut config = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let bytes = std::fs::read(cert_path).map_err(|e| io_err(cert_path, e))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(ClientError::Pem {
                    what: "certificate",
                    path: cert_path.clone(),
                });
            }
            let key_bytes = std::fs::read(key_path).map_err(|e| io_err(key_path, e))?;
            let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| ClientError::Pem {
                what: "private key",
                path: key_path.clone(),
            })?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifier used with `skip_verify`: accepts any certificate but still checks handshake
/// signatures, so the session is at least bound to the presented key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connector for hyper-util's pooled client: TCP, then TLS when the URI is `https`.
#[derive(Clone)]
pub(crate) struct HttpsConnector {
    http: HttpConnector,
    tls: Option<TlsConnector>,
    server_name: Option<String>,
}

impl HttpsConnector {
    /// `tls` is `None` when only `http://` will be used.
    pub(crate) fn new(tls: Option<rustls::ClientConfig>, server_name: Option<String>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        HttpsConnector {
            http,
            tls: tls.map(|c| TlsConnector::from(Arc::new(c))),
            server_name,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for HttpsConnector {
    type Response = MaybeTlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<MaybeTlsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let is_https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = self.tls.clone();
        let name = self.server_name.clone().unwrap_or(host);
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?;
            if !is_https {
                return Ok(MaybeTlsStream::Plain(tcp));
            }
            let tls = tls.ok_or("TLS is not configured for https addresses")?;
            let server_name = ServerName::try_from(name)?;
            let stream = tls.connect(server_name, tcp.into_inner()).await?;
            Ok(MaybeTlsStream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection made by [`HttpsConnector`].
pub(crate) enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS over TCP.
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for MaybeTlsStream {
    fn connected(&self) -> Connected {
        match self {
            MaybeTlsStream::Plain(s) => s.connected(),
            MaybeTlsStream::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl Read for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use crate::{Client, ClientConfig, ClientError};

    /// A one-request-per-connection HTTPS server answering `{"data":{"ok":true}}`; it
    /// reports each request head it receives on the returned channel.
    async fn https_server(
        names: Vec<String>,
    ) -> (String, String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_pem = ck.cert.pem();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                    let body = r#"{"data":{"ok":true}}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, cert_pem, rx)
    }

    fn config(addr: &str) -> ClientConfig {
        ClientConfig {
            address: addr.to_string(),
            token: Some("t0ken".into()),
            namespace: Some("team/".into()),
            ..ClientConfig::default()
        }
    }

    #[tokio::test]
    async fn trusts_the_configured_ca_and_sends_vault_headers() {
        let (addr, pem, mut heads) = https_server(vec!["127.0.0.1".into()]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let client = Client::new(ClientConfig {
            ca_cert: Some(ca),
            ..config(&addr)
        })
        .unwrap();
        let s = client.read("secret/x").await.unwrap().unwrap();
        assert_eq!(s.get("ok"), Some(&serde_json::json!(true)));
        let head = heads.recv().await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /v1/secret/x http/1.1"), "{head}");
        assert!(head.contains("x-vault-token: t0ken"), "{head}");
        assert!(head.contains("x-vault-namespace: team/"), "{head}");
        assert!(head.contains("x-vault-request: true"), "{head}");
    }

    #[tokio::test]
    async fn refuses_an_unknown_issuer_unless_skip_verify() {
        let (addr, _pem, _heads) = https_server(vec!["127.0.0.1".into()]).await;
        let dir = tempfile::tempdir().unwrap();
        // Trust some other CA: the server's certificate must be refused.
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let ca = dir.path().join("other.pem");
        std::fs::write(&ca, other.cert.pem()).unwrap();
        let strict = Client::new(ClientConfig {
            ca_cert: Some(ca),
            ..config(&addr)
        })
        .unwrap();
        let err = strict.read("secret/x").await.unwrap_err();
        assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");

        let lax = Client::new(ClientConfig {
            skip_verify: true,
            ..config(&addr)
        })
        .unwrap();
        assert!(lax.read("secret/x").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn server_name_override_is_verified() {
        let (addr, pem, _heads) = https_server(vec!["kura.internal".into()]).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let by_ip = Client::new(ClientConfig {
            ca_cert: Some(ca.clone()),
            ..config(&addr)
        })
        .unwrap();
        assert!(by_ip.read("secret/x").await.is_err());
        let by_name = Client::new(ClientConfig {
            ca_cert: Some(ca),
            tls_server_name: Some("kura.internal".into()),
            ..config(&addr)
        })
        .unwrap();
        assert!(by_name.read("secret/x").await.unwrap().is_some());
    }
}
