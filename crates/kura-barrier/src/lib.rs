//! The encryption barrier of Kura (layer 4 in DESIGN.md) and Vault-compatible Shamir secret
//! sharing.
//!
//! - [`shamir`]: split a key into shares and combine them, byte-compatible with the shares
//!   `bao operator init` prints.
//! - [`Barrier`]: AES-256-GCM over a physical [`kura_storage::Backend`] with a keyring of key
//!   terms; the storage path is the additional authenticated data, keys rotate online, and the
//!   keyring is encrypted with the root key at [`KEYRING_PATH`].

mod barrier;
mod error;
mod keyring;
pub mod shamir;

pub use barrier::{
    decrypt_with_key, encrypt_with_key, Barrier, KeyStatus, DEFAULT_MAX_ENCRYPTIONS, KEYRING_PATH,
    ROOT_KEY_PATH, SEAL_CONFIG_PATH, UPGRADE_PREFIX,
};
pub use error::{BarrierError, Result};
pub use keyring::{generate_key, CIPHERTEXT_VERSION, HEADER_LEN, KEY_LEN, NONCE_LEN, TAG_LEN};
