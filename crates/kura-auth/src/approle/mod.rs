//! The `approle` auth method: roles with a role ID and secret IDs, for machines and services.
//!
//! Paths (relative to the mount) follow OpenBao 2.7: `role` (LIST), `role/<name>` (create,
//! read, update, delete), one sub-path per role field (`role/<name>/policies`,
//! `.../secret-id-num-uses`, `.../secret-id-ttl`, `.../token-ttl`, `.../token-max-ttl`,
//! `.../token-num-uses`, `.../bind-secret-id`, `.../bound-cidr-list`,
//! `.../secret-id-bound-cidrs`, `.../token-bound-cidrs`, `.../period`, `.../local-secret-ids`),
//! `role/<name>/role-id`, `role/<name>/secret-id` (generate; LIST gives accessors),
//! `role/<name>/custom-secret-id`, `role/<name>/secret-id/lookup`, `.../secret-id/destroy`,
//! `role/<name>/secret-id-accessor/lookup`, `.../secret-id-accessor/destroy`, `login`,
//! `tidy/secret-id`.
//!
//! Storage layout (under the mount's view):
//! - `salt`: a random 256-bit HMAC key, generated once by the first write that needs it;
//! - `role/<name>`: the role (names are lowercase);
//! - `role_id/<HMAC(role_id)>`: the role-ID index, pointing at the role name;
//! - `secret_id/<HMAC(role name)>/<HMAC(secret_id)>` (`secret_id_local/` for roles with
//!   `local_secret_ids`): one secret ID's properties — the secret ID itself is never stored;
//! - `accessor/<HMAC(accessor)>` (`accessor_local/`): the accessor index.
//!
//! Role IDs and secret IDs are found by their HMAC and then compared in constant time with the
//! HMAC kept inside the entry. A login that consumes a use of a limited secret ID holds the
//! secret ID's lock and writes the decremented entry — or, for the last use, deletes it and its
//! accessor in one storage transaction — so concurrent logins cannot spend one use twice.
//! Expired secret IDs are refused at login and lookup, and removed by `tidy/secret-id` and by a
//! background tidy every minute on the active node.

mod login;
mod role;
mod secret_id;
mod tidy;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use kura_logical::{
    BackendConfig, FieldSpec, FieldType, LogicalBackend, LogicalError, Operation, PathSpec,
    PathTable, Request, Response, Result, SpecialPaths, Storage, StorageExt, SystemView,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::token_params::token_fields;
use crate::util::{self, internal, name_re, StripedLocks};

pub use tidy::TidyReport;

/// Longest role name, secret ID or role ID accepted (OpenBao's HMAC input bound).
const MAX_HMAC_INPUT: usize = 4096;

/// How often the background tidy runs on the active node.
const TIDY_INTERVAL: Duration = Duration::from_secs(60);

/// Paths of the approle table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    RoleList,
    Role,
    Field(role::Field),
    RoleId,
    SecretId,
    CustomSecretId,
    SecretIdLookup,
    SecretIdDestroy,
    AccessorLookup,
    AccessorDestroy,
    Login,
    Tidy,
}

fn role_name_field() -> FieldSpec {
    FieldSpec::new(
        "role_name",
        FieldType::String,
        "Name of the role. Must be less than 4096 bytes.",
    )
}

fn table() -> PathTable<P> {
    use role::Field as F;
    use FieldType as T;
    use Operation as O;
    let rud = &[O::Read, O::Update, O::Delete][..];
    let field_path =
        |pattern: &'static str, field: F, synopsis: &'static str, extra: Vec<FieldSpec>| {
            let mut fields = vec![role_name_field()];
            fields.extend(extra);
            let ops = if field == F::LocalSecretIds {
                &[O::Read][..]
            } else {
                rud
            };
            (
                PathSpec::new(pattern, ops, synopsis).fields(fields),
                P::Field(field),
            )
        };
    let mut role_fields = vec![
        role_name_field(),
        FieldSpec::new("bind_secret_id", T::Bool, "Impose secret_id to be presented when logging in using this role. Defaults to 'true'.")
            .default_value(json!(true)),
        FieldSpec::new("bound_cidr_list", T::CommaStringSlice, "Use \"secret_id_bound_cidrs\" instead."),
        FieldSpec::new("secret_id_bound_cidrs", T::CommaStringSlice, "Comma separated string or list of CIDR blocks. If set, specifies the blocks of IP addresses which can perform the login operation."),
        FieldSpec::new("policies", T::CommaStringSlice, "Use \"token_policies\" instead."),
        FieldSpec::new("secret_id_num_uses", T::Int, "Number of times a SecretID can access the role, after which the SecretID will expire."),
        FieldSpec::new("secret_id_ttl", T::Duration, "Duration in seconds after which the issued SecretID should expire."),
        FieldSpec::new("period", T::Duration, "Use \"token_period\" instead."),
        FieldSpec::new("role_id", T::String, "Identifier of the role. Defaults to a UUID."),
        FieldSpec::new("local_secret_ids", T::Bool, "If set, the secret IDs generated using this role will be cluster local."),
    ];
    role_fields.extend(token_fields());
    let secret_id_fields = || {
        vec![
            role_name_field(),
            FieldSpec::new("metadata", T::String, "Metadata to be tied to the SecretID: a JSON object of strings or comma-separated key=value pairs."),
            FieldSpec::new("cidr_list", T::CommaStringSlice, "CIDR blocks enforcing secret IDs to be used from a specific set of IP addresses."),
            FieldSpec::new("token_bound_cidrs", T::CommaStringSlice, "CIDR blocks from which the issued token may be used."),
            FieldSpec::new("num_uses", T::Int, "Number of times this SecretID can be used."),
            FieldSpec::new("ttl", T::Duration, "Duration in seconds after which this SecretID expires."),
        ]
    };
    let secret_id = || FieldSpec::new("secret_id", T::String, "SecretID attached to the role.");
    let accessor = || FieldSpec::new("secret_id_accessor", T::String, "Accessor of the SecretID");
    let list_fields = || {
        vec![
            FieldSpec::new("after", T::String, "List entries after this one."),
            FieldSpec::new("limit", T::Int, "Maximum number of entries to return."),
        ]
    };
    let mut custom_fields = secret_id_fields();
    custom_fields.push(secret_id());
    let mut secret_id_list_fields = secret_id_fields();
    secret_id_list_fields.extend(list_fields());

    PathTable::new(vec![
        (
            PathSpec::new(
                "role/?",
                &[O::List],
                "Lists all the roles registered with the backend.",
            )
            .fields(list_fields()),
            P::RoleList,
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name")),
                &[O::Read, O::Create, O::Update, O::Delete],
                "Register an role with the backend.",
            )
            .fields(role_fields)
            .with_existence_check(),
            P::Role,
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/local-secret-ids"),
            F::LocalSecretIds,
            "Enables cluster local secret IDs",
            vec![],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/policies"),
            F::Policies,
            "Policies of the role.",
            vec![
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
            ],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/bound-cidr-list"),
            F::BoundCidrList,
            "Deprecated: CIDR blocks which can perform the login operation",
            vec![FieldSpec::new(
                "bound_cidr_list",
                T::CommaStringSlice,
                "Deprecated: use secret-id-bound-cidrs",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/secret-id-bound-cidrs"),
            F::SecretIdBoundCidrs,
            "CIDR blocks which can perform the login operation",
            vec![FieldSpec::new(
                "secret_id_bound_cidrs",
                T::CommaStringSlice,
                "CIDR blocks which can perform the login operation",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/token-bound-cidrs"),
            F::TokenBoundCidrs,
            "CIDR blocks which can use the returned token",
            vec![FieldSpec::new(
                "token_bound_cidrs",
                T::CommaStringSlice,
                "CIDR blocks which can use the returned token",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/bind-secret-id"),
            F::BindSecretId,
            "Impose secret_id to be presented during login using this role.",
            vec![FieldSpec::new(
                "bind_secret_id",
                T::Bool,
                "Impose secret_id to be presented when logging in using this role.",
            )
            .default_value(json!(true))],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/secret-id-num-uses"),
            F::SecretIdNumUses,
            "Use limit of the SecretID generated against the role.",
            vec![FieldSpec::new(
                "secret_id_num_uses",
                T::Int,
                "Number of times a SecretID can access the role.",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/secret-id-ttl"),
            F::SecretIdTtl,
            "Duration in seconds of the SecretID generated against the role.",
            vec![FieldSpec::new(
                "secret_id_ttl",
                T::Duration,
                "Duration in seconds after which the issued SecretID should expire.",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/period"),
            F::Period,
            "Updates the value of 'period' on the role",
            vec![
                FieldSpec::new("period", T::Duration, "Use \"token_period\" instead."),
                FieldSpec::new(
                    "token_period",
                    T::Duration,
                    "Renewal period of the issued tokens.",
                ),
            ],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/token-num-uses"),
            F::TokenNumUses,
            "Number of times issued tokens can be used",
            vec![FieldSpec::new(
                "token_num_uses",
                T::Int,
                "The maximum number of times a token may be used.",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/token-ttl"),
            F::TokenTtl,
            "Duration in seconds, the lifetime of the token issued by using the SecretID.",
            vec![FieldSpec::new(
                "token_ttl",
                T::Duration,
                "The initial ttl of the token to generate",
            )],
        ),
        field_path(
            concat!("role/", name_re!("role_name"), "/token-max-ttl"),
            F::TokenMaxTtl,
            "Duration in seconds, the maximum lifetime of the tokens issued.",
            vec![FieldSpec::new(
                "token_max_ttl",
                T::Duration,
                "The maximum lifetime of the generated token",
            )],
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name"), "/role-id"),
                &[O::Read, O::Update],
                "Returns the 'role_id' of the role.",
            )
            .fields(vec![
                role_name_field(),
                FieldSpec::new(
                    "role_id",
                    T::String,
                    "Identifier of the role. Defaults to a UUID.",
                ),
            ]),
            P::RoleId,
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name"), "/secret-id/?"),
                &[O::Update, O::List],
                "Generate a SecretID against this role.",
            )
            .fields(secret_id_list_fields),
            P::SecretId,
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name"), "/secret-id/lookup/?"),
                &[O::Update],
                "Read the properties of an issued secret_id",
            )
            .fields(vec![role_name_field(), secret_id()]),
            P::SecretIdLookup,
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name"), "/secret-id/destroy/?"),
                &[O::Update, O::Delete],
                "Invalidate an issued secret_id",
            )
            .fields(vec![role_name_field(), secret_id()]),
            P::SecretIdDestroy,
        ),
        (
            PathSpec::new(
                concat!(
                    "role/",
                    name_re!("role_name"),
                    "/secret-id-accessor/lookup/?"
                ),
                &[O::Update],
                "Read an issued secret_id, using its accessor",
            )
            .fields(vec![role_name_field(), accessor()]),
            P::AccessorLookup,
        ),
        (
            PathSpec::new(
                concat!(
                    "role/",
                    name_re!("role_name"),
                    "/secret-id-accessor/destroy/?"
                ),
                &[O::Update, O::Delete],
                "Delete an issued secret_id, using its accessor",
            )
            .fields(vec![role_name_field(), accessor()]),
            P::AccessorDestroy,
        ),
        (
            PathSpec::new(
                concat!("role/", name_re!("role_name"), "/custom-secret-id"),
                &[O::Update],
                "Assign a SecretID of choice against the role.",
            )
            .fields(custom_fields),
            P::CustomSecretId,
        ),
        (
            PathSpec::new(
                "login",
                &[O::Update],
                "Issue a token based on the credentials supplied",
            )
            .fields(vec![
                FieldSpec::new("role_id", T::String, "Unique identifier of the Role."),
                FieldSpec::new("secret_id", T::String, "SecretID belong to the App role")
                    .default_value(json!("")),
            ])
            .forwarded(),
            P::Login,
        ),
        (
            PathSpec::new(
                "tidy/secret-id",
                &[O::Update],
                "Trigger the clean-up of expired SecretID entries.",
            )
            .forwarded(),
            P::Tidy,
        ),
    ])
}

#[derive(Serialize, Deserialize)]
struct SaltEntry {
    hmac_key: String,
}

/// State shared by the backend and its background tidy.
pub(crate) struct Inner {
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
    salt: RwLock<Option<hmac::Key>>,
    salt_init: tokio::sync::Mutex<()>,
    role_locks: StripedLocks,
    secret_locks: StripedLocks,
    tidy_running: AtomicBool,
}

impl Inner {
    /// The mount's HMAC key. With `create`, generates and stores it on first use; without, a
    /// mount that never stored anything has none (`None`).
    async fn salt(&self, create: bool) -> Result<Option<hmac::Key>> {
        if let Some(k) = self.salt.read().expect("salt lock").clone() {
            return Ok(Some(k));
        }
        let _guard = self.salt_init.lock().await;
        if let Some(k) = self.salt.read().expect("salt lock").clone() {
            return Ok(Some(k));
        }
        let bytes = match self.storage.get_json::<SaltEntry>("salt").await? {
            Some(e) => hex::decode(&e.hmac_key)
                .map_err(|_| LogicalError::Internal("corrupt approle salt".into()))?,
            None if create => {
                let mut b = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut b)
                    .map_err(|_| LogicalError::Internal("random salt generation failed".into()))?;
                self.storage
                    .put_json(
                        "salt",
                        &SaltEntry {
                            hmac_key: hex::encode(&b),
                        },
                    )
                    .await?;
                b
            }
            None => return Ok(None),
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
        *self.salt.write().expect("salt lock") = Some(key.clone());
        Ok(Some(key))
    }

    /// The mount's HMAC key, creating it if needed.
    async fn salt_create(&self) -> Result<hmac::Key> {
        self.salt(true)
            .await?
            .ok_or_else(|| LogicalError::Internal("approle salt unavailable".into()))
    }

    /// The mount's maximum lease TTL in seconds.
    fn max_lease_secs(&self) -> u64 {
        self.system.max_lease_ttl().as_secs()
    }
}

/// Hex HMAC-SHA256 of `value` under `key`; `what` names the value in the error.
fn hmac_hex(key: &hmac::Key, value: &str, what: &str) -> Result<String> {
    if value.len() > MAX_HMAC_INPUT {
        return Err(internal(format!(
            "failed to create HMAC of {what}: value is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    Ok(hex::encode(hmac::sign(key, value.as_bytes()).as_ref()))
}

/// Constant-time equality of two strings (lengths may differ).
fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The approle auth method over one mount's storage.
pub struct ApproleBackend {
    inner: Arc<Inner>,
    table: PathTable<P>,
    periodic: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Creates an approle backend for a mount. Inside a tokio runtime it also starts the
/// once-a-minute tidy of expired secret IDs (skipped while the node is a standby; stopped by
/// `cleanup` or when the backend is dropped).
pub fn approle_factory(config: BackendConfig) -> Result<Arc<dyn LogicalBackend>> {
    let backend = Arc::new(ApproleBackend::new(config));
    backend.start_periodic_tidy();
    Ok(backend)
}

impl ApproleBackend {
    /// An approle backend over the mount's storage view (no background tidy; see
    /// [`approle_factory`]).
    pub fn new(config: BackendConfig) -> Self {
        ApproleBackend {
            inner: Arc::new(Inner {
                storage: config.storage,
                system: config.system,
                salt: RwLock::new(None),
                salt_init: tokio::sync::Mutex::new(()),
                role_locks: StripedLocks::new(64),
                secret_locks: StripedLocks::new(256),
                tidy_running: AtomicBool::new(false),
            }),
            table: table(),
            periodic: Mutex::new(None),
        }
    }

    fn start_periodic_tidy(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let handle = rt.spawn(async move {
            let mut tick = tokio::time::interval(TIDY_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if inner.system.is_standby() {
                    continue;
                }
                if let Err(e) = tidy::run_guarded(&inner).await {
                    tracing::warn!(error = %e, "approle: periodic tidy of secret IDs failed");
                }
            }
        });
        *self.periodic.lock().expect("periodic lock") = Some(handle);
    }

    /// Removes expired secret IDs and dangling accessor or secret-ID entries now, and reports
    /// what it did. `tidy/secret-id` runs the same in the background.
    pub async fn tidy_secret_ids(&self) -> Result<TidyReport> {
        tidy::tidy(&self.inner).await
    }
}

impl Drop for ApproleBackend {
    fn drop(&mut self) {
        if let Some(h) = self.periodic.lock().ok().and_then(|mut p| p.take()) {
            h.abort();
        }
    }
}

#[async_trait]
impl LogicalBackend for ApproleBackend {
    fn backend_type(&self) -> &str {
        "approle"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let spec = self.table.lookup(&req.relative_path).map(|(s, _, _)| s);
            return Ok(Some(util::help_response(spec)));
        }
        let route = self.table.route(req)?;
        let f = &route.fields;
        let inner = &self.inner;
        let op = req.operation;
        let resp = match route.id {
            P::RoleList => role::list(inner, f).await?,
            P::Role => match op {
                Operation::Read => role::read(inner, f).await?,
                Operation::Delete => role::delete(inner, f).await?,
                _ => role::write(inner, f).await?,
            },
            P::Field(field) => match op {
                Operation::Read => role::read_field(inner, f, field).await?,
                Operation::Delete => role::delete_field(inner, f, field).await?,
                _ => role::update_field(inner, f, field).await?,
            },
            P::RoleId => match op {
                Operation::Read => role::read_field(inner, f, role::Field::RoleId).await?,
                _ => role::update_field(inner, f, role::Field::RoleId).await?,
            },
            P::SecretId => match op {
                Operation::List => secret_id::list_accessors(inner, f).await?,
                _ => secret_id::generate(inner, f, None).await?,
            },
            P::CustomSecretId => {
                let custom = f.string("secret_id")?;
                secret_id::generate(inner, f, Some(custom)).await?
            }
            P::SecretIdLookup => secret_id::lookup(inner, f).await?,
            P::SecretIdDestroy => secret_id::destroy(inner, f).await?,
            P::AccessorLookup => secret_id::accessor_lookup(inner, f).await?,
            P::AccessorDestroy => secret_id::accessor_destroy(inner, f).await?,
            P::Login => login::login(inner, req, f).await?,
            P::Tidy => Some(tidy::start(&self.inner)),
        };
        Ok(util::warn_unknown(resp, f, op))
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        let Some((_, P::Role, caps)) = self.table.lookup(&req.relative_path) else {
            return Ok(None);
        };
        let name = caps.get("role_name").cloned().unwrap_or_default();
        Ok(Some(role::load(&self.inner, &name).await?.is_some()))
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

    async fn invalidate(&self, key: &str) {
        if key == "salt" {
            *self.inner.salt.write().expect("salt lock") = None;
        }
    }

    async fn cleanup(&self) {
        if let Some(h) = self.periodic.lock().expect("periodic lock").take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests;
