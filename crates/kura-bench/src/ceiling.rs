//! The physical ceiling: a minimal hyper HTTP/1.1 server that answers every request with one
//! fixed JSON body shaped and sized like a KV v2 read, and the headers OpenBao sends with it.
//! Whatever a secrets manager does per request, it cannot beat this on the same machine.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Size in bytes of OpenBao 2.7.2's answer to a KV v2 read of a 16-byte value.
pub const DEFAULT_BODY_BYTES: usize = 328;

/// A JSON body shaped like a KV v2 read response (ending in a newline, as OpenBao's do), exactly `size` bytes long when `size` is at
/// least as large as the unpadded shape (the value is padded to reach it).
pub fn kv2_read_body(size: usize) -> Bytes {
    let render = |value: &str| {
        format!(
            concat!(
                r#"{{"request_id":"00000000-0000-0000-0000-000000000000","lease_id":"","#,
                r#""renewable":false,"lease_duration":0,"data":{{"data":{{"value":"{}"}},"#,
                r#""metadata":{{"created_time":"2026-01-01T00:00:00.000000000Z","#,
                r#""custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}}}},"#,
                r#""wrap_info":null,"warnings":null,"auth":null}}"#,
                "\n"
            ),
            value
        )
    };
    let base = render("").len();
    let value = "v".repeat(size.saturating_sub(base));
    Bytes::from(render(&value))
}

/// Serves `body` with `status` on every request accepted from `listener`, forever.
pub async fn serve(listener: TcpListener, status: StatusCode, body: Bytes) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        // Latency matters more than packet count here, as for any API server.
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    let response = Response::builder()
                        .status(status)
                        .header("Cache-Control", "no-store")
                        .header("Content-Type", "application/json")
                        .header(
                            "Strict-Transport-Security",
                            "max-age=31536000; includeSubDomains",
                        )
                        .body(Full::new(body))
                        .expect("static response parts");
                    Ok::<_, Infallible>(response)
                }
            });
            // A client that goes away mid-request ends only its own connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `addr` and spawns the ceiling server on the current runtime; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    status: StatusCode,
    body: Bytes,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        // Accept errors end the server; the load generator then reports transport errors.
        let _ = serve(listener, status, body).await;
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_requested_size_and_is_json() {
        for size in [DEFAULT_BODY_BYTES, 400, 1000] {
            let body = kv2_read_body(size);
            assert_eq!(body.len(), size);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["data"]["metadata"]["version"], 1);
        }
    }

    #[test]
    fn default_size_matches_a_sixteen_byte_value() {
        // bao answers a read of {"value":"0123456789abcdef"} with 328 bytes; the unpadded shape
        // plus 16 value bytes must land on the same size.
        let body = kv2_read_body(0);
        assert_eq!(body.len() + 16, DEFAULT_BODY_BYTES);
    }
}
