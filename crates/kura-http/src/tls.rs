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
    let verifier = Arc::new(OptionalClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Setting(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::File {
            file: s.key_file.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Asks clients for a certificate without requiring one, as OpenBao's listener does: a client
/// that presents one proves it holds the key (the handshake signature is checked here), and
/// whether the certificate is trusted is for the auth method that reads it to decide. The
/// chain travels with the request (and with a request a standby forwards).
#[derive(Debug)]
struct OptionalClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms) {
            Err(rustls::Error::InvalidCertificate(_)) => {
                // As for TLS 1.3 below: a certificate webpki cannot parse still proves its key.
                let key = public_key(cert, false)?;
                let algorithms = self
                    .algorithms
                    .mapping
                    .iter()
                    .find(|(scheme, _)| *scheme == dss.scheme)
                    .map(|(_, algs)| *algs)
                    .ok_or(rustls::Error::PeerMisbehaved(
                        rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
                    ))?;
                if algorithms
                    .iter()
                    .any(|alg| alg.verify_signature(&key, message, dss.signature()).is_ok())
                {
                    Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::BadSignature,
                    ))
                }
            }
            other => other,
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms) {
            Err(rustls::Error::InvalidCertificate(_)) => {
                // webpki parses only X.509 v3; an older certificate (OpenSSL's default without
                // extensions, as hvac's test client presents) still proves its key: check the
                // signature against the public key read with a tolerant parser.
                let spki = public_key(cert, true)?;
                rustls::crypto::verify_tls13_signature_with_raw_key(
                    message,
                    &rustls_pki_types::SubjectPublicKeyInfoDer::from(spki.as_slice()),
                    dss,
                    &self.algorithms,
                )
            }
            other => other,
        }
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A certificate's public key, for a certificate of any X.509 version: the DER
/// SubjectPublicKeyInfo (`spki == true`) or its raw key bits.
fn public_key(cert: &CertificateDer<'_>, spki: bool) -> Result<Vec<u8>, rustls::Error> {
    use x509_parser::prelude::FromDer as _;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let info = &parsed.tbs_certificate.subject_pki;
    Ok(if spki {
        info.raw.to_vec()
    } else {
        info.subject_public_key.data.to_vec()
    })
}
