//! OpenBao-compatible ACL policies for Kura.
//!
//! * [`Policy::parse`] reads a policy written in HCL or JSON (`path "secret/*" { ... }`) and
//!   keeps its text.
//! * [`Acl::new`] / [`Acl::with_identity`] merge a token's policies the way OpenBao does
//!   (deny wins, capabilities add up, parameter maps and wrapping TTLs merge), and
//!   [`Acl::root`] is the ACL of root tokens.
//! * [`Acl::check`] decides one request: exact paths beat globs, OpenBao's priority between
//!   overlapping `*` and `+` rules, parameter and wrapping constraints.
//! * [`Acl::capabilities`] answers `sys/capabilities`.
//!
//! The reference is OpenBao 2.7.2; the tests hold cases cross-checked against a real `bao`
//! server.

mod acl;
mod capability;
mod duration;
mod policy;
mod syntax;
mod template;

pub use acl::{Acl, AclError, AclRule, CheckRequest, Decision, DenyReason};
pub use capability::{Capability, UnknownCapability};
pub use policy::{InvalidKey, PathRules, Permissions, Policy, PolicyError};
pub use template::{
    IdentityContext, KeysFilterPath, TemplateAlias, TemplateEntity, TemplateError, TemplateGroup,
    TemplateOptions,
};

/// Name of the root policy: it grants everything, is attached to root tokens only, and cannot
/// be written or deleted.
pub const ROOT_POLICY_NAME: &str = "root";

/// Name of the policy attached to every token unless asked otherwise. It can be rewritten but
/// not deleted.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// Name of the policy of response-wrapping tokens. It is fixed: it cannot be written or
/// deleted, and policy listings do not show it.
pub const RESPONSE_WRAPPING_POLICY_NAME: &str = "response-wrapping";

/// The `default` policy a new Kura installs (the same rules as OpenBao 2.7.2's own): a token
/// may look itself up, renew and revoke itself, check its own capabilities, read its own
/// entity, use its cubbyhole, wrap and unwrap, hash, and use the OIDC authorize endpoint.
pub const DEFAULT_POLICY: &str = r#"
# Look up the calling token.
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Renew the calling token.
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Revoke the calling token.
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Ask which capabilities the calling token has on a path.
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Read the entity the calling token belongs to, by ID or by name.
path "identity/entity/id/{{identity.entity.id}}" {
    capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
    capabilities = ["read"]
}

# The merged ACL of the calling token, for user interfaces. Internal: its shape may change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Renew a lease whose ID is sent in the request body.
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Look up a lease whose ID the caller already knows.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# The calling token's own cubbyhole.
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Wrap any data in a response-wrapping token.
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Look up the creation time and TTL of a wrapping token.
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Unwrap a wrapping token without switching tokens.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# General-purpose hashing tool.
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# The authorization endpoint of OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;

/// The fixed policy of response-wrapping tokens: read the wrapped response from the
/// cubbyhole, unwrap, and revoke the token.
pub const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" {
    capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

path "auth/token/revoke-self" {
    capabilities = ["update"]
}
"#;

/// A policy name as OpenBao stores it: lowercased.
pub fn normalize_name(name: &str) -> String {
    name.to_lowercase()
}

/// True for the policy names Kura manages itself (`root`, `default`, `response-wrapping`),
/// compared after [`normalize_name`]. Of these only `default` may be rewritten, and none may
/// be deleted; see [`check_writable`] and [`check_deletable`].
pub fn is_reserved_name(name: &str) -> bool {
    matches!(
        normalize_name(name).as_str(),
        ROOT_POLICY_NAME | DEFAULT_POLICY_NAME | RESPONSE_WRAPPING_POLICY_NAME
    )
}

/// Why a policy name may not be written or deleted. The messages are OpenBao's (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyNameError {
    /// `root` and `response-wrapping` cannot be written.
    #[error("cannot update {0:?} policy")]
    CannotUpdate(String),
    /// `default` cannot be deleted.
    #[error("cannot delete default policy")]
    CannotDeleteDefault,
    /// `root` and `response-wrapping` cannot be deleted.
    #[error("cannot delete {0:?} policy")]
    CannotDelete(String),
}

/// Whether a policy of this name may be created or updated.
pub fn check_writable(name: &str) -> Result<(), PolicyNameError> {
    let name = normalize_name(name);
    match name.as_str() {
        ROOT_POLICY_NAME | RESPONSE_WRAPPING_POLICY_NAME => {
            Err(PolicyNameError::CannotUpdate(name))
        }
        _ => Ok(()),
    }
}

/// Whether a policy of this name may be deleted.
pub fn check_deletable(name: &str) -> Result<(), PolicyNameError> {
    let name = normalize_name(name);
    match name.as_str() {
        DEFAULT_POLICY_NAME => Err(PolicyNameError::CannotDeleteDefault),
        ROOT_POLICY_NAME | RESPONSE_WRAPPING_POLICY_NAME => {
            Err(PolicyNameError::CannotDelete(name))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names() {
        assert!(is_reserved_name("root"));
        assert!(is_reserved_name("Root"));
        assert!(is_reserved_name("default"));
        assert!(is_reserved_name("response-wrapping"));
        assert!(!is_reserved_name("control-group"));
        assert!(!is_reserved_name("my-policy"));
        assert_eq!(normalize_name("MyPolicy"), "mypolicy");
    }

    #[test]
    fn write_and_delete_rules_match_openbao() {
        assert_eq!(
            check_writable("Root").unwrap_err().to_string(),
            r#"cannot update "root" policy"#
        );
        assert_eq!(
            check_writable("response-wrapping").unwrap_err().to_string(),
            r#"cannot update "response-wrapping" policy"#
        );
        assert!(check_writable("default").is_ok());
        assert!(check_writable("anything").is_ok());
        assert_eq!(
            check_deletable("root").unwrap_err().to_string(),
            r#"cannot delete "root" policy"#
        );
        assert_eq!(
            check_deletable("DEFAULT").unwrap_err().to_string(),
            "cannot delete default policy"
        );
        assert_eq!(
            check_deletable("response-wrapping")
                .unwrap_err()
                .to_string(),
            r#"cannot delete "response-wrapping" policy"#
        );
        assert!(check_deletable("anything").is_ok());
    }

    #[test]
    fn default_policy_has_openbao_rules() {
        // The rules of `bao policy read default` on OpenBao 2.7.2, stanza by stanza.
        let expected: &[(&str, &[&str])] = &[
            ("auth/token/lookup-self", &["read"]),
            ("auth/token/renew-self", &["update"]),
            ("auth/token/revoke-self", &["update"]),
            ("sys/capabilities-self", &["update"]),
            ("identity/entity/id/{{identity.entity.id}}", &["read"]),
            ("identity/entity/name/{{identity.entity.name}}", &["read"]),
            ("sys/internal/ui/resultant-acl", &["read"]),
            ("sys/leases/renew", &["update"]),
            ("sys/leases/lookup", &["update"]),
            (
                "cubbyhole/*",
                &["create", "delete", "list", "read", "update"],
            ),
            ("sys/wrapping/wrap", &["update"]),
            ("sys/wrapping/lookup", &["update"]),
            ("sys/wrapping/unwrap", &["update"]),
            ("sys/tools/hash", &["update"]),
            ("sys/tools/hash/*", &["update"]),
            ("identity/oidc/provider/+/authorize", &["read", "update"]),
        ];
        let default = Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        let got: Vec<(&str, Vec<&str>)> = default
            .paths()
            .iter()
            .map(|p| (p.pattern(), p.permissions().capabilities.names()))
            .collect();
        let want: Vec<(&str, Vec<&str>)> = expected.iter().map(|(p, c)| (*p, c.to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn builtin_policies_parse() {
        let default = Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        assert_eq!(default.paths().len(), 16);
        assert!(default.is_templated());
        let wrapping =
            Policy::parse(RESPONSE_WRAPPING_POLICY_NAME, RESPONSE_WRAPPING_POLICY).unwrap();
        assert_eq!(wrapping.paths().len(), 3);
    }
}
