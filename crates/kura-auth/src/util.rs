//! Small helpers shared by the auth methods: OpenBao's name pattern, policy sanitizing, Go-style
//! timestamps, list paging, the "unrecognized parameters" warning, help answers, error shapes
//! and striped async locks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use kura_logical::{FieldData, LogicalError, Map, PathSpec, Response};
use serde_json::Value;

/// OpenBao's `GenericNameRegex` body (ASCII word characters, `-` and `.` inside, a word
/// character at both ends), to be wrapped in a named capture.
macro_rules! name_re {
    ($name:literal) => {
        concat!(
            "(?P<",
            $name,
            ">[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
        )
    };
}
pub(crate) use name_re;

pub(crate) use kura_logical::helpers::{list_response, now_nanos, warn_unknown};

/// Formats Unix nanoseconds as Go's `time.RFC3339Nano` in UTC; `0` is Go's zero time
/// (`0001-01-01T00:00:00Z`), which is how OpenBao shows "never".
pub(crate) fn format_time(nanos: i64) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    kura_logical::helpers::rfc3339_nanos(nanos)
}

/// Formats whole seconds as Go's `time.Duration.String()` (`1h0m0s`).
pub(crate) fn go_duration(secs: u64) -> String {
    kura_config::duration::format_duration(std::time::Duration::from_secs(secs))
}

/// OpenBao's `policyutil.ParsePolicies` without adding `default`: trims, lowercases, drops
/// empty names, collapses to `["root"]` when `root` is present, deduplicates and sorts.
pub(crate) fn sanitize_policies(policies: &[String]) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".to_string()];
    }
    out.sort();
    out.dedup();
    out
}

/// Applies `after` (exclusive) and `limit` (≤ 0: no limit) to a sorted listing, as OpenBao's
/// `ListPage` does.
pub(crate) fn page(keys: Vec<String>, fields: &FieldData) -> kura_logical::Result<Vec<String>> {
    let after = fields.string("after")?;
    let limit = fields.int("limit")?;
    let iter = keys
        .into_iter()
        .filter(|k| after.is_empty() || k.as_str() > after.as_str());
    Ok(match usize::try_from(limit) {
        Ok(n) if n > 0 => iter.take(n).collect(),
        _ => iter.collect(),
    })
}

/// The answer to a `help` request for a path.
pub(crate) fn help_response(spec: Option<&PathSpec>) -> Response {
    let mut data = Map::new();
    data.insert(
        "help".into(),
        Value::String(spec.map(|s| s.synopsis).unwrap_or_default().to_string()),
    );
    Response::with_data(data)
}

/// A 500 whose message is shown the way OpenBao renders an error a handler returned (wrapped
/// by Go's `multierror`). Used where OpenBao answers 500 for a condition a client can cause,
/// so status and text match the reference.
pub(crate) fn internal(msg: impl Into<String>) -> LogicalError {
    LogicalError::Coded {
        status: 500,
        message: format!("1 error occurred:\n\t* {}\n\n", msg.into()),
    }
}

/// A 500 with a plain message, as OpenBao answers errors from login paths.
pub(crate) fn plain_500(msg: impl Into<String>) -> LogicalError {
    LogicalError::Coded {
        status: 500,
        message: msg.into(),
    }
}

/// An error with an explicit status and a plain message.
pub(crate) fn coded(status: u16, msg: impl Into<String>) -> LogicalError {
    LogicalError::Coded {
        status,
        message: msg.into(),
    }
}

/// A fixed set of async mutexes selected by key hash, so that read-modify-write sequences on
/// the same key (a role, a secret ID) are serialized without a lock per key.
pub(crate) struct StripedLocks {
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl StripedLocks {
    /// `n` stripes.
    pub(crate) fn new(n: usize) -> Self {
        StripedLocks {
            locks: (0..n.max(1)).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// Locks the stripe of `key`.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let idx = (h.finish() % self.locks.len() as u64) as usize;
        self.locks[idx].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kura_logical::{FieldSpec, FieldType};
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn formats_times_like_go() {
        assert_eq!(format_time(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_time(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            format_time(1_521_685_446_000_000_000),
            "2018-03-22T02:24:06Z"
        );
        assert_eq!(go_duration(36_000_000), "10000h0m0s");
    }

    #[test]
    fn sanitizes_policies_like_openbao() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&p(&["b", " A", "a", "", "C"])),
            p(&["a", "b", "c"])
        );
        assert_eq!(sanitize_policies(&p(&["x", "Root"])), p(&["root"]));
        assert!(sanitize_policies(&[]).is_empty());
    }

    #[test]
    fn pages_and_lists() {
        let specs = vec![
            FieldSpec::new("after", FieldType::String, ""),
            FieldSpec::new("limit", FieldType::Int, ""),
        ];
        let keys: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let f = FieldData::new(
            json!({"after": "a", "limit": 1})
                .as_object()
                .unwrap()
                .clone(),
            HashMap::new(),
            specs.clone(),
        );
        assert_eq!(page(keys.clone(), &f).unwrap(), vec!["b"]);
        let f = FieldData::new(Map::new(), HashMap::new(), specs);
        assert_eq!(page(keys, &f).unwrap().len(), 3);
        assert!(list_response(Vec::new()).is_none());
        assert_eq!(internal("x").to_string(), "1 error occurred:\n\t* x\n\n");
    }

    #[test]
    fn name_pattern_matches_openbao() {
        let re = regex::Regex::new(&format!("^{}$", name_re!("n"))).unwrap();
        for ok in ["a", "ab", "a.b", "a-b_c", "A9", "bad..name"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["-a", "a-", ".a", "a.", "", "a/b", "é"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn striped_locks_serialize_a_key() {
        let locks = StripedLocks::new(4);
        let g = locks.lock("k").await;
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(20), locks.lock("k")).await;
        assert!(second.is_err(), "same key waits");
        drop(g);
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(200), locks.lock("k")).await;
        assert!(third.is_ok(), "free again once released");
    }
}
