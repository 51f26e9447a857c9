//! What the PKI engine keeps in storage: issuers, keys, issued and revoked certificates, CRLs,
//! roles and the mount's configuration. Storage layout (relative to the mount):
//!
//! - `config/issuers`, `config/keys`: default issuer and key
//! - `config/urls`, `config/crl`: AIA URLs and CRL settings
//! - `issuer/<id>`, `key/<id>`: issuers (certificate + key reference) and private keys
//! - `certs/<serial>`: issued certificates (serial with hyphens)
//! - `revoked/<serial>`: revocation records
//! - `crls/<issuer id>`: the current CRL of each issuer
//! - `roles/<name>`: roles

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use kura_logical::{FieldData, FieldSpec, FieldType, Map, Result};

/// Storage key of the default-issuer configuration.
pub const CONFIG_ISSUERS: &str = "config/issuers";
/// Storage key of the default-key configuration.
pub const CONFIG_KEYS: &str = "config/keys";
/// Storage key of the URL configuration.
pub const CONFIG_URLS: &str = "config/urls";
/// Storage key of the CRL configuration.
pub const CONFIG_CRL: &str = "config/crl";

/// The default issuer / key of the mount.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DefaultRef {
    /// Id of the default issuer or key ("" when none).
    #[serde(default)]
    pub default: String,
    /// Issuers only: the newest issuer becomes the default.
    #[serde(default)]
    pub default_follows_latest_issuer: bool,
}

/// A private key held by the mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    /// UUID.
    pub id: String,
    /// Optional name.
    #[serde(default)]
    pub name: String,
    /// `rsa`, `ec` or `ed25519`.
    pub key_type: String,
    /// PEM of the private key.
    pub private_key: String,
}

/// An issuer: a CA certificate, possibly with the key that signs for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerEntry {
    /// UUID.
    pub id: String,
    /// Optional name.
    #[serde(default)]
    pub name: String,
    /// Id of the key entry ("" if the mount does not hold the key).
    #[serde(default)]
    pub key_id: String,
    /// PEM certificate.
    pub certificate: String,
    /// Serial number, colon-hex.
    pub serial_number: String,
    /// `err`, `truncate` or `permit`.
    #[serde(default = "default_leaf_behavior")]
    pub leaf_not_after_behavior: String,
    /// Comma-separated usages.
    #[serde(default = "default_usage")]
    pub usage: String,
    /// Manual chain (issuer references).
    #[serde(default)]
    pub manual_chain: Option<Vec<String>>,
    /// Revoked?
    #[serde(default)]
    pub revoked: bool,
    /// Revocation time (Unix seconds).
    #[serde(default)]
    pub revocation_time: i64,
    /// Revocation time (RFC 3339).
    #[serde(default)]
    pub revocation_time_rfc3339: String,
    /// Per-issuer AIA: issuing certificates.
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    /// Per-issuer AIA: CRL distribution points.
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    /// Per-issuer AIA: OCSP servers.
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
    /// Revocation signature algorithm name (informational).
    #[serde(default)]
    pub revocation_signature_algorithm: String,
    /// Creation order, for "latest issuer" decisions.
    #[serde(default)]
    pub created: i64,
}

fn default_leaf_behavior() -> String {
    "err".into()
}

/// The usages OpenBao gives a new issuer.
pub fn default_usage() -> String {
    "crl-signing,issuing-certificates,ocsp-signing,read-only".into()
}

/// A stored certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertEntry {
    /// PEM certificate.
    pub certificate: String,
    /// Issuer that signed it ("" if unknown).
    #[serde(default)]
    pub issuer_id: String,
}

/// A revocation record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedEntry {
    /// Serial, colon-hex.
    pub serial_number: String,
    /// PEM certificate.
    pub certificate: String,
    /// Issuer whose CRL lists it.
    #[serde(default)]
    pub issuer_id: String,
    /// Unix seconds.
    pub revocation_time: i64,
    /// RFC 3339 with nanoseconds.
    pub revocation_time_rfc3339: String,
}

/// A stored CRL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlEntry {
    /// CRL number.
    pub number: u64,
    /// PEM.
    pub pem: String,
}

/// `config/urls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UrlsConfig {
    /// CRL distribution points.
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    /// Delta CRL distribution points.
    #[serde(default)]
    pub delta_crl_distribution_points: Vec<String>,
    /// Templating flag.
    #[serde(default)]
    pub enable_templating: bool,
    /// Issuing certificate URLs.
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    /// OCSP servers.
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
}

/// `config/crl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlConfig {
    /// Allow revoking expired certificates.
    pub allow_expired_cert_revocation: bool,
    /// Rebuild automatically.
    pub auto_rebuild: bool,
    /// Grace period of automatic rebuilds.
    pub auto_rebuild_grace_period: String,
    /// Delta rebuild interval.
    pub delta_rebuild_interval: String,
    /// CRL building disabled.
    pub disable: bool,
    /// Delta CRLs.
    pub enable_delta: bool,
    /// Validity of a CRL.
    pub expiry: String,
    /// OCSP disabled.
    pub ocsp_disable: bool,
    /// OCSP response validity.
    pub ocsp_expiry: String,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            allow_expired_cert_revocation: false,
            auto_rebuild: false,
            auto_rebuild_grace_period: "12h".into(),
            delta_rebuild_interval: "15m".into(),
            disable: false,
            enable_delta: false,
            expiry: "72h".into(),
            ocsp_disable: false,
            ocsp_expiry: "12h".into(),
        }
    }
}

/// A role: the policy a certificate request is checked against.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Role {
    pub allow_any_name: bool,
    pub allow_bare_domains: bool,
    pub allow_glob_domains: bool,
    pub allow_globs_in_identity_templates: bool,
    pub allow_ip_sans: bool,
    pub allow_localhost: bool,
    pub allow_subdomains: bool,
    pub allow_token_displayname: bool,
    pub allow_wildcard_certificates: bool,
    pub allowed_domains: Vec<String>,
    pub allowed_domains_template: bool,
    pub allowed_ip_sans_cidr: Vec<String>,
    pub allowed_other_sans: Vec<String>,
    pub allowed_serial_numbers: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_uri_sans_template: bool,
    pub allowed_user_ids: Vec<String>,
    pub basic_constraints_valid_for_non_ca: bool,
    pub client_flag: bool,
    pub cn_validations: Vec<String>,
    pub code_signing_flag: bool,
    pub country: Vec<String>,
    pub email_protection_flag: bool,
    pub enforce_hostnames: bool,
    pub ext_key_usage: Vec<String>,
    pub ext_key_usage_oids: Vec<String>,
    pub generate_lease: bool,
    pub issuer_ref: String,
    pub key_bits: i64,
    pub key_type: String,
    pub key_usage: Vec<String>,
    pub locality: Vec<String>,
    pub max_ttl: u64,
    pub no_store: bool,
    pub not_after: String,
    pub not_after_bound: String,
    pub not_before: String,
    pub not_before_bound: String,
    pub not_before_duration: u64,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub policy_identifiers: Vec<String>,
    pub postal_code: Vec<String>,
    pub province: Vec<String>,
    pub require_cn: bool,
    pub server_flag: bool,
    pub signature_bits: i64,
    pub street_address: Vec<String>,
    pub ttl: u64,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub use_pss: bool,
}

/// Role fields: name, type, default.
fn role_field_table() -> Vec<(&'static str, FieldType, Value)> {
    use FieldType::*;
    vec![
        ("allow_any_name", Bool, json!(false)),
        ("allow_bare_domains", Bool, json!(false)),
        ("allow_glob_domains", Bool, json!(false)),
        ("allow_globs_in_identity_templates", Bool, json!(false)),
        ("allow_ip_sans", Bool, json!(true)),
        ("allow_localhost", Bool, json!(true)),
        ("allow_subdomains", Bool, json!(false)),
        ("allow_token_displayname", Bool, json!(false)),
        ("allow_wildcard_certificates", Bool, json!(true)),
        ("allowed_domains", CommaStringSlice, json!([])),
        ("allowed_domains_template", Bool, json!(false)),
        ("allowed_ip_sans_cidr", CommaStringSlice, json!([])),
        ("allowed_other_sans", CommaStringSlice, json!([])),
        ("allowed_serial_numbers", CommaStringSlice, json!([])),
        ("allowed_uri_sans", CommaStringSlice, json!([])),
        ("allowed_uri_sans_template", Bool, json!(false)),
        ("allowed_user_ids", CommaStringSlice, json!([])),
        ("basic_constraints_valid_for_non_ca", Bool, json!(false)),
        ("client_flag", Bool, json!(true)),
        (
            "cn_validations",
            CommaStringSlice,
            json!(["email", "hostname"]),
        ),
        ("code_signing_flag", Bool, json!(false)),
        ("country", CommaStringSlice, json!([])),
        ("email_protection_flag", Bool, json!(false)),
        ("enforce_hostnames", Bool, json!(true)),
        ("ext_key_usage", CommaStringSlice, json!([])),
        ("ext_key_usage_oids", CommaStringSlice, json!([])),
        ("generate_lease", Bool, json!(false)),
        ("issuer_ref", String, json!("default")),
        ("key_bits", Int, json!(0)),
        ("key_type", String, json!("rsa")),
        (
            "key_usage",
            CommaStringSlice,
            json!(["DigitalSignature", "KeyAgreement", "KeyEncipherment"]),
        ),
        ("locality", CommaStringSlice, json!([])),
        ("max_ttl", Duration, json!(0)),
        ("no_store", Bool, json!(false)),
        ("not_after", String, json!("")),
        ("not_after_bound", String, json!("permit")),
        ("not_before", String, json!("")),
        ("not_before_bound", String, json!("permit")),
        ("not_before_duration", Duration, json!(30)),
        ("organization", CommaStringSlice, json!([])),
        ("ou", CommaStringSlice, json!([])),
        ("policy_identifiers", CommaStringSlice, json!([])),
        ("postal_code", CommaStringSlice, json!([])),
        ("province", CommaStringSlice, json!([])),
        ("require_cn", Bool, json!(true)),
        ("server_flag", Bool, json!(true)),
        ("signature_bits", Int, json!(0)),
        ("street_address", CommaStringSlice, json!([])),
        ("ttl", Duration, json!(0)),
        ("use_csr_common_name", Bool, json!(true)),
        ("use_csr_sans", Bool, json!(true)),
        ("use_pss", Bool, json!(false)),
    ]
}

/// The field specs of `roles/:name`.
pub fn role_field_specs() -> Vec<FieldSpec> {
    let mut v: Vec<FieldSpec> = role_field_table()
        .into_iter()
        .map(|(n, k, d)| FieldSpec::new(n, k, "role parameter").default_value(d))
        .collect();
    v.push(FieldSpec::new(
        "name",
        FieldType::String,
        "Name of the role",
    ));
    v.push(FieldSpec::new("lease", FieldType::String, "deprecated"));
    v.push(FieldSpec::new("lease_max", FieldType::String, "deprecated"));
    v
}

impl Role {
    /// Builds a role from request fields; `base` (the stored role, for PATCH) supplies values
    /// the request does not carry, otherwise defaults do.
    pub fn from_fields(f: &FieldData, base: Option<&Role>) -> Result<Role> {
        let base_json = base.map(|b| serde_json::to_value(b).unwrap_or(Value::Null));
        let mut m = Map::new();
        for (name, kind, _) in role_field_table() {
            if let (false, Some(Value::Object(b))) = (f.is_set(name), &base_json) {
                if let Some(v) = b.get(name) {
                    m.insert(name.into(), v.clone());
                    continue;
                }
            }
            let v = match kind {
                FieldType::Bool => json!(f.bool(name)?),
                FieldType::Int => json!(f.int(name)?),
                FieldType::Duration => json!(f.duration(name)?.as_secs()),
                FieldType::CommaStringSlice => json!(f.strings(name)?),
                _ => json!(f.string(name)?),
            };
            m.insert(name.into(), v);
        }
        serde_json::from_value(Value::Object(m))
            .map_err(|e| kura_logical::LogicalError::Internal(format!("role: {e}")))
    }

    /// The role as OpenBao's read answers it.
    pub fn to_data(&self) -> Map {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn role_defaults_and_patch_base() {
        let f = FieldData::new(
            json!({"allowed_domains": "a.com,b.com", "ttl": "1h", "key_type": "ec"})
                .as_object()
                .unwrap()
                .clone(),
            HashMap::new(),
            role_field_specs(),
        );
        let r = Role::from_fields(&f, None).unwrap();
        assert_eq!(r.allowed_domains, vec!["a.com", "b.com"]);
        assert_eq!(r.ttl, 3600);
        assert!(r.allow_localhost && r.require_cn && !r.no_store);
        assert_eq!(r.key_usage.len(), 3);
        let f2 = FieldData::new(
            json!({"no_store": true}).as_object().unwrap().clone(),
            HashMap::new(),
            role_field_specs(),
        );
        let patched = Role::from_fields(&f2, Some(&r)).unwrap();
        assert!(patched.no_store);
        assert_eq!(patched.ttl, 3600, "patch keeps stored values");
        assert!(r.to_data().contains_key("use_csr_sans"));
    }
}
