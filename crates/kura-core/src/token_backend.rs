//! The `auth/token/` backend: token creation, lookup, renewal, revocation, roles, accessors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kura_logical::{
    Auth, FieldData, FieldSpec, FieldType, LogicalBackend, LogicalError, Operation, PathSpec,
    PathTable, Request, Response, Result, SpecialPaths, SystemView,
};
use kura_policy::Capability;
use serde_json::{json, Value};

use crate::policy_store::PolicyStore;
use crate::token::{NewToken, TokenEntry, TokenRole, TokenStore};
use crate::util::unix_now;

#[derive(Clone, Copy, Debug, PartialEq)]
enum P {
    Create,
    CreateOrphan,
    CreateRole,
    Lookup,
    LookupSelf,
    LookupAccessor,
    Renew,
    RenewSelf,
    RenewAccessor,
    Revoke,
    RevokeSelf,
    RevokeAccessor,
    RevokeOrphan,
    Roles,
    Role,
    Accessors,
    Tidy,
}

use FieldType as T;
use Operation as O;

fn create_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("role_name", T::String, "token role"),
        FieldSpec::new("id", T::String, "explicit token ID (root only)"),
        FieldSpec::new("policies", T::CommaStringSlice, "policies"),
        FieldSpec::new("meta", T::KvPairs, "metadata"),
        FieldSpec::new("no_parent", T::Bool, "create an orphan"),
        FieldSpec::new("no_default_policy", T::Bool, "do not attach default"),
        FieldSpec::new("ttl", T::Duration, "TTL"),
        FieldSpec::new("lease", T::Duration, "deprecated TTL"),
        FieldSpec::new("explicit_max_ttl", T::Duration, "hard maximum TTL"),
        FieldSpec::new("period", T::Duration, "renewal period"),
        FieldSpec::new("display_name", T::String, "display name"),
        FieldSpec::new("num_uses", T::Int, "use limit"),
        FieldSpec::new("renewable", T::Bool, "renewable").default_value(json!(true)),
        FieldSpec::new("type", T::String, "service or batch"),
        FieldSpec::new("entity_alias", T::String, "entity alias"),
    ]
}

fn table() -> PathTable<P> {
    let token = || FieldSpec::new("token", T::String, "token");
    let accessor = || FieldSpec::new("accessor", T::String, "accessor");
    let increment = || FieldSpec::new("increment", T::Duration, "renewal increment");
    let rw = &[O::Update][..];
    PathTable::new(vec![
        (
            PathSpec::new("create", rw, "Create a token")
                .fields(create_fields())
                .forwarded(),
            P::Create,
        ),
        (
            PathSpec::new("create-orphan", rw, "Create an orphan token")
                .fields(create_fields())
                .forwarded(),
            P::CreateOrphan,
        ),
        (
            PathSpec::new(
                "create/(?P<role_name>[^/]+)",
                rw,
                "Create a token from a role",
            )
            .fields(create_fields())
            .forwarded(),
            P::CreateRole,
        ),
        (
            PathSpec::new("lookup", &[O::Read, O::Update], "Look up a token").fields(vec![token()]),
            P::Lookup,
        ),
        (
            PathSpec::new(
                "lookup-self",
                &[O::Read, O::Update],
                "Look up the caller's token",
            )
            .fields(vec![token()]),
            P::LookupSelf,
        ),
        (
            PathSpec::new("lookup-accessor", rw, "Look up a token by accessor")
                .fields(vec![accessor()]),
            P::LookupAccessor,
        ),
        (
            PathSpec::new("renew", rw, "Renew a token")
                .fields(vec![token(), increment()])
                .forwarded(),
            P::Renew,
        ),
        (
            PathSpec::new("renew-self", rw, "Renew the caller's token")
                .fields(vec![token(), increment()])
                .forwarded(),
            P::RenewSelf,
        ),
        (
            PathSpec::new("renew-accessor", rw, "Renew a token by accessor")
                .fields(vec![accessor(), increment()])
                .forwarded(),
            P::RenewAccessor,
        ),
        (
            PathSpec::new("revoke", rw, "Revoke a token and its children")
                .fields(vec![token()])
                .forwarded(),
            P::Revoke,
        ),
        (
            PathSpec::new("revoke-self", rw, "Revoke the caller's token").forwarded(),
            P::RevokeSelf,
        ),
        (
            PathSpec::new("revoke-accessor", rw, "Revoke a token by accessor")
                .fields(vec![accessor()])
                .forwarded(),
            P::RevokeAccessor,
        ),
        (
            PathSpec::new(
                "revoke-orphan",
                rw,
                "Revoke a token, orphaning its children",
            )
            .fields(vec![token()])
            .forwarded(),
            P::RevokeOrphan,
        ),
        (
            PathSpec::new("roles/?", &[O::List], "List token roles"),
            P::Roles,
        ),
        (
            PathSpec::new(
                "roles/(?P<role_name>[^/]+)",
                &[O::Read, O::Create, O::Update, O::Delete],
                "Token roles",
            )
            .fields(vec![
                FieldSpec::new("role_name", T::String, "role"),
                FieldSpec::new("allowed_policies", T::CommaStringSlice, ""),
                FieldSpec::new("disallowed_policies", T::CommaStringSlice, ""),
                FieldSpec::new("orphan", T::Bool, ""),
                FieldSpec::new("renewable", T::Bool, "").default_value(json!(true)),
                FieldSpec::new("period", T::Duration, ""),
                FieldSpec::new("token_period", T::Duration, ""),
                FieldSpec::new("explicit_max_ttl", T::Duration, ""),
                FieldSpec::new("token_explicit_max_ttl", T::Duration, ""),
                FieldSpec::new("path_suffix", T::String, ""),
                FieldSpec::new("token_ttl", T::Duration, ""),
                FieldSpec::new("token_max_ttl", T::Duration, ""),
                FieldSpec::new("token_num_uses", T::Int, ""),
                FieldSpec::new("token_bound_cidrs", T::CommaStringSlice, ""),
                FieldSpec::new("token_type", T::String, ""),
                FieldSpec::new("token_no_default_policy", T::Bool, ""),
            ])
            .with_existence_check(),
            P::Role,
        ),
        (
            PathSpec::new("accessors/?", &[O::List], "List accessors"),
            P::Accessors,
        ),
        (
            PathSpec::new("tidy", rw, "Tidy the token store").forwarded(),
            P::Tidy,
        ),
    ])
}

/// The token auth method.
pub struct TokenBackend {
    store: Arc<TokenStore>,
    policies: Arc<PolicyStore>,
    system: Arc<dyn SystemView>,
    paths: PathTable<P>,
}

impl TokenBackend {
    /// A token backend over the store.
    pub fn new(
        store: Arc<TokenStore>,
        policies: Arc<PolicyStore>,
        system: Arc<dyn SystemView>,
    ) -> Self {
        TokenBackend {
            store,
            policies,
            system,
            paths: table(),
        }
    }

    async fn caller(&self, req: &Request) -> Result<TokenEntry> {
        self.store
            .lookup(&req.client_token)
            .await?
            .ok_or(LogicalError::PermissionDenied)
    }

    async fn caller_has_sudo(&self, req: &Request, caller: &TokenEntry) -> Result<bool> {
        if caller.is_root() {
            return Ok(true);
        }
        let acl = self.policies.acl(&caller.policies).await?;
        Ok(acl.check(&req.path, Capability::SUDO, None).allowed)
    }

    async fn create(&self, req: &Request, f: &FieldData, kind: P) -> Result<Option<Response>> {
        let caller = self.caller(req).await?;
        let sudo = self.caller_has_sudo(req, &caller).await?;
        let role = if kind == P::CreateRole {
            let name = f.string("role_name")?;
            Some(
                self.store
                    .role(&name)
                    .await?
                    .ok_or_else(|| LogicalError::bad(format!("unknown role {name}")))?,
            )
        } else {
            None
        };
        let explicit_id = f.opt_string("id")?.filter(|s| !s.is_empty());
        if explicit_id.is_some() && !sudo {
            return Err(LogicalError::bad(
                "root or sudo privileges required to specify token id",
            ));
        }
        let no_parent = f.bool("no_parent")?;
        if no_parent && !sudo {
            return Err(LogicalError::bad(
                "root or sudo privileges required to create orphan token",
            ));
        }
        let orphan =
            kind == P::CreateOrphan || no_parent || role.as_ref().is_some_and(|r| r.orphan);

        let requested = f.strings("policies")?;
        let no_default = f.bool("no_default_policy")?
            || role.as_ref().is_some_and(|r| r.token_no_default_policy);
        let mut policies: Vec<String> = if requested.is_empty() {
            match &role {
                Some(r) if !r.allowed_policies.is_empty() => r.allowed_policies.clone(),
                _ => caller.policies.clone(),
            }
        } else {
            requested.iter().map(|p| p.trim().to_lowercase()).collect()
        };
        if let Some(r) = &role {
            if !requested.is_empty() && !r.allowed_policies.is_empty() {
                for p in &policies {
                    if p != "default" && !r.allowed_policies.contains(p) {
                        return Err(LogicalError::bad(format!(
                            "token policies ({p}) must be subset of the role's allowed policies"
                        )));
                    }
                }
            }
            if let Some(p) = policies.iter().find(|p| r.disallowed_policies.contains(p)) {
                return Err(LogicalError::bad(format!(
                    "token policy ({p}) is disallowed by this role"
                )));
            }
        } else if !sudo {
            for p in &policies {
                if p != "default" && !caller.policies.contains(p) {
                    return Err(LogicalError::bad("child policies must be subset of parent"));
                }
            }
        }
        if no_default {
            policies.retain(|p| p != "default");
        } else if !policies.iter().any(|p| p == "root" || p == "default") {
            policies.push("default".to_string());
        }
        policies.sort();
        policies.dedup();
        if policies.is_empty() {
            return Err(LogicalError::bad("token must have at least one policy"));
        }

        let num_uses = f.int("num_uses")?;
        if num_uses < 0 {
            return Err(LogicalError::bad("number of uses cannot be negative"));
        }
        let num_uses = if num_uses == 0 {
            role.as_ref().map_or(0, |r| r.token_num_uses)
        } else {
            num_uses
        };
        let mut period = f.duration("period")?;
        if !period.is_zero() && !sudo && role.is_none() {
            return Err(LogicalError::bad(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let mut explicit_max = f.duration("explicit_max_ttl")?;
        if let Some(r) = &role {
            if r.token_period > 0 {
                period = Duration::from_secs(r.token_period as u64);
            }
            if r.token_explicit_max_ttl > 0 {
                let role_max = Duration::from_secs(r.token_explicit_max_ttl as u64);
                if explicit_max.is_zero() || role_max < explicit_max {
                    explicit_max = role_max;
                }
            }
        }
        let mut ttl = f.opt_duration("ttl")?.unwrap_or_default();
        if ttl.is_zero() {
            ttl = f.duration("lease")?;
        }
        if ttl.is_zero() {
            if let Some(r) = &role {
                ttl = Duration::from_secs(r.token_ttl.max(0) as u64);
            }
        }
        let mut warnings = Vec::new();
        let max = self.system.max_lease_ttl();
        let is_root_token = policies.iter().any(|p| p == "root");
        if !period.is_zero() {
            ttl = period;
        } else if ttl.is_zero() && !(is_root_token && explicit_max.is_zero()) {
            ttl = self.system.default_lease_ttl();
        }
        if !explicit_max.is_zero() && (ttl.is_zero() || ttl > explicit_max) {
            ttl = explicit_max;
        }
        if ttl > max {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                kura_config::duration::format_duration(ttl),
                kura_config::duration::format_duration(max)
            ));
            ttl = max;
        }
        let renewable = f.bool("renewable")? && role.as_ref().is_none_or(|r| r.renewable);
        let display = f.string("display_name")?;
        let display_name = if display.is_empty() {
            "token".to_string()
        } else {
            format!("token-{}", sanitize_display(&display))
        };
        let path = match (&role, kind) {
            (Some(r), _) => format!("auth/token/create/{}", r.name),
            (None, P::CreateOrphan) => "auth/token/create-orphan".to_string(),
            _ => "auth/token/create".to_string(),
        };
        let meta = f.opt_kv_pairs("meta")?.unwrap_or_default();
        let (id, entry) = self
            .store
            .create(NewToken {
                id: explicit_id,
                policies: policies.clone(),
                parent: if orphan {
                    String::new()
                } else {
                    caller.hash.clone()
                },
                path,
                meta: meta.clone(),
                display_name,
                num_uses,
                ttl,
                explicit_max_ttl: explicit_max,
                max_ttl: role
                    .as_ref()
                    .filter(|r| r.token_max_ttl > 0)
                    .map_or(Duration::ZERO, |r| {
                        Duration::from_secs(r.token_max_ttl as u64)
                    }),
                period,
                renewable,
                role: role.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
                bound_cidrs: role.map(|r| r.token_bound_cidrs).unwrap_or_default(),
            })
            .await?;
        let mut resp = Response {
            auth: Some(Auth {
                client_token: id,
                accessor: entry.accessor.clone(),
                policies: policies.clone(),
                token_policies: policies,
                metadata: if meta.is_empty() { None } else { Some(meta) },
                lease_duration: entry.creation_ttl as u64,
                renewable: entry.renewable,
                entity_id: String::new(),
                token_type: "service".to_string(),
                orphan,
                num_uses: num_uses as u64,
                ..Default::default()
            }),
            ..Default::default()
        };
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    async fn renew(
        &self,
        mut entry: TokenEntry,
        increment: Duration,
        client_token: String,
    ) -> Result<Option<Response>> {
        if !entry.renewable {
            return Err(LogicalError::bad("lease is not renewable"));
        }
        let now = unix_now();
        let max = if entry.explicit_max_ttl > 0 {
            entry.explicit_max_ttl
        } else if entry.max_ttl > 0 {
            entry.max_ttl
        } else {
            self.system.max_lease_ttl().as_secs() as i64
        };
        let hard_end = entry.creation_time + max;
        let wanted = if entry.period > 0 {
            entry.period
        } else if !increment.is_zero() {
            increment.as_secs() as i64
        } else if entry.creation_ttl > 0 {
            entry.creation_ttl
        } else {
            self.system.default_lease_ttl().as_secs() as i64
        };
        let mut warnings = Vec::new();
        let mut expire = now + wanted;
        if (entry.period == 0 || entry.explicit_max_ttl > 0) && expire > hard_end {
            expire = hard_end;
            warnings.push(
                "TTL of the token was capped by its max TTL; it will expire then".to_string(),
            );
        }
        entry.expire_time = expire;
        self.store.save(&entry).await?;
        let resp = Response {
            auth: Some(Auth {
                client_token,
                accessor: entry.accessor.clone(),
                policies: entry.policies.clone(),
                token_policies: entry.policies.clone(),
                metadata: if entry.meta.is_empty() {
                    None
                } else {
                    Some(entry.meta.clone())
                },
                lease_duration: entry.ttl(now) as u64,
                renewable: entry.renewable,
                entity_id: entry.entity_id.clone(),
                token_type: "service".to_string(),
                orphan: entry.parent.is_empty(),
                num_uses: entry.num_uses.max(0) as u64,
                ..Default::default()
            }),
            warnings,
            ..Default::default()
        };
        Ok(Some(resp))
    }

    async fn entry_for_token_field(
        &self,
        f: &FieldData,
        req: &Request,
    ) -> Result<(TokenEntry, String)> {
        let mut token = f.string("token")?;
        if token.is_empty() {
            token = req.client_token.clone();
        }
        match self.store.lookup(&token).await? {
            Some(e) => Ok((e, token)),
            None => Err(LogicalError::bad("token not found")),
        }
    }

    async fn entry_for_accessor(&self, f: &FieldData) -> Result<TokenEntry> {
        let accessor = f.string("accessor")?;
        if accessor.is_empty() {
            return Err(LogicalError::bad("missing accessor"));
        }
        let hash = self
            .store
            .hash_for_accessor(&accessor)
            .await?
            .ok_or_else(|| LogicalError::bad("invalid accessor"))?;
        self.store
            .lookup_hash(&hash)
            .await?
            .ok_or_else(|| LogicalError::bad("invalid accessor"))
    }

    async fn role_write(&self, f: &FieldData, req: &Request) -> Result<Option<Response>> {
        let name = f.string("role_name")?;
        let mut role = if req.operation == O::Update {
            self.store.role(&name).await?.unwrap_or_default()
        } else {
            TokenRole::default()
        };
        role.name = name;
        if req.operation == O::Create || f.is_set("renewable") {
            role.renewable = f.bool("renewable")?;
        }
        if f.is_set("allowed_policies") {
            role.allowed_policies = f.strings("allowed_policies")?;
        }
        if f.is_set("disallowed_policies") {
            role.disallowed_policies = f.strings("disallowed_policies")?;
        }
        if f.is_set("orphan") {
            role.orphan = f.bool("orphan")?;
        }
        for (field, alias) in [
            ("token_period", "period"),
            ("token_explicit_max_ttl", "explicit_max_ttl"),
        ] {
            let v = if f.is_set(field) {
                Some(f.duration(field)?)
            } else if f.is_set(alias) {
                Some(f.duration(alias)?)
            } else {
                None
            };
            if let Some(v) = v {
                let secs = v.as_secs() as i64;
                if field == "token_period" {
                    role.token_period = secs;
                } else {
                    role.token_explicit_max_ttl = secs;
                }
            }
        }
        if f.is_set("path_suffix") {
            role.path_suffix = f.string("path_suffix")?;
        }
        if f.is_set("token_ttl") {
            role.token_ttl = f.duration("token_ttl")?.as_secs() as i64;
        }
        if f.is_set("token_max_ttl") {
            role.token_max_ttl = f.duration("token_max_ttl")?.as_secs() as i64;
        }
        if f.is_set("token_num_uses") {
            role.token_num_uses = f.int("token_num_uses")?;
        }
        if f.is_set("token_bound_cidrs") {
            role.token_bound_cidrs = f.strings("token_bound_cidrs")?;
        }
        if f.is_set("token_no_default_policy") {
            role.token_no_default_policy = f.bool("token_no_default_policy")?;
        }
        let tt = f.string("token_type")?;
        role.token_type = match tt.as_str() {
            "" => {
                if role.token_type.is_empty() {
                    "default-service".to_string()
                } else {
                    role.token_type.clone()
                }
            }
            "service" | "default-service" | "default" => tt,
            "batch" | "default-batch" => {
                return Err(LogicalError::bad(
                    "batch tokens are not supported by Kura yet",
                ))
            }
            other => {
                return Err(LogicalError::bad(format!(
                    "invalid 'token_type' value {other:?}"
                )))
            }
        };
        self.store.set_role(&role).await?;
        Ok(None)
    }
}

/// Vault-style display-name sanitising: lowercase, non-alphanumerics become dashes.
fn sanitize_display(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[async_trait]
impl LogicalBackend for TokenBackend {
    fn backend_type(&self) -> &str {
        "token"
    }

    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            unauthenticated: Vec::new(),
            root: vec!["revoke-orphan*".to_string(), "accessors*".to_string()],
        }
    }

    fn forwards_on_standby(&self, path: &str, _op: Operation) -> bool {
        self.paths.forwards(path)
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        if !self.paths.has_existence_check(&req.relative_path) {
            return Ok(None);
        }
        let route = self.paths.route(req)?;
        let name = route.fields.string("role_name")?;
        Ok(Some(self.store.role(&name).await?.is_some()))
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        let route = self.paths.route(req)?;
        let f = &route.fields;
        match route.id {
            P::Create | P::CreateOrphan | P::CreateRole => self.create(req, f, route.id).await,
            P::Lookup | P::LookupSelf => {
                let (entry, id) = if route.id == P::LookupSelf {
                    (self.caller(req).await?, req.client_token.clone())
                } else {
                    let t = f.string("token")?;
                    if t.is_empty() {
                        (self.caller(req).await?, req.client_token.clone())
                    } else {
                        let e = self.store.lookup(&t).await?.ok_or(LogicalError::Coded {
                            status: 403,
                            message: "bad token".into(),
                        })?;
                        (e, t)
                    }
                };
                Ok(Some(Response::from_json(entry.lookup_data(Some(&id)))))
            }
            P::LookupAccessor => {
                let entry = self.entry_for_accessor(f).await?;
                Ok(Some(Response::from_json(entry.lookup_data(None))))
            }
            P::Renew => {
                let (entry, id) = self.entry_for_token_field(f, req).await?;
                self.renew(entry, f.duration("increment")?, id).await
            }
            P::RenewSelf => {
                let entry = self.caller(req).await?;
                self.renew(entry, f.duration("increment")?, req.client_token.clone()).await
            }
            P::RenewAccessor => {
                let entry = self.entry_for_accessor(f).await?;
                self.renew(entry, f.duration("increment")?, String::new()).await
            }
            P::Revoke => {
                let t = f.string("token")?;
                if t.is_empty() {
                    return Err(LogicalError::bad("missing token"));
                }
                if let Some(e) = self.store.lookup(&t).await? {
                    self.store.revoke_tree(&e.hash).await?;
                }
                Ok(None)
            }
            P::RevokeSelf => {
                let e = self.caller(req).await?;
                self.store.revoke_tree(&e.hash).await?;
                Ok(None)
            }
            P::RevokeAccessor => {
                let e = self.entry_for_accessor(f).await?;
                self.store.revoke_tree(&e.hash).await?;
                Ok(None)
            }
            P::RevokeOrphan => {
                let t = f.string("token")?;
                let e = self
                    .store
                    .lookup(&t)
                    .await?
                    .ok_or_else(|| LogicalError::bad("bad token"))?;
                self.store.revoke_orphan(&e.hash).await?;
                Ok(None)
            }
            P::Roles => {
                let keys = self.store.roles().await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Response::from_json(json!({ "keys": keys }))))
            }
            P::Role => {
                let name = f.string("role_name")?;
                match req.operation {
                    O::Read => Ok(self
                        .store
                        .role(&name)
                        .await?
                        .map(|r| Response::from_json(r.to_api()))),
                    O::Delete => {
                        self.store.delete_role(&name).await?;
                        Ok(None)
                    }
                    _ => self.role_write(f, req).await,
                }
            }
            P::Accessors => {
                let keys = self.store.accessors().await?;
                Ok(Some(Response::from_json(json!({ "keys": keys }))))
            }
            P::Tidy => Ok(Some(Response::from_json(Value::Object(Default::default())).warn(
                "Tidy operation successfully started. Any information from the operation will be printed to Kura's server logs.",
            ))),
        }
    }
}
