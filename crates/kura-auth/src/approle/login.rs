//! `login`: role ID (and secret ID when the role binds one) → a [`kura_logical::Auth`] for the
//! core.

use std::net::IpAddr;

use kura_logical::{FieldData, LogicalError, Request, Response, Result, StorageExt};
use kura_storage::TxnOp;
use serde_json::json;

use super::role::{self, role_id_key, RoleEntry, RoleIdEntry};
use super::secret_id::{self, delete_ops, entry_key, json_bytes, SecretIdEntry};
use super::{ct_eq, hmac_hex, Inner};
use crate::cidr;
use crate::token_params::parse_token_cidrs;
use crate::util::{internal, now_nanos, plain_500};

/// Message of every failed role-ID or secret-ID check.
const INVALID: &str = "invalid role or secret ID";

fn invalid() -> LogicalError {
    LogicalError::bad(INVALID)
}

/// The client address, required when CIDR restrictions apply.
fn client_ip(req: &Request) -> Result<IpAddr> {
    req.remote_addr
        .ok_or_else(|| plain_500("failed to get connection information"))
}

/// Checks the role's `secret_id_bound_cidrs` against the client.
fn check_role_cidrs(req: &Request, role: &RoleEntry) -> Result<()> {
    if role.secret_id_bound_cidrs.is_empty() {
        return Ok(());
    }
    let ip = client_ip(req)?;
    if !cidr::ip_in_blocks(ip, &role.secret_id_bound_cidrs) {
        return Err(LogicalError::bad(format!(
            "source address {:?} unauthorized by CIDR restrictions on the role",
            ip.to_string()
        )));
    }
    Ok(())
}

/// Checks a secret ID's `cidr_list` (still a subset of the role's) against the client.
fn check_secret_cidrs(req: &Request, role: &RoleEntry, entry: &SecretIdEntry) -> Result<()> {
    if entry.cidr_list.is_empty() {
        return Ok(());
    }
    if !cidr::is_subset(&entry.cidr_list, &role.secret_id_bound_cidrs) {
        return Err(internal(
            "failed to verify subset relationship between CIDR blocks on the role and CIDR blocks on the secret ID",
        ));
    }
    let ip = client_ip(req)?;
    if !cidr::ip_in_blocks(ip, &entry.cidr_list) {
        return Err(LogicalError::bad(format!(
            "source address {:?} unauthorized by CIDR restrictions on the secret ID",
            ip.to_string()
        )));
    }
    Ok(())
}

/// Resolves a role ID to its role, comparing the stored role ID in constant time.
async fn role_by_id(inner: &Inner, role_id: &str) -> Result<Option<RoleEntry>> {
    let Some(key) = inner.salt(false).await? else {
        return Ok(None);
    };
    let Some(index) = inner
        .storage
        .get_json::<RoleIdEntry>(&role_id_key(&key, role_id)?)
        .await?
    else {
        return Ok(None);
    };
    Ok(role::load(inner, &index.name)
        .await?
        .filter(|r| ct_eq(&r.role_id, role_id)))
}

/// Validates the secret ID and spends one use of it, atomically with respect to other logins
/// (the secret ID's lock is held from read to write). Returns the secret ID's entry.
async fn consume_secret_id(
    inner: &Inner,
    req: &Request,
    role: &RoleEntry,
    secret_id: &str,
) -> Result<SecretIdEntry> {
    let key = inner.salt(false).await?.ok_or_else(invalid)?;
    let secret_hmac = hmac_hex(&key, secret_id, "secret_id")?;
    let role_hmac = hmac_hex(&key, &role.name, "role_name")?;
    let ekey = entry_key(role.secret_prefix(), &role_hmac, &secret_hmac);
    let _guard = inner.secret_locks.lock(&secret_hmac).await;
    let entry = inner
        .storage
        .get_json::<SecretIdEntry>(&ekey)
        .await?
        .filter(|e| ct_eq(&e.secret_id_hmac, &secret_hmac))
        .ok_or_else(invalid)?;
    let now = now_nanos();
    if entry.expired(now) {
        return Err(invalid());
    }
    let akey = secret_id::accessor_key(&key, role.accessor_prefix(), &entry.secret_id_accessor)?;
    if inner.storage.get(&akey).await?.is_none() {
        // A secret ID without its accessor is revoked on sight.
        inner.storage.delete(&ekey).await?;
        return Err(invalid());
    }
    // Every check before any use is spent, so a refused login costs nothing.
    check_secret_cidrs(req, role, &entry)?;
    check_role_cidrs(req, role)?;
    match entry.secret_id_num_uses {
        0 => {}
        1 => {
            inner
                .storage
                .transaction(delete_ops(&key, role, ekey, &entry)?)
                .await?;
        }
        n => {
            let mut updated = entry.clone();
            updated.secret_id_num_uses = n - 1;
            updated.last_updated_time = now;
            inner
                .storage
                .transaction(vec![TxnOp::Put {
                    key: ekey,
                    value: json_bytes(&updated)?,
                }])
                .await?;
        }
    }
    Ok(entry)
}

/// Handles `login`.
pub(crate) async fn login(inner: &Inner, req: &Request, f: &FieldData) -> Result<Option<Response>> {
    let role_id = f.string("role_id")?.trim().to_string();
    if role_id.is_empty() {
        return Err(plain_500("missing role_id"));
    }
    let role = role_by_id(inner, &role_id).await?.ok_or_else(invalid)?;

    let mut metadata = std::collections::BTreeMap::new();
    let mut secret_token_cidrs = Vec::new();
    if role.bind_secret_id {
        let secret_id = f.string("secret_id")?.trim().to_string();
        if secret_id.is_empty() {
            return Err(LogicalError::bad("missing secret_id"));
        }
        let entry = consume_secret_id(inner, req, &role, &secret_id).await?;
        metadata = entry.metadata;
        secret_token_cidrs = entry.token_bound_cidrs;
    } else {
        check_role_cidrs(req, &role)?;
    }

    let mut auth = role.token.to_auth(req.remote_addr)?;
    if !role.token.token_strictly_bind_ip && !secret_token_cidrs.is_empty() {
        auth.bound_cidrs =
            parse_token_cidrs(&secret_token_cidrs).map_err(|e| LogicalError::bad(e.to_string()))?;
    }
    metadata.insert("role_name".to_string(), role.name.clone());
    auth.metadata = Some(metadata);
    let mut internal_data = kura_logical::Map::new();
    internal_data.insert("role_name".into(), json!(role.name));
    auth.internal_data = Some(internal_data);
    Ok(Some(Response {
        auth: Some(auth),
        ..Default::default()
    }))
}
