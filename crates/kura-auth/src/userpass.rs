//! The `userpass` auth method: users with a password and token parameters, and a login that
//! issues a token for them.
//!
//! Paths (relative to the mount): `users` (LIST), `users/<name>` (create, read, update,
//! delete), `users/<name>/password`, `users/<name>/policies`, `login/<name>`. Usernames are
//! folded to lowercase. Each user is stored at `user/<name>` with its password hash (see
//! [`crate::password`]) — never the password.

use std::sync::Arc;

use async_trait::async_trait;
use kura_logical::{
    BackendConfig, FieldData, FieldSpec, FieldType, LogicalBackend, LogicalError, Map, Operation,
    PathSpec, PathTable, Request, Response, Result, SpecialPaths, Storage, StorageExt,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cidr;
use crate::password;
use crate::token_params::{self, old_policies, old_secs, token_fields, upgrade, TokenParams};
use crate::util::{self, internal, name_re, plain_500, StripedLocks};

/// Message of every failed password check (unknown user or wrong password alike).
const INVALID_CREDENTIALS: &str = "invalid username or password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    List,
    User,
    Password,
    Policies,
    Login,
}

fn table() -> PathTable<P> {
    use FieldType as T;
    use Operation as O;
    let username = || FieldSpec::new("username", T::String, "Username for this user.");
    let password = || FieldSpec::new("password", T::String, "Password for this user.");
    let password_hash = || {
        FieldSpec::new(
            "password_hash",
            T::String,
            "Pre-hashed bcrypt password for this user. Mutually exclusive with password.",
        )
    };
    let mut user_fields = vec![
        username(),
        password(),
        password_hash(),
        FieldSpec::new(
            "policies",
            T::CommaStringSlice,
            "Use \"token_policies\" instead.",
        ),
        FieldSpec::new("ttl", T::Duration, "Use \"token_ttl\" instead."),
        FieldSpec::new("max_ttl", T::Duration, "Use \"token_max_ttl\" instead."),
        FieldSpec::new(
            "bound_cidrs",
            T::CommaStringSlice,
            "Use \"token_bound_cidrs\" instead.",
        ),
    ];
    user_fields.extend(token_fields());
    PathTable::new(vec![
        (
            PathSpec::new(
                "users/?",
                &[O::List],
                "Manage users allowed to authenticate.",
            )
            .fields(vec![
                FieldSpec::new("after", T::String, "List entries after this one."),
                FieldSpec::new("limit", T::Int, "Maximum number of entries to return."),
            ]),
            P::List,
        ),
        (
            PathSpec::new(
                concat!("users/", name_re!("username")),
                &[O::Read, O::Create, O::Update, O::Delete],
                "Manage users allowed to authenticate.",
            )
            .fields(user_fields)
            .with_existence_check(),
            P::User,
        ),
        (
            PathSpec::new(
                concat!("users/", name_re!("username"), "/password"),
                &[O::Update],
                "Reset user's password.",
            )
            .fields(vec![username(), password(), password_hash()]),
            P::Password,
        ),
        (
            PathSpec::new(
                concat!("users/", name_re!("username"), "/policies"),
                &[O::Update],
                "Update the policies associated with the username.",
            )
            .fields(vec![
                username(),
                FieldSpec::new(
                    "policies",
                    T::CommaStringSlice,
                    "Use \"token_policies\" instead.",
                ),
                FieldSpec::new(
                    "token_policies",
                    T::CommaStringSlice,
                    "Comma-separated list of policies",
                ),
            ]),
            P::Policies,
        ),
        (
            PathSpec::new(
                concat!("login/", name_re!("username")),
                &[O::Update],
                "Log in with a username and password.",
            )
            .fields(vec![
                FieldSpec::new("username", T::String, "Username of the user."),
                password(),
            ])
            .forwarded(),
            P::Login,
        ),
    ])
}

/// A stored user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct UserEntry {
    #[serde(flatten)]
    token: TokenParams,
    /// argon2id PHC string, or a bcrypt hash set through `password_hash`.
    password_hash: String,
    /// Legacy alias of `token_policies` (shown on reads only when set).
    policies: Vec<String>,
    /// Legacy alias of `token_ttl`.
    ttl: u64,
    /// Legacy alias of `token_max_ttl`.
    max_ttl: u64,
    /// Legacy alias of `token_bound_cidrs`.
    bound_cidrs: Vec<String>,
}

impl UserEntry {
    /// Fills the token parameters from legacy fields of entries written before the upgrade.
    fn normalize(mut self) -> Self {
        if self.token.token_ttl == 0 && self.ttl > 0 {
            self.token.token_ttl = self.ttl;
        }
        if self.token.token_max_ttl == 0 && self.max_ttl > 0 {
            self.token.token_max_ttl = self.max_ttl;
        }
        if self.token.token_policies.is_empty() && !self.policies.is_empty() {
            self.token.token_policies = self.policies.clone();
        }
        if self.token.token_bound_cidrs.is_empty() && !self.bound_cidrs.is_empty() {
            self.token.token_bound_cidrs = self.bound_cidrs.clone();
        }
        self
    }
}

/// The userpass auth method over one mount's storage.
pub struct UserpassBackend {
    storage: Arc<dyn Storage>,
    table: PathTable<P>,
    locks: StripedLocks,
}

/// Creates a userpass backend for a mount.
pub fn userpass_factory(config: BackendConfig) -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(UserpassBackend::new(config)))
}

fn user_key(name: &str) -> String {
    format!("user/{}", name.to_lowercase())
}

/// Exactly one of `password` / `password_hash`, non-empty (OpenBao's rule and messages).
fn password_input(f: &FieldData) -> Result<(String, String)> {
    let pw = f.string("password")?;
    let hash = f.string("password_hash")?;
    match (pw.is_empty(), hash.is_empty()) {
        (false, false) => Err(LogicalError::bad(
            "only one of password or password_hash may be provided",
        )),
        (true, true) => Err(LogicalError::bad(
            "must provide either password or password_hash",
        )),
        _ => Ok((pw, hash)),
    }
}

/// The hash to store for a validated password input.
async fn new_hash(pw: &str, pre_hashed: String) -> Result<String> {
    if pw.is_empty() {
        password::validate_bcrypt_hash(&pre_hashed)
            .map_err(|e| LogicalError::bad(e.to_string()))?;
        Ok(pre_hashed)
    } else {
        password::hash_password(pw).await
    }
}

/// Applies the token parameters and their legacy aliases of a user write.
fn apply_fields(user: &mut UserEntry, f: &FieldData) -> Result<()> {
    user.token.parse(f)?;
    let UserEntry {
        token,
        policies,
        ttl,
        max_ttl,
        bound_cidrs,
        ..
    } = user;
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
        "ttl",
        "token_ttl",
        ttl,
        &mut token.token_ttl,
        old_secs("ttl"),
    )?;
    upgrade(
        f,
        "max_ttl",
        "token_max_ttl",
        max_ttl,
        &mut token.token_max_ttl,
        old_secs("max_ttl"),
    )?;
    upgrade(
        f,
        "bound_cidrs",
        "token_bound_cidrs",
        bound_cidrs,
        &mut token.token_bound_cidrs,
        |f| {
            token_params::parse_token_cidrs(&f.strings("bound_cidrs")?)
                .map_err(|e| LogicalError::bad(e.to_string()))
        },
    )?;
    if token.token_strictly_bind_ip && !token.token_bound_cidrs.is_empty() {
        return Err(LogicalError::bad(
            "'token_strictly_bind_ip' conflicts with 'token_bound_cidrs'; set only one",
        ));
    }
    Ok(())
}

impl UserpassBackend {
    /// A userpass backend over the mount's storage view.
    pub fn new(config: BackendConfig) -> Self {
        UserpassBackend {
            storage: config.storage,
            table: table(),
            locks: StripedLocks::new(64),
        }
    }

    async fn load(&self, name: &str) -> Result<Option<UserEntry>> {
        Ok(self
            .storage
            .get_json::<UserEntry>(&user_key(name))
            .await?
            .map(UserEntry::normalize))
    }

    async fn save(&self, name: &str, user: &UserEntry) -> Result<()> {
        self.storage.put_json(&user_key(name), user).await
    }

    async fn read_user(&self, name: &str) -> Result<Option<Response>> {
        let Some(user) = self.load(name).await? else {
            return Ok(None);
        };
        let mut data = Map::new();
        user.token.populate(&mut data);
        if user.ttl > 0 {
            data.insert("ttl".into(), json!(user.ttl));
        }
        if user.max_ttl > 0 {
            data.insert("max_ttl".into(), json!(user.max_ttl));
        }
        if !user.policies.is_empty() {
            data.insert("policies".into(), json!(user.token.token_policies));
        }
        if !user.bound_cidrs.is_empty() {
            data.insert("bound_cidrs".into(), json!(user.bound_cidrs));
        }
        Ok(Some(Response::with_data(data)))
    }

    async fn write_user(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        // Validate everything first, then hash outside the lock (it is the slow part), then
        // apply the same changes to the entry as stored once the lock is held.
        let existing = self.load(name).await?;
        let needs_password =
            existing.is_none() || f.is_set("password") || f.is_set("password_hash");
        apply_fields(&mut existing.clone().unwrap_or_default(), f)?;
        let hash = if needs_password {
            let (pw, pre) = password_input(f)?;
            Some(new_hash(&pw, pre).await?)
        } else {
            None
        };
        let _guard = self.locks.lock(name).await;
        let mut user = self.load(name).await?.unwrap_or_default();
        apply_fields(&mut user, f)?;
        if let Some(h) = hash {
            user.password_hash = h;
        }
        if user.password_hash.is_empty() {
            return Err(LogicalError::bad(
                "must provide either password or password_hash",
            ));
        }
        self.save(name, &user).await?;
        Ok(None)
    }

    async fn update_password(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        if self.load(name).await?.is_none() {
            return Err(internal("username does not exist"));
        }
        let (pw, pre) = password_input(f)?;
        let hash = new_hash(&pw, pre).await?;
        let _guard = self.locks.lock(name).await;
        let mut user = self
            .load(name)
            .await?
            .ok_or_else(|| internal("username does not exist"))?;
        user.password_hash = hash;
        self.save(name, &user).await?;
        Ok(None)
    }

    async fn update_policies(&self, name: &str, f: &FieldData) -> Result<Option<Response>> {
        let _guard = self.locks.lock(name).await;
        let mut user = self
            .load(name)
            .await?
            .ok_or_else(|| internal("username does not exist"))?;
        if f.is_set("token_policies") {
            user.token.token_policies = util::sanitize_policies(&f.strings("token_policies")?);
            user.policies = if f.is_set("policies") {
                user.token.token_policies.clone()
            } else {
                Vec::new()
            };
        } else if f.is_set("policies") {
            user.policies = old_policies(f)?;
            user.token.token_policies = user.policies.clone();
        }
        self.save(name, &user).await?;
        Ok(None)
    }

    async fn login(&self, req: &Request, f: &FieldData) -> Result<Option<Response>> {
        let name = f.string("username")?.to_lowercase();
        let password = f.string("password")?;
        if password.is_empty() {
            return Err(plain_500("missing password"));
        }
        let user = self.load(&name).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        // Always one full verification: against the user's hash, or a dummy one.
        if !password::verify_password(&password, stored).await? {
            return Err(LogicalError::bad(INVALID_CREDENTIALS));
        }
        let user = user.ok_or_else(|| LogicalError::bad(INVALID_CREDENTIALS))?;
        if !user.token.token_bound_cidrs.is_empty() {
            let ip = req.remote_addr.ok_or(LogicalError::PermissionDenied)?;
            if !cidr::ip_in_blocks(ip, &user.token.token_bound_cidrs) {
                return Err(LogicalError::PermissionDenied);
            }
        }
        let mut auth = user.token.to_auth(req.remote_addr)?;
        auth.metadata = Some([("username".to_string(), name.clone())].into());
        auth.display_name = name;
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}

#[async_trait]
impl LogicalBackend for UserpassBackend {
    fn backend_type(&self) -> &str {
        "userpass"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let spec = self.table.lookup(&req.relative_path).map(|(s, _, _)| s);
            return Ok(Some(util::help_response(spec)));
        }
        let route = self.table.route(req)?;
        let f = &route.fields;
        let name = f.string("username")?.to_lowercase();
        let resp = match (route.id, req.operation) {
            (P::List, _) => {
                let keys = self.storage.list("user/").await?;
                util::list_response(util::page(keys, f)?)
            }
            (P::User, Operation::Read) => self.read_user(&name).await?,
            (P::User, Operation::Delete) => {
                self.storage.delete(&user_key(&name)).await?;
                None
            }
            (P::User, _) => self.write_user(&name, f).await?,
            (P::Password, _) => self.update_password(&name, f).await?,
            (P::Policies, _) => self.update_policies(&name, f).await?,
            (P::Login, _) => self.login(req, f).await?,
        };
        Ok(util::warn_unknown(resp, f, req.operation))
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        let Some((_, P::User, caps)) = self.table.lookup(&req.relative_path) else {
            return Ok(None);
        };
        let name = caps.get("username").cloned().unwrap_or_default();
        Ok(Some(self.load(&name).await?.is_some()))
    }

    fn forwards_on_standby(&self, path: &str, _op: Operation) -> bool {
        self.table.forwards(path)
    }

    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            unauthenticated: vec!["login".into(), "login/*".into()],
            root: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
