//! A raft cluster of `kura` processes on loopback: formed by `retry_join` from OpenBao-style
//! config files, with the bootstrap challenge; one active node, standbys that forward and
//! redirect; failover after `kill -9` of the active node; a node without the cluster's keys
//! cannot join.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, index_of, request, Server};
use serde_json::{json, Value};

/// One node's addresses and files.
struct NodeSpec {
    api: String,
    config: PathBuf,
    log: PathBuf,
}

/// Two consecutive free ports (API, cluster = API + 1).
fn port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn node_spec(dir: &Path, name: &str, join: &[&str]) -> NodeSpec {
    node_spec_at(dir, name, port_pair(), join)
}

/// A node whose API listens on `port` (cluster port: `port + 1`), with a `retry_join` block for
/// each address in `join`.
fn node_spec_at(dir: &Path, name: &str, port: u16, join: &[&str]) -> NodeSpec {
    let api = format!("127.0.0.1:{port}");
    let retry: String = join
        .iter()
        .map(|a| format!("  retry_join {{\n    leader_api_addr = \"http://{a}\"\n  }}\n"))
        .collect();
    let text = format!(
        r#"
storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
{retry}}}
listener "tcp" {{
  address     = "{api}"
  tls_disable = true
}}
api_addr      = "http://{api}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
"#,
        data = dir.join(name).display(),
        cport = port + 1,
    );
    let config = dir.join(format!("{name}.hcl"));
    std::fs::write(&config, text).unwrap();
    NodeSpec {
        api,
        config,
        log: dir.join(format!("{name}.log")),
    }
}

fn start(spec: &NodeSpec) -> Server {
    Server::start(&spec.config, &spec.api, spec.log.clone())
}

fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let (s, _, b) = request(addr, method, path, token, &[], body);
    (s, b)
}

/// Waits until `f` returns `Some`, at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the joining node has fetched its bootstrap challenge (seal-status shows the
/// cluster's seal configuration), then unseals it.
fn join_and_unseal(server: &Server, keys: &[String]) {
    wait_for(30, "the bootstrap challenge", || {
        let (s, st) = call(&server.addr, "GET", "/v1/sys/seal-status", "", None);
        (s == 200 && st["n"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    server.unseal(keys);
}

fn health(addr: &str) -> Option<(u16, Value)> {
    TcpStream::connect(addr).ok()?;
    Some(call(addr, "GET", "/v1/sys/health", "", None))
}

/// Index (into `addrs`) of the single node reporting itself active; the others must be
/// unsealed standbys (429, `standby: true`).
fn single_active(addrs: &[&str]) -> Option<usize> {
    let mut active = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let (s, b) = health(a)?;
        match s {
            200 => active.push(i),
            429 if b["standby"] == true => {}
            _ => return None,
        }
    }
    (active.len() == 1).then(|| active[0])
}

struct Cluster {
    specs: Vec<NodeSpec>,
    servers: Vec<Option<Server>>,
    keys: Vec<String>,
    token: String,
}

/// Every node's configuration lists the other two in `retry_join` blocks, as OpenBao's
/// examples do; node 1 is initialised and forms the cluster, nodes 2 and 3 join it.
fn three_node_cluster(dir: &Path) -> Cluster {
    let ports = [port_pair(), port_pair(), port_pair()];
    let api: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let n1 = node_spec_at(dir, "node1", ports[0], &[&api[1], &api[2]]);
    let n2 = node_spec_at(dir, "node2", ports[1], &[&api[0], &api[2]]);
    let n3 = node_spec_at(dir, "node3", ports[2], &[&api[0], &api[1]]);
    let s1 = start(&n1);
    assert!(
        s1.log_text().contains("Storage: raft (HA available)"),
        "{}",
        s1.log_text()
    );
    let (keys, token) = s1.init_unseal(3, 2);
    wait_for(15, "node1 active", || {
        health(&s1.addr).and_then(|(s, _)| (s == 200).then_some(()))
    });
    // Joined nodes vote once autopilot has seen them healthy for server_stabilization_time
    // (10 s by default): shortened here, and waited for below.
    let (st, _) = call(
        &s1.addr,
        "POST",
        "/v1/sys/storage/raft/autopilot/configuration",
        &token,
        Some(&json!({ "server_stabilization_time": "1s" })),
    );
    assert_eq!(st, 204);
    let s2 = start(&n2);
    let s3 = start(&n3);
    join_and_unseal(&s2, &keys[1..3]);
    join_and_unseal(&s3, &keys[..2]);
    wait_for(40, "three raft voters", || {
        let (st, conf) = call(
            &s1.addr,
            "GET",
            "/v1/sys/storage/raft/configuration",
            &token,
            None,
        );
        let servers = conf["data"]["config"]["servers"].as_array()?.clone();
        (st == 200 && servers.len() == 3 && servers.iter().all(|s| s["voter"] == true))
            .then_some(())
    });
    Cluster {
        specs: vec![n1, n2, n3],
        servers: vec![Some(s1), Some(s2), Some(s3)],
        keys,
        token,
    }
}

impl Cluster {
    fn addrs(&self) -> Vec<&str> {
        self.specs.iter().map(|s| s.api.as_str()).collect()
    }
}

#[test]
fn cluster_forms_forwards_redirects_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let c = three_node_cluster(dir.path());
    let addrs = c.addrs();
    let active = wait_for(15, "exactly one active node", || single_active(&addrs));
    assert_eq!(active, 0, "node1 started the cluster and stays active");
    let (a, s2, s3) = (addrs[0], addrs[1], addrs[2]);
    let token = c.token.as_str();

    // Raft configuration: three voters, one leader.
    let (st, conf) = call(s3, "GET", "/v1/sys/storage/raft/configuration", token, None);
    assert_eq!(st, 200, "{conf}");
    let servers = conf["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(servers.len(), 3, "{conf}");
    assert!(servers.iter().all(|s| s["voter"] == true), "{conf}");
    let leaders: Vec<&Value> = servers.iter().filter(|s| s["leader"] == true).collect();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0]["node_id"], "node1");

    // sys/ha-status (through a standby): three nodes, node1 active.
    let (st, ha) = call(s2, "GET", "/v1/sys/ha-status", token, None);
    assert_eq!(st, 200, "{ha}");
    let nodes = ha["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{ha}");
    let active_nodes: Vec<&Value> = nodes.iter().filter(|n| n["active_node"] == true).collect();
    assert_eq!(active_nodes.len(), 1, "{ha}");
    assert_eq!(
        active_nodes[0]["api_address"],
        format!("http://{a}"),
        "{ha}"
    );

    // sys/leader on a standby names the active node.
    let (st, leader) = call(s2, "GET", "/v1/sys/leader", "", None);
    assert_eq!(st, 200);
    assert_eq!(leader["is_self"], false, "{leader}");
    assert_eq!(leader["leader_address"], format!("http://{a}"), "{leader}");
    let (_, leader) = call(a, "GET", "/v1/sys/leader", "", None);
    assert_eq!(leader["is_self"], true, "{leader}");

    // Writes through a standby are forwarded to the active node, reads too.
    let (st, body) = call(
        s2,
        "POST",
        "/v1/sys/mounts/secret",
        token,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{body}");
    let (st, hdrs, body) = request(
        s3,
        "PUT",
        "/v1/secret/data/app",
        token,
        &[],
        Some(&json!({"data": {"password": "through-standby"}})),
    );
    assert_eq!(st, 200, "{body}");
    // Reads on standbys are eventually consistent; the write's index makes them current.
    let index = index_of(&hdrs);
    for node in [a, s2, s3] {
        let (st, _, body) = request(
            node,
            "GET",
            "/v1/secret/data/app",
            token,
            &[("X-Vault-Index", &index)],
            None,
        );
        assert_eq!(st, 200, "{node}: {body}");
        assert_eq!(body["data"]["data"]["password"], "through-standby");
    }
    // A bad token is refused by the active node, also through a standby.
    let (st, _) = call(s2, "GET", "/v1/secret/data/app", "not-a-token", None);
    assert_eq!(st, 403);

    // With X-Vault-No-Request-Forwarding a standby answers reads itself and redirects what
    // needs the active node.
    wait_for(10, "the standby serving the read itself", || {
        let (st, _, body) = request(
            s2,
            "GET",
            "/v1/secret/data/app?version=1",
            token,
            &[("X-Vault-No-Request-Forwarding", "true")],
            None,
        );
        (st == 200 && body["data"]["data"]["password"] == "through-standby").then_some(())
    });
    let (st, hdrs, _) = request(
        s2,
        "PUT",
        "/v1/secret/data/app?version=1",
        token,
        &[("X-Vault-No-Request-Forwarding", "true")],
        Some(&json!({"data": {"password": "redirected"}})),
    );
    assert_eq!(st, 307);
    let location = hdrs
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(location, format!("http://{a}/v1/secret/data/app?version=1"));

    // A node given keys that do not open the cluster's keyring does not join.
    let n4 = node_spec(dir.path(), "node4", &[a]);
    let s4 = start(&n4);
    wait_for(30, "node4's challenge", || {
        let (s, st) = call(&s4.addr, "GET", "/v1/sys/seal-status", "", None);
        (s == 200 && st["n"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    let forged: Vec<String> = c.keys[..2]
        .iter()
        .map(|k| {
            // Same format and x-coordinates, other secret bytes.
            let mut bytes = hex_decode(k);
            bytes[0] ^= 0x5a;
            bytes[1] ^= 0xa5;
            hex_encode(&bytes)
        })
        .collect();
    let (st, _) = call(
        &s4.addr,
        "PUT",
        "/v1/sys/unseal",
        "",
        Some(&json!({"key": forged[0]})),
    );
    assert_eq!(st, 200);
    let (st, body) = call(
        &s4.addr,
        "PUT",
        "/v1/sys/unseal",
        "",
        Some(&json!({"key": forged[1]})),
    );
    assert_eq!(st, 400, "{body}");
    let (_, status) = call(&s4.addr, "GET", "/v1/sys/seal-status", "", None);
    assert_eq!(status["sealed"], true);
    // Sealed, it cannot read the leader entry.
    let (st, _) = call(&s4.addr, "GET", "/v1/sys/leader", "", None);
    assert_eq!(st, 503);
    let (_, conf) = call(a, "GET", "/v1/sys/storage/raft/configuration", token, None);
    let names: Vec<&str> = conf["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node_id"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"node4"), "{conf}");
    // The bootstrap answer cannot be guessed either.
    let (st, _) = call(
        a,
        "PUT",
        "/v1/sys/storage/raft/bootstrap/answer",
        "",
        Some(&json!({"server_id": "node4", "answer": "AAAA"})),
    );
    assert_eq!(st, 403);
    drop(s4);

    // The cluster port speaks only mutual TLS: a plain HTTP client gets no HTTP answer.
    let cluster_port: u16 = a.rsplit_once(':').unwrap().1.parse::<u16>().unwrap() + 1;
    let mut plain = TcpStream::connect(("127.0.0.1", cluster_port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = plain.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // Another node joins with the CLI: `kura operator raft join`, then unseal.
    let n5 = node_spec(dir.path(), "node5", &[]);
    let s5 = start(&n5);
    let out = kura(
        &s5.addr,
        "",
        &["operator", "raft", "join", &format!("http://{a}")],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Joined") && text.contains("true"), "{text}");
    join_and_unseal(&s5, &c.keys[1..3]);
    let out = kura(s2, token, &["operator", "raft", "list-peers"]);
    assert!(out.status.success(), "{out:?}");
    let peers = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in ["node1", "node2", "node3", "node5"] {
        assert!(peers.contains(name), "{peers}");
    }
    assert!(peers.contains("leader"), "{peers}");
    let (st, body) = call(&s5.addr, "GET", "/v1/secret/data/app", token, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["password"], "through-standby");

    // remove-peer takes a standby out of the configuration.
    let (st, body) = call(
        a,
        "PUT",
        "/v1/sys/storage/raft/remove-peer",
        token,
        Some(&json!({"server_id": "node3"})),
    );
    assert!(st == 200 || st == 204, "{st} {body}");
    let (_, conf) = call(a, "GET", "/v1/sys/storage/raft/configuration", token, None);
    let names: Vec<&str> = conf["data"]["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{conf}");
    assert!(!names.contains(&"node3"), "{conf}");
}

#[test]
fn kill_9_of_the_active_node_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = three_node_cluster(dir.path());
    let token = c.token.clone();
    let addrs: Vec<String> = c.addrs().iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    wait_for(15, "exactly one active node", || single_active(&refs));
    let (st, body) = call(
        &addrs[0],
        "POST",
        "/v1/sys/mounts/secret",
        &token,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{body}");

    let mut times = Vec::new();
    for round in 0..3 {
        let active = wait_for(20, "exactly one active node", || single_active(&refs));
        let key = format!("/v1/secret/data/round{round}");
        let (st, body) = call(
            &addrs[active],
            "PUT",
            &key,
            &token,
            Some(&json!({"data": {"v": "before"}})),
        );
        assert_eq!(st, 200, "{body}");

        let killed = c.servers[active].take().unwrap();
        let t0 = Instant::now();
        killed.kill9();
        let survivors: Vec<usize> = (0..3).filter(|&i| i != active).collect();
        let after = format!("/v1/secret/data/after{round}");
        let writer = wait_for(20, "a write accepted after the failover", || {
            for &i in &survivors {
                let (st, _) = call(
                    &addrs[i],
                    "PUT",
                    &after,
                    &token,
                    Some(&json!({"data": {"v": "after"}})),
                );
                if st == 200 {
                    return Some(i);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
            None
        });
        let took = t0.elapsed();
        times.push(took);
        eprintln!("round {round}: failover took {took:?}");
        // Every acknowledged write is still there.
        let (st, body) = call(&addrs[writer], "GET", &key, &token, None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["data"]["data"]["v"], "before");

        // The killed node restarts, is unsealed and rejoins as a standby.
        let server = start(&c.specs[active]);
        server.unseal(&c.keys[..2]);
        c.servers[active] = Some(server);
        wait_for(20, "three healthy nodes again", || single_active(&refs));
        // The rejoined node serves reads itself: it has the write once it has caught up.
        wait_for(10, "the rejoined node to catch up", || {
            let (st, body) = call(&addrs[active], "GET", &after, &token, None);
            (st == 200 && body["data"]["data"]["v"] == "after").then_some(())
        });
    }
    times.sort();
    eprintln!(
        "failover times: {times:?}; median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(
        times[times.len() - 1] < Duration::from_secs(5),
        "failover too slow: {times:?}"
    );
}

/// Runs the `kura` CLI against `addr`.
fn kura(addr: &str, token: &str, args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(common::kura_bin());
    cmd.args(args)
        .env("VAULT_ADDR", format!("http://{addr}"))
        .env("HOME", home.path())
        .env_remove("VAULT_TOKEN");
    if !token.is_empty() {
        cmd.env("VAULT_TOKEN", token);
    }
    cmd.output().unwrap()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A single raft node, initialised and unsealed; returns it with its keys and root token.
fn single_raft_node(dir: &Path, name: &str) -> (Server, Vec<String>, String) {
    let spec = node_spec(dir, name, &[]);
    let s = start(&spec);
    let (keys, token) = s.init_unseal(1, 1);
    wait_for(15, "the node active", || {
        health(&s.addr).and_then(|(st, _)| (st == 200).then_some(()))
    });
    (s, keys, token)
}

#[test]
fn snapshot_save_and_restore_here_and_on_a_fresh_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_keys, a_token) = single_raft_node(dir.path(), "a1");
    let (st, body) = call(
        &a.addr,
        "POST",
        "/v1/sys/mounts/secret",
        &a_token,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{body}");
    let put = |addr: &str, token: &str, value: &str| {
        let (st, body) = call(
            addr,
            "PUT",
            "/v1/secret/data/app",
            token,
            Some(&json!({"data": {"v": value}})),
        );
        assert_eq!(st, 200, "{body}");
    };
    let get = |addr: &str, token: &str| {
        let (st, body) = call(addr, "GET", "/v1/secret/data/app", token, None);
        (st, body["data"]["data"]["v"].clone())
    };
    put(&a.addr, &a_token, "in-snapshot");

    // Save with the CLI; the file is private to its owner.
    let file = dir.path().join("a.snap");
    let out = kura(
        &a.addr,
        &a_token,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let snap = std::fs::read(&file).unwrap();
    // OpenBao's layout: a gzip-compressed tar (bao's client checks it).
    assert!(snap.starts_with(&[0x1f, 0x8b]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "snapshot file mode {mode:o}");
    }
    // Saving needs sudo: a token without it is refused.
    let (st, _) = call(&a.addr, "GET", "/v1/sys/storage/raft/snapshot", "", None);
    assert_eq!(st, 403);

    // Same cluster: later changes are rolled back, the node stays active.
    put(&a.addr, &a_token, "after-snapshot");
    let (st, body) = call(
        &a.addr,
        "POST",
        "/v1/sys/mounts/other",
        &a_token,
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(st, 204, "{body}");
    let out = kura(
        &a.addr,
        &a_token,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(get(&a.addr, &a_token), (200, json!("in-snapshot")));
    let (st, mounts) = call(&a.addr, "GET", "/v1/sys/mounts", &a_token, None);
    assert_eq!(st, 200);
    assert!(mounts["data"].get("other/").is_none(), "{mounts}");
    assert_eq!(health(&a.addr).unwrap().0, 200);

    // A damaged snapshot is refused with a 400 and changes nothing.
    let mut damaged = snap.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    let bad = dir.path().join("bad.snap");
    std::fs::write(&bad, &damaged).unwrap();
    let out = kura(
        &a.addr,
        &a_token,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid snapshot"),
        "{out:?}"
    );
    assert_eq!(get(&a.addr, &a_token), (200, json!("in-snapshot")));

    // A fresh cluster with other keys: refused without force ...
    let (b, _b_keys, b_token) = single_raft_node(dir.path(), "b1");
    let out = kura(
        &b.addr,
        &b_token,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("snapshot-force"),
        "{out:?}"
    );
    // ... restored with it: the node seals and opens with the first cluster's keys and token.
    let out = kura(
        &b.addr,
        &b_token,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let (_, st) = call(&b.addr, "GET", "/v1/sys/seal-status", "", None);
    assert_eq!(st["sealed"], true, "{st}");
    b.unseal(&a_keys);
    wait_for(15, "the restored node active", || {
        health(&b.addr).and_then(|(st, _)| (st == 200).then_some(()))
    });
    assert_eq!(get(&b.addr, &a_token), (200, json!("in-snapshot")));
    let (st, _) = call(&b.addr, "GET", "/v1/secret/data/app", &b_token, None);
    assert_eq!(st, 403, "the fresh cluster's token is gone with its data");
    // The restored node takes writes.
    put(&b.addr, &a_token, "written-after-restore");
    assert_eq!(
        get(&b.addr, &a_token),
        (200, json!("written-after-restore"))
    );
}

#[test]
fn step_down_moves_leadership_and_the_old_node_stays_a_standby() {
    let dir = tempfile::tempdir().unwrap();
    let c = three_node_cluster(dir.path());
    let addrs = c.addrs();
    let token = c.token.as_str();
    let first = wait_for(15, "exactly one active node", || single_active(&addrs));
    // A token without sudo cannot step the node down.
    let (st, _) = call(addrs[1], "PUT", "/v1/sys/step-down", "", None);
    assert_eq!(st, 403);

    // Through a standby, with the CLI: the request is forwarded to the active node.
    let standby = (first + 1) % 3;
    let started = Instant::now();
    let out = kura(addrs[standby], token, &["operator", "step-down"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Success! Stepped down"),
        "{out:?}"
    );
    let second = wait_for(15, "a new active node", || {
        single_active(&addrs).filter(|i| *i != first)
    });
    let took = started.elapsed();
    eprintln!(
        "step-down: node{} -> node{} in {took:?}",
        first + 1,
        second + 1
    );
    // The old node is a standby that routes requests, and writes go on.
    let (st, body) = call(
        addrs[first],
        "POST",
        "/v1/sys/mounts/kv",
        token,
        Some(&json!({"type": "kv"})),
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(
        addrs[first],
        "PUT",
        "/v1/kv/after",
        token,
        Some(&json!({"stepped": "down"})),
    );
    assert_eq!(st, 204, "{body}");
    let (st, leader) = call(addrs[first], "GET", "/v1/sys/leader", "", None);
    assert_eq!(st, 200);
    assert_eq!(leader["is_self"], false, "{leader}");
    assert_eq!(
        leader["leader_address"],
        format!("http://{}", addrs[second]),
        "{leader}"
    );
    // It stays a standby (no flapping back) for a while.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(single_active(&addrs), Some(second));

    // `operator members` lists the three nodes with the new active one.
    let out = kura(
        addrs[first],
        token,
        &["operator", "members", "-format=json"],
    );
    assert!(out.status.success(), "{out:?}");
    let members: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = members["data"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 3, "{members}");
    let active: Vec<&Value> = nodes.iter().filter(|n| n["active_node"] == true).collect();
    assert_eq!(active.len(), 1, "{members}");
    assert_eq!(
        active[0]["api_address"],
        format!("http://{}", addrs[second])
    );
    drop(c);
}

/// A request carrying an `X-Vault-Index`; `local_only` adds `X-Vault-No-Request-Forwarding`,
/// so the answer is the standby's own (a forward would be a 307 instead).
fn call_at(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    index: &str,
    local_only: bool,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![("X-Vault-Index", index)];
    if local_only {
        headers.push(("X-Vault-No-Request-Forwarding", "true"));
    }
    let (st, _, body) = request(addr, method, path, token, &headers, body);
    (st, body)
}

#[test]
fn standbys_serve_reads_and_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let c = three_node_cluster(dir.path());
    let addrs = c.addrs();
    let root = c.token.as_str();
    let a = wait_for(15, "exactly one active node", || single_active(&addrs));
    let active = addrs[a];
    let standby = addrs[(a + 1) % 3];
    // Writes on the active node; each answer's index is what the client brings next.
    let write = |method: &str, path: &str, token: &str, body: Option<&Value>| -> String {
        let (st, hdrs, b) = request(active, method, path, token, &[], body);
        assert!(st == 200 || st == 204, "{method} {path}: {st} {b}");
        index_of(&hdrs)
    };
    let local = |path: &str, token: &str, index: &str| {
        call_at(standby, "GET", path, token, index, true, None)
    };

    // A health check on a read-serving standby: 429, standby.
    let (st, h) = health(standby).unwrap();
    assert_eq!(st, 429, "{h}");
    assert_eq!(h["standby"], true);

    // A new mount, and a secret in it, read on the standby itself.
    let idx = write(
        "POST",
        "/v1/sys/mounts/secret",
        root,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    let (st, body) = local("/v1/sys/mounts/secret/tune", root, &idx);
    assert_eq!(st, 200, "new mount on the standby: {body}");
    let idx = write(
        "PUT",
        "/v1/secret/data/app",
        root,
        Some(&json!({"data": {"v": "one"}})),
    );
    let (st, body) = local("/v1/secret/data/app", root, &idx);
    assert_eq!(
        (st, &body["data"]["data"]["v"]),
        (200, &json!("one")),
        "{body}"
    );
    // The engine's own cache follows an update.
    let idx = write(
        "PUT",
        "/v1/secret/data/app",
        root,
        Some(&json!({"data": {"v": "two"}})),
    );
    let (st, body) = local("/v1/secret/data/app", root, &idx);
    assert_eq!(
        (st, &body["data"]["data"]["v"]),
        (200, &json!("two")),
        "{body}"
    );

    // A tuned mount, and a kv-v2 configuration change.
    let idx = write(
        "POST",
        "/v1/sys/mounts/secret/tune",
        root,
        Some(&json!({"default_lease_ttl": "1h", "description": "tuned"})),
    );
    let (st, body) = local("/v1/sys/mounts/secret/tune", root, &idx);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["default_lease_ttl"], 3600, "{body}");
    let idx = write(
        "POST",
        "/v1/secret/config",
        root,
        Some(&json!({"max_versions": 7})),
    );
    let (st, body) = local("/v1/secret/config", root, &idx);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["max_versions"], 7, "{body}");

    // A new auth method.
    let idx = write(
        "POST",
        "/v1/sys/auth/userpass",
        root,
        Some(&json!({"type": "userpass"})),
    );
    let (st, body) = local("/v1/sys/auth", root, &idx);
    assert_eq!(st, 200, "{body}");
    assert!(body["data"].get("userpass/").is_some(), "{body}");

    // A policy change takes effect on the standby.
    write(
        "PUT",
        "/v1/sys/policies/acl/reader",
        root,
        Some(&json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }"})),
    );
    let (st, created) = call(
        active,
        "POST",
        "/v1/auth/token/create",
        root,
        Some(&json!({"policies": ["reader"]})),
    );
    assert_eq!(st, 200, "{created}");
    let user = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let idx = write(
        "PUT",
        "/v1/sys/policies/acl/reader",
        root,
        Some(
            &json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }\npath \"secret/data/other\" { capabilities = [\"read\"] }"}),
        ),
    );
    let (st, body) = local("/v1/secret/data/app", &user, &idx);
    assert_eq!(st, 200, "{body}");
    let idx = write(
        "PUT",
        "/v1/sys/policies/acl/reader",
        root,
        Some(&json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"})),
    );
    let (st, _) = local("/v1/secret/data/app", &user, &idx);
    assert_eq!(st, 403, "the changed policy no longer allows the read");

    // A revoked token stops working on the standby, given the index of the revocation.
    let idx = write(
        "POST",
        "/v1/auth/token/revoke",
        root,
        Some(&json!({"token": user})),
    );
    let (st, _) = local("/v1/secret/data/other", &user, &idx);
    assert_eq!(
        st, 403,
        "a revoked token must not work after the revoke returned"
    );

    // A rotated barrier key: data written under the new term reads on the standby.
    write("POST", "/v1/sys/rotate", root, None);
    let idx = write(
        "PUT",
        "/v1/secret/data/app",
        root,
        Some(&json!({"data": {"v": "after-rotate"}})),
    );
    let (st, body) = local("/v1/secret/data/app", root, &idx);
    assert_eq!(
        (st, &body["data"]["data"]["v"]),
        (200, &json!("after-rotate")),
        "{body}"
    );

    // PKI issuance from a no_store role and transit encryption run on the standby itself.
    write(
        "POST",
        "/v1/sys/mounts/pki",
        root,
        Some(&json!({"type": "pki"})),
    );
    write(
        "POST",
        "/v1/pki/root/generate/internal",
        root,
        Some(
            &json!({"common_name": "standby.test", "key_type": "ec", "key_bits": 256, "ttl": "87600h"}),
        ),
    );
    let idx = write(
        "POST",
        "/v1/pki/roles/web",
        root,
        Some(
            &json!({"allow_any_name": true, "no_store": true, "key_type": "ec", "key_bits": 256, "ttl": "1h"}),
        ),
    );
    let (st, body) = call_at(
        standby,
        "POST",
        "/v1/pki/issue/web",
        root,
        &idx,
        true,
        Some(&json!({"common_name": "app.standby.test"})),
    );
    assert_eq!(st, 200, "no_store issuance on the standby: {body}");
    assert!(body["data"]["certificate"]
        .as_str()
        .unwrap_or("")
        .starts_with("-----BEGIN CERTIFICATE-----"));
    write(
        "POST",
        "/v1/sys/mounts/transit",
        root,
        Some(&json!({"type": "transit"})),
    );
    let idx = write("POST", "/v1/transit/keys/k", root, None);
    let (st, body) = call_at(
        standby,
        "POST",
        "/v1/transit/encrypt/k",
        root,
        &idx,
        true,
        Some(&json!({"plaintext": "aGVsbG8="})),
    );
    assert_eq!(st, 200, "transit encryption on the standby: {body}");
    let ct = body["data"]["ciphertext"].as_str().unwrap().to_string();
    let (st, body) = call(
        active,
        "POST",
        "/v1/transit/decrypt/k",
        root,
        Some(&json!({"ciphertext": ct})),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["plaintext"], "aGVsbG8=");
    // A write sent to the standby without forwarding allowed is redirected, not run there.
    let (st, _) = call_at(
        standby,
        "POST",
        "/v1/transit/keys/other",
        root,
        &idx,
        true,
        None,
    );
    assert_eq!(st, 307);

    // A removed mount is gone on the standby: it no longer routes the path itself (it defers
    // to the active node, which answers 404).
    let idx = write("DELETE", "/v1/sys/mounts/secret", root, None);
    let (st, _) = local("/v1/secret/data/app", root, &idx);
    assert_eq!(st, 307);
    let (st, _) = call_at(
        standby,
        "GET",
        "/v1/secret/data/app",
        root,
        &idx,
        false,
        None,
    );
    assert_eq!(st, 404);

    // Writes sent to the standby are forwarded, with large bodies intact.
    let idx = write(
        "POST",
        "/v1/sys/mounts/big",
        root,
        Some(&json!({"type": "kv"})),
    );
    let big: String = (0..10 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (st, body) = call_at(
        standby,
        "PUT",
        "/v1/big/blob",
        root,
        &idx,
        false,
        Some(&json!({"value": big})),
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(active, "GET", "/v1/big/blob", root, None);
    assert_eq!(st, 200);
    assert!(
        body["data"]["value"].as_str() == Some(big.as_str()),
        "10 MiB body damaged"
    );

    // An index the standby cannot reach: fail → 412; by default the request is forwarded.
    use base64::Engine as _;
    let (_, leader) = call(active, "GET", "/v1/sys/leader", "", None);
    let _ = leader;
    let (_, hdrs, _) = request(active, "GET", "/v1/sys/mounts", root, &[], None);
    let ours: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(index_of(&hdrs))
            .unwrap(),
    )
    .unwrap();
    let future = base64::engine::general_purpose::STANDARD
        .encode(json!({"cluster": ours["cluster"], "value": "999999999"}).to_string());
    let (st, _, _) = request(
        standby,
        "GET",
        "/v1/big/blob",
        root,
        &[("X-Vault-Index", &future), ("X-Vault-Inconsistent", "fail")],
        None,
    );
    assert_eq!(st, 412);
    let (st, _, _) = request(
        standby,
        "GET",
        "/v1/big/blob",
        root,
        &[("X-Vault-Index", &future)],
        None,
    );
    assert_eq!(st, 200, "forwarded to the active node");
    drop(c);
}

#[test]
fn readers_on_standbys_never_see_older_data_than_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let c = three_node_cluster(dir.path());
    let addrs: Vec<String> = c.addrs().iter().map(|s| s.to_string()).collect();
    let root = c.token.clone();
    let a = wait_for(15, "exactly one active node", || {
        single_active(&addrs.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let active = addrs[a].clone();
    let (st, body) = call(
        &active,
        "POST",
        "/v1/sys/mounts/secret",
        &root,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{body}");
    let (tx, rx) = std::sync::mpsc::channel::<(u64, String)>();
    let writer = {
        let active = active.clone();
        let root = root.clone();
        std::thread::spawn(move || {
            for n in 1..=150u64 {
                let (st, hdrs, body) = request(
                    &active,
                    "PUT",
                    "/v1/secret/data/counter",
                    &root,
                    &[],
                    Some(&json!({"data": {"n": n}})),
                );
                assert_eq!(st, 200, "{body}");
                tx.send((n, index_of(&hdrs))).unwrap();
            }
        })
    };
    let standbys: Vec<String> = (0..3)
        .filter(|i| *i != a)
        .map(|i| addrs[i].clone())
        .collect();
    let mut checked = 0;
    for (n, idx) in rx {
        for s in &standbys {
            let (st, body) = call_at(s, "GET", "/v1/secret/data/counter", &root, &idx, true, None);
            assert_eq!(st, 200, "{body}");
            let seen = body["data"]["data"]["n"].as_u64().unwrap();
            assert!(
                seen >= n,
                "standby {s} served n={seen} after the client saw n={n}"
            );
            checked += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(checked, 300);
    drop(c);
}
