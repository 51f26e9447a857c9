//! The transit backend: its path table, the key cache and the request handlers.
//!
//! Storage layout (relative to the mount's view):
//! - `policy/<name>` — one [`StoredKey`] per named key, every available version inside;
//! - `config/keys` — `{"disable_upsert": bool}`;
//! - `config/cache` — `{"size": n}` as set through `cache-config`.
//!
//! Parsed keys are kept in a byte-bounded LRU cache. A write replaces the cached entry under
//! the backend's write lock; [`LogicalBackend::invalidate`] drops an entry written elsewhere;
//! a load that raced a change does not install what it read (a generation counter).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kura_logical::helpers::{list_response, now_nanos, rfc3339_nanos, warn_unknown};
use kura_logical::{
    BackendConfig, FieldData, FieldSpec, FieldType, LogicalBackend, LogicalError, Map, Operation,
    PathSpec, PathTable, Request, Response, Result, Storage, StorageExt,
};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::crypto::{self, EncryptParams, Marshaling, RsaPadding, SaltLength, SignParams};
use crate::keys::{generate_version, random_bytes, BackupInfo, KeyType, LoadedKey, StoredKey};
use crate::util::{self, b64, pem, split_versioned, unb64, versioned, HashAlg};

/// Byte bound of the parsed-key cache of one mount.
pub const KEY_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Largest request to `random`.
const MAX_RANDOM_BYTES: i64 = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    KeysList,
    Key,
    KeyConfig,
    KeyRotate,
    KeyTrim,
    Encrypt,
    Decrypt,
    Rewrap,
    Datakey,
    Hmac,
    Sign,
    Verify,
    Random,
    Hash,
    Export,
    Backup,
    Restore,
    CacheConfig,
    ConfigKeys,
}

struct KeyCache {
    lru: lru::LruCache<String, Arc<LoadedKey>>,
    bytes: usize,
    max_bytes: usize,
    generation: u64,
}

impl KeyCache {
    fn forget(&mut self, name: &str) {
        self.generation += 1;
        if let Some(old) = self.lru.pop(name) {
            self.bytes -= old.size;
        }
    }

    fn insert(&mut self, generation: u64, name: &str, key: Arc<LoadedKey>) {
        if generation != self.generation || key.size > self.max_bytes / 4 {
            return;
        }
        self.bytes += key.size;
        if let Some(old) = self.lru.put(name.to_string(), key) {
            self.bytes -= old.size;
        }
        while self.bytes > self.max_bytes {
            match self.lru.pop_lru() {
                Some((_, k)) => self.bytes -= k.size,
                None => break,
            }
        }
    }
}

/// The transit secrets engine mounted at one path.
pub struct TransitBackend {
    storage: Arc<dyn Storage>,
    table: PathTable<P>,
    cache: Mutex<KeyCache>,
    write_lock: tokio::sync::Mutex<()>,
}

fn fs(name: &'static str, kind: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec::new(name, kind, description)
}

fn name_field() -> FieldSpec {
    fs("name", FieldType::String, "Name of the key")
}

fn batch_field() -> FieldSpec {
    fs(
        "batch_input",
        FieldType::Raw,
        "List of items to process in one request",
    )
}

fn sign_fields() -> Vec<FieldSpec> {
    vec![
        name_field(),
        fs("input", FieldType::String, "Base64-encoded input"),
        fs(
            "context",
            FieldType::String,
            "Base64-encoded derivation context",
        ),
        fs(
            "key_version",
            FieldType::Int,
            "Key version to use (0: latest)",
        ),
        fs("hash_algorithm", FieldType::String, "Hash algorithm"),
        fs(
            "algorithm",
            FieldType::String,
            "Deprecated alias of hash_algorithm",
        ),
        fs(
            "urlalgorithm",
            FieldType::String,
            "Hash algorithm (from the URL)",
        ),
        fs("prehashed", FieldType::Bool, "The input is already hashed"),
        fs(
            "signature_algorithm",
            FieldType::String,
            "RSA padding: pss or pkcs1v15",
        ),
        fs(
            "marshaling_algorithm",
            FieldType::String,
            "ECDSA encoding: asn1 or jws",
        ),
        fs(
            "salt_length",
            FieldType::String,
            "PSS salt length: auto, hash or a number",
        ),
        fs("signature", FieldType::String, "Signature to verify"),
        fs("hmac", FieldType::String, "HMAC to verify"),
        fs(
            "reference",
            FieldType::String,
            "Reference echoed in batch results",
        ),
        batch_field(),
    ]
}

fn table() -> PathTable<P> {
    use FieldType as T;
    use Operation as O;
    let w = &[O::Update];
    PathTable::new(vec![
        (
            PathSpec::new("keys/?", &[O::List], "Manage named encryption keys"),
            P::KeysList,
        ),
        (
            PathSpec::new(
                "keys/(?P<name>[^/]+)",
                &[O::Update, O::Read, O::Delete],
                "Manage named encryption keys",
            )
            .fields(vec![
                name_field(),
                fs("type", T::String, "Key type"),
                fs("derived", T::Bool, "Derive per-request keys from a context"),
                fs("convergent_encryption", T::Bool, "Deterministic encryption"),
                fs("exportable", T::Bool, "Allow exporting the key"),
                fs("allow_plaintext_backup", T::Bool, "Allow plaintext backups"),
                fs(
                    "auto_rotate_period",
                    T::Duration,
                    "Automatic rotation period",
                ),
                fs("key_size", T::Int, "HMAC key size in bytes"),
                fs("context", T::String, "Deprecated"),
                fs("managed_key_name", T::String, "Unsupported"),
                fs("managed_key_id", T::String, "Unsupported"),
            ]),
            P::Key,
        ),
        (
            PathSpec::new("keys/(?P<name>[^/]+)/config", w, "Configure a named key").fields(vec![
                name_field(),
                fs(
                    "min_decryption_version",
                    T::Int,
                    "Oldest version that decrypts",
                ),
                fs(
                    "min_encryption_version",
                    T::Int,
                    "Oldest version that encrypts",
                ),
                fs("deletion_allowed", T::Bool, "Allow deletion"),
                fs("exportable", T::Bool, "Allow export"),
                fs("allow_plaintext_backup", T::Bool, "Allow plaintext backups"),
                fs(
                    "auto_rotate_period",
                    T::Duration,
                    "Automatic rotation period",
                ),
            ]),
            P::KeyConfig,
        ),
        (
            PathSpec::new("keys/(?P<name>[^/]+)/rotate", w, "Rotate a named key")
                .fields(vec![name_field()]),
            P::KeyRotate,
        ),
        (
            PathSpec::new("keys/(?P<name>[^/]+)/trim", w, "Trim old key versions").fields(vec![
                name_field(),
                fs("min_available_version", T::Int, "Oldest version to keep"),
            ]),
            P::KeyTrim,
        ),
        (
            PathSpec::new("encrypt/(?P<name>[^/]+)", w, "Encrypt a plaintext").fields(vec![
                name_field(),
                fs("plaintext", T::String, "Base64-encoded plaintext"),
                fs("context", T::String, "Base64-encoded derivation context"),
                fs(
                    "associated_data",
                    T::String,
                    "Base64-encoded associated data",
                ),
                fs("key_version", T::Int, "Key version (0: latest)"),
                fs("type", T::String, "Type of a key created on first use"),
                fs(
                    "convergent_encryption",
                    T::Bool,
                    "Convergent key created on first use",
                ),
                fs("reference", T::String, "Reference echoed in batch results"),
                fs(
                    "partial_failure_response_code",
                    T::Int,
                    "Status when some items fail",
                ),
                batch_field(),
            ]),
            P::Encrypt,
        ),
        (
            PathSpec::new("decrypt/(?P<name>[^/]+)", w, "Decrypt a ciphertext").fields(vec![
                name_field(),
                fs("ciphertext", T::String, "Ciphertext to decrypt"),
                fs("context", T::String, "Base64-encoded derivation context"),
                fs(
                    "associated_data",
                    T::String,
                    "Base64-encoded associated data",
                ),
                fs("reference", T::String, "Reference echoed in batch results"),
                fs(
                    "partial_failure_response_code",
                    T::Int,
                    "Status when some items fail",
                ),
                batch_field(),
            ]),
            P::Decrypt,
        ),
        (
            PathSpec::new(
                "rewrap/(?P<name>[^/]+)",
                w,
                "Re-encrypt with the latest key",
            )
            .fields(vec![
                name_field(),
                fs("ciphertext", T::String, "Ciphertext to rewrap"),
                fs("context", T::String, "Base64-encoded derivation context"),
                fs("key_version", T::Int, "Key version (0: latest)"),
                fs("reference", T::String, "Reference echoed in batch results"),
                batch_field(),
            ]),
            P::Rewrap,
        ),
        (
            PathSpec::new(
                "datakey/(?P<plaintext>[^/]+)/(?P<name>[^/]+)",
                w,
                "Generate a data key",
            )
            .fields(vec![
                name_field(),
                fs("plaintext", T::String, "plaintext or wrapped"),
                fs("context", T::String, "Base64-encoded derivation context"),
                fs("bits", T::Int, "Data key size: 128, 256 or 512").default_value(json!(256)),
                fs("key_version", T::Int, "Key version (0: latest)"),
                fs("nonce", T::String, "Ignored"),
            ]),
            P::Datakey,
        ),
        (
            PathSpec::new(
                "hmac/(?P<name>[^/]+)(?:/(?P<urlalgorithm>[^/]+))?",
                w,
                "Generate an HMAC",
            )
            .fields(vec![
                name_field(),
                fs("input", T::String, "Base64-encoded input"),
                fs("key_version", T::Int, "Key version (0: latest)"),
                fs("algorithm", T::String, "Hash algorithm"),
                fs("urlalgorithm", T::String, "Hash algorithm (from the URL)"),
                fs("reference", T::String, "Reference echoed in batch results"),
                batch_field(),
            ]),
            P::Hmac,
        ),
        (
            PathSpec::new(
                "sign/(?P<name>[^/]+)(?:/(?P<urlalgorithm>[^/]+))?",
                w,
                "Sign data",
            )
            .fields(sign_fields()),
            P::Sign,
        ),
        (
            PathSpec::new(
                "verify/(?P<name>[^/]+)(?:/(?P<urlalgorithm>[^/]+))?",
                w,
                "Verify a signature or an HMAC",
            )
            .fields(sign_fields()),
            P::Verify,
        ),
        (
            PathSpec::new(
                "random(?:/(?P<source>[^/]+)(?:/(?P<urlbytes>[^/]+))?)?",
                w,
                "Generate random bytes",
            )
            .fields(vec![
                fs("source", T::String, "Entropy source").default_value(json!("platform")),
                fs("urlbytes", T::String, "Number of bytes (from the URL)"),
                fs("bytes", T::Int, "Number of bytes").default_value(json!(32)),
                fs("format", T::String, "hex or base64").default_value(json!("base64")),
            ]),
            P::Random,
        ),
        (
            PathSpec::new("hash(?:/(?P<urlalgorithm>[^/]+))?", w, "Hash data").fields(vec![
                fs("input", T::String, "Base64-encoded input"),
                fs("algorithm", T::String, "Hash algorithm").default_value(json!("sha2-256")),
                fs("urlalgorithm", T::String, "Hash algorithm (from the URL)"),
                fs("format", T::String, "hex or base64").default_value(json!("hex")),
            ]),
            P::Hash,
        ),
        (
            PathSpec::new(
                "export/(?P<type>[^/]+)/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?",
                &[O::Read],
                "Export a named key",
            )
            .fields(vec![
                name_field(),
                fs("type", T::String, "Export type"),
                fs("version", T::String, "Version, or latest"),
            ]),
            P::Export,
        ),
        (
            PathSpec::new("backup/(?P<name>[^/]+)", &[O::Read], "Back up a named key")
                .fields(vec![name_field()]),
            P::Backup,
        ),
        (
            PathSpec::new("restore(?:/(?P<name>[^/]+))?", w, "Restore a named key").fields(vec![
                name_field(),
                fs("backup", T::String, "Backup value"),
                fs("force", T::Bool, "Overwrite an existing key"),
            ]),
            P::Restore,
        ),
        (
            PathSpec::new(
                "cache-config",
                &[O::Read, O::Update],
                "Key cache configuration",
            )
            .fields(vec![fs("size", T::Int, "Cache size")]),
            P::CacheConfig,
        ),
        (
            PathSpec::new("config/keys", &[O::Read, O::Update], "Engine configuration").fields(
                vec![fs(
                    "disable_upsert",
                    T::Bool,
                    "Disable key creation on encrypt",
                )],
            ),
            P::ConfigKeys,
        ),
    ])
}

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::bad(msg)
}

fn internal(msg: impl Into<String>) -> LogicalError {
    LogicalError::Coded {
        status: 500,
        message: msg.into(),
    }
}

fn policy_key(name: &str) -> String {
    format!("policy/{name}")
}

fn data(v: Value) -> Option<Response> {
    Some(Response::from_json(v))
}

/// A check of one batch item (verification of a signature or an HMAC).
type ItemCheck<'a> = Box<dyn Fn(&Item) -> std::result::Result<bool, String> + Send + Sync + 'a>;

/// One item of a batch (or the top-level request as a single item).
struct Item {
    obj: Map,
}

impl Item {
    fn str(&self, name: &str) -> Option<&str> {
        match self.obj.get(name) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    fn reference(&self) -> Value {
        Value::String(self.str("reference").unwrap_or_default().to_string())
    }

    fn int(&self, name: &str) -> std::result::Result<i64, String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("invalid {name}")),
            Some(Value::String(s)) if s.is_empty() => Ok(0),
            Some(Value::String(s)) => s.parse().map_err(|_| format!("invalid {name}")),
            Some(_) => Err(format!("invalid {name}")),
        }
    }

    fn b64(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        match self.str(name) {
            None | Some("") => Ok(None),
            Some(s) => unb64(s)
                .map(Some)
                .map_err(|e| format!("failed to base64-decode {name}: {e}")),
        }
    }
}

/// The batch items of a request, or `None` when it carries no `batch_input`.
fn batch_items(fields: &FieldData) -> Result<Option<Vec<Item>>> {
    let Some(raw) = fields.opt_raw("batch_input") else {
        return Ok(None);
    };
    let list = match raw {
        Value::Null => return Ok(None),
        Value::Array(a) => a,
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            _ => return Err(bad("failed to parse batch input: expected a list")),
        },
        _ => return Err(bad("failed to parse batch input: expected a list")),
    };
    if list.is_empty() {
        return Err(bad("missing batch input to process"));
    }
    list.into_iter()
        .map(|v| match v {
            Value::Object(obj) => Ok(Item { obj }),
            _ => Err(bad("failed to parse batch input: items must be objects")),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The request body as a single item, URL captures merged in.
fn single_item(fields: &FieldData, names: &[&str]) -> Result<Item> {
    let mut obj = Map::new();
    for &n in names {
        if let Some(v) = fields.opt_raw(n) {
            obj.insert(n.to_string(), v);
        }
    }
    Ok(Item { obj })
}

/// Builds a batch response; the status follows OpenBao: `fail_status` when any item failed.
fn batch_response(results: Vec<Value>, any_error: bool, fail_status: Option<u16>) -> Response {
    let mut resp = Response::from_json(json!({ "batch_results": results }));
    if any_error {
        resp.status = fail_status;
    }
    resp
}

fn key_version_for_use(
    key: &LoadedKey,
    requested: i64,
    what: &str,
) -> std::result::Result<u32, String> {
    let s = &key.stored;
    if requested < 0 {
        return Err(format!("invalid key version {requested}"));
    }
    let requested = u32::try_from(requested).unwrap_or(u32::MAX);
    if requested == 0 {
        return Ok(s.latest_version);
    }
    if s.min_encryption_version > 0 && requested < s.min_encryption_version {
        return Err(format!(
            "requested version for {what} is less than the minimum encryption key version"
        ));
    }
    if requested > s.latest_version {
        return Err(format!(
            "requested version for {what} is higher than the latest key version"
        ));
    }
    if requested < s.min_available_version.max(1) {
        return Err(format!(
            "requested version for {what} is no longer available"
        ));
    }
    Ok(requested)
}

fn key_version_for_read(
    key: &LoadedKey,
    version: u32,
    what: &str,
) -> std::result::Result<u32, String> {
    let s = &key.stored;
    if version > s.latest_version {
        return Err(format!("invalid {what}: version is too new"));
    }
    if version < s.min_decryption_version || !key.versions.contains_key(&version) {
        return Err(
            "ciphertext or signature version is disallowed by policy (too old)".to_string(),
        );
    }
    Ok(version)
}

fn key_read_data(key: &LoadedKey) -> Value {
    let s = &key.stored;
    let kt = s.key_type;
    let mut m = Map::new();
    m.insert(
        "allow_plaintext_backup".into(),
        json!(s.allow_plaintext_backup),
    );
    m.insert("auto_rotate_period".into(), json!(s.auto_rotate_period));
    if let Some(b) = &s.backup_info {
        m.insert(
            "backup_info".into(),
            json!({"time": b.time, "version": b.version}),
        );
    }
    if s.derived {
        m.insert("convergent_encryption".into(), json!(s.convergent));
        if s.convergent {
            m.insert("convergent_encryption_version".into(), json!(-1));
        }
    }
    m.insert("deletion_allowed".into(), json!(s.deletion_allowed));
    m.insert("derived".into(), json!(s.derived));
    m.insert("exportable".into(), json!(s.exportable));
    m.insert("imported_key".into(), json!(false));
    if s.derived {
        m.insert("kdf".into(), json!("hkdf_sha256"));
    }
    if kt == KeyType::Hmac {
        m.insert("key_size".into(), json!(s.key_size));
    } else {
        let mut keys = Map::new();
        for (v, lv) in key.versions.range(s.min_decryption_version..) {
            let entry = if kt.supports_signing() {
                let curve = match kt {
                    KeyType::EcdsaP256 => "P-256",
                    KeyType::EcdsaP384 => "P-384",
                    KeyType::EcdsaP521 => "P-521",
                    other => other.name(),
                };
                json!({
                    "certificate_chain": "",
                    "creation_time": rfc3339_nanos(lv.created),
                    "name": curve,
                    "public_key": lv.public_key,
                })
            } else {
                json!(lv.created / 1_000_000_000)
            };
            keys.insert(v.to_string(), entry);
        }
        m.insert("keys".into(), Value::Object(keys));
    }
    m.insert("latest_version".into(), json!(s.latest_version));
    m.insert(
        "min_available_version".into(),
        json!(s.min_available_version),
    );
    m.insert(
        "min_decryption_version".into(),
        json!(s.min_decryption_version),
    );
    m.insert(
        "min_encryption_version".into(),
        json!(s.min_encryption_version),
    );
    m.insert("name".into(), json!(s.name));
    if let Some(r) = &s.restore_info {
        m.insert(
            "restore_info".into(),
            json!({"time": r.time, "version": r.version}),
        );
    }
    m.insert("soft_deleted".into(), json!(false));
    m.insert(
        "supports_decryption".into(),
        json!(kt.supports_encryption()),
    );
    m.insert(
        "supports_derivation".into(),
        json!(kt.supports_derivation()),
    );
    m.insert(
        "supports_encryption".into(),
        json!(kt.supports_encryption()),
    );
    m.insert("supports_signing".into(), json!(kt.supports_signing()));
    m.insert("type".into(), json!(kt.name()));
    Value::Object(m)
}

fn check_rotate_period(secs: u64) -> Result<()> {
    if secs != 0 && secs < 3600 {
        return Err(bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(())
}

/// Options of a key created through `keys/:name` or on first use by `encrypt`.
struct NewKey {
    key_type: KeyType,
    derived: bool,
    convergent: bool,
    exportable: bool,
    allow_plaintext_backup: bool,
    auto_rotate_period: u64,
    key_size: usize,
}

fn new_stored_key(name: &str, o: &NewKey) -> Result<StoredKey> {
    if o.convergent && !o.derived {
        return Err(bad(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    if o.derived && !o.key_type.supports_derivation() {
        return Err(bad(format!(
            "key derivation and convergent encryption not supported for keys of type {}",
            o.key_type.name()
        )));
    }
    check_rotate_period(o.auto_rotate_period)?;
    let now = now_nanos();
    let v1 = generate_version(o.key_type, o.key_size, now).map_err(LogicalError::Internal)?;
    let mut versions = std::collections::BTreeMap::new();
    versions.insert(1, v1);
    Ok(StoredKey {
        name: name.to_string(),
        key_type: o.key_type,
        derived: o.derived,
        convergent: o.convergent,
        exportable: o.exportable,
        allow_plaintext_backup: o.allow_plaintext_backup,
        deletion_allowed: false,
        min_decryption_version: 1,
        min_encryption_version: 0,
        min_available_version: 0,
        latest_version: 1,
        auto_rotate_period: o.auto_rotate_period,
        key_size: if o.key_type == KeyType::Hmac {
            o.key_size
        } else {
            0
        },
        versions,
        backup_info: None,
        restore_info: None,
    })
}

fn rotate_stored(s: &mut StoredKey) -> Result<()> {
    let next = s.latest_version + 1;
    let v = generate_version(s.key_type, s.key_size.max(32), now_nanos())
        .map_err(LogicalError::Internal)?;
    s.versions.insert(next, v);
    s.latest_version = next;
    Ok(())
}

fn parse_hash(name: &str, msg: impl FnOnce(&str) -> String) -> Result<HashAlg> {
    HashAlg::parse(name).ok_or_else(|| bad(msg(name)))
}

impl TransitBackend {
    /// A transit backend over the mount's storage view.
    pub fn new(config: BackendConfig) -> Self {
        TransitBackend {
            storage: config.storage,
            table: table(),
            cache: Mutex::new(KeyCache {
                lru: lru::LruCache::unbounded(),
                bytes: 0,
                max_bytes: KEY_CACHE_BYTES,
                generation: 0,
            }),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The parsed key, from the cache or storage.
    async fn load(&self, name: &str) -> Result<Option<Arc<LoadedKey>>> {
        let generation = {
            let mut cache = self.cache();
            if let Some(k) = cache.lru.get(name) {
                return Ok(Some(k.clone()));
            }
            cache.generation
        };
        let Some(stored) = self
            .storage
            .get_json::<StoredKey>(&policy_key(name))
            .await?
        else {
            return Ok(None);
        };
        let key = LoadedKey::load(stored).map_err(LogicalError::Internal)?;
        self.cache().insert(generation, name, key.clone());
        Ok(Some(key))
    }

    /// Stores a key and installs its parsed form in the cache. Callers hold `write_lock`.
    async fn save(&self, stored: StoredKey) -> Result<Arc<LoadedKey>> {
        let name = stored.name.clone();
        let path = policy_key(&name);
        self.cache().forget(&name);
        self.storage.put_json(&path, &stored).await?;
        let key = LoadedKey::load(stored).map_err(LogicalError::Internal)?;
        let mut cache = self.cache();
        cache.forget(&name);
        let generation = cache.generation;
        cache.insert(generation, &name, key.clone());
        Ok(key)
    }

    /// Reads a key fresh from storage, applies `f` and saves it, under the write lock.
    async fn modify<F>(&self, name: &str, missing: &str, f: F) -> Result<Arc<LoadedKey>>
    where
        F: FnOnce(&mut StoredKey) -> Result<()>,
    {
        let _guard = self.write_lock.lock().await;
        let Some(mut stored) = self
            .storage
            .get_json::<StoredKey>(&policy_key(name))
            .await?
        else {
            return Err(bad(missing.to_string()));
        };
        f(&mut stored)?;
        self.save(stored).await
    }

    /// The key for an operation that uses the latest version: rotated first when its
    /// automatic rotation period has passed.
    async fn load_for_use(&self, name: &str) -> Result<Option<Arc<LoadedKey>>> {
        let Some(key) = self.load(name).await? else {
            return Ok(None);
        };
        let period = key.stored.auto_rotate_period;
        if period == 0 {
            return Ok(Some(key));
        }
        let latest = key
            .versions
            .get(&key.stored.latest_version)
            .map(|v| v.created)
            .unwrap_or(0);
        let due =
            now_nanos().saturating_sub(latest) >= (period as i64).saturating_mul(1_000_000_000);
        if !due {
            return Ok(Some(key));
        }
        let rotated = self
            .modify(name, "key not found", |s| {
                let latest = s
                    .versions
                    .get(&s.latest_version)
                    .map(|v| v.created)
                    .unwrap_or(0);
                if now_nanos().saturating_sub(latest)
                    >= (s.auto_rotate_period as i64).saturating_mul(1_000_000_000)
                {
                    rotate_stored(s)?;
                }
                Ok(())
            })
            .await?;
        Ok(Some(rotated))
    }

    async fn upsert_disabled(&self) -> Result<bool> {
        let v: Option<Value> = self.storage.get_json("config/keys").await?;
        Ok(
            v.and_then(|v| v.get("disable_upsert").and_then(Value::as_bool))
                .unwrap_or(false),
        )
    }

    // ---- keys ----------------------------------------------------------------------------

    async fn list_keys(&self) -> Result<Option<Response>> {
        Ok(list_response(self.storage.list("policy/").await?))
    }

    async fn create_key(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let type_name = f
            .opt_string("type")?
            .unwrap_or_else(|| "aes256-gcm96".into());
        let key_type = KeyType::parse(&type_name)
            .ok_or_else(|| bad(format!("unknown key type {type_name}")))?;
        let key_size = match f.opt_int("key_size")? {
            None | Some(0) => 32,
            Some(n) if key_type != KeyType::Hmac => {
                let _ = n;
                return Err(bad(format!(
                    "key_size is not valid for algorithm {type_name}"
                )));
            }
            Some(n) if !(32..=512).contains(&n) => {
                return Err(bad(format!("invalid key_size {n}")))
            }
            Some(n) => n as usize,
        };
        let opts = NewKey {
            key_type,
            derived: f.bool("derived")?,
            convergent: f.bool("convergent_encryption")?,
            exportable: f.bool("exportable")?,
            allow_plaintext_backup: f.bool("allow_plaintext_backup")?,
            auto_rotate_period: f.duration("auto_rotate_period")?.as_secs(),
            key_size,
        };
        let _guard = self.write_lock.lock().await;
        if let Some(existing) = self
            .storage
            .get_json::<StoredKey>(&policy_key(name))
            .await?
        {
            let key = LoadedKey::load(existing).map_err(LogicalError::Internal)?;
            return Ok(data(key_read_data(&key)));
        }
        let stored = new_stored_key(name, &opts)?;
        let key = self.save(stored).await?;
        Ok(data(key_read_data(&key)))
    }

    async fn read_key(&self, name: &str) -> Result<Option<Response>> {
        Ok(self.load(name).await?.and_then(|k| data(key_read_data(&k))))
    }

    async fn delete_key(&self, name: &str) -> Result<Option<Response>> {
        let _guard = self.write_lock.lock().await;
        let path = policy_key(name);
        let Some(stored) = self.storage.get_json::<StoredKey>(&path).await? else {
            return Err(bad(format!(
                "error deleting policy {name}: could not delete key; not found"
            )));
        };
        if !stored.deletion_allowed {
            return Err(bad(format!(
                "error deleting policy {name}: deletion is not allowed for this key"
            )));
        }
        self.cache().forget(name);
        self.storage.delete(&path).await?;
        self.cache().forget(name);
        Ok(None)
    }

    async fn config_key(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let min_dec = f.opt_int("min_decryption_version")?;
        let min_enc = f.opt_int("min_encryption_version")?;
        let deletion_allowed = f.opt_bool("deletion_allowed")?;
        let exportable = f.opt_bool("exportable")?;
        let allow_backup = f.opt_bool("allow_plaintext_backup")?;
        let rotate = f.opt_duration("auto_rotate_period")?;
        let missing = format!("no existing key named {name} could be found");
        let key = self
            .modify(name, &missing, |s| {
                let mut dec = s.min_decryption_version;
                let mut enc = s.min_encryption_version;
                if let Some(v) = min_dec.filter(|v| *v > 0) {
                    if v > i64::from(s.latest_version) {
                        return Err(bad(format!(
                            "cannot set min decryption version of {v}, latest key version is {}",
                            s.latest_version
                        )));
                    }
                    if s.min_available_version > 0 && v < i64::from(s.min_available_version) {
                        return Err(bad(format!(
                            "cannot set min decryption version of {v} below the min available version of {}",
                            s.min_available_version
                        )));
                    }
                    dec = v as u32;
                }
                if let Some(v) = min_enc {
                    if v < 0 || v > i64::from(s.latest_version) {
                        return Err(bad(format!(
                            "cannot set min encryption version of {v}, latest key version is {}",
                            s.latest_version
                        )));
                    }
                    enc = v as u32;
                }
                if enc > 0 && enc < dec {
                    return Err(bad(format!(
                        "cannot set min encryption/decryption values; min encryption version of {enc} must be greater than or equal to min decryption version of {dec}"
                    )));
                }
                s.min_decryption_version = dec;
                s.min_encryption_version = enc;
                if let Some(d) = deletion_allowed {
                    s.deletion_allowed = d;
                }
                if exportable == Some(true) {
                    s.exportable = true;
                }
                // Like exportability, plaintext backups cannot be turned off once allowed.
                if allow_backup == Some(true) {
                    s.allow_plaintext_backup = true;
                }
                if let Some(p) = rotate {
                    check_rotate_period(p.as_secs())?;
                    s.auto_rotate_period = p.as_secs();
                }
                Ok(())
            })
            .await?;
        Ok(data(key_read_data(&key)))
    }

    async fn rotate_key(&self, name: &str) -> Result<Option<Response>> {
        let key = self.modify(name, "key not found", rotate_stored).await?;
        Ok(data(key_read_data(&key)))
    }

    async fn trim_key(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let min = f.int("min_available_version")?;
        let key = self
            .modify(name, "invalid key name", |s| {
                if s.min_encryption_version == 0 {
                    return Err(bad(
                        "minimum available version cannot be set when minimum encryption version is not set",
                    ));
                }
                if min <= 0 {
                    return Err(bad("minimum available version should be positive"));
                }
                let min = u32::try_from(min).unwrap_or(u32::MAX);
                if min < s.min_available_version {
                    return Err(bad("minimum available version cannot be decremented"));
                }
                if min > s.min_decryption_version {
                    return Err(bad(
                        "minimum available version cannot be greater than minimum decryption version",
                    ));
                }
                if s.min_encryption_version > 0 && min > s.min_encryption_version {
                    return Err(bad(
                        "minimum available version cannot be greater than minimum encryption version",
                    ));
                }
                s.versions.retain(|v, _| *v >= min);
                s.min_available_version = min;
                Ok(())
            })
            .await?;
        Ok(data(key_read_data(&key)))
    }

    // ---- encryption ------------------------------------------------------------------------

    async fn encrypt(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let batch = batch_items(f)?;
        let is_batch = batch.is_some();
        let items = match batch {
            Some(items) => items,
            None => {
                let item = single_item(
                    f,
                    &[
                        "plaintext",
                        "context",
                        "associated_data",
                        "key_version",
                        "reference",
                    ],
                )?;
                if item.str("plaintext").is_none() && item.obj.get("plaintext").is_none() {
                    return Err(bad("missing plaintext to encrypt"));
                }
                vec![item]
            }
        };
        let key = match self.load_for_use(name).await? {
            Some(k) => k,
            None => {
                if self.upsert_disabled().await? {
                    return Err(bad("encryption key not found"));
                }
                let type_name = f
                    .opt_string("type")?
                    .unwrap_or_else(|| "aes256-gcm96".into());
                let key_type = KeyType::parse(&type_name)
                    .ok_or_else(|| bad(format!("unknown key type {type_name}")))?;
                let derived = items[0].str("context").is_some_and(|c| !c.is_empty());
                let opts = NewKey {
                    key_type,
                    derived,
                    convergent: f.bool("convergent_encryption")?,
                    exportable: false,
                    allow_plaintext_backup: false,
                    auto_rotate_period: 0,
                    key_size: 32,
                };
                let _guard = self.write_lock.lock().await;
                match self
                    .storage
                    .get_json::<StoredKey>(&policy_key(name))
                    .await?
                {
                    Some(existing) => LoadedKey::load(existing).map_err(LogicalError::Internal)?,
                    None => self.save(new_stored_key(name, &opts)?).await?,
                }
            }
        };
        let kt = key.stored.key_type;
        if !kt.supports_encryption() {
            return Err(bad(format!(
                "message encryption not supported for key type {}",
                kt.name()
            )));
        }
        let top_version = f.int("key_version")?;
        let encrypt_one = |item: &Item| -> std::result::Result<(String, u32), String> {
            let plaintext = match item.str("plaintext") {
                Some(p) => unb64(p)?,
                None if is_batch => return Err("missing plaintext to encrypt".to_string()),
                None => Vec::new(),
            };
            let plaintext = Zeroizing::new(plaintext);
            let context = item.b64("context")?;
            let aad = item.b64("associated_data")?;
            let requested = match item.int("key_version")? {
                0 => top_version,
                v => v,
            };
            let version = key_version_for_use(&key, requested, "encryption")?;
            let lv = key
                .version(version)
                .ok_or_else(|| "key version not available".to_string())?;
            let ct = crypto::encrypt(
                kt,
                lv,
                &plaintext,
                EncryptParams {
                    context: context.as_deref(),
                    aad: aad.as_deref(),
                    convergent: key.stored.convergent,
                },
            )?;
            Ok((versioned(version, &ct), version))
        };
        if !is_batch {
            let (ct, v) = encrypt_one(&items[0]).map_err(bad)?;
            return Ok(data(json!({"ciphertext": ct, "key_version": v})));
        }
        let mut any_error = false;
        let results = items
            .iter()
            .map(|item| match encrypt_one(item) {
                Ok((ct, v)) => {
                    json!({"ciphertext": ct, "key_version": v, "reference": item.reference()})
                }
                Err(e) => {
                    any_error = true;
                    json!({"error": e, "reference": item.reference()})
                }
            })
            .collect();
        Ok(Some(batch_response(results, any_error, fail_status(f)?)))
    }

    fn decrypt_item(
        key: &LoadedKey,
        item: &Item,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
        let Some(ct) = item.str("ciphertext").filter(|c| !c.is_empty()) else {
            return Err("missing ciphertext to decrypt".to_string());
        };
        let (version, payload) = split_versioned(ct, "ciphertext").map_err(|e| e.to_string())?;
        let version = key_version_for_read(key, version, "ciphertext")?;
        let payload = unb64(payload)
            .map_err(|_| "invalid ciphertext: could not decode base64".to_string())?;
        let context = item.b64("context")?;
        let aad = item.b64("associated_data")?;
        let lv = key.version(version).ok_or_else(|| {
            "ciphertext or signature version is disallowed by policy (too old)".to_string()
        })?;
        crypto::decrypt(
            key.stored.key_type,
            lv,
            &payload,
            EncryptParams {
                context: context.as_deref(),
                aad: aad.as_deref(),
                convergent: key.stored.convergent,
            },
        )
    }

    async fn decrypt(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let batch = batch_items(f)?;
        let Some(key) = self.load(name).await? else {
            return Err(bad("encryption key not found"));
        };
        let kt = key.stored.key_type;
        if !kt.supports_encryption() {
            return Err(bad(format!(
                "message decryption not supported for key type {}",
                kt.name()
            )));
        }
        let Some(items) = batch else {
            let item = single_item(f, &["ciphertext", "context", "associated_data"])?;
            let pt = Self::decrypt_item(&key, &item).map_err(bad)?;
            return Ok(data(json!({"plaintext": b64(&pt)})));
        };
        let mut any_error = false;
        let results = items
            .iter()
            .map(|item| match Self::decrypt_item(&key, item) {
                Ok(pt) => json!({"plaintext": b64(&pt), "reference": item.reference()}),
                Err(e) => {
                    any_error = true;
                    json!({"plaintext": "", "error": e, "reference": item.reference()})
                }
            })
            .collect();
        Ok(Some(batch_response(results, any_error, fail_status(f)?)))
    }

    async fn rewrap(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let batch = batch_items(f)?;
        let Some(key) = self.load_for_use(name).await? else {
            return Err(bad("encryption key not found"));
        };
        let kt = key.stored.key_type;
        if !kt.supports_encryption() {
            return Err(bad(format!(
                "message encryption not supported for key type {}",
                kt.name()
            )));
        }
        let top_version = f.int("key_version")?;
        let rewrap_one = |item: &Item| -> std::result::Result<(String, u32), String> {
            let pt = Self::decrypt_item(&key, item)?;
            let context = item.b64("context")?;
            let requested = match item.int("key_version")? {
                0 => top_version,
                v => v,
            };
            let version = key_version_for_use(&key, requested, "encryption")?;
            let lv = key
                .version(version)
                .ok_or_else(|| "key version not available".to_string())?;
            let ct = crypto::encrypt(
                kt,
                lv,
                &pt,
                EncryptParams {
                    context: context.as_deref(),
                    aad: None,
                    convergent: key.stored.convergent,
                },
            )?;
            Ok((versioned(version, &ct), version))
        };
        let Some(items) = batch else {
            let item = single_item(f, &["ciphertext", "context"])?;
            let (ct, v) = rewrap_one(&item).map_err(bad)?;
            return Ok(data(json!({"ciphertext": ct, "key_version": v})));
        };
        let mut any_error = false;
        let results = items
            .iter()
            .map(|item| match rewrap_one(item) {
                Ok((ct, v)) => {
                    json!({"ciphertext": ct, "key_version": v, "reference": item.reference()})
                }
                Err(e) => {
                    any_error = true;
                    json!({"error": e, "reference": item.reference()})
                }
            })
            .collect();
        Ok(Some(batch_response(results, any_error, Some(400))))
    }

    async fn datakey(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let kind = f.string("plaintext")?;
        let with_plaintext = match kind.as_str() {
            "plaintext" => true,
            "wrapped" => false,
            _ => return Err(bad("Invalid path, must be 'plaintext' or 'wrapped'")),
        };
        let bits = f.int("bits")?;
        if !matches!(bits, 128 | 256 | 512) {
            return Err(bad("invalid bit length"));
        }
        let Some(key) = self.load_for_use(name).await? else {
            return Err(bad("encryption key not found"));
        };
        let kt = key.stored.key_type;
        if !kt.supports_encryption() {
            return Err(bad(format!(
                "message encryption not supported for key type {}",
                kt.name()
            )));
        }
        let context = match f.opt_string("context")?.filter(|c| !c.is_empty()) {
            Some(c) => {
                Some(unb64(&c).map_err(|e| bad(format!("failed to base64-decode context: {e}")))?)
            }
            None => None,
        };
        let version =
            key_version_for_use(&key, f.int("key_version")?, "encryption").map_err(bad)?;
        let lv = key
            .version(version)
            .ok_or_else(|| bad("key version not available"))?;
        let secret = random_bytes((bits / 8) as usize).map_err(LogicalError::Internal)?;
        let ct = crypto::encrypt(
            kt,
            lv,
            &secret,
            EncryptParams {
                context: context.as_deref(),
                aad: None,
                convergent: key.stored.convergent,
            },
        )
        .map_err(bad)?;
        let mut out = json!({"ciphertext": versioned(version, &ct), "key_version": version});
        if with_plaintext {
            out["plaintext"] = json!(b64(&secret));
        }
        Ok(data(out))
    }

    // ---- HMAC and signatures -------------------------------------------------------------

    async fn hmac(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let alg_name = f
            .opt_string("urlalgorithm")?
            .or(f.opt_string("algorithm")?)
            .unwrap_or_else(|| "sha2-256".into());
        let alg = match HashAlg::parse(&alg_name) {
            Some(a) if a.hmac().is_some() => a,
            _ => return Err(bad(format!("unsupported algorithm {alg_name}"))),
        };
        let batch = batch_items(f)?;
        let Some(key) = self.load_for_use(name).await? else {
            return Err(bad("encryption key not found"));
        };
        let top_version = f.int("key_version")?;
        let hmac_one = |item: &Item| -> std::result::Result<String, String> {
            let Some(input) = item.str("input") else {
                return Err("missing input for HMAC".to_string());
            };
            let input =
                unb64(input).map_err(|e| format!("unable to decode input as base64: {e}"))?;
            let requested = match item.int("key_version")? {
                0 => top_version,
                v => v,
            };
            let version = key_version_for_use(&key, requested, "HMAC")?;
            let lv = key.version(version).ok_or("key version not available")?;
            Ok(versioned(version, &crypto::hmac(lv, alg, &input)?))
        };
        let Some(items) = batch else {
            let item = single_item(f, &["input"])?;
            let mac = hmac_one(&item).map_err(bad)?;
            return Ok(data(json!({"hmac": mac})));
        };
        let results = items
            .iter()
            .map(|item| match hmac_one(item) {
                Ok(mac) => json!({"hmac": mac, "reference": item.reference()}),
                Err(e) => json!({"error": e, "reference": item.reference()}),
            })
            .collect();
        Ok(Some(batch_response(results, false, None)))
    }

    fn sign_params<'a>(f: &FieldData, kt: KeyType) -> Result<SignParams<'a>> {
        let hash_name = f
            .opt_string("urlalgorithm")?
            .filter(|s| !s.is_empty())
            .or(f.opt_string("hash_algorithm")?.filter(|s| !s.is_empty()))
            .or(f.opt_string("algorithm")?.filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "sha2-256".into());
        let hash = parse_hash(&hash_name, |n| format!("invalid hash algorithm {n:?}"))?;
        let prehashed = f.bool("prehashed")?;
        let padding = match f.opt_string("signature_algorithm")?.as_deref() {
            None | Some("") | Some("pss") => RsaPadding::Pss,
            Some("pkcs1v15") => RsaPadding::Pkcs1v15,
            Some(other) if kt.is_rsa() => {
                return Err(bad(format!("unsupported rsa signature algorithm {other}")))
            }
            Some(_) => RsaPadding::Pss,
        };
        let marshaling = match f.opt_string("marshaling_algorithm")?.as_deref() {
            None | Some("") | Some("asn1") => Marshaling::Asn1,
            Some("jws") => Marshaling::Jws,
            Some(other) => return Err(bad(format!("invalid marshaling type {other:?}"))),
        };
        let salt = SaltLength::parse(&f.string("salt_length")?).map_err(bad)?;
        if hash == HashAlg::None && kt.is_rsa() && !(prehashed && padding == RsaPadding::Pkcs1v15) {
            return Err(bad(
                "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
            ));
        }
        Ok(SignParams {
            hash,
            prehashed,
            padding,
            salt,
            marshaling,
            context: None,
        })
    }

    async fn sign(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let batch = batch_items(f)?;
        let Some(key) = self.load_for_use(name).await? else {
            return Err(bad("signing key not found"));
        };
        let kt = key.stored.key_type;
        if !kt.supports_signing() {
            return Err(bad(format!(
                "key type {} does not support signing",
                kt.name()
            )));
        }
        let params = Self::sign_params(f, kt)?;
        let top_version = f.int("key_version")?;
        let derived = key.stored.derived;
        let sign_one = |item: &Item| -> std::result::Result<(String, u32, Option<String>), String> {
            let input = unb64(item.str("input").unwrap_or_default())
                .map_err(|e| format!("unable to decode input as base64: {e}"))?;
            let context = item.b64("context")?;
            let requested = match item.int("key_version")? {
                0 => top_version,
                v => v,
            };
            let version = key_version_for_use(&key, requested, "signing")?;
            let lv = key.version(version).ok_or("key version not available")?;
            let p = SignParams {
                context: context.as_deref(),
                ..params
            };
            let sig = crypto::sign(kt, lv, &input, &p)?;
            let encoded = if p.marshaling == Marshaling::Jws {
                format!("vault:v{version}:{}", util::b64url(&sig))
            } else {
                versioned(version, &sig)
            };
            let public = if derived {
                Some(b64(&crypto::derived_public_key(lv, p.context)?))
            } else {
                None
            };
            Ok((encoded, version, public))
        };
        let Some(items) = batch else {
            let item = single_item(f, &["input", "context"])?;
            let (sig, v, public) = sign_one(&item).map_err(bad)?;
            let mut out = json!({"key_version": v});
            if let Some(p) = public {
                out["public_key"] = json!(p);
            }
            out["signature"] = json!(sig);
            return Ok(data(out));
        };
        let results = items
            .iter()
            .map(|item| match sign_one(item) {
                Ok((sig, v, public)) => {
                    let mut r =
                        json!({"signature": sig, "key_version": v, "reference": item.reference()});
                    if let Some(p) = public {
                        r["public_key"] = json!(p);
                    }
                    r
                }
                Err(e) => json!({"key_version": 0, "error": e, "reference": item.reference()}),
            })
            .collect();
        Ok(Some(batch_response(results, false, None)))
    }

    async fn verify(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let batch = batch_items(f)?;
        let first = match &batch {
            Some(items) => items.first().map(|i| i.obj.clone()).unwrap_or_default(),
            None => f.raw().clone(),
        };
        let use_hmac = first.get("signature").is_none_or(Value::is_null)
            && first.get("hmac").is_some_and(|v| !v.is_null());
        if !use_hmac && first.get("signature").is_none_or(Value::is_null) {
            return Err(bad(
                "neither a 'signature' nor an 'hmac' were given to verify",
            ));
        }
        let Some(key) = self.load(name).await? else {
            return Err(bad(if use_hmac {
                "encryption key not found"
            } else {
                "signature verification key not found"
            }));
        };
        let kt = key.stored.key_type;
        let verify_one: ItemCheck<'_> = if use_hmac {
            let alg_name = f
                .opt_string("urlalgorithm")?
                .filter(|s| !s.is_empty())
                .or(f.opt_string("algorithm")?.filter(|s| !s.is_empty()))
                .or(f.opt_string("hash_algorithm")?.filter(|s| !s.is_empty()))
                .unwrap_or_else(|| "sha2-256".into());
            let alg = match HashAlg::parse(&alg_name) {
                Some(a) if a.hmac().is_some() => a,
                _ => return Err(bad(format!("unsupported algorithm {alg_name}"))),
            };
            let key = key.clone();
            Box::new(move |item: &Item| {
                let input = unb64(item.str("input").unwrap_or_default())
                    .map_err(|e| format!("unable to decode input as base64: {e}"))?;
                let mac = item.str("hmac").unwrap_or_default();
                let (version, payload) =
                    split_versioned(mac, "HMAC to verify").map_err(|e| e.to_string())?;
                let version = key_version_for_read(&key, version, "HMAC to verify")?;
                let mac = unb64(payload).map_err(|e| format!("invalid HMAC to verify: {e}"))?;
                let lv = key.version(version).ok_or("key version not available")?;
                crypto::hmac_verify(lv, alg, &input, &mac)
            })
        } else {
            if !kt.supports_signing() {
                return Err(bad(format!(
                    "key type {} does not support verification",
                    kt.name()
                )));
            }
            let params = Self::sign_params(f, kt)?;
            let key = key.clone();
            Box::new(move |item: &Item| {
                let input = unb64(item.str("input").unwrap_or_default())
                    .map_err(|e| format!("unable to decode input as base64: {e}"))?;
                let sig = item.str("signature").unwrap_or_default();
                let (version, payload) =
                    split_versioned(sig, "signature").map_err(|e| e.to_string())?;
                let version = key_version_for_read(&key, version, "signature")?;
                let sig = if params.marshaling == Marshaling::Jws {
                    util::unb64url(payload)
                } else {
                    unb64(payload)
                }
                .map_err(|e| format!("invalid signature: {e}"))?;
                let context = item.b64("context")?;
                let lv = key.version(version).ok_or("key version not available")?;
                let p = SignParams {
                    context: context.as_deref(),
                    ..params
                };
                crypto::verify(kt, lv, &input, &sig, &p)
            })
        };
        let Some(items) = batch else {
            let item = single_item(f, &["input", "signature", "hmac", "context"])?;
            let valid = verify_one(&item).map_err(bad)?;
            return Ok(data(json!({"valid": valid})));
        };
        let results = items
            .iter()
            .map(|item| match verify_one(item) {
                Ok(valid) => json!({"valid": valid, "reference": item.reference()}),
                Err(e) => json!({"valid": false, "error": e, "reference": item.reference()}),
            })
            .collect();
        Ok(Some(batch_response(results, false, None)))
    }

    // ---- utilities ---------------------------------------------------------------------------

    fn random(f: &FieldData) -> Result<Option<Response>> {
        // `random/<x>` is a source when it names one, a byte count otherwise.
        let (source, url_bytes) = match (f.opt_string("source")?, f.opt_string("urlbytes")?) {
            (Some(s), None) if !matches!(s.as_str(), "platform" | "seal" | "all") => {
                (String::from("platform"), Some(s))
            }
            (s, b) => (s.unwrap_or_else(|| "platform".into()), b),
        };
        if !matches!(source.as_str(), "" | "platform" | "seal" | "all") {
            return Err(bad(format!(
                "unsupported entropy source {source:?}; must be \"platform\" or \"seal\", or \"all\""
            )));
        }
        let bytes = match url_bytes.filter(|s| !s.is_empty()) {
            Some(s) => s.parse::<i64>().map_err(|_| {
                bad(format!(
                    "error parsing url-set byte count: strconv.Atoi: parsing {s:?}: invalid syntax"
                ))
            })?,
            None => f.int("bytes")?,
        };
        if bytes < 1 {
            return Err(bad("'bytes' cannot be less than 1"));
        }
        if bytes > MAX_RANDOM_BYTES {
            return Err(bad(format!(
                "'bytes' should be less than {MAX_RANDOM_BYTES}"
            )));
        }
        let format = f.string("format")?;
        let buf = random_bytes(bytes as usize).map_err(LogicalError::Internal)?;
        let out = match format.as_str() {
            "base64" => b64(&buf),
            "hex" => hex::encode(&buf[..]),
            other => {
                return Err(bad(format!(
                    "unsupported encoding format {other:?}; must be \"hex\" or \"base64\""
                )))
            }
        };
        Ok(data(json!({"random_bytes": out})))
    }

    fn hash(f: &FieldData) -> Result<Option<Response>> {
        let Some(input) = f.opt_string("input")? else {
            return Err(bad("input missing"));
        };
        let input =
            unb64(&input).map_err(|e| bad(format!("unable to decode input as base64: {e}")))?;
        let alg_name = f
            .opt_string("urlalgorithm")?
            .filter(|s| !s.is_empty())
            .unwrap_or(f.string("algorithm")?);
        let alg = match HashAlg::parse(&alg_name) {
            Some(HashAlg::None) | None => {
                return Err(bad(format!("unsupported algorithm {alg_name}")))
            }
            Some(a) => a,
        };
        let format = f.string("format")?;
        let sum = alg.hash(&input);
        let out = match format.as_str() {
            "hex" => hex::encode(sum),
            "base64" => b64(&sum),
            other => {
                return Err(bad(format!(
                    "unsupported encoding format {other}; must be \"hex\" or \"base64\""
                )))
            }
        };
        Ok(data(json!({"sum": out})))
    }

    // ---- export, backup, restore -----------------------------------------------------------

    async fn export(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let export_type = f.string("type")?;
        if !matches!(
            export_type.as_str(),
            "encryption-key" | "signing-key" | "hmac-key" | "public-key"
        ) {
            return Err(bad(format!("invalid export type: {export_type}")));
        }
        let Some(key) = self.load(name).await? else {
            return Ok(None);
        };
        let s = &key.stored;
        let kt = s.key_type;
        if export_type != "public-key" && !s.exportable {
            return Err(bad("private key material is not exportable"));
        }
        match export_type.as_str() {
            "encryption-key" if !kt.supports_encryption() => {
                return Err(bad("encryption not supported for the key"))
            }
            "signing-key" if !kt.supports_signing() => {
                return Err(bad("signing not supported for the key"))
            }
            "public-key" if !kt.supports_signing() => {
                return Err(bad("public key not available for the key"))
            }
            _ => {}
        }
        let versions: Vec<u32> = match f.opt_string("version")?.as_deref() {
            None | Some("") => key.versions.keys().copied().collect(),
            Some("latest") => vec![s.latest_version],
            Some(v) => {
                let n: u32 = v.parse().map_err(|_| bad("invalid key version"))?;
                if !key.versions.contains_key(&n) {
                    return Err(bad("version does not exist or cannot be found"));
                }
                vec![n]
            }
        };
        let mut keys = Map::new();
        for v in versions {
            let Some(lv) = key.version(v) else {
                return Err(bad("version does not exist or cannot be found"));
            };
            let value = match export_type.as_str() {
                "hmac-key" => b64(&lv.hmac_key),
                "public-key" => match kt {
                    KeyType::Ed25519 => b64(&lv.public_raw),
                    _ => lv.public_key.trim_end().to_string(),
                },
                _ => export_private(kt, lv)?,
            };
            keys.insert(v.to_string(), Value::String(value));
        }
        Ok(data(
            json!({"keys": keys, "name": s.name, "type": kt.name()}),
        ))
    }

    async fn backup(&self, name: &str) -> Result<Option<Response>> {
        let Some(key) = self.load(name).await? else {
            return Err(internal(format!("key {name:?} not found")));
        };
        let mut stored = key.stored.clone();
        if !stored.exportable {
            return Err(internal("exporting is disallowed on the policy"));
        }
        if !stored.allow_plaintext_backup {
            return Err(internal("plaintext backup is disallowed on the policy"));
        }
        stored.backup_info = Some(BackupInfo {
            time: rfc3339_nanos(now_nanos()),
            version: stored.latest_version,
        });
        let blob = serde_json::to_vec(&json!({ "policy": stored }))
            .map_err(|e| LogicalError::Internal(e.to_string()))?;
        let blob = Zeroizing::new(blob);
        Ok(data(json!({"backup": b64(&blob)})))
    }

    async fn restore(&self, f: &FieldData) -> Result<Option<Response>> {
        let backup = f.string("backup")?;
        if backup.is_empty() {
            return Err(bad("'backup' must be supplied"));
        }
        let raw = Zeroizing::new(unb64(&backup).map_err(internal)?);
        #[derive(serde::Deserialize)]
        struct Backup {
            policy: StoredKey,
        }
        let parsed: Backup = serde_json::from_slice(&raw)
            .map_err(|e| internal(format!("failed to parse the backup: {e}")))?;
        let mut stored = parsed.policy;
        if let Some(n) = f.opt_string("name")?.filter(|n| !n.is_empty()) {
            stored.name = n;
        }
        if stored.name.is_empty() || stored.name.contains('/') {
            return Err(bad("invalid key name in the backup"));
        }
        // Checks the backup parses into usable keys before anything is written.
        LoadedKey::load(stored.clone()).map_err(internal)?;
        stored.restore_info = Some(BackupInfo {
            time: rfc3339_nanos(now_nanos()),
            version: stored.latest_version,
        });
        let _guard = self.write_lock.lock().await;
        if !f.bool("force")? && self.storage.get(&policy_key(&stored.name)).await?.is_some() {
            return Err(internal(format!("key {:?} already exists", stored.name)));
        }
        self.save(stored).await?;
        Ok(None)
    }

    async fn cache_config(&self, op: Operation, f: &FieldData) -> Result<Option<Response>> {
        if op == Operation::Read {
            let v: Option<Value> = self.storage.get_json("config/cache").await?;
            let size = v
                .and_then(|v| v.get("size").and_then(Value::as_i64))
                .unwrap_or(0);
            return Ok(data(json!({"size": size})));
        }
        let size = f.int("size")?;
        if size != 0 && size < 10 {
            return Err(bad("size must be 0 or a value greater or equal to 10"));
        }
        self.storage
            .put_json("config/cache", &json!({"size": size}))
            .await?;
        Ok(data(json!({"size": size})))
    }

    async fn config_keys(&self, op: Operation, f: &FieldData) -> Result<Option<Response>> {
        if op != Operation::Read {
            let disable = f.bool("disable_upsert")?;
            self.storage
                .put_json("config/keys", &json!({"disable_upsert": disable}))
                .await?;
        }
        Ok(data(
            json!({"disable_upsert": self.upsert_disabled().await?}),
        ))
    }
}

fn fail_status(f: &FieldData) -> Result<Option<u16>> {
    match f.opt_int("partial_failure_response_code")? {
        Some(code) if (200..600).contains(&code) => Ok(Some(code as u16)),
        _ => Ok(Some(400)),
    }
}

fn export_private(kt: KeyType, lv: &crate::keys::LoadedVersion) -> Result<String> {
    use crate::keys::Material;
    Ok(match &lv.material {
        Material::Aead(_) | Material::AeadDerived | Material::Hmac => b64(&lv.secret),
        Material::Ed25519(_) | Material::Ed25519Derived => {
            let public = match &lv.material {
                Material::Ed25519(_) => lv.public_raw.clone(),
                _ => aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&lv.secret)
                    .map(|p| {
                        aws_lc_rs::signature::KeyPair::public_key(&p)
                            .as_ref()
                            .to_vec()
                    })
                    .map_err(|_| LogicalError::Internal("bad Ed25519 seed".into()))?,
            };
            let mut full = Zeroizing::new(lv.secret.to_vec());
            full.extend_from_slice(&public);
            b64(&full)
        }
        Material::Ecdsa(pair) => {
            use aws_lc_rs::encoding::AsDer;
            let der = pair
                .private_key()
                .as_der()
                .map_err(|_| LogicalError::Internal("failed to encode the key".into()))?;
            pem("EC PRIVATE KEY", der.as_ref(), false)
        }
        Material::Rsa { .. } => {
            let pkcs1 = util::pkcs8_to_pkcs1(&lv.secret)
                .ok_or_else(|| LogicalError::Internal("failed to encode the key".into()))?;
            let _ = kt;
            pem("RSA PRIVATE KEY", pkcs1, true)
        }
    })
}

#[async_trait]
impl LogicalBackend for TransitBackend {
    fn backend_type(&self) -> &str {
        "transit"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let synopsis = self
                .table
                .lookup(&req.relative_path)
                .map(|(s, _, _)| s.synopsis)
                .unwrap_or_default();
            return Ok(data(json!({"help": synopsis})));
        }
        let route = self.table.route(req)?;
        let f = &route.fields;
        let op = req.operation;
        let name = || f.string("name");
        let resp = match route.id {
            P::KeysList => self.list_keys().await?,
            P::Key => match op {
                Operation::Read => self.read_key(&name()?).await?,
                Operation::Delete => self.delete_key(&name()?).await?,
                _ => self.create_key(&name()?, f).await?,
            },
            P::KeyConfig => self.config_key(&name()?, f).await?,
            P::KeyRotate => self.rotate_key(&name()?).await?,
            P::KeyTrim => self.trim_key(&name()?, f).await?,
            P::Encrypt => self.encrypt(&name()?, f).await?,
            P::Decrypt => self.decrypt(&name()?, f).await?,
            P::Rewrap => self.rewrap(&name()?, f).await?,
            P::Datakey => self.datakey(&name()?, f).await?,
            P::Hmac => self.hmac(&name()?, f).await?,
            P::Sign => self.sign(&name()?, f).await?,
            P::Verify => self.verify(&name()?, f).await?,
            P::Random => Self::random(f)?,
            P::Hash => Self::hash(f)?,
            P::Export => self.export(&name()?, f).await?,
            P::Backup => self.backup(&name()?).await?,
            P::Restore => self.restore(f).await?,
            P::CacheConfig => self.cache_config(op, f).await?,
            P::ConfigKeys => self.config_keys(op, f).await?,
        };
        Ok(warn_unknown(resp, f, op))
    }

    async fn invalidate(&self, key: &str) {
        if let Some(name) = key.strip_prefix("policy/") {
            self.cache().forget(name);
        }
    }

    async fn cleanup(&self) {
        let mut cache = self.cache();
        cache.generation += 1;
        cache.lru.clear();
        cache.bytes = 0;
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
