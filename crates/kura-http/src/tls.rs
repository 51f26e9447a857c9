//! TLS for the API listener: certificates from PEM files, rustls with aws-lc-rs.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS settings of a listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain file.
    pub cert_file: String,
    /// PEM private key file.
    pub key_file: String,
    /// `tls12` or `tls13`.
    pub min_version: String,
}

/// Errors loading TLS material or binding.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be used.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// An unsupported setting.
    #[error("{0}")]
    Setting(String),
    /// Socket error.
    #[error("{0}")]
    Io(String),
}

/// Builds a rustls server config from the settings.
pub fn load_tls_config(s: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert_file)
        .map_err(|e| TlsError::File {
            file: s.cert_file.clone(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File {
            file: s.cert_file.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            file: s.cert_file.clone(),
            reason: "no certificates found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&s.key_file).map_err(|e| TlsError::File {
        file: s.key_file.clone(),
        reason: e.to_string(),
    })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match s.min_version.as_str() {
        "" | "tls12" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        "tls13" => &[&rustls::version::TLS13],
        "tls10" | "tls11" => {
            return Err(TlsError::Setting(format!(
                "tls_min_version {:?} is not supported (TLS 1.2 is the minimum)",
                s.min_version
            )))
        }
        other => {
            return Err(TlsError::Setting(format!(
                "invalid tls_min_version {other:?}"
            )));
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Setting(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::File {
            file: s.key_file.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
