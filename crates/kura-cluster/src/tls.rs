//! Mutual TLS with the cluster identity.
//!
//! Trust is pinning: a peer is accepted if and only if the end-entity certificate it presents
//! is byte-for-byte one of the pinned cluster certificates (normally exactly one: the current
//! cluster identity), and it proves possession of that certificate's key in the handshake. No
//! chain building, no name checks, no web PKI: the cluster certificate is the only trust
//! anchor. Both directions use the same rule, so a node dialing a peer authenticates it the
//! same way the peer authenticates the node.
//!
//! TLS 1.3 only (both ends are Kura), aws-lc-rs as the only crypto provider, no session
//! resumption (a resumed session would skip the certificate check after an identity change;
//! connections are long-lived and pooled, so full handshakes are rare).

use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::{ClusterIdentity, IdentityError};

/// The crypto provider of the cluster plane: aws-lc-rs.
pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Accepts exactly the pinned certificates, in both directions.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    /// A verifier accepting exactly `pinned`.
    #[cfg(test)]
    pub(crate) fn new(pinned: Vec<CertificateDer<'static>>) -> Self {
        PinnedVerifier {
            pinned,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        // A self-signed pinned certificate has no chain; anything else is not ours.
        if intermediates.is_empty() && self.pinned.iter().any(|p| p == end_entity) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The current identity and trust, prepared for rustls.
struct State {
    generation: u64,
    identity: ClusterIdentity,
    key: Arc<CertifiedKey>,
    verifier: Arc<PinnedVerifier>,
}

/// The TLS side of the cluster plane: this node's identity and the pinned peer certificates,
/// shared by the cluster listener and every dialer. The identity can be replaced at run time
/// (a new active node generates a new one); connections made afterwards use the new identity,
/// and [`Self::generation`] tells pooled connections that they are stale.
pub struct ClusterTls {
    provider: Arc<CryptoProvider>,
    state: RwLock<Arc<State>>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.current();
        f.debug_struct("ClusterTls")
            .field("generation", &st.generation)
            .field("identity", &st.identity)
            .field("pinned", &st.verifier.pinned.len())
            .finish()
    }
}

impl ClusterTls {
    /// TLS for `identity`, trusting only its own certificate.
    pub fn new(identity: ClusterIdentity) -> Result<Self, IdentityError> {
        let provider = Arc::new(provider());
        let state = Self::prepare(&provider, 1, identity, Vec::new())?;
        Ok(ClusterTls {
            provider,
            state: RwLock::new(Arc::new(state)),
        })
    }

    fn prepare(
        provider: &Arc<CryptoProvider>,
        generation: u64,
        identity: ClusterIdentity,
        also_trusted: Vec<CertificateDer<'static>>,
    ) -> Result<State, IdentityError> {
        let key = Arc::new(identity.certified_key(provider)?);
        let mut pinned = vec![identity.certificate().clone()];
        for cert in also_trusted {
            if !pinned.contains(&cert) {
                pinned.push(cert);
            }
        }
        Ok(State {
            generation,
            identity,
            key,
            verifier: Arc::new(PinnedVerifier {
                pinned,
                algorithms: provider.signature_verification_algorithms,
            }),
        })
    }

    fn current(&self) -> Arc<State> {
        self.state.read().expect("cluster tls lock").clone()
    }

    /// Replaces this node's identity. The new identity's certificate becomes the pinned one;
    /// `also_trusted` lists further certificates to accept from peers (for example the previous
    /// identity while the rest of the cluster moves over). Existing connections are not cut,
    /// but [`Self::generation`] changes so that pooled ones are not reused.
    pub fn set_identity(
        &self,
        identity: ClusterIdentity,
        also_trusted: Vec<CertificateDer<'static>>,
    ) -> Result<(), IdentityError> {
        let mut guard = self.state.write().expect("cluster tls lock");
        let next = Self::prepare(&self.provider, guard.generation + 1, identity, also_trusted)?;
        *guard = Arc::new(next);
        Ok(())
    }

    /// The current identity.
    pub fn identity(&self) -> ClusterIdentity {
        self.current().identity.clone()
    }

    /// Counts identity changes; starts at 1.
    pub fn generation(&self) -> u64 {
        self.current().generation
    }

    /// A server configuration offering `alpn` protocols (in preference order), requiring a
    /// pinned client certificate.
    pub fn server_config(&self, alpn: Vec<Vec<u8>>) -> Arc<ServerConfig> {
        let st = self.current();
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("aws-lc-rs supports TLS 1.3")
            .with_client_cert_verifier(st.verifier.clone())
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(st.key.clone())));
        config.alpn_protocols = alpn;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        Arc::new(config)
    }

    /// A client configuration asking for the `alpn` protocol, presenting the cluster
    /// certificate and accepting only a pinned server certificate; with the identity
    /// generation it was built from.
    pub fn client_config(&self, alpn: &[u8]) -> (u64, Arc<ClientConfig>) {
        let st = self.current();
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("aws-lc-rs supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(st.verifier.clone())
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(st.key.clone())));
        config.alpn_protocols = vec![alpn.to_vec()];
        config.resumption = Resumption::disabled();
        config.enable_early_data = false;
        (st.generation, Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_pins_exact_certificates() {
        let a = ClusterIdentity::generate().unwrap();
        let b = ClusterIdentity::generate().unwrap();
        let tls = ClusterTls::new(a.clone()).unwrap();
        let st = tls.current();
        let now = UnixTime::now();
        assert!(st
            .verifier
            .verify_client_cert(a.certificate(), &[], now)
            .is_ok());
        assert!(st
            .verifier
            .verify_client_cert(b.certificate(), &[], now)
            .is_err());
        // The right certificate with a chain attached is not what was pinned.
        assert!(st
            .verifier
            .verify_client_cert(a.certificate(), &[b.certificate().clone()], now)
            .is_err());
        let name = ServerName::try_from(crate::identity::CLUSTER_SERVER_NAME).unwrap();
        assert!(st
            .verifier
            .verify_server_cert(a.certificate(), &[], &name, &[], now)
            .is_ok());
        assert!(st
            .verifier
            .verify_server_cert(b.certificate(), &[], &name, &[], now)
            .is_err());
        assert!(
            ClientCertVerifier::supported_verify_schemes(st.verifier.as_ref())
                .contains(&rustls::SignatureScheme::ECDSA_NISTP521_SHA512)
        );
    }

    #[test]
    fn set_identity_moves_the_pin_and_bumps_the_generation() {
        let a = ClusterIdentity::generate().unwrap();
        let b = ClusterIdentity::generate().unwrap();
        let tls = ClusterTls::new(a.clone()).unwrap();
        assert_eq!(tls.generation(), 1);
        tls.set_identity(b.clone(), vec![a.certificate().clone()])
            .unwrap();
        assert_eq!(tls.generation(), 2);
        assert_eq!(tls.identity(), b);
        let now = UnixTime::now();
        let st = tls.current();
        assert!(st
            .verifier
            .verify_client_cert(a.certificate(), &[], now)
            .is_ok());
        assert!(st
            .verifier
            .verify_client_cert(b.certificate(), &[], now)
            .is_ok());
        tls.set_identity(b.clone(), Vec::new()).unwrap();
        let st = tls.current();
        assert!(st
            .verifier
            .verify_client_cert(a.certificate(), &[], now)
            .is_err());
        let (generation, client) = tls.client_config(b"x/1");
        assert_eq!(generation, 3);
        assert_eq!(client.alpn_protocols, vec![b"x/1".to_vec()]);
    }
}
