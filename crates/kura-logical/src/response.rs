//! The response a backend returns, in Vault's shapes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Map;

/// Authentication issued by a login or token creation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Auth {
    /// The new token.
    pub client_token: String,
    /// Its accessor.
    pub accessor: String,
    /// All policies.
    pub policies: Vec<String>,
    /// Policies attached to the token itself.
    pub token_policies: Vec<String>,
    /// Metadata.
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    /// TTL in seconds.
    pub lease_duration: u64,
    /// Whether the token can be renewed.
    pub renewable: bool,
    /// Entity ID.
    pub entity_id: String,
    /// `service` or `batch`.
    pub token_type: String,
    /// True if the token has no parent.
    pub orphan: bool,
    /// Use limit (0 = unlimited).
    pub num_uses: u64,
    /// Login only: requested token TTL in seconds (0 = the mount's default).
    #[serde(skip)]
    pub ttl: u64,
    /// Login only: maximum token lifetime in seconds (0 = the mount's maximum).
    #[serde(skip)]
    pub max_ttl: u64,
    /// Login only: period in seconds for periodic tokens (0 = not periodic).
    #[serde(skip)]
    pub period: u64,
    /// Login only: hard maximum lifetime in seconds (0 = none).
    #[serde(skip)]
    pub explicit_max_ttl: u64,
    /// Login only: CIDRs the token may be used from.
    #[serde(skip)]
    pub bound_cidrs: Vec<String>,
    /// Login only: display name (the core prefixes the mount's name).
    #[serde(skip)]
    pub display_name: String,
    /// Login only: do not attach the `default` policy.
    #[serde(skip)]
    pub no_default_policy: bool,
    /// Login only: opaque data the backend wants back on renewal (never shown to clients).
    #[serde(skip)]
    pub internal_data: Option<Map>,
}

/// A lease attached to a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Lease TTL.
    pub ttl: Duration,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The lease ID, set by the expiration manager.
    pub lease_id: String,
    /// What the backend needs to renew or revoke the secret later (never shown to clients).
    #[serde(default)]
    pub internal: Option<Map>,
}

/// Response-wrapping information.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: String,
    /// Its accessor.
    pub accessor: String,
    /// TTL in seconds.
    pub ttl: u64,
    /// RFC 3339 creation time.
    pub creation_time: String,
    /// Path that was wrapped.
    pub creation_path: String,
    /// Accessor of a wrapped token (for wrapped auth responses).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub wrapped_accessor: String,
}

/// A response that bypasses the JSON envelope (health checks, raw PEM, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A backend's answer. `None` from a handler means "nothing": 404 for reads, 204 otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The `data` object.
    pub data: Option<Map>,
    /// Authentication, for logins and token creation.
    pub auth: Option<Auth>,
    /// A lease for the returned secret.
    pub lease: Option<LeaseInfo>,
    /// Warnings returned to the client.
    pub warnings: Vec<String>,
    /// Wrapping information once wrapped.
    pub wrap_info: Option<WrapInfo>,
    /// A raw answer instead of the JSON envelope.
    pub raw: Option<RawResponse>,
    /// Overrides the HTTP status of the JSON envelope (e.g. 429 for standby health).
    pub status: Option<u16>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// A response with `data`.
    pub fn with_data(data: Map) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    /// A response with `data` built from a JSON value (must be an object; anything else
    /// becomes an empty object).
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Object(map) => Response::with_data(map),
            _ => Response::with_data(Map::new()),
        }
    }

    /// Adds a warning.
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
}
