//! The barrier's error type.

use kura_storage::StorageError;

/// Errors returned by the [`Barrier`](crate::Barrier). Callers match on variants, never text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// The barrier is sealed: no key material is loaded.
    #[error("barrier is sealed")]
    Sealed,
    /// No keyring exists in storage yet.
    #[error("barrier is not initialized")]
    NotInitialized,
    /// A keyring already exists in storage.
    #[error("barrier is already initialized")]
    AlreadyInitialized,
    /// The root key does not decrypt the keyring (or does not match the loaded one).
    #[error("invalid root key")]
    InvalidRootKey,
    /// A key has the wrong length.
    #[error("key must be {expected} bytes, got {got}")]
    InvalidKeyLength {
        /// Required length in bytes.
        expected: usize,
        /// Length supplied.
        got: usize,
    },
    /// A stored value is too short to be a barrier ciphertext.
    #[error("malformed ciphertext at {path:?}")]
    MalformedCiphertext {
        /// The storage path read.
        path: String,
    },
    /// A ciphertext names a format version this barrier does not know.
    #[error("unsupported ciphertext version {version} at {path:?}")]
    UnsupportedVersion {
        /// The storage path read.
        path: String,
        /// The version byte found.
        version: u8,
    },
    /// A ciphertext was written with a key term that is not in the keyring.
    #[error("unknown key term {term} at {path:?}")]
    UnknownTerm {
        /// The storage path read.
        path: String,
        /// The term found.
        term: u32,
    },
    /// Authentication failed: the value was tampered with, moved from another path, or
    /// encrypted under a different key.
    #[error("failed to decrypt value at {path:?}")]
    Decrypt {
        /// The storage path read.
        path: String,
    },
    /// The keyring decrypted but its contents are invalid.
    #[error("corrupt keyring: {0}")]
    CorruptKeyring(&'static str),
    /// The path belongs to the barrier's own bookkeeping and is not reachable through the
    /// secure storage API.
    #[error("path {0:?} is reserved by the barrier")]
    ReservedPath(String),
    /// All key terms are used up (u32 overflow).
    #[error("key term space exhausted")]
    TermExhausted,
    /// The cryptographic library failed (random generation or key setup).
    #[error("cryptographic operation failed")]
    Crypto,
    /// The physical backend failed; `Storage(StorageError::ReadOnly)` marks a read-only node.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BarrierError {
    /// True for the read-only error a standby returns on writes (forward the request).
    pub fn is_read_only(&self) -> bool {
        matches!(self, BarrierError::Storage(StorageError::ReadOnly))
    }

    /// True when the barrier is sealed.
    pub fn is_sealed(&self) -> bool {
        matches!(self, BarrierError::Sealed)
    }
}

/// Result type of barrier operations.
pub type Result<T> = std::result::Result<T, BarrierError>;
