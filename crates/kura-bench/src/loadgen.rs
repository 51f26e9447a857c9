//! Closed-loop HTTP/1.1 load generator.
//!
//! A fixed number of keep-alive connections each send requests back to back: the next request
//! leaves as soon as the previous answer has been read in full. Answers are recorded when they
//! complete inside the measured window (after the warm-up); requests still in flight when the
//! window closes are not counted but allowed to finish (drained), so that the server is idle
//! again when the next run starts. Latencies of successful (2xx) answers go into an HDR histogram;
//! non-2xx answers are counted per status code and transport errors separately, never as
//! successes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// How long a request still in flight at the end of the window may take to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Highest latency the histogram can hold, in microseconds (60 s).
const MAX_LATENCY_US: u64 = 60_000_000;

/// One request to send: method, path (with query), an optional Vault token and a body.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: Method,
    /// Path and query, e.g. `/v1/secret/data/key-1`.
    pub path: String,
    /// Value of `X-Vault-Token`, if any.
    pub token: Option<String>,
    /// JSON body; `None` sends no body.
    pub body: Option<Bytes>,
}

impl RequestSpec {
    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            token: None,
            body: None,
        }
    }

    /// A `POST` of `body` to `path`.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            token: None,
            body: Some(body.into()),
        }
    }

    /// The same request carrying `token` as `X-Vault-Token`.
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// Builds the hyper request for `host` (the `Host` header value).
    pub fn build(&self, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(http::header::HOST, host.clone());
        if let Some(token) = &self.token {
            builder = builder.header("X-Vault-Token", token.as_str());
        }
        let body = match &self.body {
            Some(body) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(body.clone())
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .expect("request parts built from valid values")
    }
}

/// Produces the request a connection sends next.
pub trait RequestGen: Send + Sync {
    /// The request connection `conn` sends as its `seq`-th request.
    fn next(&self, conn: usize, seq: u64) -> RequestSpec;
}

impl<F> RequestGen for F
where
    F: Fn(usize, u64) -> RequestSpec + Send + Sync,
{
    fn next(&self, conn: usize, seq: u64) -> RequestSpec {
        self(conn, seq)
    }
}

/// How to drive the load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Number of concurrent keep-alive connections.
    pub connections: usize,
    /// Unrecorded warm-up before the measured window.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
}

/// Instants bounding a run; known before it starts so that samplers can line up with it.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// When the warm-up begins (connections are opened just before).
    pub start: Instant,
    /// When recording begins.
    pub measure_start: Instant,
    /// When recording ends; requests still in flight then are drained, not counted.
    pub end: Instant,
}

impl Schedule {
    /// A schedule beginning now.
    pub fn starting_now(config: &LoadConfig) -> Self {
        let start = Instant::now();
        let measure_start = start + config.warmup;
        Self {
            start,
            measure_start,
            end: measure_start + config.duration,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Latencies of 2xx answers completed in the window, in microseconds.
    pub histogram: Histogram<u64>,
    /// Successful (2xx) answers in the window.
    pub ok: u64,
    /// Non-2xx answers in the window, per status code.
    pub status_errors: BTreeMap<u16, u64>,
    /// Connection or protocol failures in the window.
    pub transport_errors: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// A sample of the first non-2xx body seen (at most 300 bytes), to explain failures.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Successful requests per second over the window.
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// All non-2xx answers.
    pub fn status_error_count(&self) -> u64 {
        self.status_errors.values().sum()
    }

    /// Latency percentile in microseconds (0 when nothing succeeded).
    pub fn percentile_us(&self, q: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(q)
        }
    }

    /// Largest recorded latency in microseconds.
    pub fn max_us(&self) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.max()
        }
    }

    /// Mean latency in microseconds.
    pub fn mean_us(&self) -> f64 {
        if self.histogram.is_empty() {
            0.0
        } else {
            self.histogram.mean()
        }
    }
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The first connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Target address.
        addr: SocketAddr,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The `Host` header could not be formed.
    #[error("invalid host header")]
    Host,
    /// A connection task panicked.
    #[error("a connection task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Per-connection tallies, merged at the end.
struct ConnStats {
    histogram: Histogram<u64>,
    ok: u64,
    status_errors: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the peer closes it; either is
        // observed by the sender, so the outcome here carries nothing new.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Runs the load against `addr` following `schedule` and returns what the window measured.
pub async fn run(
    addr: SocketAddr,
    config: &LoadConfig,
    schedule: Schedule,
    gen: Arc<dyn RequestGen>,
) -> Result<LoadResult, LoadError> {
    run_spread(&[addr], config, schedule, gen).await
}

/// Runs the load spread over `addrs`: connection `c` goes to `addrs[c % addrs.len()]` (so the
/// nodes of a cluster each get an equal share of the connections). The result is the sum.
///
/// # Panics
/// If `addrs` is empty.
pub async fn run_spread(
    addrs: &[SocketAddr],
    config: &LoadConfig,
    schedule: Schedule,
    gen: Arc<dyn RequestGen>,
) -> Result<LoadResult, LoadError> {
    assert!(!addrs.is_empty(), "the load needs at least one address");
    let mut hosts = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        hosts.push(HeaderValue::from_str(&addr.to_string()).map_err(|_| LoadError::Host)?);
        // Fail fast when nothing listens.
        let probe = TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        drop(probe);
    }

    let mut tasks = Vec::with_capacity(config.connections);
    for conn in 0..config.connections {
        let gen = gen.clone();
        let addr = addrs[conn % addrs.len()];
        let host = hosts[conn % addrs.len()].clone();
        tasks.push(tokio::spawn(async move {
            connection_loop(addr, host, conn, schedule, gen).await
        }));
    }
    let mut result = LoadResult {
        histogram: new_histogram(),
        ok: 0,
        status_errors: BTreeMap::new(),
        transport_errors: 0,
        window: schedule.end - schedule.measure_start,
        first_error: None,
    };
    for task in tasks {
        let stats = task.await?;
        result
            .histogram
            .add(&stats.histogram)
            .expect("histograms share bounds");
        result.ok += stats.ok;
        result.transport_errors += stats.transport_errors;
        for (code, n) in stats.status_errors {
            *result.status_errors.entry(code).or_default() += n;
        }
        if result.first_error.is_none() {
            result.first_error = stats.first_error;
        }
    }
    Ok(result)
}

async fn connection_loop(
    addr: SocketAddr,
    host: HeaderValue,
    conn: usize,
    schedule: Schedule,
    gen: Arc<dyn RequestGen>,
) -> ConnStats {
    let mut stats = ConnStats {
        histogram: new_histogram(),
        ok: 0,
        status_errors: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
    };
    let mut sender: Option<Sender> = None;
    let mut seq: u64 = 0;
    let deadline = tokio::time::Instant::from_std(schedule.end);
    loop {
        if Instant::now() >= schedule.end {
            break;
        }
        let s = match sender.take() {
            Some(s) if !s.is_closed() => Some(s),
            _ => match tokio::time::timeout_at(deadline, connect(addr)).await {
                Ok(r) => r.ok(),
                Err(_) => break,
            },
        };
        let Some(mut s) = s else {
            if Instant::now() >= schedule.measure_start {
                stats.transport_errors += 1;
            }
            // Do not spin on a refused connection.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let spec = gen.next(conn, seq);
        seq += 1;
        let request = spec.build(&host);
        let t0 = Instant::now();
        let exchange = async move {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((s, status, body))
        };
        let mut exchange = std::pin::pin!(exchange);
        let outcome = match tokio::time::timeout_at(deadline, &mut exchange).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // In flight when the window closed: not counted, but let it finish so that the
                // server is idle again before the next run starts.
                let _ = tokio::time::timeout(DRAIN_LIMIT, exchange).await;
                break;
            }
        };
        let done = Instant::now();
        // Answers are counted when they complete inside the window (as wrk does).
        let recording = done >= schedule.measure_start;
        match outcome {
            Ok((s, status, body)) => {
                sender = Some(s);
                if !recording {
                    continue;
                }
                if status.is_success() {
                    stats.ok += 1;
                    let us = ((done - t0).as_micros() as u64).clamp(1, MAX_LATENCY_US);
                    stats.histogram.record(us).expect("value within bounds");
                } else {
                    *stats.status_errors.entry(status.as_u16()).or_default() += 1;
                    if stats.first_error.is_none() {
                        let n = body.len().min(300);
                        stats.first_error = Some(format!(
                            "{}: {}",
                            status.as_u16(),
                            String::from_utf8_lossy(&body[..n])
                        ));
                    }
                }
            }
            Err(_) => {
                if recording {
                    stats.transport_errors += 1;
                }
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling;
    use http::StatusCode;

    fn config(connections: usize) -> LoadConfig {
        LoadConfig {
            connections,
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(1000),
        }
    }

    fn gen() -> Arc<dyn RequestGen> {
        Arc::new(|conn: usize, seq: u64| {
            RequestSpec::get(format!("/v1/secret/data/key-{}", (conn as u64 + seq) % 10))
                .with_token(Some("t"))
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smoke_against_ceiling() {
        let body = ceiling::kv2_read_body(ceiling::DEFAULT_BODY_BYTES);
        let addr = ceiling::spawn("127.0.0.1:0".parse().unwrap(), StatusCode::OK, body)
            .await
            .unwrap();
        let cfg = config(4);
        let schedule = Schedule::starting_now(&cfg);
        let r = run(addr, &cfg, schedule, gen()).await.unwrap();
        assert!(r.ok > 100, "only {} requests succeeded", r.ok);
        assert_eq!(r.status_error_count(), 0);
        assert_eq!(r.transport_errors, 0);
        assert_eq!(r.histogram.len(), r.ok);
        let (p50, p99, max) = (r.percentile_us(0.5), r.percentile_us(0.99), r.max_us());
        assert!(p50 >= 1 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
        // A loopback answer of a few hundred bytes takes well under a second.
        assert!(p50 < 1_000_000);
        assert_eq!(r.window, Duration::from_millis(1000));
        assert!((r.throughput() - r.ok as f64).abs() < 1e-6);
        // The run ends on schedule, give or take the last (drained) requests.
        assert!(Instant::now() < schedule.end + Duration::from_millis(500));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn non_2xx_answers_are_errors_not_successes() {
        let body = Bytes::from_static(br#"{"errors":["boom"]}"#);
        let addr = ceiling::spawn(
            "127.0.0.1:0".parse().unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR,
            body,
        )
        .await
        .unwrap();
        let cfg = config(2);
        let r = run(addr, &cfg, Schedule::starting_now(&cfg), gen())
            .await
            .unwrap();
        assert_eq!(r.ok, 0);
        assert!(r.histogram.is_empty());
        assert_eq!(r.throughput(), 0.0);
        assert_eq!(
            r.status_errors.keys().copied().collect::<Vec<_>>(),
            vec![500]
        );
        assert!(r.status_errors[&500] > 50);
        assert_eq!(
            r.first_error.as_deref(),
            Some(r#"500: {"errors":["boom"]}"#)
        );
        assert_eq!(r.percentile_us(0.99), 0);
    }

    #[tokio::test]
    async fn refused_connection_is_an_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let cfg = config(1);
        let r = run(addr, &cfg, Schedule::starting_now(&cfg), gen()).await;
        assert!(matches!(r, Err(LoadError::Connect { .. })));
    }

    #[test]
    fn request_carries_host_token_and_body() {
        let host = HeaderValue::from_static("127.0.0.1:1");
        let req = RequestSpec::post("/v1/kv/a", &b"{\"value\":1}"[..])
            .with_token(Some("s.abc"))
            .build(&host);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/v1/kv/a");
        assert_eq!(req.headers()["host"], "127.0.0.1:1");
        assert_eq!(req.headers()["x-vault-token"], "s.abc");
        assert_eq!(req.headers()["content-type"], "application/json");
        let get = RequestSpec::get("/v1/sys/seal-status").build(&host);
        assert!(get.headers().get("x-vault-token").is_none());
    }
}
