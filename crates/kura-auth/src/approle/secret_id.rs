//! Secret IDs: generation (random or custom), listing by accessor, lookup and destruction by
//! secret ID or by accessor, and the flush when a role is deleted.

use std::collections::BTreeMap;

use base64::Engine as _;
use kura_logical::{FieldData, LogicalError, Map, Response, Result, StorageExt};
use kura_storage::TxnOp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::role::{self, role_name, RoleEntry};
use super::{ct_eq, hmac_hex, Inner};
use crate::cidr;
use crate::token_params::opt_secs;
use crate::util::{self, coded, format_time, internal, now_nanos};

/// Largest number of storage operations in one transaction when deleting in bulk.
const TXN_CHUNK: usize = 128;

/// One secret ID's stored properties (the secret ID itself is only present as its HMAC).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SecretIdEntry {
    /// HMAC of the secret ID (also the last part of the storage key).
    pub secret_id_hmac: String,
    /// The accessor.
    pub secret_id_accessor: String,
    /// Remaining uses (0: unlimited).
    pub secret_id_num_uses: u64,
    /// Requested lifetime in seconds.
    pub secret_id_ttl: u64,
    /// Unix nanoseconds.
    pub creation_time: i64,
    /// Unix nanoseconds; 0: never expires.
    pub expiration_time: i64,
    /// Unix nanoseconds.
    pub last_updated_time: i64,
    /// Metadata attached to tokens issued with this secret ID.
    pub metadata: BTreeMap<String, String>,
    /// Blocks logins with this secret ID may come from.
    pub cidr_list: Vec<String>,
    /// Blocks the issued token may be used from (overrides the role's).
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    /// True once the expiration time has passed.
    pub(crate) fn expired(&self, now: i64) -> bool {
        self.expiration_time != 0 && now > self.expiration_time
    }

    fn to_data(&self) -> Map {
        let mut m = Map::new();
        m.insert("cidr_list".into(), json!(self.cidr_list));
        m.insert(
            "creation_time".into(),
            json!(format_time(self.creation_time)),
        );
        m.insert(
            "expiration_time".into(),
            json!(format_time(self.expiration_time)),
        );
        m.insert(
            "last_updated_time".into(),
            json!(format_time(self.last_updated_time)),
        );
        m.insert("metadata".into(), json!(self.metadata));
        m.insert("secret_id_accessor".into(), json!(self.secret_id_accessor));
        m.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m
    }
}

/// The accessor index entry: which secret ID (of which role) an accessor names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct AccessorEntry {
    pub secret_id_hmac: String,
    pub role_name_hmac: String,
}

/// Storage key of a secret ID entry.
pub(crate) fn entry_key(prefix: &str, role_hmac: &str, secret_hmac: &str) -> String {
    format!("{prefix}{role_hmac}/{secret_hmac}")
}

/// Storage key of an accessor index entry.
pub(crate) fn accessor_key(
    key: &aws_lc_rs::hmac::Key,
    prefix: &str,
    accessor: &str,
) -> Result<String> {
    Ok(format!(
        "{prefix}{}",
        hmac_hex(key, accessor, "secret_id_accessor")?
    ))
}

/// The transaction that removes a secret ID and its accessor.
pub(crate) fn delete_ops(
    key: &aws_lc_rs::hmac::Key,
    role: &RoleEntry,
    entry_key: String,
    entry: &SecretIdEntry,
) -> Result<Vec<TxnOp>> {
    let mut ops = vec![TxnOp::Delete { key: entry_key }];
    if !entry.secret_id_accessor.is_empty() {
        ops.push(TxnOp::Delete {
            key: accessor_key(key, role.accessor_prefix(), &entry.secret_id_accessor)?,
        });
    }
    Ok(ops)
}

/// JSON bytes of a value, for a transaction.
pub(crate) fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| LogicalError::Internal(e.to_string()))
}

fn go_quote_list(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

fn subset_error(role: &[String], secret: &[String]) -> LogicalError {
    internal(format!(
        "failed to verify subset relationship between CIDR blocks on the role {} and CIDR blocks on the secret ID {}",
        go_quote_list(role),
        go_quote_list(secret)
    ))
}

/// OpenBao's `ParseArbitraryKeyValues`: the input may be base64; then a JSON object of
/// strings, or comma-separated `key=value` pairs.
pub(crate) fn parse_metadata(input: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if input.trim().is_empty() {
        return Ok(out);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(input)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let text = decoded.as_deref().unwrap_or(input);
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text) {
        return Ok(map);
    }
    let mut pairs: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    for pair in pairs {
        let shards: Vec<&str> = pair.split('=').collect();
        if shards.len() != 2 {
            return Err("invalid <key,value> format".into());
        }
        let (k, v) = (shards[0].trim(), shards[1].trim());
        if k.is_empty() || v.is_empty() {
            return Err("invalid <key,value> format".into());
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `role/<name>/secret-id` (random secret ID) and `role/<name>/custom-secret-id`.
pub(crate) async fn generate(
    inner: &Inner,
    f: &FieldData,
    custom: Option<String>,
) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let secret_id = custom.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if secret_id.is_empty() {
        return Err(LogicalError::bad("missing secret_id"));
    }
    let _role_guard = inner.role_locks.lock(&name).await;
    let role = role::load(inner, &name)
        .await?
        .ok_or_else(|| coded(404, format!("role {name:?} does not exist")))?;
    if !role.bind_secret_id {
        return Err(LogicalError::bad("bind_secret_id is not set on the role"));
    }

    let cidr_list = f.strings("cidr_list")?;
    cidr::parse_strict_list(&cidr_list)
        .map_err(|e| internal(format!("failed to validate CIDR blocks: {e}")))?;
    if !cidr::is_subset(&cidr_list, &role.secret_id_bound_cidrs) {
        return Err(subset_error(&role.secret_id_bound_cidrs, &cidr_list));
    }
    let token_cidrs = f.strings("token_bound_cidrs")?;
    cidr::parse_strict_list(&token_cidrs)
        .map_err(|e| internal(format!("failed to validate token CIDR blocks: {e}")))?;
    if !cidr::is_subset(&token_cidrs, &role.token.token_bound_cidrs) {
        return Err(subset_error(&role.token.token_bound_cidrs, &token_cidrs));
    }

    let num_uses = if f.is_set("num_uses") {
        let n = f.int("num_uses")?;
        if n < 0 {
            return Err(LogicalError::bad("num_uses cannot be negative"));
        }
        let n = n as u64;
        let role_n = role.secret_id_num_uses;
        if role_n > 0 && (n == 0 || n > role_n) {
            return Err(LogicalError::bad(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        n
    } else {
        role.secret_id_num_uses
    };
    let ttl = if f.is_set("ttl") {
        let t = opt_secs(f, "ttl")?.unwrap_or(0);
        let role_t = role.secret_id_ttl;
        if role_t > 0 && (t == 0 || t > role_t) {
            return Err(LogicalError::bad(
                "ttl cannot be longer than the role's secret_id_ttl",
            ));
        }
        t
    } else {
        role.secret_id_ttl
    };
    let metadata = parse_metadata(&f.string("metadata")?)
        .map_err(|e| LogicalError::bad(format!("failed to parse metadata: {e}")))?;

    let key = inner.salt_create().await?;
    let secret_hmac = hmac_hex(&key, &secret_id, "secret_id")?;
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let ekey = entry_key(role.secret_prefix(), &role_hmac, &secret_hmac);
    let _secret_guard = inner.secret_locks.lock(&secret_hmac).await;
    if inner.storage.get(&ekey).await?.is_some() {
        return Err(internal(
            "failed to store secret_id: SecretID is already registered",
        ));
    }
    let now = now_nanos();
    let max = inner.max_lease_secs();
    let effective_ttl = if ttl > max { max } else { ttl };
    let expiration_time = if effective_ttl > 0 {
        now.saturating_add(
            i64::try_from(effective_ttl)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1_000_000_000),
        )
    } else {
        0
    };
    let accessor = uuid::Uuid::new_v4().to_string();
    let entry = SecretIdEntry {
        secret_id_hmac: secret_hmac.clone(),
        secret_id_accessor: accessor.clone(),
        secret_id_num_uses: num_uses,
        secret_id_ttl: ttl,
        creation_time: now,
        expiration_time,
        last_updated_time: now,
        metadata,
        cidr_list,
        token_bound_cidrs: token_cidrs,
    };
    let ops = vec![
        TxnOp::Put {
            key: accessor_key(&key, role.accessor_prefix(), &accessor)?,
            value: json_bytes(&AccessorEntry {
                secret_id_hmac: secret_hmac,
                role_name_hmac: role_hmac,
            })?,
        },
        TxnOp::Put {
            key: ekey,
            value: json_bytes(&entry)?,
        },
    ];
    inner.storage.transaction(ops).await?;
    let mut data = Map::new();
    data.insert("secret_id".into(), json!(secret_id));
    data.insert("secret_id_accessor".into(), json!(accessor));
    data.insert("secret_id_num_uses".into(), json!(num_uses));
    data.insert("secret_id_ttl".into(), json!(effective_ttl));
    Ok(Some(Response::with_data(data)))
}

/// LIST `role/<name>/secret-id`: the accessors of the role's secret IDs.
pub(crate) async fn list_accessors(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let role = role::load(inner, &name)
        .await?
        .ok_or_else(|| LogicalError::bad(format!("role {name:?} does not exist")))?;
    let Some(key) = inner.salt(false).await? else {
        return Ok(None);
    };
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let prefix = format!("{}{role_hmac}/", role.secret_prefix());
    let hmacs = util::page(inner.storage.list(&prefix).await?, f)?;
    let mut accessors = Vec::with_capacity(hmacs.len());
    for h in hmacs {
        if h.is_empty() || h.ends_with('/') {
            continue;
        }
        let entry = inner
            .storage
            .get_json::<SecretIdEntry>(&format!("{prefix}{h}"))
            .await?
            .ok_or_else(|| {
                internal("storage entry for SecretID is present but no content found at the index")
            })?;
        accessors.push(entry.secret_id_accessor);
    }
    Ok(util::list_response(accessors))
}

/// Resolves a secret ID of a role to its storage key and entry (`None` if unknown, expired,
/// or the stored HMAC does not match).
async fn find(
    inner: &Inner,
    key: &aws_lc_rs::hmac::Key,
    role: &RoleEntry,
    secret_hmac: &str,
) -> Result<Option<(String, SecretIdEntry)>> {
    let role_hmac = hmac_hex(key, &role.name, "role_name")?;
    let ekey = entry_key(role.secret_prefix(), &role_hmac, secret_hmac);
    let Some(entry) = inner.storage.get_json::<SecretIdEntry>(&ekey).await? else {
        return Ok(None);
    };
    if !ct_eq(&entry.secret_id_hmac, secret_hmac) || entry.expired(now_nanos()) {
        return Ok(None);
    }
    Ok(Some((ekey, entry)))
}

async fn role_for_secret_op(inner: &Inner, f: &FieldData) -> Result<RoleEntry> {
    let name = role_name(f)?;
    role::load(inner, &name)
        .await?
        .ok_or_else(|| internal(format!("role {name:?} does not exist")))
}

/// `role/<name>/secret-id/lookup`.
pub(crate) async fn lookup(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let secret_id = f.string("secret_id")?;
    role_name(f)?;
    if secret_id.is_empty() {
        return Err(LogicalError::bad("missing secret_id"));
    }
    let role = role_for_secret_op(inner, f).await?;
    let Some(key) = inner.salt(false).await? else {
        return Ok(None);
    };
    let secret_hmac = hmac_hex(&key, &secret_id, "secret_id")?;
    let _guard = inner.secret_locks.lock(&secret_hmac).await;
    let Some((ekey, entry)) = find(inner, &key, &role, &secret_hmac).await? else {
        return Ok(None);
    };
    let akey = accessor_key(&key, role.accessor_prefix(), &entry.secret_id_accessor)?;
    if inner.storage.get(&akey).await?.is_none() {
        inner.storage.delete(&ekey).await?;
        return Err(LogicalError::bad("invalid secret id"));
    }
    Ok(Some(Response::with_data(entry.to_data())))
}

/// `role/<name>/secret-id/destroy`.
pub(crate) async fn destroy(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let secret_id = f.string("secret_id")?;
    role_name(f)?;
    if secret_id.is_empty() {
        return Err(LogicalError::bad("missing secret_id"));
    }
    let role = role_for_secret_op(inner, f).await?;
    let Some(key) = inner.salt(false).await? else {
        return Ok(None);
    };
    let secret_hmac = hmac_hex(&key, &secret_id, "secret_id")?;
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let ekey = entry_key(role.secret_prefix(), &role_hmac, &secret_hmac);
    let _guard = inner.secret_locks.lock(&secret_hmac).await;
    let Some(entry) = inner.storage.get_json::<SecretIdEntry>(&ekey).await? else {
        return Ok(None);
    };
    if !ct_eq(&entry.secret_id_hmac, &secret_hmac) {
        return Ok(None);
    }
    inner
        .storage
        .transaction(delete_ops(&key, &role, ekey, &entry)?)
        .await?;
    Ok(None)
}

async fn accessor_entry(
    inner: &Inner,
    key: &aws_lc_rs::hmac::Key,
    role: &RoleEntry,
    accessor: &str,
) -> Result<Option<(String, AccessorEntry)>> {
    let akey = accessor_key(key, role.accessor_prefix(), accessor)?;
    Ok(inner
        .storage
        .get_json::<AccessorEntry>(&akey)
        .await?
        .map(|e| (akey, e)))
}

/// `role/<name>/secret-id-accessor/lookup`.
pub(crate) async fn accessor_lookup(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    role_name(f)?;
    let accessor = f.string("secret_id_accessor")?;
    if accessor.is_empty() {
        return Err(LogicalError::bad("missing secret_id_accessor"));
    }
    let role = role_for_secret_op(inner, f).await?;
    let not_found = || {
        let mut data = Map::new();
        data.insert(
            "error".into(),
            json!(format!(
                "failed to find accessor entry for secret_id_accessor: {accessor:?}"
            )),
        );
        Some(Response {
            data: Some(data),
            status: Some(404),
            ..Default::default()
        })
    };
    let Some(key) = inner.salt(false).await? else {
        return Ok(not_found());
    };
    let Some((_, acc)) = accessor_entry(inner, &key, &role, &accessor).await? else {
        return Ok(not_found());
    };
    let _guard = inner.secret_locks.lock(&acc.secret_id_hmac).await;
    Ok(find(inner, &key, &role, &acc.secret_id_hmac)
        .await?
        .map(|(_, e)| Response::with_data(e.to_data())))
}

/// `role/<name>/secret-id-accessor/destroy`.
pub(crate) async fn accessor_destroy(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    role_name(f)?;
    let accessor = f.string("secret_id_accessor")?;
    if accessor.is_empty() {
        return Err(LogicalError::bad("missing secret_id_accessor"));
    }
    let role = role_for_secret_op(inner, f).await?;
    let missing = || {
        internal(format!(
            "failed to find accessor entry for secret_id_accessor: {accessor:?}"
        ))
    };
    let key = inner.salt(false).await?.ok_or_else(missing)?;
    let (akey, acc) = accessor_entry(inner, &key, &role, &accessor)
        .await?
        .ok_or_else(missing)?;
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let ekey = entry_key(role.secret_prefix(), &role_hmac, &acc.secret_id_hmac);
    let _guard = inner.secret_locks.lock(&acc.secret_id_hmac).await;
    if inner.storage.get(&ekey).await?.is_none() {
        return Err(coded(403, "invalid secret id accessor"));
    }
    inner
        .storage
        .transaction(vec![
            TxnOp::Delete { key: akey },
            TxnOp::Delete { key: ekey },
        ])
        .await?;
    Ok(None)
}

/// Deletes every secret ID of a role and their accessors (before the role is deleted).
pub(crate) async fn flush(inner: &Inner, role: &RoleEntry) -> Result<()> {
    let Some(key) = inner.salt(false).await? else {
        return Ok(());
    };
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let prefix = format!("{}{role_hmac}/", role.secret_prefix());
    let hmacs = inner.storage.list(&prefix).await?;
    let mut ops = Vec::new();
    for h in hmacs.iter().filter(|h| !h.is_empty() && !h.ends_with('/')) {
        let ekey = format!("{prefix}{h}");
        let _guard = inner.secret_locks.lock(h).await;
        match inner.storage.get_json::<SecretIdEntry>(&ekey).await? {
            Some(entry) => ops.extend(delete_ops(&key, role, ekey, &entry)?),
            None => ops.push(TxnOp::Delete { key: ekey }),
        }
        if ops.len() >= TXN_CHUNK {
            inner.storage.transaction(std::mem::take(&mut ops)).await?;
        }
    }
    if !ops.is_empty() {
        inner.storage.transaction(ops).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metadata_like_openbao() {
        let m = parse_metadata(r#"{"a":"b","c":"d"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], "b");
        let m = parse_metadata("x=1, y = 2").unwrap();
        assert_eq!((m["x"].as_str(), m["y"].as_str()), ("1", "2"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(r#"{"k":"v"}"#);
        assert_eq!(parse_metadata(&b64).unwrap()["k"], "v");
        assert!(parse_metadata("").unwrap().is_empty());
        assert_eq!(
            parse_metadata("bad").unwrap_err(),
            "invalid <key,value> format"
        );
        assert!(parse_metadata("a=").is_err());
        assert!(parse_metadata(r#"{"a":1}"#).is_err(), "non-string values");
    }

    #[test]
    fn expiry() {
        let e = SecretIdEntry {
            expiration_time: 100,
            ..Default::default()
        };
        assert!(!e.expired(100));
        assert!(e.expired(101));
        assert!(
            !SecretIdEntry::default().expired(i64::MAX),
            "0 never expires"
        );
        assert_eq!(go_quote_list(&["a".into(), "b".into()]), r#"["a" "b"]"#);
    }
}
