//! The rest of the raft cluster on loopback, with real `kura` processes: autopilot (server
//! stabilisation, dead-server cleanup, state and configuration, the `kura`/`bao` commands),
//! `retry_join_as_non_voter`, standby heartbeats in `sys/ha-status` (`last_echo`),
//! `X-Forwarded-For` handling, and `retry_join` to leaders whose API speaks TLS.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::{json, Value};

/// Two consecutive free ports (API, cluster = API + 1).
fn port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// How a test node is configured.
#[derive(Default, Clone)]
struct Opts {
    /// `retry_join` blocks, written as given (the inside of each block).
    retry_join: Vec<String>,
    /// Extra lines inside `storage "raft"`.
    raft_extra: String,
    /// Extra lines inside `listener "tcp"` (TLS is disabled unless `tls` is set).
    listener_extra: String,
    /// `(cert file, key file)`: the API listener speaks TLS with these.
    tls: Option<(PathBuf, PathBuf)>,
    /// Extra top-level lines.
    top_extra: String,
}

/// One node: its API address (`host:port`, plain), config and log files.
struct Node {
    api: String,
    config: PathBuf,
    log: PathBuf,
}

fn node(dir: &Path, name: &str, port: u16, o: &Opts) -> Node {
    let api = format!("127.0.0.1:{port}");
    let retry: String = o
        .retry_join
        .iter()
        .map(|b| format!("  retry_join {{\n{b}\n  }}\n"))
        .collect();
    let (tls, scheme) = match &o.tls {
        Some((c, k)) => (
            format!(
                "  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n",
                c.display(),
                k.display()
            ),
            "https",
        ),
        None => ("  tls_disable = true\n".to_string(), "http"),
    };
    let text = format!(
        r#"
storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
{raft_extra}
{retry}}}
listener "tcp" {{
  address = "{api}"
{tls}{listener_extra}
}}
api_addr      = "{scheme}://{api}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
{top}
"#,
        data = dir.join(name).display(),
        raft_extra = o.raft_extra,
        listener_extra = o.listener_extra,
        top = o.top_extra,
        cport = port + 1,
    );
    let config = dir.join(format!("{name}.hcl"));
    std::fs::write(&config, text).unwrap();
    Node {
        api,
        config,
        log: dir.join(format!("{name}.log")),
    }
}

fn start(n: &Node) -> Server {
    Server::start(&n.config, &n.api, n.log.clone())
}

/// A raw HTTP/1.1 exchange with extra headers: status and JSON body (Null when empty).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, _, json) = common::request(addr, method, path, token, headers, body);
    (status, json)
}

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    request(addr, method, path, token, &[], body)
}

/// Waits until `f` returns `Some`, at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_active(addr: &str) {
    wait_for(20, "an active node", || {
        let (s, _) = call(addr, "GET", "/v1/sys/health", "", None);
        (s == 200).then_some(())
    });
}

/// Waits until the joining node has its bootstrap challenge, then unseals it.
fn join_and_unseal(server: &Server, keys: &[String]) {
    wait_for(30, "the bootstrap challenge", || {
        let (s, st) = call(&server.addr, "GET", "/v1/sys/seal-status", "", None);
        (s == 200 && st["n"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    server.unseal(keys);
}

/// `sys/storage/raft/configuration`: node_id → voter.
fn voters(addr: &str, token: &str) -> Vec<(String, bool)> {
    let (s, conf) = call(
        addr,
        "GET",
        "/v1/sys/storage/raft/configuration",
        token,
        None,
    );
    assert_eq!(s, 200, "{conf}");
    conf["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_id"].as_str().unwrap().to_string(),
                s["voter"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn is_voter(addr: &str, token: &str, name: &str) -> Option<bool> {
    voters(addr, token)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn retry_join_plain(api: &str) -> String {
    format!("    leader_api_addr = \"http://{api}\"")
}

/// Unix seconds of a UTC RFC 3339 time (`2026-01-02T03:04:05.123Z`).
fn rfc3339_unix(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn bao() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao")
}

fn run_cli(bin: &Path, addr: &str, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin)
        .args(args)
        .env("VAULT_ADDR", addr)
        .env("BAO_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .env("BAO_TOKEN", token)
        .env_remove("VAULT_FORMAT")
        .env_remove("BAO_FORMAT")
        .output()
        .unwrap()
}

#[test]
fn stabilisation_promotes_late_non_voters_stay_and_standbys_echo() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [port_pair(), port_pair(), port_pair()];
    let api: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let n1 = node(dir.path(), "node1", ports[0], &Opts::default());
    let n2 = node(
        dir.path(),
        "node2",
        ports[1],
        &Opts {
            retry_join: vec![retry_join_plain(&api[0])],
            ..Opts::default()
        },
    );
    let n3 = node(
        dir.path(),
        "node3",
        ports[2],
        &Opts {
            retry_join: vec![retry_join_plain(&api[0])],
            raft_extra: "  retry_join_as_non_voter = true".into(),
            ..Opts::default()
        },
    );
    let s1 = start(&n1);
    let (keys, token) = s1.init_unseal(1, 1);
    wait_active(&s1.addr);
    let a = s1.addr.clone();

    // Autopilot configuration: OpenBao's defaults, then a 6 s stabilisation time.
    let (st, cfg) = call(
        &a,
        "GET",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        None,
    );
    assert_eq!(st, 200, "{cfg}");
    assert_eq!(
        cfg["data"],
        json!({
            "cleanup_dead_servers": false,
            "last_contact_threshold": "10s",
            "dead_server_last_contact_threshold": "24h0m0s",
            "max_trailing_logs": 1000,
            "min_quorum": 0,
            "server_stabilization_time": "10s",
        })
    );
    // Validation as in OpenBao.
    let (st, err) = call(
        &a,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({"cleanup_dead_servers": true, "min_quorum": 2})),
    );
    assert_eq!(st, 400, "{err}");
    assert_eq!(
        err["errors"][0],
        "min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; cleanup_dead_servers: true, min_quorum: 0x2"
    );
    let (st, _) = call(
        &a,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({"server_stabilization_time": "6s"})),
    );
    assert_eq!(st, 204);

    // node2 joins as a voter: a learner first, promoted only after 6 s of health.
    let s2 = start(&n2);
    join_and_unseal(&s2, &keys);
    let joined = Instant::now();
    assert_eq!(is_voter(&a, &token, "node2"), Some(false));
    let (st, state) = call(
        &a,
        "GET",
        "/v1/sys/storage/raft/autopilot/state",
        &token,
        None,
    );
    assert_eq!(st, 200, "{state}");
    let n2s = &state["data"]["servers"]["node2"];
    assert_eq!(n2s["status"], "non-voter", "{state}");
    assert_eq!(n2s["node_type"], "voter", "{state}");
    assert_eq!(state["data"]["leader"], "node1");
    assert_eq!(state["data"]["servers"]["node1"]["status"], "leader");

    // node3 joins with retry_join_as_non_voter.
    let s3 = start(&n3);
    join_and_unseal(&s3, &keys);

    wait_for(30, "node2 promoted", || {
        (is_voter(&a, &token, "node2") == Some(true)).then_some(())
    });
    let took = joined.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "promoted after {took:?}, before the stabilisation time"
    );

    // Long past the stabilisation time, node3 still does not vote.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(is_voter(&a, &token, "node3"), Some(false));
    let (_, state) = call(
        &a,
        "GET",
        "/v1/sys/storage/raft/autopilot/state",
        &token,
        None,
    );
    let d = &state["data"];
    assert_eq!(d["voters"], json!(["node1", "node2"]), "{state}");
    assert_eq!(d["non_voters"], json!(["node3"]), "{state}");
    assert_eq!(d["servers"]["node3"]["node_type"], "non-voter", "{state}");
    assert_eq!(d["servers"]["node2"]["healthy"], true, "{state}");
    assert_eq!(d["servers"]["node2"]["node_status"], "alive", "{state}");
    assert_eq!(d["healthy"], true, "{state}");
    // Two voters: none may fail.
    assert_eq!(d["failure_tolerance"], 0, "{state}");

    // sys/ha-status: the active node and both standbys, with their last echo.
    let (st, ha) = call(&s2.addr, "GET", "/v1/sys/ha-status", &token, None);
    assert_eq!(st, 200, "{ha}");
    let nodes = ha["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{ha}");
    assert_eq!(nodes[0]["hostname"], "node1");
    assert_eq!(nodes[0]["active_node"], true);
    assert!(nodes[0]["last_echo"].is_null(), "{ha}");
    for n in &nodes[1..] {
        assert_eq!(n["active_node"], false, "{ha}");
        let echo = n["last_echo"].as_str().expect("last_echo");
        let t = rfc3339_unix(echo).expect("RFC 3339");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - t).abs() < 5, "{ha}");
    }
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);

    // The CLIs: kura and bao show the state and the configuration, and change it.
    let url = format!("http://{a}");
    for bin in [common::kura_bin(), bao()] {
        if !bin.exists() {
            continue;
        }
        let out = run_cli(
            &bin,
            &url,
            &token,
            &["operator", "raft", "autopilot", "state"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Healthy:") && text.contains("Leader:"),
            "{text}"
        );
        assert!(
            text.contains("node3") && text.contains("non-voter"),
            "{text}"
        );
        let out = run_cli(
            &bin,
            &url,
            &token,
            &[
                "operator",
                "raft",
                "autopilot",
                "set-config",
                "-max-trailing-logs=500",
                "-last-contact-threshold=5s",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run_cli(
            &bin,
            &url,
            &token,
            &["operator", "raft", "autopilot", "get-config"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("Max Trailing Logs"), "{text}");
        assert!(text.contains("500"), "{text}");
        let out = run_cli(
            &bin,
            &url,
            &token,
            &[
                "operator",
                "raft",
                "autopilot",
                "get-config",
                "-format=json",
            ],
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["last_contact_threshold"], "5s");
        assert_eq!(v["server_stabilization_time"], "6s");
        let out = run_cli(
            &bin,
            &url,
            &token,
            &[
                "operator",
                "raft",
                "autopilot",
                "set-config",
                "-cleanup-dead-servers=true",
                "-min-quorum=1",
            ],
        );
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("min_quorum must be set"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A standby that stops echoing leaves the list (after OpenBao's 15 s).
    s3.kill9();
    wait_for(30, "node3 dropped from ha-status", || {
        let (_, ha) = call(&a, "GET", "/v1/sys/ha-status", &token, None);
        let n = ha["data"]["nodes"].as_array()?.len();
        (n == 2).then_some(())
    });
    drop(s2);
}

#[test]
fn dead_server_cleanup_removes_a_killed_node() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [port_pair(), port_pair(), port_pair(), port_pair()];
    let first = format!("127.0.0.1:{}", ports[0]);
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let o = if i == 0 {
                Opts::default()
            } else {
                Opts {
                    retry_join: vec![retry_join_plain(&first)],
                    ..Opts::default()
                }
            };
            node(dir.path(), &format!("node{}", i + 1), *p, &o)
        })
        .collect();
    let s1 = start(&nodes[0]);
    let (keys, token) = s1.init_unseal(1, 1);
    wait_active(&s1.addr);
    let a = s1.addr.clone();
    let (st, _) = call(
        &a,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({"server_stabilization_time": "1s"})),
    );
    assert_eq!(st, 204);
    let mut servers = vec![s1];
    for n in &nodes[1..] {
        let s = start(n);
        join_and_unseal(&s, &keys);
        servers.push(s);
    }
    wait_for(40, "four voters", || {
        let v = voters(&a, &token);
        (v.len() == 4 && v.iter().all(|(_, v)| *v)).then_some(())
    });
    // The shortest dead-server threshold OpenBao allows is a minute.
    let (st, err) = call(
        &a,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({
            "cleanup_dead_servers": true,
            "min_quorum": 3,
            "dead_server_last_contact_threshold": "30s",
        })),
    );
    assert_eq!(st, 400, "{err}");
    assert_eq!(
        err["errors"][0],
        "dead_server_last_contact_threshold should not be set to less than 1m; received: 30"
    );
    let (st, err) = call(
        &a,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({
            "cleanup_dead_servers": true,
            "min_quorum": 3,
            "dead_server_last_contact_threshold": "1m",
            "last_contact_threshold": "2s",
        })),
    );
    assert_eq!(st, 204, "{err}");

    let killed = Instant::now();
    servers.pop().unwrap().kill9();
    // Unhealthy soon (last contact over 2 s), but still a member until a minute has passed.
    wait_for(20, "node4 unhealthy", || {
        let (_, state) = call(
            &a,
            "GET",
            "/v1/sys/storage/raft/autopilot/state",
            &token,
            None,
        );
        let n4 = &state["data"]["servers"]["node4"];
        (n4["healthy"] == false
            && n4["node_status"] == "alive"
            && state["data"]["healthy"] == false)
            .then_some(())
    });
    assert_eq!(is_voter(&a, &token, "node4"), Some(true));
    wait_for(120, "node4 removed", || {
        (is_voter(&a, &token, "node4").is_none()).then_some(())
    });
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(59), "removed after {took:?}");
    assert_eq!(voters(&a, &token).len(), 3);
    // Three voters left, min_quorum 3: the cluster is healthy again and keeps writing.
    wait_for(20, "a healthy cluster", || {
        let (_, state) = call(
            &a,
            "GET",
            "/v1/sys/storage/raft/autopilot/state",
            &token,
            None,
        );
        (state["data"]["healthy"] == true).then_some(())
    });
    let (st, _) = call(
        &servers[1].addr,
        "PUT",
        "/v1/sys/mounts/kv",
        &token,
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(st, 204);
}

/// The `remote_address` of every audited request to `path`, in order.
fn audited_addrs(log: &Path, path: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "request" && e["request"]["path"] == path)
        .map(|e| {
            e["request"]["remote_address"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn x_forwarded_for_options_and_the_forwarded_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let (p1, p2) = (port_pair(), port_pair());
    let (trusting, rejecting) = (free_port(), free_port());
    let a1 = format!("127.0.0.1:{p1}");
    // node1: a listener that trusts loopback and skips one hop; one that trusts only
    // 10.0.0.0/8 and refuses everyone else and requests without the header.
    let n1 = node(
        dir.path(),
        "node1",
        p1,
        &Opts {
            top_extra: format!(
                r#"
listener "tcp" {{
  address = "127.0.0.1:{trusting}"
  tls_disable = true
  cluster_address = "127.0.0.1:{c1}"
  x_forwarded_for_authorized_addrs = "127.0.0.1/32"
  x_forwarded_for_hop_skips = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{rejecting}"
  tls_disable = true
  cluster_address = "127.0.0.1:{c2}"
  x_forwarded_for_authorized_addrs = "10.0.0.0/8"
  x_forwarded_for_reject_not_authorized = true
  x_forwarded_for_reject_not_present = true
}}
audit "file" "file-audit" {{
  options {{
    file_path = "{audit}"
  }}
}}
"#,
                c1 = free_port(),
                c2 = free_port(),
                audit = audit.display()
            ),
            ..Opts::default()
        },
    );
    // node2: a standby whose listener trusts loopback's X-Forwarded-For.
    let n2 = node(
        dir.path(),
        "node2",
        p2,
        &Opts {
            retry_join: vec![retry_join_plain(&a1)],
            listener_extra: "  x_forwarded_for_authorized_addrs = \"127.0.0.1\"".into(),
            ..Opts::default()
        },
    );
    let s1 = start(&n1);
    let (keys, token) = s1.init_unseal(1, 1);
    wait_active(&s1.addr);
    let s2 = start(&n2);
    join_and_unseal(&s2, &keys);

    let trusting = format!("127.0.0.1:{trusting}");
    let rejecting = format!("127.0.0.1:{rejecting}");
    let lookup = "/v1/auth/token/lookup-self";
    // Trusted with one hop skipped: the second-to-last entry is the client.
    let (st, _) = request(
        &trusting,
        "GET",
        lookup,
        &token,
        &[
            ("X-Forwarded-For", "198.51.100.1, 203.0.113.9"),
            ("X-Forwarded-For", "192.0.2.1"),
        ],
        None,
    );
    assert_eq!(st, 200);
    // Too few hops for the skip: 400 with OpenBao's message.
    let (st, body) = request(
        &trusting,
        "GET",
        lookup,
        &token,
        &[("X-Forwarded-For", "192.0.2.1")],
        None,
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        "malformed x-forwarded-for configuration or request, hops to skip (1) would skip before earliest chain link (chain length 1)"
    );
    // Without the header, the connection's address.
    let (st, _) = call(&trusting, "GET", lookup, &token, None);
    assert_eq!(st, 200);
    // Not authorized, rejected; not present, rejected.
    let (st, body) = request(
        &rejecting,
        "GET",
        lookup,
        &token,
        &[("X-Forwarded-For", "192.0.2.1")],
        None,
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        "client address not authorized for x-forwarded-for and configured to reject connection"
    );
    let (st, body) = call(&rejecting, "GET", "/v1/sys/health", "", None);
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        "missing x-forwarded-for header and configured to reject when not present"
    );
    // Through the standby: the forwarded request carries the client address it computed.
    let (st, body) = request(
        &s2.addr,
        "PUT",
        "/v1/sys/mounts/xff",
        &token,
        &[("X-Forwarded-For", "203.0.113.77")],
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(st, 204, "{body}");
    assert_eq!(
        audited_addrs(&audit, "auth/token/lookup-self"),
        ["203.0.113.9", "127.0.0.1"]
    );
    assert_eq!(audited_addrs(&audit, "sys/mounts/xff"), ["203.0.113.77"]);
}

/// A test CA and certificates it signs: PEM files in `dir`.
struct TestPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn test_pki(dir: &Path) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(p, key))
    };
    let (ca_pem, issuer) = ca("kura test CA");
    let (other_pem, _) = ca("another CA");
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, "kura node");
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = leaf(vec!["127.0.0.1".into(), "kura.test".into()]);
    let (client_cert, client_key) = leaf(vec!["joiner.kura.test".into()]);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    TestPki {
        ca: write("ca.pem", &ca_pem),
        cert: write("server.pem", &cert),
        key: write("server-key.pem", &key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
        other_ca: write("other-ca.pem", &other_pem),
    }
}

/// A node whose API listener speaks TLS, with a second, plain listener for the test's own
/// calls; returns the node (its `api` is the plain control address) and the TLS address.
fn tls_node(dir: &Path, name: &str, pki: &TestPki, retry_join: Vec<String>) -> (Node, String) {
    let port = port_pair();
    let control = free_port();
    let mut n = node(
        dir,
        name,
        port,
        &Opts {
            retry_join,
            tls: Some((pki.cert.clone(), pki.key.clone())),
            top_extra: format!(
                "listener \"tcp\" {{\n  address = \"127.0.0.1:{control}\"\n  tls_disable = true\n  cluster_address = \"127.0.0.1:{}\"\n}}\n",
                free_port()
            ),
            ..Opts::default()
        },
    );
    let tls_addr = n.api.clone();
    n.api = format!("127.0.0.1:{control}");
    (n, tls_addr)
}

#[test]
fn retry_join_over_tls_with_leader_ca_client_cert_and_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path());
    let (n1, tls1) = tls_node(dir.path(), "node1", &pki, Vec::new());
    // node2: files, server name checked against the certificate's "kura.test".
    let block2 = format!(
        "    leader_api_addr = \"https://{tls1}\"\n    leader_ca_cert_file = \"{}\"\n    leader_client_cert_file = \"{}\"\n    leader_client_key_file = \"{}\"\n    leader_tls_servername = \"kura.test\"",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    // node3: the CA inline.
    let ca_inline = std::fs::read_to_string(&pki.ca)
        .unwrap()
        .trim_end()
        .replace('\n', "\\n");
    let block3 =
        format!("    leader_api_addr = \"https://{tls1}\"\n    leader_ca_cert = \"{ca_inline}\"");
    // node4: the wrong CA.
    let block4 = format!(
        "    leader_api_addr = \"https://{tls1}\"\n    leader_ca_cert_file = \"{}\"",
        pki.other_ca.display()
    );
    let (n2, _) = tls_node(dir.path(), "node2", &pki, vec![block2]);
    let (n3, tls3) = tls_node(dir.path(), "node3", &pki, vec![block3]);
    let (n4, _) = tls_node(dir.path(), "node4", &pki, vec![block4]);

    let s1 = start(&n1);
    let (keys, token) = s1.init_unseal(1, 1);
    wait_active(&s1.addr);
    let s2 = start(&n2);
    let s3 = start(&n3);
    let s4 = start(&n4);
    join_and_unseal(&s2, &keys);
    join_and_unseal(&s3, &keys);
    let mut names: Vec<String> = voters(&s1.addr, &token)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "node3"]);
    // Forwarding works from a joined node.
    let (st, body) = call(
        &s3.addr,
        "PUT",
        "/v1/sys/mounts/tlskv",
        &token,
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(st, 204, "{body}");
    // A client that presents a certificate to a standby's TLS listener is served (the request
    // is forwarded with the client's chain); one without a certificate too.
    for with_cert in [true, false] {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&pki.ca)
            .args([
                "--resolve",
                &format!("kura.test:{}:127.0.0.1", tls3.rsplit(':').next().unwrap()),
            ])
            .args(["-H", &format!("X-Vault-Token: {token}")]);
        if with_cert {
            curl.arg("--cert")
                .arg(&pki.client_cert)
                .arg("--key")
                .arg(&pki.client_key);
        }
        let port = tls3.rsplit(':').next().unwrap();
        // A write: the standby forwards it to the active node.
        let out = curl
            .args(["-X", "POST", "-d", r#"{"description":"tuned over TLS"}"#])
            .arg(format!("https://kura.test:{port}/v1/sys/mounts/tlskv/tune"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "204",
            "client certificate {with_cert}: {out:?}"
        );
    }

    // The node with the wrong CA never gets a challenge and says why.
    wait_for(20, "a join failure in node4's log", || {
        let log = s4.log_text();
        (log.contains("retry_join") && log.to_lowercase().contains("certificate")).then_some(())
    });
    let (_, st) = call(&s4.addr, "GET", "/v1/sys/seal-status", "", None);
    assert_eq!(st["n"], 0, "{st}");
    assert_eq!(st["initialized"], false, "{st}");
}

#[test]
fn retry_join_as_non_voter_is_listed_as_a_non_voter() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (port_pair(), port_pair());
    let n1 = node(dir.path(), "node1", p1, &Opts::default());
    let n2 = node(
        dir.path(),
        "node2",
        p2,
        &Opts {
            retry_join: vec![retry_join_plain(&format!("127.0.0.1:{p1}"))],
            raft_extra: "  retry_join_as_non_voter = true".into(),
            ..Opts::default()
        },
    );
    let s1 = start(&n1);
    let (keys, token) = s1.init_unseal(1, 1);
    wait_active(&s1.addr);
    let (st, _) = call(
        &s1.addr,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({"server_stabilization_time": "1s"})),
    );
    assert_eq!(st, 204);
    let s2 = start(&n2);
    join_and_unseal(&s2, &keys);
    // Well past the stabilisation time, on either node, node2 is a non-voter.
    std::thread::sleep(Duration::from_secs(4));
    for addr in [&s1.addr, &s2.addr] {
        let (st, conf) = call(
            addr,
            "GET",
            "/v1/sys/storage/raft/configuration",
            &token,
            None,
        );
        assert_eq!(st, 200, "{conf}");
        let servers = conf["data"]["config"]["servers"].as_array().unwrap();
        let n2 = servers
            .iter()
            .find(|s| s["node_id"] == "node2")
            .expect("node2");
        assert_eq!(n2["voter"], false, "{conf}");
        assert_eq!(n2["leader"], false, "{conf}");
        let n1 = servers
            .iter()
            .find(|s| s["node_id"] == "node1")
            .expect("node1");
        assert_eq!(n1["voter"], true, "{conf}");
    }
    // The CLI shows it too.
    let out = run_cli(
        &common::kura_bin(),
        &format!("http://{}", s1.addr),
        &token,
        &["operator", "raft", "list-peers"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("node2"))
        .expect("node2 row");
    assert!(line.trim_end().ends_with("false"), "{text}");
}
