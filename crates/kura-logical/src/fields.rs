//! Typed request fields with OpenBao's lenient coercions ("true" is a bool, "1h" a duration,
//! `"a,b"` a comma-separated list).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::{LogicalError, Map, Result};

/// The type of a field, as OpenBao's framework names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Any string; numbers and bools are stringified.
    String,
    /// A string folded to lowercase.
    LowerCaseString,
    /// An integer; numeric strings accepted.
    Int,
    /// A bool; "true"/"false"/"1"/"0" accepted.
    Bool,
    /// A duration: integer seconds or a Go-style string.
    Duration,
    /// A JSON object (or a string holding one).
    Map,
    /// A list of strings; a single string is split on commas.
    CommaStringSlice,
    /// A list of strings; a single string becomes a one-element list.
    StringSlice,
    /// A string → string map; `["k=v"]` is accepted too.
    KvPairs,
    /// Any JSON value, unchanged.
    Raw,
}

/// One field of a path.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// The field name.
    pub name: &'static str,
    /// Its type.
    pub kind: FieldType,
    /// Default value (JSON), used when the field is absent.
    pub default: Option<Value>,
    /// Help text.
    pub description: &'static str,
}

impl FieldSpec {
    /// A field without a default.
    pub const fn new(name: &'static str, kind: FieldType, description: &'static str) -> Self {
        FieldSpec {
            name,
            kind,
            default: None,
            description,
        }
    }

    /// Builder: sets the default.
    pub fn default_value(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
}

/// The fields of one request, typed by the path's [`FieldSpec`]s. URL captures take precedence
/// over body fields of the same name.
#[derive(Debug, Clone)]
pub struct FieldData {
    raw: Map,
    captures: HashMap<String, String>,
    /// Shared with the path table: a request never copies its path's specs.
    specs: std::sync::Arc<[FieldSpec]>,
}

impl FieldData {
    /// Builds field data from request data, URL captures and the path's specs.
    pub fn new(
        raw: Map,
        captures: HashMap<String, String>,
        specs: impl Into<std::sync::Arc<[FieldSpec]>>,
    ) -> Self {
        FieldData {
            raw,
            captures,
            specs: specs.into(),
        }
    }

    /// Rejects fields that are not declared, as OpenBao does for strict paths. Returns the
    /// names of unknown fields so callers can warn instead.
    pub fn unknown_fields(&self) -> Vec<String> {
        self.raw
            .keys()
            .filter(|k| !self.specs.iter().any(|s| s.name == k.as_str()))
            .cloned()
            .collect()
    }

    /// The raw request body.
    pub fn raw(&self) -> &Map {
        &self.raw
    }

    /// True if the client sent the field (or it was captured from the URL).
    pub fn is_set(&self, name: &str) -> bool {
        self.captures.contains_key(name) || self.raw.contains_key(name)
    }

    fn value(&self, name: &str) -> Option<Value> {
        if let Some(c) = self.captures.get(name) {
            return Some(Value::String(c.clone()));
        }
        if let Some(v) = self.raw.get(name) {
            return Some(v.clone());
        }
        self.specs
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.default.clone())
    }

    /// A string field ("" if absent).
    pub fn string(&self, name: &str) -> Result<String> {
        Ok(self.opt_string(name)?.unwrap_or_default())
    }

    /// A string field, `None` if absent.
    pub fn opt_string(&self, name: &str) -> Result<Option<String>> {
        self.value(name)
            .map(|v| coerce_string(name, &v))
            .transpose()
    }

    /// An integer field, `None` if absent.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.value(name).map(|v| coerce_int(name, &v)).transpose()
    }

    /// An integer field (0 if absent).
    pub fn int(&self, name: &str) -> Result<i64> {
        Ok(self.opt_int(name)?.unwrap_or(0))
    }

    /// A bool field, `None` if absent.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        self.value(name).map(|v| coerce_bool(name, &v)).transpose()
    }

    /// A bool field (false if absent).
    pub fn bool(&self, name: &str) -> Result<bool> {
        Ok(self.opt_bool(name)?.unwrap_or(false))
    }

    /// A duration field, `None` if absent.
    pub fn opt_duration(&self, name: &str) -> Result<Option<Duration>> {
        self.value(name)
            .map(|v| coerce_duration(name, &v))
            .transpose()
    }

    /// A duration field (zero if absent).
    pub fn duration(&self, name: &str) -> Result<Duration> {
        Ok(self.opt_duration(name)?.unwrap_or_default())
    }

    /// A list of strings (comma-separated strings are split), `None` if absent.
    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        let split = self
            .specs
            .iter()
            .find(|s| s.name == name)
            .is_none_or(|s| s.kind != FieldType::StringSlice);
        self.value(name)
            .map(|v| coerce_strings(name, &v, split))
            .transpose()
    }

    /// A list of strings (empty if absent).
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.opt_strings(name)?.unwrap_or_default())
    }

    /// A JSON object field, `None` if absent.
    pub fn opt_map(&self, name: &str) -> Result<Option<Map>> {
        self.value(name).map(|v| coerce_map(name, &v)).transpose()
    }

    /// A string → string map, `None` if absent.
    pub fn opt_kv_pairs(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        self.value(name)
            .map(|v| coerce_kv_pairs(name, &v))
            .transpose()
    }

    /// The field's value as sent, without coercion.
    pub fn opt_raw(&self, name: &str) -> Option<Value> {
        self.value(name)
    }
}

fn type_error(name: &str, want: &str) -> LogicalError {
    LogicalError::BadRequest(format!(
        "error converting input for field {name:?}: expected {want}"
    ))
}

/// Coerces a JSON value to a string as OpenBao does.
pub fn coerce_string(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(type_error(name, "string")),
    }
}

/// Coerces a JSON value to an integer.
pub fn coerce_int(name: &str, v: &Value) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| type_error(name, "integer")),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s.trim().parse().map_err(|_| type_error(name, "integer")),
        Value::Bool(b) => Ok(*b as i64),
        Value::Null => Ok(0),
        _ => Err(type_error(name, "integer")),
    }
}

/// Coerces a JSON value to a bool.
pub fn coerce_bool(name: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0) != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Ok(true),
            "0" | "f" | "false" | "" => Ok(false),
            _ => Err(type_error(name, "bool")),
        },
        Value::Null => Ok(false),
        _ => Err(type_error(name, "bool")),
    }
}

/// Coerces a JSON value to a duration (integer seconds or a Go-style string).
pub fn coerce_duration(name: &str, v: &Value) -> Result<Duration> {
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::String(s) if s.trim().is_empty() => Ok(Duration::ZERO),
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| type_error(name, "duration"))?;
            if secs < 0.0 {
                return Err(type_error(name, "non-negative duration"));
            }
            Ok(Duration::from_secs_f64(secs))
        }
        Value::String(s) => kura_config::duration::parse_duration(s.trim()).map_err(|e| {
            LogicalError::BadRequest(format!("error converting input for field {name:?}: {e}"))
        }),
        _ => Err(type_error(name, "duration")),
    }
}

/// Coerces a JSON value to a list of strings.
pub fn coerce_strings(name: &str, v: &Value, split_commas: bool) -> Result<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| coerce_string(name, i)).collect(),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) if split_commas => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        other => Ok(vec![coerce_string(name, other)?]),
    }
}

/// Coerces a JSON value to an object.
pub fn coerce_map(name: &str, v: &Value) -> Result<Map> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Ok(Map::new()),
        Value::String(s) if s.is_empty() => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(type_error(name, "map")),
        },
        _ => Err(type_error(name, "map")),
    }
}

/// Coerces a JSON value to string → string pairs.
pub fn coerce_kv_pairs(name: &str, v: &Value) -> Result<BTreeMap<String, String>> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), coerce_string(name, v)?)))
            .collect(),
        Value::Array(_) | Value::String(_) => {
            let mut out = BTreeMap::new();
            for item in coerce_strings(name, v, true)? {
                let (k, val) = item
                    .split_once('=')
                    .ok_or_else(|| type_error(name, "key=value pairs"))?;
                out.insert(k.to_string(), val.to_string());
            }
            Ok(out)
        }
        Value::Null => Ok(BTreeMap::new()),
        _ => Err(type_error(name, "key=value pairs")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fd(v: Value) -> FieldData {
        let specs = vec![
            FieldSpec::new("ttl", FieldType::Duration, ""),
            FieldSpec::new("policies", FieldType::CommaStringSlice, ""),
            FieldSpec::new("n", FieldType::Int, "").default_value(json!(10)),
            FieldSpec::new("flag", FieldType::Bool, ""),
            FieldSpec::new("path", FieldType::String, ""),
        ];
        let mut caps = HashMap::new();
        caps.insert("path".to_string(), "from/url".to_string());
        FieldData::new(v.as_object().unwrap().clone(), caps, specs)
    }

    #[test]
    fn lenient_coercions() {
        let f = fd(json!({"ttl": "1h", "policies": "a, b", "flag": "true", "path": "body"}));
        assert_eq!(f.duration("ttl").unwrap(), Duration::from_secs(3600));
        assert_eq!(f.strings("policies").unwrap(), vec!["a", "b"]);
        assert!(f.bool("flag").unwrap());
        assert_eq!(f.int("n").unwrap(), 10, "default applies");
        assert_eq!(f.string("path").unwrap(), "from/url", "captures win");
        let f = fd(json!({"ttl": 90, "n": "7", "policies": ["x"]}));
        assert_eq!(f.duration("ttl").unwrap(), Duration::from_secs(90));
        assert_eq!(f.int("n").unwrap(), 7);
        assert_eq!(f.strings("policies").unwrap(), vec!["x"]);
    }

    #[test]
    fn bad_types_are_400() {
        let f = fd(json!({"n": "seven", "flag": "maybe", "ttl": "soon"}));
        assert_eq!(f.int("n").unwrap_err().status(), 400);
        assert_eq!(f.bool("flag").unwrap_err().status(), 400);
        assert_eq!(f.duration("ttl").unwrap_err().status(), 400);
        let f = fd(json!({"zzz": 1}));
        assert_eq!(f.unknown_fields(), vec!["zzz"]);
    }

    #[test]
    fn kv_pairs_from_list_or_map() {
        assert_eq!(
            coerce_kv_pairs("m", &json!(["a=1", "b=2"])).unwrap().len(),
            2
        );
        assert_eq!(coerce_kv_pairs("m", &json!({"a": 1})).unwrap()["a"], "1");
        assert!(coerce_kv_pairs("m", &json!(["nope"])).is_err());
    }
}
