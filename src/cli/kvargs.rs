//! `K=V` argument parsing shared by `write`, `kv put`, `kv patch` and `login`, with `bao`'s
//! rules: `@file` and `-` merge a JSON object from a file or stdin, `k=@file` and `k=-` read
//! a value, `k=\@x` escapes a leading `@`, and a repeated key collects its values in a list.

use std::io::Read;

use serde_json::{Map, Value};

/// Why a `K=V` argument was refused. The `Display` text matches `bao`'s.
#[derive(Debug, thiserror::Error)]
pub enum KvArgError {
    /// The argument is not `key=value`, `@file` or `-`.
    #[error("invalid key/value pair {0:?}: format must be key=value")]
    Format(String),
    /// Stdin was asked for twice.
    #[error("invalid key/value pair {0:?}: stdin already consumed")]
    StdinConsumed(String),
    /// A file could not be read.
    #[error("invalid key/value pair {arg:?}: {prefix}open {path}: {reason}")]
    File {
        /// The argument.
        arg: String,
        /// `"error reading file: "` for `k=@file`, empty for `@file`.
        prefix: &'static str,
        /// The file.
        path: String,
        /// The OS error, in Go's wording where it matters.
        reason: String,
    },
    /// Stdin could not be read.
    #[error("invalid key/value pair {arg:?}: {reason}")]
    Stdin {
        /// The argument.
        arg: String,
        /// The error.
        reason: String,
    },
    /// A merged file or stdin did not hold a JSON object.
    #[error("invalid key/value pair {arg:?}: {reason}")]
    Json {
        /// The argument.
        arg: String,
        /// The decoding error.
        reason: String,
    },
}

fn go_io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Parses `K=V` arguments into a JSON object, reading stdin from `stdin` when asked to.
pub fn parse_kv_args(
    args: &[String],
    stdin: &mut dyn Read,
) -> Result<Map<String, Value>, KvArgError> {
    let mut result = Map::new();
    let mut stdin_used = false;
    for raw in args {
        if raw.is_empty() {
            continue;
        }
        let Some((key, value)) = raw.split_once('=') else {
            if raw == "-" {
                if stdin_used {
                    return Err(KvArgError::StdinConsumed(raw.clone()));
                }
                stdin_used = true;
                merge_json(&mut result, stdin, raw)?;
                continue;
            }
            if let Some(path) = raw.strip_prefix('@') {
                let mut f = std::fs::File::open(path).map_err(|e| KvArgError::File {
                    arg: raw.clone(),
                    prefix: "",
                    path: path.to_string(),
                    reason: go_io_reason(&e),
                })?;
                merge_json(&mut result, &mut f, raw)?;
                continue;
            }
            return Err(KvArgError::Format(raw.clone()));
        };
        let value = if let Some(path) = value.strip_prefix('@') {
            let bytes = std::fs::read(path).map_err(|e| KvArgError::File {
                arg: raw.clone(),
                prefix: "error reading file: ",
                path: path.to_string(),
                reason: go_io_reason(&e),
            })?;
            String::from_utf8_lossy(&bytes).into_owned()
        } else if let Some(rest) = value.strip_prefix("\\@") {
            format!("@{rest}")
        } else if value == "-" {
            if stdin_used {
                return Err(KvArgError::StdinConsumed(raw.clone()));
            }
            stdin_used = true;
            let mut buf = Vec::new();
            stdin.read_to_end(&mut buf).map_err(|e| KvArgError::Stdin {
                arg: raw.clone(),
                reason: e.to_string(),
            })?;
            String::from_utf8_lossy(&buf).into_owned()
        } else {
            value.to_string()
        };
        let value = Value::String(value);
        match result.get_mut(key) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                result.insert(key.to_string(), value);
            }
        }
    }
    Ok(result)
}

fn merge_json(
    result: &mut Map<String, Value>,
    r: &mut dyn Read,
    arg: &str,
) -> Result<(), KvArgError> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| KvArgError::Stdin {
        arg: arg.to_string(),
        reason: e.to_string(),
    })?;
    let v: Map<String, Value> = serde_json::from_slice(&buf).map_err(|e| KvArgError::Json {
        arg: arg.to_string(),
        reason: e.to_string(),
    })?;
    result.extend(v);
    Ok(())
}

/// Flattens parsed arguments to strings, as `login` needs (`mapstructure.WeakDecode`).
pub fn to_string_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a.first().map(super::format::go_value).unwrap_or_default(),
                other => super::format::go_value(other),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str], stdin: &str) -> Result<Value, KvArgError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut input = stdin.as_bytes();
        parse_kv_args(&args, &mut input).map(Value::Object)
    }

    #[test]
    fn plain_repeated_and_escaped() {
        let v = parse(&["a=1", "b=x", "b=y", "b=z", r"c=\@at", "d=", "e=x=y"], "").unwrap();
        assert_eq!(
            v,
            json!({"a": "1", "b": ["x", "y", "z"], "c": "@at", "d": "", "e": "x=y"})
        );
    }

    #[test]
    fn stdin_value_and_object() {
        assert_eq!(parse(&["a=-"], "hello\n").unwrap(), json!({"a": "hello\n"}));
        assert_eq!(
            parse(&["-", "w=1"], r#"{"z": [1, 2]}"#).unwrap(),
            json!({"z": [1, 2], "w": "1"})
        );
        let err = parse(&["-", "-"], "{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key/value pair \"-\": stdin already consumed"
        );
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.json");
        std::fs::write(&f, r#"{"k": {"n": null}}"#).unwrap();
        let arg = format!("@{}", f.display());
        assert_eq!(parse(&[&arg], "").unwrap(), json!({"k": {"n": null}}));
        let arg = format!("v=@{}", f.display());
        assert_eq!(
            parse(&[&arg], "").unwrap(),
            json!({"v": r#"{"k": {"n": null}}"#})
        );
        let err = parse(&["a=@/nonexist"], "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key/value pair \"a=@/nonexist\": error reading file: open /nonexist: no such file or directory"
        );
    }

    #[test]
    fn bad_format() {
        let err = parse(&["foo"], "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key/value pair \"foo\": format must be key=value"
        );
    }
}
