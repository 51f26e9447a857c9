//! The token parameters every auth method shares (OpenBao's `tokenutil`): the `token_*` fields,
//! their parsing and validation, how they read back, how the legacy aliases (`policies`, `ttl`,
//! `period`, ...) upgrade into them, and how a login turns them into an [`Auth`] for the core.

use std::net::IpAddr;

use kura_logical::{Auth, FieldData, FieldSpec, FieldType, LogicalError, Map, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cidr::{self, Cidr};
use crate::util::sanitize_policies;

/// The kind of token a login issues. Kura issues service tokens only; batch tokens are refused
/// when a role or user is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Whatever the mount defaults to (a service token).
    #[default]
    Default,
    /// A service token.
    Service,
}

impl TokenType {
    /// The name OpenBao shows on reads.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Default => "default",
            TokenType::Service => "service",
        }
    }
}

/// The shared token parameters of a user or role. Durations are whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    /// Blocks the issued token may be used from (stored in display form).
    pub token_bound_cidrs: Vec<String>,
    /// Hard maximum lifetime of the token (0: none).
    pub token_explicit_max_ttl: u64,
    /// Maximum lifetime (0: the mount's).
    pub token_max_ttl: u64,
    /// Do not attach the `default` policy.
    pub token_no_default_policy: bool,
    /// Use limit of the token (0: unlimited).
    pub token_num_uses: u64,
    /// Renewal period for periodic tokens (0: not periodic).
    pub token_period: u64,
    /// Policies of the token.
    pub token_policies: Vec<String>,
    /// Token type.
    pub token_type: TokenType,
    /// Initial TTL (0: the mount's default).
    pub token_ttl: u64,
    /// Bind the token to the login's source address.
    pub token_strictly_bind_ip: bool,
}

/// Builds the field specs of the token parameters, to add to a path's own fields.
pub fn token_fields() -> Vec<FieldSpec> {
    use FieldType as T;
    vec![
        FieldSpec::new(
            "token_bound_cidrs",
            T::CommaStringSlice,
            "Comma separated string or JSON list of CIDR blocks. If set, specifies the blocks of IP addresses which are allowed to use the generated token.",
        ),
        FieldSpec::new(
            "token_explicit_max_ttl",
            T::Duration,
            "If set, tokens created via this role carry an explicit maximum TTL.",
        ),
        FieldSpec::new("token_max_ttl", T::Duration, "The maximum lifetime of the generated token"),
        FieldSpec::new(
            "token_no_default_policy",
            T::Bool,
            "If true, the 'default' policy will not automatically be added to generated tokens",
        ),
        FieldSpec::new(
            "token_num_uses",
            T::Int,
            "The maximum number of times a token may be used, a value of zero means unlimited",
        ),
        FieldSpec::new(
            "token_period",
            T::Duration,
            "If set, tokens created via this role will have no max lifetime; instead, their renewal period will be fixed to this value.",
        ),
        FieldSpec::new("token_policies", T::CommaStringSlice, "Comma-separated list of policies"),
        FieldSpec::new(
            "token_type",
            T::String,
            "The type of token to generate; only service tokens are supported",
        ),
        FieldSpec::new("token_ttl", T::Duration, "The initial ttl of the token to generate"),
        FieldSpec::new(
            "token_strictly_bind_ip",
            T::Bool,
            "If true, CIDRs for the token will be strictly bound to the source IP address of the login request",
        ),
    ]
}

/// Whole seconds of a duration field, `None` if absent.
pub(crate) fn opt_secs(f: &FieldData, name: &str) -> Result<Option<u64>> {
    Ok(f.opt_duration(name)?.map(|d| d.as_secs()))
}

/// Parses token-bound CIDRs leniently (bare addresses allowed) into display form.
pub(crate) fn parse_token_cidrs(
    list: &[String],
) -> std::result::Result<Vec<String>, cidr::CidrError> {
    Ok(cidr::parse_addr_list(list)?
        .iter()
        .map(Cidr::display_addr)
        .collect())
}

impl TokenParams {
    /// Applies the `token_*` fields the client sent, with OpenBao's validation and messages.
    pub fn parse(&mut self, f: &FieldData) -> Result<()> {
        self.parse_inner(f, false).map(|_| ())
    }

    /// As [`TokenParams::parse`], also accepting the legacy `token_type` values
    /// `default-service` (read as `service`, with OpenBao's warning) and `default-batch`, as
    /// OpenBao's approle roles do. Returns the warnings.
    pub fn parse_with_legacy_type(&mut self, f: &FieldData) -> Result<Vec<String>> {
        self.parse_inner(f, true)
    }

    fn parse_inner(&mut self, f: &FieldData, legacy_type: bool) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if f.is_set("token_bound_cidrs") {
            self.token_bound_cidrs = parse_token_cidrs(&f.strings("token_bound_cidrs")?)
                .map_err(|e| LogicalError::bad(e.to_string()))?;
        }
        if let Some(v) = opt_secs(f, "token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
        }
        if let Some(v) = opt_secs(f, "token_max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = f.opt_bool("token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = opt_secs(f, "token_period")? {
            self.token_period = v;
        }
        if f.is_set("token_policies") {
            self.token_policies = f.strings("token_policies")?;
        }
        if let Some(mut t) = f.opt_string("token_type")? {
            if legacy_type && t == "default-service" {
                warnings.push(
                    "default-service has no useful meaning; adjusting to service".to_string(),
                );
                t = "service".to_string();
            }
            self.token_type = match t.as_str() {
                "" | "default" => TokenType::Default,
                "service" => TokenType::Service,
                "batch" | "default-batch" => {
                    return Err(LogicalError::bad(
                        "batch tokens are not supported by Kura; use token_type \"service\" or \"default\"",
                    ))
                }
                other => {
                    return Err(LogicalError::bad(format!(
                        "invalid 'token_type' value {other:?}"
                    )))
                }
            };
        }
        if let Some(n) = f.opt_int("token_num_uses")? {
            if n < 0 {
                return Err(LogicalError::bad("'token_num_uses' cannot be negative"));
            }
            self.token_num_uses = n as u64;
        }
        if let Some(v) = opt_secs(f, "token_ttl")? {
            self.token_ttl = v;
        }
        if self.token_ttl > 0 && self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::bad(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        if let Some(v) = f.opt_bool("token_strictly_bind_ip")? {
            self.token_strictly_bind_ip = v;
        }
        if self.token_strictly_bind_ip && !self.token_bound_cidrs.is_empty() {
            return Err(LogicalError::bad(
                "'token_strictly_bind_ip' conflicts with 'token_bound_cidrs'; set only one",
            ));
        }
        Ok(warnings)
    }

    /// Writes the parameters into a read response, as OpenBao shows them.
    pub fn populate(&self, data: &mut Map) {
        data.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        data.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        data.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        data.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        data.insert("token_num_uses".into(), json!(self.token_num_uses));
        data.insert("token_period".into(), json!(self.token_period));
        data.insert("token_policies".into(), json!(self.token_policies));
        data.insert(
            "token_strictly_bind_ip".into(),
            json!(self.token_strictly_bind_ip),
        );
        data.insert("token_ttl".into(), json!(self.token_ttl));
        data.insert(
            "token_type".into(),
            Value::String(self.token_type.as_str().into()),
        );
    }

    /// The [`Auth`] a login hands to the core: policies sanitized (the core adds `default`
    /// unless `no_default_policy`), TTLs and limits as configured, token-bound CIDRs (or the
    /// client's own address with `token_strictly_bind_ip`). `client_token`, `accessor` and
    /// `lease_duration` stay empty for the core to fill in.
    pub fn to_auth(&self, remote: Option<IpAddr>) -> Result<Auth> {
        let bound_cidrs = if self.token_strictly_bind_ip {
            let ip = remote.ok_or(LogicalError::PermissionDenied)?;
            vec![Cidr::host(ip).display_addr()]
        } else {
            self.token_bound_cidrs.clone()
        };
        let policies = sanitize_policies(&self.token_policies);
        Ok(Auth {
            policies: policies.clone(),
            token_policies: policies,
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            period: self.token_period,
            explicit_max_ttl: self.token_explicit_max_ttl,
            num_uses: self.token_num_uses,
            bound_cidrs,
            no_default_policy: self.token_no_default_policy,
            renewable: true,
            token_type: "service".to_string(),
            orphan: true,
            ..Default::default()
        })
    }
}

/// OpenBao's `tokenutil.UpgradeValue` for a legacy alias of a token parameter: when only the
/// old field is sent, both take its value; when the new one is sent, the old one mirrors it if
/// it was sent too and is cleared otherwise. `parse_old` reads the old field.
pub(crate) fn upgrade<T: Clone + Default>(
    f: &FieldData,
    old_key: &str,
    new_key: &str,
    old_val: &mut T,
    new_val: &mut T,
    parse_old: impl FnOnce(&FieldData) -> Result<T>,
) -> Result<()> {
    if !f.is_set(new_key) {
        if f.is_set(old_key) {
            *old_val = parse_old(f)?;
            *new_val = old_val.clone();
        }
    } else if f.is_set(old_key) {
        *old_val = new_val.clone();
    } else {
        *old_val = T::default();
    }
    Ok(())
}

/// Reads a legacy duration alias in whole seconds.
pub(crate) fn old_secs(key: &'static str) -> impl FnOnce(&FieldData) -> Result<u64> {
    move |f| Ok(opt_secs(f, key)?.unwrap_or(0))
}

/// Reads the legacy `policies` alias (sanitized, as OpenBao's `ParsePolicies`).
pub(crate) fn old_policies(f: &FieldData) -> Result<Vec<String>> {
    Ok(sanitize_policies(&f.strings("policies")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fd(v: Value) -> FieldData {
        let mut specs = token_fields();
        specs.push(FieldSpec::new("policies", FieldType::CommaStringSlice, ""));
        specs.push(FieldSpec::new("ttl", FieldType::Duration, ""));
        FieldData::new(v.as_object().unwrap().clone(), HashMap::new(), specs)
    }

    #[test]
    fn parses_and_reads_back() {
        let mut t = TokenParams::default();
        t.parse(&fd(json!({
            "token_policies": "a,B",
            "token_ttl": "1h",
            "token_max_ttl": 7200,
            "token_bound_cidrs": ["127.0.0.1/32", "10.0.0.0/8"],
            "token_num_uses": "3",
            "token_type": "service",
            "token_period": "30m",
            "token_explicit_max_ttl": "3h",
            "token_no_default_policy": true
        })))
        .unwrap();
        assert_eq!(t.token_ttl, 3600);
        assert_eq!(t.token_max_ttl, 7200);
        assert_eq!(t.token_bound_cidrs, vec!["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(t.token_type, TokenType::Service);
        let mut m = Map::new();
        t.populate(&mut m);
        assert_eq!(m["token_policies"], json!(["a", "B"]));
        assert_eq!(m["token_type"], "service");
        assert_eq!(m["token_period"], 1800);
        assert_eq!(m["token_strictly_bind_ip"], false);

        let auth = t.to_auth(None).unwrap();
        assert_eq!(auth.policies, vec!["a", "b"], "sanitized for the token");
        assert_eq!((auth.ttl, auth.max_ttl, auth.period), (3600, 7200, 1800));
        assert_eq!((auth.explicit_max_ttl, auth.num_uses), (10800, 3));
        assert!(auth.no_default_policy && auth.renewable);
        assert!(auth.client_token.is_empty() && auth.accessor.is_empty());
        assert_eq!(auth.lease_duration, 0);
        assert_eq!(auth.bound_cidrs, vec!["127.0.0.1", "10.0.0.0/8"]);
    }

    #[test]
    fn rejects_bad_values_with_openbao_messages() {
        let cases = [
            (
                json!({"token_type": "bogus"}),
                "invalid 'token_type' value \"bogus\"",
            ),
            (
                json!({"token_num_uses": -1}),
                "'token_num_uses' cannot be negative",
            ),
            (
                json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ),
            (
                json!({"token_strictly_bind_ip": true, "token_bound_cidrs": "10.0.0.0/8"}),
                "'token_strictly_bind_ip' conflicts with 'token_bound_cidrs'; set only one",
            ),
        ];
        for (input, msg) in cases {
            let err = TokenParams::default().parse(&fd(input)).unwrap_err();
            assert_eq!(err.status(), 400);
            assert_eq!(err.to_string(), msg);
        }
        let err = TokenParams::default()
            .parse(&fd(json!({"token_type": "batch"})))
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("batch tokens are not supported"));
        let err = TokenParams::default()
            .parse(&fd(json!({"token_bound_cidrs": "bogus"})))
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("\"bogus\""));
    }

    #[test]
    fn legacy_default_service_only_for_roles() {
        let f = fd(json!({"token_type": "default-service"}));
        assert!(
            TokenParams::default().parse(&f).is_err(),
            "userpass refuses it, as OpenBao"
        );
        let mut t = TokenParams::default();
        let w = t.parse_with_legacy_type(&f).unwrap();
        assert_eq!(t.token_type, TokenType::Service);
        assert_eq!(
            w,
            vec!["default-service has no useful meaning; adjusting to service"]
        );
        let f = fd(json!({"token_type": "default-batch"}));
        assert_eq!(t.parse_with_legacy_type(&f).unwrap_err().status(), 400);
    }

    #[test]
    fn strict_ip_binding_uses_the_client_address() {
        let t = TokenParams {
            token_strictly_bind_ip: true,
            ..Default::default()
        };
        let auth = t
            .to_auth(Some("::ffff:192.0.2.7".parse().unwrap()))
            .unwrap();
        assert_eq!(auth.bound_cidrs, vec!["192.0.2.7"]);
        assert!(matches!(
            t.to_auth(None),
            Err(LogicalError::PermissionDenied)
        ));
    }

    #[test]
    fn legacy_aliases_upgrade() {
        // Only the old field: both take it.
        let f = fd(json!({"policies": "X, y"}));
        let (mut old, mut new) = (Vec::new(), Vec::new());
        upgrade(
            &f,
            "policies",
            "token_policies",
            &mut old,
            &mut new,
            old_policies,
        )
        .unwrap();
        assert_eq!(
            (old.clone(), new.clone()),
            (
                vec!["x".to_string(), "y".into()],
                vec!["x".to_string(), "y".into()]
            )
        );
        // New field only: the old one is cleared.
        let f = fd(json!({"token_policies": "z"}));
        let mut new = vec!["z".to_string()];
        upgrade(
            &f,
            "policies",
            "token_policies",
            &mut old,
            &mut new,
            old_policies,
        )
        .unwrap();
        assert!(old.is_empty());
        // Both: the old mirrors the new.
        let f = fd(json!({"token_ttl": 5, "ttl": 9}));
        let (mut old, mut new) = (0u64, 5u64);
        upgrade(&f, "ttl", "token_ttl", &mut old, &mut new, old_secs("ttl")).unwrap();
        assert_eq!((old, new), (5, 5));
    }
}
