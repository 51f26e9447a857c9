//! End-to-end tests of the `kura` client commands against a real dev server.
//!
//! By default the server is `kura server -dev`; set `KURA_TEST_SERVER_BIN` to another binary
//! speaking the same CLI (for example `bao`) to run the same tests against it. The server is
//! started on a free loopback port with root token `root` and killed when the test ends.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KURA: &str = env!("CARGO_BIN_EXE_kura");

/// A dev server process, killed on drop.
struct DevServer {
    child: Child,
    addr: String,
    home: tempfile::TempDir,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl DevServer {
    fn start() -> DevServer {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let custom = std::env::var("KURA_TEST_SERVER_BIN")
            .ok()
            .filter(|s| !s.is_empty());
        let mut words: Vec<String> = match &custom {
            Some(c) => c.split_whitespace().map(str::to_string).collect(),
            None => vec![KURA.to_string()],
        };
        let program = words.remove(0);
        let home = tempfile::tempdir().expect("temp home");
        let child = Command::new(&program)
            .args(&words)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address={addr}"),
            ])
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start server {program}: {e}"));
        let server = DevServer {
            child,
            addr: format!("http://{addr}"),
            home,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if server.kura(&["status"]).status.code() == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server at {} did not come up",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// Runs `kura ARGS` against this server as root.
    fn kura(&self, args: &[&str]) -> Output {
        self.kura_with(args, Some("root"), None)
    }

    /// Runs `kura ARGS` with an optional token and stdin.
    fn kura_with(&self, args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(KURA);
        cmd.args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("HOME", self.home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for v in [
            "KURA_ADDR",
            "BAO_ADDR",
            "KURA_TOKEN",
            "BAO_TOKEN",
            "VAULT_TOKEN",
            "KURA_FORMAT",
            "BAO_FORMAT",
            "VAULT_FORMAT",
            "KURA_NAMESPACE",
            "BAO_NAMESPACE",
            "VAULT_NAMESPACE",
        ] {
            cmd.env_remove(v);
        }
        if let Some(t) = token {
            cmd.env("VAULT_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("run kura");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kura output")
    }

    fn home(&self) -> &Path {
        self.home.path()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code and returns stdout.
fn ok(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(o: Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn status_and_mounts() {
    let s = DevServer::start();
    let out = ok(s.kura(&["status"]));
    assert!(out.starts_with("Key "), "{out}");
    assert!(out.contains("Sealed          false"), "{out}");
    let st = json(s.kura(&["status", "-format=json"]));
    assert_eq!(st["sealed"], Value::Bool(false));
    assert_eq!(st["initialized"], Value::Bool(true));

    let out = ok(s.kura(&["secrets", "enable", "-path=kv1", "-description=first", "kv"]));
    assert_eq!(out, "Success! Enabled the kv secrets engine at: kv1/\n");
    let o = s.kura(&["secrets", "enable", "-path=kv1", "kv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("Error enabling: Error making API request."),
        "{}",
        stderr(&o)
    );
    ok(s.kura(&["secrets", "enable", "-path=kv2", "-version=2", "kv"]));
    let mounts = json(s.kura(&["secrets", "list", "-format=json"]));
    assert_eq!(mounts["kv1/"]["description"], "first");
    assert_eq!(mounts["kv2/"]["options"]["version"], "2");
    let table = ok(s.kura(&["secrets", "list"]));
    assert!(
        table.lines().next().unwrap().starts_with("Path "),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("kv1/") && l.contains("first")),
        "{table}"
    );

    ok(s.kura(&["secrets", "tune", "-default-lease-ttl=1h", "kv1"]));
    let tune = json(s.kura(&["read", "-format=json", "sys/mounts/kv1/tune"]));
    assert_eq!(tune["data"]["default_lease_ttl"], 3600);

    let out = ok(s.kura(&["secrets", "disable", "kv1"]));
    assert_eq!(
        out,
        "Success! Disabled the secrets engine (if it existed) at: kv1/\n"
    );
    let mounts = json(s.kura(&["secrets", "list", "-format=json"]));
    assert!(mounts.get("kv1/").is_none());

    let ks = json(s.kura(&["operator", "key-status", "-format=json"]));
    let term = ks["term"].as_i64().expect("term");
    ok(s.kura(&["operator", "rotate"]));
    let ks = json(s.kura(&["operator", "key-status", "-format=json"]));
    assert_eq!(ks["term"].as_i64(), Some(term + 1));
}

#[test]
fn auth_enable_list_disable() {
    let s = DevServer::start();
    let auths = json(s.kura(&["auth", "list", "-format=json"]));
    assert_eq!(auths["token/"]["type"], "token");
    let out = ok(s.kura(&[
        "auth",
        "enable",
        "-path=up",
        "-description=people",
        "userpass",
    ]));
    assert_eq!(out, "Success! Enabled userpass auth method at: up/\n");
    let auths = json(s.kura(&["auth", "list", "-format=json"]));
    assert_eq!(auths["up/"]["type"], "userpass");
    assert_eq!(auths["up/"]["description"], "people");
    let out = ok(s.kura(&["auth", "disable", "up"]));
    assert_eq!(
        out,
        "Success! Disabled the auth method (if it existed) at: up/\n"
    );
    let auths = json(s.kura(&["auth", "list", "-format=json"]));
    assert!(auths.get("up/").is_none());
}

#[test]
fn generic_write_read_list_delete() {
    let s = DevServer::start();
    ok(s.kura(&["secrets", "enable", "-path=v1", "kv"]));
    let out = ok(s.kura(&["write", "v1/app", "user=alice", "tags=a", "tags=b"]));
    assert_eq!(out, "Success! Data written to: v1/app\n");
    let o = s.kura(&["write", "v1/app"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Must supply data or use -force\n");

    let v = json(s.kura(&["read", "-format=json", "v1/app"]));
    assert_eq!(v["data"]["user"], "alice");
    assert_eq!(v["data"]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(ok(s.kura(&["read", "-field=user", "v1/app"])), "alice");
    let table = ok(s.kura(&["read", "v1/app"]));
    assert!(table.contains("tags                [a b]"), "{table}");

    ok(s.kura_with(
        &["write", "v1/piped", "-"],
        Some("root"),
        Some(r#"{"k": "from-stdin"}"#),
    ));
    assert_eq!(ok(s.kura(&["read", "-field=k", "v1/piped"])), "from-stdin");

    let list = json(s.kura(&["list", "-format=json", "v1"]));
    assert_eq!(list, serde_json::json!(["app", "piped"]));
    assert_eq!(ok(s.kura(&["list", "v1"])), "Keys\n----\napp\npiped\n");

    let out = ok(s.kura(&["delete", "v1/app"]));
    assert_eq!(out, "Success! Data deleted (if it existed) at: v1/app\n");
    let o = s.kura(&["read", "v1/app"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "No value found at v1/app\n");
    let o = s.kura(&["list", "v1/nothing"]);
    assert_eq!(o.status.code(), Some(2));

    let o = s.kura_with(&["read", "v1/piped"], Some("not-a-token"), None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Code: 403"), "{}", stderr(&o));
}

#[test]
fn kv_v2_workflow() {
    let s = DevServer::start();
    // The dev server mounts kv v2 at secret/.
    let out = ok(s.kura(&["kv", "put", "secret/app", "password=one", "user=bob"]));
    assert!(
        out.starts_with("= Secret Path =\nsecret/data/app\n"),
        "{out}"
    );
    assert!(out.contains("version            1"), "{out}");
    ok(s.kura(&["kv", "put", "-mount=secret", "app", "password=two"]));
    assert_eq!(
        ok(s.kura(&["kv", "get", "-field=password", "secret/app"])),
        "two"
    );
    assert_eq!(
        ok(s.kura(&["kv", "get", "-version=1", "-field=password", "secret/app"])),
        "one"
    );
    let got = ok(s.kura(&["kv", "get", "secret/app"]));
    assert!(got.contains("======= Metadata ======="), "{got}");
    assert!(
        got.contains("====== Data ======\nKey         Value\n---         -----\npassword    two\n"),
        "{got}"
    );

    // patch keeps the other keys, and -remove-data drops one.
    ok(s.kura(&["kv", "patch", "secret/app", "user=carol", "extra=x"]));
    let v = json(s.kura(&["kv", "get", "-format=json", "secret/app"]));
    assert_eq!(
        v["data"]["data"],
        serde_json::json!({"extra": "x", "password": "two", "user": "carol"})
    );
    assert_eq!(v["data"]["metadata"]["version"], 3);
    ok(s.kura(&["kv", "patch", "-remove-data=extra", "secret/app"]));
    let v = json(s.kura(&["kv", "get", "-format=json", "secret/app"]));
    assert!(v["data"]["data"].get("extra").is_none());

    // list, delete, undelete, rollback, destroy.
    ok(s.kura(&["kv", "put", "secret/dir/inner", "a=1"]));
    let keys = json(s.kura(&["kv", "list", "-format=json", "secret"]));
    assert_eq!(keys, serde_json::json!(["app", "dir/"]));
    let out = ok(s.kura(&["kv", "delete", "secret/app"]));
    assert_eq!(
        out,
        "Success! Data deleted (if it existed) at: secret/data/app\n"
    );
    let o = s.kura(&["kv", "get", "-field=password", "secret/app"]);
    assert_eq!(o.status.code(), Some(2));
    ok(s.kura(&["kv", "undelete", "-versions=4", "secret/app"]));
    assert_eq!(
        ok(s.kura(&["kv", "get", "-field=password", "secret/app"])),
        "two"
    );
    let out = ok(s.kura(&["kv", "rollback", "-version=1", "secret/app"]));
    assert!(out.contains("version"), "{out}");
    assert_eq!(
        ok(s.kura(&["kv", "get", "-field=password", "secret/app"])),
        "one"
    );
    ok(s.kura(&["kv", "destroy", "-versions=2", "secret/app"]));
    let meta = json(s.kura(&["kv", "metadata", "get", "-format=json", "secret/app"]));
    assert_eq!(
        meta["data"]["versions"]["2"]["destroyed"],
        Value::Bool(true)
    );
    assert_eq!(meta["data"]["current_version"], 5);

    // metadata put / get / delete.
    ok(s.kura(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=3",
        "-custom-metadata=owner=ops",
        "secret/app",
    ]));
    let meta = ok(s.kura(&["kv", "metadata", "get", "secret/app"]));
    assert!(
        meta.starts_with("== Metadata Path ==\nsecret/metadata/app\n"),
        "{meta}"
    );
    assert!(
        meta.lines()
            .any(|l| l.starts_with("max_versions ") && l.ends_with(" 3")),
        "{meta}"
    );
    assert!(meta.contains("map[owner:ops]"), "{meta}");
    ok(s.kura(&["kv", "metadata", "delete", "secret/app"]));
    let o = s.kura(&["kv", "get", "secret/app"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "No value found at secret/data/app\n");

    // kv v1 through the same commands.
    ok(s.kura(&["secrets", "enable", "-path=old", "kv"]));
    ok(s.kura(&["kv", "put", "old/x", "k=v"]));
    assert_eq!(ok(s.kura(&["kv", "get", "-field=k", "old/x"])), "v");
    let o = s.kura(&["kv", "undelete", "-versions=1", "old/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Undelete not supported on KV Version 1\n");
}

#[test]
fn policies_tokens_and_login() {
    let s = DevServer::start();
    let policy = "path \"secret/data/shared/*\" {\n  capabilities = [\"read\"]\n}\n";
    let file = s.home().join("p.hcl");
    std::fs::write(&file, policy).expect("write policy file");
    let out = ok(s.kura(&[
        "policy",
        "write",
        "reader",
        file.to_str().expect("utf-8 path"),
    ]));
    assert_eq!(out, "Success! Uploaded policy: reader\n");
    ok(s.kura_with(
        &["policy", "write", "other", "-"],
        Some("root"),
        Some(policy),
    ));
    assert_eq!(ok(s.kura(&["policy", "read", "reader"])), policy);
    let names = json(s.kura(&["policy", "list", "-format=json"]));
    assert_eq!(
        names,
        serde_json::json!(["default", "other", "reader", "root"])
    );
    ok(s.kura(&["policy", "delete", "other"]));
    let o = s.kura(&["policy", "read", "other"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "No policy named: other\n");

    // A token limited to the reader policy.
    ok(s.kura(&["kv", "put", "secret/shared/x", "v=1"]));
    ok(s.kura(&["kv", "put", "secret/private", "v=2"]));
    let created = json(s.kura(&[
        "token",
        "create",
        "-format=json",
        "-policy=reader",
        "-ttl=1h",
        "-metadata=team=a",
        "-display-name=ci",
    ]));
    let token = created["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    let accessor = created["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_string();
    assert_eq!(created["auth"]["lease_duration"], 3600);
    assert_eq!(created["auth"]["metadata"]["team"], "a");
    let table = ok(s.kura(&["token", "create", "-policy=reader"]));
    assert!(
        table.contains("token_policies       [\"default\" \"reader\"]"),
        "{table}"
    );

    let looked = json(s.kura(&["token", "lookup", "-format=json", &token]));
    assert_eq!(looked["data"]["display_name"], "token-ci");
    let by_acc = json(s.kura(&["token", "lookup", "-format=json", "-accessor", &accessor]));
    assert_eq!(by_acc["data"]["accessor"], accessor.as_str());
    let o = s.kura_with(
        &["kv", "get", "-field=v", "secret/shared/x"],
        Some(&token),
        None,
    );
    assert_eq!(stdout(&o), "1", "{}", stderr(&o));
    let o = s.kura_with(&["kv", "get", "secret/private"], Some(&token), None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let renewed = json(s.kura(&["token", "renew", "-format=json", "-increment=30m", &token]));
    assert_eq!(renewed["auth"]["lease_duration"], 1800);

    // login stores the token in ~/.vault-token and later commands use it.
    let out = ok(s.kura_with(&["login", &token], None, None));
    assert!(
        out.starts_with("Success! You are now authenticated."),
        "{out}"
    );
    let stored = std::fs::read_to_string(s.home().join(".vault-token")).expect("token file");
    assert_eq!(stored, token);
    let o = s.kura_with(&["kv", "get", "-field=v", "secret/shared/x"], None, None);
    assert_eq!(stdout(&o), "1", "{}", stderr(&o));
    let o = s.kura_with(&["login", "not-a-token"], None, None);
    assert_eq!(o.status.code(), Some(2));

    let out = ok(s.kura(&["token", "revoke", &token]));
    assert_eq!(out, "Success! Revoked token (if it existed)\n");
    let o = s.kura(&["token", "lookup", &token]);
    assert_eq!(o.status.code(), Some(2));
    let other = json(s.kura(&["token", "create", "-format=json"]));
    let other_acc = other["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_string();
    ok(s.kura(&["token", "revoke", "-accessor", &other_acc]));
    let o = s.kura(&["token", "lookup", "-accessor", &other_acc]);
    assert_eq!(o.status.code(), Some(2));
    let o = s.kura(&["token", "revoke", "-self", "-accessor"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Cannot use -self with -accessor!\n");
}
