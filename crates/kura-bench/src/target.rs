//! The systems under test: OpenBao (`bao`), Kura, and the HTTP ceiling. Each server node runs as
//! a child process from an OpenBao-style configuration file in a temporary directory, is
//! initialised with one key share and unsealed through the HTTP API. Single nodes and raft
//! clusters (joined through `sys/storage/raft/join`) are built the same way for bao and Kura.

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{Api, ApiError};

/// Which system a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// OpenBao 2.7.2, the reference.
    Bao,
    /// Kura.
    Kura,
    /// The minimal HTTP server of [`crate::ceiling`].
    Ceiling,
}

impl TargetKind {
    /// Lowercase name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Bao => "bao",
            TargetKind::Kura => "kura",
            TargetKind::Ceiling => "ceiling",
        }
    }

    /// Parses `bao` or `kura` (the ceiling is not chosen, it comes with its scenarios).
    pub fn parse_server(s: &str) -> Option<Self> {
        match s {
            "bao" => Some(TargetKind::Bao),
            "kura" => Some(TargetKind::Kura),
            _ => None,
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors starting or driving a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The binary does not exist (for Kura: not built yet).
    #[error("binary not found: {0}")]
    Missing(PathBuf),
    /// The process could not be spawned or its files written.
    #[error("cannot start {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The process exited early.
    #[error("{binary} exited with {status} during {phase}; log tail:\n{log}")]
    Exited {
        /// Binary that exited.
        binary: String,
        /// Exit status.
        status: String,
        /// What the harness was waiting for.
        phase: &'static str,
        /// Last lines of its log.
        log: String,
    },
    /// Waiting for a state timed out.
    #[error("timed out after {secs} s waiting for {what}; log tail:\n{log}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        secs: u64,
        /// Last lines of the node's log.
        log: String,
    },
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// An API answer lacked a field.
    #[error("answer to {0} lacks a field")]
    Shape(&'static str),
}

/// Lowest port of the kernel's ephemeral range (outgoing connections take their local ports
/// from it), 32768 when unknown.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Picks a loopback port `p` such that `p` and `p + 1` are both free (API and cluster ports).
///
/// Ports come from below the ephemeral range: a node that is killed and restarted binds the
/// same ports again, and a port from the ephemeral range may meanwhile have been taken as the
/// local end of some outgoing connection.
pub fn free_port_pair() -> std::io::Result<u16> {
    let low: u16 = 10_000;
    let high = ephemeral_low().saturating_sub(2).max(low + 1000);
    let span = u64::from(high - low);
    // A cheap per-call seed: clock nanoseconds mixed with the process id.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 20) ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..500 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = low + (x % span) as u16;
        let first = TcpListener::bind(("127.0.0.1", port));
        let second = TcpListener::bind(("127.0.0.1", port + 1));
        if first.is_ok() && second.is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port pair on 127.0.0.1 below the ephemeral range",
    ))
}

/// The storage the nodes of a server use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Integrated storage: one raft data directory per node, further nodes joined through
    /// `sys/storage/raft/join`.
    Raft,
    /// One PostgreSQL database shared by every node, with the HA lock in it
    /// (`ha_enabled = "true"`): the first node to take the lock is active, the others standbys.
    Postgres {
        /// `connection_url` of the database.
        url: String,
    },
}

impl Storage {
    /// The `storage` stanza of a node's configuration.
    pub fn stanza(&self, data_dir: &Path, node_id: &str) -> String {
        match self {
            Storage::Raft => format!(
                r#"storage "raft" {{
  path    = "{data}"
  node_id = "{node_id}"
}}
"#,
                data = data_dir.display()
            ),
            Storage::Postgres { url } => format!(
                r#"storage "postgresql" {{
  connection_url = "{url}"
  ha_enabled     = "true"
}}
"#,
                url = url.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        }
    }
}

/// The OpenBao-style configuration both servers start from: `storage` (one raft node, or a
/// shared PostgreSQL database), a TCP listener without TLS on loopback.
pub fn server_config(data_dir: &Path, node_id: &str, port: u16, storage: &Storage) -> String {
    let cluster_port = port + 1;
    format!(
        r#"ui            = false
disable_mlock = true
log_level     = "warn"
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "https://127.0.0.1:{cluster_port}"

{storage}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}
"#,
        storage = storage.stanza(data_dir, node_id)
    )
}

/// Last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One server process.
pub struct Node {
    /// Node id in the raft configuration (`node1`, ...).
    pub id: String,
    /// API address.
    pub addr: SocketAddr,
    /// Configuration file.
    pub config: PathBuf,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Writes the configuration under `dir` and starts `binary server -config=FILE`.
    pub fn start(
        binary: &Path,
        dir: &Path,
        id: &str,
        storage: &Storage,
    ) -> Result<Self, TargetError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| TargetError::Io { what, source }
        };
        let port = free_port_pair().map_err(io("pick a port"))?;
        let node_dir = dir.join(id);
        let data = node_dir.join("data");
        std::fs::create_dir_all(&data).map_err(io("create the data directory"))?;
        let config = node_dir.join("config.hcl");
        std::fs::write(&config, server_config(&data, id, port, storage))
            .map_err(io("write the configuration"))?;
        let mut node = Self {
            id: id.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            config,
            log: node_dir.join("server.log"),
            binary: binary.to_owned(),
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    /// (Re)starts the process from the same configuration and data.
    pub fn spawn(&mut self) -> Result<(), TargetError> {
        if !self.binary.is_file() {
            return Err(TargetError::Missing(self.binary.clone()));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| TargetError::Io {
                what: "open the log".into(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| TargetError::Io {
            what: "open the log".into(),
            source,
        })?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|source| TargetError::Io {
                what: format!("spawn {}", self.binary.display()),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A setup client for this node.
    pub fn api(&self) -> Api {
        Api::new(self.addr)
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self, phase: &'static str) -> Result<(), TargetError> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TargetError::Exited {
                    binary: self.binary.display().to_string(),
                    status: status.to_string(),
                    phase,
                    log: log_tail(&self.log, 20),
                });
            }
        }
        Ok(())
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The process may have exited already; reaping it is all that is left then.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the API answers anything at all.
    pub async fn wait_listening(&mut self, limit: Duration) -> Result<(), TargetError> {
        let api = self.api();
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive("start-up")?;
            if api
                .raw(http::Method::GET, "/v1/sys/seal-status", None)
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("the API to listen", limit));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Status of `GET /v1/sys/health` (200 active, 429 standby, 501 uninitialised, 503 sealed).
    pub async fn health(&self) -> Option<StatusCode> {
        self.api()
            .raw(http::Method::GET, "/v1/sys/health", None)
            .await
            .ok()
            .map(|(s, _)| s)
    }

    /// Waits until health answers one of `wanted`.
    pub async fn wait_health(
        &mut self,
        wanted: &[StatusCode],
        what: &str,
        limit: Duration,
    ) -> Result<(), TargetError> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive("waiting for health")?;
            if let Some(s) = self.health().await {
                if wanted.contains(&s) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.timeout(what, limit));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Unseals with the single key share.
    pub async fn unseal(&self, key: &str) -> Result<(), TargetError> {
        self.api()
            .put("/v1/sys/unseal", &json!({ "key": key }))
            .await?;
        Ok(())
    }

    fn timeout(&self, what: &str, limit: Duration) -> TargetError {
        TargetError::Timeout {
            what: format!("{} ({} at {})", what, self.id, self.addr),
            secs: limit.as_secs(),
            log: log_tail(&self.log, 20),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keys returned by initialisation.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The one unseal key share (base64).
    pub unseal: String,
    /// Initial root token.
    pub root_token: String,
}

/// A running server: one node or a raft cluster.
pub struct Server {
    /// bao or kura.
    pub kind: TargetKind,
    /// Nodes; index 0 was initialised first.
    pub nodes: Vec<Node>,
    /// Unseal key and root token.
    pub keys: Keys,
    /// What the nodes store their data in.
    pub storage: Storage,
    _dir: tempfile::TempDir,
}

/// What a failover measurement asks of the new active node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A read (`GET`) of the probe path answered with 2xx.
    Read,
    /// A write (`POST {"value": ...}`) to the probe path (a KV v1 key) accepted with 2xx.
    Write,
}

const START_LIMIT: Duration = Duration::from_secs(60);

impl Server {
    /// Starts `nodes` nodes of `binary` on raft, initialises the first, joins the others to it
    /// through `sys/storage/raft/join`, unseals all and waits for an active node.
    pub async fn start(kind: TargetKind, binary: &Path, nodes: usize) -> Result<Self, TargetError> {
        Self::start_on(kind, binary, nodes, &Storage::Raft).await
    }

    /// Starts `nodes` nodes of `binary` on `storage`, initialises and unseals the first, then
    /// starts and unseals the others with the same key (on raft after joining them to the
    /// first; on a shared database they come up as standbys), and waits until each is active
    /// or a standby (on raft: until every node is a voter).
    pub async fn start_on(
        kind: TargetKind,
        binary: &Path,
        nodes: usize,
        storage: &Storage,
    ) -> Result<Self, TargetError> {
        if !binary.is_file() {
            return Err(TargetError::Missing(binary.to_owned()));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("kura-bench-{}-", kind.name()))
            .tempdir()
            .map_err(|source| TargetError::Io {
                what: "create a temporary directory".into(),
                source,
            })?;
        let mut first = Node::start(binary, dir.path(), "node1", storage)?;
        first.wait_listening(START_LIMIT).await?;
        let init = first
            .api()
            .put(
                "/v1/sys/init",
                &json!({ "secret_shares": 1, "secret_threshold": 1 }),
            )
            .await?;
        let unseal = init["keys_base64"][0]
            .as_str()
            .or_else(|| init["keys"][0].as_str())
            .ok_or(TargetError::Shape("sys/init"))?
            .to_owned();
        let root_token = init["root_token"]
            .as_str()
            .ok_or(TargetError::Shape("sys/init"))?
            .to_owned();
        let keys = Keys { unseal, root_token };
        first.unseal(&keys.unseal).await?;
        first
            .wait_health(
                &[StatusCode::OK],
                "the first node to become active",
                START_LIMIT,
            )
            .await?;
        let leader_addr = first.addr;
        let mut all = vec![first];
        for i in 1..nodes {
            let mut node = Node::start(binary, dir.path(), &format!("node{}", i + 1), storage)?;
            node.wait_listening(START_LIMIT).await?;
            if *storage == Storage::Raft {
                node.api()
                    .post(
                        "/v1/sys/storage/raft/join",
                        &json!({ "leader_api_addr": format!("http://{leader_addr}") }),
                    )
                    .await?;
            }
            node.unseal(&keys.unseal).await?;
            node.wait_health(
                &[StatusCode::TOO_MANY_REQUESTS, StatusCode::OK],
                "a further node to become a standby",
                START_LIMIT,
            )
            .await?;
            all.push(node);
        }
        let server = Self {
            kind,
            nodes: all,
            keys,
            storage: storage.clone(),
            _dir: dir,
        };
        if nodes > 1 && server.storage == Storage::Raft {
            server.wait_all_voters(START_LIMIT).await?;
        }
        Ok(server)
    }

    /// Waits until the raft configuration lists every node as a voter: joined nodes start as
    /// non-voters and are promoted by autopilot once stable, and only voters can take over.
    pub async fn wait_all_voters(&self, limit: Duration) -> Result<(), TargetError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(active) = self.active().await {
                let config = self
                    .root_api(active)
                    .get("/v1/sys/storage/raft/configuration")
                    .await;
                match config {
                    Ok(v) => {
                        let servers = v["data"]["config"]["servers"].as_array();
                        let voters = servers.map_or(0, |s| {
                            s.iter()
                                .filter(|s| s["voter"].as_bool() == Some(true))
                                .count()
                        });
                        if voters >= self.nodes.len() && self.autopilot_healthy(active).await {
                            return Ok(());
                        }
                    }
                    // No way to see the configuration: take the cluster as it is.
                    Err(e) if e.is_unsupported() => return Ok(()),
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                return Err(TargetError::Timeout {
                    what: "every node to become a raft voter".into(),
                    secs: limit.as_secs(),
                    log: log_tail(&self.nodes[0].log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Whether autopilot (where the target has it) calls the cluster healthy and able to lose a
    /// node: a node just restarted counts as a voter before it has caught up.
    async fn autopilot_healthy(&self, active: usize) -> bool {
        match self
            .root_api(active)
            .get("/v1/sys/storage/raft/autopilot/state")
            .await
        {
            Ok(v) => {
                let state = if v["data"].is_object() {
                    &v["data"]
                } else {
                    &v
                };
                state["healthy"].as_bool() == Some(true)
                    && state["failure_tolerance"].as_u64().unwrap_or(0) >= 1
            }
            Err(e) => e.is_unsupported(),
        }
    }

    /// Index of the node whose health says active.
    pub async fn active(&self) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.pid().is_some() && node.health().await == Some(StatusCode::OK) {
                return Some(i);
            }
        }
        None
    }

    /// Process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }

    /// The server's version as `sys/seal-status` reports it.
    pub async fn version(&self) -> Option<String> {
        let v = self.nodes[0].api().get("/v1/sys/seal-status").await.ok()?;
        v["version"].as_str().map(str::to_owned)
    }

    /// A root-token client for node `i`.
    pub fn root_api(&self, i: usize) -> Api {
        self.nodes[i].api().with_token(&self.keys.root_token)
    }

    /// Kills the active node with SIGKILL and measures the time until another node reports
    /// active and answers `probe` on `probe_path` (with `token`) with 2xx. The killed node is
    /// then restarted, unsealed and waited for as a standby (on raft: as a voter).
    pub async fn failover_once(
        &mut self,
        token: &str,
        probe: Probe,
        probe_path: &str,
        limit: Duration,
    ) -> Result<Duration, TargetError> {
        let write_body = json!({ "value": "probe" });
        let active = self.active().await.ok_or(TargetError::Timeout {
            what: "an active node before failover".into(),
            secs: 0,
            log: String::new(),
        })?;
        self.nodes[active].kill();
        let killed_at = Instant::now();
        let deadline = killed_at + limit;
        let elapsed = 'outer: loop {
            for (i, node) in self.nodes.iter().enumerate() {
                if i == active {
                    continue;
                }
                if node.health().await == Some(StatusCode::OK) {
                    let api = node.api().with_token(token);
                    let answer = match probe {
                        Probe::Read => api.raw(http::Method::GET, probe_path, None).await,
                        Probe::Write => {
                            api.raw(http::Method::POST, probe_path, Some(&write_body))
                                .await
                        }
                    };
                    if let Ok((s, _)) = answer {
                        if s.is_success() {
                            break 'outer killed_at.elapsed();
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(TargetError::Timeout {
                    what: "a new active node after kill -9".into(),
                    secs: limit.as_secs(),
                    log: log_tail(&self.nodes[(active + 1) % self.nodes.len()].log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let node = &mut self.nodes[active];
        node.spawn()?;
        node.wait_listening(START_LIMIT).await?;
        node.unseal(&self.keys.unseal).await?;
        node.wait_health(
            &[StatusCode::TOO_MANY_REQUESTS, StatusCode::OK],
            "the restarted node to rejoin",
            START_LIMIT,
        )
        .await?;
        if self.storage == Storage::Raft {
            self.wait_all_voters(START_LIMIT).await?;
        }
        Ok(elapsed)
    }
}

/// The ceiling server as a child process (`kura-bench ceiling`), so that its CPU and memory are
/// measured like the servers' and it does not share the load generator's runtime.
pub struct CeilingProcess {
    /// Listening address.
    pub addr: SocketAddr,
    child: Child,
}

impl CeilingProcess {
    /// Starts `exe ceiling --listen ADDR --body-bytes N` and waits until it answers.
    pub async fn start(exe: &Path, body_bytes: usize) -> Result<Self, TargetError> {
        let port = free_port_pair().map_err(|source| TargetError::Io {
            what: "pick a port".into(),
            source,
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(exe)
            .arg("ceiling")
            .arg(format!("--listen={addr}"))
            .arg(format!("--body-bytes={body_bytes}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| TargetError::Io {
                what: format!("spawn {}", exe.display()),
                source,
            })?;
        let mut ceiling = Self { addr, child };
        let api = Api::new(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = ceiling.child.try_wait() {
                return Err(TargetError::Exited {
                    binary: exe.display().to_string(),
                    status: status.to_string(),
                    phase: "start-up",
                    log: String::new(),
                });
            }
            if api.raw(http::Method::GET, "/", None).await.is_ok() {
                return Ok(ceiling);
            }
            if Instant::now() > deadline {
                ceiling.kill();
                return Err(TargetError::Timeout {
                    what: "the ceiling server".into(),
                    secs: 10,
                    log: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        // Already-exited processes only need reaping.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CeilingProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_node_ports_and_path() {
        let text = server_config(Path::new("/tmp/x/data"), "node2", 40000, &Storage::Raft);
        assert!(text.contains(r#"address         = "127.0.0.1:40000""#));
        assert!(text.contains(r#"cluster_address = "127.0.0.1:40001""#));
        assert!(text.contains(r#"node_id = "node2""#));
        assert!(text.contains(r#"path    = "/tmp/x/data""#));
        assert!(text.contains("tls_disable     = true"));
    }

    #[test]
    fn postgres_config_shares_the_database_and_enables_ha() {
        let storage = Storage::Postgres {
            url: "postgres://postgres@127.0.0.1:5432/bench_kura?sslmode=disable".into(),
        };
        let text = server_config(Path::new("/tmp/x/data"), "node3", 40010, &storage);
        assert!(text.contains(r#"storage "postgresql" {"#));
        assert!(text.contains(
            r#"connection_url = "postgres://postgres@127.0.0.1:5432/bench_kura?sslmode=disable""#
        ));
        assert!(text.contains(r#"ha_enabled     = "true""#));
        assert!(!text.contains("raft"));
        assert!(!text.contains("/tmp/x/data"));
        assert!(text.contains(r#"api_addr      = "http://127.0.0.1:40010""#));
        assert!(text.contains(r#"cluster_addr  = "https://127.0.0.1:40011""#));
        assert!(text.contains(r#"cluster_address = "127.0.0.1:40011""#));
        let quoted = Storage::Postgres {
            url: r#"postgres://u:p"q@h/db"#.into(),
        };
        assert!(quoted
            .stanza(Path::new("/x"), "n")
            .contains(r#"connection_url = "postgres://u:p\"q@h/db""#));
    }

    #[test]
    fn port_pair_is_free_and_below_the_ephemeral_range() {
        let p = free_port_pair().unwrap();
        assert!(p >= 10_000 && p + 1 < ephemeral_low());
        TcpListener::bind(("127.0.0.1", p)).unwrap();
        TcpListener::bind(("127.0.0.1", p + 1)).unwrap();
    }

    #[tokio::test]
    async fn missing_binary_is_reported_as_missing() {
        let r = Server::start(TargetKind::Kura, Path::new("/nonexistent/kura"), 1).await;
        assert!(matches!(r, Err(TargetError::Missing(_))));
    }
}
