//! The `kura server` process end to end: OpenBao config files, persistence across `kill -9`,
//! secrets at rest, bad input, TLS.

mod common;

use std::path::Path;

use common::{free_port, http_raw, kura_bin, Server};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn raft_config(dir: &Path, addr: &str) -> std::path::PathBuf {
    // The cluster port is bound too: give it its own free port rather than the API port + 1,
    // which another test running in parallel may hold.
    let cluster_port = free_port();
    write(
        dir,
        "kura.hcl",
        &format!(
            r#"
storage "raft" {{
  path    = "{}"
  node_id = "node1"
}}
listener "tcp" {{
  address         = "{addr}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}
api_addr     = "http://{addr}"
cluster_addr = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
"#,
            dir.join("data").display(),
        ),
    )
}

#[test]
fn data_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = raft_config(dir.path(), &addr);
    let server = Server::start(&cfg, &addr, dir.path().join("log1"));
    let (keys, root) = server.init_unseal(3, 2);
    let (s, _) = server.call(
        "POST",
        "/v1/secret/data/x",
        &root,
        Some(&json!({"data": {}})),
    );
    assert_eq!(s, 404, "no secret/ mount outside dev mode");
    let (s, b) = server.call(
        "POST",
        "/v1/sys/mounts/secret",
        &root,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(s, 204, "{b}");
    for i in 0..50 {
        let (s, b) = server.call(
            "POST",
            &format!("/v1/secret/data/k{i}"),
            &root,
            Some(&json!({"data": {"v": i}})),
        );
        assert_eq!(s, 200, "{b}");
    }
    let (s, _) = server.call(
        "PUT",
        "/v1/sys/policy/reader",
        &root,
        Some(&json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
    );
    assert_eq!(s, 204);
    server.kill9();

    let server = Server::start(&cfg, &addr, dir.path().join("log2"));
    let (_, st) = server.call("GET", "/v1/sys/seal-status", "", None);
    assert_eq!(st["sealed"], true);
    assert_eq!(st["initialized"], true);
    let (s, _) = server.call("GET", "/v1/secret/data/k1", &root, None);
    assert_eq!(s, 503, "sealed → 503");
    // A wrong key is refused and the node stays sealed.
    let mut wrong = keys[2].clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    server.call("PUT", "/v1/sys/unseal", "", Some(&json!({"key": keys[0]})));
    let (s, b) = server.call("PUT", "/v1/sys/unseal", "", Some(&json!({"key": wrong})));
    assert_eq!(s, 400, "{b}");
    let (_, st) = server.call("GET", "/v1/sys/seal-status", "", None);
    assert_eq!(st["sealed"], true);
    server.unseal(&keys[1..3]);
    for i in 0..50 {
        let (s, b) = server.call("GET", &format!("/v1/secret/data/k{i}"), &root, None);
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["data"]["v"], i);
    }
    let (_, b) = server.call("GET", "/v1/sys/policy/reader", &root, None);
    assert!(b["rules"].as_str().unwrap().contains("secret/*"));
}

#[test]
fn no_secret_or_token_in_raw_storage_files() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = raft_config(dir.path(), &addr);
    let server = Server::start(&cfg, &addr, dir.path().join("log"));
    let (_, root) = server.init_unseal(1, 1);
    server.call(
        "POST",
        "/v1/sys/mounts/secret",
        &root,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    let secret = "kura-canary-7d0f3a9e-plaintext-value";
    let (s, _) = server.call(
        "POST",
        "/v1/secret/data/canary",
        &root,
        Some(&json!({"data": {"password": secret}})),
    );
    assert_eq!(s, 200);
    let (_, t) = server.call(
        "POST",
        "/v1/auth/token/create",
        &root,
        Some(&json!({"policies": ["default"]})),
    );
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    server.kill9();
    let mut scanned = 0;
    for entry in walk(&dir.path().join("data")) {
        let bytes = std::fs::read(&entry).unwrap();
        scanned += bytes.len();
        for needle in [secret, &token, &root] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in plaintext in {}",
                entry.display()
            );
        }
    }
    assert!(scanned > 0, "raft data files were scanned");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn malformed_json_oversized_body_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "kura.hcl",
        &format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n  max_request_size = 4096\n}}\n"),
    );
    let server = Server::start(&cfg, &addr, dir.path().join("log"));
    let (_, root) = server.init_unseal(1, 1);
    let (s, b) = http_raw(
        &addr,
        "POST",
        "/v1/sys/policy/x",
        &root,
        Some(b"{\"policy\": "),
    );
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("failed to parse JSON"));
    let big = format!("{{\"policy\": \"{}\"}}", "a".repeat(10_000));
    let (s, _) = http_raw(
        &addr,
        "POST",
        "/v1/sys/policy/x",
        &root,
        Some(big.as_bytes()),
    );
    assert_eq!(s, 413);
    let (s, b) = server.call("GET", "/v1/nope/foo", &root, None);
    assert_eq!(s, 404);
    assert!(b["errors"][0]
        .as_str()
        .unwrap()
        .contains("no handler for route"));
    let (s, _) = server.call("GET", "/v1/sys/policy/x", &root, None);
    assert_eq!(s, 404, "nothing was written by the rejected requests");
    let (s, b) = server.call("GET", "/v1/sys/mounts", "", None);
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["errors"][0], "permission denied");
}

#[test]
fn bad_config_names_file_and_line_and_unknown_options_warn() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.hcl",
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \n}\n",
    );
    let out = std::process::Command::new(kura_bin())
        .arg("server")
        .arg(format!("-config={}", bad.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.hcl") && err.contains(":3") || err.contains("bad.hcl:4"),
        "{err}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "warn.hcl",
        &format!("storage \"inmem\" {{}}\nfrobnicate = true\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n"),
    );
    let server = Server::start(&cfg, &addr, dir.path().join("log"));
    let (s, _) = server.call("GET", "/v1/sys/health", "", None);
    assert_eq!(s, 501, "not initialised");
    let log = server.log_text();
    assert!(
        log.contains("frobnicate"),
        "warning names the option: {log}"
    );
}

#[test]
fn tls_listener_serves_the_kura_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert_file = write(dir.path(), "cert.pem", &cert.cert.pem());
    let key_file = write(dir.path(), "key.pem", &cert.signing_key.serialize_pem());
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = write(
        dir.path(),
        "kura.hcl",
        &format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    let server = Server::start(&cfg, &addr, dir.path().join("log"));
    let out = std::process::Command::new(kura_bin())
        .args([
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ])
        .env("VAULT_ADDR", format!("https://{addr}"))
        .env("VAULT_CACERT", &cert_file)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        init["unseal_keys_b64"]
            .as_array()
            .map(|a| a.len())
            .or(init["keys_base64"].as_array().map(|a| a.len())),
        Some(1)
    );
    // Plain HTTP to a TLS listener gets no API answer.
    let plain = std::net::TcpStream::connect(&addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        Ok(buf)
    });
    assert!(!String::from_utf8_lossy(&plain.unwrap_or_default()).contains("initialized"));
}
