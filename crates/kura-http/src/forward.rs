//! Standby request handling: a standby forwards each request (method, path and query, headers,
//! body, client address) to the active node over the cluster port and answers with the active
//! node's response. With `X-Vault-No-Request-Forwarding` set, or when forwarding fails, it
//! redirects the client (307, `Location` = the active node's `api_addr` + path and query); with
//! no active node known it answers 503.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use kura_core::cluster::{ClusterPlaneError, ForwardedRequest, ForwardedResponse};
use kura_core::Core;

use crate::convert::{error_response, HttpResponse};
use crate::ListenerSettings;

/// Paths a standby answers itself (relative to `/v1/`): seal state, health, leader, and the
/// endpoints of a node that is not part of the cluster yet.
const LOCAL_ON_STANDBY: &[&str] = &[
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
    "sys/seal",
    "sys/init",
    "sys/leader",
    "sys/storage/raft/join",
];

/// True when a standby answers `path` itself instead of forwarding it.
pub(crate) fn local_on_standby(path: &str) -> bool {
    let p = path.trim_start_matches('/').trim_end_matches('/');
    LOCAL_ON_STANDBY.contains(&p)
}

/// How long a standby looks for an active node that takes a request.
const STANDBY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Pause between two attempts.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Headers that describe one hop and are not forwarded.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade" | "te"
    )
}

/// What became of a request that reached a standby.
pub(crate) enum StandbyOutcome {
    /// Forwarded, redirected or refused: the answer for the client.
    Answered(HttpResponse),
    /// The node became active while the request waited; its body, read already.
    NowActive(Bytes),
}

/// Handles a request that reached a standby: forward, or redirect, or 503.
pub(crate) async fn on_standby<B>(
    core: Arc<Core>,
    settings: &ListenerSettings,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: B,
) -> StandbyOutcome
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use StandbyOutcome::Answered;
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let no_forwarding = parts
        .headers
        .get("x-vault-no-request-forwarding")
        .is_some_and(|v| !v.is_empty());
    let bytes = match Limited::new(body, settings.max_request_size)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Answered(error_response(
                    413,
                    vec!["http: request body too large".into()],
                ));
            }
            return Answered(error_response(
                400,
                vec![format!("failed to read request body: {e}")],
            ));
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(n, _)| !hop_by_hop(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let req = ForwardedRequest {
        method: parts.method.as_str().to_string(),
        uri: uri.clone(),
        headers,
        body: bytes.to_vec(),
        remote_addr: peer.to_string(),
        client_cert_chain: chain_to_wire(parts.extensions.get::<crate::ClientCertChain>()),
    };
    // During a change of active node the advertisement may lag behind for a moment: wait
    // (bounded) for an active node that accepts the request rather than failing at once.
    let deadline = tokio::time::Instant::now() + STANDBY_WAIT;
    let mut last_known: Option<String> = None;
    loop {
        if core.current_state() == kura_core::HaState::Active {
            // This node became the active one while the request waited.
            return StandbyOutcome::NowActive(bytes);
        }
        if core.current_state() == kura_core::HaState::Sealed {
            return Answered(error_response(503, vec!["Vault is sealed".into()]));
        }
        let Some(active) = core.leader_advertisement().await else {
            if tokio::time::Instant::now() >= deadline {
                return Answered(match last_known {
                    Some(api) => redirect(&api, &uri),
                    None => error_response(
                        503,
                        vec!["local node not active but active cluster node not found".into()],
                    ),
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        let plane = match core.cluster_plane() {
            Some(p) if !no_forwarding => p,
            _ => return Answered(redirect(&active.api_addr, &uri)),
        };
        match plane.forward(&active.cluster_addr, &req).await {
            Ok(resp) if !is_not_active(&resp) => return Answered(into_http(resp)),
            Ok(_) | Err(ClusterPlaneError::Unreachable(_)) => {
                // Not processed: the target is not (or no longer) the active node.
            }
            Err(e) => {
                tracing::warn!(error = %e, "request forwarding failed; redirecting the client");
                return Answered(redirect(&active.api_addr, &uri));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Answered(redirect(&active.api_addr, &uri));
        }
        last_known = Some(active.api_addr);
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Header a node that is not active sets on its refusal of a forwarded request.
pub(crate) const NOT_ACTIVE_HEADER: &str = "x-kura-not-active";

fn is_not_active(r: &ForwardedResponse) -> bool {
    r.status == 503 && r.headers.iter().any(|(n, _)| n == NOT_ACTIVE_HEADER)
}

/// The refusal of a forwarded request by a node that is not active.
pub(crate) fn not_active() -> HttpResponse {
    let mut resp = error_response(
        503,
        vec!["forwarded request reached a node that is not active".into()],
    );
    resp.headers_mut()
        .insert(NOT_ACTIVE_HEADER, HeaderValue::from_static("1"));
    resp
}

fn redirect(api_addr: &str, uri: &str) -> HttpResponse {
    let location = format!("{}{}", api_addr.trim_end_matches('/'), uri);
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

fn into_http(r: ForwardedResponse) -> HttpResponse {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (n, v) in r.headers {
        if hop_by_hop(&n.to_ascii_lowercase()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::header::HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// A client's certificate chain as a forwarded request carries it: base64 DER, in order.
fn chain_to_wire(chain: Option<&crate::ClientCertChain>) -> Vec<String> {
    use base64::Engine as _;
    chain
        .map(|c| {
            c.0.iter()
                .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
                .collect()
        })
        .unwrap_or_default()
}

/// The chain back from a forwarded request; `None` when it carries none (or a damaged one).
fn chain_from_wire(wire: &[String]) -> Option<crate::ClientCertChain> {
    use base64::Engine as _;
    if wire.is_empty() {
        return None;
    }
    let ders: Option<Vec<Vec<u8>>> = wire
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .collect();
    Some(crate::ClientCertChain(std::sync::Arc::new(ders?)))
}

/// Serves a request forwarded by a standby, on the active node, through the same pipeline as a
/// request of its own listener (the client's certificate chain included). A node that is not
/// active refuses it (503), so a request is never forwarded twice.
pub async fn handle_forwarded(
    core: Arc<Core>,
    settings: &ListenerSettings,
    req: ForwardedRequest,
) -> ForwardedResponse {
    let peer: SocketAddr = req
        .remote_addr
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut builder = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.uri.as_str());
    for (n, v) in &req.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    if let Some(chain) = chain_from_wire(&req.client_cert_chain) {
        builder = builder.extension(chain);
    }
    let resp = match builder.body(Full::new(Bytes::from(req.body))) {
        Ok(r) => crate::convert::handle_any(core, settings, peer, r, true).await,
        Err(e) => error_response(400, vec![format!("invalid forwarded request: {e}")]),
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match resp.into_body().collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        Err(e) => match e {},
    };
    ForwardedResponse {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_chains_travel_with_forwarded_requests() {
        let chain = crate::ClientCertChain(std::sync::Arc::new(vec![
            vec![0x30, 0x82, 1, 2, 3],
            vec![0x30, 0x82, 9, 8],
        ]));
        let wire = chain_to_wire(Some(&chain));
        assert_eq!(wire.len(), 2);
        let back = chain_from_wire(&wire).expect("a chain");
        assert_eq!(back.0, chain.0);
        assert!(chain_to_wire(None).is_empty());
        assert!(chain_from_wire(&[]).is_none());
        assert!(chain_from_wire(&["not base64!".to_string()]).is_none());
    }

    #[test]
    fn standby_local_paths() {
        assert!(local_on_standby("sys/health"));
        assert!(local_on_standby("sys/seal-status/"));
        assert!(!local_on_standby("secret/data/a"));
        assert!(!local_on_standby("sys/mounts"));
    }

    #[test]
    fn redirect_keeps_path_and_query() {
        let r = redirect("http://127.0.0.1:8200/", "/v1/secret/data/a?version=2");
        assert_eq!(r.status(), 307);
        assert_eq!(
            r.headers()["location"],
            "http://127.0.0.1:8200/v1/secret/data/a?version=2"
        );
    }
}
