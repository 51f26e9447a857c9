//! The cryptographic operations on one parsed key version: AEAD and RSA-OAEP encryption,
//! Ed25519 / ECDSA / RSA signatures, HMAC, and HKDF key derivation for derived keys.
//!
//! Ciphertexts of AEAD keys are `nonce (12 bytes) || ciphertext || tag (16 bytes)`; RSA
//! ciphertexts are the OAEP (SHA-256) output. Errors are returned as the message the client
//! sees; the caller decides the status code.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use aws_lc_rs::signature::{
    self, Ed25519KeyPair, KeyPair, RsaParameters, RsaPssSaltLength, RsaSignatureEncoding,
    UnparsedPublicKey,
};
use zeroize::Zeroizing;

use crate::keys::{KeyType, LoadedVersion, Material};
use crate::util::{ecdsa_asn1_to_fixed, HashAlg};

/// Result of a cryptographic operation; the error is the client-facing message.
pub type CResult<T> = std::result::Result<T, String>;

/// The message OpenBao gives for a failed AEAD open.
pub const AUTH_FAILED: &str = "cipher: message authentication failed";

const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 of `secret` with `context` as the info, `len` bytes.
pub fn derive(secret: &[u8], context: &[u8], len: usize) -> CResult<Zeroizing<Vec<u8>>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let mut out = Zeroizing::new(vec![0u8; len]);
    prk.expand(&[context], Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| "error deriving key".to_string())?;
    Ok(out)
}

fn require_context(context: Option<&[u8]>) -> CResult<&[u8]> {
    match context {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(MISSING_CONTEXT.to_string()),
    }
}

/// Per-request parameters of encryption.
#[derive(Default, Clone, Copy)]
pub struct EncryptParams<'a> {
    /// Derivation context (derived keys).
    pub context: Option<&'a [u8]>,
    /// Additional authenticated data (AEAD keys).
    pub aad: Option<&'a [u8]>,
    /// Convergent encryption: the nonce is a function of key, context and plaintext.
    pub convergent: bool,
}

fn aead_alg(kt: KeyType) -> &'static aws_lc_rs::aead::Algorithm {
    match kt {
        KeyType::Aes128Gcm96 => &aws_lc_rs::aead::AES_128_GCM,
        KeyType::ChaCha20Poly1305 => &aws_lc_rs::aead::CHACHA20_POLY1305,
        _ => &aws_lc_rs::aead::AES_256_GCM,
    }
}

fn derived_aead(kt: KeyType, v: &LoadedVersion, context: Option<&[u8]>) -> CResult<LessSafeKey> {
    let ctx = require_context(context)?;
    let key = derive(&v.secret, ctx, kt.aead_key_len())?;
    let unbound = UnboundKey::new(aead_alg(kt), &key).map_err(|_| "error deriving key")?;
    Ok(LessSafeKey::new(unbound))
}

fn convergent_nonce(v: &LoadedVersion, context: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    // HMAC(version's HMAC key, len(context) || context || plaintext): unambiguous, and
    // independent of the encryption key itself.
    let key = hmac::Key::new(hmac::HMAC_SHA256, &v.hmac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&(context.len() as u64).to_be_bytes());
    ctx.update(context);
    ctx.update(plaintext);
    let tag = ctx.sign();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
    nonce
}

/// Encrypts `plaintext` with version `v` of a key of type `kt`.
pub fn encrypt(
    kt: KeyType,
    v: &LoadedVersion,
    plaintext: &[u8],
    p: EncryptParams<'_>,
) -> CResult<Vec<u8>> {
    let derived_key;
    let key = match &v.material {
        Material::Aead(k) => k,
        Material::AeadDerived => {
            derived_key = derived_aead(kt, v, p.context)?;
            &derived_key
        }
        Material::Rsa { enc, .. } => {
            let mut out = vec![0u8; enc.ciphertext_size()];
            let len = enc
                .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
                .map_err(|_| "failed to RSA encrypt the plaintext".to_string())?
                .len();
            out.truncate(len);
            return Ok(out);
        }
        _ => {
            return Err(format!(
                "message encryption not supported for key type {}",
                kt.name()
            ))
        }
    };
    let nonce_bytes = if p.convergent {
        convergent_nonce(v, p.context.unwrap_or_default(), plaintext)
    } else {
        let mut n = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut n).map_err(|_| "failed to generate a nonce".to_string())?;
        n
    };
    let tag_len = key.algorithm().tag_len();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + tag_len);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(p.aad.unwrap_or_default()),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| "failed to encrypt".to_string())?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts a payload (the base64-decoded part of `vault:vN:...`) with version `v`.
pub fn decrypt(
    kt: KeyType,
    v: &LoadedVersion,
    payload: &[u8],
    p: EncryptParams<'_>,
) -> CResult<Zeroizing<Vec<u8>>> {
    let derived_key;
    let key = match &v.material {
        Material::Aead(k) => k,
        Material::AeadDerived => {
            derived_key = derived_aead(kt, v, p.context)?;
            &derived_key
        }
        Material::Rsa { dec, .. } => {
            let mut out = Zeroizing::new(vec![0u8; dec.min_output_size()]);
            let len = dec
                .decrypt(&OAEP_SHA256_MGF1SHA256, payload, &mut out, None)
                .map_err(|_| {
                    "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error".to_string()
                })?
                .len();
            out.truncate(len);
            return Ok(out);
        }
        _ => {
            return Err(format!(
                "message decryption not supported for key type {}",
                kt.name()
            ))
        }
    };
    let tag_len = key.algorithm().tag_len();
    if payload.len() < NONCE_LEN + tag_len {
        return Err("invalid ciphertext length".to_string());
    }
    let nonce = Nonce::try_assume_unique_for_key(&payload[..NONCE_LEN])
        .map_err(|_| "invalid ciphertext length".to_string())?;
    let mut buf = Zeroizing::new(payload[NONCE_LEN..].to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(p.aad.unwrap_or_default()), &mut buf)
        .map_err(|_| AUTH_FAILED.to_string())?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// HMAC of `input` with the version's HMAC key.
pub fn hmac(v: &LoadedVersion, alg: HashAlg, input: &[u8]) -> CResult<Vec<u8>> {
    let Some(halg) = alg.hmac() else {
        return Err("unsupported algorithm for HMAC".to_string());
    };
    let key = hmac::Key::new(halg, &v.hmac_key);
    Ok(hmac::sign(&key, input).as_ref().to_vec())
}

/// Verifies an HMAC in constant time.
pub fn hmac_verify(v: &LoadedVersion, alg: HashAlg, input: &[u8], mac: &[u8]) -> CResult<bool> {
    let Some(halg) = alg.hmac() else {
        return Err("unsupported algorithm for HMAC".to_string());
    };
    let key = hmac::Key::new(halg, &v.hmac_key);
    Ok(hmac::verify(&key, input, mac).is_ok())
}

/// RSA signature padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaPadding {
    /// RSASSA-PSS (the default).
    Pss,
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
}

/// PSS salt length, as OpenBao accepts it (`auto`, `hash`, or a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltLength {
    /// Signing: the maximum; verifying: the maximum or the digest length.
    Auto,
    /// The digest's length.
    Hash,
    /// An explicit length.
    Bytes(u16),
}

impl SaltLength {
    /// Parses `auto`, `hash` or an integer (Go's conventions: 0 is auto, -1 is hash).
    pub fn parse(s: &str) -> CResult<SaltLength> {
        match s {
            "" | "auto" => Ok(SaltLength::Auto),
            "hash" => Ok(SaltLength::Hash),
            other => match other.parse::<i64>() {
                Ok(0) => Ok(SaltLength::Auto),
                Ok(-1) => Ok(SaltLength::Hash),
                Ok(n) if n > 0 && n <= i64::from(u16::MAX) => Ok(SaltLength::Bytes(n as u16)),
                Ok(n) => Err(format!("salt length is invalid: {n}")),
                Err(_) => Err(format!(
                    "salt length neither 'auto', 'hash', nor an int: {other}"
                )),
            },
        }
    }
}

/// How ECDSA signatures are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marshaling {
    /// ASN.1 DER (the default).
    Asn1,
    /// JWS: fixed-width `r || s`, URL-safe base64 without padding.
    Jws,
}

/// Per-request parameters of signing and verification.
#[derive(Debug, Clone, Copy)]
pub struct SignParams<'a> {
    /// Hash algorithm (ignored by Ed25519).
    pub hash: HashAlg,
    /// The input already is a digest.
    pub prehashed: bool,
    /// RSA padding.
    pub padding: RsaPadding,
    /// PSS salt length.
    pub salt: SaltLength,
    /// ECDSA encoding.
    pub marshaling: Marshaling,
    /// Derivation context (derived Ed25519 keys).
    pub context: Option<&'a [u8]>,
}

fn derived_ed25519(v: &LoadedVersion, context: Option<&[u8]>) -> CResult<Ed25519KeyPair> {
    let ctx = require_context(context)?;
    let seed = derive(&v.secret, ctx, 32)?;
    Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| "error deriving key".to_string())
}

/// The public key a signature of a derived Ed25519 key verifies with (base64 raw bytes).
pub fn derived_public_key(v: &LoadedVersion, context: Option<&[u8]>) -> CResult<Vec<u8>> {
    Ok(derived_ed25519(v, context)?.public_key().as_ref().to_vec())
}

fn ecdsa_width(kt: KeyType) -> (usize, usize, &'static digest::Algorithm) {
    // (digest width handed to aws-lc, field width of r and s, digest type of the key pair)
    match kt {
        KeyType::EcdsaP384 => (48, 48, &digest::SHA384),
        KeyType::EcdsaP521 => (64, 66, &digest::SHA512),
        _ => (32, 32, &digest::SHA256),
    }
}

/// Fits a hash to the digest width of the curve's key pair: longer hashes keep their leftmost
/// bytes (as ECDSA truncates), shorter ones are left-padded with zeros (same integer).
fn ecdsa_digest(kt: KeyType, hash: &[u8]) -> CResult<digest::Digest> {
    let (width, _, alg) = ecdsa_width(kt);
    let mut buf = [0u8; 64];
    if hash.len() >= width {
        buf[..width].copy_from_slice(&hash[..width]);
    } else {
        buf[width - hash.len()..width].copy_from_slice(hash);
    }
    digest::Digest::import_less_safe(&buf[..width], alg).map_err(|_| "invalid digest".to_string())
}

fn message_hash(p: &SignParams<'_>, input: &[u8]) -> CResult<Vec<u8>> {
    if p.prehashed {
        return Ok(input.to_vec());
    }
    if p.hash == HashAlg::None {
        return Err("hash_algorithm=none requires prehashed=true".to_string());
    }
    Ok(p.hash.hash(input))
}

type EncodingKey = (u8, RsaPadding, SaltKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SaltKey {
    Digest,
    Max,
    Custom(u16),
}

/// aws-lc-rs wants `'static` signature parameters; custom PSS salt lengths are built once and
/// kept (bounded: three digests × at most 65,536 salt lengths, in practice a handful).
static RSA_SIGNING: Mutex<Option<HashMap<EncodingKey, &'static RsaSignatureEncoding>>> =
    Mutex::new(None);
static RSA_VERIFYING: Mutex<Option<HashMap<EncodingKey, &'static RsaParameters>>> =
    Mutex::new(None);

fn rsa_hash_index(h: HashAlg) -> CResult<u8> {
    match h {
        HashAlg::Sha2_256 => Ok(0),
        HashAlg::Sha2_384 => Ok(1),
        HashAlg::Sha2_512 => Ok(2),
        other => Err(format!(
            "unsupported hash algorithm {} for RSA signatures; use sha2-256, sha2-384 or sha2-512",
            other.name()
        )),
    }
}

fn pss_len(s: SaltKey) -> RsaPssSaltLength {
    match s {
        SaltKey::Digest => RsaPssSaltLength::Digest,
        SaltKey::Max => RsaPssSaltLength::Max,
        SaltKey::Custom(n) => RsaPssSaltLength::Custom(n),
    }
}

fn rsa_signing(h: u8, padding: RsaPadding, salt: SaltKey) -> &'static RsaSignatureEncoding {
    let salt = if padding == RsaPadding::Pkcs1v15 {
        SaltKey::Digest
    } else {
        salt
    };
    let mut guard = RSA_SIGNING.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.entry((h, padding, salt)).or_insert_with(|| {
        let base = match (padding, h) {
            (RsaPadding::Pkcs1v15, 0) => signature::RSA_PKCS1_SHA256,
            (RsaPadding::Pkcs1v15, 1) => signature::RSA_PKCS1_SHA384,
            (RsaPadding::Pkcs1v15, _) => signature::RSA_PKCS1_SHA512,
            (RsaPadding::Pss, 0) => signature::RSA_PSS_SHA256,
            (RsaPadding::Pss, 1) => signature::RSA_PSS_SHA384,
            (RsaPadding::Pss, _) => signature::RSA_PSS_SHA512,
        };
        Box::leak(Box::new(base.with_pss_salt_length(pss_len(salt))))
    })
}

fn rsa_verifying(h: u8, padding: RsaPadding, salt: SaltKey) -> &'static RsaParameters {
    let salt = if padding == RsaPadding::Pkcs1v15 {
        SaltKey::Digest
    } else {
        salt
    };
    let mut guard = RSA_VERIFYING.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.entry((h, padding, salt)).or_insert_with(|| {
        let base = match (padding, h) {
            (RsaPadding::Pkcs1v15, 0) => signature::RSA_PKCS1_2048_8192_SHA256,
            (RsaPadding::Pkcs1v15, 1) => signature::RSA_PKCS1_2048_8192_SHA384,
            (RsaPadding::Pkcs1v15, _) => signature::RSA_PKCS1_2048_8192_SHA512,
            (RsaPadding::Pss, 0) => signature::RSA_PSS_2048_8192_SHA256,
            (RsaPadding::Pss, 1) => signature::RSA_PSS_2048_8192_SHA384,
            (RsaPadding::Pss, _) => signature::RSA_PSS_2048_8192_SHA512,
        };
        Box::leak(Box::new(base.with_pss_salt_length(pss_len(salt))))
    })
}

fn rsa_digest_alg(h: u8) -> &'static digest::Algorithm {
    match h {
        0 => &digest::SHA256,
        1 => &digest::SHA384,
        _ => &digest::SHA512,
    }
}

/// Signs `input` with version `v`; returns the raw signature bytes (already in the JWS form
/// when asked for).
pub fn sign(kt: KeyType, v: &LoadedVersion, input: &[u8], p: &SignParams<'_>) -> CResult<Vec<u8>> {
    match &v.material {
        Material::Ed25519(pair) => Ok(pair.sign(input).as_ref().to_vec()),
        Material::Ed25519Derived => {
            let pair = derived_ed25519(v, p.context)?;
            Ok(pair.sign(input).as_ref().to_vec())
        }
        Material::Ecdsa(pair) => {
            let hash = message_hash(p, input)?;
            let d = ecdsa_digest(kt, &hash)?;
            let sig = pair
                .sign_digest(&d)
                .map_err(|_| "failed to sign".to_string())?;
            match p.marshaling {
                Marshaling::Asn1 => Ok(sig.as_ref().to_vec()),
                Marshaling::Jws => ecdsa_asn1_to_fixed(sig.as_ref(), ecdsa_width(kt).1)
                    .ok_or_else(|| "failed to marshal signature".to_string()),
            }
        }
        Material::Rsa { pair, .. } => {
            if p.hash == HashAlg::None {
                return Err(
                    "hash_algorithm=none (raw PKCS#1 v1.5 without DigestInfo) is not supported"
                        .to_string(),
                );
            }
            let h = rsa_hash_index(p.hash)?;
            let salt = match p.salt {
                SaltLength::Auto => SaltKey::Max,
                SaltLength::Hash => SaltKey::Digest,
                SaltLength::Bytes(n) => SaltKey::Custom(n),
            };
            let enc = rsa_signing(h, p.padding, salt);
            let mut sig = vec![0u8; pair.public_modulus_len()];
            if p.prehashed {
                let d =
                    digest::Digest::import_less_safe(input, rsa_digest_alg(h)).map_err(|_| {
                        "prehashed input has the wrong length for the hash algorithm".to_string()
                    })?;
                pair.sign_digest(enc, &d, &mut sig)
            } else {
                pair.sign(enc, &aws_lc_rs::rand::SystemRandom::new(), input, &mut sig)
            }
            .map_err(|_| "failed to sign".to_string())?;
            Ok(sig)
        }
        _ => Err(format!("key type {} does not support signing", kt.name())),
    }
}

/// Verifies a signature made by [`sign`]; `Ok(false)` for a signature that does not match.
pub fn verify(
    kt: KeyType,
    v: &LoadedVersion,
    input: &[u8],
    sig: &[u8],
    p: &SignParams<'_>,
) -> CResult<bool> {
    match &v.material {
        Material::Ed25519(_) => Ok(UnparsedPublicKey::new(&signature::ED25519, &v.public_raw)
            .verify(input, sig)
            .is_ok()),
        Material::Ed25519Derived => {
            let public = derived_public_key(v, p.context)?;
            Ok(UnparsedPublicKey::new(&signature::ED25519, &public)
                .verify(input, sig)
                .is_ok())
        }
        Material::Ecdsa(_) => {
            let hash = message_hash(p, input)?;
            let d = ecdsa_digest(kt, &hash)?;
            let alg: &'static signature::EcdsaVerificationAlgorithm = match (kt, p.marshaling) {
                (KeyType::EcdsaP384, Marshaling::Asn1) => &signature::ECDSA_P384_SHA384_ASN1,
                (KeyType::EcdsaP384, Marshaling::Jws) => &signature::ECDSA_P384_SHA384_FIXED,
                (KeyType::EcdsaP521, Marshaling::Asn1) => &signature::ECDSA_P521_SHA512_ASN1,
                (KeyType::EcdsaP521, Marshaling::Jws) => &signature::ECDSA_P521_SHA512_FIXED,
                (_, Marshaling::Asn1) => &signature::ECDSA_P256_SHA256_ASN1,
                (_, Marshaling::Jws) => &signature::ECDSA_P256_SHA256_FIXED,
            };
            Ok(UnparsedPublicKey::new(alg, &v.public_raw)
                .verify_digest(&d, sig)
                .is_ok())
        }
        Material::Rsa { .. } => {
            if p.hash == HashAlg::None {
                return Err(
                    "hash_algorithm=none (raw PKCS#1 v1.5 without DigestInfo) is not supported"
                        .to_string(),
                );
            }
            let h = rsa_hash_index(p.hash)?;
            let salts: &[SaltKey] = match p.salt {
                SaltLength::Auto => &[SaltKey::Max, SaltKey::Digest],
                SaltLength::Hash => &[SaltKey::Digest],
                SaltLength::Bytes(n) => &[SaltKey::Custom(n)][..],
            };
            // `salts` for a custom length borrows a temporary; copy it out.
            let salts: Vec<SaltKey> = salts.to_vec();
            for salt in salts {
                let params = rsa_verifying(h, p.padding, salt);
                let key = UnparsedPublicKey::new(params, &v.public_raw);
                let ok = if p.prehashed {
                    let d = digest::Digest::import_less_safe(input, rsa_digest_alg(h)).map_err(
                        |_| {
                            "prehashed input has the wrong length for the hash algorithm"
                                .to_string()
                        },
                    )?;
                    key.verify_digest(&d, sig).is_ok()
                } else {
                    key.verify(input, sig).is_ok()
                };
                if ok {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Err(format!(
            "key type {} does not support verification",
            kt.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_version, load_version};

    fn version(kt: KeyType, derived: bool) -> LoadedVersion {
        let sv = generate_version(kt, 32, 1).unwrap();
        load_version(kt, derived, 1, &sv).unwrap()
    }

    fn params() -> SignParams<'static> {
        SignParams {
            hash: HashAlg::Sha2_256,
            prehashed: false,
            padding: RsaPadding::Pss,
            salt: SaltLength::Auto,
            marshaling: Marshaling::Asn1,
            context: None,
        }
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        for kt in [
            KeyType::Aes128Gcm96,
            KeyType::Aes256Gcm96,
            KeyType::ChaCha20Poly1305,
        ] {
            let v = version(kt, false);
            let p = EncryptParams::default();
            let ct = encrypt(kt, &v, b"hello", p).unwrap();
            assert_eq!(ct.len(), 12 + 5 + 16);
            assert_eq!(&decrypt(kt, &v, &ct, p).unwrap()[..], b"hello");
            let mut bad = ct.clone();
            bad[14] ^= 1;
            assert_eq!(decrypt(kt, &v, &bad, p).unwrap_err(), AUTH_FAILED);
            assert_eq!(
                decrypt(kt, &v, &ct[..10], p).unwrap_err(),
                "invalid ciphertext length"
            );
            let aad = EncryptParams {
                aad: Some(b"x"),
                ..p
            };
            assert!(decrypt(kt, &v, &ct, aad).is_err(), "aad is bound");
        }
    }

    #[test]
    fn derived_and_convergent() {
        let kt = KeyType::Aes256Gcm96;
        let v = version(kt, true);
        let none = EncryptParams::default();
        assert!(encrypt(kt, &v, b"x", none).unwrap_err().contains("context"));
        let a = EncryptParams {
            context: Some(b"a"),
            convergent: true,
            ..none
        };
        let b = EncryptParams {
            context: Some(b"b"),
            ..a
        };
        let c1 = encrypt(kt, &v, b"same", a).unwrap();
        assert_eq!(c1, encrypt(kt, &v, b"same", a).unwrap(), "deterministic");
        assert_ne!(c1, encrypt(kt, &v, b"other", a).unwrap());
        assert_eq!(decrypt(kt, &v, &c1, b).unwrap_err(), AUTH_FAILED);
        assert_eq!(&decrypt(kt, &v, &c1, a).unwrap()[..], b"same");
    }

    #[test]
    fn rsa_oaep_round_trip() {
        let kt = KeyType::Rsa2048;
        let v = version(kt, false);
        let ct = encrypt(kt, &v, b"secret", EncryptParams::default()).unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(
            &decrypt(kt, &v, &ct, EncryptParams::default()).unwrap()[..],
            b"secret"
        );
        assert!(decrypt(kt, &v, &ct[1..], EncryptParams::default()).is_err());
    }

    #[test]
    fn signatures_verify_and_reject() {
        for kt in [
            KeyType::Ed25519,
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::EcdsaP521,
            KeyType::Rsa2048,
        ] {
            for hash in [HashAlg::Sha2_256, HashAlg::Sha2_384, HashAlg::Sha2_512] {
                let v = version(kt, false);
                let mut p = params();
                p.hash = hash;
                let sig = sign(kt, &v, b"msg", &p).unwrap();
                assert!(verify(kt, &v, b"msg", &sig, &p).unwrap(), "{kt:?} {hash:?}");
                assert!(!verify(kt, &v, b"msh", &sig, &p).unwrap(), "{kt:?}");
            }
        }
        let v = version(KeyType::Aes256Gcm96, false);
        assert!(sign(KeyType::Aes256Gcm96, &v, b"m", &params())
            .unwrap_err()
            .contains("does not support signing"));
    }

    #[test]
    fn ecdsa_jws_and_prehashed() {
        let kt = KeyType::EcdsaP521;
        let v = version(kt, false);
        let mut p = params();
        p.marshaling = Marshaling::Jws;
        let sig = sign(kt, &v, b"m", &p).unwrap();
        assert_eq!(sig.len(), 132);
        assert!(verify(kt, &v, b"m", &sig, &p).unwrap());
        let mut p = params();
        p.prehashed = true;
        let digest = HashAlg::Sha2_256.hash(b"m");
        let sig = sign(kt, &v, &digest, &p).unwrap();
        p.prehashed = false;
        assert!(verify(kt, &v, b"m", &sig, &p).unwrap(), "prehash == hash");
    }

    #[test]
    fn rsa_salt_lengths_and_pkcs1() {
        let kt = KeyType::Rsa2048;
        let v = version(kt, false);
        for (sign_salt, verify_salt, ok) in [
            (SaltLength::Auto, SaltLength::Auto, true),
            (SaltLength::Hash, SaltLength::Auto, true),
            (SaltLength::Bytes(1), SaltLength::Bytes(1), true),
            (SaltLength::Bytes(1), SaltLength::Hash, false),
        ] {
            let mut p = params();
            p.salt = sign_salt;
            let sig = sign(kt, &v, b"m", &p).unwrap();
            p.salt = verify_salt;
            assert_eq!(verify(kt, &v, b"m", &sig, &p).unwrap(), ok);
        }
        let mut p = params();
        p.padding = RsaPadding::Pkcs1v15;
        let sig = sign(kt, &v, b"m", &p).unwrap();
        assert!(verify(kt, &v, b"m", &sig, &p).unwrap());
        p.padding = RsaPadding::Pss;
        assert!(!verify(kt, &v, b"m", &sig, &p).unwrap());
        assert_eq!(SaltLength::parse("0").unwrap(), SaltLength::Auto);
        assert_eq!(SaltLength::parse("-1").unwrap(), SaltLength::Hash);
        assert!(SaltLength::parse("-2").unwrap_err().contains("invalid: -2"));
        assert!(SaltLength::parse("foobar").is_err());
    }

    #[test]
    fn derived_ed25519_needs_context() {
        let kt = KeyType::Ed25519;
        let v = version(kt, true);
        let mut p = params();
        assert!(sign(kt, &v, b"m", &p).unwrap_err().contains("context"));
        p.context = Some(b"ctx");
        let sig = sign(kt, &v, b"m", &p).unwrap();
        assert!(verify(kt, &v, b"m", &sig, &p).unwrap());
        p.context = Some(b"other");
        assert!(!verify(kt, &v, b"m", &sig, &p).unwrap());
    }

    #[test]
    fn hmac_verifies() {
        let v = version(KeyType::Hmac, false);
        let mac = hmac(&v, HashAlg::Sha2_384, b"m").unwrap();
        assert_eq!(mac.len(), 48);
        assert!(hmac_verify(&v, HashAlg::Sha2_384, b"m", &mac).unwrap());
        assert!(!hmac_verify(&v, HashAlg::Sha2_256, b"m", &mac).unwrap());
        assert!(hmac(&v, HashAlg::Sha3_256, b"m").is_err());
    }
}
