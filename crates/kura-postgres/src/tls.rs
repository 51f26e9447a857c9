//! The connection URL and TLS to the database: libpq's `sslmode` semantics over rustls with
//! the aws-lc-rs provider.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresError;

/// How connections are made.
pub(crate) enum Tls {
    /// `sslmode=disable`.
    None,
    /// Every other mode.
    Rustls(MakeRustlsConnect),
}

/// The TLS parameters libpq knows and tokio-postgres does not.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: Option<String>,
    pub(crate) root_cert: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

fn take(params: &mut TlsParams, key: &str, value: String) {
    match key {
        "sslmode" => params.mode = Some(value),
        "sslrootcert" => params.root_cert = Some(value),
        "sslcert" => params.cert = Some(value),
        "sslkey" => params.key = Some(value),
        _ => {}
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the TLS parameters from a URL (`postgres://...?sslmode=...`) or a `key=value`
/// connection string, returning what is left for tokio-postgres and the parameters.
pub(crate) fn split_tls_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let trimmed = url.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else {
            return (trimmed.to_string(), params);
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if TLS_KEYS.contains(&k) {
                take(&mut params, k, percent_decode(v));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, params)
    } else {
        let mut kept = Vec::new();
        for word in trimmed.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if TLS_KEYS.contains(&k.trim()) => {
                    take(&mut params, k.trim(), v.trim_matches('\'').to_string())
                }
                _ => kept.push(word),
            }
        }
        (kept.join(" "), params)
    }
}

/// Parses the connection URL and builds the TLS connector its `sslmode` asks for.
pub(crate) fn prepare(url: &str) -> Result<(tokio_postgres::Config, Tls), PostgresError> {
    let (rest, params) = split_tls_params(url);
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| PostgresError::Url(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("kura");
    }
    let mode = params.mode.clone().unwrap_or_else(|| "prefer".into());
    let (ssl_mode, verify) = match mode.as_str() {
        "disable" => {
            config.ssl_mode(SslMode::Disable);
            return Ok((config, Tls::None));
        }
        "allow" | "prefer" => (SslMode::Prefer, Verify::None),
        "require" if params.root_cert.is_some() => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::None),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => return Err(PostgresError::Url(format!("unknown sslmode {other:?}"))),
    };
    config.ssl_mode(ssl_mode);
    let client = client_config(&params, verify)?;
    Ok((config, Tls::Rustls(MakeRustlsConnect::new(client))))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Encrypt, but accept any certificate (libpq's `prefer` and `require`).
    None,
    /// Check the chain against `sslrootcert`, not the host name (`verify-ca`).
    Chain,
    /// Check the chain and the host name (`verify-full`).
    Full,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(
    params: &TlsParams,
    verify: Verify,
) -> Result<rustls::ClientConfig, PostgresError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::None => Arc::new(AnyCert(provider.clone())),
        Verify::Chain | Verify::Full => {
            let path = params.root_cert.clone().ok_or_else(|| {
                PostgresError::Url("sslmode verify-ca/verify-full needs sslrootcert".into())
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&path)
                .map_err(|e| PostgresError::Url(format!("sslrootcert {path}: {e}")))?
            {
                let cert =
                    cert.map_err(|e| PostgresError::Url(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| PostgresError::Url(format!("sslrootcert {path}: {e}")))?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| PostgresError::Url(format!("sslrootcert {path}: {e}")))?;
            if verify == Verify::Full {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PostgresError::Url(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&params.cert, &params.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PostgresError::Url(format!("sslcert {cert}: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| PostgresError::Url(format!("sslkey {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| PostgresError::Url(format!("sslcert/sslkey: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(PostgresError::Url(
            "sslcert and sslkey must be given together".into(),
        )),
    }
}

/// Accepts any server certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
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

/// Checks the chain but not the host name (`verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_leave_the_url() {
        let (rest, p) = split_tls_params(
            "postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fa%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/a/ca.pem"));
        let (rest, p) = split_tls_params("host=h user=u sslmode=disable dbname=d");
        assert_eq!(rest, "host=h user=u dbname=d");
        assert_eq!(p.mode.as_deref(), Some("disable"));
        let (rest, p) = split_tls_params("postgres://h/db");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(p, TlsParams::default());
    }

    #[test]
    fn modes_map_to_connectors() {
        assert!(matches!(
            prepare("postgres://h/db?sslmode=disable").unwrap().1,
            Tls::None
        ));
        assert!(matches!(
            prepare("postgres://h/db").unwrap().1,
            Tls::Rustls(_)
        ));
        assert!(prepare("postgres://h/db?sslmode=verify-full").is_err());
        assert!(prepare("postgres://h/db?sslmode=bogus").is_err());
    }
}
