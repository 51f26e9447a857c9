//! Drives a real server with the real `bao` CLI (OpenBao 2.7.2).
//!
//! The server under test is `target/debug/kura` by default, or the executable named by
//! `KURA_TEST_SERVER_BIN` (for example `.venv/bin/bao`, to check these tests against the
//! reference implementation). The client is always the real `bao` binary: `KURA_TEST_BAO_BIN`,
//! else `$ROOT/.venv/bin/bao` (installed by `scripts/install-test-deps`), else `bao` on PATH.
//! Without a `bao` client each test prints a SKIPPED line and returns; when `CI` or
//! `KURA_TEST_REQUIRE_BAO` is set, a missing client fails the tests instead.
//!
//! Run against the reference: `KURA_TEST_SERVER_BIN=.venv/bin/bao cargo test --test bao_cli`.

use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// Root token id given to dev-mode servers.
const DEV_ROOT_TOKEN: &str = "root";
/// How long a server gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The package root (where `.venv` lives).
fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Find an executable by name on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Resolve a user-supplied executable: a path (relative to the package root) or a bare name.
fn resolve_exe(spec: &str) -> PathBuf {
    let p = PathBuf::from(spec);
    if p.is_absolute() {
        return p;
    }
    if spec.contains('/') {
        return manifest_dir().join(p);
    }
    which(spec)
        .or_else(|| {
            let venv = manifest_dir().join(".venv/bin").join(spec);
            venv.is_file().then_some(venv)
        })
        .unwrap_or(p)
}

/// The `bao` client, or `None` (after printing why) when it is not installed.
fn bao_client(test: &str) -> Option<PathBuf> {
    let found = match env::var("KURA_TEST_BAO_BIN") {
        Ok(spec) => Some(resolve_exe(&spec)).filter(|p| p.is_file()),
        Err(_) => {
            let venv = manifest_dir().join(".venv/bin/bao");
            if venv.is_file() {
                Some(venv)
            } else {
                which("bao")
            }
        }
    };
    if found.is_none() {
        let msg = format!(
            "bao_cli::{test}: the `bao` CLI is not installed (run scripts/install-test-deps)"
        );
        if env::var_os("CI").is_some() || env::var_os("KURA_TEST_REQUIRE_BAO").is_some() {
            panic!("{msg}");
        }
        // Written straight to the process's stderr (not `eprintln!`, which the test harness
        // captures) so the skip shows up in a normal `cargo test` run.
        let _ = writeln!(std::io::stderr(), "SKIPPED {msg}");
    }
    found
}

/// The server executable under test.
fn server_binary() -> PathBuf {
    match env::var("KURA_TEST_SERVER_BIN") {
        Ok(spec) => resolve_exe(&spec),
        Err(_) => PathBuf::from(env!("CARGO_BIN_EXE_kura")),
    }
}

/// A free TCP port on 127.0.0.1 (released before the server binds it; start-up retries cover
/// the small race).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Send one plain-HTTP GET and return (status, body), or `None` if nothing answered.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// How a test server is started.
enum Mode {
    /// `server -dev` with a known root token.
    Dev,
    /// `server -config=FILE` with the given storage stanza (`{dir}` is the server's data dir).
    Config(&'static str),
}

/// A server process that is killed when dropped.
struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Start a server and wait until it answers `sys/seal-status` (dev: until unsealed).
    fn start(mode: Mode) -> Server {
        let bin = server_binary();
        assert!(
            bin.is_file(),
            "server binary {} not found (set KURA_TEST_SERVER_BIN)",
            bin.display()
        );
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let args: Vec<String> = match mode {
                Mode::Dev => vec![
                    "server".into(),
                    "-dev".into(),
                    format!("-dev-root-token-id={DEV_ROOT_TOKEN}"),
                    format!("-dev-listen-address={addr}"),
                ],
                Mode::Config(storage) => {
                    let data = dir.path().join("data");
                    fs::create_dir_all(&data).expect("data dir");
                    let storage = storage.replace("{dir}", &data.display().to_string());
                    let cluster_port = free_port();
                    let config = format!(
                        "{storage}\n\
                         listener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n\
                         api_addr = \"http://{addr}\"\n\
                         cluster_addr = \"https://127.0.0.1:{cluster_port}\"\n"
                    );
                    let path = dir.path().join("server.hcl");
                    fs::write(&path, config).expect("write config");
                    vec!["server".into(), format!("-config={}", path.display())]
                }
            };
            let log = dir.path().join("server.log");
            let out = fs::File::create(&log).expect("log file");
            let err = out.try_clone().expect("log file");
            let child = Command::new(&bin)
                .args(&args)
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let mut server = Server {
                child,
                addr,
                dir,
                log,
            };
            if server.wait_listening(matches!(mode, Mode::Dev)) {
                return server;
            }
            last_log = server.log_tail();
        }
        panic!(
            "server {} did not start; last log:\n{last_log}",
            bin.display()
        );
    }

    /// Poll until the server answers (and, for dev servers, reports itself unsealed).
    fn wait_listening(&mut self, want_unsealed: bool) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some((200, body)) = http_get(&self.addr, "/v1/sys/seal-status") {
                let sealed = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["sealed"].as_bool());
                if !want_unsealed || sealed == Some(false) {
                    return true;
                }
            }
            sleep(Duration::from_millis(100));
        }
        false
    }

    /// The last part of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        let bytes = fs::read(&self.log).unwrap_or_default();
        let start = bytes.len().saturating_sub(4000);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// A `bao` client aimed at this server.
    fn client<'a>(&'a self, bao: &Path) -> Bao<'a> {
        Bao {
            bin: bao.to_path_buf(),
            server: self,
            token: None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one `bao` invocation.
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Describe this run for assertion messages.
    fn describe(&self) -> String {
        format!(
            "`bao {}` exited {}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Assert the exit code.
    fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "{}", self.describe());
        self
    }

    /// Parse stdout as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// A `bao` client bound to one server, with an optional token.
struct Bao<'a> {
    bin: PathBuf,
    server: &'a Server,
    token: Option<String>,
}

impl<'a> Bao<'a> {
    /// The same client with another token.
    fn with_token(&self, token: &str) -> Bao<'a> {
        Bao {
            bin: self.bin.clone(),
            server: self.server,
            token: Some(token.to_string()),
        }
    }

    /// Run `bao ARGS` with optional stdin and return its exit code and output.
    fn run_input(&self, args: &[&str], input: Option<&str>) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        for (key, _) in env::vars_os() {
            let key = key.to_string_lossy().to_string();
            if key.starts_with("BAO_") || key.starts_with("VAULT_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("BAO_ADDR", format!("http://{}", self.server.addr))
            .env("BAO_MAX_RETRIES", "0")
            .env("BAO_CLIENT_TIMEOUT", "30s")
            .env("HOME", self.server.dir.path())
            .env("NO_COLOR", "1");
        if let Some(token) = &self.token {
            cmd.env("BAO_TOKEN", token);
        }
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait for bao");
        Run {
            args: args.join(" "),
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Run `bao ARGS`.
    fn run(&self, args: &[&str]) -> Run {
        self.run_input(args, None)
    }

    /// Run `bao ARGS`, require success (exit 0) and return the run.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "{}\nserver log tail:\n{}",
            run.describe(),
            self.server.log_tail()
        );
        run
    }

    /// Run `bao ARGS -format=json` (the flag is inserted after the sub-command words),
    /// require success and parse the output.
    fn json(&self, args: &[&str]) -> Value {
        self.ok(&with_json(args)).json()
    }

    /// `bao status -format=json`, any exit code.
    fn status(&self) -> (i32, Value) {
        let run = self.run(&["status", "-format=json"]);
        let json = run.json();
        (run.code, json)
    }

    /// Wait until the server is unsealed and, when it is HA-enabled, active.
    fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, st) = self.status();
            let ha = st["ha_enabled"].as_bool().unwrap_or(false);
            if st["sealed"] == Value::Bool(false) && (!ha || st["is_self"] == Value::Bool(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server never became active: {st}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

/// Words that name `bao` sub-commands in the invocations these tests make.
const COMMAND_WORDS: &[&str] = &[
    "kv", "put", "get", "patch", "list", "delete", "undelete", "rollback", "destroy", "metadata",
    "token", "create", "lookup", "renew", "revoke", "policy", "write", "read", "secrets", "enable",
    "operator", "init", "unseal", "seal", "status", "auth",
];

/// Insert `-format=json` after the leading sub-command words (flags must precede arguments).
fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let words = args
        .iter()
        .take_while(|a| COMMAND_WORDS.contains(a))
        .count();
    let mut out = args[..words].to_vec();
    out.push("-format=json");
    out.extend_from_slice(&args[words..]);
    out
}

/// Start a dev server and return it with a root-token client, or `None` when `bao` is missing.
fn dev(test: &str) -> Option<(Server, PathBuf)> {
    let bao = bao_client(test)?;
    Some((Server::start(Mode::Dev), bao))
}

/// A value at a JSON pointer, with a readable failure.
fn field<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {v:#}"))
}

/// A string at a JSON pointer, with a readable failure.
fn str_of<'v>(v: &'v Value, pointer: &str) -> &'v str {
    field(v, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string in {v:#}"))
}

/// A JSON array of strings as a `Vec<String>`.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn status_of_a_dev_server() {
    let Some((server, bao)) = dev("status_of_a_dev_server") else {
        return;
    };
    let cli = server.client(&bao);
    let (code, st) = cli.status();
    assert_eq!(code, 0, "unsealed server: `bao status` exits 0: {st}");
    assert_eq!(st["initialized"], Value::Bool(true), "{st}");
    assert_eq!(st["sealed"], Value::Bool(false), "{st}");
    assert_eq!(st["type"], "shamir", "{st}");
    assert_eq!(
        (st["t"].as_u64(), st["n"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
    assert!(
        st["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{st}"
    );

    // The table form reports the same state.
    let text = cli.ok(&["status"]).stdout;
    let sealed_line = text
        .lines()
        .find(|l| l.starts_with("Sealed"))
        .unwrap_or_else(|| panic!("no Sealed line in:\n{text}"));
    assert_eq!(sealed_line.split_whitespace().last(), Some("false"));

    // `operator init -status` exits 0 for an initialized server.
    cli.run(&["operator", "init", "-status"]).expect_code(0);
    // The dev root token works.
    let me = cli.with_token(DEV_ROOT_TOKEN).json(&["token", "lookup"]);
    assert_eq!(strings(field(&me, "/data/policies")), vec!["root"]);
}

/// Init with 3 shares / threshold 2, reject bad keys, unseal with hex keys, seal, unseal with
/// base64 keys.
fn init_and_unseal(test: &str, storage: &'static str) {
    let Some(bao) = bao_client(test) else {
        return;
    };
    let server = Server::start(Mode::Config(storage));
    let cli = server.client(&bao);

    let (code, st) = cli.status();
    assert_eq!(code, 2, "sealed server: `bao status` exits 2: {st}");
    assert_eq!(st["initialized"], Value::Bool(false), "{st}");
    assert_eq!(st["sealed"], Value::Bool(true), "{st}");
    cli.run(&["operator", "init", "-status"]).expect_code(2);

    let init = cli.json(&["operator", "init", "-key-shares=3", "-key-threshold=2"]);
    let hex_keys = strings(field(&init, "/unseal_keys_hex"));
    let b64_keys = strings(field(&init, "/unseal_keys_b64"));
    assert_eq!((hex_keys.len(), b64_keys.len()), (3, 3), "{init:#}");
    assert_eq!(init["unseal_shares"], 3, "{init:#}");
    assert_eq!(init["unseal_threshold"], 2, "{init:#}");
    for (h, b) in hex_keys.iter().zip(&b64_keys) {
        let from_hex = hex::decode(h).expect("hex key");
        let from_b64 = base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64 key");
        assert_eq!(
            from_hex, from_b64,
            "hex and base64 forms of one share differ"
        );
        // 32-byte key plus the one-byte x coordinate.
        assert_eq!(from_hex.len(), 33, "share length");
    }
    let root = str_of(&init, "/root_token").to_string();
    assert!(!root.is_empty());

    // A second init is refused.
    let again = cli.run(&["operator", "init", "-key-shares=3", "-key-threshold=2"]);
    assert_ne!(again.code, 0, "{}", again.describe());
    cli.run(&["operator", "init", "-status"]).expect_code(0);

    let (code, st) = cli.status();
    assert_eq!(code, 2, "{st}");
    assert_eq!(st["initialized"], Value::Bool(true), "{st}");
    assert_eq!(st["sealed"], Value::Bool(true), "{st}");
    assert_eq!(
        (st["t"].as_u64(), st["n"].as_u64()),
        (Some(2), Some(3)),
        "{st}"
    );
    assert_eq!(st["progress"], 0, "{st}");

    // Malformed keys are rejected without counting towards progress.
    cli.run(&["operator", "unseal", "not-a-key"]).expect_code(2);
    cli.run(&["operator", "unseal", "00112233"]).expect_code(2);
    assert_eq!(cli.status().1["progress"], 0);

    // A well-formed but wrong share: accepted as progress, then the combination fails and the
    // attempt is reset.
    let mut bogus = hex::decode(&hex_keys[1]).expect("hex");
    bogus[0] ^= 0xff;
    let first = cli.json(&["operator", "unseal", &hex_keys[0]]);
    assert_eq!(first["sealed"], Value::Bool(true), "{first}");
    assert_eq!(first["progress"], 1, "{first}");
    cli.run(&["operator", "unseal", &hex::encode(&bogus)])
        .expect_code(2);
    let (code, st) = cli.status();
    assert_eq!(code, 2, "wrong key must not unseal: {st}");
    assert_eq!(st["sealed"], Value::Bool(true), "{st}");
    assert_eq!(st["progress"], 0, "failed attempt resets progress: {st}");

    // -reset discards a started attempt.
    cli.json(&["operator", "unseal", &hex_keys[2]]);
    let reset = cli.json(&["operator", "unseal", "-reset"]);
    assert_eq!(reset["progress"], 0, "{reset}");

    // Unseal with hex keys.
    cli.json(&["operator", "unseal", &hex_keys[0]]);
    let done = cli.json(&["operator", "unseal", &hex_keys[2]]);
    assert_eq!(done["sealed"], Value::Bool(false), "{done}");
    cli.wait_active();
    cli.run(&["status"]).expect_code(0);
    let admin = cli.with_token(&root);
    let me = admin.json(&["token", "lookup"]);
    assert_eq!(strings(field(&me, "/data/policies")), vec!["root"]);

    // Seal, then unseal with base64 keys.
    admin.ok(&["operator", "seal"]);
    let (code, st) = cli.status();
    assert_eq!((code, &st["sealed"]), (2, &Value::Bool(true)), "{st}");
    // A sealed server refuses requests.
    assert_ne!(admin.run(&["token", "lookup"]).code, 0);
    let half = cli.json(&["operator", "unseal", &b64_keys[1]]);
    assert_eq!(half["progress"], 1, "{half}");
    let done = cli.json(&["operator", "unseal", &b64_keys[2]]);
    assert_eq!(done["sealed"], Value::Bool(false), "{done}");
    cli.wait_active();
    // The data written before sealing (the root token) survived.
    admin.ok(&["token", "lookup"]);
}

#[test]
fn init_and_unseal_inmem() {
    init_and_unseal("init_and_unseal_inmem", "storage \"inmem\" {}");
}

#[test]
fn init_and_unseal_raft() {
    init_and_unseal(
        "init_and_unseal_raft",
        "storage \"raft\" {\n  path = \"{dir}\"\n  node_id = \"node1\"\n}",
    );
}

#[test]
fn raft_snapshot_save_restore_and_step_down_with_bao() {
    let Some(bao) = bao_client("raft_snapshot_save_restore_and_step_down_with_bao") else {
        return;
    };
    let server = Server::start(Mode::Config(
        "storage \"raft\" {\n  path = \"{dir}\"\n  node_id = \"node1\"\n}",
    ));
    let cli = server.client(&bao);
    let init = cli.json(&["operator", "init", "-key-shares=1", "-key-threshold=1"]);
    let key = strings(field(&init, "/unseal_keys_b64"))[0].clone();
    let root = str_of(&init, "/root_token").to_string();
    cli.json(&["operator", "unseal", &key]);
    cli.wait_active();
    let admin = cli.with_token(&root);
    admin.ok(&["secrets", "enable", "-path=secret", "kv-v2"]);
    admin.ok(&["kv", "put", "secret/app", "v=in-snapshot"]);

    // bao checks the archive it receives (a gzip'd tar ending in SHA256SUMS.sealed).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raft.snap");
    let file = file.to_str().unwrap();
    admin.ok(&["operator", "raft", "snapshot", "save", file]);
    admin.ok(&["kv", "put", "secret/app", "v=later"]);
    admin.ok(&["operator", "raft", "snapshot", "restore", file]);
    let got = admin.json(&["kv", "get", "secret/app"]);
    assert_eq!(field(&got, "/data/data/v"), "in-snapshot", "{got}");

    // A single node steps down and, with nobody to take over, becomes active again.
    admin.ok(&["operator", "step-down"]);
    cli.wait_active();
    admin.ok(&["kv", "get", "secret/app"]);
}

#[test]
fn kv_v2_lifecycle() {
    let Some((server, bao)) = dev("kv_v2_lifecycle") else {
        return;
    };
    let cli = server.client(&bao).with_token(DEV_ROOT_TOKEN);

    let v1 = cli.json(&["kv", "put", "secret/app", "user=alice", "pass=s3cret"]);
    assert_eq!(v1["data"]["version"], 1, "{v1}");
    let v2 = cli.json(&["kv", "put", "secret/app", "user=bob", "pass=p2"]);
    assert_eq!(v2["data"]["version"], 2, "{v2}");
    let v3 = cli.json(&["kv", "patch", "secret/app", "pass=p3"]);
    assert_eq!(v3["data"]["version"], 3, "{v3}");

    let got = cli.json(&["kv", "get", "secret/app"]);
    assert_eq!(
        got["data"]["data"],
        serde_json::json!({"user": "bob", "pass": "p3"})
    );
    assert_eq!(got["data"]["metadata"]["version"], 3);
    let user = cli.ok(&["kv", "get", "-version=1", "-field=user", "secret/app"]);
    assert_eq!(user.stdout.trim(), "alice");

    // Check-and-set: 0 means "only if absent".
    cli.run(&["kv", "put", "-cas=0", "secret/app", "x=1"])
        .expect_code(2);
    cli.json(&["kv", "put", "-cas=3", "secret/app", "user=bob", "pass=p4"]);

    cli.json(&["kv", "put", "secret/dir/one", "a=1"]);
    let mut keys = strings(&cli.json(&["kv", "list", "secret/"]));
    keys.sort();
    assert_eq!(keys, vec!["app", "dir/"]);
    assert_eq!(
        strings(&cli.json(&["kv", "list", "secret/dir"])),
        vec!["one"]
    );
    cli.run(&["kv", "list", "secret/nothing"]).expect_code(2);
    cli.run(&["kv", "get", "secret/nothing"]).expect_code(2);

    // Soft delete of the latest version (4), then undelete.
    cli.ok(&["kv", "delete", "secret/app"]);
    let deleted = cli.json(&["kv", "get", "secret/app"]);
    assert_eq!(deleted["data"]["data"], Value::Null, "{deleted}");
    assert_ne!(str_of(&deleted, "/data/metadata/deletion_time"), "");
    cli.ok(&["kv", "undelete", "-versions=4", "secret/app"]);
    let back = cli.json(&["kv", "get", "secret/app"]);
    assert_eq!(back["data"]["data"]["pass"], "p4", "{back}");
    assert_eq!(str_of(&back, "/data/metadata/deletion_time"), "");

    // Rollback writes version 1's data as a new version.
    let rolled = cli.json(&["kv", "rollback", "-version=1", "secret/app"]);
    assert_eq!(rolled["data"]["version"], 5, "{rolled}");
    let now = cli.json(&["kv", "get", "secret/app"]);
    assert_eq!(
        now["data"]["data"],
        serde_json::json!({"user": "alice", "pass": "s3cret"})
    );

    // Delete and destroy specific versions.
    cli.ok(&["kv", "delete", "-versions=2", "secret/app"]);
    let v2 = cli.json(&["kv", "get", "-version=2", "secret/app"]);
    assert_eq!(v2["data"]["data"], Value::Null, "{v2}");
    cli.ok(&["kv", "destroy", "-versions=1", "secret/app"]);
    let meta = cli.json(&["kv", "metadata", "get", "secret/app"]);
    assert_eq!(meta["data"]["current_version"], 5, "{meta}");
    assert_eq!(
        meta["data"]["versions"]["1"]["destroyed"],
        Value::Bool(true),
        "{meta}"
    );
    assert_ne!(str_of(&meta, "/data/versions/2/deletion_time"), "");
    assert_eq!(
        meta["data"]["versions"]["5"]["destroyed"],
        Value::Bool(false),
        "{meta}"
    );

    // Metadata delete removes every version.
    cli.ok(&["kv", "metadata", "delete", "secret/app"]);
    cli.run(&["kv", "get", "secret/app"]).expect_code(2);
}

#[test]
fn kv_v1_lifecycle() {
    let Some((server, bao)) = dev("kv_v1_lifecycle") else {
        return;
    };
    let cli = server.client(&bao).with_token(DEV_ROOT_TOKEN);
    cli.ok(&["secrets", "enable", "-version=1", "-path=kv1", "kv"]);
    let mounts = cli.json(&["secrets", "list"]);
    assert_eq!(mounts["kv1/"]["type"], "kv", "{mounts:#}");
    assert_eq!(mounts["kv1/"]["options"]["version"], "1", "{mounts:#}");

    cli.ok(&["kv", "put", "kv1/app", "a=1", "b=two"]);
    cli.ok(&["kv", "put", "kv1/sub/x", "c=3"]);
    let got = cli.json(&["kv", "get", "kv1/app"]);
    assert_eq!(got["data"], serde_json::json!({"a": "1", "b": "two"}));
    let mut keys = strings(&cli.json(&["kv", "list", "kv1/"]));
    keys.sort();
    assert_eq!(keys, vec!["app", "sub/"]);
    cli.ok(&["kv", "delete", "kv1/app"]);
    cli.run(&["kv", "get", "kv1/app"]).expect_code(2);
}

#[test]
fn policy_write_read_and_enforce() {
    let Some((server, bao)) = dev("policy_write_read_and_enforce") else {
        return;
    };
    let root = server.client(&bao).with_token(DEV_ROOT_TOKEN);
    root.json(&["kv", "put", "secret/shared/db", "password=hunter2"]);
    root.json(&["kv", "put", "secret/private/key", "k=v"]);

    let reader = "path \"secret/data/shared/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
    let file = server.dir.path().join("reader.hcl");
    fs::write(&file, reader).expect("policy file");
    root.ok(&["policy", "write", "reader", &file.display().to_string()]);
    let writer =
        "path \"secret/data/shared/*\" {\n  capabilities = [\"create\", \"update\", \"read\"]\n}\n";
    let run = root.run_input(&["policy", "write", "writer", "-"], Some(writer));
    assert_eq!(run.code, 0, "{}", run.describe());

    let mut names = strings(&root.json(&["policy", "list"]));
    names.sort();
    assert_eq!(names, vec!["default", "reader", "root", "writer"]);
    let read = root.json(&["policy", "read", "reader"]);
    assert_eq!(read["policy"], reader, "{read}");
    assert_eq!(
        root.ok(&["policy", "read", "writer"]).stdout.trim(),
        writer.trim()
    );

    let token = root.json(&["token", "create", "-policy=reader"]);
    let token = str_of(&token, "/auth/client_token").to_string();
    let user = root.with_token(&token);
    let secret = user.ok(&["kv", "get", "-field=password", "secret/shared/db"]);
    assert_eq!(secret.stdout.trim(), "hunter2");
    let denied = user.run(&["kv", "put", "secret/shared/db", "password=x"]);
    assert_eq!(denied.code, 2, "{}", denied.describe());
    assert!(denied.stderr.contains("Code: 403"), "{}", denied.describe());
    let denied = user.run(&["kv", "get", "secret/private/key"]);
    assert!(denied.stderr.contains("403"), "{}", denied.describe());

    // Policies are resolved at request time: deleting one takes effect at once.
    root.ok(&["policy", "delete", "reader"]);
    let gone = user.run(&["kv", "get", "secret/shared/db"]);
    assert!(
        gone.code != 0 && gone.stderr.contains("403"),
        "{}",
        gone.describe()
    );
    root.run(&["policy", "read", "reader"]).expect_code(2);
}

#[test]
fn userpass_and_approle_logins() {
    let Some((server, bao)) = dev("userpass_and_approle_logins") else {
        return;
    };
    let root = server.client(&bao).with_token(DEV_ROOT_TOKEN);

    // `bao login -method=userpass`.
    root.ok(&["auth", "enable", "userpass"]);
    root.ok(&[
        "write",
        "auth/userpass/users/alice",
        "password=s3cret",
        "token_policies=default",
    ]);
    let login = root
        .ok(&[
            "login",
            "-method=userpass",
            "-no-store",
            "-format=json",
            "username=alice",
            "password=s3cret",
        ])
        .json();
    let token = str_of(&login, "/auth/client_token").to_string();
    assert_eq!(
        strings(field(&login, "/auth/policies")),
        vec!["default".to_string()]
    );
    let me = root.with_token(&token).json(&["token", "lookup"]);
    assert_eq!(str_of(&me, "/data/path"), "auth/userpass/login/alice");
    let wrong = root.run(&[
        "login",
        "-method=userpass",
        "-no-store",
        "username=alice",
        "password=nope",
    ]);
    assert_eq!(wrong.code, 2, "{}", wrong.describe());

    // `bao write auth/approle/login`.
    root.ok(&["auth", "enable", "approle"]);
    root.ok(&["write", "auth/approle/role/app", "token_policies=default"]);
    let role_id = root.json(&["read", "auth/approle/role/app/role-id"]);
    let role_id = str_of(&role_id, "/data/role_id").to_string();
    let secret = root.json(&["write", "-f", "auth/approle/role/app/secret-id"]);
    let secret_id = str_of(&secret, "/data/secret_id").to_string();
    let login = root.json(&[
        "write",
        "auth/approle/login",
        &format!("role_id={role_id}"),
        &format!("secret_id={secret_id}"),
    ]);
    let token = str_of(&login, "/auth/client_token").to_string();
    root.with_token(&token).json(&["token", "lookup"]);
    let bad = root.run(&[
        "write",
        "auth/approle/login",
        &format!("role_id={role_id}"),
        "secret_id=not-the-secret",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.describe());
}

#[test]
fn token_create_lookup_renew_revoke() {
    let Some((server, bao)) = dev("token_create_lookup_renew_revoke") else {
        return;
    };
    let root = server.client(&bao).with_token(DEV_ROOT_TOKEN);

    // The parent may create child tokens.
    let creator = "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n";
    let run = root.run_input(&["policy", "write", "creator", "-"], Some(creator));
    assert_eq!(run.code, 0, "{}", run.describe());

    let created = root.json(&["token", "create", "-policy=creator", "-ttl=1h"]);
    let token = str_of(&created, "/auth/client_token").to_string();
    let accessor = str_of(&created, "/auth/accessor").to_string();
    assert_eq!(
        strings(field(&created, "/auth/policies")),
        vec!["creator", "default"]
    );
    assert_eq!(created["auth"]["lease_duration"], 3600, "{created}");
    assert_eq!(created["auth"]["renewable"], Value::Bool(true), "{created}");

    let look = root.json(&["token", "lookup", &token]);
    assert_eq!(str_of(&look, "/data/id"), token);
    assert_eq!(str_of(&look, "/data/accessor"), accessor);
    assert_eq!(
        strings(field(&look, "/data/policies")),
        vec!["creator", "default"]
    );
    let ttl = look["data"]["ttl"].as_u64().expect("ttl");
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(look["data"]["creation_ttl"], 3600);

    // By accessor: same token, id hidden.
    let by_acc = root.json(&["token", "lookup", "-accessor", &accessor]);
    assert_eq!(str_of(&by_acc, "/data/accessor"), accessor);
    assert_eq!(str_of(&by_acc, "/data/id"), "");

    // Self lookup with the token itself.
    let user = root.with_token(&token);
    let me = user.json(&["token", "lookup"]);
    assert_eq!(str_of(&me, "/data/id"), token);

    let renewed = root.json(&["token", "renew", "-increment=2h", &token]);
    assert_eq!(renewed["auth"]["lease_duration"], 7200, "{renewed}");

    // A child token dies with its parent.
    let child = user.json(&["token", "create", "-policy=default"]);
    let child = str_of(&child, "/auth/client_token").to_string();
    root.ok(&["token", "lookup", &child]);
    root.ok(&["token", "revoke", &token]);
    root.run(&["token", "lookup", &token]).expect_code(2);
    root.run(&["token", "lookup", &child]).expect_code(2);
    let dead = user.run(&["token", "lookup"]);
    assert!(
        dead.code != 0 && dead.stderr.contains("403"),
        "{}",
        dead.describe()
    );

    // Revoke by accessor, and revoke-self.
    let other = root.json(&["token", "create", "-policy=default"]);
    let other_token = str_of(&other, "/auth/client_token").to_string();
    root.ok(&[
        "token",
        "revoke",
        "-accessor",
        str_of(&other, "/auth/accessor"),
    ]);
    root.run(&["token", "lookup", &other_token]).expect_code(2);
    let selfish = root.json(&["token", "create", "-policy=default"]);
    let selfish = str_of(&selfish, "/auth/client_token").to_string();
    root.with_token(&selfish).ok(&["token", "revoke", "-self"]);
    root.run(&["token", "lookup", &selfish]).expect_code(2);

    // Unknown tokens are refused.
    root.run(&["token", "lookup", "s.notarealtokenatall12345"])
        .expect_code(2);
}

#[test]
fn with_json_places_the_flag_after_the_subcommand() {
    assert_eq!(
        with_json(&["kv", "get", "-version=1", "secret/a"]),
        vec!["kv", "get", "-format=json", "-version=1", "secret/a"]
    );
    assert_eq!(
        with_json(&["kv", "metadata", "get", "secret/a"]),
        vec!["kv", "metadata", "get", "-format=json", "secret/a"]
    );
    assert_eq!(with_json(&["status"]), vec!["status", "-format=json"]);
    assert_eq!(
        with_json(&["policy", "read", "reader"]),
        vec!["policy", "read", "-format=json", "reader"]
    );
}
