//! Roles: create, read, update, delete, list, the per-field sub-paths and the role ID.

use kura_logical::{FieldData, LogicalError, Map, Response, Result, StorageExt};
use kura_storage::TxnOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{hmac_hex, secret_id, Inner, MAX_HMAC_INPUT};
use crate::cidr;
use crate::token_params::{self, old_policies, old_secs, opt_secs, upgrade, TokenParams};
use crate::util::{self, go_duration, internal, sanitize_policies};

/// A role field with its own sub-path (`role/<name>/<field>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    LocalSecretIds,
    Policies,
    BoundCidrList,
    SecretIdBoundCidrs,
    TokenBoundCidrs,
    BindSecretId,
    SecretIdNumUses,
    SecretIdTtl,
    Period,
    TokenNumUses,
    TokenTtl,
    TokenMaxTtl,
    RoleId,
}

/// A stored role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct RoleEntry {
    #[serde(flatten)]
    pub token: TokenParams,
    /// Lowercase role name.
    pub name: String,
    /// The role ID (a login credential; indexed by HMAC).
    pub role_id: String,
    /// Legacy alias of `token_policies`.
    pub policies: Vec<String>,
    /// Legacy alias of `token_period`.
    pub period: u64,
    /// Default use limit of new secret IDs (0: unlimited).
    pub secret_id_num_uses: u64,
    /// Default lifetime of new secret IDs in seconds (0: no expiry).
    pub secret_id_ttl: u64,
    /// Require a secret ID at login.
    pub bind_secret_id: bool,
    /// Blocks logins may come from.
    pub secret_id_bound_cidrs: Vec<String>,
    /// Secret IDs kept under the cluster-local prefixes.
    pub local_secret_ids: bool,
}

impl RoleEntry {
    fn normalize(mut self) -> Self {
        if self.token.token_period == 0 && self.period > 0 {
            self.token.token_period = self.period;
        }
        if self.token.token_policies.is_empty() && !self.policies.is_empty() {
            self.token.token_policies = self.policies.clone();
        }
        self
    }

    /// Storage prefix of this role's secret IDs.
    pub(crate) fn secret_prefix(&self) -> &'static str {
        if self.local_secret_ids {
            "secret_id_local/"
        } else {
            "secret_id/"
        }
    }

    /// Storage prefix of this role's accessor index.
    pub(crate) fn accessor_prefix(&self) -> &'static str {
        if self.local_secret_ids {
            "accessor_local/"
        } else {
            "accessor/"
        }
    }

    fn has_constraint(&self) -> bool {
        self.bind_secret_id
            || !self.secret_id_bound_cidrs.is_empty()
            || !self.token.token_bound_cidrs.is_empty()
    }
}

/// The role-ID index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleIdEntry {
    pub name: String,
}

fn role_key(name: &str) -> String {
    format!("role/{}", name.to_lowercase())
}

/// The role name of a request, validated and lowercased.
pub(crate) fn role_name(f: &FieldData) -> Result<String> {
    let name = f.string("role_name")?;
    if name.is_empty() {
        return Err(LogicalError::bad("missing role_name"));
    }
    if name.len() > MAX_HMAC_INPUT {
        return Err(LogicalError::bad(format!(
            "role_name is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    Ok(name.to_lowercase())
}

/// Reads a role.
pub(crate) async fn load(inner: &Inner, name: &str) -> Result<Option<RoleEntry>> {
    Ok(inner
        .storage
        .get_json::<RoleEntry>(&role_key(name))
        .await?
        .map(RoleEntry::normalize))
}

/// Storage key of the role-ID index entry for `role_id`.
pub(crate) fn role_id_key(key: &aws_lc_rs::hmac::Key, role_id: &str) -> Result<String> {
    Ok(format!("role_id/{}", hmac_hex(key, role_id, "role_id")?))
}

/// OpenBao's answer to a sub-path update of a role that does not exist.
fn unsupported() -> LogicalError {
    LogicalError::Coded {
        status: 404,
        message: "1 error occurred:\n\t* unsupported path\n\n".into(),
    }
}

/// Persists a role with its role-ID index in one transaction; `previous_role_id` is the role
/// ID the stored role had (its index entry is removed when the ID changed).
async fn save(inner: &Inner, role: &RoleEntry, previous_role_id: Option<&str>) -> Result<()> {
    if !role.has_constraint() {
        return Err(internal(
            "at least one constraint should be enabled on the role",
        ));
    }
    let key = inner.salt_create().await?;
    let new_index = role_id_key(&key, &role.role_id)?;
    if let Some(existing) = inner.storage.get_json::<RoleIdEntry>(&new_index).await? {
        if existing.name != role.name {
            return Err(internal("role_id already in use"));
        }
    }
    let bytes = serde_json::to_vec(role).map_err(|e| LogicalError::Internal(e.to_string()))?;
    let mut ops = vec![TxnOp::Put {
        key: role_key(&role.name),
        value: bytes,
    }];
    match previous_role_id {
        Some(prev) if prev == role.role_id => {}
        other => {
            if let Some(prev) = other.filter(|p| !p.is_empty()) {
                ops.push(TxnOp::Delete {
                    key: role_id_key(&key, prev)?,
                });
            }
            let index = serde_json::to_vec(&RoleIdEntry {
                name: role.name.clone(),
            })
            .map_err(|e| LogicalError::Internal(e.to_string()))?;
            ops.push(TxnOp::Put {
                key: new_index,
                value: index,
            });
        }
    }
    inner.storage.transaction(ops).await
}

/// LIST `role`.
pub(crate) async fn list(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let keys = inner.storage.list("role/").await?;
    Ok(util::list_response(util::page(keys, f)?))
}

fn cidrs_or_null(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// Reads `role/<name>`.
pub(crate) async fn read(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let Some(role) = load(inner, &name).await? else {
        return Ok(None);
    };
    let mut data = Map::new();
    data.insert("bind_secret_id".into(), json!(role.bind_secret_id));
    data.insert("local_secret_ids".into(), json!(role.local_secret_ids));
    data.insert(
        "secret_id_bound_cidrs".into(),
        cidrs_or_null(&role.secret_id_bound_cidrs),
    );
    data.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
    data.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
    role.token.populate(&mut data);
    if role.period > 0 {
        data.insert("period".into(), json!(role.period));
    }
    if !role.policies.is_empty() {
        data.insert("policies".into(), json!(role.policies));
    }
    Ok(Some(Response::with_data(data)))
}

/// Creates or updates `role/<name>`.
pub(crate) async fn write(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let _guard = inner.role_locks.lock(&name).await;
    let existing = load(inner, &name).await?;
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_else(|| RoleEntry {
        name: name.clone(),
        ..Default::default()
    });
    let mut warnings = role.token.parse_with_legacy_type(f)?;

    if f.is_set("local_secret_ids") {
        if !creating {
            return Err(LogicalError::bad(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        role.local_secret_ids = f.bool("local_secret_ids")?;
    }

    let previous = role.role_id.clone();
    if f.is_set("role_id") {
        role.role_id = f.string("role_id")?;
    } else if creating {
        role.role_id = uuid::Uuid::new_v4().to_string();
    }
    if role.role_id.is_empty() {
        return Err(LogicalError::bad(
            "invalid role_id supplied, or failed to generate a role_id",
        ));
    }

    if f.is_set("bind_secret_id") {
        role.bind_secret_id = f.bool("bind_secret_id")?;
    } else if creating {
        role.bind_secret_id = true;
    }

    let cidrs = if f.is_set("secret_id_bound_cidrs") {
        Some(f.strings("secret_id_bound_cidrs")?)
    } else if f.is_set("bound_cidr_list") {
        Some(f.strings("bound_cidr_list")?)
    } else {
        None
    };
    if let Some(c) = cidrs {
        role.secret_id_bound_cidrs = c;
    }
    cidr::parse_strict_list(&role.secret_id_bound_cidrs)
        .map_err(|e| internal(format!("failed to validate CIDR blocks: {e}")))?;

    if let Some(n) = f.opt_int("secret_id_num_uses")? {
        if n < 0 {
            return Err(LogicalError::bad("secret_id_num_uses cannot be negative"));
        }
        role.secret_id_num_uses = n as u64;
    }
    if let Some(ttl) = opt_secs(f, "secret_id_ttl")? {
        role.secret_id_ttl = ttl;
    }

    let RoleEntry {
        token,
        policies,
        period,
        ..
    } = &mut role;
    upgrade(
        f,
        "policies",
        "token_policies",
        policies,
        &mut token.token_policies,
        old_policies,
    )?;
    upgrade(
        f,
        "period",
        "token_period",
        period,
        &mut token.token_period,
        old_secs("period"),
    )?;

    let max = inner.max_lease_secs();
    if role.period > max {
        return Err(LogicalError::bad(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            go_duration(role.period),
            go_duration(max)
        )));
    }
    if role.token.token_max_ttl > max {
        warnings.push(
            "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated"
                .to_string(),
        );
    }

    save(
        inner,
        &role,
        if creating {
            None
        } else {
            Some(previous.as_str())
        },
    )
    .await?;
    if warnings.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Response {
            warnings,
            ..Default::default()
        }))
    }
}

/// Deletes `role/<name>` with all its secret IDs and its role-ID index.
pub(crate) async fn delete(inner: &Inner, f: &FieldData) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let _guard = inner.role_locks.lock(&name).await;
    let Some(role) = load(inner, &name).await? else {
        return Ok(None);
    };
    secret_id::flush(inner, &role).await?;
    let mut ops = vec![TxnOp::Delete {
        key: role_key(&role.name),
    }];
    if let Some(key) = inner.salt(false).await? {
        ops.push(TxnOp::Delete {
            key: role_id_key(&key, &role.role_id)?,
        });
    }
    inner.storage.transaction(ops).await?;
    Ok(None)
}

/// Reads one field of a role through its sub-path.
pub(crate) async fn read_field(
    inner: &Inner,
    f: &FieldData,
    field: Field,
) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let Some(role) = load(inner, &name).await? else {
        return Ok(None);
    };
    let mut data = Map::new();
    let mut warnings = Vec::new();
    match field {
        Field::LocalSecretIds => {
            data.insert("local_secret_ids".into(), json!(role.local_secret_ids));
        }
        Field::Policies => {
            data.insert("token_policies".into(), json!(role.token.token_policies));
            if !role.policies.is_empty() {
                data.insert("policies".into(), json!(role.policies));
            }
        }
        Field::BoundCidrList => {
            data.insert(
                "bound_cidr_list".into(),
                cidrs_or_null(&role.secret_id_bound_cidrs),
            );
            warnings.push(
                "The \"bound_cidr_list\" field is deprecated and will be removed. Please use \"secret_id_bound_cidrs\" instead."
                    .to_string(),
            );
        }
        Field::SecretIdBoundCidrs => {
            data.insert(
                "secret_id_bound_cidrs".into(),
                cidrs_or_null(&role.secret_id_bound_cidrs),
            );
        }
        Field::TokenBoundCidrs => {
            data.insert(
                "token_bound_cidrs".into(),
                cidrs_or_null(&role.token.token_bound_cidrs),
            );
        }
        Field::BindSecretId => {
            data.insert("bind_secret_id".into(), json!(role.bind_secret_id));
        }
        Field::SecretIdNumUses => {
            data.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
        }
        Field::SecretIdTtl => {
            data.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
        }
        Field::Period => {
            data.insert("token_period".into(), json!(role.token.token_period));
            if role.period > 0 {
                data.insert("period".into(), json!(role.period));
            }
        }
        Field::TokenNumUses => {
            data.insert("token_num_uses".into(), json!(role.token.token_num_uses));
        }
        Field::TokenTtl => {
            data.insert("token_ttl".into(), json!(role.token.token_ttl));
        }
        Field::TokenMaxTtl => {
            data.insert("token_max_ttl".into(), json!(role.token.token_max_ttl));
        }
        Field::RoleId => {
            data.insert("role_id".into(), json!(role.role_id));
        }
    }
    let mut resp = Response::with_data(data);
    resp.warnings = warnings;
    Ok(Some(resp))
}

/// Updates one field of a role through its sub-path.
pub(crate) async fn update_field(
    inner: &Inner,
    f: &FieldData,
    field: Field,
) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let _guard = inner.role_locks.lock(&name).await;
    let mut role = load(inner, &name).await?.ok_or_else(unsupported)?;
    let previous = role.role_id.clone();
    let missing = |what: &str| LogicalError::bad(format!("missing {what}"));
    match field {
        Field::Policies => {
            if f.is_set("token_policies") {
                role.token.token_policies = sanitize_policies(&f.strings("token_policies")?);
                role.policies = if f.is_set("policies") {
                    role.token.token_policies.clone()
                } else {
                    Vec::new()
                };
            } else if f.is_set("policies") {
                role.policies = old_policies(f)?;
                role.token.token_policies = role.policies.clone();
            } else {
                return Err(missing("token_policies"));
            }
        }
        Field::BoundCidrList | Field::SecretIdBoundCidrs => {
            let key = if field == Field::BoundCidrList {
                "bound_cidr_list"
            } else {
                "secret_id_bound_cidrs"
            };
            if f.is_set(key) {
                let list = f.strings(key)?;
                if list.is_empty() {
                    return Err(missing("bound_cidr_list"));
                }
                cidr::parse_strict_list(&list).map_err(|e| {
                    LogicalError::bad(format!("failed to validate CIDR blocks: {e}"))
                })?;
                role.secret_id_bound_cidrs = list;
            }
        }
        Field::TokenBoundCidrs => {
            if f.is_set("token_bound_cidrs") {
                role.token.token_bound_cidrs =
                    token_params::parse_token_cidrs(&f.strings("token_bound_cidrs")?).map_err(
                        |e| LogicalError::bad(format!("failed to parse token_bound_cidrs: {e}")),
                    )?;
                if role.token.token_strictly_bind_ip && !role.token.token_bound_cidrs.is_empty() {
                    return Err(LogicalError::bad(
                        "'token_strictly_bind_ip' conflicts with 'token_bound_cidrs'; set only one",
                    ));
                }
            }
        }
        Field::BindSecretId => {
            role.bind_secret_id = f
                .opt_bool("bind_secret_id")?
                .filter(|_| f.is_set("bind_secret_id"))
                .ok_or_else(|| missing("bind_secret_id"))?;
        }
        Field::SecretIdNumUses => {
            let n = f
                .opt_int("secret_id_num_uses")?
                .ok_or_else(|| missing("secret_id_num_uses"))?;
            if n < 0 {
                return Err(LogicalError::bad("secret_id_num_uses cannot be negative"));
            }
            role.secret_id_num_uses = n as u64;
        }
        Field::SecretIdTtl => {
            role.secret_id_ttl =
                opt_secs(f, "secret_id_ttl")?.ok_or_else(|| missing("secret_id_ttl"))?;
        }
        Field::Period => {
            if f.is_set("token_period") {
                role.token.token_period = opt_secs(f, "token_period")?.unwrap_or(0);
                role.period = if f.is_set("period") {
                    role.token.token_period
                } else {
                    0
                };
            } else if f.is_set("period") {
                role.period = opt_secs(f, "period")?.unwrap_or(0);
                role.token.token_period = role.period;
            } else {
                return Err(missing("period"));
            }
            let max = inner.max_lease_secs();
            if role.token.token_period > max {
                return Err(LogicalError::bad(format!(
                    "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
                    go_duration(role.token.token_period),
                    go_duration(max)
                )));
            }
        }
        Field::TokenNumUses => {
            let n = f
                .opt_int("token_num_uses")?
                .ok_or_else(|| missing("token_num_uses"))?;
            if n < 0 {
                return Err(LogicalError::bad("'token_num_uses' cannot be negative"));
            }
            role.token.token_num_uses = n as u64;
        }
        Field::TokenTtl => {
            role.token.token_ttl = opt_secs(f, "token_ttl")?.ok_or_else(|| missing("token_ttl"))?;
            if role.token.token_max_ttl > 0 && role.token.token_ttl > role.token.token_max_ttl {
                return Err(LogicalError::bad(
                    "token_ttl should not be greater than token_max_ttl",
                ));
            }
        }
        Field::TokenMaxTtl => {
            role.token.token_max_ttl =
                opt_secs(f, "token_max_ttl")?.ok_or_else(|| missing("token_max_ttl"))?;
            if role.token.token_max_ttl > 0 && role.token.token_ttl > role.token.token_max_ttl {
                return Err(LogicalError::bad(
                    "token_max_ttl should be greater than or equal to token_ttl",
                ));
            }
        }
        Field::RoleId => {
            let id = f.string("role_id")?;
            if id.is_empty() {
                return Err(missing("role_id"));
            }
            role.role_id = id;
        }
        Field::LocalSecretIds => return Err(LogicalError::UnsupportedOperation),
    }
    save(inner, &role, Some(previous.as_str())).await?;
    Ok(None)
}

/// Resets one field of a role to its default through its sub-path.
pub(crate) async fn delete_field(
    inner: &Inner,
    f: &FieldData,
    field: Field,
) -> Result<Option<Response>> {
    let name = role_name(f)?;
    let _guard = inner.role_locks.lock(&name).await;
    let Some(mut role) = load(inner, &name).await? else {
        return Ok(None);
    };
    match field {
        Field::Policies => {
            role.token.token_policies.clear();
            role.policies.clear();
        }
        Field::BoundCidrList | Field::SecretIdBoundCidrs => role.secret_id_bound_cidrs.clear(),
        Field::TokenBoundCidrs => role.token.token_bound_cidrs.clear(),
        Field::BindSecretId => role.bind_secret_id = true,
        Field::SecretIdNumUses => role.secret_id_num_uses = 0,
        Field::SecretIdTtl => role.secret_id_ttl = 0,
        Field::Period => {
            role.token.token_period = 0;
            role.period = 0;
        }
        Field::TokenNumUses => role.token.token_num_uses = 0,
        Field::TokenTtl => role.token.token_ttl = 0,
        Field::TokenMaxTtl => role.token.token_max_ttl = 0,
        Field::RoleId | Field::LocalSecretIds => return Err(LogicalError::UnsupportedOperation),
    }
    let previous = role.role_id.clone();
    save(inner, &role, Some(previous.as_str())).await?;
    Ok(None)
}
