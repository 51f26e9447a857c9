//! The system backend (`sys/`): seal, health, mounts, auth methods, policies, capabilities.
//! Served by the core itself because it manages the core's own tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use kura_logical::{
    FieldData, FieldSpec, FieldType, LogicalError, Operation, PathSpec, PathTable, RawResponse,
    Request, Response, Result, SpecialPaths, Storage, StorageExt,
};
use serde_json::{json, Map, Value};

use crate::core::{decode_key, new_mount_entry, Core, Runtime};
use crate::mounts::{normalize_mount_path, MountConfig, MountKind, Mounted, Router};
use crate::util::rfc3339;

#[derive(Clone, Copy, Debug, PartialEq)]
enum S {
    Seal,
    KeyStatus,
    Rotate,
    Mounts,
    Mount,
    MountTune,
    Remount,
    RemountStatus,
    UiMounts,
    UiMount,
    Auths,
    Auth,
    AuthTune,
    PolicyList,
    Policy,
    AclList,
    Acl,
    Capabilities,
    CapabilitiesSelf,
    CapabilitiesAccessor,
    RekeyBackup,
    LeaseLookup,
    LeaseList,
    LeaseRenew,
    LeaseRevoke,
    LeaseRevokePrefix,
    LeaseRevokeForce,
    LeaseTidy,
    GenerateRootToken,
    AuditList,
    Audit,
    AuditHash,
    Wrap,
    Unwrap,
    WrapLookup,
    Rewrap,
    RaftConfiguration,
    RaftRemovePeer,
    RaftSnapshot,
    RaftSnapshotForce,
    StepDown,
    HaStatus,
    AutopilotConfiguration,
    AutopilotState,
}

use FieldType as T;
use Operation as O;

fn table() -> PathTable<S> {
    let path = || FieldSpec::new("path", T::String, "mount path");
    let name = || FieldSpec::new("name", T::LowerCaseString, "policy name");
    let mount_fields = || {
        vec![
            path(),
            FieldSpec::new("type", T::String, "engine type"),
            FieldSpec::new("description", T::String, "description"),
            FieldSpec::new("config", T::Map, "mount configuration"),
            FieldSpec::new("options", T::KvPairs, "engine options"),
            FieldSpec::new("local", T::Bool, "local mount"),
            FieldSpec::new("seal_wrap", T::Bool, "seal wrap"),
            FieldSpec::new("external_entropy_access", T::Bool, "entropy access"),
            FieldSpec::new("plugin_name", T::String, "plugin name"),
            FieldSpec::new("plugin_version", T::String, "plugin version"),
        ]
    };
    let tune_fields = || {
        vec![
            path(),
            FieldSpec::new("default_lease_ttl", T::Raw, ""),
            FieldSpec::new("max_lease_ttl", T::Raw, ""),
            FieldSpec::new("description", T::String, ""),
            FieldSpec::new("options", T::KvPairs, ""),
            FieldSpec::new("listing_visibility", T::String, ""),
            FieldSpec::new("audit_non_hmac_request_keys", T::CommaStringSlice, ""),
            FieldSpec::new("audit_non_hmac_response_keys", T::CommaStringSlice, ""),
            FieldSpec::new("passthrough_request_headers", T::CommaStringSlice, ""),
            FieldSpec::new("allowed_response_headers", T::CommaStringSlice, ""),
            FieldSpec::new("token_type", T::String, ""),
            FieldSpec::new("force_no_cache", T::Bool, ""),
        ]
    };
    let caps = || {
        vec![
            FieldSpec::new("token", T::String, ""),
            FieldSpec::new("accessor", T::String, ""),
            FieldSpec::new("path", T::CommaStringSlice, ""),
            FieldSpec::new("paths", T::CommaStringSlice, ""),
        ]
    };
    let policy_fields = || {
        vec![
            name(),
            FieldSpec::new("policy", T::String, ""),
            FieldSpec::new("rules", T::String, ""),
        ]
    };
    PathTable::new(vec![
        (
            PathSpec::new("seal", &[O::Update], "Seal the node"),
            S::Seal,
        ),
        (
            PathSpec::new("key-status", &[O::Read], "Barrier key status"),
            S::KeyStatus,
        ),
        (
            PathSpec::new(
                "storage/raft/configuration",
                &[O::Read],
                "The raft servers of the cluster",
            ),
            S::RaftConfiguration,
        ),
        (
            PathSpec::new("ha-status", &[O::Read], "The nodes of the HA cluster"),
            S::HaStatus,
        ),
        (
            PathSpec::new(
                "storage/raft/autopilot/configuration",
                &[O::Read, O::Update],
                "Raft autopilot configuration",
            )
            .fields(
                [
                    "cleanup_dead_servers",
                    "last_contact_threshold",
                    "dead_server_last_contact_threshold",
                    "max_trailing_logs",
                    "min_quorum",
                    "server_stabilization_time",
                ]
                .iter()
                .map(|n| FieldSpec::new(n, T::Raw, ""))
                .collect(),
            ),
            S::AutopilotConfiguration,
        ),
        (
            PathSpec::new(
                "storage/raft/autopilot/state",
                &[O::Read],
                "Raft autopilot state",
            ),
            S::AutopilotState,
        ),
        (
            PathSpec::new(
                "storage/raft/remove-peer",
                &[O::Update],
                "Remove a raft server",
            )
            .fields(vec![FieldSpec::new(
                "server_id",
                T::String,
                "the server's node_id",
            )]),
            S::RaftRemovePeer,
        ),
        (
            PathSpec::new(
                "storage/raft/snapshot",
                &[O::Read, O::Update],
                "Save (read) or restore (update) a raft snapshot",
            ),
            S::RaftSnapshot,
        ),
        (
            PathSpec::new(
                "storage/raft/snapshot-force",
                &[O::Update],
                "Restore a raft snapshot of another cluster",
            ),
            S::RaftSnapshotForce,
        ),
        (
            PathSpec::new(
                "step-down",
                &[O::Update],
                "Make the active node give up the HA lock",
            ),
            S::StepDown,
        ),
        (
            PathSpec::new("rotate(/keyring)?", &[O::Update], "Rotate the barrier key"),
            S::Rotate,
        ),
        (
            PathSpec::new("mounts/?", &[O::Read], "List secrets engines"),
            S::Mounts,
        ),
        (
            PathSpec::new(
                "mounts/(?P<path>.+?)/tune/?",
                &[O::Read, O::Update],
                "Tune a mount",
            )
            .fields(tune_fields()),
            S::MountTune,
        ),
        (
            PathSpec::new(
                "mounts/(?P<path>.+)",
                &[O::Read, O::Update, O::Delete],
                "A mount",
            )
            .fields(mount_fields()),
            S::Mount,
        ),
        (
            PathSpec::new("remount", &[O::Update], "Move a mount").fields(vec![
                FieldSpec::new("from", T::String, ""),
                FieldSpec::new("to", T::String, ""),
            ]),
            S::Remount,
        ),
        (
            PathSpec::new("remount/status/(?P<id>.+)", &[O::Read], "Remount status")
                .fields(vec![FieldSpec::new("id", T::String, "")]),
            S::RemountStatus,
        ),
        (
            PathSpec::new("internal/ui/mounts/?", &[O::Read], "Mounts for the UI"),
            S::UiMounts,
        ),
        (
            PathSpec::new(
                "internal/ui/mounts/(?P<path>.+)",
                &[O::Read],
                "One mount for the UI",
            )
            .fields(vec![path()]),
            S::UiMount,
        ),
        (
            PathSpec::new("auth/?", &[O::Read], "List auth methods"),
            S::Auths,
        ),
        (
            PathSpec::new(
                "auth/(?P<path>.+?)/tune/?",
                &[O::Read, O::Update],
                "Tune an auth method",
            )
            .fields(tune_fields()),
            S::AuthTune,
        ),
        (
            PathSpec::new(
                "auth/(?P<path>.+)",
                &[O::Read, O::Update, O::Delete],
                "An auth method",
            )
            .fields(mount_fields()),
            S::Auth,
        ),
        (
            PathSpec::new("policy/?", &[O::Read, O::List], "List policies"),
            S::PolicyList,
        ),
        (
            PathSpec::new(
                "policy/(?P<name>.+)",
                &[O::Read, O::Update, O::Delete],
                "A policy",
            )
            .fields(policy_fields()),
            S::Policy,
        ),
        (
            PathSpec::new("policies/acl/?", &[O::List], "List ACL policies"),
            S::AclList,
        ),
        (
            PathSpec::new(
                "policies/acl/(?P<name>.+)",
                &[O::Read, O::Update, O::Delete],
                "An ACL policy",
            )
            .fields(policy_fields()),
            S::Acl,
        ),
        (
            PathSpec::new("leases/lookup", &[O::Update], "Look up a lease").fields(lease_fields()),
            S::LeaseLookup,
        ),
        (
            PathSpec::new("leases/lookup/(?P<prefix>.*)", &[O::List], "List leases")
                .fields(lease_fields()),
            S::LeaseList,
        ),
        (
            PathSpec::new(
                "(leases/)?renew(/(?P<url_lease_id>.+))?",
                &[O::Update],
                "Renew a lease",
            )
            .fields(lease_fields()),
            S::LeaseRenew,
        ),
        (
            PathSpec::new(
                "(leases/)?revoke(/(?P<url_lease_id>.+))?",
                &[O::Update],
                "Revoke a lease",
            )
            .fields(lease_fields()),
            S::LeaseRevoke,
        ),
        (
            PathSpec::new(
                "(leases/)?revoke-prefix/(?P<prefix>.+)",
                &[O::Update],
                "Revoke leases by prefix",
            )
            .fields(lease_fields()),
            S::LeaseRevokePrefix,
        ),
        (
            PathSpec::new(
                "(leases/)?revoke-force/(?P<prefix>.+)",
                &[O::Update],
                "Force-revoke leases",
            )
            .fields(lease_fields()),
            S::LeaseRevokeForce,
        ),
        (
            PathSpec::new("audit/?", &[O::Read], "List audit devices"),
            S::AuditList,
        ),
        (
            PathSpec::new(
                "audit/(?P<path>.+)",
                &[O::Update, O::Delete],
                "An audit device",
            )
            .fields(vec![
                FieldSpec::new("path", T::String, ""),
                FieldSpec::new("type", T::String, ""),
                FieldSpec::new("description", T::String, ""),
                FieldSpec::new("options", T::KvPairs, ""),
                FieldSpec::new("local", T::Bool, ""),
            ]),
            S::Audit,
        ),
        (
            PathSpec::new(
                "audit-hash/(?P<path>.+)",
                &[O::Update],
                "Hash with a device's salt",
            )
            .fields(vec![
                FieldSpec::new("path", T::String, ""),
                FieldSpec::new("input", T::String, ""),
            ]),
            S::AuditHash,
        ),
        (
            PathSpec::new(
                "generate-root-token/(attempt|update)",
                &[O::Read, O::Update, O::Delete],
                "Generate a root token from unseal key shares",
            ),
            S::GenerateRootToken,
        ),
        (
            PathSpec::new("leases/tidy", &[O::Update], "Tidy leases"),
            S::LeaseTidy,
        ),
        (
            PathSpec::new("wrapping/wrap", &[O::Update], "Wrap arbitrary data"),
            S::Wrap,
        ),
        (
            PathSpec::new("wrapping/unwrap", &[O::Update], "Unwrap a wrapped response")
                .fields(vec![FieldSpec::new("token", T::String, "")]),
            S::Unwrap,
        ),
        (
            PathSpec::new(
                "wrapping/lookup",
                &[O::Read, O::Update],
                "Look up a wrapping token",
            )
            .fields(vec![FieldSpec::new("token", T::String, "")]),
            S::WrapLookup,
        ),
        (
            PathSpec::new("wrapping/rewrap", &[O::Update], "Rewrap a wrapped response")
                .fields(vec![FieldSpec::new("token", T::String, "")]),
            S::Rewrap,
        ),
        (
            PathSpec::new(
                "rekey/(recovery-key-)?backup",
                &[O::Read, O::Delete],
                "Backed-up unseal keys",
            ),
            S::RekeyBackup,
        ),
        (
            PathSpec::new("capabilities", &[O::Update], "Capabilities of a token").fields(caps()),
            S::Capabilities,
        ),
        (
            PathSpec::new(
                "capabilities-self",
                &[O::Update],
                "Capabilities of the caller",
            )
            .fields(caps()),
            S::CapabilitiesSelf,
        ),
        (
            PathSpec::new(
                "capabilities-accessor",
                &[O::Update],
                "Capabilities by accessor",
            )
            .fields(caps()),
            S::CapabilitiesAccessor,
        ),
    ])
}

fn lease_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("lease_id", T::String, "lease ID"),
        FieldSpec::new("url_lease_id", T::String, "lease ID in the URL"),
        FieldSpec::new("increment", T::Duration, "renewal increment"),
        FieldSpec::new("prefix", T::String, "lease ID prefix"),
        FieldSpec::new("sync", T::Bool, "revoke synchronously").default_value(json!(true)),
    ]
}

fn sys_table() -> &'static PathTable<S> {
    static TABLE: std::sync::OnceLock<PathTable<S>> = std::sync::OnceLock::new();
    TABLE.get_or_init(table)
}

/// Special paths of `sys/` (relative): sudo-only paths. Built once.
pub(crate) fn special_paths() -> &'static SpecialPaths {
    static SPECIAL: std::sync::OnceLock<SpecialPaths> = std::sync::OnceLock::new();
    SPECIAL.get_or_init(|| SpecialPaths {
        unauthenticated: vec!["wrapping/lookup".to_string()],
        root: [
            "auth/*",
            "remount",
            "audit",
            "audit/*",
            "raw",
            "raw/*",
            "rotate",
            "rotate/*",
            "seal",
            "step-down",
            "revoke-prefix/*",
            "revoke-force/*",
            "leases/revoke-prefix/*",
            "leases/revoke-force/*",
            "generate-root-token/*",
            "leases/lookup/*",
            "config/*",
            "storage/raft/remove-peer",
            "storage/raft/snapshot",
            "storage/raft/snapshot-force",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    })
}

/// A raw JSON answer without the envelope.
fn raw_json(status: u16, v: Value) -> Response {
    Response {
        raw: Some(RawResponse {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&v).unwrap_or_default(),
        }),
        ..Default::default()
    }
}

/// A response whose data OpenBao also copies to the top level of the envelope.
fn legacy(v: Value) -> Response {
    let mut r = Response::from_json(v);
    r.headers
        .push(("x-kura-legacy-top-level".into(), "1".into()));
    r
}

impl Core {
    /// Seal status as `sys/seal-status` and `sys/unseal` return it.
    pub async fn seal_status(&self) -> Result<Value> {
        let joining = self.join_pending().await;
        let initialized = self.is_initialized().await? || joining;
        let cfg = match self.seal_config().await? {
            Some(c) => Some(c),
            None => self.pending_join_seal_config().await,
        };
        let (progress, nonce) = self.unseal_progress().await;
        let mut v = json!({
            "type": "shamir",
            "initialized": initialized,
            "sealed": self.is_sealed(),
            "t": cfg.as_ref().map_or(0, |c| c.secret_threshold),
            "n": cfg.as_ref().map_or(0, |c| c.secret_shares),
            "progress": progress,
            "nonce": nonce,
            "version": crate::VERSION,
            "build_date": "",
            "migration": false,
            "recovery_seal": false,
            "storage_type": self.storage_type(),
        });
        if let Some(ci) = self.cluster_info() {
            v["cluster_name"] = json!(ci.name);
            v["cluster_id"] = json!(ci.id);
        }
        Ok(v)
    }

    /// Handles the endpoints that work without a token and while sealed.
    pub(crate) async fn handle_unauthenticated_sys(
        &self,
        req: &Request,
    ) -> Result<Option<Response>> {
        let path = req.path.trim_end_matches('/');
        let f = |specs: Vec<FieldSpec>| FieldData::new(req.data.clone(), Default::default(), specs);
        match (path, req.operation) {
            ("sys/init", O::Read) => Ok(Some(raw_json(
                200,
                json!({ "initialized": self.is_initialized().await? }),
            ))),
            ("sys/init", O::Update | O::Create) => {
                let fd = f(vec![
                    FieldSpec::new("secret_shares", T::Int, ""),
                    FieldSpec::new("secret_threshold", T::Int, ""),
                    FieldSpec::new("pgp_keys", T::CommaStringSlice, ""),
                    FieldSpec::new("root_token_pgp_key", T::String, ""),
                    FieldSpec::new("stored_shares", T::Int, ""),
                ]);
                if !fd.strings("pgp_keys")?.is_empty()
                    || !fd.string("root_token_pgp_key")?.is_empty()
                {
                    return Err(LogicalError::bad(
                        "PGP-encrypted key shares are not supported by Kura yet",
                    ));
                }
                let shares = fd.int("secret_shares")?;
                let threshold = fd.int("secret_threshold")?;
                if !(1..=255).contains(&shares) || !(1..=255).contains(&threshold) {
                    return Err(LogicalError::bad(
                        "invalid seal configuration: secret_shares and secret_threshold must be between 1 and 255",
                    ));
                }
                let init = self.initialize(shares as u8, threshold as u8).await?;
                let b64 = base64::engine::general_purpose::STANDARD;
                Ok(Some(raw_json(
                    200,
                    json!({
                        "keys": init.keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
                        "keys_base64": init.keys.iter().map(|k| b64.encode(k.as_slice())).collect::<Vec<_>>(),
                        "root_token": init.root_token,
                    }),
                )))
            }
            ("sys/seal-status", O::Read) => Ok(Some(raw_json(200, self.seal_status().await?))),
            ("sys/unseal", O::Update | O::Create) => {
                let fd = f(vec![
                    FieldSpec::new("key", T::String, ""),
                    FieldSpec::new("reset", T::Bool, ""),
                    FieldSpec::new("migrate", T::Bool, ""),
                ]);
                if fd.bool("reset")? {
                    self.reset_unseal().await;
                } else {
                    let key = fd.string("key")?;
                    if key.is_empty() {
                        return Err(LogicalError::bad(
                            "'key' must be specified in request body as JSON, or 'reset' set to true",
                        ));
                    }
                    if !self.is_initialized().await? && !self.join_pending().await {
                        return Err(LogicalError::bad("Vault is not initialized"));
                    }
                    let bytes = decode_key(&key)?;
                    if !(16..=33).contains(&bytes.len()) {
                        return Err(LogicalError::bad(format!(
                            "invalid unseal key: {} bytes, expected 16 to 33",
                            bytes.len()
                        )));
                    }
                    self.submit_unseal_key(&bytes).await?;
                }
                Ok(Some(raw_json(200, self.seal_status().await?)))
            }
            ("sys/health", O::Read) => Ok(Some(self.health(req).await?)),
            ("sys/generate-root/attempt" | "sys/generate-root/update", _) => {
                if !self.config.unauthed_generate_root {
                    return Err(LogicalError::UnsupportedOperation);
                }
                if self.is_sealed() {
                    return Err(LogicalError::Sealed);
                }
                // The legacy endpoints answer without the envelope.
                let r = self
                    .generate_root_endpoint(path.ends_with("update"), req)
                    .await?;
                Ok(Some(match r.data {
                    Some(d) => raw_json(200, Value::Object(d)),
                    None => r,
                }))
            }
            ("sys/rekey/init" | "sys/rekey/update" | "sys/rekey/verify", _) => {
                if !self.config.unauthed_rekey {
                    return Err(LogicalError::UnsupportedOperation);
                }
                if self.is_sealed() {
                    return Err(LogicalError::Sealed);
                }
                let fd = f(vec![
                    FieldSpec::new("secret_shares", T::Int, ""),
                    FieldSpec::new("secret_threshold", T::Int, ""),
                    FieldSpec::new("pgp_keys", T::CommaStringSlice, ""),
                    FieldSpec::new("backup", T::Bool, ""),
                    FieldSpec::new("require_verification", T::Bool, ""),
                    FieldSpec::new("key", T::String, ""),
                    FieldSpec::new("nonce", T::String, ""),
                ]);
                let v = match (path, req.operation) {
                    ("sys/rekey/init", O::Read) => self.rekey_status().await?,
                    ("sys/rekey/init", O::Delete) => {
                        self.rekey_cancel().await;
                        return Ok(Some(Response {
                            status: Some(204),
                            ..Default::default()
                        }));
                    }
                    ("sys/rekey/verify", O::Read) => self.rekey_verify_status().await?,
                    ("sys/rekey/verify", O::Delete) => self.rekey_verify_cancel().await?,
                    ("sys/rekey/verify", _) => {
                        self.rekey_verify_update(&fd.string("key")?, &fd.string("nonce")?)
                            .await?
                    }
                    ("sys/rekey/init", _) => {
                        self.rekey_start(
                            fd.int("secret_shares")?,
                            fd.int("secret_threshold")?,
                            !fd.strings("pgp_keys")?.is_empty() || fd.bool("backup")?,
                            fd.bool("require_verification")?,
                        )
                        .await?
                    }
                    _ => {
                        self.rekey_update(&fd.string("key")?, &fd.string("nonce")?)
                            .await?
                    }
                };
                Ok(Some(raw_json(200, v)))
            }
            ("sys/storage/raft/bootstrap/challenge", O::Update | O::Create) => {
                let fd = f(vec![FieldSpec::new("server_id", T::String, "")]);
                let c = self.bootstrap_challenge(&fd.string("server_id")?).await?;
                Ok(Some(raw_json(
                    200,
                    serde_json::to_value(c).unwrap_or_default(),
                )))
            }
            ("sys/storage/raft/bootstrap/answer", O::Update | O::Create) => {
                let fd = f(vec![
                    FieldSpec::new("server_id", T::String, ""),
                    FieldSpec::new("answer", T::String, ""),
                ]);
                let r = self
                    .bootstrap_answer(&fd.string("server_id")?, &fd.string("answer")?)
                    .await?;
                Ok(Some(raw_json(
                    200,
                    serde_json::to_value(r).unwrap_or_default(),
                )))
            }
            ("sys/storage/raft/join", O::Update | O::Create) => {
                let fd = f(vec![
                    FieldSpec::new("leader_api_addr", T::String, ""),
                    FieldSpec::new("non_voter", T::Bool, ""),
                    FieldSpec::new("retry", T::Bool, ""),
                ]);
                let addr = fd.string("leader_api_addr")?;
                if addr.is_empty() {
                    return Err(LogicalError::bad("leader_api_addr is required"));
                }
                self.raft_join(&addr, !fd.bool("non_voter")?).await?;
                Ok(Some(raw_json(200, json!({ "joined": true }))))
            }
            ("sys/leader", O::Read) => {
                if !self.ha_enabled() {
                    return Ok(Some(raw_json(200, json!({ "ha_enabled": false }))));
                }
                if self.is_sealed() {
                    return Err(LogicalError::Sealed);
                }
                let active = self.current_state() == crate::HaState::Active;
                let (api, cluster, active_time) = if active {
                    (
                        self.config.api_addr.clone().unwrap_or_default(),
                        self.config.cluster_addr.clone().unwrap_or_default(),
                        self.active_time().unwrap_or_default(),
                    )
                } else {
                    match self.leader_advertisement().await {
                        Some(ad) => (ad.api_addr, ad.cluster_addr, String::new()),
                        None => (String::new(), String::new(), String::new()),
                    }
                };
                let active_time = if active_time.is_empty() {
                    "0001-01-01T00:00:00Z".to_string()
                } else {
                    active_time
                };
                Ok(Some(raw_json(
                    200,
                    json!({
                        "ha_enabled": true,
                        "is_self": active,
                        "active_time": active_time,
                        "leader_address": api,
                        "leader_cluster_address": cluster,
                        "performance_standby": false,
                        "performance_standby_last_remote_wal": 0,
                        "raft_committed_index": self.applied_index(),
                        "raft_applied_index": self.applied_index(),
                    }),
                )))
            }
            _ => Ok(None),
        }
    }

    /// `sys/generate-root[-token]/{attempt,update}`.
    async fn generate_root_endpoint(&self, update: bool, req: &Request) -> Result<Response> {
        let fd = FieldData::new(
            req.data.clone(),
            Default::default(),
            vec![
                FieldSpec::new("otp", T::String, ""),
                FieldSpec::new("pgp_key", T::String, ""),
                FieldSpec::new("key", T::String, ""),
                FieldSpec::new("nonce", T::String, ""),
            ],
        );
        if update {
            return self
                .root_generation_update(&fd.string("key")?, &fd.string("nonce")?)
                .await;
        }
        match req.operation {
            O::Read => self.root_generation_status().await,
            O::Delete => {
                self.root_generation_cancel().await;
                Ok(Response {
                    status: Some(204),
                    ..Default::default()
                })
            }
            _ => {
                self.root_generation_start(&fd.string("otp")?, &fd.string("pgp_key")?)
                    .await
            }
        }
    }

    async fn health(&self, req: &Request) -> Result<Response> {
        let q = FieldData::new(req.data.clone(), Default::default(), Vec::new());
        let code = |name: &str, default: u16| -> Result<u16> {
            match q.opt_int(name)? {
                Some(c) if (100..600).contains(&c) => Ok(c as u16),
                Some(_) => Err(LogicalError::bad(format!(
                    "{name} must be a valid HTTP status code"
                ))),
                None => Ok(default),
            }
        };
        let initialized = self.is_initialized().await?;
        let sealed = self.is_sealed();
        let state = self.current_state();
        let standby = state.is_standby();
        let status = if !initialized {
            code("uninitcode", 501)?
        } else if sealed {
            code("sealedcode", 503)?
        } else if standby {
            if q.bool("standbyok")?
                || (q.bool("perfstandbyok")? && state == crate::HaState::ReadServingStandby)
            {
                code("activecode", 200)?
            } else if state == crate::HaState::ReadServingStandby {
                code("performancestandbycode", code("standbycode", 429)?)?
            } else {
                code("standbycode", 429)?
            }
        } else {
            code("activecode", 200)?
        };
        let mut body = json!({
            "initialized": initialized,
            "sealed": sealed,
            "standby": standby,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": crate::util::unix_now(),
            "version": crate::VERSION,
        });
        if let Some(ci) = self.cluster_info() {
            body["cluster_name"] = json!(ci.name);
            body["cluster_id"] = json!(ci.id);
        }
        Ok(raw_json(status, body))
    }

    /// Handles an authenticated `sys/` request (ACL already checked).
    pub(crate) async fn handle_sys(
        &self,
        rt: &Arc<Runtime>,
        req: &Request,
    ) -> Result<Option<Response>> {
        let route = match sys_table().route(req) {
            Ok(r) => r,
            Err(LogicalError::UnsupportedPath) => {
                return Err(LogicalError::Coded {
                    status: 404,
                    message: format!("unsupported path {:?}", req.path),
                })
            }
            Err(e) => return Err(e),
        };
        let f = &route.fields;
        match route.id {
            S::Seal => {
                self.seal().await?;
                Ok(None)
            }
            S::RaftConfiguration => {
                let servers: Vec<Value> = self
                    .raft_configuration()?
                    .into_iter()
                    .map(|p| {
                        json!({
                            "node_id": p.node_id,
                            "address": p.address,
                            "leader": p.leader,
                            "voter": p.voter,
                            "protocol_version": "3",
                        })
                    })
                    .collect();
                Ok(Some(Response::from_json(
                    json!({ "config": { "index": self.applied_index(), "servers": servers } }),
                )))
            }
            S::AutopilotConfiguration if req.operation == O::Read => {
                self.raft_plane().ok_or_else(|| {
                    LogicalError::bad("raft storage is not in use: autopilot is not available")
                })?;
                let cfg = self.autopilot_config().await?;
                Ok(Some(Response::from_json(cfg.to_api())))
            }
            S::AutopilotConfiguration => {
                self.set_autopilot_config(&req.data).await?;
                Ok(None)
            }
            // Only the active node hears the standbys and runs autopilot: a standby that
            // serves reads hands these to it.
            S::AutopilotState | S::HaStatus
                if self.cluster_plane().is_some() && self.current_state().is_standby() =>
            {
                Err(LogicalError::Storage(kura_storage::StorageError::ReadOnly))
            }
            S::AutopilotState => Ok(Some(Response::from_json(self.autopilot_state().await?))),
            S::HaStatus => {
                let nodes: Vec<Value> = match self.cluster_plane() {
                    // The active node itself, then every standby heard from lately (its
                    // heartbeats, `last_echo`), as OpenBao lists them.
                    Some(plane) => {
                        let me = plane.node_id();
                        let mut nodes = vec![json!({
                            "hostname": me,
                            "api_address": self.config.api_addr.clone().unwrap_or_default(),
                            "cluster_address":
                                self.config.cluster_addr.clone().unwrap_or_default(),
                            "active_node": true,
                            "last_echo": Value::Null,
                            "version": crate::VERSION,
                        })];
                        for (echo, at) in plane.echoes() {
                            if echo.node_id == me {
                                continue;
                            }
                            nodes.push(json!({
                                "hostname": echo.node_id,
                                "api_address": echo.api_addr,
                                "cluster_address": echo.cluster_addr,
                                "active_node": false,
                                "last_echo": rfc3339(at),
                                "version": echo.version,
                            }));
                        }
                        nodes
                    }
                    None => vec![json!({
                        "hostname": self.config.cluster_name.clone().unwrap_or_default(),
                        "api_address": self.config.api_addr.clone().unwrap_or_default(),
                        "cluster_address": self.config.cluster_addr.clone().unwrap_or_default(),
                        "active_node": true,
                        "last_echo": Value::Null,
                        "version": crate::VERSION,
                    })],
                };
                Ok(Some(legacy(json!({ "nodes": nodes }))))
            }
            S::RaftRemovePeer => {
                self.raft_remove_peer(&f.string("server_id")?).await?;
                Ok(None)
            }
            S::StepDown => {
                self.step_down().await?;
                Ok(None)
            }
            S::RaftSnapshot if req.operation == O::Read => {
                let body = self.raft_snapshot_save().await?;
                Ok(Some(Response {
                    raw: Some(RawResponse {
                        status: 200,
                        content_type: "application/octet-stream".into(),
                        body,
                    }),
                    ..Default::default()
                }))
            }
            S::RaftSnapshot | S::RaftSnapshotForce => {
                let data = req
                    .raw_body
                    .clone()
                    .map(Arc::unwrap_or_clone)
                    .unwrap_or_default();
                self.raft_snapshot_restore(data, route.id == S::RaftSnapshotForce)
                    .await?;
                Ok(None)
            }
            S::KeyStatus => {
                let ks = self
                    .barrier
                    .key_status()
                    .map_err(crate::view::barrier_err)?;
                Ok(Some(legacy(json!({
                    "term": ks.term,
                    "install_time": rfc3339(ks.install_time),
                    "encryptions": ks.encryptions,
                }))))
            }
            S::Rotate => {
                self.barrier
                    .rotate()
                    .await
                    .map_err(crate::view::barrier_err)?;
                Ok(None)
            }
            S::Mounts => {
                let router = rt.router();
                let mut data = Map::new();
                data.insert(rt.system_mount.path.clone(), rt.system_mount.to_api());
                for m in router.entries(MountKind::Secret) {
                    data.insert(m.entry.path.clone(), m.entry.to_api());
                }
                Ok(Some(legacy(Value::Object(data))))
            }
            S::Auths => {
                let mut data = Map::new();
                for m in rt.router().entries(MountKind::Auth) {
                    data.insert(m.entry.path.clone(), m.entry.to_api());
                }
                Ok(Some(legacy(Value::Object(data))))
            }
            S::Mount | S::Auth => {
                let kind = if route.id == S::Mount {
                    MountKind::Secret
                } else {
                    MountKind::Auth
                };
                let path = normalize_mount_path(&f.string("path")?);
                match req.operation {
                    O::Read => {
                        if kind == MountKind::Secret && path == rt.system_mount.path {
                            return Ok(Some(legacy(rt.system_mount.to_api())));
                        }
                        let router = rt.router();
                        let found = router
                            .entries(kind)
                            .into_iter()
                            .find(|m| m.entry.path == path)
                            .map(|m| m.entry.to_api());
                        match found {
                            Some(v) => Ok(Some(legacy(v))),
                            None => {
                                Err(LogicalError::bad(format!("no matching mount at {path:?}")))
                            }
                        }
                    }
                    O::Delete => {
                        unmount(self, rt, &path, kind).await?;
                        Ok(None)
                    }
                    _ => {
                        let (config, options) = parse_mount_input(f)?;
                        let mut backend_type = f.string("type")?;
                        if backend_type.is_empty() {
                            backend_type = f.string("plugin_name")?;
                        }
                        let mut options = options;
                        if backend_type == "generic" {
                            backend_type = "kv".into();
                        }
                        if backend_type == "kv-v2" {
                            backend_type = "kv".into();
                            options.insert("version".into(), "2".into());
                        }
                        if backend_type.is_empty() {
                            return Err(LogicalError::bad(
                                "backend type must be specified as a string",
                            ));
                        }
                        let description = f.string("description")?;
                        mount_engine(
                            self,
                            &path,
                            &backend_type,
                            &description,
                            config,
                            options,
                            kind,
                        )
                        .await?;
                        Ok(None)
                    }
                }
            }
            S::MountTune | S::AuthTune => {
                let kind = if route.id == S::MountTune {
                    MountKind::Secret
                } else {
                    MountKind::Auth
                };
                let path = normalize_mount_path(&f.string("path")?);
                if req.operation == O::Read {
                    return tune_read(self, rt, &path, kind).map(Some);
                }
                tune_write(self, rt, &path, kind, f).await?;
                Ok(None)
            }
            S::Remount => {
                let from = f.string("from")?;
                let to = f.string("to")?;
                let id = remount(self, rt, &from, &to).await?;
                Ok(Some(legacy(json!({ "migration_id": id }))))
            }
            S::LeaseLookup => {
                let id = f.string("lease_id")?;
                if id.is_empty() {
                    return Err(LogicalError::bad("missing lease id"));
                }
                Ok(Some(self.lookup_lease(rt, &id).await?))
            }
            S::LeaseList => {
                let keys = rt.leases.list(&f.string("prefix")?).await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Response::from_json(json!({ "keys": keys }))))
            }
            S::LeaseRenew | S::LeaseRevoke => {
                let mut id = f.string("url_lease_id")?;
                if id.is_empty() {
                    id = f.string("lease_id")?;
                }
                if id.is_empty() {
                    return Err(LogicalError::bad("lease ID must be specified"));
                }
                if route.id == S::LeaseRenew {
                    return Ok(Some(
                        self.renew_lease(rt, &id, f.duration("increment")?).await?,
                    ));
                }
                if rt.leases.get(&id).await?.is_none() {
                    return Err(LogicalError::bad("invalid lease"));
                }
                self.revoke_lease(rt, &id, false).await?;
                Ok(None)
            }
            S::LeaseRevokePrefix | S::LeaseRevokeForce => {
                let prefix = f.string("prefix")?;
                self.revoke_lease_prefix(rt, &prefix, route.id == S::LeaseRevokeForce)
                    .await?;
                Ok(None)
            }
            S::LeaseTidy => Ok(None),
            S::AuditList => {
                let list = serde_json::to_value(self.audit_broker().list())
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                Ok(Some(legacy(list)))
            }
            S::Audit => {
                let path = f.string("path")?;
                if req.operation == O::Delete {
                    self.audit_broker()
                        .disable(&path)
                        .map_err(|e| LogicalError::bad(e.to_string()))?;
                    return Ok(None);
                }
                let config = kura_config::AuditDeviceConfig {
                    kind: f.string("type")?,
                    path,
                    description: f.opt_string("description")?,
                    local: f.bool("local")?,
                    options: f.opt_kv_pairs("options")?.unwrap_or_default(),
                    file: "api".into(),
                };
                self.enable_audit_api(config).await?;
                Ok(None)
            }
            S::AuditHash => {
                let path = f.string("path")?;
                let hash = self
                    .audit_broker()
                    .hash(&path, &f.string("input")?)
                    .map_err(|e| LogicalError::bad(format!("unknown audit backend {path}: {e}")))?;
                Ok(Some(legacy(json!({ "hash": hash }))))
            }
            S::GenerateRootToken => self
                .generate_root_endpoint(req.relative_path.ends_with("update"), req)
                .await
                .map(Some),
            S::Wrap => Ok(Some(Response::with_data(req.data.clone()))),
            S::Unwrap | S::WrapLookup | S::Rewrap => {
                let mut token = f.string("token")?;
                if token.is_empty() {
                    token = req.client_token.clone();
                }
                if token.is_empty() {
                    return Err(LogicalError::bad("no wrapping token supplied"));
                }
                let resp = match route.id {
                    S::Unwrap => self.unwrap(rt, &token).await?,
                    S::WrapLookup => self.wrapping_lookup(rt, &token).await?,
                    _ => self.rewrap(rt, &token).await?,
                };
                Ok(Some(resp))
            }
            S::RekeyBackup => match req.operation {
                // Kura never backs up unseal keys (PGP-encrypted shares are not supported), so
                // there is never anything to return or delete.
                O::Delete => Ok(None),
                _ => Err(LogicalError::bad("no backed-up keys found")),
            },
            S::RemountStatus => Err(LogicalError::bad(format!(
                "no migration with id {:?} (remounts complete synchronously in Kura)",
                f.string("id")?
            ))),
            S::UiMounts => {
                let token = req.token.as_ref().ok_or(LogicalError::PermissionDenied)?;
                let acl = rt.policies.acl(&token.policies).await?;
                let router = rt.router();
                let mut secret = Map::new();
                if acl.has_mount_access(&rt.system_mount.path) {
                    secret.insert(rt.system_mount.path.clone(), rt.system_mount.to_api());
                }
                let mut auth = Map::new();
                for m in router.all() {
                    if !acl.has_mount_access(&m.entry.route_path()) {
                        continue;
                    }
                    match m.entry.kind {
                        MountKind::Secret => secret.insert(m.entry.path.clone(), m.entry.to_api()),
                        MountKind::Auth => auth.insert(m.entry.path.clone(), m.entry.to_api()),
                    };
                }
                Ok(Some(Response::from_json(
                    json!({ "secret": secret, "auth": auth }),
                )))
            }
            S::UiMount => {
                let p = f.string("path")?;
                let router = rt.router();
                let m = router.route(&p).ok_or_else(|| LogicalError::Coded {
                    status: 403,
                    message: format!(
                        "preflight capability check returned 403, please ensure client's policies grant access to path {:?}",
                        normalize_mount_path(&p)
                    ),
                })?;
                let token = req.token.as_ref().ok_or(LogicalError::PermissionDenied)?;
                let acl = rt.policies.acl(&token.policies).await?;
                if !acl.has_mount_access(&m.entry.route_path()) {
                    return Err(LogicalError::Coded {
                        status: 403,
                        message: format!(
                            "preflight capability check returned 403, please ensure client's policies grant access to path {:?}",
                            m.entry.route_path()
                        ),
                    });
                }
                let mut v = m.entry.to_api();
                v["path"] = json!(m.entry.route_path());
                Ok(Some(Response::from_json(v)))
            }
            S::PolicyList => {
                let names = rt.policies.list().await?;
                Ok(Some(legacy(json!({ "keys": names, "policies": names }))))
            }
            S::AclList => {
                let names = rt.policies.list().await?;
                Ok(Some(Response::from_json(json!({ "keys": names }))))
            }
            S::Policy | S::Acl => {
                let name = f.string("name")?.to_lowercase();
                match req.operation {
                    O::Read => {
                        let raw = if name == "root" {
                            Some(String::new())
                        } else {
                            rt.policies.raw(&name).await?
                        };
                        Ok(raw.map(|raw| {
                            if route.id == S::Policy {
                                legacy(json!({ "name": name, "rules": raw }))
                            } else {
                                Response::from_json(json!({ "name": name, "policy": raw }))
                            }
                        }))
                    }
                    O::Delete => {
                        rt.policies.delete(&name).await?;
                        Ok(None)
                    }
                    _ => {
                        let mut text = f.string("policy")?;
                        if text.is_empty() {
                            text = f.string("rules")?;
                        }
                        // The API also accepts base64-encoded policies.
                        if !text.is_empty() && !text.contains('"') && !text.contains('{') {
                            if let Ok(decoded) =
                                base64::engine::general_purpose::STANDARD.decode(text.trim())
                            {
                                if let Ok(s) = String::from_utf8(decoded) {
                                    text = s;
                                }
                            }
                        }
                        if text.trim().is_empty() {
                            return Err(LogicalError::bad(
                                "'policy' parameter not supplied or empty",
                            ));
                        }
                        rt.policies.set(&name, &text).await?;
                        Ok(None)
                    }
                }
            }
            S::Capabilities | S::CapabilitiesSelf | S::CapabilitiesAccessor => {
                let entry = match route.id {
                    S::CapabilitiesSelf => {
                        let t = f.string("token")?;
                        let t = if t.is_empty() {
                            req.client_token.clone()
                        } else {
                            t
                        };
                        rt.tokens.lookup(&t).await?
                    }
                    S::Capabilities => rt.tokens.lookup(&f.string("token")?).await?,
                    _ => match rt.tokens.hash_for_accessor(&f.string("accessor")?).await? {
                        Some(h) => rt.tokens.lookup_hash(&h).await?,
                        None => None,
                    },
                };
                let entry = entry.ok_or_else(|| LogicalError::bad("invalid token"))?;
                let mut paths = f.strings("paths")?;
                paths.extend(f.strings("path")?);
                if paths.is_empty() {
                    return Err(LogicalError::bad("missing paths"));
                }
                let acl = rt.policies.acl(&entry.policies).await?;
                let mut data = Map::new();
                for p in &paths {
                    data.insert(
                        p.clone(),
                        json!(acl.capabilities(p.trim_start_matches('/'))),
                    );
                }
                if paths.len() == 1 {
                    let c = data[&paths[0]].clone();
                    data.insert("capabilities".into(), c);
                }
                Ok(Some(legacy(Value::Object(data))))
            }
        }
    }
}

fn parse_mount_input(f: &FieldData) -> Result<(MountConfig, BTreeMap<String, String>)> {
    let raw = f.opt_map("config")?.unwrap_or_default();
    let cf = FieldData::new(
        raw,
        Default::default(),
        vec![
            FieldSpec::new("default_lease_ttl", T::Duration, ""),
            FieldSpec::new("max_lease_ttl", T::Duration, ""),
            FieldSpec::new("force_no_cache", T::Bool, ""),
            FieldSpec::new("listing_visibility", T::String, ""),
            FieldSpec::new("audit_non_hmac_request_keys", T::CommaStringSlice, ""),
            FieldSpec::new("audit_non_hmac_response_keys", T::CommaStringSlice, ""),
            FieldSpec::new("passthrough_request_headers", T::CommaStringSlice, ""),
            FieldSpec::new("allowed_response_headers", T::CommaStringSlice, ""),
            FieldSpec::new("token_type", T::String, ""),
        ],
    );
    let config = MountConfig {
        default_lease_ttl: cf.duration("default_lease_ttl")?.as_secs(),
        max_lease_ttl: cf.duration("max_lease_ttl")?.as_secs(),
        force_no_cache: cf.bool("force_no_cache")?,
        listing_visibility: cf.string("listing_visibility")?,
        audit_non_hmac_request_keys: cf.strings("audit_non_hmac_request_keys")?,
        audit_non_hmac_response_keys: cf.strings("audit_non_hmac_response_keys")?,
        passthrough_request_headers: cf.strings("passthrough_request_headers")?,
        allowed_response_headers: cf.strings("allowed_response_headers")?,
        token_type: cf.string("token_type")?,
    };
    if config.max_lease_ttl != 0 && config.default_lease_ttl > config.max_lease_ttl {
        return Err(LogicalError::bad(
            "given default lease TTL greater than given max lease TTL",
        ));
    }
    let options = f.opt_kv_pairs("options")?.unwrap_or_default();
    Ok((config, options))
}

const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

/// Mounts an engine or auth method at `path`.
pub(crate) async fn mount_engine(
    core: &Core,
    path: &str,
    backend_type: &str,
    description: &str,
    config: MountConfig,
    options: BTreeMap<String, String>,
    kind: MountKind,
) -> Result<()> {
    let _guard = core.state_lock.lock().await;
    let rt = core.runtime().ok_or(LogicalError::Sealed)?;
    let path = normalize_mount_path(path);
    if path == "/" {
        return Err(LogicalError::bad("mount path cannot be empty"));
    }
    if kind == MountKind::Secret && RESERVED.iter().any(|r| path.starts_with(r)) {
        return Err(LogicalError::bad(format!(
            "cannot mount at reserved path {path:?}"
        )));
    }
    if kind == MountKind::Auth && backend_type == "token" {
        return Err(LogicalError::bad(
            "token credential backend cannot be instantiated",
        ));
    }
    let mut entry = new_mount_entry(&path, backend_type, description, kind);
    let route = entry.route_path();
    let router = rt.router();
    for m in router.all() {
        let existing = m.entry.route_path();
        if route.starts_with(&existing) || existing.starts_with(&route) {
            return Err(LogicalError::bad(format!(
                "path is already in use at {}",
                m.entry.path
            )));
        }
    }
    if kind == MountKind::Secret && route.starts_with(&rt.system_mount.path) {
        return Err(LogicalError::bad(format!(
            "path is already in use at {}",
            rt.system_mount.path
        )));
    }
    entry.config = config;
    entry.options = options;
    let mounted = core.instantiate(entry, &rt.tokens, &rt.policies)?;
    let mut all: Vec<Arc<Mounted>> = router.all().to_vec();
    all.push(mounted);
    let new_router = Router::new(all);
    core.persist_tables(&rt, &new_router).await?;
    *rt.router.write().expect("router lock") = Arc::new(new_router);
    Ok(())
}

async fn unmount(core: &Core, rt: &Arc<Runtime>, path: &str, kind: MountKind) -> Result<()> {
    let _guard = core.state_lock.lock().await;
    if kind == MountKind::Secret && RESERVED.contains(&path) {
        return Err(LogicalError::bad(format!("cannot unmount {path:?}")));
    }
    if kind == MountKind::Auth && path == "token/" {
        return Err(LogicalError::bad(
            "token credential backend cannot be disabled",
        ));
    }
    let router = rt.router();
    let Some(target) = router
        .entries(kind)
        .into_iter()
        .find(|m| m.entry.path == path)
        .cloned()
    else {
        return Ok(());
    };
    // Secrets leased from this mount are revoked while its backend can still undo them.
    core.revoke_lease_prefix(rt, &target.entry.route_path(), true)
        .await?;
    let remaining: Vec<Arc<Mounted>> = router
        .all()
        .iter()
        .filter(|m| !Arc::ptr_eq(m, &target))
        .cloned()
        .collect();
    let new_router = Router::new(remaining);
    core.persist_tables(rt, &new_router).await?;
    *rt.router.write().expect("router lock") = Arc::new(new_router);
    target.backend.cleanup().await;
    // Remove the mount's data.
    let view = crate::view::BarrierView::new(core.barrier.clone(), target.entry.storage_prefix());
    let keys = view.list_recursive("").await?;
    for chunk in keys.chunks(256) {
        view.transaction(
            chunk
                .iter()
                .map(|k| kura_storage::TxnOp::Delete { key: k.clone() })
                .collect(),
        )
        .await?;
    }
    Ok(())
}

fn find_mount(rt: &Runtime, path: &str, kind: MountKind) -> Result<Arc<Mounted>> {
    rt.router()
        .entries(kind)
        .into_iter()
        .find(|m| m.entry.path == path)
        .cloned()
        .ok_or_else(|| LogicalError::bad(format!("no mount entry found at {path:?}")))
}

fn tune_read(core: &Core, rt: &Runtime, path: &str, kind: MountKind) -> Result<Response> {
    use kura_logical::SystemView;
    let (entry, default_ttl, max_ttl) = if kind == MountKind::Secret && path == rt.system_mount.path
    {
        (
            rt.system_mount.clone(),
            core.config.default_lease_ttl,
            core.config.max_lease_ttl,
        )
    } else {
        let m = find_mount(rt, path, kind)?;
        (
            m.entry.clone(),
            m.view.default_lease_ttl(),
            m.view.max_lease_ttl(),
        )
    };
    let mut v = json!({
        "default_lease_ttl": default_ttl.as_secs(),
        "max_lease_ttl": max_ttl.as_secs(),
        "force_no_cache": entry.config.force_no_cache,
        "description": entry.description,
    });
    if !entry.options.is_empty() {
        v["options"] = json!(entry.options);
    }
    for (k, list) in [
        (
            "audit_non_hmac_request_keys",
            &entry.config.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &entry.config.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &entry.config.passthrough_request_headers,
        ),
        (
            "allowed_response_headers",
            &entry.config.allowed_response_headers,
        ),
    ] {
        if !list.is_empty() {
            v[k] = json!(list);
        }
    }
    if !entry.config.listing_visibility.is_empty() {
        v["listing_visibility"] = json!(entry.config.listing_visibility);
    }
    if !entry.config.token_type.is_empty() {
        v["token_type"] = json!(entry.config.token_type);
    }
    Ok(legacy(v))
}

/// Parses a TTL given to tune: seconds, a duration string, or "system" (reset to default).
fn tune_ttl(v: &Value, name: &str) -> Result<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s == "system" || s.is_empty() => Ok(Some(0)),
        other => Ok(Some(kura_logical::coerce_duration(name, other)?.as_secs())),
    }
}

async fn tune_write(
    core: &Core,
    rt: &Arc<Runtime>,
    path: &str,
    kind: MountKind,
    f: &FieldData,
) -> Result<()> {
    let _guard = core.state_lock.lock().await;
    if kind == MountKind::Secret && path == rt.system_mount.path {
        return Err(LogicalError::bad("cannot tune the system mount"));
    }
    let m = find_mount(rt, path, kind)?;
    let mut entry = m.entry.clone();
    if let Some(v) = f.opt_raw("default_lease_ttl") {
        if let Some(t) = tune_ttl(&v, "default_lease_ttl")? {
            entry.config.default_lease_ttl = t;
        }
    }
    if let Some(v) = f.opt_raw("max_lease_ttl") {
        if let Some(t) = tune_ttl(&v, "max_lease_ttl")? {
            entry.config.max_lease_ttl = t;
        }
    }
    let max = if entry.config.max_lease_ttl == 0 {
        core.config.max_lease_ttl.as_secs()
    } else {
        entry.config.max_lease_ttl
    };
    if entry.config.default_lease_ttl > max {
        return Err(LogicalError::bad(
            "default lease TTL cannot be greater than max lease TTL",
        ));
    }
    if let Some(d) = f.opt_string("description")? {
        entry.description = d;
    }
    if f.is_set("force_no_cache") {
        entry.config.force_no_cache = f.bool("force_no_cache")?;
    }
    if let Some(v) = f.opt_string("listing_visibility")? {
        if !matches!(v.as_str(), "" | "unauth" | "hidden") {
            return Err(LogicalError::bad("invalid listing_visibility"));
        }
        entry.config.listing_visibility = v;
    }
    for (name, slot) in [
        (
            "audit_non_hmac_request_keys",
            &mut entry.config.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &mut entry.config.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &mut entry.config.passthrough_request_headers,
        ),
        (
            "allowed_response_headers",
            &mut entry.config.allowed_response_headers,
        ),
    ] {
        if let Some(v) = f.opt_strings(name)? {
            *slot = v;
        }
    }
    if let Some(t) = f.opt_string("token_type")? {
        if kind != MountKind::Auth {
            return Err(LogicalError::bad(
                "'token_type' can only be modified on auth mounts",
            ));
        }
        entry.config.token_type = t;
    }
    let mut restart = false;
    if let Some(opts) = f.opt_kv_pairs("options")? {
        for (k, v) in opts {
            if k == "version" && entry.backend_type == "kv" {
                let old = entry
                    .options
                    .get("version")
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                if v == "1" && old == "2" {
                    return Err(LogicalError::bad(
                        "cannot downgrade mount from KV version 2 to KV version 1",
                    ));
                }
                if v != old {
                    restart = true;
                }
            }
            entry.options.insert(k, v);
        }
    }
    let router = rt.router();
    let replacement = if restart {
        m.backend.cleanup().await;
        core.instantiate(entry.clone(), &rt.tokens, &rt.policies)?
    } else {
        *m.view.config.write().expect("mount view lock") = entry.config.clone();
        Arc::new(Mounted {
            entry: entry.clone(),
            backend: m.backend.clone(),
            view: m.view.clone(),
            special: m.special.clone(),
        })
    };
    let all: Vec<Arc<Mounted>> = router
        .all()
        .iter()
        .map(|x| {
            if Arc::ptr_eq(x, &m) {
                replacement.clone()
            } else {
                x.clone()
            }
        })
        .collect();
    let new_router = Router::new(all);
    core.persist_tables(rt, &new_router).await?;
    *rt.router.write().expect("router lock") = Arc::new(new_router);
    Ok(())
}

async fn remount(core: &Core, rt: &Arc<Runtime>, from: &str, to: &str) -> Result<String> {
    let _guard = core.state_lock.lock().await;
    let (from_kind, from_path) = split_kind(from);
    let (to_kind, to_path) = split_kind(to);
    if from_kind != to_kind {
        return Err(LogicalError::bad(
            "cannot remount between secrets engines and auth methods",
        ));
    }
    if from_path == "/" || to_path == "/" {
        return Err(LogicalError::bad("'from' and 'to' must be specified"));
    }
    if to_kind == MountKind::Secret && RESERVED.iter().any(|r| to_path.starts_with(r)) {
        return Err(LogicalError::bad(format!(
            "cannot remount to reserved path {to_path:?}"
        )));
    }
    let router = rt.router();
    let m = router
        .entries(from_kind)
        .into_iter()
        .find(|m| m.entry.path == from_path)
        .cloned()
        .ok_or_else(|| LogicalError::bad(format!("no matching mount at {from_path:?}")))?;
    let mut entry = m.entry.clone();
    entry.path = to_path.clone();
    let new_route = entry.route_path();
    for other in router.all() {
        if Arc::ptr_eq(other, &m) {
            continue;
        }
        let existing = other.entry.route_path();
        if new_route.starts_with(&existing) || existing.starts_with(&new_route) {
            return Err(LogicalError::bad(format!(
                "path already in use at {:?}",
                other.entry.path
            )));
        }
    }
    let moved = core.instantiate(entry, &rt.tokens, &rt.policies)?;
    m.backend.cleanup().await;
    let all: Vec<Arc<Mounted>> = router
        .all()
        .iter()
        .map(|x| {
            if Arc::ptr_eq(x, &m) {
                moved.clone()
            } else {
                x.clone()
            }
        })
        .collect();
    let new_router = Router::new(all);
    core.persist_tables(rt, &new_router).await?;
    *rt.router.write().expect("router lock") = Arc::new(new_router);
    Ok(crate::util::new_uuid())
}

fn split_kind(p: &str) -> (MountKind, String) {
    let p = p.trim_matches('/');
    match p.strip_prefix("auth/") {
        Some(rest) => (MountKind::Auth, normalize_mount_path(rest)),
        None => (MountKind::Secret, normalize_mount_path(p)),
    }
}
