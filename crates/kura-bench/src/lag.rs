//! Propagation delays on a 3-node cluster: how long after the active node acknowledges a change
//! a standby, asked not to forward (`X-Vault-No-Request-Forwarding: true`, no index header),
//! answers according to it. Two changes: a KV v2 write (`kvv2_lag`: poll until the standby
//! returns the new value) and a token revocation (`revoke_lag`: poll with the revoked token until
//! the standby answers 403). Samples alternate between the two standbys. The same measurements
//! run on raft and on nodes sharing one PostgreSQL database (`pg_kvv2_lag`, `pg_revoke_lag`).

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{Api, ApiError};
use crate::results::Lag;
use crate::runner::fmt_us;
use crate::target::TargetKind;

/// The propagation measurements, by the change they make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagKind {
    /// A KV v2 write on the active node, read back on a standby.
    Kvv2Write,
    /// A token revoked on the active node, refused on a standby.
    TokenRevoke,
}

/// Every measurement, in the order they run.
pub const LAGS: [LagKind; 2] = [LagKind::Kvv2Write, LagKind::TokenRevoke];

/// The storage a cluster runs on, which names the measurement (`kvv2_lag` on raft,
/// `pg_kvv2_lag` on PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagStorage {
    /// Integrated storage (raft): standbys hold their own copy of the data.
    Raft,
    /// Every node on one shared PostgreSQL database.
    Postgres,
}

impl LagKind {
    /// Name on the command line and in the results, on raft.
    pub fn name(self) -> &'static str {
        self.name_on(LagStorage::Raft)
    }

    /// Name on the command line and in the results, on `storage`.
    pub fn name_on(self, storage: LagStorage) -> &'static str {
        match (storage, self) {
            (LagStorage::Raft, LagKind::Kvv2Write) => "kvv2_lag",
            (LagStorage::Raft, LagKind::TokenRevoke) => "revoke_lag",
            (LagStorage::Postgres, LagKind::Kvv2Write) => "pg_kvv2_lag",
            (LagStorage::Postgres, LagKind::TokenRevoke) => "pg_revoke_lag",
        }
    }

    /// One line saying what is measured.
    pub fn description(self) -> &'static str {
        match self {
            LagKind::Kvv2Write => {
                "KV v2 write acknowledged by the active node → a standby returns the new value"
            }
            LagKind::TokenRevoke => {
                "token revocation acknowledged by the active node → a standby answers 403"
            }
        }
    }

    /// Looks a raft measurement up by name.
    pub fn find(name: &str) -> Option<Self> {
        Self::find_on(LagStorage::Raft, name)
    }

    /// Looks a measurement on `storage` up by name.
    pub fn find_on(storage: LagStorage, name: &str) -> Option<Self> {
        LAGS.into_iter().find(|l| l.name_on(storage) == name)
    }
}

/// How long one sample may take before it counts as a timeout.
const SAMPLE_LIMIT: Duration = Duration::from_secs(5);

/// Consecutive timeouts after which the measurement stops (the standby never catches up, e.g.
/// because it redirects instead of answering).
const GIVE_UP_AFTER: u64 = 3;

const MOUNT: &str = "bench-lag";
const PROBE: &str = "/v1/bench-lag/data/probe";
const NO_FORWARD: [(&str, &str); 1] = [("X-Vault-No-Request-Forwarding", "true")];

/// Where and with what a measurement runs.
pub struct LagTarget {
    /// bao or kura.
    pub kind: TargetKind,
    /// Root-token client for the active node.
    pub active: Api,
    /// Clients (without a token) for the standbys.
    pub standbys: Vec<Api>,
    /// Policy-bound token allowed to read `bench-*` (the root token when there is none).
    pub token: String,
}

/// One answer, for messages: the status and, for a KV v2 read, the value served (what a stale
/// standby still returns), else the start of the body.
fn describe(status: StatusCode, body: &[u8]) -> String {
    if let Some(value) = probe_value(body) {
        return format!("{}: value {value:?}", status.as_u16());
    }
    if body.is_empty() {
        return status.as_u16().to_string();
    }
    let n = body.len().min(200);
    format!(
        "{}: {}",
        status.as_u16(),
        String::from_utf8_lossy(&body[..n]).trim_end()
    )
}

/// Reads the probe on `standby` with `token`, asking it not to forward.
async fn read_probe(standby: &Api, token: &str) -> Result<(StatusCode, Vec<u8>), ApiError> {
    let (status, body) = standby
        .with_token(token)
        .raw_with_headers(Method::GET, PROBE, None, &NO_FORWARD)
        .await?;
    Ok((status, body.to_vec()))
}

fn probe_value(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["data"]["data"]["value"].as_str().map(str::to_owned)
}

/// The answers a poll has seen: the last one, from when on (after the change) the standby has
/// been giving it, and the answer before, so that a timeout says what was served and how long.
#[derive(Default)]
struct Answers {
    /// Status (none: transport error) and KV v2 value of the last answer.
    key: Option<(Option<u16>, Option<String>)>,
    /// The last answer, for messages.
    last: String,
    /// Time from the change to the first answer like the last one.
    since: Duration,
    /// The different answer given before that, if any.
    before: Option<String>,
}

impl Answers {
    /// Records an answer seen `at` after the change.
    fn record(&mut self, status: Option<StatusCode>, body: &[u8], text: String, at: Duration) {
        let key = (status.map(|s| s.as_u16()), probe_value(body));
        if self.key.as_ref() != Some(&key) {
            if self.key.is_some() {
                self.before = Some(std::mem::take(&mut self.last));
            }
            self.key = Some(key);
            self.since = at;
        }
        self.last = text;
    }

    /// The last answer, from when on it was given, and what came before.
    fn summary(&self) -> String {
        let since = fmt_us(self.since.as_micros() as u64);
        match &self.before {
            None => format!("{} (every answer, the first at {since})", self.last),
            Some(before) => format!("{} (from {since} on; before: {before})", self.last),
        }
    }
}

/// Polls `standby` until `done` says the answer reflects the change, or the limit passes.
/// Returns the time from `since`, or the last answer seen and from when on it was given.
async fn poll_until(
    standby: &Api,
    token: &str,
    since: Instant,
    done: impl Fn(StatusCode, &[u8]) -> bool,
) -> Result<Duration, String> {
    let mut answers = Answers::default();
    loop {
        let result = read_probe(standby, token).await;
        let at = since.elapsed();
        match result {
            Ok((status, body)) => {
                if done(status, &body) {
                    return Ok(at);
                }
                answers.record(Some(status), &body, describe(status, &body), at);
            }
            Err(e) => answers.record(None, b"", e.to_string(), at),
        }
        if at > SAMPLE_LIMIT {
            return Err(answers.summary());
        }
        tokio::task::yield_now().await;
    }
}

/// Mounts `bench-lag` (KV v2) on the active node and writes the probe once, retrying while a
/// fresh KV v2 mount is still upgrading.
async fn setup(t: &LagTarget) -> Result<(), String> {
    match t
        .active
        .post(
            &format!("/v1/sys/mounts/{MOUNT}"),
            &json!({ "type": "kv", "options": { "version": "2" } }),
        )
        .await
    {
        Ok(_) => {}
        // Mounted by an earlier measurement of this run.
        Err(e) if e.status() == Some(StatusCode::BAD_REQUEST) => {}
        Err(e) => return Err(format!("mount: {e}")),
    }
    let mut attempt = 0;
    loop {
        match t
            .active
            .post(PROBE, &json!({ "data": { "value": "initial" } }))
            .await
        {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("first write: {e}")),
        }
    }
}

/// Runs `samples` samples of `kind` against `t`, whose nodes run on `storage`.
pub async fn measure(t: &LagTarget, kind: LagKind, storage: LagStorage, samples: usize) -> Lag {
    let name = kind.name_on(storage);
    eprintln!("lag {name} on {} ({samples} samples)", t.kind);
    if t.standbys.is_empty() {
        return Lag::new(t.kind, name, vec![], 0, Some("no standby".into()));
    }
    if let Err(e) = setup(t).await {
        return Lag::new(t.kind, name, vec![], 0, Some(format!("setup: {e}")));
    }
    let mut times = Vec::with_capacity(samples);
    let mut timeouts = 0u64;
    let mut consecutive = 0u64;
    let mut error = None;
    for i in 0..samples {
        let standby = &t.standbys[i % t.standbys.len()];
        let outcome = match kind {
            LagKind::Kvv2Write => kv_sample(t, standby, i).await,
            LagKind::TokenRevoke => revoke_sample(t, standby).await,
        };
        match outcome {
            Ok(d) => {
                consecutive = 0;
                times.push((d.as_micros() as u64).max(1));
            }
            Err(Sample::Timeout(last)) => {
                timeouts += 1;
                consecutive += 1;
                error = Some(format!(
                    "timed out after {SAMPLE_LIMIT:?}; last answer {last}"
                ));
                if consecutive >= GIVE_UP_AFTER {
                    eprintln!("  {GIVE_UP_AFTER} timeouts in a row, giving up: {last}");
                    break;
                }
            }
            Err(Sample::Failed(e)) => {
                eprintln!("  sample {} failed: {e}", i + 1);
                error = Some(e);
                break;
            }
        }
    }
    let lag = Lag::new(t.kind, name, times, timeouts, error);
    eprintln!(
        "  {} {name}: p50 {} µs, p99 {} µs, max {} µs over {} samples, {} timeouts",
        t.kind,
        lag.p50_us,
        lag.p99_us,
        lag.max_us,
        lag.samples_us.len(),
        lag.timeouts
    );
    lag
}

/// How a sample went wrong.
enum Sample {
    /// The standby did not reflect the change in time (last answer).
    Timeout(String),
    /// The change itself could not be made.
    Failed(String),
}

async fn kv_sample(t: &LagTarget, standby: &Api, i: usize) -> Result<Duration, Sample> {
    let value = format!("lag-{i:06}");
    t.active
        .post(PROBE, &json!({ "data": { "value": value } }))
        .await
        .map_err(|e| Sample::Failed(format!("write: {e}")))?;
    let since = Instant::now();
    poll_until(standby, &t.token, since, |status, body| {
        status == StatusCode::OK && probe_value(body).as_deref() == Some(value.as_str())
    })
    .await
    .map_err(Sample::Timeout)
}

async fn revoke_sample(t: &LagTarget, standby: &Api) -> Result<Duration, Sample> {
    let created = t
        .active
        .post(
            "/v1/auth/token/create",
            &json!({ "policies": [crate::scenarios::POLICY], "ttl": "10m", "no_default_policy": true }),
        )
        .await
        .map_err(|e| Sample::Failed(format!("token create: {e}")))?;
    let token = created["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| Sample::Failed("token create: no client_token".into()))?
        .to_owned();
    // The new token must work on the standby before its revocation can be timed there.
    poll_until(standby, &token, Instant::now(), |status, _| {
        status == StatusCode::OK
    })
    .await
    .map_err(|last| Sample::Timeout(format!("(new token never accepted) {last}")))?;
    t.active
        .post("/v1/auth/token/revoke", &json!({ "token": token }))
        .await
        .map_err(|e| Sample::Failed(format!("revoke: {e}")))?;
    let since = Instant::now();
    poll_until(standby, &token, since, |status, _| {
        status == StatusCode::FORBIDDEN
    })
    .await
    .map_err(Sample::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in LAGS {
            assert_eq!(LagKind::find(l.name()), Some(l));
            for storage in [LagStorage::Raft, LagStorage::Postgres] {
                assert_eq!(LagKind::find_on(storage, l.name_on(storage)), Some(l));
            }
            // The PostgreSQL name is the raft one with the `pg_` prefix, and each is found only
            // on its own storage.
            let pg = l.name_on(LagStorage::Postgres);
            assert_eq!(pg.strip_prefix("pg_"), Some(l.name()));
            assert_eq!(LagKind::find(pg), None);
            assert_eq!(LagKind::find_on(LagStorage::Postgres, l.name()), None);
        }
        assert_eq!(LagKind::find("kvv2_read"), None);
        assert_eq!(LagKind::find_on(LagStorage::Postgres, "pg_kvv2_read"), None);
    }

    #[test]
    fn timeouts_say_what_was_answered_and_from_when_on() {
        let ms = Duration::from_millis;
        let kv = |v: &str| format!(r#"{{"data":{{"data":{{"value":"{v}"}}}}}}"#).into_bytes();
        let mut a = Answers::default();
        let ok = Some(StatusCode::OK);
        a.record(ok, &kv("old"), "200 old".into(), ms(1));
        a.record(ok, &kv("old"), "200 old".into(), ms(3));
        assert_eq!(a.summary(), "200 old (every answer, the first at 1.00ms)");
        // Another value with the same status is another answer.
        a.record(ok, &kv("older"), "200 older".into(), ms(5));
        let redirect = Some(StatusCode::TEMPORARY_REDIRECT);
        a.record(redirect, b"", "307".into(), ms(7));
        a.record(redirect, b"", "307".into(), ms(5001));
        assert_eq!(a.summary(), "307 (from 7.00ms on; before: 200 older)");
        a.record(None, b"", "connection refused".into(), ms(5002));
        assert_eq!(
            a.summary(),
            "connection refused (from 5.00s on; before: 307)"
        );
    }

    #[test]
    fn answers_are_described_by_the_value_served() {
        let kv = br#"{"request_id":"0123","lease_id":"","data":{"data":{"value":"lag-000002"}}}"#;
        assert_eq!(describe(StatusCode::OK, kv), r#"200: value "lag-000002""#);
        assert_eq!(
            describe(
                StatusCode::FORBIDDEN,
                b"{\"errors\":[\"permission denied\"]}\n"
            ),
            r#"403: {"errors":["permission denied"]}"#
        );
        assert_eq!(describe(StatusCode::TEMPORARY_REDIRECT, b""), "307");
        let long = vec![b'x'; 500];
        assert_eq!(describe(StatusCode::OK, &long).len(), "200: ".len() + 200);
    }

    #[test]
    fn probe_value_reads_kv2_shape() {
        let body = br#"{"data":{"data":{"value":"lag-000001"},"metadata":{}}}"#;
        assert_eq!(probe_value(body).as_deref(), Some("lag-000001"));
        assert_eq!(probe_value(b"{}"), None);
        assert_eq!(probe_value(b"not json"), None);
    }
}
