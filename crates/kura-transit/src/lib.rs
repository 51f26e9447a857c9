//! The transit secrets engine of Kura: encryption as a service over OpenBao's `transit` HTTP
//! API.
//!
//! Named keys (AES-GCM, ChaCha20-Poly1305, Ed25519, ECDSA P-256/384/521, RSA 2048/3072/4096
//! and bare HMAC keys) are created, rotated, configured, trimmed, exported, backed up and
//! restored under `keys/`, `export/`, `backup/` and `restore/`; they encrypt, decrypt, rewrap,
//! make data keys, sign, verify and compute HMACs under `encrypt/`, `decrypt/`, `rewrap/`,
//! `datakey/`, `sign/`, `verify/` and `hmac/`. `random/` and `hash/` need no key.
//!
//! Every cryptographic primitive comes from aws-lc-rs. Ciphertexts and signatures use
//! OpenBao's `vault:v<version>:<base64>` form, and AEAD payloads its `nonce || ciphertext ||
//! tag` layout, so clients that parse them keep working.
//!
//! - [`keys`]: key types, the stored record of a named key and its parsed form;
//! - [`crypto`]: the operations on one key version;
//! - [`backend`]: the path table, the bounded cache of parsed keys and the handlers;
//! - [`util`]: base64, PEM, DER and hash-name helpers.

use std::sync::Arc;

use kura_logical::{BackendConfig, LogicalBackend, LogicalError};

pub mod backend;
pub mod crypto;
pub mod keys;
pub mod util;

pub use backend::TransitBackend;

/// Creates the transit backend for a mount.
pub fn transit_factory(config: BackendConfig) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
    Ok(Arc::new(TransitBackend::new(config)))
}
