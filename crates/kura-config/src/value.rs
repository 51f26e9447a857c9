//! Lenient conversions of option values, as OpenBao's `parseutil` does them.
//!
//! OpenBao accepts `"true"`, `"1"`, `1` for booleans and `"30"` for integers in most places;
//! these helpers do the same and turn anything else into a [`ConfigError::InvalidValue`] that
//! names the file, the line, the option and where it sits.

use crate::duration::parse_duration_value;
use crate::error::ConfigError;
use crate::tree::{body_to_json, Item, Val};
use serde_json::Value;
use std::time::Duration;

/// An option being read: the item plus what is needed to name it in an error.
pub(crate) struct At<'a> {
    pub file: &'a str,
    pub context: &'a str,
    pub item: &'a Item,
}

impl<'a> At<'a> {
    /// Bundles an item with its file and context.
    pub fn new(file: &'a str, context: &'a str, item: &'a Item) -> Self {
        Self {
            file,
            context,
            item,
        }
    }

    /// An `InvalidValue` error for this option.
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_string(),
            line: self.item.line,
            option: self.item.key.clone(),
            context: self.context.to_string(),
            message: message.into(),
        }
    }

    /// The plain value; a block is an error.
    pub fn scalar(&self) -> Result<&'a Value, ConfigError> {
        match &self.item.value {
            Val::Scalar(v) => Ok(v),
            Val::Body(_) => Err(self.err("expected a value, found a block")),
        }
    }

    /// The option as raw JSON (bodies become objects).
    pub fn raw(&self) -> Value {
        match &self.item.value {
            Val::Scalar(v) => v.clone(),
            Val::Body(body) => Value::Object(body_to_json(body)),
        }
    }

    /// A string; numbers and booleans are written out as text.
    pub fn string(&self) -> Result<String, ConfigError> {
        match self.scalar()? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Ok(String::new()),
            Value::Array(_) => Err(self.err("expected a string, found a list")),
            Value::Object(_) => Err(self.err("expected a string, found an object")),
        }
    }

    /// A string, `None` when empty (OpenBao treats an empty string as unset).
    pub fn opt_string(&self) -> Result<Option<String>, ConfigError> {
        let s = self.string()?;
        Ok((!s.is_empty()).then_some(s))
    }

    /// A boolean: `true`/`false`, Go's `strconv.ParseBool` strings, or a number (non-zero is
    /// true). An empty string is false.
    pub fn bool(&self) -> Result<bool, ConfigError> {
        bool_of(self.scalar()?).map_err(|m| self.err(m))
    }

    /// A signed integer: a whole number or a decimal string (empty is 0).
    pub fn int(&self) -> Result<i64, ConfigError> {
        int_of(self.scalar()?).map_err(|m| self.err(m))
    }

    /// A non-negative integer.
    pub fn uint(&self) -> Result<u64, ConfigError> {
        let v = self.int()?;
        u64::try_from(v).map_err(|_| self.err(format!("must not be negative, got {v}")))
    }

    /// A duration: integer seconds or a Go duration string.
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        parse_duration_value(self.scalar()?).map_err(|e| self.err(e.to_string()))
    }

    /// A list of strings: a list, or a comma-separated string (blank entries dropped).
    pub fn string_list(&self) -> Result<Vec<String>, ConfigError> {
        match self.scalar()? {
            Value::String(s) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()),
            Value::Array(list) => list
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(self.err("expected a list of strings")),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err(self.err("expected a list of strings or a comma-separated string")),
        }
    }
}

/// Go's `strconv.ParseBool` plus mapstructure's weak conversions.
pub(crate) fn bool_of(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.as_str() {
            "" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(format!("cannot parse {other:?} as a boolean")),
        },
        Value::Null => Ok(false),
        Value::Array(_) => Err("expected a boolean, found a list".to_string()),
        Value::Object(_) => Err("expected a boolean, found an object".to_string()),
    }
}

/// OpenBao's `parseutil.ParseInt`: whole numbers and decimal strings.
pub(crate) fn int_of(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("expected a whole number, got {n}")),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("cannot parse {s:?} as an integer")),
        Value::Bool(_) => Err("expected an integer, found a boolean".to_string()),
        Value::Null => Ok(0),
        Value::Array(_) => Err("expected an integer, found a list".to_string()),
        Value::Object(_) => Err("expected an integer, found an object".to_string()),
    }
}

/// A scalar written out as a string, the way OpenBao turns option maps into
/// `map[string]string`: strings as they are, everything else as JSON.
pub(crate) fn stringify(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_are_lenient_like_openbao() {
        for v in [json!(true), json!("true"), json!("1"), json!("T"), json!(1)] {
            assert_eq!(bool_of(&v), Ok(true), "{v}");
        }
        for v in [
            json!(false),
            json!("false"),
            json!("0"),
            json!(""),
            json!(0),
        ] {
            assert_eq!(bool_of(&v), Ok(false), "{v}");
        }
        assert!(bool_of(&json!("maybe")).unwrap_err().contains("maybe"));
        assert!(bool_of(&json!("yes")).is_err());
        assert!(bool_of(&json!([true])).is_err());
    }

    #[test]
    fn integers_accept_strings() {
        assert_eq!(int_of(&json!(42)), Ok(42));
        assert_eq!(int_of(&json!("42")), Ok(42));
        assert_eq!(int_of(&json!("-1")), Ok(-1));
        assert_eq!(int_of(&json!("")), Ok(0));
        assert!(int_of(&json!(1.5)).is_err());
        assert!(int_of(&json!("1mb")).is_err());
        assert!(int_of(&json!(true)).is_err());
    }

    #[test]
    fn stringify_matches_openbao_maps() {
        assert_eq!(stringify(&json!("x")), "x");
        assert_eq!(stringify(&json!(true)), "true");
        assert_eq!(stringify(&json!(5)), "5");
        assert_eq!(stringify(&json!([1, "a"])), "[1,\"a\"]");
    }
}
