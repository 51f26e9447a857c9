//! `kura` processes on `storage "postgresql"` against a real PostgreSQL 15 (started by
//! `scripts/postgres`, or the one named by `KURA_TEST_PG_URL`; each test has its own database):
//! a single node keeps its data across `kill -9` and keeps no plaintext in the table; two HA
//! nodes elect one active node, the standby redirects, and a standby takes over after `kill -9`
//! of the active node; an active node paused past the lock's lifetime cannot write when it
//! resumes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, http_raw, Server};
use kura_postgres::testing::{fresh_database_blocking, query_text_blocking};
use serde_json::json;

struct Node {
    api: String,
    config: PathBuf,
    log: PathBuf,
}

fn node(dir: &Path, name: &str, url: &str, ha: bool) -> Node {
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let text = format!(
        r#"
storage "postgresql" {{
  connection_url = "{url}"
  ha_enabled     = "{ha}"
}}
listener "tcp" {{
  address     = "{api}"
  tls_disable = true
}}
api_addr      = "http://{api}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
"#,
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

    // The standby redirects to the active node's api_addr.
    let standby = 1 - active;
    let (st, _) = http_raw(&nodes[standby].api, "GET", "/v1/secret/data/x", &root, None);
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
                let body = json!({"data": {"v": format!("old-{i}")}}).to_string();
                let (st, reply) = http_raw(
                    &api,
                    "PUT",
                    "/v1/secret/data/contended",
                    &token,
                    Some(body.as_bytes()),
                );
                answers.push((st, String::from_utf8_lossy(&reply).into_owned()));
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
  address     = "{api}"
  tls_disable = true
}}
api_addr      = "http://{api}"
cluster_addr  = "https://127.0.0.1:{cport}"
disable_mlock = true
"#,
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
