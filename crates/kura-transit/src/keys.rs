//! Named keys ("policies" in OpenBao's vocabulary): their types, their stored form and the
//! parsed form the hot paths use.
//!
//! A key is stored as one JSON record, `policy/<name>`, holding its settings and every version
//! still available. The storage view is inside the barrier, so the material is stored as
//! base64; in memory it lives in [`zeroize::Zeroizing`] buffers or in aws-lc-rs key objects
//! (which clear their own memory), and the stored strings are zeroized when dropped.
//!
//! [`LoadedKey`] is the parsed form: AEAD keys set up, signing keys parsed, public keys
//! encoded once. The backend caches it, so an encrypt or a sign neither reads storage nor
//! parses a key.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::aead::{LessSafeKey, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::util::{b64, pem, unb64};

/// The key types the engine creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// AES-128 in GCM mode with a 96-bit nonce.
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    /// AES-256 in GCM mode with a 96-bit nonce (the default).
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    /// ChaCha20-Poly1305.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    /// Ed25519 signatures.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA on NIST P-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// ECDSA on NIST P-521.
    #[serde(rename = "ecdsa-p521")]
    EcdsaP521,
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    /// A bare HMAC key.
    #[serde(rename = "hmac")]
    Hmac,
}

impl KeyType {
    /// Parses OpenBao's name of a key type.
    pub fn parse(name: &str) -> Option<KeyType> {
        Some(match name {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "ed25519" => KeyType::Ed25519,
            "ecdsa-p256" => KeyType::EcdsaP256,
            "ecdsa-p384" => KeyType::EcdsaP384,
            "ecdsa-p521" => KeyType::EcdsaP521,
            "rsa-2048" => KeyType::Rsa2048,
            "rsa-3072" => KeyType::Rsa3072,
            "rsa-4096" => KeyType::Rsa4096,
            "hmac" => KeyType::Hmac,
            _ => return None,
        })
    }

    /// OpenBao's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Hmac => "hmac",
        }
    }

    /// True for the symmetric AEAD types.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305
        )
    }

    /// True for RSA types.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// True for ECDSA types.
    pub fn is_ecdsa(self) -> bool {
        matches!(
            self,
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521
        )
    }

    /// Can encrypt and decrypt.
    pub fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    /// Can sign and verify.
    pub fn supports_signing(self) -> bool {
        self == KeyType::Ed25519 || self.is_ecdsa() || self.is_rsa()
    }

    /// Can derive per-context keys.
    pub fn supports_derivation(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    /// Length of the symmetric key in bytes (AEAD types).
    pub fn aead_key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    fn aead_algorithm(self) -> &'static aws_lc_rs::aead::Algorithm {
        match self {
            KeyType::Aes128Gcm96 => &aws_lc_rs::aead::AES_128_GCM,
            KeyType::ChaCha20Poly1305 => &aws_lc_rs::aead::CHACHA20_POLY1305,
            _ => &aws_lc_rs::aead::AES_256_GCM,
        }
    }

    fn ecdsa_signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            KeyType::EcdsaP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        }
    }
}

/// One stored version of a key. The strings are zeroized on drop.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredVersion {
    /// Base64 key material: the AEAD or HMAC key, the Ed25519 seed, or PKCS#8 DER (ECDSA, RSA).
    pub key: String,
    /// Base64 HMAC key used by `hmac/` (equal to `key` for `hmac` keys).
    pub hmac_key: String,
    /// Creation time, Unix nanoseconds.
    pub created: i64,
}

impl Drop for StoredVersion {
    fn drop(&mut self) {
        self.key.zeroize();
        self.hmac_key.zeroize();
    }
}

/// Backup / restore bookkeeping shown on key reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BackupInfo {
    /// RFC 3339 time of the backup or restore.
    pub time: String,
    /// Latest version at that time.
    pub version: u32,
}

/// A named key as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// Key name.
    pub name: String,
    /// Key type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// Per-request keys are derived from the `context`.
    #[serde(default)]
    pub derived: bool,
    /// Convergent (deterministic) encryption.
    #[serde(default)]
    pub convergent: bool,
    /// Private material may be exported.
    #[serde(default)]
    pub exportable: bool,
    /// Backups may be taken.
    #[serde(default)]
    pub allow_plaintext_backup: bool,
    /// The key may be deleted.
    #[serde(default)]
    pub deletion_allowed: bool,
    /// Oldest version allowed to decrypt or verify.
    pub min_decryption_version: u32,
    /// Oldest version allowed to encrypt or sign (0: the latest).
    #[serde(default)]
    pub min_encryption_version: u32,
    /// Versions below this were trimmed (0: none).
    #[serde(default)]
    pub min_available_version: u32,
    /// Latest version.
    pub latest_version: u32,
    /// Automatic rotation period in seconds (0: never).
    #[serde(default)]
    pub auto_rotate_period: u64,
    /// HMAC key size in bytes (`hmac` keys).
    #[serde(default)]
    pub key_size: usize,
    /// Versions still available.
    pub versions: BTreeMap<u32, StoredVersion>,
    /// Set when this key was backed up.
    #[serde(default)]
    pub backup_info: Option<BackupInfo>,
    /// Set when this key was restored from a backup.
    #[serde(default)]
    pub restore_info: Option<BackupInfo>,
}

/// Parsed key material of one version.
pub enum Material {
    /// A ready AEAD key (non-derived keys).
    Aead(LessSafeKey),
    /// AEAD key derived per request from `LoadedVersion::secret`.
    AeadDerived,
    /// An Ed25519 key pair (non-derived).
    Ed25519(Ed25519KeyPair),
    /// Ed25519 key pair derived per request.
    Ed25519Derived,
    /// An ECDSA key pair.
    Ecdsa(EcdsaKeyPair),
    /// An RSA key: signing pair and OAEP encryption keys.
    Rsa {
        /// Signing key pair.
        pair: aws_lc_rs::rsa::KeyPair,
        /// OAEP decryption key.
        dec: OaepPrivateDecryptingKey,
        /// OAEP encryption key.
        enc: OaepPublicEncryptingKey,
    },
    /// HMAC only.
    Hmac,
}

/// One parsed version of a key.
pub struct LoadedVersion {
    /// Version number.
    pub version: u32,
    /// Creation time, Unix nanoseconds.
    pub created: i64,
    /// Raw key material (AEAD key, seed, PKCS#8 DER or HMAC key).
    pub secret: Zeroizing<Vec<u8>>,
    /// The HMAC key.
    pub hmac_key: Zeroizing<Vec<u8>>,
    /// Parsed material.
    pub material: Material,
    /// Public key as shown on reads (PEM for ECDSA/RSA, base64 for Ed25519); empty otherwise.
    pub public_key: String,
    /// Raw public key for verification (uncompressed point, RSAPublicKey DER, Ed25519 bytes).
    pub public_raw: Vec<u8>,
}

/// A parsed key: its stored form (for changes) and every available version, parsed.
pub struct LoadedKey {
    /// The stored record.
    pub stored: StoredKey,
    /// Parsed versions.
    pub versions: BTreeMap<u32, LoadedVersion>,
    /// Approximate bytes held, for the cache bound.
    pub size: usize,
}

/// Fills a new buffer with `n` random bytes.
pub fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| "failed to generate random bytes".to_string())?;
    Ok(buf)
}

/// Generates the material of a new version of `kt` (`key_size` for `hmac` keys).
pub fn generate_version(
    kt: KeyType,
    key_size: usize,
    created: i64,
) -> Result<StoredVersion, String> {
    let key: Zeroizing<Vec<u8>> = match kt {
        KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            random_bytes(kt.aead_key_len())?
        }
        KeyType::Hmac => random_bytes(key_size)?,
        KeyType::Ed25519 => random_bytes(32)?,
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let pair = EcdsaKeyPair::generate(kt.ecdsa_signing())
                .map_err(|_| "failed to generate ECDSA key".to_string())?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| "failed to encode ECDSA key".to_string())?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let size = match kt {
                KeyType::Rsa2048 => KeySize::Rsa2048,
                KeyType::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size)
                .map_err(|_| "failed to generate RSA key".to_string())?;
            let der = pair
                .as_der()
                .map_err(|_| "failed to encode RSA key".to_string())?;
            Zeroizing::new(der.as_ref().to_vec())
        }
    };
    let hmac_key = if kt == KeyType::Hmac {
        key.clone()
    } else {
        random_bytes(32)?
    };
    Ok(StoredVersion {
        key: b64(&key),
        hmac_key: b64(&hmac_key),
        created,
    })
}

/// Parses one stored version.
pub fn load_version(
    kt: KeyType,
    derived: bool,
    version: u32,
    sv: &StoredVersion,
) -> Result<LoadedVersion, String> {
    let secret = Zeroizing::new(unb64(&sv.key)?);
    let hmac_key = Zeroizing::new(unb64(&sv.hmac_key)?);
    let bad = |what: &str| format!("stored {what} key of version {version} is invalid");
    let mut public_key = String::new();
    let mut public_raw = Vec::new();
    let material = match kt {
        KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            if secret.len() != kt.aead_key_len() {
                return Err(bad("AEAD"));
            }
            if derived {
                Material::AeadDerived
            } else {
                let unbound =
                    UnboundKey::new(kt.aead_algorithm(), &secret).map_err(|_| bad("AEAD"))?;
                Material::Aead(LessSafeKey::new(unbound))
            }
        }
        KeyType::Hmac => Material::Hmac,
        KeyType::Ed25519 => {
            let pair = Ed25519KeyPair::from_seed_unchecked(&secret).map_err(|_| bad("Ed25519"))?;
            // The base key's public half: reads of a derived key show none (each context has
            // its own), but it can still be exported.
            public_raw = pair.public_key().as_ref().to_vec();
            if derived {
                Material::Ed25519Derived
            } else {
                public_key = b64(&public_raw);
                Material::Ed25519(pair)
            }
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let pair =
                EcdsaKeyPair::from_pkcs8(kt.ecdsa_signing(), &secret).map_err(|_| bad("ECDSA"))?;
            public_raw = pair.public_key().as_ref().to_vec();
            let spki = pair.public_key().as_der().map_err(|_| bad("ECDSA"))?;
            public_key = pem("PUBLIC KEY", spki.as_ref(), true);
            Material::Ecdsa(pair)
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&secret).map_err(|_| bad("RSA"))?;
            public_raw = pair.public_key().as_ref().to_vec();
            let spki = pair.public_key().as_der().map_err(|_| bad("RSA"))?;
            public_key = pem("PUBLIC KEY", spki.as_ref(), true);
            let private = PrivateDecryptingKey::from_pkcs8(&secret).map_err(|_| bad("RSA"))?;
            let enc = OaepPublicEncryptingKey::new(private.public_key()).map_err(|_| bad("RSA"))?;
            let dec = OaepPrivateDecryptingKey::new(private).map_err(|_| bad("RSA"))?;
            Material::Rsa { pair, dec, enc }
        }
    };
    Ok(LoadedVersion {
        version,
        created: sv.created,
        secret,
        hmac_key,
        material,
        public_key,
        public_raw,
    })
}

impl LoadedKey {
    /// Parses every stored version of `stored`.
    pub fn load(stored: StoredKey) -> Result<Arc<LoadedKey>, String> {
        let mut versions = BTreeMap::new();
        let mut size = 256 + stored.name.len();
        for (&v, sv) in &stored.versions {
            let lv = load_version(stored.key_type, stored.derived, v, sv)?;
            // Stored strings plus decoded bytes plus the library's own copy of the key.
            size +=
                sv.key.len() + sv.hmac_key.len() + lv.secret.len() * 2 + lv.public_key.len() + 128;
            versions.insert(v, lv);
        }
        Ok(Arc::new(LoadedKey {
            stored,
            versions,
            size,
        }))
    }

    /// The version, if it is available.
    pub fn version(&self, v: u32) -> Option<&LoadedVersion> {
        self.versions.get(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for name in [
            "aes128-gcm96",
            "aes256-gcm96",
            "chacha20-poly1305",
            "ed25519",
            "ecdsa-p256",
            "ecdsa-p384",
            "ecdsa-p521",
            "rsa-2048",
            "rsa-3072",
            "rsa-4096",
            "hmac",
        ] {
            let kt = KeyType::parse(name).unwrap();
            assert_eq!(kt.name(), name);
            assert_eq!(
                serde_json::to_value(kt).unwrap(),
                serde_json::Value::String(name.into())
            );
        }
        assert!(KeyType::parse("kitty").is_none());
        assert!(KeyType::Rsa2048.supports_encryption() && KeyType::Rsa2048.supports_signing());
        assert!(!KeyType::Hmac.supports_encryption() && !KeyType::Hmac.supports_signing());
        assert!(!KeyType::EcdsaP256.supports_derivation());
    }

    #[test]
    fn generated_versions_load() {
        for kt in [
            KeyType::Aes128Gcm96,
            KeyType::ChaCha20Poly1305,
            KeyType::Ed25519,
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::EcdsaP521,
            KeyType::Rsa2048,
            KeyType::Hmac,
        ] {
            let sv = generate_version(kt, 32, 1).unwrap();
            let lv = load_version(kt, false, 1, &sv).unwrap();
            assert_eq!(lv.hmac_key.len(), 32, "{kt:?}");
            if kt.supports_signing() {
                assert!(!lv.public_key.is_empty(), "{kt:?}");
            }
        }
        let mut sv = generate_version(KeyType::Aes256Gcm96, 0, 1).unwrap();
        sv.key = b64(&[1u8; 5]);
        assert!(load_version(KeyType::Aes256Gcm96, false, 1, &sv).is_err());
    }
}
