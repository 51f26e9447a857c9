//! The response envelope of the Vault API ("secret"), with the field order and `null`
//! behaviour of the Go client's `api.Secret`, so re-serializing it prints what `bao` prints.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A response of the logical API: data, lease, auth and wrapping information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Request id assigned by the server.
    #[serde(default, deserialize_with = "null_as_default")]
    pub request_id: String,
    /// Lease id, empty when the response carries no lease.
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_id: String,
    /// Lease duration in seconds.
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_duration: i64,
    /// Whether the lease can be renewed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub renewable: bool,
    /// The response data (`null` when absent).
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    /// Warnings returned by the server (`null` when absent).
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// Authentication information (logins, token creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretAuth>,
    /// Response-wrapping information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<WrapInfo>,
    /// Type of the mount that answered, when the server reports it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
}

/// The `auth` block of a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretAuth {
    /// The token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub client_token: String,
    /// The token's accessor.
    #[serde(default, deserialize_with = "null_as_default")]
    pub accessor: String,
    /// All policies of the token.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// Policies attached to the token itself.
    #[serde(default)]
    pub token_policies: Option<Vec<String>>,
    /// Policies coming from the identity system.
    #[serde(default)]
    pub identity_policies: Option<Vec<String>>,
    /// Token metadata.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Whether the token has no parent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub orphan: bool,
    /// Identity entity of the token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub entity_id: String,
    /// Token TTL in seconds (0 = no expiry).
    #[serde(default, deserialize_with = "null_as_default")]
    pub lease_duration: i64,
    /// Whether the token can be renewed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub renewable: bool,
    /// MFA requirement of a login, when one is pending.
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
}

/// The `wrap_info` block of a wrapped response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WrapInfo {
    /// The wrapping token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub token: String,
    /// Accessor of the wrapping token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub accessor: String,
    /// TTL of the wrapping token in seconds.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ttl: i64,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_as_default")]
    pub creation_time: String,
    /// Path whose response was wrapped.
    #[serde(default, deserialize_with = "null_as_default")]
    pub creation_path: String,
    /// Accessor of the wrapped token, when a token was wrapped.
    #[serde(default, deserialize_with = "null_as_default")]
    pub wrapped_accessor: String,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Secret {
    /// Parses a response body. Like the Go client, a response whose `data`, `auth` and
    /// `wrap_info` are all absent still parses (an errors-only 404 body, for example).
    pub fn from_value(v: Value) -> Result<Secret, serde_json::Error> {
        serde_json::from_value(v)
    }

    /// True when the secret carries data or warnings; the Go client treats a 404 answer as
    /// "no value" unless this holds.
    pub fn has_data_or_warnings(&self) -> bool {
        self.data.as_ref().is_some_and(|d| !d.is_empty())
            || self.warnings.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// A field of `data`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_go_field_order_and_nulls() {
        let body = json!({"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
            "data":{"b":1,"a":2},"wrap_info":null,"warnings":null,"auth":null});
        let s = Secret::from_value(body).unwrap();
        let out = serde_json::to_string(&s).unwrap();
        assert_eq!(
            out,
            r#"{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,"data":{"b":1,"a":2},"warnings":null}"#
        );
    }

    #[test]
    fn auth_block_serializes_all_fields() {
        let body = json!({"auth":{"client_token":"t","accessor":"a","policies":["default"],
            "token_policies":["default"],"metadata":{"k":"v"},"lease_duration":60,"renewable":true,
            "entity_id":"","token_type":"service","orphan":false,"mfa_requirement":null,"num_uses":0}});
        let s = Secret::from_value(body).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<&String> = v["auth"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "client_token",
                "accessor",
                "policies",
                "token_policies",
                "identity_policies",
                "metadata",
                "orphan",
                "entity_id",
                "lease_duration",
                "renewable",
                "mfa_requirement"
            ]
        );
        assert_eq!(v["auth"]["identity_policies"], Value::Null);
    }

    #[test]
    fn has_data_or_warnings() {
        let empty = Secret::from_value(json!({"errors": []})).unwrap();
        assert!(!empty.has_data_or_warnings());
        let warn = Secret::from_value(json!({"warnings": ["w"]})).unwrap();
        assert!(warn.has_data_or_warnings());
        let data = Secret::from_value(json!({"data": {"x": 1}})).unwrap();
        assert!(data.has_data_or_warnings());
        assert_eq!(data.get("x"), Some(&json!(1)));
    }
}
