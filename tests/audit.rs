//! Audit devices end to end: declared in the config file, HMAC'd entries with no plaintext
//! secrets, fail-closed when the only device cannot write, reopened on SIGHUP (log rotation).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{free_port, Server};
use serde_json::{json, Value};

fn config(dir: &Path, addr: &str, log: &Path) -> std::path::PathBuf {
    let p = dir.join("kura.hcl");
    std::fs::write(
        &p,
        format!(
            r#"
storage "inmem" {{}}
listener "tcp" {{
  address     = "{addr}"
  tls_disable = true
}}
audit "file" "file-audit" {{
  description = "test log"
  options {{
    file_path = "{}"
  }}
}}
"#,
            log.display()
        ),
    )
    .unwrap();
    p
}

fn sighup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn audit_log_has_no_plaintext_secrets_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("audit.log");
    let cfg = config(dir.path(), &addr, &log);
    let server = Server::start(&cfg, &addr, dir.path().join("server.log"));
    let (_, root) = server.init_unseal(1, 1);

    let password = "pw-3f9a61c2-correct-horse";
    let secret = "secret-value-77d1e0b4";
    let (s, _) = server.call(
        "POST",
        "/v1/sys/auth/userpass",
        &root,
        Some(&json!({"type": "userpass"})),
    );
    assert_eq!(s, 204);
    let (s, _) = server.call(
        "POST",
        "/v1/auth/userpass/users/alice",
        &root,
        Some(&json!({"password": password, "token_policies": "default"})),
    );
    assert_eq!(s, 204);
    let (s, login) = server.call(
        "POST",
        "/v1/auth/userpass/login/alice",
        "",
        Some(&json!({"password": password})),
    );
    assert_eq!(s, 200, "{login}");
    let user_token = login["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _) = server.call(
        "POST",
        "/v1/auth/userpass/login/alice",
        "",
        Some(&json!({"password": "wrong"})),
    );
    assert_eq!(s, 400, "wrong password");
    server.call(
        "POST",
        "/v1/sys/mounts/secret",
        &root,
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    let (s, _) = server.call(
        "POST",
        "/v1/secret/data/app",
        &root,
        Some(&json!({"data": {"value": secret}})),
    );
    assert_eq!(s, 200);
    let (s, _) = server.call("GET", "/v1/secret/data/app", &root, None);
    assert_eq!(s, 200);

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(entries.iter().any(|e| e["type"] == "request"));
    assert!(entries.iter().any(|e| e["type"] == "response"));
    for needle in [password, secret, &user_token, &root] {
        assert!(
            !text.contains(needle),
            "{needle:?} in plaintext in the audit log"
        );
    }
    // sys/audit-hash computes the hash the log uses.
    let (s, h) = server.call(
        "POST",
        "/v1/sys/audit-hash/file-audit",
        &root,
        Some(&json!({"input": secret})),
    );
    assert_eq!(s, 200, "{h}");
    let hash = h["data"]["hash"].as_str().unwrap();
    assert!(
        hash.starts_with("hmac-sha256:") && text.contains(hash),
        "hash {hash} in the log"
    );
    let (_, list) = server.call("GET", "/v1/sys/audit", &root, None);
    assert_eq!(list["data"]["file-audit/"]["type"], "file");
    // Enabling through the API is refused without unsafe_allow_api_audit_creation.
    let (s, _) = server.call(
        "POST",
        "/v1/sys/audit/other",
        &root,
        Some(&json!({"type": "file", "options": {"file_path": "/tmp/x"}})),
    );
    assert_eq!(s, 400);

    // Log rotation: rename, SIGHUP, new lines go to a new file at file_path.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    sighup(&server);
    server.call("GET", "/v1/sys/mounts", &root, None);
    assert!(log.exists(), "reopened at file_path after SIGHUP");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("sys/mounts"));

    // Fail closed: the only device cannot write → requests are refused and change nothing.
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    sighup(&server);
    let (s, _) = server.call(
        "POST",
        "/v1/secret/data/blocked",
        &root,
        Some(&json!({"data": {"v": 1}})),
    );
    assert_eq!(s, 500, "request refused when nothing can record it");
    std::fs::remove_dir(&log).unwrap();
    sighup(&server);
    let (s, _) = server.call("GET", "/v1/secret/data/blocked", &root, None);
    assert_eq!(s, 404, "the refused write did not happen");
    let (s, _) = server.call("GET", "/v1/secret/data/app", &root, None);
    assert_eq!(s, 200, "the device recovers once its file can be written");
}
