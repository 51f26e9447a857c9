//! Shared helpers for tests that run real `kura` processes: start a server from a config file,
//! wait for it, talk plain HTTP/1.1 to it, kill it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The kura binary under test.
pub fn kura_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kura"))
}

/// A running server process; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `kura server -config=<config>` and waits until the port answers.
    pub fn start(config: &Path, addr: &str, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(kura_bin())
            .arg("server")
            .arg(format!("-config={}", config.display()))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn kura");
        let server = Server {
            child,
            addr: addr.to_string(),
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start; log:\n{}", self.log_text());
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let raw = body.map(|b| b.to_string().into_bytes());
        http(&self.addr, method, path, token, raw.as_deref())
    }

    /// Initialises with `shares`/`threshold` and unseals; returns (keys, root token).
    pub fn init_unseal(&self, shares: u8, threshold: u8) -> (Vec<String>, String) {
        let (status, init) = self.call(
            "PUT",
            "/v1/sys/init",
            "",
            Some(&serde_json::json!({"secret_shares": shares, "secret_threshold": threshold})),
        );
        assert_eq!(status, 200, "{init}");
        let keys: Vec<String> = init["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        self.unseal(&keys[..threshold as usize]);
        (keys, init["root_token"].as_str().unwrap().to_string())
    }

    /// Unseals with the given keys.
    pub fn unseal(&self, keys: &[String]) {
        for k in keys {
            let (status, body) = self.call(
                "PUT",
                "/v1/sys/unseal",
                "",
                Some(&serde_json::json!({ "key": k })),
            );
            assert_eq!(status, 200, "{body}");
        }
        let (_, st) = self.call("GET", "/v1/sys/seal-status", "", None);
        assert_eq!(st["sealed"], false, "{st}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let (status, bytes) = http_raw(addr, method, path, token, body);
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, json)
}

/// Like [`http`], returning the raw body.
pub fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or(&[]);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !token.is_empty() {
        head.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body; ignore write errors then.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..text_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut payload = buf[text_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    (status, payload)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..pos]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[pos + 2 + size + 2..];
    }
    out
}

/// A raw HTTP/1.1 exchange with extra headers; returns status, headers (lower-case names) and
/// the JSON body (Null when empty).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !token.is_empty() {
        head.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let payload = &buf[end + 4..];
    let json = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
    };
    (status, hdrs, json)
}

/// The `X-Vault-Index` header of a response.
pub fn index_of(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n == "x-vault-index")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no X-Vault-Index in {headers:?}"))
}
