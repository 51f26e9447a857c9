//! Turning a request / response into an entry: hashing, list elision, time stamps, and the
//! JSON line itself.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::salt::Hasher;
use crate::types::{
    AuditAuth, AuditRequest, AuditResponse, AuditWrapInfo, EntryResponse, Map, RequestEntry,
    ResponseEntry,
};

/// How a device formats entries (from its options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FormatOptions {
    /// `log_raw`: write everything in plaintext.
    pub raw: bool,
    /// `hmac_accessor`: hash accessors (default true).
    pub hmac_accessor: bool,
    /// `elide_list_responses`: replace `keys` / `key_info` of list responses by their counts.
    pub elide_list_responses: bool,
}

/// `time` in Go's RFC 3339 "nano" layout: UTC, fractional seconds with trailing zeros
/// trimmed (none when zero), `Z`.
pub(crate) fn rfc3339_nano(t: OffsetDateTime) -> String {
    let nanos = i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX);
    kura_logical::helpers::rfc3339_nanos(nanos)
}

/// A Unix time in seconds as RFC 3339 (`2026-11-21T23:57:19Z`), the layout of
/// `auth.token_issue_time`. Out-of-range values give the Unix epoch.
pub fn rfc3339_seconds(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    rfc3339_nano(t.replace_nanosecond(0).unwrap_or(t))
}

/// The current time as an entry's `time`.
pub(crate) fn now() -> String {
    rfc3339_nano(OffsetDateTime::now_utc())
}

/// Copies `value` with object keys sorted (as Go writes maps) and, when `hasher` is given,
/// every string hashed unless the nearest enclosing object key is in `skip_keys`.
fn transform(
    value: &Value,
    key: Option<&str>,
    hasher: Option<&Hasher>,
    skip_keys: &[String],
) -> Value {
    match value {
        Value::String(s) => match hasher {
            Some(h) if !key.is_some_and(|k| skip_keys.iter().any(|s| s == k)) => {
                Value::String(h.hash(s))
            }
            _ => Value::String(s.clone()),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| transform(v, key, hasher, skip_keys))
                .collect(),
        ),
        Value::Object(map) => Value::Object(transform_map(map, hasher, skip_keys)),
        other => other.clone(),
    }
}

fn transform_map(map: &Map, hasher: Option<&Hasher>, skip_keys: &[String]) -> Map {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
        .into_iter()
        .map(|(k, v)| (k.clone(), transform(v, Some(k), hasher, skip_keys)))
        .collect()
}

/// Replaces a list response's `keys` (an array) and `key_info` (an object) by their sizes.
fn elide_list(map: &mut Map) {
    if let Some(Value::Array(keys)) = map.get("keys") {
        let n = keys.len();
        map.insert("keys".into(), Value::from(n));
    }
    if let Some(Value::Object(info)) = map.get("key_info") {
        let n = info.len();
        map.insert("key_info".into(), Value::from(n));
    }
}

fn data_copy(
    data: &Option<Map>,
    hasher: Option<&Hasher>,
    skip_keys: &[String],
    elide: bool,
) -> Option<Map> {
    let data = data.as_ref()?;
    let mut copy = data.clone();
    if elide {
        elide_list(&mut copy);
    }
    Some(transform_map(&copy, hasher, skip_keys))
}

fn hash_auth(auth: &AuditAuth, hasher: Option<&Hasher>, hmac_accessor: bool) -> AuditAuth {
    let mut out = auth.clone();
    if let Some(h) = hasher {
        if !out.client_token.is_empty() {
            out.client_token = h.hash(&out.client_token);
        }
        if hmac_accessor && !out.accessor.is_empty() {
            out.accessor = h.hash(&out.accessor);
        }
    }
    out
}

fn hash_wrap_info(
    info: &AuditWrapInfo,
    hasher: Option<&Hasher>,
    hmac_accessor: bool,
) -> AuditWrapInfo {
    let mut out = info.clone();
    if let Some(h) = hasher {
        out.token = h.hash(&out.token);
        if hmac_accessor {
            out.accessor = h.hash(&out.accessor);
            if !out.wrapped_accessor.is_empty() {
                out.wrapped_accessor = h.hash(&out.wrapped_accessor);
            }
        }
    }
    out
}

/// The entry's top-level `auth`: the requester's token, hashed, with `token_type` defaulted.
fn top_auth(req: &AuditRequest, hasher: Option<&Hasher>, opts: &FormatOptions) -> AuditAuth {
    let mut auth = match &req.auth {
        Some(a) => hash_auth(a, hasher, opts.hmac_accessor),
        None => AuditAuth::default(),
    };
    if auth.token_type.is_empty() {
        auth.token_type = "default".into();
    }
    auth
}

/// The request object, hashed. Only the written fields are kept.
fn request_copy(req: &AuditRequest, hasher: Option<&Hasher>, opts: &FormatOptions) -> AuditRequest {
    let mut out = AuditRequest {
        auth: None,
        id: req.id.clone(),
        client_id: req.client_id.clone(),
        operation: req.operation.clone(),
        mount_point: req.mount_point.clone(),
        mount_type: req.mount_type.clone(),
        mount_accessor: req.mount_accessor.clone(),
        mount_running_version: req.mount_running_version.clone(),
        mount_running_sha256: req.mount_running_sha256.clone(),
        mount_class: req.mount_class.clone(),
        client_token: req.client_token.clone(),
        client_token_accessor: req.client_token_accessor.clone(),
        namespace: req.namespace.clone(),
        path: req.path.clone(),
        data: data_copy(&req.data, hasher, &req.non_hmac_request_keys, false),
        policy_override: req.policy_override,
        remote_address: req.remote_address.clone(),
        remote_port: req.remote_port,
        wrap_ttl: req.wrap_ttl,
        headers: req.headers.clone(),
        client_certificate_serial_number: req.client_certificate_serial_number.clone(),
        hmac_headers: Vec::new(),
        non_hmac_request_keys: Vec::new(),
        error: String::new(),
        forwarded_from: String::new(),
    };
    if let Some(h) = hasher {
        if !out.client_token.is_empty() {
            out.client_token = h.hash(&out.client_token);
        }
        if opts.hmac_accessor && !out.client_token_accessor.is_empty() {
            out.client_token_accessor = h.hash(&out.client_token_accessor);
        }
        for (name, values) in out.headers.iter_mut() {
            if req
                .hmac_headers
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                for v in values.iter_mut() {
                    *v = h.hash(v);
                }
            }
        }
    }
    out
}

/// The request entry a device with `opts` and `hasher` writes (`hasher` is ignored for raw
/// devices).
pub(crate) fn request_entry(
    req: &AuditRequest,
    hasher: &Hasher,
    opts: &FormatOptions,
    time: &str,
) -> RequestEntry {
    let hasher = (!opts.raw).then_some(hasher);
    RequestEntry {
        time: time.to_string(),
        entry_type: "request".into(),
        auth: top_auth(req, hasher, opts),
        request: request_copy(req, hasher, opts),
        error: req.error.clone(),
        forwarded_from: req.forwarded_from.clone(),
    }
}

/// The response entry a device with `opts` and `hasher` writes.
pub(crate) fn response_entry(
    req: &AuditRequest,
    resp: &AuditResponse,
    hasher: &Hasher,
    opts: &FormatOptions,
    time: &str,
) -> ResponseEntry {
    let hasher = (!opts.raw).then_some(hasher);
    let elide = opts.elide_list_responses && req.operation == "list";
    ResponseEntry {
        time: time.to_string(),
        entry_type: "response".into(),
        auth: top_auth(req, hasher, opts),
        request: request_copy(req, hasher, opts),
        response: EntryResponse {
            auth: resp
                .auth
                .as_ref()
                .map(|a| hash_auth(a, hasher, opts.hmac_accessor)),
            mount_point: req.mount_point.clone(),
            mount_type: req.mount_type.clone(),
            mount_accessor: req.mount_accessor.clone(),
            mount_running_plugin_version: req.mount_running_version.clone(),
            mount_running_sha256: req.mount_running_sha256.clone(),
            mount_class: req.mount_class.clone(),
            secret: resp.secret.clone(),
            data: data_copy(&resp.data, hasher, &resp.non_hmac_response_keys, elide),
            warnings: resp.warnings.clone(),
            redirect: resp.redirect.clone(),
            wrap_info: resp
                .wrap_info
                .as_ref()
                .map(|w| hash_wrap_info(w, hasher, opts.hmac_accessor)),
        },
        error: resp.error.clone(),
        forwarded: !req.forwarded_from.is_empty(),
    }
}

/// One log line: `prefix`, the entry as JSON (escaped as Go's encoder escapes `<`, `>`, `&`,
/// U+2028 and U+2029), and a newline.
pub(crate) fn line<T: Serialize>(prefix: &str, entry: &T) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_string(entry)?;
    let mut out = String::with_capacity(prefix.len() + json.len() + 16);
    out.push_str(prefix);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salt::Salt;
    use serde_json::json;

    fn hasher() -> Hasher {
        Hasher::new(&Salt::from_bytes(b"test-salt".to_vec()))
    }

    fn opts() -> FormatOptions {
        FormatOptions {
            raw: false,
            hmac_accessor: true,
            elide_list_responses: false,
        }
    }

    fn obj(v: Value) -> Map {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn time_layout_matches_go_rfc3339nano() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_305_446_486_024_250).unwrap();
        assert_eq!(rfc3339_nano(t), "2026-11-21T23:57:26.48602425Z");
        let whole = OffsetDateTime::from_unix_timestamp(1_795_305_439).unwrap();
        assert_eq!(rfc3339_nano(whole), "2026-11-21T23:57:19Z");
        assert_eq!(rfc3339_seconds(1_795_305_439), "2026-11-21T23:57:19Z");
        let n = now();
        assert!(n.ends_with('Z') && n.len() >= 20, "{n}");
    }

    #[test]
    fn strings_are_hashed_recursively_numbers_and_bools_are_not() {
        let h = hasher();
        let data = obj(json!({
            "password": "hunter2",
            "n": 5,
            "flag": true,
            "none": null,
            "nested": {"inner": "v", "list": ["a", 1]},
        }));
        let out = data_copy(&Some(data), Some(&h), &[], false).unwrap();
        assert_eq!(out["password"], json!(h.hash("hunter2")));
        assert_eq!(out["n"], json!(5));
        assert_eq!(out["flag"], json!(true));
        assert_eq!(out["none"], Value::Null);
        assert_eq!(out["nested"]["inner"], json!(h.hash("v")));
        assert_eq!(out["nested"]["list"], json!([h.hash("a"), 1]));
        // keys come out sorted, as Go writes maps
        let keys: Vec<&String> = out.keys().collect();
        assert_eq!(keys, ["flag", "n", "nested", "none", "password"]);
    }

    #[test]
    fn non_hmac_keys_apply_at_any_depth_and_to_lists_under_them() {
        let h = hasher();
        let data = obj(json!({
            "username": "bob",
            "password": "pw",
            "meta": {"username": "alice", "tags": ["x"]},
            "tags": ["y", "z"],
        }));
        let skip = vec!["username".to_string(), "tags".to_string()];
        let out = data_copy(&Some(data), Some(&h), &skip, false).unwrap();
        assert_eq!(out["username"], json!("bob"));
        assert_eq!(out["meta"]["username"], json!("alice"));
        assert_eq!(out["meta"]["tags"], json!(["x"]));
        assert_eq!(out["tags"], json!(["y", "z"]));
        assert_eq!(out["password"], json!(h.hash("pw")));
    }

    #[test]
    fn list_elision_counts_keys_and_key_info_only_for_list_operations() {
        let h = hasher();
        let o = FormatOptions {
            elide_list_responses: true,
            ..opts()
        };
        let resp = AuditResponse {
            data: Some(obj(json!({
                "keys": ["a", "b", "c"],
                "key_info": {"a": {}, "b": {}},
                "other": "x",
            }))),
            ..Default::default()
        };
        let list = AuditRequest {
            operation: "list".into(),
            ..Default::default()
        };
        let e = response_entry(&list, &resp, &h, &o, "t");
        let d = e.response.data.unwrap();
        assert_eq!(d["keys"], json!(3));
        assert_eq!(d["key_info"], json!(2));
        assert_eq!(d["other"], json!(h.hash("x")));

        let read = AuditRequest {
            operation: "read".into(),
            ..Default::default()
        };
        let e = response_entry(&read, &resp, &h, &o, "t");
        let d = e.response.data.unwrap();
        assert_eq!(d["keys"], json!([h.hash("a"), h.hash("b"), h.hash("c")]));

        // raw devices elide too, without hashing
        let raw = FormatOptions { raw: true, ..o };
        let e = response_entry(&list, &resp, &h, &raw, "t");
        let d = e.response.data.unwrap();
        assert_eq!(d["keys"], json!(3));
        assert_eq!(d["other"], json!("x"));
    }

    #[test]
    fn accessors_follow_hmac_accessor() {
        let h = hasher();
        let req = AuditRequest {
            client_token: "tok".into(),
            client_token_accessor: "acc".into(),
            auth: Some(AuditAuth {
                client_token: "tok".into(),
                accessor: "acc".into(),
                token_type: "service".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = AuditResponse {
            wrap_info: Some(AuditWrapInfo {
                token: "wt".into(),
                accessor: "wa".into(),
                wrapped_accessor: "wwa".into(),
                ttl: 60,
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = response_entry(&req, &resp, &h, &opts(), "t");
        assert_eq!(e.auth.client_token, h.hash("tok"));
        assert_eq!(e.auth.accessor, h.hash("acc"));
        assert_eq!(e.request.client_token_accessor, h.hash("acc"));
        let w = e.response.wrap_info.unwrap();
        assert_eq!(w.token, h.hash("wt"));
        assert_eq!(w.accessor, h.hash("wa"));
        assert_eq!(w.wrapped_accessor, h.hash("wwa"));

        let plain_acc = FormatOptions {
            hmac_accessor: false,
            ..opts()
        };
        let e = response_entry(&req, &resp, &h, &plain_acc, "t");
        assert_eq!(e.auth.client_token, h.hash("tok"));
        assert_eq!(e.auth.accessor, "acc");
        assert_eq!(e.request.client_token, h.hash("tok"));
        assert_eq!(e.request.client_token_accessor, "acc");
        let w = e.response.wrap_info.unwrap();
        assert_eq!(w.token, h.hash("wt"));
        assert_eq!(w.accessor, "wa");
        assert_eq!(w.wrapped_accessor, "wwa");
    }

    #[test]
    fn unauthenticated_request_entry_has_default_token_type() {
        let h = hasher();
        let req = AuditRequest {
            id: "x".into(),
            operation: "update".into(),
            path: "sys/audit/test".into(),
            ..Default::default()
        };
        let e = request_entry(&req, &h, &opts(), "2026-01-01T00:00:00Z");
        let s = String::from_utf8(line("", &e).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"request\",\"auth\":{\"token_type\":\"default\"},\
             \"request\":{\"id\":\"x\",\"operation\":\"update\",\"namespace\":{\"id\":\"root\"},\
             \"path\":\"sys/audit/test\"}}\n"
        );
    }

    #[test]
    fn headers_are_hashed_only_when_configured() {
        let h = hasher();
        let mut req = AuditRequest::default();
        req.headers.insert("x-secret".into(), vec!["s1".into()]);
        req.headers.insert("user-agent".into(), vec!["curl".into()]);
        req.hmac_headers = vec!["X-Secret".into()];
        let e = request_entry(&req, &h, &opts(), "t");
        assert_eq!(e.request.headers["x-secret"], vec![h.hash("s1")]);
        assert_eq!(e.request.headers["user-agent"], vec!["curl".to_string()]);
    }

    #[test]
    fn line_escapes_like_go_and_ends_with_newline() {
        let v = json!({"a": "<b>&\u{2028}"});
        let s = String::from_utf8(line("PFX", &v).unwrap()).unwrap();
        assert_eq!(s, "PFX{\"a\":\"\\u003cb\\u003e\\u0026\\u2028\"}\n");
        let back: Value = serde_json::from_str(s.trim_start_matches("PFX").trim_end()).unwrap();
        assert_eq!(back, v);
    }
}
