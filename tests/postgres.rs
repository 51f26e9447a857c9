//! `kura` processes on `storage "postgresql"` against a real PostgreSQL 15 (started by
//! `scripts/postgres`, or the one named by `KURA_TEST_PG_URL`; each test has its own database):
//! a single node keeps its data across `kill -9` and keeps no plaintext in the table; two HA
//! nodes elect one active node, the standby redirects, and a standby takes over after `kill -9`
//! of the active node; an active node paused past the lock's lifetime cannot write when it
//! resumes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, http_raw, index_of, request, Server};
use kura_postgres::testing::{fresh_database_blocking, query_text_blocking};
use serde_json::{json, Value};

struct Node {
    api: String,
    config: PathBuf,
    log: PathBuf,
    /// The port the cluster listener binds.
    cluster_port: u16,
}

fn node(dir: &Path, name: &str, url: &str, ha: bool) -> Node {
    node_with(
        dir,
        name,
        &NodeOpts {
            url,
            ha,
            ..NodeOpts::default()
        },
    )
}

/// How a node is configured.
#[derive(Default)]
struct NodeOpts<'a> {
    /// `connection_url`.
    url: &'a str,
    /// `read_connection_url`, when set.
    read_url: Option<&'a str>,
    /// `ha_enabled`.
    ha: bool,
    /// The port advertised in `cluster_addr` when it is not the bound one (a proxy's).
    advertised_cluster_port: Option<u16>,
}

impl<'a> NodeOpts<'a> {
    /// An HA node on `url`.
    fn ha(url: &'a str) -> Self {
        NodeOpts {
            url,
            ha: true,
            ..NodeOpts::default()
        }
    }
}

fn node_with(dir: &Path, name: &str, o: &NodeOpts) -> Node {
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let cport = free_port();
    let read = o
        .read_url
        .map(|u| format!("  read_connection_url = \"{u}\"\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
storage "postgresql" {{
  connection_url = "{url}"
  ha_enabled     = "{ha}"
{read}}}
listener "tcp" {{
  address         = "{api}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable     = true
}}
api_addr      = "http://{api}"
cluster_addr  = "https://127.0.0.1:{advertised}"
disable_mlock = true
"#,
        url = o.url,
        ha = o.ha,
        advertised = o.advertised_cluster_port.unwrap_or(cport),
    );
    let config = dir.join(format!("{name}.hcl"));
    std::fs::write(&config, text).unwrap();
    Node {
        api,
        config,
        log: dir.join(format!("{name}.log")),
        cluster_port: cport,
    }
}

fn start(n: &Node) -> Server {
    Server::start(&n.config, &n.api, n.log.clone())
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sys/health` status: 200 active, 429 standby, 503 sealed.
fn health(addr: &str) -> u16 {
    std::net::TcpStream::connect(addr)
        .ok()
        .map(|_| http_raw(addr, "GET", "/v1/sys/health", "", None).0)
        .unwrap_or(0)
}

/// The index of the one active node among `servers`, when exactly one is active and every
/// other answers as a standby.
fn single_active(servers: &[&Server]) -> Option<usize> {
    let codes: Vec<u16> = servers.iter().map(|s| health(&s.addr)).collect();
    let active: Vec<usize> = (0..codes.len()).filter(|&i| codes[i] == 200).collect();
    (active.len() == 1 && codes.iter().all(|&c| c == 200 || c == 429)).then(|| active[0])
}

fn mount_kv(s: &Server, token: &str) {
    let (st, body) = s.call(
        "POST",
        "/v1/sys/mounts/secret",
        token,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204, "{body}");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn single_node_on_postgresql_survives_restart_and_stores_no_plaintext() {
    let url = fresh_database_blocking("single");
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), "n1", &url, false);
    let server = start(&n);
    let (keys, root) = server.init_unseal(3, 2);
    mount_kv(&server, &root);
    let secret = "kura-pg-canary-5b1e-plaintext-value";
    let (st, body) = server.call(
        "POST",
        "/v1/secret/data/canary",
        &root,
        Some(&json!({"data": {"password": secret}})),
    );
    assert_eq!(st, 200, "{body}");
    let (_, t) = server.call(
        "POST",
        "/v1/auth/token/create",
        &root,
        Some(&json!({"policies": ["default"]})),
    );
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    server.kill9();

    // Every row of the table, keys and values, holds none of the secrets.
    let rows = query_text_blocking(
        &url,
        "SELECT parent_path || path || key, encode(value, 'hex') FROM openbao_kv_store",
    );
    assert!(rows.len() > 10, "only {} rows", rows.len());
    for row in &rows {
        let name = row[0].clone().unwrap_or_default();
        let value = row[1].clone().unwrap_or_default();
        for needle in [secret, token.as_str(), root.as_str()] {
            assert!(!name.contains(needle), "{needle:?} in a key: {name}");
            assert!(
                !value.contains(&hex(needle)),
                "{needle:?} in plaintext in the value of {name}"
            );
        }
    }

    // Restarted, unsealed: the data is there.
    let server = start(&n);
    server.unseal(&keys[..2]);
    let (st, body) = server.call("GET", "/v1/secret/data/canary", &root, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["password"], secret);
    let (st, _) = server.call("GET", "/v1/auth/token/lookup-self", &token, None);
    assert_eq!(st, 200);
}

/// Two HA nodes on one database; returns them with the unseal keys and root token, after
/// exactly one became active.
fn ha_pair(dir: &Path, url: &str) -> (Vec<Node>, Vec<Option<Server>>, Vec<String>, String) {
    let nodes = vec![node(dir, "a", url, true), node(dir, "b", url, true)];
    let a = start(&nodes[0]);
    let (keys, root) = a.init_unseal(3, 2);
    let b = start(&nodes[1]);
    b.unseal(&keys[..2]);
    wait_for(15, "one active node", || single_active(&[&a, &b]));
    (nodes, vec![Some(a), Some(b)], keys, root)
}

fn refs(servers: &[Option<Server>]) -> Vec<&Server> {
    servers.iter().map(|s| s.as_ref().unwrap()).collect()
}

#[test]
fn ha_pair_on_postgresql_elects_one_active_and_fails_over_after_kill9() {
    let url = fresh_database_blocking("ha_failover");
    let dir = tempfile::tempdir().unwrap();
    let (nodes, mut servers, keys, root) = ha_pair(dir.path(), &url);
    let active = single_active(&refs(&servers)).unwrap();
    mount_kv(servers[active].as_ref().unwrap(), &root);

    // The standby forwards a write to the active node; told not to forward, it redirects to
    // the active node's api_addr.
    let standby = 1 - active;
    let body = json!({"data": {"v": "through the standby"}});
    let (st, _, b) = request(
        &nodes[standby].api,
        "PUT",
        "/v1/secret/data/x",
        &root,
        &[],
        Some(&body),
    );
    assert_eq!(st, 200, "{b}");
    let (st, _, _) = request(
        &nodes[standby].api,
        "PUT",
        "/v1/secret/data/x",
        &root,
        &[("X-Vault-No-Request-Forwarding", "true")],
        Some(&body),
    );
    assert_eq!(st, 307);
    // sys/leader on the standby names the active node.
    let (st, leader) = servers[standby]
        .as_ref()
        .unwrap()
        .call("GET", "/v1/sys/leader", "", None);
    assert_eq!(st, 200);
    assert_eq!(leader["is_self"], false, "{leader}");
    assert_eq!(
        leader["leader_address"],
        format!("http://{}", nodes[active].api),
        "{leader}"
    );

    let mut times = Vec::new();
    for round in 0..3 {
        let active = wait_for(15, "one active node", || single_active(&refs(&servers)));
        let key = format!("/v1/secret/data/round{round}");
        let (st, body) = servers[active].as_ref().unwrap().call(
            "PUT",
            &key,
            &root,
            Some(&json!({"data": {"v": "before"}})),
        );
        assert_eq!(st, 200, "{body}");
        let killed = servers[active].take().unwrap();
        let t0 = Instant::now();
        killed.kill9();
        let other = 1 - active;
        let after = format!("/v1/secret/data/after{round}");
        wait_for(20, "a write accepted after the failover", || {
            let (st, _) = servers[other].as_ref().unwrap().call(
                "PUT",
                &after,
                &root,
                Some(&json!({"data": {"v": "after"}})),
            );
            (st == 200).then_some(())
        });
        let took = t0.elapsed();
        eprintln!("round {round}: failover took {took:?}");
        times.push(took);
        let (st, body) = servers[other]
            .as_ref()
            .unwrap()
            .call("GET", &key, &root, None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["data"]["data"]["v"], "before");
        // The killed node comes back as a standby.
        let s = start(&nodes[active]);
        s.unseal(&keys[..2]);
        servers[active] = Some(s);
        let now_active = wait_for(15, "one active node", || single_active(&refs(&servers)));
        assert_eq!(now_active, other);
    }
    times.sort();
    eprintln!("failover times after kill -9: {times:?}");
    // Lock lifetime 1.5 s + retry 0.25 s + activation; a loaded 2-core CI machine gets slack.
    assert!(
        times[times.len() / 2] <= Duration::from_millis(2000),
        "median failover over 2 s: {times:?}"
    );
    assert!(
        times[times.len() - 1] < Duration::from_secs(4),
        "failover too slow: {times:?}"
    );
}

#[test]
fn paused_active_node_cannot_write_after_resuming() {
    let url = fresh_database_blocking("fence_pause");
    let dir = tempfile::tempdir().unwrap();
    let (nodes, servers, _keys, root) = ha_pair(dir.path(), &url);
    let a = single_active(&refs(&servers)).unwrap();
    let b = 1 - a;
    mount_kv(servers[a].as_ref().unwrap(), &root);
    let pid = servers[a].as_ref().unwrap().child.id() as i32;

    // A stream of writes to one key on the active node, so that some are in flight (inside
    // the node, or inside a database transaction) when it is paused.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let api = nodes[a].api.clone();
        let token = root.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = json!({"data": {"v": format!("old-{i}")}});
                // Not forwarded: once the paused node is a standby, it must not hand these
                // writes to the new active node (which would rightly accept them).
                let (st, _, reply) = request(
                    &api,
                    "PUT",
                    "/v1/secret/data/contended",
                    &token,
                    &[("X-Vault-No-Request-Forwarding", "true")],
                    Some(&body),
                );
                answers.push((st, reply.to_string()));
                i += 1;
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // Pause the active node past the lock's lifetime: the other node takes over and writes.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let paused = Instant::now();
    wait_for(15, "the other node to become active", || {
        (health(&nodes[b].api) == 200).then_some(())
    });
    eprintln!("took over from a paused node after {:?}", paused.elapsed());
    let (st, body) = servers[b].as_ref().unwrap().call(
        "PUT",
        "/v1/secret/data/contended",
        &root,
        Some(&json!({"data": {"v": "new"}})),
    );
    assert_eq!(st, 200, "{body}");

    // Resume it: whatever it had in flight must not land after the new active node's write.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = writer.join().unwrap();
    let first_refused = answers
        .iter()
        .position(|(s, _)| *s != 200)
        .unwrap_or(answers.len());
    eprintln!(
        "the paused node answered {} writes: {first_refused} accepted before the pause, then {:?}",
        answers.len(),
        &answers[first_refused..answers.len().min(first_refused + 2)]
    );
    let (st, body) =
        servers[b]
            .as_ref()
            .unwrap()
            .call("GET", "/v1/secret/data/contended", &root, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"]["data"]["v"], "new",
        "a write of the paused node landed after the takeover: {body}"
    );
    // The resumed node is a standby now; one active node remains.
    let now = wait_for(15, "one active node", || single_active(&refs(&servers)));
    assert_eq!(now, b);
}

#[test]
fn active_node_paused_inside_a_write_transaction_cannot_commit_it() {
    let url = fresh_database_blocking("fence_in_txn");
    let dir = tempfile::tempdir().unwrap();
    let (nodes, servers, _keys, root) = ha_pair(dir.path(), &url);
    let a = single_active(&refs(&servers)).unwrap();
    let b = 1 - a;
    mount_kv(servers[a].as_ref().unwrap(), &root);
    let pid = servers[a].as_ref().unwrap().child.id() as i32;
    // Writes can be made slow from outside, so that the node is paused between its fence
    // check and its commit.
    query_text_blocking(
        &url,
        "CREATE TABLE slow_writes (on_ boolean); \
         CREATE FUNCTION slow_write() RETURNS trigger AS $$ BEGIN \
           IF EXISTS (SELECT 1 FROM slow_writes) THEN PERFORM pg_sleep(2); END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON openbao_kv_store \
           FOR EACH ROW EXECUTE FUNCTION slow_write();",
    );
    query_text_blocking(&url, "INSERT INTO slow_writes VALUES (true)");
    let pending = {
        let api = nodes[a].api.clone();
        let token = root.clone();
        std::thread::spawn(move || {
            let body = json!({"data": {"v": "old"}}).to_string();
            http_raw(
                &api,
                "PUT",
                "/v1/secret/data/contended",
                &token,
                Some(body.as_bytes()),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let paused = Instant::now();
    query_text_blocking(&url, "DELETE FROM slow_writes");
    wait_for(20, "the other node to become active", || {
        (health(&nodes[b].api) == 200).then_some(())
    });
    eprintln!(
        "took over from a node paused inside a write after {:?}",
        paused.elapsed()
    );
    let (st, body) = servers[b].as_ref().unwrap().call(
        "PUT",
        "/v1/secret/data/contended",
        &root,
        Some(&json!({"data": {"v": "new"}})),
    );
    assert_eq!(st, 200, "{body}");
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let (st, reply) = pending.join().unwrap();
    let reply = String::from_utf8_lossy(&reply);
    eprintln!("the resumed node answered its pending write with {st}: {reply}");
    assert!(
        st >= 500,
        "the paused node's write was not refused: {st} {reply}"
    );
    let (st, body) =
        servers[b]
            .as_ref()
            .unwrap()
            .call("GET", "/v1/secret/data/contended", &root, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["v"], "new", "{body}");
    let (st, body) =
        servers[b]
            .as_ref()
            .unwrap()
            .call("GET", "/v1/secret/metadata/contended", &root, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["current_version"], 1, "{body}");
    let now = wait_for(15, "one active node", || single_active(&refs(&servers)));
    assert_eq!(now, b);
}

/// A node whose data is in one database and whose HA lock (`ha_storage`) is in another.
fn split_node(dir: &Path, name: &str, data_url: &str, lock_url: &str) -> Node {
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let cport = free_port();
    let text = format!(
        r#"
storage "postgresql" {{
  connection_url = "{data_url}"
}}
ha_storage "postgresql" {{
  connection_url = "{lock_url}"
  ha_enabled     = "true"
}}
listener "tcp" {{
  address         = "{api}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable     = true
}}
api_addr      = "http://{api}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
"#,
    );
    let config = dir.join(format!("{name}.hcl"));
    std::fs::write(&config, text).unwrap();
    Node {
        api,
        config,
        log: dir.join(format!("{name}.log")),
        cluster_port: cport,
    }
}

#[test]
fn ha_storage_keeps_the_lock_in_another_database() {
    let data_url = fresh_database_blocking("split_data");
    let lock_url = fresh_database_blocking("split_lock");
    let dir = tempfile::tempdir().unwrap();
    let nodes = [
        split_node(dir.path(), "a", &data_url, &lock_url),
        split_node(dir.path(), "b", &data_url, &lock_url),
    ];
    let a = start(&nodes[0]);
    assert!(a.log_text().contains("(HA available)"), "{}", a.log_text());
    let (keys, root) = a.init_unseal(3, 2);
    let b = start(&nodes[1]);
    b.unseal(&keys[..2]);
    let mut servers = vec![Some(a), Some(b)];
    let active = wait_for(15, "one active node", || single_active(&refs(&servers)));
    mount_kv(servers[active].as_ref().unwrap(), &root);
    let (st, body) = servers[active].as_ref().unwrap().call(
        "PUT",
        "/v1/secret/data/split",
        &root,
        Some(&json!({"data": {"v": "kept"}})),
    );
    assert_eq!(st, 200, "{body}");
    // The lock row is in the lock database; the data is in the data database only.
    let locks = query_text_blocking(&lock_url, "SELECT ha_key FROM openbao_ha_locks");
    assert_eq!(locks.len(), 1, "{locks:?}");
    let data_rows = query_text_blocking(&data_url, "SELECT count(*) FROM openbao_kv_store");
    assert_ne!(data_rows[0][0].as_deref(), Some("0"));
    let lock_db_rows = query_text_blocking(
        &lock_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'openbao_kv_store'",
    );
    let lock_db_has_data = lock_db_rows[0][0].as_deref() != Some("0")
        && query_text_blocking(&lock_url, "SELECT count(*) FROM openbao_kv_store")[0][0].as_deref()
            != Some("0");
    assert!(!lock_db_has_data, "data leaked into the lock database");

    // kill -9 of the active node: the other takes the lock and serves the data.
    servers[active].take().unwrap().kill9();
    let other = 1 - active;
    wait_for(20, "the other node active", || {
        (health(&servers[other].as_ref().unwrap().addr) == 200).then_some(())
    });
    let (st, body) =
        servers[other]
            .as_ref()
            .unwrap()
            .call("GET", "/v1/secret/data/split", &root, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["v"], "kept");
}

/// Three nodes on one database: the active node and two read-serving standbys.
fn ha_trio(dir: &Path, opts: &[NodeOpts]) -> (Vec<Node>, Vec<Server>, String) {
    let nodes: Vec<Node> = opts
        .iter()
        .enumerate()
        .map(|(i, o)| node_with(dir, &format!("n{i}"), o))
        .collect();
    let first = start(&nodes[0]);
    let (keys, root) = first.init_unseal(3, 2);
    let mut servers = vec![first];
    for n in &nodes[1..] {
        let s = start(n);
        s.unseal(&keys[..2]);
        servers.push(s);
    }
    let all: Vec<&Server> = servers.iter().collect();
    wait_for(15, "one active node", || single_active(&all));
    (nodes, servers, root)
}

/// A write on `addr` (the active node); returns the answer's `X-Vault-Index`.
fn write_at(addr: &str, path: &str, token: &str, body: &Value) -> String {
    let (st, hdrs, b) = request(addr, "PUT", path, token, &[], Some(body));
    assert!(st == 200 || st == 204, "{path}: {st} {b}");
    index_of(&hdrs)
}

/// A read on a standby that must be answered by the standby itself, bringing `index`.
fn read_local(addr: &str, path: &str, token: &str, index: &str) -> (u16, Value) {
    let (st, _, b) = request(
        addr,
        "GET",
        path,
        token,
        &[
            ("X-Vault-Index", index),
            ("X-Vault-No-Request-Forwarding", "true"),
        ],
        None,
    );
    (st, b)
}

/// A GET answered by the node at `addr` itself (`X-Vault-No-Request-Forwarding`): status,
/// headers and body.
fn get_local(addr: &str, path: &str, token: &str) -> (u16, Vec<(String, String)>, Value) {
    request(
        addr,
        "GET",
        path,
        token,
        &[("X-Vault-No-Request-Forwarding", "true")],
        None,
    )
}

/// Waits until the standby at `addr` serves reads itself (a local read is not redirected).
fn wait_read_serving(addr: &str, token: &str) {
    wait_for(15, "the standby serving reads", || {
        let (st, _, _) = get_local(addr, "/v1/sys/mounts", token);
        (st == 200).then_some(())
    });
}

#[test]
fn standbys_on_postgresql_serve_reads_and_follow_every_change() {
    let url = fresh_database_blocking("standby_reads");
    let dir = tempfile::tempdir().unwrap();
    let opts: Vec<NodeOpts> = (0..3).map(|_| NodeOpts::ha(&url)).collect();
    let (_nodes, servers, root) = ha_trio(dir.path(), &opts);
    let all: Vec<&Server> = servers.iter().collect();
    let a = single_active(&all).unwrap();
    let active = servers[a].addr.clone();
    let standbys: Vec<String> = (0..3)
        .filter(|&i| i != a)
        .map(|i| servers[i].addr.clone())
        .collect();
    for s in &standbys {
        wait_read_serving(s, &root);
    }

    // A new mount, then a value and its updates: each read on a standby, given the write's
    // index, is answered by the standby itself with the latest value.
    let idx = write_at(
        &active,
        "/v1/sys/mounts/secret",
        &root,
        &json!({"type": "kv", "options": {"version": "2"}}),
    );
    for s in &standbys {
        let (st, b) = read_local(s, "/v1/sys/mounts/secret/tune", &root, &idx);
        assert_eq!(st, 200, "{b}");
    }
    for round in 0..30 {
        let v = format!("v{round}");
        let idx = write_at(
            &active,
            "/v1/secret/data/app",
            &root,
            &json!({"data": {"v": v}}),
        );
        for s in &standbys {
            let (st, b) = read_local(s, "/v1/secret/data/app", &root, &idx);
            assert_eq!(st, 200, "{b}");
            assert_eq!(b["data"]["data"]["v"], v, "stale read on a standby: {b}");
        }
    }

    // A policy change and a revoked token reach the standbys' own stores.
    let idx = write_at(
        &active,
        "/v1/sys/policies/acl/reader",
        &root,
        &json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"}),
    );
    let (st, hdrs, b) = request(
        &active,
        "POST",
        "/v1/auth/token/create",
        &root,
        &[("X-Vault-Index", &idx)],
        Some(&json!({"policies": ["reader"]})),
    );
    assert_eq!(st, 200, "{b}");
    let token = b["auth"]["client_token"].as_str().unwrap().to_string();
    let idx = index_of(&hdrs);
    for s in &standbys {
        let (st, b) = read_local(s, "/v1/secret/data/app", &token, &idx);
        assert_eq!(st, 200, "{b}");
    }
    let idx = write_at(
        &active,
        "/v1/sys/policies/acl/reader",
        &root,
        &json!({"policy": "path \"other/*\" { capabilities = [\"read\"] }"}),
    );
    for s in &standbys {
        let (st, b) = read_local(s, "/v1/secret/data/app", &token, &idx);
        assert_eq!(st, 403, "a changed policy was not seen by a standby: {b}");
    }
    let idx = write_at(
        &active,
        "/v1/auth/token/revoke",
        &root,
        &json!({"token": token}),
    );
    for s in &standbys {
        let (st, b) = read_local(s, "/v1/auth/token/lookup-self", &token, &idx);
        assert_eq!(st, 403, "a revoked token still works on a standby: {b}");
    }

    // A write sent to a standby is forwarded, and the standby then reads it itself.
    let (st, hdrs, b) = request(
        &standbys[0],
        "PUT",
        "/v1/secret/data/forwarded",
        &root,
        &[],
        Some(&json!({"data": {"v": "via standby"}})),
    );
    assert_eq!(st, 200, "{b}");
    let idx = index_of(&hdrs);
    let (st, b) = read_local(&standbys[0], "/v1/secret/data/forwarded", &root, &idx);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "via standby");

    // An index no node has reached: 412 with `X-Vault-Inconsistent: fail`.
    let future = {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&idx)
            .unwrap();
        let mut v: Value = serde_json::from_slice(&raw).unwrap();
        let now: u64 = v["value"].as_str().unwrap().parse().unwrap();
        v["value"] = Value::String((now + (1 << 40)).to_string());
        base64::engine::general_purpose::STANDARD.encode(v.to_string())
    };
    let (st, _, _) = request(
        &standbys[1],
        "GET",
        "/v1/secret/data/app",
        &root,
        &[("X-Vault-Index", &future), ("X-Vault-Inconsistent", "fail")],
        None,
    );
    assert_eq!(st, 412);
}

/// A TCP relay in front of a cluster port that a test can cut (closing every connection and
/// refusing new ones) and restore.
struct Relay {
    port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    /// A relay on a free port, relaying nowhere until [`Relay::point_at`].
    fn start() -> Relay {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (t, c, k) = (target.clone(), cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let to = t.load(Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                {
                    let mut k = k.lock().unwrap();
                    k.push(client.try_clone().unwrap());
                    k.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            target,
            cut,
            conns,
        }
    }

    fn point_at(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_standby_whose_invalidation_stream_drops_stops_serving_reads_until_it_follows_again() {
    let url = fresh_database_blocking("stream_drop");
    let dir = tempfile::tempdir().unwrap();
    // Each node advertises its cluster port through a relay the test can cut.
    let mut nodes = Vec::new();
    let mut relays = Vec::new();
    for i in 0..2 {
        let relay = Relay::start();
        let n = node_with(
            dir.path(),
            &format!("n{i}"),
            &NodeOpts {
                url: &url,
                ha: true,
                advertised_cluster_port: Some(relay.port),
                ..NodeOpts::default()
            },
        );
        relay.point_at(n.cluster_port);
        relays.push(relay);
        nodes.push(n);
    }
    let a0 = start(&nodes[0]);
    let (keys, root) = a0.init_unseal(3, 2);
    let a1 = start(&nodes[1]);
    a1.unseal(&keys[..2]);
    let servers = [a0, a1];
    let all: Vec<&Server> = servers.iter().collect();
    let a = wait_for(15, "one active node", || single_active(&all));
    let active = servers[a].addr.clone();
    let standby = servers[1 - a].addr.clone();
    mount_kv(&servers[a], &root);
    wait_read_serving(&standby, &root);
    let idx = write_at(
        &active,
        "/v1/secret/data/k",
        &root,
        &json!({"data": {"v": "one"}}),
    );
    let (st, b) = read_local(&standby, "/v1/secret/data/k", &root, &idx);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "one");

    // The stream drops: within the stream's silence limit the standby stops answering
    // locally (a local-only request is redirected).
    relays[a].cut();
    wait_for(10, "the standby to stop serving reads", || {
        let (st, _, _) = get_local(&standby, "/v1/secret/data/k", &root);
        (st == 307).then_some(())
    });
    // A write while the standby hears nothing.
    write_at(
        &active,
        "/v1/secret/data/k",
        &root,
        &json!({"data": {"v": "two"}}),
    );
    for _ in 0..10 {
        let (st, _, b) = get_local(&standby, "/v1/secret/data/k", &root);
        assert!(
            st == 307,
            "a standby without its stream answered by itself: {st} {b}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The stream is back: the standby subscribes again and serves the value written while
    // it was away, never the old one.
    relays[a].restore();
    wait_read_serving(&standby, &root);
    let (st, _, b) = get_local(&standby, "/v1/secret/data/k", &root);
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["data"]["data"]["v"], "two",
        "stale read after resubscribing"
    );
}

/// Waits until the replica at `replica` has replayed everything written on `primary` so far.
fn wait_replayed(primary: &str, replica: &str) {
    let lsn = query_text_blocking(primary, kura_postgres::testing::SYNC_POSITION_SQL)
        .last()
        .unwrap()[0]
        .clone()
        .unwrap();
    wait_for(20, "the replica to replay the primary's writes", || {
        let rows = query_text_blocking(
            replica,
            &format!("SELECT (pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn)::text"),
        );
        (rows[0][0].as_deref() == Some("true")).then_some(())
    });
}

/// `read_connection_url`: a standby reads from a streaming replica made with pg_basebackup,
/// and takes a write in only once the replica has replayed it.
#[test]
fn a_standby_reading_from_a_streaming_replica_waits_for_its_replay() {
    let primary = kura_postgres::testing::start_server(false);
    let replica = kura_postgres::testing::start_replica(&primary);
    let dir = tempfile::tempdir().unwrap();
    let opts = [
        NodeOpts::ha(&primary.url),
        NodeOpts {
            url: &primary.url,
            read_url: Some(&replica.url),
            ha: true,
            ..NodeOpts::default()
        },
    ];
    let (_nodes, servers, root) = ha_trio(dir.path(), &opts);
    // The first node was unsealed first and took the lock.
    assert_eq!(health(&servers[0].addr), 200);
    let active = servers[0].addr.clone();
    let standby = servers[1].addr.clone();
    wait_read_serving(&standby, &root);
    let idx = write_at(
        &active,
        "/v1/sys/mounts/secret",
        &root,
        &json!({"type": "kv", "options": {"version": "2"}}),
    );
    let idx = {
        let (st, hdrs, b) = request(
            &active,
            "PUT",
            "/v1/secret/data/r",
            &root,
            &[("X-Vault-Index", &idx)],
            Some(&json!({"data": {"v": "one"}})),
        );
        assert_eq!(st, 200, "{b}");
        index_of(&hdrs)
    };
    let (st, b) = read_local(&standby, "/v1/secret/data/r", &root, &idx);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "one");

    // Replay paused on the replica: the standby cannot reach the next write's index.
    query_text_blocking(&replica.url, "SELECT pg_wal_replay_pause()");
    let idx2 = write_at(
        &active,
        "/v1/secret/data/r",
        &root,
        &json!({"data": {"v": "two"}}),
    );
    let (st, _, b) = request(
        &standby,
        "GET",
        "/v1/secret/data/r",
        &root,
        &[
            ("X-Vault-Index", &idx2),
            ("X-Vault-Inconsistent", "fail"),
            ("X-Vault-No-Request-Forwarding", "true"),
        ],
        None,
    );
    assert_eq!(
        st, 412,
        "the standby claimed an index its replica has not replayed: {b}"
    );
    // Without `fail`, the standby hands the read to the active node: current data.
    let (st, _, b) = request(
        &standby,
        "GET",
        "/v1/secret/data/r",
        &root,
        &[("X-Vault-Index", &idx2)],
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "two");
    // Replay resumes: the standby catches up and answers itself.
    query_text_blocking(&replica.url, "SELECT pg_wal_replay_resume()");
    let (st, b) = read_local(&standby, "/v1/secret/data/r", &root, &idx2);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "two");
}

/// A node configured on a replica stays a standby while the replica is read-only; once the
/// operator promotes it (the old primary gone), that node becomes active with the data.
#[test]
fn a_node_on_a_promoted_replica_becomes_active() {
    let primary = kura_postgres::testing::start_server(false);
    let replica = kura_postgres::testing::start_replica(&primary);
    let dir = tempfile::tempdir().unwrap();
    let opts = [NodeOpts::ha(&primary.url), NodeOpts::ha(&replica.url)];
    let nodes = [
        node_with(dir.path(), "n0", &opts[0]),
        node_with(dir.path(), "n1", &opts[1]),
    ];
    let first = start(&nodes[0]);
    let (keys, root) = first.init_unseal(3, 2);
    // The node on the replica sees the initialisation once the replica has replayed it.
    wait_replayed(&primary.url, &replica.url);
    let second = start(&nodes[1]);
    second.unseal(&keys[..2]);
    let mut servers = vec![first, second];
    assert_eq!(health(&servers[0].addr), 200);
    let standby = servers[1].addr.clone();
    mount_kv(&servers[0], &root);
    wait_read_serving(&standby, &root);
    // A write sent to the node on the replica is forwarded to the active node.
    let (st, hdrs, b) = request(
        &standby,
        "PUT",
        "/v1/secret/data/kept",
        &root,
        &[],
        Some(&json!({"data": {"v": "before promotion"}})),
    );
    assert_eq!(st, 200, "{b}");
    let idx = index_of(&hdrs);
    let (st, b) = read_local(&standby, "/v1/secret/data/kept", &root, &idx);
    assert_eq!(st, 200, "{b}");

    // The primary and its Kura node are gone; the operator promotes the replica.
    servers.remove(0).kill9();
    kura_postgres::testing::stop(&primary);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        health(&standby),
        429,
        "a node on a read-only replica became active"
    );
    kura_postgres::testing::promote(&replica);
    wait_for(
        20,
        "the node on the promoted replica to become active",
        || (health(&standby) == 200).then_some(()),
    );
    let (st, b) = servers[0].call("GET", "/v1/secret/data/kept", &root, None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["data"]["v"], "before promotion");
    let (st, b) = servers[0].call(
        "PUT",
        "/v1/secret/data/kept",
        &root,
        Some(&json!({"data": {"v": "after promotion"}})),
    );
    assert_eq!(st, 200, "{b}");
}

/// A database that cannot be reached stops the server at start with the reason, as OpenBao
/// does.
#[test]
fn an_unreachable_database_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let closed = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/postgres?sslmode=disable");
    let n = node(dir.path(), "n", &url, true);
    let out = std::process::Command::new(common::kura_bin())
        .arg("server")
        .arg(format!("-config={}", n.config.display()))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the server started without its database"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connecting to the database failed") && stderr.contains("refused"),
        "{stderr}"
    );
}
