//! HTTP ⇄ core request/response conversion in OpenBao's shapes.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use kura_core::{Core, HaState};
use kura_logical::{LogicalError, Map, Operation, Request, Response};
use serde_json::{json, Value};

use crate::spool::Spool;
use crate::ListenerSettings;

/// OpenBao's default `max_request_size`: 32 MiB.
pub const MAX_REQUEST_SIZE_DEFAULT: usize = 32 * 1024 * 1024;

pub(crate) type HttpResponse = hyper::Response<Full<Bytes>>;

fn json_response(status: u16, body: &Value) -> HttpResponse {
    let mut bytes = Vec::with_capacity(512);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes.clear();
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

pub(crate) fn error_response(status: u16, messages: Vec<String>) -> HttpResponse {
    json_response(status, &json!({ "errors": messages }))
}

fn logical_error(e: &LogicalError) -> HttpResponse {
    error_response(e.status(), e.messages())
}

/// Parses a query string into request data (`a=1&b=2`), percent-decoding values.
fn parse_query(q: &str) -> Map {
    let mut m = Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(percent_decode(k), Value::String(percent_decode(v)));
    }
    m
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A unique request ID in UUID form without a system call per request: a per-process random
/// seed, and a counter pushed through a bijective mixer (so IDs never repeat in a process and
/// do not reveal the request count).
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (hi_seed, lo_seed) = *SEED.get_or_init(|| {
        let b = uuid::Uuid::new_v4().as_u128();
        ((b >> 64) as u64, b as u64)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let lo = mix(n.wrapping_add(lo_seed));
    let v = ((hi_seed as u128) << 64) | lo as u128;
    uuid::Uuid::from_u128(v).hyphenated().to_string()
}

/// Handles one HTTP request.
pub async fn handle(
    core: Arc<Core>,
    settings: &ListenerSettings,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    // The client's address: the connection's, or the one X-Forwarded-For names (it is what a
    // forwarded request carries to the active node too).
    let peer = match settings.x_forwarded_for.client_addr(peer, req.headers()) {
        Ok(p) => p,
        Err(message) => return error_response(400, vec![message]),
    };
    handle_any(core, settings, peer, req, false).await
}

/// Largest raft snapshot accepted for a restore (the listener's `max_request_size` applies to
/// every other body).
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// Endpoints whose body is passed on as bytes instead of being parsed as JSON.
fn takes_raw_body(path: &str) -> bool {
    matches!(
        path.trim_matches('/'),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    )
}

/// Handles one HTTP request with any body. `forwarded`: the request came from a standby, so it
/// must not be forwarded again.
pub(crate) async fn handle_any<B>(
    core: Arc<Core>,
    settings: &ListenerSettings,
    peer: SocketAddr,
    req: hyper::Request<B>,
    forwarded: bool,
) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let deadline = settings.max_request_duration;
    match tokio::time::timeout(deadline, handle_inner(core, settings, peer, req, forwarded)).await {
        Ok(r) => r,
        Err(_) => error_response(504, vec!["request exceeded max_request_duration".into()]),
    }
}

async fn handle_inner<B>(
    core: Arc<Core>,
    settings: &ListenerSettings,
    peer: SocketAddr,
    req: hyper::Request<B>,
    forwarded: bool,
) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    let Some(path) = parts.uri.path().strip_prefix("/v1/") else {
        return error_response(404, vec![]);
    };
    let path = percent_decode(path);
    let mut body = Some(body);
    let state = core.current_state();
    let local = crate::forward::local_on_standby(&path);
    if forwarded && state.is_standby() && !local {
        return crate::forward::not_active();
    }
    // A read-serving standby runs the request itself unless its client has seen a newer index
    // than this node has taken in (and does not accept to fail).
    let mut serving_standby = state == HaState::ReadServingStandby && !local;
    let mut forward_now = state == HaState::Standby && !local;
    if serving_standby {
        if let Some(wanted) = requested_index(&parts.headers, &core) {
            if !core.wait_consistent(wanted, CONSISTENCY_WAIT).await {
                let inconsistent = parts
                    .headers
                    .get("x-vault-inconsistent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("forward-active-node");
                if inconsistent.eq_ignore_ascii_case("fail") {
                    return error_response(412, vec!["required index state not present".into()]);
                }
                serving_standby = false;
                forward_now = true;
            }
        }
    }
    let ready: Option<Bytes> = if forward_now {
        let body = body.take().expect("body not read yet");
        match crate::forward::on_standby(core.clone(), settings, peer, &parts, body).await {
            crate::forward::StandbyOutcome::Answered(resp) => return resp,
            // The node became active while the request waited: serve it here.
            crate::forward::StandbyOutcome::NowActive(bytes) => Some(bytes),
        }
    } else {
        None
    };
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    let is_head = parts.method == Method::HEAD;
    let list_param = query
        .get("list")
        .and_then(|v| v.as_str())
        .is_some_and(|v| matches!(v, "true" | "1" | "t" | "True"));
    let operation = match parts.method.as_str() {
        "GET" | "HEAD" if list_param => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        _ => return error_response(405, vec!["unsupported method".into()]),
    };
    let raw_body_wanted = operation == Operation::Update && takes_raw_body(&path);
    let mut raw_body = None;
    let mut spool: Option<Spool> = None;
    let data = if matches!(operation, Operation::Update | Operation::Patch) {
        let limit = if raw_body_wanted {
            settings.max_request_size.max(MAX_SNAPSHOT_BYTES)
        } else {
            settings.max_request_size
        };
        let collected = match (ready, body) {
            (Some(bytes), _) => Ok(bytes),
            (None, Some(body)) => Limited::new(body, limit)
                .collect()
                .await
                .map(|c| c.to_bytes()),
            (None, None) => Ok(Bytes::new()),
        };
        let bytes = match collected {
            Ok(b) => b,
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return error_response(413, vec!["http: request body too large".into()]);
                }
                return error_response(400, vec![format!("failed to read request body: {e}")]);
            }
        };
        let parsed = if raw_body_wanted {
            raw_body = Some(std::sync::Arc::new(bytes.to_vec()));
            Map::new()
        } else if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => {
                    return error_response(
                        400,
                        vec!["failed to parse JSON input: body must be a JSON object".into()],
                    )
                }
                Err(e) => {
                    return error_response(400, vec![format!("failed to parse JSON input: {e}")])
                }
            }
        };
        if serving_standby {
            spool = Some(Spool::keep(bytes, crate::spool::MEMORY_LIMIT));
        }
        parsed
    } else {
        let mut q = query;
        q.remove("list");
        q
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut token = header("x-vault-token").unwrap_or_default();
    if token.is_empty() {
        if let Some(auth) = header("authorization") {
            if let Some(t) = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
            {
                token = t.trim().to_string();
            }
        }
    }
    let wrap_ttl = match header("x-vault-wrap-ttl").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match kura_logical::coerce_duration("X-Vault-Wrap-TTL", &Value::String(v)) {
            Ok(d) => Some(d),
            Err(e) => return logical_error(&e),
        },
    };
    let request_id = next_request_id();
    let mut creq = Request::new(operation, path.trim_start_matches('/'));
    creq.id = request_id.clone();
    creq.data = data;
    creq.client_token = token;
    creq.namespace = header("x-vault-namespace").unwrap_or_default();
    creq.remote_addr = Some(peer.ip());
    creq.wrap_ttl = wrap_ttl;
    creq.raw_body = raw_body;
    creq.client_cert_chain = parts
        .extensions
        .get::<crate::ClientCertChain>()
        .map(|c| c.0.clone());
    let result = if serving_standby {
        creq.headers = parts.headers.clone();
        let retry = creq.clone();
        match core.handle_request(creq).await {
            Err(e) if e.is_read_only() => {
                // The request needs a write: the active node runs it, with the body replayed.
                let bytes = match spool.take().map(Spool::replay).transpose() {
                    Ok(b) => b.unwrap_or_default(),
                    Err(e) => {
                        return error_response(
                            500,
                            vec![format!("replaying the request body: {e}")],
                        )
                    }
                };
                let body = Full::new(bytes);
                match crate::forward::on_standby(core.clone(), settings, peer, &parts, body).await {
                    crate::forward::StandbyOutcome::Answered(resp) => return resp,
                    crate::forward::StandbyOutcome::NowActive(_) => {
                        core.handle_request(retry).await
                    }
                }
            }
            other => other,
        }
    } else {
        creq.headers = parts.headers;
        core.handle_request(creq).await
    };
    let mut resp = match result {
        Ok(r) => render(&request_id, r),
        Err(e) => {
            if matches!(e, LogicalError::Internal(_)) {
                tracing::error!(%request_id, error = %e, "internal error");
            }
            logical_error(&e)
        }
    };
    if let Some(index) = index_header(&core) {
        resp.headers_mut().insert("x-vault-index", index);
    }
    if is_head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

/// How long a standby waits to catch up with an index a client brings.
const CONSISTENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The index a client brings in `X-Vault-Index` (base64 of
/// `{"cluster":"<id>","value":"<index>"}`), if it names this cluster.
fn requested_index(headers: &http::HeaderMap, core: &Core) -> Option<u64> {
    use base64::Engine as _;
    let raw = headers.get("x-vault-index")?.to_str().ok()?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw.trim()))
        .ok()?;
    let v: Value = serde_json::from_slice(&json).ok()?;
    if !core.with_cluster_id(|id| v["cluster"].as_str() == Some(id))? {
        return None;
    }
    match &v["value"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The `X-Vault-Index` header of a response: this node's consistent index, for indexed
/// storage. Built once per index and cluster on each thread (it is on every response).
fn index_header(core: &Core) -> Option<HeaderValue> {
    use base64::Engine as _;
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(u64, String, HeaderValue)>> = const { RefCell::new(None) };
    }
    if !core.indexed_storage() {
        return None;
    }
    let index = core.consistent_index();
    core.with_cluster_id(|cluster| {
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((i, c, value)) = last.as_ref() {
                if *i == index && c == cluster {
                    return Some(value.clone());
                }
            }
            let json = format!("{{\"cluster\":\"{cluster}\",\"value\":\"{index}\"}}");
            let value =
                HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
                    .ok()?;
            *last = Some((index, cluster.to_string(), value.clone()));
            Some(value)
        })
    })
    .flatten()
}

/// Renders a core response in the JSON envelope.
fn render(request_id: &str, r: Response) -> HttpResponse {
    if let Some(raw) = r.raw {
        let mut resp = hyper::Response::new(Full::new(Bytes::from(raw.body)));
        *resp.status_mut() = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::OK);
        if let Ok(ct) = HeaderValue::from_str(&raw.content_type) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
        }
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        return resp;
    }
    if r.status == Some(204) {
        let mut resp = hyper::Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return resp;
    }
    let legacy = r
        .headers
        .iter()
        .any(|(k, _)| k == "x-kura-legacy-top-level");
    let (lease_id, renewable, lease_duration) = match &r.lease {
        Some(l) => (l.lease_id.clone(), l.renewable, l.ttl.as_secs()),
        None => (String::new(), false, 0),
    };
    let mut body = serde_json::Map::new();
    if legacy {
        if let Some(d) = &r.data {
            for (k, v) in d {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    body.insert("request_id".into(), json!(request_id));
    body.insert("lease_id".into(), json!(lease_id));
    body.insert("renewable".into(), json!(renewable));
    body.insert("lease_duration".into(), json!(lease_duration));
    body.insert("data".into(), r.data.map_or(Value::Null, Value::Object));
    body.insert(
        "wrap_info".into(),
        r.wrap_info.map_or(Value::Null, |w| {
            serde_json::to_value(w).unwrap_or(Value::Null)
        }),
    );
    body.insert(
        "warnings".into(),
        if r.warnings.is_empty() {
            Value::Null
        } else {
            json!(r.warnings)
        },
    );
    body.insert(
        "auth".into(),
        match r.auth {
            Some(a) => {
                let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
                v["mfa_requirement"] = Value::Null;
                v
            }
            None => Value::Null,
        },
    );
    let mut resp = json_response(r.status.unwrap_or(200), &Value::Object(body));
    for (k, v) in r
        .headers
        .iter()
        .filter(|(k, _)| k != "x-kura-legacy-top-level")
    {
        if let (Ok(name), Ok(val)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, val);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| next_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 36 && id.matches('-').count() == 4));
    }

    #[test]
    fn query_parsing_decodes() {
        let q = parse_query("version=2&list=true&a%2Fb=c%20d&e=f+g");
        assert_eq!(q["version"], "2");
        assert_eq!(q["a/b"], "c d");
        assert_eq!(q["e"], "f g");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn envelope_shape() {
        let mut d = Map::new();
        d.insert("k".into(), json!("v"));
        let mut r = Response::with_data(d);
        r.headers
            .push(("x-kura-legacy-top-level".into(), "1".into()));
        let resp = render("rid", r);
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("x-kura-legacy-top-level").is_none());
    }
}
