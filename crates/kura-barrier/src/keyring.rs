//! Key material and the ciphertext format.
//!
//! Ciphertext layout: `term (4 bytes, big-endian) ‖ version (1 byte) ‖ nonce (12 bytes) ‖
//! AES-256-GCM ciphertext ‖ tag (16 bytes)`, with the storage path as additional
//! authenticated data. Nonces are random (generated inside aws-lc-rs).
//!
//! The keyring is serialized in a fixed binary layout (so every byte of key material lives in
//! buffers of known size that are zeroized after use):
//! `format (1) ‖ active term (4) ‖ count (4) ‖ count × entry`, with
//! `entry = term (4) ‖ install seconds (8) ‖ install nanoseconds (4) ‖ encryptions (8) ‖ key (32)`,
//! all integers big-endian.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{BarrierError, Result};

/// Length of every key the barrier uses (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of the random GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// The ciphertext format version byte (2: the storage path is the AAD, as in Vault's v2).
pub const CIPHERTEXT_VERSION: u8 = 2;
/// Bytes in front of the GCM ciphertext: term, version, nonce.
pub const HEADER_LEN: usize = 4 + 1 + NONCE_LEN;
/// The pseudo-term of values encrypted directly with the root key (the keyring).
pub const ROOT_TERM: u32 = 0;

const KEYRING_FORMAT: u8 = 1;
const ENTRY_LEN: usize = 4 + 8 + 4 + 8 + KEY_LEN;
const KEYRING_HEADER_LEN: usize = 1 + 4 + 4;

/// An AES-256-GCM key plus its raw bytes (kept, zeroized on drop, to re-serialize the keyring).
///
/// The aws-lc key schedule is freed through `OPENSSL_free`, which cleanses the allocation.
pub(crate) struct AeadKey {
    aead: RandomizedNonceKey,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl AeadKey {
    /// Builds a key from exactly [`KEY_LEN`] bytes.
    pub(crate) fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != KEY_LEN {
            return Err(BarrierError::InvalidKeyLength {
                expected: KEY_LEN,
                got: bytes.len(),
            });
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        raw.copy_from_slice(bytes);
        let aead =
            RandomizedNonceKey::new(&AES_256_GCM, &raw[..]).map_err(|_| BarrierError::Crypto)?;
        Ok(AeadKey { aead, bytes: raw })
    }

    /// Generates a fresh random key.
    pub(crate) fn generate() -> Result<Self> {
        let raw = generate_key()?;
        Self::new(&raw[..])
    }

    /// The raw key bytes.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Constant-time comparison with candidate key bytes.
    pub(crate) fn ct_eq(&self, other: &[u8]) -> bool {
        self.bytes[..].ct_eq(other).into()
    }

    /// Encrypts `plaintext` for `path`, tagging the ciphertext with `term`.
    pub(crate) fn seal(&self, term: u32, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&term.to_be_bytes());
        out.push(CIPHERTEXT_VERSION);
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        let (nonce, tag) = match self
            .aead
            .seal_in_place_separate_tag(Aad::from(path.as_bytes()), &mut out[HEADER_LEN..])
        {
            Ok(v) => v,
            Err(_) => {
                // Never hand back (or leave behind) a buffer that may still hold plaintext.
                zeroize::Zeroize::zeroize(&mut out);
                return Err(BarrierError::Crypto);
            }
        };
        let nonce: &[u8; NONCE_LEN] = nonce.as_ref();
        out[5..HEADER_LEN].copy_from_slice(nonce);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts a ciphertext whose header has already been validated by [`parse_header`].
    pub(crate) fn open(&self, path: &str, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[5..HEADER_LEN]);
        let mut buf = ciphertext[HEADER_LEN..].to_vec();
        let opened = self.aead.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(path.as_bytes()),
            &mut buf,
        );
        match opened {
            Ok(plain) => {
                let len = plain.len();
                buf.truncate(len);
                Ok(buf)
            }
            Err(_) => {
                zeroize::Zeroize::zeroize(&mut buf);
                Err(BarrierError::Decrypt {
                    path: path.to_string(),
                })
            }
        }
    }
}

/// Generates a random 32-byte key (for a new root key) from aws-lc-rs's CSPRNG.
pub fn generate_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| BarrierError::Crypto)?;
    Ok(raw)
}

/// Validates the fixed header of a ciphertext read at `path` and returns its term.
pub(crate) fn parse_header(path: &str, ciphertext: &[u8]) -> Result<u32> {
    if ciphertext.len() < HEADER_LEN + TAG_LEN {
        return Err(BarrierError::MalformedCiphertext {
            path: path.to_string(),
        });
    }
    let term = u32::from_be_bytes([ciphertext[0], ciphertext[1], ciphertext[2], ciphertext[3]]);
    if ciphertext[4] != CIPHERTEXT_VERSION {
        return Err(BarrierError::UnsupportedVersion {
            path: path.to_string(),
            version: ciphertext[4],
        });
    }
    Ok(term)
}

/// One data-encryption key of the keyring.
pub(crate) struct TermKey {
    pub(crate) term: u32,
    pub(crate) key: AeadKey,
    pub(crate) install_time: SystemTime,
    /// Encryptions performed with this key (persisted with the keyring).
    pub(crate) encryptions: AtomicU64,
}

impl TermKey {
    /// A freshly generated key for `term`, installed now.
    pub(crate) fn generate(term: u32) -> Result<Self> {
        Ok(TermKey {
            term,
            key: AeadKey::generate()?,
            install_time: SystemTime::now(),
            encryptions: AtomicU64::new(0),
        })
    }

    /// Encrypts with this key and counts the encryption.
    pub(crate) fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        self.key.seal(self.term, path, plaintext)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let since = self
            .install_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        out.extend_from_slice(&self.term.to_be_bytes());
        out.extend_from_slice(&since.as_secs().to_be_bytes());
        out.extend_from_slice(&since.subsec_nanos().to_be_bytes());
        out.extend_from_slice(&self.encryptions.load(Ordering::Relaxed).to_be_bytes());
        out.extend_from_slice(self.key.bytes());
    }

    fn decode(entry: &[u8]) -> Result<Self> {
        debug_assert_eq!(entry.len(), ENTRY_LEN);
        let term = u32::from_be_bytes(entry[0..4].try_into().expect("4 bytes"));
        let secs = u64::from_be_bytes(entry[4..12].try_into().expect("8 bytes"));
        let nanos = u32::from_be_bytes(entry[12..16].try_into().expect("4 bytes"));
        let encryptions = u64::from_be_bytes(entry[16..24].try_into().expect("8 bytes"));
        if nanos >= 1_000_000_000 {
            return Err(BarrierError::CorruptKeyring("bad install time"));
        }
        let install_time = UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or(BarrierError::CorruptKeyring("bad install time"))?;
        Ok(TermKey {
            term,
            key: AeadKey::new(&entry[24..])?,
            install_time,
            encryptions: AtomicU64::new(encryptions),
        })
    }

    /// Serializes this single entry (used for upgrade records).
    pub(crate) fn encode_entry(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(ENTRY_LEN));
        self.encode_into(&mut out);
        out
    }

    /// Parses a single entry written by [`TermKey::encode_entry`].
    pub(crate) fn decode_entry(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != ENTRY_LEN {
            return Err(BarrierError::CorruptKeyring("bad upgrade entry length"));
        }
        Self::decode(bytes)
    }
}

/// The data-encryption keys by term, and which term new writes use.
#[derive(Clone)]
pub(crate) struct Keyring {
    pub(crate) keys: BTreeMap<u32, Arc<TermKey>>,
    pub(crate) active: u32,
}

impl Keyring {
    /// The key new writes use.
    pub(crate) fn active_key(&self) -> &Arc<TermKey> {
        self.keys
            .get(&self.active)
            .expect("active term is in the keyring")
    }

    /// The highest term present.
    pub(crate) fn max_term(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(0)
    }

    /// Serializes the keyring into a zeroizing buffer of exact size.
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            KEYRING_HEADER_LEN + ENTRY_LEN * self.keys.len(),
        ));
        out.push(KEYRING_FORMAT);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for key in self.keys.values() {
            key.encode_into(&mut out);
        }
        out
    }

    /// Parses a serialized keyring.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < KEYRING_HEADER_LEN || bytes[0] != KEYRING_FORMAT {
            return Err(BarrierError::CorruptKeyring("unknown keyring format"));
        }
        let active = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        let count = u32::from_be_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
        let body = &bytes[KEYRING_HEADER_LEN..];
        if count == 0 || body.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(BarrierError::CorruptKeyring("bad keyring length"));
        }
        let mut keys = BTreeMap::new();
        for entry in body.chunks_exact(ENTRY_LEN) {
            let key = TermKey::decode(entry)?;
            if key.term == ROOT_TERM || keys.insert(key.term, Arc::new(key)).is_some() {
                return Err(BarrierError::CorruptKeyring("bad or duplicate term"));
            }
        }
        if !keys.contains_key(&active) {
            return Err(BarrierError::CorruptKeyring("active term missing"));
        }
        Ok(Keyring { keys, active })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_layout() {
        let key = AeadKey::generate().unwrap();
        let ct = key.seal(7, "a/b", b"hello").unwrap();
        assert_eq!(ct.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(&ct[..4], &7u32.to_be_bytes());
        assert_eq!(ct[4], CIPHERTEXT_VERSION);
        assert_eq!(parse_header("a/b", &ct).unwrap(), 7);
        assert_eq!(key.open("a/b", &ct).unwrap(), b"hello");
        assert!(matches!(
            key.open("a/c", &ct),
            Err(BarrierError::Decrypt { .. })
        ));
        // Two encryptions of the same value differ (random nonce).
        assert_ne!(key.seal(7, "a/b", b"hello").unwrap(), ct);
    }

    #[test]
    fn keyring_encoding_round_trips() {
        let mut keys = BTreeMap::new();
        for term in 1..=3 {
            let k = TermKey::generate(term).unwrap();
            k.encryptions.store(u64::from(term) * 10, Ordering::Relaxed);
            keys.insert(term, Arc::new(k));
        }
        let ring = Keyring { keys, active: 3 };
        let bytes = ring.encode();
        assert_eq!(bytes.len(), KEYRING_HEADER_LEN + 3 * ENTRY_LEN);
        let back = Keyring::decode(&bytes).unwrap();
        assert_eq!(back.active, 3);
        for (term, key) in &ring.keys {
            let other = &back.keys[term];
            assert_eq!(other.key.bytes(), key.key.bytes());
            assert_eq!(other.install_time, key.install_time);
            assert_eq!(
                other.encryptions.load(Ordering::Relaxed),
                u64::from(*term) * 10
            );
        }
        assert!(Keyring::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.to_vec();
        bad[4] = 9; // active term 9 is not present
        assert_eq!(
            Keyring::decode(&bad).err(),
            Some(BarrierError::CorruptKeyring("active term missing"))
        );
    }

    #[test]
    fn key_length_is_checked() {
        assert_eq!(
            AeadKey::new(&[0u8; 16]).err(),
            Some(BarrierError::InvalidKeyLength {
                expected: 32,
                got: 16
            })
        );
    }
}
