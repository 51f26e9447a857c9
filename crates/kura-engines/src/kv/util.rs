//! Helpers shared by both KV versions: Vault-style timestamps and durations, the framework's
//! "unrecognized parameters" warning, JSON merge patch, list paging and OpenBao's weak input
//! coercions that `kura_logical::FieldType` does not cover.

use std::time::Duration;

use kura_logical::{FieldData, FieldSpec, FieldType, LogicalError, Map, Result};
use serde_json::Value;

pub(crate) use kura_logical::helpers::{
    list_response, now_nanos, rfc3339_nanos as format_time, warn_unknown,
};

/// Formats a whole number of seconds, possibly negative, as Go's `time.Duration.String()`.
pub(crate) fn format_secs(secs: i64) -> String {
    let abs = kura_config::duration::format_duration(Duration::from_secs(secs.unsigned_abs()));
    if secs < 0 {
        format!("-{abs}")
    } else {
        abs
    }
}

/// Parses a duration given as integer seconds or a Go-style string, keeping the sign, and
/// truncates it to whole seconds (OpenBao's `TypeSignedDurationSecond`).
pub(crate) fn parse_signed_secs(name: &str, v: &Value) -> Result<i64> {
    let conv = |e: &dyn std::fmt::Display| {
        LogicalError::BadRequest(format!("error converting input for field {name:?}: {e}"))
    };
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| conv(n))?;
                Ok(f.trunc() as i64)
            }
        }
        Value::String(s) => {
            let s = s.trim();
            let (neg, body) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let d = kura_config::duration::parse_duration(body).map_err(|e| conv(&e))?;
            let secs = i64::try_from(d.as_secs()).map_err(|_| conv(&"duration too large"))?;
            Ok(if neg { -secs } else { secs })
        }
        other => Err(conv(&format!("cannot parse {other} as a duration"))),
    }
}

/// Parses a non-negative duration in whole seconds (OpenBao's `TypeDurationSecond`), with
/// OpenBao's message for a negative value.
pub(crate) fn parse_secs(name: &str, v: &Value) -> Result<i64> {
    let secs = parse_signed_secs(name, v)?;
    if secs < 0 {
        return Err(LogicalError::BadRequest(format!(
            "error converting input for field {name:?}: cannot provide negative value '{secs}'"
        )));
    }
    Ok(secs)
}

/// Decodes a value to an integer the way Go's `mapstructure.WeakDecode` does: `null` is 0,
/// booleans are 0/1, integral numbers and integer strings parse; anything else is `None`.
pub(crate) fn weak_int(v: &Value) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64(),
        Value::String(s) if s.is_empty() => Some(0),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Decodes a value to a string the way `mapstructure.WeakDecode` does (`true` → `"1"`);
/// `None` for objects and arrays.
pub(crate) fn weak_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses OpenBao's `TypeCommaIntSlice`: a list of integers, a comma-separated string or a
/// single number.
pub(crate) fn int_list(name: &str, v: Option<&Value>) -> Result<Vec<i64>> {
    let bad = || LogicalError::BadRequest(format!("error converting input for field {name:?}"));
    let parse_str = |s: &str| -> Result<Vec<i64>> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| bad()))
            .collect()
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.trim().parse().map_err(|_| bad()),
                other => weak_int(other).ok_or_else(bad),
            })
            .collect(),
        Some(Value::String(s)) => parse_str(s),
        Some(other) => Ok(vec![weak_int(other).ok_or_else(bad)?]),
    }
}

/// Checks that every declared field the client sent converts to its type, as OpenBao's
/// framework validates a request before calling the handler (`Raw` fields are left to the
/// handler).
pub(crate) fn validate_fields(fields: &FieldData, specs: &[FieldSpec]) -> Result<()> {
    for spec in specs {
        if !fields.raw().contains_key(spec.name) {
            continue;
        }
        match spec.kind {
            FieldType::String | FieldType::LowerCaseString => {
                fields.opt_string(spec.name)?;
            }
            FieldType::Int => {
                fields.opt_int(spec.name)?;
            }
            FieldType::Bool => {
                fields.opt_bool(spec.name)?;
            }
            FieldType::Duration => {
                fields.opt_duration(spec.name)?;
            }
            FieldType::Map => {
                fields.opt_map(spec.name)?;
            }
            FieldType::CommaStringSlice | FieldType::StringSlice => {
                fields.opt_strings(spec.name)?;
            }
            FieldType::KvPairs => {
                fields.opt_kv_pairs(spec.name)?;
            }
            FieldType::Raw => {}
        }
    }
    Ok(())
}

/// Applies an RFC 7386 JSON merge patch to `target`: `null` members delete, objects merge
/// recursively, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in members {
            if v.is_null() {
                t.shift_remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Applies `after` (exclusive) and `limit` (≤ 0: no limit) to a sorted listing.
pub(crate) fn page(keys: Vec<String>, after: &str, limit: i64) -> Vec<String> {
    let iter = keys
        .into_iter()
        .filter(|k| after.is_empty() || k.as_str() > after);
    match usize::try_from(limit) {
        Ok(n) if n > 0 => iter.take(n).collect(),
        _ => iter.collect(),
    }
}

/// The listing prefix for a path: `""` stays the root, anything else ends with `/`.
pub(crate) fn list_prefix(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

/// Rejects writes to an empty path or a path ending in `/` with OpenBao's messages.
pub(crate) fn check_write_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(LogicalError::bad("missing path"));
    }
    if path.ends_with('/') {
        return Err(LogicalError::bad("cannot write to a path ending in '/'"));
    }
    Ok(())
}

/// Formats errors the way Go's `multierror` prints them.
pub(crate) fn multierror(errs: &[String]) -> String {
    let head = if errs.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    let mut out = head;
    for e in errs {
        out.push_str("\n\t* ");
        out.push_str(e);
    }
    out.push_str("\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_times_like_go() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            format_time(1_521_685_446_945_319_000),
            "2018-03-22T02:24:06.945319Z"
        );
        assert_eq!(
            format_time(1_521_685_446_100_000_000),
            "2018-03-22T02:24:06.1Z"
        );
    }

    #[test]
    fn formats_and_parses_durations() {
        assert_eq!(format_secs(0), "0s");
        assert_eq!(format_secs(3600), "1h0m0s");
        assert_eq!(format_secs(-1), "-1s");
        assert_eq!(format_secs(2_764_800), "768h0m0s");
        assert_eq!(parse_signed_secs("d", &json!("-5s")).unwrap(), -5);
        assert_eq!(parse_signed_secs("d", &json!("1.5s")).unwrap(), 1);
        assert_eq!(parse_signed_secs("d", &json!(90)).unwrap(), 90);
        assert_eq!(parse_signed_secs("d", &json!("2h")).unwrap(), 7200);
        assert!(parse_signed_secs("d", &json!("soon")).is_err());
        let err = parse_secs("delete_version_after", &json!("-1h")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error converting input for field \"delete_version_after\": cannot provide negative value '-3600'"
        );
    }

    #[test]
    fn weak_coercions() {
        assert_eq!(weak_int(&json!(null)), Some(0));
        assert_eq!(weak_int(&json!("3")), Some(3));
        assert_eq!(weak_int(&json!(true)), Some(1));
        assert_eq!(weak_int(&json!(2.0)), None);
        assert_eq!(weak_int(&json!("x")), None);
        assert_eq!(weak_string(&json!(true)).unwrap(), "1");
        assert_eq!(weak_string(&json!(1.5)).unwrap(), "1.5");
        assert!(weak_string(&json!({"a": 1})).is_none());
        assert_eq!(int_list("v", Some(&json!("1, 2"))).unwrap(), vec![1, 2]);
        assert_eq!(int_list("v", Some(&json!([3, "4"]))).unwrap(), vec![3, 4]);
        assert_eq!(int_list("v", Some(&json!(5))).unwrap(), vec![5]);
        assert!(int_list("v", Some(&json!(["x"]))).is_err());
        assert!(int_list("v", None).unwrap().is_empty());
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": null, "x": 9}, "e": [3], "n": null}),
        );
        assert_eq!(t, json!({"b": {"d": 3, "x": 9}, "e": [3]}));
        let mut t = json!({"a": 1});
        merge_patch(&mut t, &json!(null));
        assert_eq!(t, json!(null));
        let mut t = json!({"a": "str"});
        merge_patch(&mut t, &json!({"a": {"b": 1}}));
        assert_eq!(t, json!({"a": {"b": 1}}));
    }

    #[test]
    fn paging_and_prefixes() {
        let keys: Vec<String> = ["a", "a/", "b", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(page(keys.clone(), "a/", 0), vec!["b", "c"]);
        assert_eq!(page(keys.clone(), "", 2), vec!["a", "a/"]);
        assert_eq!(page(keys, "a", -1), vec!["a/", "b", "c"]);
        assert_eq!(list_prefix(""), "");
        assert_eq!(list_prefix("x"), "x/");
        assert_eq!(list_prefix("x/"), "x/");
        assert!(list_response(Vec::new()).is_none());
        assert_eq!(
            multierror(&["a".into(), "b".into()]),
            "2 errors occurred:\n\t* a\n\t* b\n\n"
        );
    }
}
