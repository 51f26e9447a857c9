//! Audit: the declarative devices of the configuration file (and, when allowed, API-created
//! ones), their salts kept inside the barrier, and the records the pipeline writes for every
//! request and response. Fail closed: a request no enabled device can record is refused before
//! it does anything.

use kura_audit::{
    normalize_path, AuditAuth, AuditBroker, AuditRequest, AuditResponse, AuditSecret,
    AuditSettings, AuditWrapInfo, DeviceSpec, Salt,
};
use kura_config::AuditDeviceConfig;
use kura_logical::{LogicalError, Request, Response, Result, Storage};

use crate::core::Core;
use crate::mounts::Mounted;
use crate::token::TokenEntry;
use crate::util::rfc3339_secs;

const SALT_PREFIX: &str = "core/audit-salt/";

/// Settings of the audit subsystem from the server configuration.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// `audit` blocks of the configuration.
    pub devices: Vec<AuditDeviceConfig>,
    /// `allow_audit_log_prefixing`.
    pub allow_prefixing: bool,
    /// `unsafe_allow_api_audit_creation`.
    pub allow_api_creation: bool,
}

fn audit_error(e: kura_audit::AuditError) -> LogicalError {
    tracing::error!(error = %e, "audit");
    LogicalError::Coded {
        status: 500,
        message: "audit log failure: the request could not be recorded".into(),
    }
}

impl Core {
    fn audit_settings(&self) -> AuditSettings {
        AuditSettings {
            allow_audit_log_prefixing: self.audit_options().allow_prefixing,
        }
    }

    pub(crate) fn audit_options(&self) -> AuditOptions {
        self.audit_config.read().expect("audit config lock").clone()
    }

    /// The salt of a device, created and stored inside the barrier on first use.
    async fn audit_salt(&self, path: &str) -> Result<Salt> {
        let view = self.core_view();
        let key = format!(
            "{SALT_PREFIX}{}",
            normalize_path(path).trim_end_matches('/')
        );
        if let Some(bytes) = view.get(&key).await? {
            return Ok(Salt::from_bytes(bytes));
        }
        let salt = Salt::generate().map_err(|e| LogicalError::Internal(e.to_string()))?;
        view.put(&key, salt.as_bytes().to_vec()).await?;
        Ok(salt)
    }

    async fn audit_specs(&self, devices: &[AuditDeviceConfig]) -> Result<Vec<DeviceSpec>> {
        let mut specs = Vec::new();
        for d in devices {
            specs.push(DeviceSpec {
                config: d.clone(),
                salt: self.audit_salt(&d.path).await?,
            });
        }
        Ok(specs)
    }

    /// Enables the configured devices (after unseal). An error is fatal, as in OpenBao.
    pub(crate) async fn start_audit(&self) -> Result<()> {
        let opts = self.audit_options();
        let specs = self.audit_specs(&opts.devices).await?;
        self.audit
            .configure(specs, self.audit_settings())
            .map_err(|e| LogicalError::Internal(format!("audit devices: {e}")))?;
        Ok(())
    }

    /// SIGHUP: applies new `audit` blocks and reopens every device's file (log rotation).
    pub async fn reload_audit(&self, opts: AuditOptions) -> Result<()> {
        *self.audit_config.write().expect("audit config lock") = opts.clone();
        if self.is_sealed() {
            return Ok(());
        }
        let specs = self.audit_specs(&opts.devices).await?;
        let report = self.audit.reload(specs, self.audit_settings());
        for (path, e) in &report.reopen_errors {
            tracing::error!(%path, error = %e, "reopening audit device failed");
        }
        report
            .changes
            .map(|_| ())
            .map_err(|e| LogicalError::bad(format!("audit devices not changed: {e}")))
    }

    /// The broker (for `sys/audit*`).
    pub(crate) fn audit_broker(&self) -> &AuditBroker {
        &self.audit
    }

    /// Enables a device through the API (`sys/audit/<path>`), if the configuration allows it.
    pub(crate) async fn enable_audit_api(&self, config: AuditDeviceConfig) -> Result<()> {
        if !self.audit_options().allow_api_creation {
            return Err(LogicalError::bad(
                "cannot enable audit devices through the API: declare them in the configuration file (or set unsafe_allow_api_audit_creation = true)",
            ));
        }
        let salt = self.audit_salt(&config.path).await?;
        self.audit
            .enable(DeviceSpec { config, salt }, self.audit_settings())
            .map_err(|e| LogicalError::bad(e.to_string()))
    }

    /// Builds the audit record of a request.
    pub(crate) fn audit_request(
        &self,
        req: &Request,
        token: Option<&TokenEntry>,
        mount: Option<&Mounted>,
    ) -> AuditRequest {
        let mut a = AuditRequest {
            id: req.id.clone(),
            operation: req.operation.as_str().to_string(),
            path: req.path.clone(),
            data: if req.data.is_empty() {
                None
            } else {
                Some(req.data.clone())
            },
            client_token: req.client_token.clone(),
            remote_address: req.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
            wrap_ttl: req.wrap_ttl.map_or(0, |t| t.as_secs()),
            ..Default::default()
        };
        if let Some(m) = mount {
            a.mount_point = m.entry.route_path();
            a.mount_type = m.entry.backend_type.clone();
            a.mount_accessor = m.entry.accessor.clone();
            a.mount_running_version = format!("v{}+builtin.kura", crate::VERSION);
            a.mount_class = match m.entry.kind {
                crate::MountKind::Secret => "secret".into(),
                crate::MountKind::Auth => "auth".into(),
            };
            a.non_hmac_request_keys = m.entry.config.audit_non_hmac_request_keys.clone();
        } else if req.path.starts_with("sys/") {
            a.mount_point = "sys/".into();
            a.mount_type = "system".into();
        }
        if let Some(t) = token {
            a.client_token_accessor = t.accessor.clone();
            a.auth = Some(AuditAuth {
                client_token: req.client_token.clone(),
                accessor: t.accessor.clone(),
                display_name: t.display_name.clone(),
                policies: t.policies.clone(),
                token_policies: t.policies.clone(),
                metadata: t.meta.clone(),
                num_uses: t.num_uses,
                entity_id: t.entity_id.clone(),
                token_type: "service".into(),
                token_ttl: t.creation_ttl,
                token_issue_time: rfc3339_secs(t.creation_time),
                ..Default::default()
            });
        }
        a
    }

    /// Records a request; an error means no device could record it.
    pub(crate) fn audit_log_request(&self, a: &AuditRequest) -> Result<()> {
        self.audit.log_request(a).map_err(audit_error)
    }

    /// Records a response (or an error answer).
    pub(crate) fn audit_log_response(
        &self,
        a: &AuditRequest,
        result: &Result<Response>,
        mount: Option<&Mounted>,
    ) -> Result<()> {
        let mut resp = AuditResponse {
            non_hmac_response_keys: mount
                .map(|m| m.entry.config.audit_non_hmac_response_keys.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        match result {
            Ok(r) => {
                resp.data = r.data.clone();
                resp.warnings = r.warnings.clone();
                resp.secret = r
                    .lease
                    .as_ref()
                    .filter(|l| !l.lease_id.is_empty())
                    .map(|l| AuditSecret {
                        lease_id: l.lease_id.clone(),
                    });
                resp.wrap_info = r.wrap_info.as_ref().map(|w| AuditWrapInfo {
                    ttl: w.ttl,
                    token: w.token.clone(),
                    accessor: w.accessor.clone(),
                    creation_time: w.creation_time.clone(),
                    creation_path: w.creation_path.clone(),
                    wrapped_accessor: w.wrapped_accessor.clone(),
                });
                resp.auth = r.auth.as_ref().map(|au| AuditAuth {
                    client_token: au.client_token.clone(),
                    accessor: au.accessor.clone(),
                    policies: au.policies.clone(),
                    token_policies: au.token_policies.clone(),
                    metadata: au.metadata.clone().unwrap_or_default(),
                    num_uses: au.num_uses as i64,
                    entity_id: au.entity_id.clone(),
                    token_type: au.token_type.clone(),
                    token_ttl: au.lease_duration as i64,
                    ..Default::default()
                });
            }
            Err(e) => resp.error = e.to_string(),
        }
        self.audit.log_response(a, &resp).map_err(audit_error)
    }
}
