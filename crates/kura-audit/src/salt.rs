//! Per-device salts and the HMAC-SHA256 they key.
//!
//! Every audit device hashes sensitive strings as `hmac-sha256:<hex>` where the HMAC key is
//! the device's salt. The salt is random, made once per device, and must be kept (inside the
//! barrier) by the caller so hashes stay comparable across restarts: Kura's core loads or
//! creates it and hands it over in a [`crate::DeviceSpec`].

use std::fmt;

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::AuditError;

/// The prefix of every hashed value.
pub const HMAC_PREFIX: &str = "hmac-sha256:";

/// Length in bytes of a salt made by [`Salt::generate`].
pub const SALT_LEN: usize = 32;

/// A device's salt: the HMAC key of its hashes. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(Zeroizing<Vec<u8>>);

impl Salt {
    /// A new random salt of [`SALT_LEN`] bytes from the system generator.
    pub fn generate() -> Result<Salt, AuditError> {
        let mut bytes = Zeroizing::new(vec![0u8; SALT_LEN]);
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AuditError::Random)?;
        Ok(Salt(bytes))
    }

    /// A salt from stored bytes (as the caller persisted [`Salt::as_bytes`]).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Salt {
        Salt(Zeroizing::new(bytes.into()))
    }

    /// The raw bytes, to persist inside the barrier.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True when the salt has no bytes (refused when a device is built).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

/// An HMAC-SHA256 key made from a salt; hashes strings as `hmac-sha256:<hex>`.
pub(crate) struct Hasher {
    key: hmac::Key,
}

impl Hasher {
    /// The hasher of `salt`.
    pub(crate) fn new(salt: &Salt) -> Hasher {
        Hasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes()),
        }
    }

    /// `hmac-sha256:` followed by the lowercase hex HMAC of `input`.
    pub(crate) fn hash(&self, input: &str) -> String {
        let tag = hmac::sign(&self.key, input.as_bytes());
        let mut out = String::with_capacity(HMAC_PREFIX.len() + 64);
        out.push_str(HMAC_PREFIX);
        out.push_str(&hex::encode(tag.as_ref()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let h = Hasher::new(&Salt::from_bytes(b"Jefe".to_vec()));
        assert_eq!(
            h.hash("what do ya want for nothing?"),
            "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn generated_salts_differ_and_have_the_right_length() {
        let a = Salt::generate().unwrap();
        let b = Salt::generate().unwrap();
        assert_eq!(a.as_bytes().len(), SALT_LEN);
        assert_ne!(a, b);
        assert_ne!(Hasher::new(&a).hash("x"), Hasher::new(&b).hash("x"));
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Salt::from_bytes(b"very-secret-salt".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret-salt"));
        assert_eq!(shown, "Salt(<redacted>)");
    }
}
