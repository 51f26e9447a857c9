//! What the core hands to the broker ([`AuditRequest`], [`AuditResponse`], [`AuditAuth`]) and
//! the entries a device writes ([`RequestEntry`], [`ResponseEntry`]).
//!
//! Field names, order and omission rules are OpenBao 2.7's: an empty string, a zero number,
//! `false`, an empty list or an empty map is left out of the JSON, as Go's `omitempty` does.
//! The input structs serialize to the same shapes as the objects of an entry, before hashing.
//!
//! `Debug` on the input structs never shows a token, an accessor or a data value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON object, as request and response data are.
pub type Map = serde_json::Map<String, Value>;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

fn map_is_empty(m: &Option<Map>) -> bool {
    m.as_ref().is_none_or(|m| m.is_empty())
}

/// `"<redacted>"` for a non-empty secret, `""` for an empty one (so `Debug` still shows
/// whether it was set).
fn redact(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        "<redacted>"
    }
}

/// The keys of a data map, for `Debug`.
fn keys(m: &Option<Map>) -> Option<Vec<&String>> {
    m.as_ref().map(|m| m.keys().collect())
}

/// A token as the audit log shows it: the `auth` object of an entry, and `response.auth` of a
/// login or token creation.
///
/// `client_token` and `accessor` are hashed (the accessor unless `hmac_accessor = false`);
/// the other fields are written as given. An empty `token_type` is written as `"default"` in
/// an entry's top-level `auth`, as OpenBao does for requests without a token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditAuth {
    /// The token (hashed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_token: String,
    /// The token's accessor (hashed unless `hmac_accessor = false`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub accessor: String,
    /// Display name (`token`, `userpass-bob`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// All policies of the token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Policies attached to the token itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_policies: Vec<String>,
    /// Policies from the token's identity.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_policies: Vec<String>,
    /// The token was made without the `default` policy.
    #[serde(skip_serializing_if = "is_false")]
    pub no_default_policy: bool,
    /// The ACL decision for this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_results: Option<PolicyResults>,
    /// Token metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Use limit of a new token (`response.auth` only).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub num_uses: i64,
    /// Uses left on the requesting token (top-level `auth` only).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub remaining_uses: i64,
    /// Entity ID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
    /// A login created the entity (top-level `auth` of a login's response entry).
    #[serde(skip_serializing_if = "is_false")]
    pub entity_created: bool,
    /// `service`, `batch`, or empty (written `default`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_type: String,
    /// TTL in seconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub token_ttl: i64,
    /// Issue time, RFC 3339 in seconds (see [`crate::rfc3339_seconds`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_issue_time: String,
}

impl fmt::Debug for AuditAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditAuth")
            .field("client_token", &redact(&self.client_token))
            .field("accessor", &redact(&self.accessor))
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("token_policies", &self.token_policies)
            .field("identity_policies", &self.identity_policies)
            .field("no_default_policy", &self.no_default_policy)
            .field("policy_results", &self.policy_results)
            .field("metadata", &self.metadata)
            .field("num_uses", &self.num_uses)
            .field("remaining_uses", &self.remaining_uses)
            .field("entity_id", &self.entity_id)
            .field("entity_created", &self.entity_created)
            .field("token_type", &self.token_type)
            .field("token_ttl", &self.token_ttl)
            .field("token_issue_time", &self.token_issue_time)
            .finish()
    }
}

/// The ACL decision recorded in `auth.policy_results`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyResults {
    /// Whether the request was allowed.
    pub allowed: bool,
    /// The policies that granted it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub granting_policies: Vec<PolicyInfo>,
}

/// One granting policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyInfo {
    /// Policy name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace ID (`root`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace_id: String,
    /// Namespace path (empty for the root namespace).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace_path: String,
    /// Policy type (`acl`).
    #[serde(rename = "type")]
    pub policy_type: String,
}

/// The namespace of a request: `{"id":"root"}` for the root namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditNamespace {
    /// Namespace ID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Namespace path (empty for root).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl Default for AuditNamespace {
    fn default() -> Self {
        AuditNamespace {
            id: "root".to_string(),
            path: String::new(),
        }
    }
}

/// A request as the core saw it; serializes as the `request` object of an entry.
///
/// The fields marked "not written" are inputs that steer the entry: `auth` becomes the
/// entry's top-level `auth`, `error` its `error`, `non_hmac_request_keys` (the mount's
/// `audit_non_hmac_request_keys`) and `hmac_headers` (audited headers configured with
/// `hmac = true`) decide what is hashed.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditRequest {
    /// The requesting token (not written here; the entry's top-level `auth`). `None` for an
    /// unauthenticated request. For a login's response entry the core puts the new token here.
    #[serde(skip)]
    pub auth: Option<AuditAuth>,
    /// Request ID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Client ID (entity or token derived).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// `read`, `create`, `update`, `patch`, `delete`, `list`, `help`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// Mount point that served the request (`secret/`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_point: String,
    /// Mount type (`kv`, `system`, `userpass`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
    /// Mount accessor (`kv_09f592b9`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_accessor: String,
    /// Running version of the mount's plugin.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_running_version: String,
    /// SHA-256 of the mount's external plugin (empty for builtins).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_running_sha256: String,
    /// `secret` or `auth`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_class: String,
    /// The token as presented (hashed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_token: String,
    /// Its accessor (hashed unless `hmac_accessor = false`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_token_accessor: String,
    /// Namespace (`{"id":"root"}` by default).
    pub namespace: AuditNamespace,
    /// Full request path (`secret/data/foo`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Request data; every string inside is hashed except under `non_hmac_request_keys`.
    #[serde(skip_serializing_if = "map_is_empty")]
    pub data: Option<Map>,
    /// Sentinel policy override requested.
    #[serde(skip_serializing_if = "is_false")]
    pub policy_override: bool,
    /// Client IP address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_address: String,
    /// Client port.
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub remote_port: u16,
    /// Requested response-wrapping TTL in seconds.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub wrap_ttl: u64,
    /// Audited request headers (lower-case names; only those configured for auditing).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Serial number of the verified client certificate, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_certificate_serial_number: String,
    /// Header names (case-insensitive) whose values are hashed (not written).
    #[serde(skip)]
    pub hmac_headers: Vec<String>,
    /// The mount's `audit_non_hmac_request_keys` (not written).
    #[serde(skip)]
    pub non_hmac_request_keys: Vec<String>,
    /// The error known when the request entry is written, e.g. `permission denied` (the
    /// entry's `error`; empty for none).
    #[serde(skip)]
    pub error: String,
    /// Address of the standby that forwarded this request (request entry `forwarded_from`,
    /// response entry `forwarded: true`).
    #[serde(skip)]
    pub forwarded_from: String,
}

impl fmt::Debug for AuditRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditRequest")
            .field("auth", &self.auth)
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("mount_point", &self.mount_point)
            .field("mount_type", &self.mount_type)
            .field("mount_accessor", &self.mount_accessor)
            .field("mount_class", &self.mount_class)
            .field("client_token", &redact(&self.client_token))
            .field(
                "client_token_accessor",
                &redact(&self.client_token_accessor),
            )
            .field("namespace", &self.namespace)
            .field("path", &self.path)
            .field("data_keys", &keys(&self.data))
            .field("remote_address", &self.remote_address)
            .field("remote_port", &self.remote_port)
            .field("wrap_ttl", &self.wrap_ttl)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("non_hmac_request_keys", &self.non_hmac_request_keys)
            .field("error", &self.error)
            .field("forwarded_from", &self.forwarded_from)
            .finish_non_exhaustive()
    }
}

/// The lease of a returned secret: `response.secret`. The lease ID is written as is (as in
/// OpenBao: a lease ID is not a credential).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSecret {
    /// Lease ID (empty when the secret has a TTL but no lease, e.g. kv v1 `ttl`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lease_id: String,
}

/// Response-wrapping information: `response.wrap_info`. `token` is always hashed,
/// `accessor` and `wrapped_accessor` unless `hmac_accessor = false`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditWrapInfo {
    /// TTL in seconds.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub ttl: u64,
    /// The wrapping token.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// The wrapping token's accessor.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub accessor: String,
    /// Creation time, RFC 3339 with nanoseconds.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub creation_time: String,
    /// Path whose response was wrapped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub creation_path: String,
    /// Accessor of a wrapped token (token creation with a wrap TTL).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wrapped_accessor: String,
}

impl fmt::Debug for AuditWrapInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditWrapInfo")
            .field("ttl", &self.ttl)
            .field("token", &redact(&self.token))
            .field("accessor", &redact(&self.accessor))
            .field("creation_time", &self.creation_time)
            .field("creation_path", &self.creation_path)
            .field("wrapped_accessor", &redact(&self.wrapped_accessor))
            .finish()
    }
}

/// A response as the core is about to return it. The mount fields of an entry's `response`
/// object come from the [`AuditRequest`].
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditResponse {
    /// A token issued by a login or token creation (`response.auth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuditAuth>,
    /// The lease of a returned secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<AuditSecret>,
    /// Response data; every string inside is hashed except under `non_hmac_response_keys`.
    #[serde(skip_serializing_if = "map_is_empty")]
    pub data: Option<Map>,
    /// Warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Redirect target, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub redirect: String,
    /// Wrapping information when the response was wrapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<AuditWrapInfo>,
    /// The error returned to the client (the entry's `error`; empty for none).
    #[serde(skip)]
    pub error: String,
    /// The mount's `audit_non_hmac_response_keys` (not written).
    #[serde(skip)]
    pub non_hmac_response_keys: Vec<String>,
}

impl fmt::Debug for AuditResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditResponse")
            .field("auth", &self.auth)
            .field("secret", &self.secret)
            .field("data_keys", &keys(&self.data))
            .field("warnings", &self.warnings)
            .field("redirect", &self.redirect)
            .field("wrap_info", &self.wrap_info)
            .field("error", &self.error)
            .field("non_hmac_response_keys", &self.non_hmac_response_keys)
            .finish()
    }
}

/// One request line of the audit log.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestEntry {
    /// When the entry was written, RFC 3339 with nanoseconds (trailing zeros trimmed), UTC.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// `request`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub entry_type: String,
    /// The requesting token.
    pub auth: AuditAuth,
    /// The request.
    pub request: AuditRequest,
    /// The error known at request time.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The standby that forwarded the request.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub forwarded_from: String,
}

/// The `response` object of a response entry.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EntryResponse {
    /// Token issued by the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuditAuth>,
    /// Mount point.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_point: String,
    /// Mount type.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
    /// Mount accessor.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_accessor: String,
    /// Running plugin version of the mount.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_running_plugin_version: String,
    /// SHA-256 of the mount's external plugin.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_running_sha256: String,
    /// `secret` or `auth`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_class: String,
    /// Lease of a returned secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<AuditSecret>,
    /// Response data (hashed).
    #[serde(skip_serializing_if = "map_is_empty")]
    pub data: Option<Map>,
    /// Warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Redirect target.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub redirect: String,
    /// Wrapping information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<AuditWrapInfo>,
}

/// One response line of the audit log.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponseEntry {
    /// When the entry was written, RFC 3339 with nanoseconds, UTC.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// `response`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub entry_type: String,
    /// The requesting token (the new token for a login).
    pub auth: AuditAuth,
    /// The request.
    pub request: AuditRequest,
    /// The response.
    pub response: EntryResponse,
    /// The error returned to the client.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The request was forwarded by a standby.
    #[serde(skip_serializing_if = "is_false")]
    pub forwarded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_fields_are_left_out_and_namespace_defaults_to_root() {
        let req = AuditRequest {
            id: "r1".into(),
            operation: "read".into(),
            path: "secret/foo".into(),
            data: Some(Map::new()),
            ..Default::default()
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            json!({"id":"r1","operation":"read","namespace":{"id":"root"},"path":"secret/foo"})
        );
        let auth = serde_json::to_value(AuditAuth::default()).unwrap();
        assert_eq!(auth, json!({}));
    }

    #[test]
    fn field_order_is_openbaos() {
        let req = AuditRequest {
            id: "i".into(),
            operation: "update".into(),
            mount_point: "sys/".into(),
            client_token: "t".into(),
            path: "p".into(),
            remote_address: "127.0.0.1".into(),
            remote_port: 4,
            wrap_ttl: 60,
            ..Default::default()
        };
        let s = serde_json::to_string(&req).unwrap();
        assert_eq!(
            s,
            r#"{"id":"i","operation":"update","mount_point":"sys/","client_token":"t","namespace":{"id":"root"},"path":"p","remote_address":"127.0.0.1","remote_port":4,"wrap_ttl":60}"#
        );
    }

    #[test]
    fn debug_hides_tokens_and_data_values() {
        let mut data = Map::new();
        data.insert("password".into(), json!("hunter2-plain"));
        let req = AuditRequest {
            client_token: "s.secret-token".into(),
            client_token_accessor: "acc-secret".into(),
            data: Some(data.clone()),
            auth: Some(AuditAuth {
                client_token: "s.secret-token".into(),
                accessor: "acc-secret".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = AuditResponse {
            data: Some(data),
            wrap_info: Some(AuditWrapInfo {
                token: "s.wrap-secret".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let shown = format!("{req:?} {resp:?}");
        for secret in [
            "s.secret-token",
            "acc-secret",
            "hunter2-plain",
            "s.wrap-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown by Debug");
        }
        assert!(shown.contains("password"));
    }
}
