//! Bounded caches of parsed state: the signing issuers (certificate, key, chain) and roles.
//!
//! Entries are dropped wholesale on any write the node makes and on every invalidation. A
//! generation counter keeps a load that raced with a clear from putting stale state back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rcgen::{Issuer, KeyPair};
use time::OffsetDateTime;

use crate::model::{IssuerEntry, Role, UrlsConfig};

/// Most issuers kept parsed at once.
pub const MAX_SIGNERS: usize = 64;
/// Most roles kept at once.
pub const MAX_ROLES: usize = 1024;

/// An issuer ready to sign: its entry, parsed key and certificate, and its chain.
pub struct Signer {
    /// The stored issuer.
    pub entry: IssuerEntry,
    /// rcgen's issuer (subject, key identifier, key).
    pub issuer: Issuer<'static, KeyPair>,
    /// PEMs from this issuer up to its root, each without a trailing newline.
    pub chain: Vec<String>,
    /// The issuer certificate's notAfter.
    pub not_after: OffsetDateTime,
    /// The issuer's key type (`rsa`, `ec`, `ed25519`).
    pub key_type: &'static str,
    /// The mount's AIA / CRL URLs when the signer was loaded.
    pub urls: UrlsConfig,
}

/// The caches of one mount.
#[derive(Default)]
pub struct Caches {
    generation: AtomicU64,
    signers: RwLock<HashMap<String, Arc<Signer>>>,
    roles: RwLock<HashMap<String, Arc<Role>>>,
}

impl Caches {
    /// Current generation; pass it back to the `put_*` calls.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut m) = self.signers.write() {
            m.clear();
        }
        if let Ok(mut m) = self.roles.write() {
            m.clear();
        }
    }

    /// A cached signer by issuer reference (`default`, id or name as it was looked up).
    pub fn signer(&self, reference: &str) -> Option<Arc<Signer>> {
        self.signers.read().ok()?.get(reference).cloned()
    }

    /// Caches a signer under a reference, unless a clear happened since `generation`.
    pub fn put_signer(&self, generation: u64, reference: &str, s: Arc<Signer>) {
        if let Ok(mut m) = self.signers.write() {
            if self.generation() != generation {
                return;
            }
            if m.len() >= MAX_SIGNERS {
                m.clear();
            }
            m.insert(reference.to_string(), s);
        }
    }

    /// A cached role.
    pub fn role(&self, name: &str) -> Option<Arc<Role>> {
        self.roles.read().ok()?.get(name).cloned()
    }

    /// Caches a role, unless a clear happened since `generation`.
    pub fn put_role(&self, generation: u64, name: &str, r: Arc<Role>) {
        if let Ok(mut m) = self.roles.write() {
            if self.generation() != generation {
                return;
            }
            if m.len() >= MAX_ROLES {
                m.clear();
            }
            m.insert(name.to_string(), r);
        }
    }
}
