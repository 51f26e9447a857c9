//! KV version 2: versioned secrets, as OpenBao 2.7's versioned KV backend serves them.
//!
//! Paths: `config`, `data/<path>`, `metadata/<path>`, `detailed-metadata/<path>` (list),
//! `delete/<path>`, `undelete/<path>`, `destroy/<path>`, `subkeys/<path>`; anything else
//! answers 404 with OpenBao's "Invalid path for a versioned K/V secrets engine" warning.
//!
//! # Storage layout (relative to the mount's view)
//!
//! - `config` — the mount-wide [`KvConfig`], cached in memory (a few bytes) and dropped by
//!   [`LogicalBackend::invalidate`].
//! - `metadata/<path>` — one [`KeyRecord`] per secret: the key metadata (versions map,
//!   settings, custom metadata) **and the data of the current version inline**. Reading the
//!   latest version — the hot path — is one storage get and one JSON decode, with no cache
//!   to keep coherent across nodes.
//! - `versions/<path>/<n>` — the data (a JSON value) of every older version still kept. When
//!   a write makes a new version current, the previous current data moves ("spills") from
//!   the record to its version key in the same storage transaction, so every version's data
//!   is stored exactly once.
//!
//! Timestamps are kept as Unix nanoseconds and rendered as Vault does
//! (`2018-03-22T02:24:06.945319214Z`); durations as whole seconds, rendered Go-style.
//!
//! Writes to one secret are serialized on this node by striped locks; each write is a single
//! storage put or transaction, so a reader never sees metadata without its data.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use kura_logical::{
    BackendConfig, FieldData, FieldSpec, FieldType, LogicalBackend, LogicalError, Map, Operation,
    PathSpec, PathTable, Request, Response, Result, Storage, StorageExt,
};
use kura_storage::TxnOp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::util;

/// Storage key of the mount configuration.
const CONFIG_KEY: &str = "config";
/// Versions kept per key when neither the key nor the mount sets a maximum.
const DEFAULT_MAX_VERSIONS: u32 = 10;
/// Number of striped write locks.
const LOCK_STRIPES: usize = 256;

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
const CAS_REQUIRED: &str = "check-and-set parameter required for this call";
const CAS_PARSE: &str = "error parsing check-and-set parameter";
const METADATA_CAS_MISMATCH: &str =
    "metadata check-and-set parameter does not match the current version";
const METADATA_CAS_REQUIRED: &str = "metadata check-and-set parameter required for this call";
const CAS_IGNORED: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";
const METADATA_CAS_IGNORED: &str = "\"metadata_cas_required\" set to false, but is mandated by backend config. This value will be ignored.";
const CUSTOM_METADATA_PREFIX: &str = "custom_metadata validation failed";
const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;

/// The paths of a v2 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V2Path {
    Config,
    Data,
    Metadata,
    DetailedMetadata,
    Delete,
    Undelete,
    Destroy,
    Subkeys,
    Invalid,
}

/// Mount-wide settings (`config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct KvConfig {
    /// Versions kept per key (0: the default of 10).
    #[serde(default)]
    max_versions: u32,
    /// Every data write needs `options.cas`.
    #[serde(default)]
    cas_required: bool,
    /// Every metadata write needs `metadata_cas`.
    #[serde(default)]
    metadata_cas_required: bool,
    /// Seconds after which a new version counts as deleted; 0 unset, negative (-1) disables it
    /// for every key.
    #[serde(default)]
    delete_version_after: i64,
}

/// One version's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct VersionMeta {
    /// Creation time, Unix nanoseconds.
    created_time: i64,
    /// Soft-deletion time (past: deleted; future: scheduled), Unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deletion_time: Option<i64>,
    /// The data was destroyed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    destroyed: bool,
}

impl VersionMeta {
    /// Deleted now: a deletion time strictly before `now`.
    fn is_deleted(&self, now: i64) -> bool {
        self.deletion_time.is_some_and(|t| t < now)
    }

    /// Not readable: deleted or destroyed.
    fn unavailable(&self, now: i64) -> bool {
        self.destroyed || self.is_deleted(now)
    }
}

/// Everything stored for one secret at `metadata/<path>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct KeyRecord {
    #[serde(default)]
    current_version: u64,
    #[serde(default)]
    oldest_version: u64,
    #[serde(default)]
    created_time: Option<i64>,
    #[serde(default)]
    updated_time: Option<i64>,
    #[serde(default)]
    max_versions: u32,
    #[serde(default)]
    cas_required: bool,
    /// Seconds (≥ 0).
    #[serde(default)]
    delete_version_after: i64,
    #[serde(default)]
    custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    metadata_cas_required: bool,
    #[serde(default)]
    current_metadata_version: u64,
    #[serde(default)]
    versions: BTreeMap<u64, VersionMeta>,
    /// Data of `current_version`; `None` when there is no version or it was destroyed, and
    /// `Some(Value::Null)` when the client stored `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    data: Option<Value>,
}

/// Deserializes a present field as `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What adding a version did besides updating the record.
struct AddedVersion {
    /// The previous current version and its data, to move to its version key.
    spilled: Option<(u64, Value)>,
    /// Versions dropped by `max_versions` whose data lives at a version key.
    trimmed: Vec<u64>,
}

impl KeyRecord {
    /// Appends a version holding `data` and slides the `max_versions` window, as OpenBao's
    /// `AddVersion` does (the larger of the key's and the mount's maximum wins).
    fn add_version(
        &mut self,
        created: i64,
        deletion: Option<i64>,
        data: Value,
        config_max: u32,
    ) -> AddedVersion {
        let spilled = if self.current_version > 0 {
            self.data.take().map(|d| (self.current_version, d))
        } else {
            None
        };
        self.current_version += 1;
        self.versions.insert(
            self.current_version,
            VersionMeta {
                created_time: created,
                deletion_time: deletion,
                destroyed: false,
            },
        );
        self.updated_time = Some(created);
        if self.created_time.is_none() {
            self.created_time = Some(created);
        }
        self.data = Some(data);

        let max = match self.max_versions.max(config_max) {
            0 => DEFAULT_MAX_VERSIONS,
            n => n,
        };
        let mut trimmed = Vec::new();
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last_dropped = self.current_version - u64::from(max);
            for v in self.oldest_version..=last_dropped {
                if let Some(vm) = self.versions.remove(&v) {
                    if !vm.destroyed {
                        trimmed.push(v);
                    }
                }
            }
            self.oldest_version = last_dropped + 1;
        }
        AddedVersion { spilled, trimmed }
    }
}

/// The cached mount configuration; `generation` moves on every change so a load that raced
/// with a change does not install a stale value.
#[derive(Default)]
struct ConfigCache {
    generation: u64,
    value: Option<Arc<KvConfig>>,
}

/// Source of "now" in Unix nanoseconds (replaceable in tests).
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The KV version 2 backend.
pub struct KvV2Backend {
    storage: Arc<dyn Storage>,
    table: PathTable<V2Path>,
    config: RwLock<ConfigCache>,
    config_write: tokio::sync::Mutex<()>,
    locks: Vec<tokio::sync::Mutex<()>>,
    clock: Clock,
    records: std::sync::Mutex<RecordCache>,
}

/// Byte bound of the parsed-record cache of one mount.
const RECORD_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Parsed records of recently read secrets, so a warm read neither decrypts nor parses.
/// Bounded by the stored size of the records it holds; dropped entry by entry on every write
/// and on invalidation. A read that raced a write does not cache what it read (`generation`).
struct RecordCache {
    lru: lru::LruCache<String, (Arc<KeyRecord>, usize)>,
    bytes: usize,
    generation: u64,
}

impl RecordCache {
    fn new() -> Self {
        RecordCache {
            lru: lru::LruCache::unbounded(),
            bytes: 0,
            generation: 0,
        }
    }

    fn forget(&mut self, path: &str) {
        self.generation += 1;
        if let Some((_, size)) = self.lru.pop(path) {
            self.bytes -= size;
        }
    }

    fn insert(&mut self, generation: u64, path: &str, rec: Arc<KeyRecord>, size: usize) {
        let size = size + path.len() + 128;
        if generation != self.generation || size > RECORD_CACHE_BYTES / 16 {
            return;
        }
        if let Some((_, old)) = self.lru.put(path.to_string(), (rec, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > RECORD_CACHE_BYTES {
            match self.lru.pop_lru() {
                Some((_, (_, s))) => self.bytes -= s,
                None => break,
            }
        }
    }
}

fn meta_key(path: &str) -> String {
    format!("metadata/{path}")
}

fn version_key(path: &str, version: u64) -> String {
    format!("versions/{path}/{version}")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| LogicalError::Internal(format!("encoding: {e}")))
}

fn time_string(t: Option<i64>) -> Value {
    Value::String(t.map(util::format_time).unwrap_or_default())
}

fn custom_metadata_value(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// `{created_time, custom_metadata, deletion_time, destroyed, version}` of one version.
fn version_fields(version: u64, vm: &VersionMeta, custom: &BTreeMap<String, String>) -> Map {
    let mut m = Map::new();
    m.insert("created_time".into(), time_string(Some(vm.created_time)));
    m.insert("custom_metadata".into(), custom_metadata_value(custom));
    m.insert("deletion_time".into(), time_string(vm.deletion_time));
    m.insert("destroyed".into(), Value::Bool(vm.destroyed));
    m.insert("version".into(), Value::from(version));
    m
}

/// The `metadata/<path>` read shape.
fn metadata_fields(rec: &KeyRecord) -> Map {
    let mut versions = Map::new();
    for (v, vm) in &rec.versions {
        let mut e = Map::new();
        e.insert("created_time".into(), time_string(Some(vm.created_time)));
        e.insert("deletion_time".into(), time_string(vm.deletion_time));
        e.insert("destroyed".into(), Value::Bool(vm.destroyed));
        versions.insert(v.to_string(), Value::Object(e));
    }
    let mut m = Map::new();
    m.insert("cas_required".into(), Value::Bool(rec.cas_required));
    m.insert("created_time".into(), time_string(rec.created_time));
    m.insert(
        "current_metadata_version".into(),
        Value::from(rec.current_metadata_version),
    );
    m.insert("current_version".into(), Value::from(rec.current_version));
    m.insert(
        "custom_metadata".into(),
        custom_metadata_value(&rec.custom_metadata),
    );
    m.insert(
        "delete_version_after".into(),
        Value::String(util::format_secs(rec.delete_version_after)),
    );
    m.insert("max_versions".into(), Value::from(rec.max_versions));
    m.insert(
        "metadata_cas_required".into(),
        Value::Bool(rec.metadata_cas_required),
    );
    m.insert("oldest_version".into(), Value::from(rec.oldest_version));
    m.insert("updated_time".into(), time_string(rec.updated_time));
    m.insert("versions".into(), Value::Object(versions));
    m
}

/// A 404 that still carries `data`, as OpenBao answers reads of deleted or destroyed versions.
fn not_found_with(data: Map) -> Response {
    Response {
        data: Some(data),
        status: Some(404),
        ..Default::default()
    }
}

/// When a version created at `now` is deleted: the smaller non-zero of the mount's and the
/// key's `delete_version_after`; never when the mount disables it.
fn deletion_time(now: i64, config: &KvConfig, key_dva: i64) -> Option<i64> {
    let mount = config.delete_version_after;
    if mount < 0 || (mount == 0 && key_dva == 0) {
        return None;
    }
    let mut min = key_dva;
    if (mount != 0 && mount < min) || min == 0 {
        min = mount;
    }
    Some(now.saturating_add(min.saturating_mul(1_000_000_000)))
}

/// Go's name for a JSON value's decoded type, for conversion errors.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "json.Number",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    }
}

/// The `data` field of a write or patch: an object, or `null` (stored as is, as OpenBao does).
fn data_value(v: Value) -> Result<Value> {
    match v {
        Value::Object(_) | Value::Null => Ok(v),
        other => Err(LogicalError::BadRequest(format!(
            "error converting input for field \"data\": '' expected type 'map[string]interface {{}}', got unconvertible type '{}'",
            go_type(&other)
        ))),
    }
}

/// Checks `options.cas` against the key's current version.
fn check_cas(options: Option<&Map>, config: &KvConfig, rec: &KeyRecord) -> Result<()> {
    match options.and_then(|o| o.get("cas")) {
        Some(raw) => {
            let cas = util::weak_int(raw).ok_or_else(|| LogicalError::bad(CAS_PARSE))?;
            if u64::try_from(cas).ok() != Some(rec.current_version) {
                return Err(LogicalError::bad(CAS_MISMATCH));
            }
            Ok(())
        }
        None if config.cas_required || rec.cas_required => Err(LogicalError::bad(CAS_REQUIRED)),
        None => Ok(()),
    }
}

/// Checks `metadata_cas` against the key's metadata version.
fn check_metadata_cas(cas: Option<i64>, config: &KvConfig, rec: &KeyRecord) -> Result<()> {
    match cas {
        Some(c) if u64::try_from(c).ok() != Some(rec.current_metadata_version) => {
            Err(LogicalError::bad(METADATA_CAS_MISMATCH))
        }
        Some(_) => Ok(()),
        None if config.metadata_cas_required || rec.metadata_cas_required => {
            Err(LogicalError::bad(METADATA_CAS_REQUIRED))
        }
        None => Ok(()),
    }
}

/// Unicode "printable" as Go's `strutil.Printable` sees it: no control characters and no
/// whitespace other than the ASCII space.
fn printable(s: &str) -> bool {
    s.chars()
        .all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace()))
}

/// OpenBao's limits on custom metadata: at most 64 keys, non-empty keys up to 128 bytes and
/// values up to 512 bytes, printable.
fn validate_custom_metadata<'a>(
    entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    let count = entries.len();
    if count > MAX_CUSTOM_METADATA_KEYS {
        return Err(LogicalError::BadRequest(util::multierror(&[format!(
            "{CUSTOM_METADATA_PREFIX}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {count}"
        )])));
    }
    let mut errs = Vec::new();
    for (k, v) in entries {
        if k.is_empty() || k.len() > MAX_CUSTOM_METADATA_KEY_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                k.len()
            ));
        }
        if v.is_empty() || v.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                v.len()
            ));
        }
        if !printable(k) {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: key {k:?} ({k}) contains unprintable characters"
            ));
        }
        if !printable(v) {
            errs.push(format!(
                "{CUSTOM_METADATA_PREFIX}: value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(LogicalError::BadRequest(util::multierror(&errs)))
    }
}

/// Parses `custom_metadata` into string pairs (values weakly converted); with `keep_nulls`
/// a `null` value stays `None` (a patch deleting that key).
fn parse_custom_metadata(v: &Value, keep_nulls: bool) -> Result<Vec<(String, Option<String>)>> {
    let members = match v {
        Value::Object(m) => m,
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(LogicalError::BadRequest(format!(
                "error converting input for field \"custom_metadata\": '' expected type 'map[string]interface {{}}', got unconvertible type '{}'",
                go_type(other)
            )))
        }
    };
    let mut out = Vec::with_capacity(members.len());
    for (k, v) in members {
        if keep_nulls && v.is_null() {
            out.push((k.clone(), None));
            continue;
        }
        let s = util::weak_string(v).ok_or_else(|| {
            LogicalError::BadRequest(format!(
                "{CUSTOM_METADATA_PREFIX}: '' expected type 'string', got unconvertible type '{}'",
                go_type(v)
            ))
        })?;
        out.push((k.clone(), Some(s)));
    }
    let set: BTreeMap<String, String> = out
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    validate_custom_metadata(set.iter())?;
    Ok(out)
}

/// Replaces every leaf of `data` with `null`, down to `max_depth` levels (0: no limit), as
/// OpenBao's `subkeys` endpoint does. Empty objects count as leaves.
fn strip_values(data: &mut Value, max_depth: i64) {
    fn walk(m: &mut Map, depth: i64, max_depth: i64) {
        let current = depth + 1;
        for (_, v) in m.iter_mut() {
            match v {
                Value::Object(child)
                    if (max_depth == 0 || current <= max_depth) && !child.is_empty() =>
                {
                    walk(child, current, max_depth)
                }
                other => *other = Value::Null,
            }
        }
    }
    if let Value::Object(m) = data {
        walk(m, 1, max_depth);
    }
}

fn path_table() -> PathTable<V2Path> {
    use FieldType as T;
    use Operation as O;
    let path = || FieldSpec::new("path", T::String, "Location of the secret.");
    let versions = |d: &'static str| FieldSpec::new("versions", T::Raw, d);
    PathTable::new(vec![
        (
            PathSpec::new(
                "config",
                &[O::Read, O::Update],
                "Configures settings for the KV store",
            )
            .fields(vec![
                FieldSpec::new(
                    "max_versions",
                    T::Int,
                    "The number of versions to keep for each key. Defaults to 10",
                ),
                FieldSpec::new(
                    "cas_required",
                    T::Bool,
                    "If true, the backend will require the cas parameter to be set for each write",
                ),
                FieldSpec::new(
                    "metadata_cas_required",
                    T::Bool,
                    "If true, the backend will require the metadata_cas parameter to be set for each metadata update",
                ),
                FieldSpec::new(
                    "delete_version_after",
                    T::Raw,
                    "If set, the length of time before a version is deleted. A negative duration disables it on all keys; zero clears the setting.",
                ),
            ]),
            V2Path::Config,
        ),
        (
            PathSpec::new(
                "data/(?P<path>.*)",
                &[O::Read, O::Update, O::Patch, O::Delete],
                "Write, Patch, Read, and Delete data in the Key-Value Store.",
            )
            .fields(vec![
                path(),
                FieldSpec::new(
                    "version",
                    T::Int,
                    "If provided during a read, the value at the version number will be returned",
                ),
                FieldSpec::new("options", T::Map, "Options for writing a KV entry (cas)."),
                FieldSpec::new(
                    "data",
                    T::Raw,
                    "The contents of the data map will be stored and returned on read.",
                ),
            ])
            .with_existence_check(),
            V2Path::Data,
        ),
        (
            PathSpec::new(
                "metadata/(?P<path>.*)",
                &[O::Read, O::Update, O::Patch, O::Delete, O::List],
                "Allows interaction with key metadata and settings in the KV store.",
            )
            .fields(vec![
                path(),
                FieldSpec::new(
                    "cas_required",
                    T::Bool,
                    "If true the key will require the cas parameter to be set on all write requests.",
                ),
                FieldSpec::new("max_versions", T::Int, "The number of versions to keep."),
                FieldSpec::new(
                    "delete_version_after",
                    T::Raw,
                    "The length of time before a version is deleted.",
                ),
                FieldSpec::new(
                    "custom_metadata",
                    T::Raw,
                    "User-provided key-value pairs describing the secret.",
                ),
                FieldSpec::new(
                    "metadata_cas",
                    T::Int,
                    "Check-and-set against the current metadata version.",
                ),
                FieldSpec::new(
                    "metadata_cas_required",
                    T::Bool,
                    "If true the key will require the metadata_cas parameter on metadata writes.",
                ),
                FieldSpec::new("after", T::String, "List entries after this one."),
                FieldSpec::new("limit", T::Int, "Number of entries to list."),
            ])
            .with_existence_check(),
            V2Path::Metadata,
        ),
        (
            PathSpec::new(
                "detailed-metadata/(?P<path>.*)",
                &[O::List],
                "Lists keys with their metadata.",
            )
            .fields(vec![
                path(),
                FieldSpec::new("after", T::String, "List entries after this one."),
                FieldSpec::new("limit", T::Int, "Number of entries to list."),
            ]),
            V2Path::DetailedMetadata,
        ),
        (
            PathSpec::new(
                "delete/(?P<path>.*)",
                &[O::Update],
                "Marks one or more versions as deleted in the KV store.",
            )
            .fields(vec![path(), versions("The versions to be archived.")]),
            V2Path::Delete,
        ),
        (
            PathSpec::new(
                "undelete/(?P<path>.*)",
                &[O::Update],
                "Undeletes one or more versions from the KV store.",
            )
            .fields(vec![path(), versions("The versions to unarchive.")]),
            V2Path::Undelete,
        ),
        (
            PathSpec::new(
                "destroy/(?P<path>.*)",
                &[O::Update],
                "Permanently removes one or more versions in the KV store",
            )
            .fields(vec![path(), versions("The versions to destroy.")]),
            V2Path::Destroy,
        ),
        (
            PathSpec::new(
                "subkeys/(?P<path>.*)",
                &[O::Read],
                "Read the structure of a secret entry from the Key-Value store with the values removed.",
            )
            .fields(vec![
                path(),
                FieldSpec::new("depth", T::Int, "The maximum depth to traverse (0: no limit)."),
                FieldSpec::new("version", T::Int, "Which version to read (default: current)."),
            ]),
            V2Path::Subkeys,
        ),
        (
            PathSpec::new(
                ".*",
                &[O::Read, O::Update, O::Patch, O::Delete, O::List],
                "Invalid path for a versioned K/V secrets engine.",
            ),
            V2Path::Invalid,
        ),
    ])
}

impl KvV2Backend {
    /// A v2 backend over the mount's storage view.
    pub fn new(config: BackendConfig) -> Self {
        KvV2Backend {
            storage: config.storage,
            table: path_table(),
            config: RwLock::new(ConfigCache::default()),
            config_write: tokio::sync::Mutex::new(()),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            clock: Arc::new(util::now_nanos),
            records: std::sync::Mutex::new(RecordCache::new()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, RecordCache> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops cached records touched by storage operations (before and after a write).
    fn forget_written(&self, keys: &[&str]) {
        let mut cache = self.records();
        for key in keys {
            if let Some(path) = key.strip_prefix("metadata/") {
                cache.forget(path);
            }
        }
    }

    /// The record of a secret, shared: from the cache, or read, parsed and cached.
    async fn load_shared(&self, path: &str) -> Result<Option<Arc<KeyRecord>>> {
        if path.is_empty() {
            return Ok(None);
        }
        let generation = {
            let mut cache = self.records();
            if let Some((rec, _)) = cache.lru.get(path) {
                return Ok(Some(rec.clone()));
            }
            cache.generation
        };
        let Some(raw) = self.storage.get(&meta_key(path)).await? else {
            return Ok(None);
        };
        let rec: Arc<KeyRecord> = Arc::new(
            serde_json::from_slice(&raw)
                .map_err(|e| LogicalError::Internal(format!("decoding {path}: {e}")))?,
        );
        self.records()
            .insert(generation, path, rec.clone(), raw.len());
        Ok(Some(rec))
    }

    /// Replaces the clock (tests of time-dependent behaviour).
    #[cfg(test)]
    fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn lock_for(&self, path: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        // The modulo keeps the index below LOCK_STRIPES, so the cast cannot truncate.
        &self.locks[(h.finish() % self.locks.len() as u64) as usize]
    }

    /// The mount configuration, from the cache or storage.
    async fn config(&self) -> Result<Arc<KvConfig>> {
        let generation = {
            let cache = self.config.read().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = &cache.value {
                return Ok(v.clone());
            }
            cache.generation
        };
        let loaded: Arc<KvConfig> = Arc::new(
            self.storage
                .get_json::<KvConfig>(CONFIG_KEY)
                .await?
                .unwrap_or_default(),
        );
        let mut cache = self.config.write().unwrap_or_else(|e| e.into_inner());
        if cache.generation == generation {
            cache.value = Some(loaded.clone());
        }
        Ok(loaded)
    }

    fn set_config_cache(&self, value: Option<Arc<KvConfig>>) {
        let mut cache = self.config.write().unwrap_or_else(|e| e.into_inner());
        cache.generation += 1;
        cache.value = value;
    }

    /// Reads the record of a secret (`None` for the empty path, as OpenBao finds nothing
    /// there).
    async fn load(&self, path: &str) -> Result<Option<KeyRecord>> {
        Ok(self.load_shared(path).await?.map(|r| KeyRecord::clone(&r)))
    }

    async fn store(&self, path: &str, rec: &KeyRecord) -> Result<()> {
        let key = meta_key(path);
        self.forget_written(&[&key]);
        let result = self.storage.put(&key, encode(rec)?).await;
        self.forget_written(&[&key]);
        result
    }

    async fn apply(&self, ops: Vec<TxnOp>) -> Result<()> {
        let keys: Vec<String> = ops.iter().map(|o| o.key().to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.forget_written(&keys);
        let result = if ops.len() == 1 && matches!(ops.first(), Some(TxnOp::Put { .. })) {
            match ops.into_iter().next() {
                Some(TxnOp::Put { key, value }) => self.storage.put(&key, value).await,
                _ => unreachable!("checked to be a single put"),
            }
        } else {
            self.storage.transaction(ops).await
        };
        self.forget_written(&keys);
        result
    }

    /// The data of `version`: inline for the current version, else at its version key.
    async fn version_data(&self, path: &str, rec: &mut KeyRecord, version: u64) -> Result<Value> {
        let missing = || LogicalError::Internal("could not find version data".into());
        if version == rec.current_version {
            return rec.data.take().ok_or_else(missing);
        }
        let raw = self
            .storage
            .get(&version_key(path, version))
            .await?
            .ok_or_else(missing)?;
        serde_json::from_slice(&raw)
            .map_err(|e| LogicalError::Internal(format!("decoding version data: {e}")))
    }

    /// Adds `data` as a new version of `rec` and stores it, spilling the previous current
    /// version and dropping trimmed ones in one transaction.
    async fn commit_version(
        &self,
        path: &str,
        mut rec: KeyRecord,
        data: Value,
        config: &KvConfig,
    ) -> Result<Option<Response>> {
        let now = self.now();
        let deletion = deletion_time(now, config, rec.delete_version_after);
        let added = rec.add_version(now, deletion, data, config.max_versions);
        let mut ops = Vec::new();
        let spilled_version = added.spilled.as_ref().map(|(v, _)| *v);
        if let Some((v, old)) = &added.spilled {
            if !added.trimmed.contains(v) {
                ops.push(TxnOp::Put {
                    key: version_key(path, *v),
                    value: encode(old)?,
                });
            }
        }
        ops.push(TxnOp::Put {
            key: meta_key(path),
            value: encode(&rec)?,
        });
        for v in &added.trimmed {
            if Some(*v) != spilled_version {
                ops.push(TxnOp::Delete {
                    key: version_key(path, *v),
                });
            }
        }
        self.apply(ops).await?;
        let current = rec.current_version;
        let vm = rec
            .versions
            .get(&current)
            .ok_or_else(|| LogicalError::Internal("new version missing".into()))?;
        Ok(Some(Response::with_data(version_fields(
            current,
            vm,
            &rec.custom_metadata,
        ))))
    }

    async fn config_read(&self) -> Result<Option<Response>> {
        let c = self.config().await?;
        let mut m = Map::new();
        m.insert("cas_required".into(), Value::Bool(c.cas_required));
        m.insert(
            "delete_version_after".into(),
            Value::String(util::format_secs(c.delete_version_after)),
        );
        m.insert("max_versions".into(), Value::from(c.max_versions));
        m.insert(
            "metadata_cas_required".into(),
            Value::Bool(c.metadata_cas_required),
        );
        Ok(Some(Response::with_data(m)))
    }

    async fn config_write(&self, f: &FieldData) -> Result<Option<Response>> {
        let max = f.opt_int("max_versions")?;
        let cas = f.opt_bool("cas_required")?;
        let metadata_cas = f.opt_bool("metadata_cas_required")?;
        let dva = f
            .opt_raw("delete_version_after")
            .map(|v| util::parse_signed_secs("delete_version_after", &v))
            .transpose()?;
        if max.is_none() && cas.is_none() && metadata_cas.is_none() && dva.is_none() {
            return Ok(None);
        }
        let _guard = self.config_write.lock().await;
        let mut config: KvConfig = self.storage.get_json(CONFIG_KEY).await?.unwrap_or_default();
        if let Some(m) = max {
            // Go's uint32(int): wraps, as OpenBao stores it.
            config.max_versions = m as u32;
        }
        if let Some(c) = cas {
            config.cas_required = c;
        }
        if let Some(c) = metadata_cas {
            config.metadata_cas_required = c;
        }
        if let Some(d) = dva {
            config.delete_version_after = if d < 0 { -1 } else { d };
        }
        self.storage.put_json(CONFIG_KEY, &config).await?;
        self.set_config_cache(Some(Arc::new(config)));
        Ok(None)
    }

    async fn data_read(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let requested = f.int("version")?;
        let Some(shared) = self.load_shared(&path).await? else {
            return Ok(None);
        };
        let rec = &shared;
        let version = if requested > 0 {
            requested.unsigned_abs()
        } else {
            rec.current_version
        };
        let Some(vm) = rec.versions.get(&version).cloned() else {
            return Ok(None);
        };
        let metadata = Value::Object(version_fields(version, &vm, &rec.custom_metadata));
        let mut out = Map::new();
        if vm.unavailable(self.now()) {
            out.insert("data".into(), Value::Null);
            out.insert("metadata".into(), metadata);
            return Ok(Some(not_found_with(out)));
        }
        // The current version is inline in the shared record: copy just its data.
        let data = match (version == rec.current_version, &rec.data) {
            (true, Some(d)) => d.clone(),
            _ => {
                let mut owned = KeyRecord::clone(rec);
                self.version_data(&path, &mut owned, version).await?
            }
        };
        out.insert("data".into(), data);
        out.insert("metadata".into(), metadata);
        Ok(Some(Response::with_data(out)))
    }

    async fn data_write(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        util::check_write_path(&path)?;
        let config = self.config().await?;
        let data = data_value(
            f.opt_raw("data")
                .ok_or_else(|| LogicalError::bad("no data provided"))?,
        )?;
        let options = f.opt_map("options")?;
        let _guard = self.lock_for(&path).lock().await;
        let rec = self.load(&path).await?.unwrap_or_default();
        check_cas(options.as_ref(), &config, &rec)?;
        self.commit_version(&path, rec, data, &config).await
    }

    async fn data_patch(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let patch = data_value(
            f.opt_raw("data")
                .ok_or_else(|| LogicalError::bad("no data provided"))?,
        )?;
        let options = f.opt_map("options")?;
        let _guard = self.lock_for(&path).lock().await;
        let Some(rec) = self.load(&path).await? else {
            return Err(LogicalError::NotFound);
        };
        let config = self.config().await?;
        check_cas(options.as_ref(), &config, &rec)?;
        let current = rec.current_version;
        let Some(vm) = rec.versions.get(&current) else {
            return Err(LogicalError::NotFound);
        };
        if vm.unavailable(self.now()) {
            return Ok(Some(not_found_with(version_fields(
                current,
                vm,
                &rec.custom_metadata,
            ))));
        }
        let mut doc = rec
            .data
            .clone()
            .ok_or_else(|| LogicalError::Internal("could not find version data".into()))?;
        if !doc.is_object() {
            return Err(LogicalError::Coded {
                status: 500,
                message: util::multierror(&["resource does not exist".into()]),
            });
        }
        util::merge_patch(&mut doc, &patch);
        self.commit_version(&path, rec, doc, &config).await
    }

    async fn data_delete(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let _guard = self.lock_for(&path).lock().await;
        let Some(mut rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let now = self.now();
        let current = rec.current_version;
        match rec.versions.get_mut(&current) {
            Some(vm) if !vm.unavailable(now) => vm.deletion_time = Some(now),
            _ => return Ok(None),
        }
        self.store(&path, &rec).await?;
        Ok(None)
    }

    fn versions_field(f: &FieldData) -> Result<Vec<u64>> {
        let raw = f.opt_raw("versions");
        Ok(util::int_list("versions", raw.as_ref())?
            .into_iter()
            // Go's uint64(int): a negative version can never match.
            .map(|v| u64::try_from(v).unwrap_or(u64::MAX))
            .collect())
    }

    async fn delete_versions(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let versions = Self::versions_field(f)?;
        if versions.is_empty() {
            return Err(LogicalError::bad("No version number provided"));
        }
        let _guard = self.lock_for(&path).lock().await;
        let Some(mut rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let now = self.now();
        let mut changed = false;
        for v in versions {
            if let Some(vm) = rec.versions.get_mut(&v) {
                if !vm.unavailable(now) {
                    vm.deletion_time = Some(now);
                    changed = true;
                }
            }
        }
        if changed {
            self.store(&path, &rec).await?;
        }
        Ok(None)
    }

    async fn undelete_versions(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let versions = Self::versions_field(f)?;
        if versions.is_empty() {
            return Err(LogicalError::bad("No version number provided"));
        }
        let config = self.config().await?;
        let _guard = self.lock_for(&path).lock().await;
        let Some(mut rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let deletion = deletion_time(self.now(), &config, rec.delete_version_after);
        let mut changed = false;
        for v in versions {
            if let Some(vm) = rec.versions.get_mut(&v) {
                if !vm.destroyed && vm.deletion_time != deletion {
                    vm.deletion_time = deletion;
                    changed = true;
                }
            }
        }
        if changed {
            self.store(&path, &rec).await?;
        }
        Ok(None)
    }

    async fn destroy_versions(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let versions = Self::versions_field(f)?;
        if versions.is_empty() {
            return Err(LogicalError::bad("no version number provided"));
        }
        let _guard = self.lock_for(&path).lock().await;
        let Some(mut rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let mut deletes = Vec::new();
        let mut changed = false;
        for v in versions {
            if let Some(vm) = rec.versions.get_mut(&v) {
                if vm.destroyed {
                    continue;
                }
                vm.destroyed = true;
                changed = true;
                if v == rec.current_version {
                    rec.data = None;
                } else {
                    deletes.push(TxnOp::Delete {
                        key: version_key(&path, v),
                    });
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        let mut ops = vec![TxnOp::Put {
            key: meta_key(&path),
            value: encode(&rec)?,
        }];
        ops.extend(deletes);
        self.apply(ops).await?;
        Ok(None)
    }

    async fn metadata_read(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        Ok(self
            .load(&path)
            .await?
            .map(|rec| Response::with_data(metadata_fields(&rec))))
    }

    fn cas_warnings(
        config: &KvConfig,
        cas_required: Option<bool>,
        metadata_cas_required: Option<bool>,
    ) -> Vec<String> {
        let mut w = Vec::new();
        if cas_required == Some(false) && config.cas_required {
            w.push(CAS_IGNORED.to_string());
        }
        if metadata_cas_required == Some(false) && config.metadata_cas_required {
            w.push(METADATA_CAS_IGNORED.to_string());
        }
        w
    }

    fn warnings_response(warnings: Vec<String>) -> Option<Response> {
        (!warnings.is_empty()).then(|| Response {
            warnings,
            ..Default::default()
        })
    }

    async fn metadata_write(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        util::check_write_path(&path)?;
        let max = f.opt_int("max_versions")?;
        let cas_required = f.opt_bool("cas_required")?;
        let dva = f
            .opt_raw("delete_version_after")
            .map(|v| util::parse_secs("delete_version_after", &v))
            .transpose()?;
        let custom_raw = f.opt_raw("custom_metadata");
        let metadata_cas_required = f.opt_bool("metadata_cas_required")?;
        let metadata_cas = f.opt_int("metadata_cas")?;
        if max.is_none()
            && cas_required.is_none()
            && dva.is_none()
            && custom_raw.is_none()
            && metadata_cas_required.is_none()
        {
            return Ok(None);
        }
        let config = self.config().await?;
        let custom = custom_raw
            .map(|v| parse_custom_metadata(&v, false))
            .transpose()?;
        let warnings = Self::cas_warnings(&config, cas_required, metadata_cas_required);

        let _guard = self.lock_for(&path).lock().await;
        let now = self.now();
        let mut rec = match self.load(&path).await? {
            Some(rec) => rec,
            None => KeyRecord {
                created_time: Some(now),
                ..Default::default()
            },
        };
        check_metadata_cas(metadata_cas, &config, &rec)?;
        if let Some(m) = max {
            // Go's uint32(int): wraps, as OpenBao stores it.
            rec.max_versions = m as u32;
        }
        if let Some(c) = cas_required {
            rec.cas_required = c;
        }
        if let Some(d) = dva {
            rec.delete_version_after = d;
        }
        if let Some(c) = custom {
            rec.custom_metadata = c
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
        }
        if let Some(c) = metadata_cas_required {
            rec.metadata_cas_required = c;
        }
        rec.updated_time = Some(now);
        rec.current_metadata_version += 1;
        self.store(&path, &rec).await?;
        Ok(Self::warnings_response(warnings))
    }

    async fn metadata_patch(&self, f: &FieldData) -> Result<Option<Response>> {
        const PATCHABLE: [&str; 5] = [
            "max_versions",
            "cas_required",
            "delete_version_after",
            "custom_metadata",
            "metadata_cas_required",
        ];
        let path = f.string("path")?;
        if path.is_empty() {
            return Err(LogicalError::bad("missing path"));
        }
        if !PATCHABLE.iter().any(|k| f.raw().contains_key(*k)) {
            return Ok(None);
        }
        let max = f.opt_int("max_versions")?;
        let cas_required = f.opt_bool("cas_required")?;
        let dva = f
            .opt_raw("delete_version_after")
            .map(|v| util::parse_secs("delete_version_after", &v))
            .transpose()?;
        let custom = f
            .opt_raw("custom_metadata")
            .map(|v| parse_custom_metadata(&v, true).map(|entries| (v.is_null(), entries)))
            .transpose()?;
        let metadata_cas_required = f.opt_bool("metadata_cas_required")?;
        let metadata_cas = f.opt_int("metadata_cas")?;
        let config = self.config().await?;

        let _guard = self.lock_for(&path).lock().await;
        let Some(mut rec) = self.load(&path).await? else {
            return Err(LogicalError::NotFound);
        };
        let warnings = Self::cas_warnings(&config, cas_required, metadata_cas_required);
        check_metadata_cas(metadata_cas, &config, &rec)?;
        if let Some(m) = max {
            rec.max_versions = m as u32;
        }
        if let Some(c) = cas_required {
            rec.cas_required = c;
        }
        if let Some(d) = dva {
            rec.delete_version_after = d;
        }
        if let Some((clear, entries)) = custom {
            if clear {
                rec.custom_metadata.clear();
            }
            for (k, v) in entries {
                match v {
                    Some(v) => {
                        rec.custom_metadata.insert(k, v);
                    }
                    None => {
                        rec.custom_metadata.remove(&k);
                    }
                }
            }
        }
        if let Some(c) = metadata_cas_required {
            rec.metadata_cas_required = c;
        }
        rec.updated_time = Some(self.now());
        rec.current_metadata_version += 1;
        self.store(&path, &rec).await?;
        Ok(Self::warnings_response(warnings))
    }

    async fn metadata_delete(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let _guard = self.lock_for(&path).lock().await;
        let Some(rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let mut ops = vec![TxnOp::Delete {
            key: meta_key(&path),
        }];
        for (v, vm) in &rec.versions {
            if *v != rec.current_version && !vm.destroyed {
                ops.push(TxnOp::Delete {
                    key: version_key(&path, *v),
                });
            }
        }
        self.apply(ops).await?;
        Ok(None)
    }

    async fn metadata_list(&self, f: &FieldData, detailed: bool) -> Result<Option<Response>> {
        let prefix = util::list_prefix(&f.string("path")?);
        let after = f.string("after")?;
        let limit = f.int("limit")?;
        let keys = self.storage.list(&meta_key(&prefix)).await?;
        let keys = util::page(keys, &after, limit);
        if !detailed || keys.is_empty() {
            return Ok(util::list_response(keys));
        }
        let mut info = Map::new();
        for k in &keys {
            let name = format!("{prefix}{}", k.trim_end_matches('/'));
            let entry = match self.load(&name).await? {
                Some(rec) => metadata_fields(&rec),
                None => Map::new(),
            };
            info.insert(k.clone(), Value::Object(entry));
        }
        let mut data = Map::new();
        data.insert("key_info".into(), Value::Object(info));
        data.insert(
            "keys".into(),
            Value::Array(keys.into_iter().map(Value::String).collect()),
        );
        Ok(Some(Response::with_data(data)))
    }

    async fn subkeys_read(&self, f: &FieldData) -> Result<Option<Response>> {
        let path = f.string("path")?;
        let depth = f.int("depth")?;
        let requested = f.int("version")?;
        let Some(mut rec) = self.load(&path).await? else {
            return Ok(None);
        };
        let version = if requested > 0 {
            requested.unsigned_abs()
        } else {
            rec.current_version
        };
        let Some(vm) = rec.versions.get(&version).cloned() else {
            return Ok(None);
        };
        let metadata = Value::Object(version_fields(version, &vm, &rec.custom_metadata));
        let mut out = Map::new();
        out.insert("metadata".into(), metadata);
        if vm.unavailable(self.now()) {
            out.insert("subkeys".into(), Value::Null);
            return Ok(Some(not_found_with(out)));
        }
        let mut data = self.version_data(&path, &mut rec, version).await?;
        strip_values(&mut data, depth);
        out.insert("subkeys".into(), data);
        Ok(Some(Response::with_data(out)))
    }

    fn invalid(req: &Request) -> Response {
        let warning = match req.relative_path.as_str() {
            "metadata" | "data" | "delete" | "undelete" | "destroy" => {
                "Non-listing operations on the root of a K/V v2 mount are not supported."
                    .to_string()
            }
            _ => {
                let sub = match req.operation {
                    Operation::Create | Operation::Update => "put",
                    Operation::Patch => "patch",
                    Operation::Read | Operation::Help => "get",
                    Operation::List => "list",
                    Operation::Delete => "delete",
                };
                format!(
                    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv {sub}' for this operation."
                )
            }
        };
        Response {
            warnings: vec![warning],
            status: Some(404),
            ..Default::default()
        }
    }
}

#[async_trait]
impl LogicalBackend for KvV2Backend {
    fn backend_type(&self) -> &str {
        "kv"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        use Operation as O;
        if req.operation == O::Help {
            let synopsis = self
                .table
                .lookup(&req.relative_path)
                .map(|(s, _, _)| s.synopsis)
                .unwrap_or_default();
            let mut data = Map::new();
            data.insert("help".into(), Value::String(synopsis.into()));
            return Ok(Some(Response::with_data(data)));
        }
        let route = self.table.route(req)?;
        let f = &route.fields;
        util::validate_fields(f, &route.spec.fields)?;
        let op = req.operation;
        let resp = match (route.id, op) {
            (V2Path::Config, O::Read) => self.config_read().await?,
            (V2Path::Config, _) => self.config_write(f).await?,
            (V2Path::Data, O::Read) => self.data_read(f).await?,
            (V2Path::Data, O::Create | O::Update) => self.data_write(f).await?,
            (V2Path::Data, O::Patch) => self.data_patch(f).await?,
            (V2Path::Data, O::Delete) => self.data_delete(f).await?,
            (V2Path::Metadata, O::Read) => self.metadata_read(f).await?,
            (V2Path::Metadata, O::Create | O::Update) => self.metadata_write(f).await?,
            (V2Path::Metadata, O::Patch) => self.metadata_patch(f).await?,
            (V2Path::Metadata, O::Delete) => self.metadata_delete(f).await?,
            (V2Path::Metadata, O::List) => self.metadata_list(f, false).await?,
            (V2Path::DetailedMetadata, _) => self.metadata_list(f, true).await?,
            (V2Path::Delete, _) => self.delete_versions(f).await?,
            (V2Path::Undelete, _) => self.undelete_versions(f).await?,
            (V2Path::Destroy, _) => self.destroy_versions(f).await?,
            (V2Path::Subkeys, _) => self.subkeys_read(f).await?,
            (V2Path::Invalid, _) => Some(Self::invalid(req)),
            (_, _) => return Err(LogicalError::UnsupportedOperation),
        };
        Ok(util::warn_unknown(resp, f, op))
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        let Some((spec, _, captures)) = self.table.lookup(&req.relative_path) else {
            return Ok(None);
        };
        if !spec.existence_check {
            return Ok(None);
        }
        let path = captures.get("path").map(String::as_str).unwrap_or("");
        if path.is_empty() {
            return Ok(Some(false));
        }
        Ok(Some(self.storage.get(&meta_key(path)).await?.is_some()))
    }

    async fn invalidate(&self, key: &str) {
        if key == CONFIG_KEY {
            self.set_config_cache(None);
        }
        self.forget_written(&[key]);
    }
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
