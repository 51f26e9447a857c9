//! The cluster identity: an ECDSA P-521 key and a self-signed certificate for it.
//!
//! The active node generates one ([`ClusterIdentity::generate`]) and advertises it, key
//! included, inside the barrier; unsealed standbys load it ([`ClusterIdentity::from_bytes`]) and
//! present it on the cluster port. Every node both serves and dials with the same certificate,
//! and a peer is let in only if it presents exactly that certificate (see [`crate::tls`]).
//!
//! Serialized form (all lengths little-endian `u32`):
//! `b"KURACID" | version u8 = 1 | cert_len | certificate DER | key_len | PKCS#8 key DER`.
//! The bytes contain the private key: store them only inside the barrier.

use std::fmt;

use base64::Engine as _;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P521_SHA512,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// The DNS name in every cluster certificate, and the TLS server name a dialing node sends.
/// Peers are authenticated by certificate pinning, not by name.
pub const CLUSTER_SERVER_NAME: &str = "kura-cluster";

/// How long a generated certificate is valid. Peers pin the exact certificate, so expiry is no
/// part of the trust decision; the active node generates a new identity when it takes over.
const VALIDITY_DAYS: i64 = 10 * 365;

const MAGIC: &[u8; 7] = b"KURACID";
const VERSION: u8 = 1;
/// Upper bound of either DER blob in a serialized identity.
const MAX_PART: usize = 64 * 1024;

/// Errors of generating, loading or using a cluster identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Key or certificate generation failed.
    #[error("generating the cluster identity: {0}")]
    Generate(#[from] rcgen::Error),
    /// The serialized identity is malformed.
    #[error("malformed cluster identity: {0}")]
    Malformed(&'static str),
    /// The key cannot be used for signing, or does not belong to the certificate.
    #[error("unusable cluster identity: {0}")]
    Key(#[from] rustls::Error),
}

/// The cluster's key and self-signed certificate.
///
/// Cloning copies the key; the key bytes are zeroized when a copy is dropped. `Debug` shows
/// the certificate fingerprint, never the key.
#[derive(Clone)]
pub struct ClusterIdentity {
    cert: CertificateDer<'static>,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("fingerprint", &self.fingerprint_hex())
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClusterIdentity {
    fn eq(&self, other: &Self) -> bool {
        // The certificate binds the public key; comparing keys as well catches a mismatched
        // pair. Not a secret comparison that needs to be constant-time: both sides hold keys.
        self.cert == other.cert && *self.key == *other.key
    }
}

impl Eq for ClusterIdentity {}

impl ClusterIdentity {
    /// Generates a fresh ECDSA P-521 key (SHA-512 signatures) and a self-signed certificate
    /// for it, usable for both TLS server and client authentication.
    pub fn generate() -> Result<Self, IdentityError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P521_SHA512)?;
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()])?;
        let mut dn = DistinguishedName::new();
        let serial = uuid::Uuid::new_v4();
        dn.push(
            DnType::CommonName,
            format!("kura-cluster-{}", serial.simple()),
        );
        params.distinguished_name = dn;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial.as_bytes()[..]));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(VALIDITY_DAYS);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key)?;
        let identity = ClusterIdentity {
            cert: cert.der().clone(),
            key: Zeroizing::new(key.serialize_der()),
        };
        Ok(identity)
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate in PEM form.
    pub fn certificate_pem(&self) -> String {
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// SHA-256 of the certificate DER: a short, loggable name of the identity.
    pub fn fingerprint(&self) -> [u8; 32] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.cert.as_ref());
        d.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }

    /// [`Self::fingerprint`] as lowercase hex.
    pub fn fingerprint_hex(&self) -> String {
        self.fingerprint()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Serializes certificate and key (see the module documentation). Secret: the result holds
    /// the private key and is zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            MAGIC.len() + 9 + self.cert.len() + self.key.len(),
        ));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.cert.len() as u32).to_le_bytes());
        out.extend_from_slice(self.cert.as_ref());
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.key);
        out
    }

    /// Loads an identity serialized by [`Self::to_bytes`], checking that the key is a usable
    /// P-521 signing key that matches the certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(IdentityError::Malformed("bad magic"))?;
        let (&version, rest) = rest
            .split_first()
            .ok_or(IdentityError::Malformed("truncated"))?;
        if version != VERSION {
            return Err(IdentityError::Malformed("unknown version"));
        }
        let (cert, rest) = take_part(rest)?;
        let (key, rest) = take_part(rest)?;
        if !rest.is_empty() {
            return Err(IdentityError::Malformed("trailing bytes"));
        }
        let identity = ClusterIdentity {
            cert: CertificateDer::from(cert.to_vec()),
            key: Zeroizing::new(key.to_vec()),
        };
        identity.certified_key(&crate::tls::provider())?;
        Ok(identity)
    }

    /// The rustls signing key and certificate chain of this identity, checked to match.
    pub(crate) fn certified_key(
        &self,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, IdentityError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()));
        let signing = provider.key_provider.load_private_key(key)?;
        if signing.algorithm() != rustls::SignatureAlgorithm::ECDSA {
            return Err(IdentityError::Malformed("the key is not an ECDSA key"));
        }
        let ck = CertifiedKey::new(vec![self.cert.clone()], signing);
        ck.keys_match()?;
        Ok(ck)
    }
}

fn take_part(buf: &[u8]) -> Result<(&[u8], &[u8]), IdentityError> {
    if buf.len() < 4 {
        return Err(IdentityError::Malformed("truncated"));
    }
    let (len, rest) = buf.split_at(4);
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    if len == 0 || len > MAX_PART || rest.len() < len {
        return Err(IdentityError::Malformed("bad length"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_p521_self_signed_identity() {
        let id = ClusterIdentity::generate().unwrap();
        let ck = id.certified_key(&crate::tls::provider()).unwrap();
        // P-521 keys sign with ECDSA_NISTP521_SHA512 only.
        let signer = ck
            .key
            .choose_scheme(&[
                rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
                rustls::SignatureScheme::ECDSA_NISTP384_SHA384,
                rustls::SignatureScheme::ECDSA_NISTP521_SHA512,
            ])
            .expect("a P-521 signer");
        assert_eq!(
            signer.scheme(),
            rustls::SignatureScheme::ECDSA_NISTP521_SHA512
        );
        // The certificate carries the P-521 curve OID (1.3.132.0.35) and ecdsa-with-SHA512
        // (1.2.840.10045.4.3.4).
        let der = id.certificate().as_ref();
        let p521 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
        let sha512 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
        assert!(der.windows(p521.len()).any(|w| w == p521));
        assert!(der.windows(sha512.len()).any(|w| w == sha512));
        // Two generations differ.
        let other = ClusterIdentity::generate().unwrap();
        assert_ne!(id.fingerprint(), other.fingerprint());
        assert_ne!(id, other);
    }

    #[test]
    fn bytes_round_trip() {
        let id = ClusterIdentity::generate().unwrap();
        let bytes = id.to_bytes();
        let back = ClusterIdentity::from_bytes(&bytes).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.fingerprint(), id.fingerprint());
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        let id = ClusterIdentity::generate().unwrap();
        let bytes = id.to_bytes();
        for cut in [0, 3, 7, 8, 12, bytes.len() - 1] {
            assert!(
                matches!(
                    ClusterIdentity::from_bytes(&bytes[..cut]),
                    Err(IdentityError::Malformed(_))
                ),
                "cut at {cut}"
            );
        }
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(ClusterIdentity::from_bytes(&extra).is_err());
        let mut version = bytes.to_vec();
        version[7] = 9;
        assert!(ClusterIdentity::from_bytes(&version).is_err());
    }

    #[test]
    fn mismatched_key_and_certificate_are_rejected() {
        let a = ClusterIdentity::generate().unwrap();
        let b = ClusterIdentity::generate().unwrap();
        let mixed = ClusterIdentity {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(
            ClusterIdentity::from_bytes(&mixed.to_bytes()),
            Err(IdentityError::Key(_))
        ));
    }

    #[test]
    fn debug_hides_the_key_and_pem_wraps_the_certificate() {
        let id = ClusterIdentity::generate().unwrap();
        let dbg = format!("{id:?}");
        assert!(dbg.contains(&id.fingerprint_hex()));
        assert!(!dbg.contains("key"));
        let pem = id.certificate_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(der, id.certificate().as_ref());
    }
}
