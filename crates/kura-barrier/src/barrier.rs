//! The encryption barrier: everything stored through it is AES-256-GCM encrypted with the
//! active key of a keyring, and the keyring itself is encrypted with the root key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use kura_storage::{Backend, StorageError, TxnOp};
use zeroize::Zeroizing;

use crate::error::{BarrierError, Result};
use crate::keyring::{parse_header, AeadKey, Keyring, TermKey, ROOT_TERM};

/// Where the keyring lives (encrypted with the root key, this path as AAD).
pub const KEYRING_PATH: &str = "core/keyring";
/// Where the root key lives after a root rekey, encrypted with the then-active term key, so
/// that standbys holding the old root key can follow.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Prefix of upgrade records: `core/upgrade/<term>` holds the key of `term` encrypted with the
/// key of `term - 1`, so a standby can follow rotations it missed.
pub const UPGRADE_PREFIX: &str = "core/upgrade/";
/// Where the caller keeps the seal configuration, in plaintext, through [`Barrier::physical`].
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

/// Encryptions under one key after which it should be rotated (≈ 0.9 · 2³², as Vault uses for
/// random 96-bit GCM nonces). See [`Barrier::needs_rotation`].
pub const DEFAULT_MAX_ENCRYPTIONS: u64 = 3_865_470_566;

/// The state of the active encryption key, as reported by `sys/key-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStatus {
    /// The key term (1 for the first key, +1 per rotation).
    pub term: u32,
    /// When this term was installed.
    pub install_time: SystemTime,
    /// Encryptions performed with this key (counted by every node that wrote with it and
    /// persisted whenever the keyring is written).
    pub encryptions: u64,
}

/// Loaded key material: present only while unsealed.
struct Unsealed {
    root: Arc<AeadKey>,
    ring: Keyring,
}

/// The encryption barrier over a physical backend. Share it as `Arc<Barrier>`.
///
/// Reads take a read lock only long enough to clone an `Arc` of the key material; key changes
/// (rotate, rekey, reload) are serialized among themselves and swap the material atomically.
pub struct Barrier {
    physical: Arc<dyn Backend>,
    state: RwLock<Option<Arc<Unsealed>>>,
    read_only: AtomicBool,
    /// Serializes operations that change or persist the keyring.
    update: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("physical", &self.physical.name())
            .field("sealed", &self.is_sealed())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

fn is_reserved(path: &str) -> bool {
    path == KEYRING_PATH || path == ROOT_KEY_PATH || path.starts_with(UPGRADE_PREFIX)
}

fn check_path(path: &str) -> Result<()> {
    if is_reserved(path) {
        return Err(BarrierError::ReservedPath(path.to_string()));
    }
    Ok(())
}

fn upgrade_path(term: u32) -> String {
    format!("{UPGRADE_PREFIX}{term}")
}

impl Unsealed {
    fn decrypt(&self, path: &str, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let term = parse_header(path, ciphertext)?;
        let key = self
            .ring
            .keys
            .get(&term)
            .ok_or_else(|| BarrierError::UnknownTerm {
                path: path.to_string(),
                term,
            })?;
        key.key.open(path, ciphertext)
    }

    fn encrypt(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.ring.active_key().seal(path, plaintext)
    }

    fn sealed_keyring(&self) -> Result<Vec<u8>> {
        let plain = self.ring.encode();
        self.root.seal(ROOT_TERM, KEYRING_PATH, &plain)
    }
}

/// Decrypts the stored keyring with `root`. A wrong root key gives `InvalidRootKey`.
fn open_keyring(root: &AeadKey, ciphertext: &[u8]) -> Result<Keyring> {
    let term = parse_header(KEYRING_PATH, ciphertext)?;
    if term != ROOT_TERM {
        return Err(BarrierError::CorruptKeyring(
            "keyring not sealed by the root key",
        ));
    }
    let plain = Zeroizing::new(
        root.open(KEYRING_PATH, ciphertext)
            .map_err(|_| BarrierError::InvalidRootKey)?,
    );
    Keyring::decode(&plain)
}

impl Barrier {
    /// Creates a sealed barrier over `physical`.
    pub fn new(physical: Arc<dyn Backend>) -> Self {
        Barrier {
            physical,
            state: RwLock::new(None),
            read_only: AtomicBool::new(false),
            update: tokio::sync::Mutex::new(()),
        }
    }

    /// The physical backend, for the few plaintext entries (seal configuration, HA lock).
    pub fn physical(&self) -> &Arc<dyn Backend> {
        &self.physical
    }

    fn snapshot(&self) -> Result<Arc<Unsealed>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(BarrierError::Sealed)
    }

    /// Replaces the key material, unless the barrier was sealed in the meantime.
    fn install_if_unsealed(&self, next: Unsealed) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.is_some() {
            *state = Some(Arc::new(next));
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(BarrierError::Storage(StorageError::ReadOnly));
        }
        Ok(())
    }

    /// Switches read-only mode (standby): every write then fails with
    /// `BarrierError::Storage(StorageError::ReadOnly)`; reads keep working.
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::Release);
    }

    /// Whether read-only mode is on.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    /// Whether a keyring exists in storage.
    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.physical.get(KEYRING_PATH).await?.is_some())
    }

    /// Creates the keyring (term 1) and stores it encrypted with `root_key` (32 bytes).
    /// The barrier stays sealed; call [`Barrier::unseal`] next.
    pub async fn initialize(&self, root_key: &[u8]) -> Result<()> {
        let _guard = self.update.lock().await;
        self.check_writable()?;
        let root = AeadKey::new(root_key)?;
        if self.is_initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let first = TermKey::generate(1)?;
        let ring = Keyring {
            keys: [(1, Arc::new(first))].into_iter().collect(),
            active: 1,
        };
        let state = Unsealed {
            root: Arc::new(root),
            ring,
        };
        let ct = state.sealed_keyring()?;
        self.physical.put(KEYRING_PATH, ct).await?;
        Ok(())
    }

    /// Loads the keyring with `root_key`. A wrong key gives `InvalidRootKey` and the barrier
    /// stays sealed. Unsealing an unsealed barrier checks the key and changes nothing.
    pub async fn unseal(&self, root_key: &[u8]) -> Result<()> {
        let _guard = self.update.lock().await;
        if let Ok(current) = self.snapshot() {
            return if current.root.ct_eq(root_key) {
                Ok(())
            } else {
                Err(BarrierError::InvalidRootKey)
            };
        }
        let root = AeadKey::new(root_key)?;
        let ct = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let ring = open_keyring(&root, &ct)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Unsealed {
            root: Arc::new(root),
            ring,
        }));
        Ok(())
    }

    /// Seals: drops all key material (zeroized when the last in-flight operation using it ends).
    pub fn seal(&self) {
        let old = self.state.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(old);
    }

    /// Whether the barrier is sealed.
    pub fn is_sealed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Adds a new key term and makes it active: new writes use it, older terms keep
    /// decrypting. Persists the keyring (and an upgrade record for standbys) first. Returns the
    /// new term.
    pub async fn rotate(&self) -> Result<u32> {
        let _guard = self.update.lock().await;
        let current = self.snapshot()?;
        self.check_writable()?;
        let previous = current.ring.active_key().clone();
        let term = current
            .ring
            .max_term()
            .checked_add(1)
            .ok_or(BarrierError::TermExhausted)?;
        let new_key = Arc::new(TermKey::generate(term)?);
        let mut ring = current.ring.clone();
        ring.keys.insert(term, new_key.clone());
        ring.active = term;
        let next = Unsealed {
            root: current.root.clone(),
            ring,
        };
        let keyring_ct = next.sealed_keyring()?;
        let upgrade = upgrade_path(term);
        let upgrade_ct = previous.seal(&upgrade, &new_key.encode_entry())?;
        self.physical
            .transaction(vec![
                TxnOp::Put {
                    key: KEYRING_PATH.to_string(),
                    value: keyring_ct,
                },
                TxnOp::Put {
                    key: upgrade,
                    value: upgrade_ct,
                },
            ])
            .await?;
        self.install_if_unsealed(next);
        Ok(term)
    }

    /// The active key's term, install time and encryption count.
    pub fn key_status(&self) -> Result<KeyStatus> {
        let current = self.snapshot()?;
        let key = current.ring.active_key();
        Ok(KeyStatus {
            term: key.term,
            install_time: key.install_time,
            encryptions: key.encryptions.load(Ordering::Relaxed),
        })
    }

    /// Whether the active key has reached `max_encryptions` and should be rotated.
    pub fn needs_rotation(&self, max_encryptions: u64) -> Result<bool> {
        Ok(self.key_status()?.encryptions >= max_encryptions)
    }

    /// Re-encrypts the keyring with `new_root_key` (32 bytes), which from now on is the key
    /// that unseals. Also stores the new root key at [`ROOT_KEY_PATH`] under the active term so
    /// standbys follow on [`Barrier::reload_keyring`].
    pub async fn rekey_root(&self, new_root_key: &[u8]) -> Result<()> {
        let _guard = self.update.lock().await;
        let current = self.snapshot()?;
        self.check_writable()?;
        let root = AeadKey::new(new_root_key)?;
        let root_ct = current.encrypt(ROOT_KEY_PATH, root.bytes())?;
        let next = Unsealed {
            root: Arc::new(root),
            ring: current.ring.clone(),
        };
        let keyring_ct = next.sealed_keyring()?;
        self.physical
            .transaction(vec![
                TxnOp::Put {
                    key: KEYRING_PATH.to_string(),
                    value: keyring_ct,
                },
                TxnOp::Put {
                    key: ROOT_KEY_PATH.to_string(),
                    value: root_ct,
                },
            ])
            .await?;
        self.install_if_unsealed(next);
        Ok(())
    }

    /// Writes the keyring again so the encryption counts survive a restart (call it
    /// periodically on the active node, and before stepping down).
    pub async fn persist_encryptions(&self) -> Result<()> {
        let _guard = self.update.lock().await;
        let current = self.snapshot()?;
        self.check_writable()?;
        let ct = current.sealed_keyring()?;
        self.physical.put(KEYRING_PATH, ct).await?;
        Ok(())
    }

    /// Encrypts `plaintext` with the active key, bound to `path` as storage values are, without
    /// storing it (the sealed checksums of a raft snapshot).
    pub fn encrypt_value(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.snapshot()?.encrypt(path, plaintext)
    }

    /// Whether `keyring` (an encrypted keyring as stored at [`KEYRING_PATH`], e.g. from a
    /// snapshot) opens with this barrier's root key: it belongs to the same cluster.
    pub fn opens_keyring(&self, keyring: &[u8]) -> bool {
        match self.snapshot() {
            Ok(current) => open_keyring(&current.root, keyring).is_ok(),
            Err(_) => false,
        }
    }

    /// Re-reads the keyring from storage (a standby does this when `core/keyring` changes).
    /// Follows rotations and root rekeys made by the active node; keeps the larger of the local
    /// and stored encryption counts.
    pub async fn reload_keyring(&self) -> Result<()> {
        let _guard = self.update.lock().await;
        let current = self.snapshot()?;
        let ct = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let (root, stored) = match open_keyring(&current.root, &ct) {
            Ok(ring) => (current.root.clone(), ring),
            Err(BarrierError::InvalidRootKey) => {
                let root = Arc::new(self.follow_root_rekey(&current).await?);
                let ring = open_keyring(&root, &ct)?;
                (root, ring)
            }
            Err(e) => return Err(e),
        };
        let mut ring = stored;
        for (term, key) in ring.keys.iter_mut() {
            if let Some(local) = current.ring.keys.get(term) {
                if local.key.ct_eq(key.key.bytes()) {
                    local
                        .encryptions
                        .fetch_max(key.encryptions.load(Ordering::Relaxed), Ordering::Relaxed);
                    *key = local.clone();
                }
            }
        }
        self.install_if_unsealed(Unsealed { root, ring });
        Ok(())
    }

    /// Recovers the root key written by [`Barrier::rekey_root`] on another node: applies the
    /// upgrade records for terms this node has not seen, then decrypts [`ROOT_KEY_PATH`].
    async fn follow_root_rekey(&self, current: &Unsealed) -> Result<AeadKey> {
        let mut ring = current.ring.clone();
        loop {
            let prev_term = ring.max_term();
            let Some(next_term) = prev_term.checked_add(1) else {
                break;
            };
            let path = upgrade_path(next_term);
            let Some(ct) = self.physical.get(&path).await? else {
                break;
            };
            let prev = ring.keys[&prev_term].clone();
            let plain = Zeroizing::new(prev.key.open(&path, &ct)?);
            let key = TermKey::decode_entry(&plain)?;
            if key.term != next_term {
                return Err(BarrierError::CorruptKeyring(
                    "upgrade record names another term",
                ));
            }
            ring.keys.insert(next_term, Arc::new(key));
        }
        let ct = self
            .physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::InvalidRootKey)?;
        let view = Unsealed {
            root: current.root.clone(),
            ring,
        };
        let plain = Zeroizing::new(view.decrypt(ROOT_KEY_PATH, &ct)?);
        AeadKey::new(&plain)
    }

    /// Reads and decrypts `key`; `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_path(key)?;
        let current = self.snapshot()?;
        match self.physical.get(key).await? {
            Some(ct) => Ok(Some(current.decrypt(key, &ct)?)),
            None => Ok(None),
        }
    }

    /// Encrypts and writes `value` at `key`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        check_path(key)?;
        let current = self.snapshot()?;
        self.check_writable()?;
        let ct = current.encrypt(key, value)?;
        self.physical.put(key, ct).await?;
        Ok(())
    }

    /// Deletes `key` (no error if absent).
    pub async fn delete(&self, key: &str) -> Result<()> {
        check_path(key)?;
        self.snapshot()?;
        self.check_writable()?;
        self.physical.delete(key).await?;
        Ok(())
    }

    /// Lists the immediate children of `prefix` (same rules as [`Backend::list`]).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.snapshot()?;
        Ok(self.physical.list(prefix).await?)
    }

    /// Applies puts (plaintext values, encrypted here) and deletes atomically, in order.
    pub async fn transaction(&self, ops: Vec<TxnOp>) -> Result<()> {
        for op in &ops {
            check_path(op.key())?;
        }
        let current = self.snapshot()?;
        self.check_writable()?;
        let mut sealed = Vec::with_capacity(ops.len());
        for op in ops {
            sealed.push(match op {
                TxnOp::Put { key, value } => {
                    let value = Zeroizing::new(value);
                    let ct = current.encrypt(&key, &value)?;
                    TxnOp::Put { key, value: ct }
                }
                TxnOp::Delete { key } => TxnOp::Delete { key },
            });
        }
        self.physical.transaction(sealed).await?;
        Ok(())
    }
}

/// Encrypts `plaintext` with a caller-held 32-byte key, bound to `path` (same layout as barrier
/// values, term 0). For material stored outside the keyring, e.g. wrapped by an unseal key.
pub fn encrypt_with_key(key: &[u8], path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
    AeadKey::new(key)?.seal(ROOT_TERM, path, plaintext)
}

/// Decrypts a value made by [`encrypt_with_key`] with the same key and path.
pub fn decrypt_with_key(key: &[u8], path: &str, ciphertext: &[u8]) -> Result<Vec<u8>> {
    let aead = AeadKey::new(key)?;
    let term = parse_header(path, ciphertext)?;
    if term != ROOT_TERM {
        return Err(BarrierError::UnknownTerm {
            path: path.to_string(),
            term,
        });
    }
    aead.open(path, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HEADER_LEN, TAG_LEN};
    use kura_storage::InmemBackend;

    const ROOT: [u8; 32] = [0x11; 32];

    fn new_store() -> Arc<InmemBackend> {
        Arc::new(InmemBackend::new())
    }

    async fn unsealed(store: &Arc<InmemBackend>) -> Barrier {
        let barrier = Barrier::new(store.clone());
        barrier.initialize(&ROOT).await.unwrap();
        barrier.unseal(&ROOT).await.unwrap();
        barrier
    }

    fn raw(store: &InmemBackend, key: &str) -> Option<Vec<u8>> {
        store
            .dump()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[tokio::test]
    async fn lifecycle_and_round_trip() {
        let store = new_store();
        let barrier = Barrier::new(store.clone());
        assert!(!barrier.is_initialized().await.unwrap());
        assert!(barrier.is_sealed());
        assert_eq!(
            barrier.unseal(&ROOT).await,
            Err(BarrierError::NotInitialized)
        );
        barrier.initialize(&ROOT).await.unwrap();
        assert!(barrier.is_initialized().await.unwrap());
        assert!(barrier.is_sealed(), "initialize leaves the barrier sealed");
        assert_eq!(
            barrier.initialize(&ROOT).await,
            Err(BarrierError::AlreadyInitialized)
        );
        barrier.unseal(&ROOT).await.unwrap();
        assert!(!barrier.is_sealed());

        barrier.put("secret/a", b"alpha").await.unwrap();
        barrier.put("secret/dir/b", b"").await.unwrap();
        assert_eq!(barrier.get("secret/a").await.unwrap().unwrap(), b"alpha");
        assert_eq!(barrier.get("secret/dir/b").await.unwrap().unwrap(), b"");
        assert_eq!(barrier.get("secret/missing").await.unwrap(), None);
        assert_eq!(barrier.list("secret/").await.unwrap(), vec!["a", "dir/"]);
        barrier.delete("secret/a").await.unwrap();
        barrier.delete("secret/a").await.unwrap();
        assert_eq!(barrier.get("secret/a").await.unwrap(), None);

        barrier
            .transaction(vec![
                TxnOp::Put {
                    key: "t/x".into(),
                    value: b"1".to_vec(),
                },
                TxnOp::Put {
                    key: "t/y".into(),
                    value: b"2".to_vec(),
                },
                TxnOp::Delete { key: "t/x".into() },
            ])
            .await
            .unwrap();
        assert_eq!(barrier.get("t/x").await.unwrap(), None);
        assert_eq!(barrier.get("t/y").await.unwrap().unwrap(), b"2");
        // The raw value is a ciphertext with the active term.
        let ct = raw(&store, "t/y").unwrap();
        assert_eq!(&ct[..4], &1u32.to_be_bytes());
        assert_eq!(ct.len(), HEADER_LEN + 1 + TAG_LEN);
    }

    #[tokio::test]
    async fn wrong_root_key_stays_sealed() {
        let store = new_store();
        let barrier = Barrier::new(store.clone());
        barrier.initialize(&ROOT).await.unwrap();
        assert_eq!(
            barrier.unseal(&[0x22; 32]).await,
            Err(BarrierError::InvalidRootKey)
        );
        assert!(barrier.is_sealed());
        assert_eq!(
            barrier.unseal(&[0x11; 31]).await,
            Err(BarrierError::InvalidKeyLength {
                expected: 32,
                got: 31
            })
        );
        assert!(barrier.is_sealed());
        barrier.unseal(&ROOT).await.unwrap();
        // Unsealing again checks the key without changing state.
        barrier.unseal(&ROOT).await.unwrap();
        assert_eq!(
            barrier.unseal(&[0x22; 32]).await,
            Err(BarrierError::InvalidRootKey)
        );
        assert!(!barrier.is_sealed());
    }

    #[tokio::test]
    async fn path_is_authenticated() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        barrier.put("kv/one", b"value one").await.unwrap();
        let ct = raw(&store, "kv/one").unwrap();
        store.put("kv/two", ct).await.unwrap();
        assert_eq!(
            barrier.get("kv/two").await,
            Err(BarrierError::Decrypt {
                path: "kv/two".into()
            })
        );
        assert_eq!(barrier.get("kv/one").await.unwrap().unwrap(), b"value one");
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        barrier.put("kv/x", b"some plaintext").await.unwrap();
        let ct = raw(&store, "kv/x").unwrap();
        // Every byte of nonce, ciphertext and tag is authenticated.
        for i in 5..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            store.put("kv/x", bad).await.unwrap();
            assert_eq!(
                barrier.get("kv/x").await,
                Err(BarrierError::Decrypt {
                    path: "kv/x".into()
                }),
                "byte {i}"
            );
        }
        let mut bad = ct.clone();
        bad[3] ^= 0x04; // term 1 -> 5
        store.put("kv/x", bad).await.unwrap();
        assert_eq!(
            barrier.get("kv/x").await,
            Err(BarrierError::UnknownTerm {
                path: "kv/x".into(),
                term: 5
            })
        );
        let mut bad = ct.clone();
        bad[4] = 1;
        store.put("kv/x", bad).await.unwrap();
        assert_eq!(
            barrier.get("kv/x").await,
            Err(BarrierError::UnsupportedVersion {
                path: "kv/x".into(),
                version: 1
            })
        );
        store
            .put("kv/x", ct[..HEADER_LEN + 15].to_vec())
            .await
            .unwrap();
        assert_eq!(
            barrier.get("kv/x").await,
            Err(BarrierError::MalformedCiphertext {
                path: "kv/x".into()
            })
        );
        store.put("kv/x", ct).await.unwrap();
        assert_eq!(
            barrier.get("kv/x").await.unwrap().unwrap(),
            b"some plaintext"
        );
    }

    #[tokio::test]
    async fn rotate_keeps_old_terms_readable() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        let before = barrier.key_status().unwrap();
        assert_eq!(before.term, 1);
        barrier.put("kv/old", b"old").await.unwrap();
        assert_eq!(barrier.key_status().unwrap().encryptions, 1);

        assert_eq!(barrier.rotate().await.unwrap(), 2);
        let after = barrier.key_status().unwrap();
        assert_eq!(after.term, 2);
        assert_eq!(after.encryptions, 0);
        assert!(after.install_time >= before.install_time);
        barrier.put("kv/new", b"new").await.unwrap();
        assert_eq!(&raw(&store, "kv/new").unwrap()[..4], &2u32.to_be_bytes());
        assert_eq!(&raw(&store, "kv/old").unwrap()[..4], &1u32.to_be_bytes());
        assert_eq!(barrier.get("kv/old").await.unwrap().unwrap(), b"old");
        assert_eq!(barrier.get("kv/new").await.unwrap().unwrap(), b"new");
        assert_eq!(barrier.key_status().unwrap().encryptions, 1);
        assert_eq!(barrier.rotate().await.unwrap(), 3);
        assert_eq!(barrier.get("kv/old").await.unwrap().unwrap(), b"old");
    }

    #[tokio::test]
    async fn keyring_persists_across_instances() {
        let store = new_store();
        let first = unsealed(&store).await;
        first.put("kv/a", b"term one").await.unwrap();
        first.rotate().await.unwrap();
        first.put("kv/b", b"term two").await.unwrap();
        first.persist_encryptions().await.unwrap();
        first.seal();

        let second = Barrier::new(store.clone());
        assert!(second.is_initialized().await.unwrap());
        second.unseal(&ROOT).await.unwrap();
        let status = second.key_status().unwrap();
        assert_eq!(status.term, 2);
        assert_eq!(status.encryptions, 1);
        assert_eq!(second.get("kv/a").await.unwrap().unwrap(), b"term one");
        assert_eq!(second.get("kv/b").await.unwrap().unwrap(), b"term two");
    }

    #[tokio::test]
    async fn sealed_refuses_everything() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        barrier.put("kv/a", b"x").await.unwrap();
        barrier.seal();
        assert!(barrier.is_sealed());
        assert_eq!(barrier.get("kv/a").await, Err(BarrierError::Sealed));
        assert_eq!(barrier.put("kv/a", b"y").await, Err(BarrierError::Sealed));
        assert_eq!(barrier.delete("kv/a").await, Err(BarrierError::Sealed));
        assert_eq!(barrier.list("kv/").await, Err(BarrierError::Sealed));
        assert_eq!(
            barrier
                .transaction(vec![TxnOp::Delete { key: "kv/a".into() }])
                .await,
            Err(BarrierError::Sealed)
        );
        assert_eq!(barrier.rotate().await, Err(BarrierError::Sealed));
        assert_eq!(barrier.key_status(), Err(BarrierError::Sealed));
        assert_eq!(
            barrier.rekey_root(&[3; 32]).await,
            Err(BarrierError::Sealed)
        );
        assert_eq!(barrier.reload_keyring().await, Err(BarrierError::Sealed));
        assert!(barrier.get("kv/a").await.unwrap_err().is_sealed());
        barrier.unseal(&ROOT).await.unwrap();
        assert_eq!(barrier.get("kv/a").await.unwrap().unwrap(), b"x");
    }

    #[tokio::test]
    async fn read_only_refuses_writes_only() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        barrier.put("kv/a", b"x").await.unwrap();
        barrier.set_read_only(true);
        assert!(barrier.is_read_only());
        let ro = Err(BarrierError::Storage(StorageError::ReadOnly));
        assert_eq!(barrier.put("kv/a", b"y").await, ro);
        assert_eq!(barrier.delete("kv/a").await, ro);
        assert_eq!(
            barrier
                .transaction(vec![TxnOp::Delete { key: "kv/a".into() }])
                .await,
            ro
        );
        assert!(barrier.rotate().await.unwrap_err().is_read_only());
        assert!(barrier
            .rekey_root(&[3; 32])
            .await
            .unwrap_err()
            .is_read_only());
        assert!(barrier
            .persist_encryptions()
            .await
            .unwrap_err()
            .is_read_only());
        assert_eq!(barrier.get("kv/a").await.unwrap().unwrap(), b"x");
        assert_eq!(barrier.list("kv/").await.unwrap(), vec!["a"]);
        assert_eq!(barrier.key_status().unwrap().term, 1);
        barrier.set_read_only(false);
        barrier.put("kv/a", b"y").await.unwrap();
        assert_eq!(barrier.get("kv/a").await.unwrap().unwrap(), b"y");

        let other = Barrier::new(new_store());
        other.set_read_only(true);
        assert!(other.initialize(&ROOT).await.unwrap_err().is_read_only());
    }

    #[tokio::test]
    async fn reserved_paths_are_not_reachable() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        for path in [KEYRING_PATH, ROOT_KEY_PATH, "core/upgrade/2"] {
            let err = Err(BarrierError::ReservedPath(path.to_string()));
            assert_eq!(barrier.get(path).await.map(|_| ()), err);
            assert_eq!(barrier.put(path, b"x").await, err);
            assert_eq!(barrier.delete(path).await, err);
        }
        // The keyring is untouched and still unseals.
        barrier.seal();
        barrier.unseal(&ROOT).await.unwrap();
    }

    #[tokio::test]
    async fn no_plaintext_reaches_storage() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        let needle = b"kura-canary-7f3e9a1c-do-not-store-in-plaintext";
        barrier.put("secret/canary", needle).await.unwrap();
        barrier
            .transaction(vec![TxnOp::Put {
                key: "secret/canary2".into(),
                value: [&b"prefix "[..], needle, b" suffix"].concat(),
            }])
            .await
            .unwrap();
        barrier.rotate().await.unwrap();
        barrier.put("secret/canary3", needle).await.unwrap();
        barrier.rekey_root(&[0x33; 32]).await.unwrap();
        let status_key_bytes: Vec<Vec<u8>> = {
            let current = barrier.snapshot().unwrap();
            current
                .ring
                .keys
                .values()
                .map(|k| k.key.bytes().to_vec())
                .collect()
        };
        let dump = store.dump();
        assert!(dump.len() >= 6);
        let contains = |hay: &[u8], pin: &[u8]| hay.windows(pin.len()).any(|w| w == pin);
        for (key, value) in &dump {
            assert!(!contains(value, needle), "plaintext found at {key}");
            assert!(!contains(value, &ROOT), "root key found at {key}");
            assert!(!contains(value, &[0x33; 32]), "new root key found at {key}");
            for k in &status_key_bytes {
                assert!(!contains(value, k), "a data key found at {key}");
            }
        }
        assert_eq!(barrier.get("secret/canary").await.unwrap().unwrap(), needle);
    }

    #[tokio::test]
    async fn rekey_root_changes_the_unseal_key() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        barrier.put("kv/a", b"x").await.unwrap();
        let new_root = [0x44; 32];
        assert_eq!(
            barrier.rekey_root(&[1; 16]).await,
            Err(BarrierError::InvalidKeyLength {
                expected: 32,
                got: 16
            })
        );
        barrier.rekey_root(&new_root).await.unwrap();
        assert_eq!(barrier.get("kv/a").await.unwrap().unwrap(), b"x");
        barrier.seal();
        assert_eq!(
            barrier.unseal(&ROOT).await,
            Err(BarrierError::InvalidRootKey)
        );
        barrier.unseal(&new_root).await.unwrap();
        assert_eq!(barrier.get("kv/a").await.unwrap().unwrap(), b"x");
    }

    #[tokio::test]
    async fn standby_follows_rotation() {
        let store = new_store();
        let active = unsealed(&store).await;
        let standby = Barrier::new(store.clone());
        standby.unseal(&ROOT).await.unwrap();
        standby.set_read_only(true);

        active.rotate().await.unwrap();
        active.put("kv/new", b"after rotate").await.unwrap();
        assert_eq!(
            standby.get("kv/new").await,
            Err(BarrierError::UnknownTerm {
                path: "kv/new".into(),
                term: 2
            })
        );
        standby.reload_keyring().await.unwrap();
        assert_eq!(standby.key_status().unwrap().term, 2);
        assert_eq!(
            standby.get("kv/new").await.unwrap().unwrap(),
            b"after rotate"
        );
    }

    #[tokio::test]
    async fn standby_follows_root_rekey_after_missed_rotations() {
        let store = new_store();
        let active = unsealed(&store).await;
        let standby = Barrier::new(store.clone());
        standby.unseal(&ROOT).await.unwrap();
        standby.set_read_only(true);

        // The standby misses two rotations and a root rekey.
        active.rotate().await.unwrap();
        active.rotate().await.unwrap();
        let new_root = [0x55; 32];
        active.rekey_root(&new_root).await.unwrap();
        active.put("kv/latest", b"term three").await.unwrap();

        standby.reload_keyring().await.unwrap();
        assert_eq!(standby.key_status().unwrap().term, 3);
        assert_eq!(
            standby.get("kv/latest").await.unwrap().unwrap(),
            b"term three"
        );
        // It now holds the new root key.
        standby.unseal(&new_root).await.unwrap();
        assert_eq!(
            standby.unseal(&ROOT).await,
            Err(BarrierError::InvalidRootKey)
        );
    }

    #[tokio::test]
    async fn reload_on_the_active_keeps_counts() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        for i in 0..5 {
            barrier.put(&format!("kv/{i}"), b"v").await.unwrap();
        }
        barrier.reload_keyring().await.unwrap();
        assert_eq!(barrier.key_status().unwrap().encryptions, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_and_writes_during_rotation() {
        let store = new_store();
        let barrier = Arc::new(unsealed(&store).await);
        let mut tasks = Vec::new();
        for t in 0..4 {
            let b = barrier.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let key = format!("kv/{t}/{i}");
                    let value = format!("{t}-{i}");
                    b.put(&key, value.as_bytes()).await.unwrap();
                    assert_eq!(b.get(&key).await.unwrap().unwrap(), value.as_bytes());
                }
            }));
        }
        for _ in 0..5 {
            barrier.rotate().await.unwrap();
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(barrier.key_status().unwrap().term, 6);
        for t in 0..4 {
            for i in 0..50 {
                let got = barrier.get(&format!("kv/{t}/{i}")).await.unwrap().unwrap();
                assert_eq!(got, format!("{t}-{i}").as_bytes());
            }
        }
    }

    #[tokio::test]
    async fn needs_rotation_threshold() {
        let store = new_store();
        let barrier = unsealed(&store).await;
        assert!(!barrier.needs_rotation(2).unwrap());
        barrier.put("kv/a", b"1").await.unwrap();
        barrier.put("kv/b", b"2").await.unwrap();
        assert!(barrier.needs_rotation(2).unwrap());
        barrier.rotate().await.unwrap();
        assert!(!barrier.needs_rotation(2).unwrap());
    }

    #[test]
    fn standalone_encryption() {
        let key = [9u8; 32];
        let ct = encrypt_with_key(&key, "core/x", b"wrapped").unwrap();
        assert_eq!(decrypt_with_key(&key, "core/x", &ct).unwrap(), b"wrapped");
        assert!(matches!(
            decrypt_with_key(&[8u8; 32], "core/x", &ct),
            Err(BarrierError::Decrypt { .. })
        ));
        assert!(matches!(
            decrypt_with_key(&key, "core/y", &ct),
            Err(BarrierError::Decrypt { .. })
        ));
    }

    #[test]
    fn error_helpers() {
        assert!(BarrierError::Storage(StorageError::ReadOnly).is_read_only());
        assert!(!BarrierError::Storage(StorageError::NotLeader).is_read_only());
        assert!(!BarrierError::Sealed.is_read_only());
        let from: BarrierError = StorageError::ReadOnly.into();
        assert!(from.is_read_only());
    }
}
