//! `kura server`: reads OpenBao configuration files, builds storage, the core and the listeners,
//! and runs until interrupted. `-dev` starts an in-memory, unsealed server with KV v2 at
//! `secret/`, as `bao server -dev` does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::Parser;
use kura_config::Config;
use kura_core::{BackendFactory, Core, CoreConfig, MountConfig, MountKind};
use kura_http::{Listener, ListenerSettings, TlsSettings};
use kura_storage::{Backend, CachedBackend, InmemBackend, DEFAULT_CACHE_BYTES};

/// Arguments of `kura server`.
#[derive(Parser, Debug)]
#[command(name = "kura server", about = "Run a Kura server")]
pub struct ServerArgs {
    /// Configuration file or directory (repeatable).
    #[arg(long = "config")]
    config: Vec<PathBuf>,
    /// Development mode: in memory, initialised, unsealed, root token printed.
    #[arg(long = "dev")]
    dev: bool,
    /// Root token ID in dev mode.
    #[arg(long = "dev-root-token-id", env = "VAULT_DEV_ROOT_TOKEN_ID")]
    dev_root_token_id: Option<String>,
    /// Listen address in dev mode.
    #[arg(
        long = "dev-listen-address",
        env = "VAULT_DEV_LISTEN_ADDRESS",
        default_value = "127.0.0.1:8200"
    )]
    dev_listen_address: String,
    /// Do not mount KV v2 at secret/ in dev mode.
    #[arg(long = "dev-no-store-token")]
    dev_no_store_token: bool,
    /// Log level (trace, debug, info, warn, error).
    #[arg(long = "log-level", env = "VAULT_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format (standard, json).
    #[arg(long = "log-format", env = "VAULT_LOG_FORMAT")]
    log_format: Option<String>,
}

/// Runs `kura server` with `args` (after the `server` word). Returns the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let parsed =
        match ServerArgs::try_parse_from(std::iter::once("kura server".to_string()).chain(args)) {
            Ok(a) => a,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() { 2 } else { 0 };
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error starting the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(parsed)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

fn dev_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let text = format!(
        "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{}\"\n  tls_disable = true\n}}\n",
        args.dev_listen_address
    );
    let mut cfg = kura_config::parse_str(&text, "dev", kura_config::Format::Hcl)?;
    cfg.api_addr = Some(format!("http://{}", args.dev_listen_address));
    Ok(cfg)
}

fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(match level {
        "err" => "error",
        "trace" | "debug" | "info" | "warn" | "error" => level,
        _ => "info",
    })
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Raft timings: failure detection in well under a second (a follower campaigns after the
/// leader lease plus its own election timeout, 600–1000 ms after the last heartbeat).
const RAFT_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(100);
const RAFT_ELECTION_MIN: std::time::Duration = std::time::Duration::from_millis(300);
const RAFT_ELECTION_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// The clustered parts of a raft node.
struct RaftParts {
    node: Arc<kura_cluster::ClusterNode>,
    tls: Arc<kura_cluster::ClusterTls>,
    retry_join: Vec<String>,
    voter: bool,
    join_tls: Vec<(String, plane::JoinTls)>,
}

async fn build_storage(
    cfg: &Config,
    cluster_bind: SocketAddr,
) -> anyhow::Result<(Arc<dyn Backend>, Option<RaftParts>)> {
    let storage = cfg.storage.as_ref().ok_or_else(|| {
        anyhow!("no storage block in the configuration: a \"storage\" stanza is required")
    })?;
    let (data, raft) = build_backend(storage, cfg, cluster_bind).await?;
    let Some(ha_storage) = cfg.ha_storage.as_ref() else {
        return Ok((data, raft));
    };
    // `ha_storage`: the HA lock from another backend.
    if raft.is_some() {
        bail!("ha_storage cannot be used with storage \"raft\": raft provides its own HA");
    }
    if ha_storage.kind == "raft" {
        bail!("ha_storage \"raft\" is not supported by Kura (supported: postgresql)");
    }
    let (ha, _) = Box::pin(build_backend(ha_storage, cfg, cluster_bind)).await?;
    let split = kura_storage::SplitHaBackend::new(data, &ha).ok_or_else(|| {
        anyhow!(
            "ha_storage \"{}\" offers no HA lock (for postgresql set ha_enabled = \"true\")",
            ha_storage.kind
        )
    })?;
    Ok((Arc::new(split), None))
}

/// Builds one backend from a `storage` (or `ha_storage`) block.
async fn build_backend(
    storage: &kura_config::StorageConfig,
    cfg: &Config,
    cluster_bind: SocketAddr,
) -> anyhow::Result<(Arc<dyn Backend>, Option<RaftParts>)> {
    match storage.kind.as_str() {
        "inmem" => Ok((Arc::new(InmemBackend::new()), None)),
        "postgresql" => {
            // Options as OpenBao hands them over (strings); BAO_PG_CONNECTION_URL was applied
            // by the configuration already.
            let opts: BTreeMap<String, String> = kura_postgres::KNOWN_OPTIONS
                .iter()
                .filter_map(|k| Some((k.to_string(), storage.option_str(k)?)))
                .collect();
            let opts = kura_postgres::PostgresOptions::from_map(&opts)?;
            let backend = kura_postgres::PostgresBackend::connect(opts).await?;
            Ok((Arc::new(backend), None))
        }
        "raft" => {
            let raft_cfg = storage
                .raft()
                .ok_or_else(|| anyhow!("storage \"raft\": missing settings"))?;
            let path = raft_cfg
                .path
                .clone()
                .or_else(|| std::env::var("VAULT_RAFT_PATH").ok())
                .ok_or_else(|| anyhow!("storage \"raft\": 'path' must be set"))?;
            let node_id = raft_cfg
                .node_id
                .clone()
                .or_else(|| std::env::var("VAULT_RAFT_NODE_ID").ok())
                .unwrap_or_default();
            let retry_join: Vec<String> = raft_cfg
                .retry_join
                .iter()
                .filter_map(|r| r.leader_api_addr.clone())
                .collect();
            // TLS for each leader's API: files, or inline PEM written under the raft path.
            let mut join_tls = Vec::new();
            for (i, r) in raft_cfg.retry_join.iter().enumerate() {
                let Some(addr) = r.leader_api_addr.clone() else {
                    continue;
                };
                let pem = |file: &Option<String>, inline: &Option<String>, name: &str| {
                    join_pem(&path, i, name, file, inline)
                };
                join_tls.push((
                    addr,
                    plane::JoinTls {
                        ca_cert: pem(&r.leader_ca_cert_file, &r.leader_ca_cert, "ca.pem")?,
                        client_cert: pem(
                            &r.leader_client_cert_file,
                            &r.leader_client_cert,
                            "client.pem",
                        )?,
                        client_key: pem(
                            &r.leader_client_key_file,
                            &r.leader_client_key,
                            "client-key.pem",
                        )?,
                        server_name: r.leader_tls_servername.clone(),
                    },
                ));
            }
            let mut opts = kura_raft::RaftOptions::new(&path, node_id);
            opts.api_addr = cfg.api_addr.clone().unwrap_or_default();
            opts.cluster_addr = cfg.cluster_addr.clone().unwrap_or_default();
            // The cluster is formed by `sys/init` (or joined): never at start.
            opts.initialize = false;
            opts.heartbeat_interval = RAFT_HEARTBEAT;
            opts.election_timeout_min = RAFT_ELECTION_MIN;
            opts.election_timeout_max = RAFT_ELECTION_MAX;
            // Until unsealed, the node presents a throwaway identity no peer trusts.
            let throwaway = kura_cluster::ClusterIdentity::generate()
                .map_err(|e| anyhow!("generating a cluster identity: {e}"))?;
            let tls = Arc::new(
                kura_cluster::ClusterTls::new(throwaway)
                    .map_err(|e| anyhow!("cluster TLS: {e}"))?,
            );
            let mut node_opts = kura_cluster::ClusterNodeOptions::new(opts, cluster_bind);
            // A node that asks to vote joins as a learner; autopilot promotes it once it has
            // been healthy for `server_stabilization_time`.
            node_opts.service.promote_on_join = false;
            let node = kura_cluster::ClusterNode::start(node_opts, tls.clone())
                .await
                .map_err(|e| anyhow!("starting raft storage at {path}: {e}"))?;
            let backend: Arc<dyn Backend> = Arc::new(node.backend().clone());
            Ok((
                backend,
                Some(RaftParts {
                    node: Arc::new(node),
                    tls,
                    retry_join,
                    voter: !raft_cfg.retry_join_as_non_voter,
                    join_tls,
                }),
            ))
        }
        other => {
            bail!("storage type {other:?} is not supported by Kura yet (supported: raft, postgresql, inmem)")
        }
    }
}

/// A `retry_join` PEM setting as a file: the `*_file` option as given, or the inline PEM
/// written (owner-only) to `<raft path>/retry-join/<block>/<name>`.
fn join_pem(
    raft_path: &str,
    block: usize,
    name: &str,
    file: &Option<String>,
    inline: &Option<String>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(f) = file.as_ref().filter(|f| !f.is_empty()) {
        return Ok(Some(PathBuf::from(f)));
    }
    let Some(pem) = inline.as_ref().filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = PathBuf::from(raft_path)
        .join("retry-join")
        .join(block.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
    let target = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| anyhow!("{}: {e}", target.display()))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| anyhow!("{}: {e}", target.display()))?;
    Ok(Some(target))
}

/// Where the cluster port listens: the first listener's `cluster_address`, or its port + 1.
fn cluster_bind(cfg: &Config, first: &ListenerSettings) -> anyhow::Result<SocketAddr> {
    match cfg
        .listeners
        .first()
        .and_then(|l| l.cluster_address.clone())
    {
        Some(a) => a
            .parse()
            .map_err(|_| anyhow!("listener \"tcp\": invalid cluster_address {a:?}")),
        None => Ok(SocketAddr::new(
            first.address.ip(),
            first.address.port().wrapping_add(1),
        )),
    }
}

fn factories() -> BTreeMap<String, BackendFactory> {
    let mut f: BTreeMap<String, BackendFactory> = BTreeMap::new();
    f.insert("kv".into(), Arc::new(kura_engines::kv_factory));
    f.insert(
        "cubbyhole".into(),
        Arc::new(kura_engines::cubbyhole_factory),
    );
    f.insert("userpass".into(), Arc::new(kura_auth::userpass_factory));
    f.insert("approle".into(), Arc::new(kura_auth::approle_factory));
    f.insert("pki".into(), Arc::new(kura_pki::pki_factory));
    f.insert("transit".into(), Arc::new(kura_transit::transit_factory));
    f
}

fn listener_settings(l: &kura_config::ListenerConfig) -> anyhow::Result<ListenerSettings> {
    if l.kind != "tcp" {
        bail!(
            "listener {:?} ({}) is not supported by Kura yet (only \"tcp\")",
            l.kind,
            l.file
        );
    }
    let address: SocketAddr = l
        .address
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            l.address
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|_| {
            anyhow!(
                "listener \"tcp\" ({}): invalid address {:?}",
                l.file,
                l.address
            )
        })?;
    let tls = if l.tls_disable {
        None
    } else {
        let cert_file = l.tls_cert_file.clone().ok_or_else(|| {
            anyhow!(
                "listener \"tcp\" ({}): tls_cert_file is required unless tls_disable = true",
                l.file
            )
        })?;
        let key_file = l.tls_key_file.clone().ok_or_else(|| {
            anyhow!(
                "listener \"tcp\" ({}): tls_key_file is required unless tls_disable = true",
                l.file
            )
        })?;
        Some(TlsSettings {
            cert_file,
            key_file,
            min_version: l.tls_min_version.clone(),
        })
    };
    let max_request_size = match l.max_request_size {
        0 => kura_http::MAX_REQUEST_SIZE_DEFAULT,
        n if n < 0 => usize::MAX,
        n => n as usize,
    };
    let x_forwarded_for = kura_http::XffSettings::new(
        &l.x_forwarded_for_authorized_addrs,
        l.x_forwarded_for_hop_skips,
        l.x_forwarded_for_reject_not_authorized,
        l.x_forwarded_for_reject_not_present,
    )
    .map_err(|e| {
        anyhow!(
            "listener \"tcp\" ({}): x_forwarded_for_authorized_addrs: {e}",
            l.file
        )
    })?;
    Ok(ListenerSettings {
        address,
        tls,
        max_request_size,
        max_request_duration: l.max_request_duration,
        x_forwarded_for,
    })
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = if args.dev {
        dev_config(&args)?
    } else {
        if args.config.is_empty() {
            bail!("no configuration files found: use -config=FILE or -dev");
        }
        kura_config::load(&args.config)?
    };
    cfg.apply_process_env();
    let level = args
        .log_level
        .clone()
        .or_else(|| cfg.log_level.clone())
        .unwrap_or_else(|| "info".into());
    let format = args
        .log_format
        .clone()
        .or_else(|| cfg.log_format.clone())
        .unwrap_or_else(|| "standard".into());
    init_logging(&level.to_lowercase(), &format);
    for w in &cfg.warnings {
        eprintln!("WARNING: {w}");
    }
    if cfg.listeners.is_empty() {
        bail!("no listener configured: a listener \"tcp\" block is required");
    }
    let settings: Vec<ListenerSettings> = cfg
        .listeners
        .iter()
        .map(listener_settings)
        .collect::<anyhow::Result<_>>()?;
    if cfg.api_addr.is_none() {
        let first = &settings[0];
        let scheme = if first.tls.is_some() { "https" } else { "http" };
        cfg.api_addr = Some(format!("{scheme}://{}", first.address));
    }
    let cluster_bind = cluster_bind(&cfg, &settings[0])?;
    if cfg.cluster_addr.is_none() {
        cfg.cluster_addr = Some(format!("https://{cluster_bind}"));
    }
    let forward_settings = settings[0].clone();

    let (physical, raft) = build_storage(&cfg, cluster_bind).await?;
    let storage_name = physical.name();
    let ha = physical.ha_lock().is_some();
    // An HA backend that does not report the other nodes' writes (PostgreSQL) cannot keep a
    // read cache coherent across a change of active node: no cache there.
    let uncacheable = ha && physical.write_notifier().is_none();
    let cached: Arc<dyn Backend> = if cfg.disable_cache || uncacheable {
        physical
    } else {
        let bytes = cfg.cache_size.map_or(DEFAULT_CACHE_BYTES, |n| n as usize);
        Arc::new(CachedBackend::new(physical, bytes))
    };
    let core_config = CoreConfig {
        default_lease_ttl: cfg
            .default_lease_ttl
            .unwrap_or(kura_config::DEFAULT_LEASE_TTL),
        max_lease_ttl: cfg.max_lease_ttl.unwrap_or(kura_config::DEFAULT_LEASE_TTL),
        cluster_name: cfg.cluster_name.clone(),
        api_addr: cfg.api_addr.clone(),
        cluster_addr: cfg.cluster_addr.clone(),
        disable_standby_reads: cfg.disable_standby_reads,
        unauthed_rekey: cfg
            .listeners
            .iter()
            .any(|l| !l.disable_unauthed_rekey_endpoints),
        audit: audit_options(&cfg),
        unauthed_generate_root: cfg
            .listeners
            .iter()
            .any(|l| !l.disable_unauthed_generate_root_endpoints),
    };
    let core = Core::new(core_config, cached, factories());
    if let Some(parts) = &raft {
        let plane = Arc::new(plane::RaftPlane::new(
            parts.node.clone(),
            parts.tls.clone(),
            parts.join_tls.clone(),
        ));
        plane.set_desired_voter(parts.voter);
        core.set_cluster_plane(plane.clone());
        parts.node.listener().register(
            kura_cluster::ALPN_HEARTBEAT,
            Arc::new(plane::HeartbeatService {
                echoes: plane.echo_table(),
            }),
        );
        tokio::spawn(plane::heartbeat_loop(core.clone(), plane.clone()));
        tokio::spawn(plane::autopilot_loop(Arc::downgrade(&core)));
        parts.node.listener().register(
            kura_cluster::ALPN_FORWARD,
            Arc::new(plane::ForwardService {
                core: core.clone(),
                settings: forward_settings,
            }),
        );
        if !parts.retry_join.is_empty() {
            tokio::spawn(
                core.clone()
                    .retry_join(parts.retry_join.clone(), parts.voter),
            );
        }
    }

    let mut bound = Vec::new();
    for s in settings {
        let l = Listener::bind(s.clone()).await?;
        bound.push((l, s));
    }

    println!("==> Kura server configuration:\n");
    println!(
        "             Api Address: {}",
        cfg.api_addr.as_deref().unwrap_or("")
    );
    println!(
        "         Cluster Address: {}",
        cfg.cluster_addr.as_deref().unwrap_or("")
    );
    for (i, (l, s)) in bound.iter().enumerate() {
        println!(
            "              Listener {}: tcp (addr: \"{}\", max_request_duration: \"{}\", max_request_size: \"{}\", tls: \"{}\")",
            i + 1,
            l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            kura_config::duration::format_duration(s.max_request_duration),
            s.max_request_size,
            if s.tls.is_some() { "enabled" } else { "disabled" }
        );
    }
    println!("               Log Level: {level}");
    println!(
        "                 Storage: {storage_name}{}",
        if ha { " (HA available)" } else { "" }
    );
    println!("                 Version: Kura v{}", kura_core::VERSION);
    println!("\n==> Kura server started! Log data will stream in below:\n");

    if args.dev {
        let init = core
            .initialize_with(1, 1, args.dev_root_token_id.clone())
            .await
            .map_err(|e| anyhow!("dev mode initialisation: {e}"))?;
        core.unseal_with_keys(&init.keys)
            .await
            .map_err(|e| anyhow!("dev mode unseal: {e}"))?;
        let mut opts = BTreeMap::new();
        opts.insert("version".to_string(), "2".to_string());
        core.mount(
            "secret/",
            "kv",
            "key/value secret storage",
            MountConfig::default(),
            opts,
            MountKind::Secret,
        )
        .await
        .map_err(|e| anyhow!("dev mode mount: {e}"))?;
        use base64::Engine as _;
        let key_b64 = base64::engine::general_purpose::STANDARD.encode(init.keys[0].as_slice());
        println!("WARNING! dev mode is enabled! In this mode, Kura runs entirely in-memory");
        println!("and starts unsealed with a single unseal key. The root token is already");
        println!("authenticated to the CLI, so you can immediately begin using Kura.\n");
        println!("You may need to set the following environment variables:\n");
        println!(
            "    $ export VAULT_ADDR='{}'\n",
            cfg.api_addr.as_deref().unwrap_or("")
        );
        println!("The unseal key and root token are displayed below in case you want to");
        println!("seal/unseal the Vault or re-authenticate.\n");
        println!("Unseal Key: {key_b64}");
        println!("Root Token: {}\n", init.root_token);
        println!("Development mode should NOT be used in production installations!\n");
        if !args.dev_no_store_token {
            if let Some(home) = std::env::var_os("HOME") {
                let _ = std::fs::write(PathBuf::from(home).join(".vault-token"), &init.root_token);
            }
        }
    }

    let mut tasks = Vec::new();
    for (l, _) in bound {
        tasks.push(tokio::spawn(l.serve(core.clone())));
    }

    wait_for_shutdown(
        &core,
        if args.dev {
            Vec::new()
        } else {
            args.config.clone()
        },
    )
    .await;
    tracing::info!("shutting down");
    for t in &tasks {
        t.abort();
    }
    let _ = core.seal().await;
    if let Some(parts) = raft {
        let _ = parts.node.shutdown().await;
    }
    Ok(())
}

fn audit_options(cfg: &Config) -> kura_core::AuditOptions {
    kura_core::AuditOptions {
        devices: cfg.audit.clone(),
        allow_prefixing: cfg.allow_audit_log_prefixing,
        allow_api_creation: cfg.unsafe_allow_api_audit_creation,
    }
}

/// SIGHUP: re-reads the configuration files and applies what can change in place (audit
/// devices, which are also reopened for log rotation). Nothing is duplicated: the broker swaps
/// its device set.
async fn reload(core: &Core, paths: &[PathBuf]) {
    if paths.is_empty() {
        return;
    }
    match kura_config::load(paths) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            match core.reload_audit(audit_options(&cfg)).await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "reloading audit devices failed"),
            }
        }
        Err(e) => tracing::error!(error = %e, "reload: configuration not loaded"),
    }
}

async fn wait_for_shutdown(core: &Core, config_paths: Vec<PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading");
                reload(core, &config_paths).await;
            }
        }
    }
}

/// The cluster plane of a raft node: the cluster port (raft, request forwarding), the cluster
/// identity and raft membership, over `kura-cluster`.
///
/// Identity bootstrap: the identity lives only inside the barrier (`core/cluster/identity`).
/// Until a node is unsealed it presents a throwaway identity that no peer trusts, so a sealed
/// node takes no part in raft (it cannot vote or receive the log) and serves nothing on the
/// cluster port. The first active node of a new cluster generates the identity; a restarted
/// member reads it from its local copy of the storage when unsealed; a new node receives it by
/// answering the bootstrap challenge (see `kura_core::cluster`).
mod plane {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use kura_client::{Client, ClientConfig};
    use kura_cluster::{
        dial, ClusterIdentity, ClusterNode, ClusterTls, FramedStream, PeerInfo, StreamHandler,
        ALPN_FORWARD, ALPN_HEARTBEAT,
    };
    use kura_core::autopilot::{
        Autopilot, AutopilotConfig, AutopilotState, Echo, EchoTable, ServerObservation,
        ECHO_INTERVAL,
    };
    use kura_core::cluster::{
        BootstrapAnswerReply, BootstrapChallenge, ClusterPlane, ClusterPlaneError,
        ForwardedRequest, ForwardedResponse, IdentityBytes, RaftPeer,
    };
    use kura_core::Core;
    use kura_http::ListenerSettings;

    /// Time allowed for one forwarded request (dial included).
    const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);
    /// Time allowed to dial the active node.
    const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
    /// Largest forwarded message.
    const MAX_FRAME: usize = 64 * 1024 * 1024;
    /// Idle forwarding connections kept.
    const MAX_IDLE: usize = 16;
    /// Time allowed for a raft membership change.
    const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

    /// TLS settings for the joining node's calls to a leader's API.
    #[derive(Debug, Clone, Default)]
    pub struct JoinTls {
        /// `leader_ca_cert_file`.
        pub ca_cert: Option<std::path::PathBuf>,
        /// `leader_client_cert_file`.
        pub client_cert: Option<std::path::PathBuf>,
        /// `leader_client_key_file`.
        pub client_key: Option<std::path::PathBuf>,
        /// `leader_tls_servername`.
        pub server_name: Option<String>,
    }

    /// The raft node's cluster plane.
    pub struct RaftPlane {
        node: Arc<ClusterNode>,
        tls: Arc<ClusterTls>,
        idle: Mutex<Vec<(String, u64, FramedStream)>>,
        /// TLS settings per leader API address (from the `retry_join` blocks).
        join_tls: Vec<(String, JoinTls)>,
        /// Standbys' heartbeats received while this node is active.
        echoes: Arc<EchoTable>,
        /// Autopilot's memory (used while this node leads).
        autopilot: Autopilot,
        /// The raft term in which this node last led, and since when: contact times from
        /// before are not this leadership's.
        led_since: Mutex<Option<(u64, tokio::time::Instant)>>,
        /// Whether this node wants to vote (told to the active node in its heartbeats).
        desired_voter: AtomicBool,
    }

    /// Largest heartbeat frame.
    const MAX_ECHO_FRAME: usize = 64 * 1024;

    /// Serves standbys' heartbeats (`kura-heartbeat/1`): each frame is an [`Echo`], answered
    /// with an empty JSON object.
    pub struct HeartbeatService {
        /// Where echoes are recorded.
        pub echoes: Arc<EchoTable>,
    }

    #[async_trait]
    impl StreamHandler for HeartbeatService {
        async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
            loop {
                let frame = match stream.recv().await {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(_) => return,
                };
                match serde_json::from_slice::<Echo>(&frame) {
                    Ok(echo) => self.echoes.record(echo),
                    Err(e) => {
                        tracing::warn!(peer = %peer.remote_addr, error = %e, "malformed heartbeat");
                        return;
                    }
                }
                if stream.send_flush(b"{}").await.is_err() {
                    return;
                }
            }
        }
    }

    /// On a standby: sends this node's echo to the active node every [`ECHO_INTERVAL`], over
    /// one kept connection (redialled when the active node or the identity changes).
    pub async fn heartbeat_loop(core: Arc<Core>, plane: Arc<RaftPlane>) {
        let mut conn: Option<(String, u64, FramedStream)> = None;
        let mut ticker = tokio::time::interval(ECHO_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = core.ha_state();
        loop {
            // A new standby echoes at once rather than on the next tick.
            tokio::select! {
                _ = ticker.tick() => {}
                r = state.changed() => if r.is_err() { return },
            }
            if !core.current_state().is_standby() {
                conn = None;
                continue;
            }
            let Some(ad) = core.leader_advertisement().await else {
                continue;
            };
            let echo = plane.echo();
            let Ok(payload) = serde_json::to_vec(&echo) else {
                continue;
            };
            let generation = plane.tls.generation();
            let reuse =
                matches!(&conn, Some((a, g, _)) if *a == ad.cluster_addr && *g == generation);
            if !reuse {
                conn = match dial(
                    &plane.tls,
                    &ad.cluster_addr,
                    ALPN_HEARTBEAT,
                    DIAL_TIMEOUT,
                    MAX_ECHO_FRAME,
                )
                .await
                {
                    Ok((stream, g)) => Some((ad.cluster_addr.clone(), g, stream)),
                    Err(e) => {
                        tracing::debug!(active = %ad.cluster_addr, error = %e, "heartbeat: dialing the active node failed");
                        None
                    }
                };
            }
            if let Some((_, _, stream)) = conn.as_mut() {
                let sent = tokio::time::timeout(DIAL_TIMEOUT, async {
                    stream.send_flush(&payload).await?;
                    stream.recv_some().await
                })
                .await;
                if !matches!(sent, Ok(Ok(_))) {
                    tracing::debug!(active = %ad.cluster_addr, "heartbeat not acknowledged");
                    conn = None;
                }
            }
        }
    }

    /// On every node: one autopilot round per [`kura_core::autopilot::TICK`] (it acts only
    /// on the active node).
    pub async fn autopilot_loop(core: std::sync::Weak<Core>) {
        loop {
            tokio::time::sleep(kura_core::autopilot::TICK).await;
            let Some(core) = core.upgrade() else { return };
            core.autopilot_tick().await;
        }
    }

    impl RaftPlane {
        /// A plane over a started cluster node.
        pub fn new(
            node: Arc<ClusterNode>,
            tls: Arc<ClusterTls>,
            join_tls: Vec<(String, JoinTls)>,
        ) -> Self {
            RaftPlane {
                node,
                tls,
                idle: Mutex::new(Vec::new()),
                join_tls,
                echoes: Arc::new(EchoTable::default()),
                autopilot: Autopilot::new(),
                led_since: Mutex::new(None),
                desired_voter: AtomicBool::new(true),
            }
        }

        /// Sets whether this node wants to vote (`retry_join_as_non_voter` clears it).
        pub fn set_desired_voter(&self, voter: bool) {
            self.desired_voter.store(voter, Ordering::Relaxed);
        }

        /// The table of echoes this node records while active.
        pub fn echo_table(&self) -> Arc<EchoTable> {
            self.echoes.clone()
        }

        /// This node's heartbeat.
        fn echo(&self) -> Echo {
            let me = self.node.me();
            let applied = self
                .node
                .backend()
                .metrics()
                .borrow()
                .last_applied
                .map(|l| l.index)
                .unwrap_or(0);
            Echo {
                node_id: me.name.clone(),
                api_addr: me.api_addr.clone(),
                cluster_addr: me.cluster_addr.clone(),
                version: kura_core::VERSION.to_string(),
                voter: self.desired_voter.load(Ordering::Relaxed),
                applied_index: applied,
            }
        }

        fn client(&self, addr: &str) -> Result<Client, ClusterPlaneError> {
            // The settings of the block naming this leader; for an address given some other
            // way (`sys/storage/raft/join`), the first block's.
            let tls = self
                .join_tls
                .iter()
                .find(|(a, _)| a.trim_end_matches('/') == addr.trim_end_matches('/'))
                .or(self.join_tls.first())
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let cfg = ClientConfig {
                address: addr.to_string(),
                ca_cert: tls.ca_cert,
                client_cert: tls.client_cert,
                client_key: tls.client_key,
                tls_server_name: tls.server_name,
                timeout: Duration::from_secs(10),
                ..ClientConfig::default()
            };
            Client::new(cfg).map_err(|e| ClusterPlaneError::Join(e.to_string()))
        }

        async fn post(
            &self,
            addr: &str,
            path: &str,
            body: serde_json::Value,
        ) -> Result<serde_json::Value, ClusterPlaneError> {
            let resp = self
                .client(addr)?
                .request(kura_client::Method::PUT, path, &[], Some(body))
                .await
                .map_err(|e| ClusterPlaneError::Join(format!("{addr}: {e}")))?;
            if !resp.is_success() {
                return Err(ClusterPlaneError::Join(format!(
                    "{addr}: {}",
                    resp.api_error()
                )));
            }
            resp.json()
                .cloned()
                .ok_or_else(|| ClusterPlaneError::Join(format!("{addr}: empty answer")))
        }

        async fn exchange(
            &self,
            cluster_addr: &str,
            payload: &[u8],
        ) -> Result<Vec<u8>, ClusterPlaneError> {
            let generation = self.tls.generation();
            let pooled = {
                let mut idle = self.idle.lock().expect("forward pool");
                idle.iter()
                    .position(|(a, g, _)| a == cluster_addr && *g == generation)
                    .map(|i| idle.swap_remove(i).2)
            };
            if let Some(mut stream) = pooled {
                // A pooled connection may have been closed by the peer: retry once on a new one.
                if let Ok(reply) = send_recv(&mut stream, payload).await {
                    self.put_back(cluster_addr, generation, stream);
                    return Ok(reply);
                }
            }
            let (mut stream, generation) = dial(
                &self.tls,
                cluster_addr,
                ALPN_FORWARD,
                DIAL_TIMEOUT,
                MAX_FRAME,
            )
            .await
            .map_err(|e| ClusterPlaneError::Unreachable(e.to_string()))?;
            let reply = send_recv(&mut stream, payload).await?;
            self.put_back(cluster_addr, generation, stream);
            Ok(reply)
        }

        fn put_back(&self, addr: &str, generation: u64, stream: FramedStream) {
            let mut idle = self.idle.lock().expect("forward pool");
            if idle.len() < MAX_IDLE {
                idle.push((addr.to_string(), generation, stream));
            }
        }
    }

    async fn send_recv(
        stream: &mut FramedStream,
        payload: &[u8],
    ) -> Result<Vec<u8>, ClusterPlaneError> {
        let work = async {
            stream.send_flush(payload).await?;
            stream.recv_some().await
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, work).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ClusterPlaneError::Forward(e.to_string())),
            Err(_) => Err(ClusterPlaneError::Forward("timed out".into())),
        }
    }

    #[async_trait]
    impl ClusterPlane for RaftPlane {
        fn generate_identity(&self) -> Result<IdentityBytes, ClusterPlaneError> {
            Ok(ClusterIdentity::generate()
                .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?
                .to_bytes())
        }

        fn install_identity(&self, identity: &[u8]) -> Result<(), ClusterPlaneError> {
            let id = ClusterIdentity::from_bytes(identity)
                .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?;
            if id.fingerprint() == self.tls.identity().fingerprint() {
                return Ok(());
            }
            self.tls
                .set_identity(id, Vec::new())
                .map_err(|e| ClusterPlaneError::Identity(e.to_string()))?;
            self.node.transport().clear_pool();
            self.idle.lock().expect("forward pool").clear();
            tracing::info!("cluster identity installed");
            Ok(())
        }

        async fn forward(
            &self,
            cluster_addr: &str,
            req: &ForwardedRequest,
        ) -> Result<ForwardedResponse, ClusterPlaneError> {
            let payload =
                serde_json::to_vec(req).map_err(|e| ClusterPlaneError::Forward(e.to_string()))?;
            let reply = self.exchange(cluster_addr, &payload).await?;
            serde_json::from_slice(&reply).map_err(|e| ClusterPlaneError::Forward(e.to_string()))
        }

        fn peers(&self) -> Vec<RaftPeer> {
            self.node
                .peers()
                .into_iter()
                .map(|p| RaftPeer {
                    address: kura_cluster::listener::socket_target(&p.node.cluster_addr)
                        .map(str::to_string)
                        .unwrap_or_else(|_| p.node.cluster_addr.clone()),
                    api_address: p.node.api_addr.clone(),
                    cluster_address: p.node.cluster_addr.clone(),
                    node_id: p.node.name,
                    leader: p.leader,
                    voter: p.voter,
                })
                .collect()
        }

        fn autopilot_evaluate(&self, cfg: &AutopilotConfig) -> Option<AutopilotState> {
            let backend = self.node.backend();
            if !backend.is_leader() {
                *self.led_since.lock().expect("led since") = None;
                return None;
            }
            let m = backend.metrics().borrow().clone();
            let since = {
                let mut led = self.led_since.lock().expect("led since");
                match *led {
                    Some((term, since)) if term == m.current_term => since,
                    _ => {
                        self.autopilot.reset();
                        let now = tokio::time::Instant::now();
                        *led = Some((m.current_term, now));
                        now
                    }
                }
            };
            let me = backend.node_id();
            let leader_index = m.last_log_index.unwrap_or(0);
            let observed: Vec<ServerObservation> = self
                .node
                .peers()
                .into_iter()
                .map(|p| {
                    let leader = p.id == me;
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&p.id).copied().flatten());
                    let (last_term, last_index) = if leader {
                        (m.current_term, leader_index)
                    } else {
                        matched
                            .map(|l| (l.leader_id.term, l.index))
                            .unwrap_or((0, 0))
                    };
                    let last_contact = if leader {
                        Duration::ZERO
                    } else {
                        self.node
                            .last_contact(p.id)
                            .filter(|c| *c >= since)
                            .unwrap_or(since)
                            .elapsed()
                    };
                    ServerObservation {
                        address: kura_cluster::listener::socket_target(&p.node.cluster_addr)
                            .map(str::to_string)
                            .unwrap_or_else(|_| p.node.cluster_addr.clone()),
                        name: p.node.name,
                        voter: p.voter,
                        leader,
                        last_contact,
                        last_term,
                        last_index,
                    }
                })
                .collect();
            let fresh = self.echoes.fresh();
            let my_name = self.node.me().name.clone();
            let echo_of = |name: &str| {
                if name == my_name {
                    return Some((
                        self.desired_voter.load(Ordering::Relaxed),
                        kura_core::VERSION.to_string(),
                    ));
                }
                fresh
                    .iter()
                    .find(|(e, _)| e.node_id == name)
                    .map(|(e, _)| (e.voter, e.version.clone()))
            };
            Some(
                self.autopilot
                    .evaluate(cfg, &observed, echo_of, std::time::SystemTime::now()),
            )
        }

        async fn promote_peer(&self, node_id: &str) -> Result<(), ClusterPlaneError> {
            self.node
                .promote(node_id)
                .await
                .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
        }

        fn echoes(&self) -> Vec<(Echo, std::time::SystemTime)> {
            self.echoes.fresh()
        }

        async fn remove_peer(&self, node_id: &str) -> Result<(), ClusterPlaneError> {
            self.node
                .remove_peer(node_id, MEMBERSHIP_TIMEOUT)
                .await
                .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
        }

        async fn join_raft(
            &self,
            cluster_addr: &str,
            voter: bool,
        ) -> Result<(), ClusterPlaneError> {
            self.set_desired_voter(voter);
            self.node
                .join(cluster_addr, voter, MEMBERSHIP_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| ClusterPlaneError::Membership(e.to_string()))
        }

        fn node_id(&self) -> String {
            self.node.me().name.clone()
        }

        async fn bootstrap(&self) -> Result<(), ClusterPlaneError> {
            let backend = self.node.backend();
            let raft = backend.raft();
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| ClusterPlaneError::Membership(e.to_string()))?;
            if !initialized {
                tracing::info!(node = %self.node.me().name, "forming a new raft cluster");
                raft.initialize(std::collections::BTreeMap::from([(
                    backend.node_id(),
                    self.node.me().clone(),
                )]))
                .await
                .map_err(|e| ClusterPlaneError::Membership(e.to_string()))?;
            }
            let deadline = tokio::time::Instant::now() + MEMBERSHIP_TIMEOUT;
            while !backend.is_leader() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ClusterPlaneError::NoActive);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }

        async fn snapshot_save(&self) -> Result<Vec<u8>, ClusterPlaneError> {
            self.node
                .backend()
                .export_snapshot()
                .await
                .map_err(|e| ClusterPlaneError::Storage(e.to_string()))
        }

        async fn snapshot_read(
            &self,
            data: Vec<u8>,
        ) -> Result<Vec<(String, Vec<u8>)>, ClusterPlaneError> {
            self.node
                .backend()
                .read_snapshot(data)
                .await
                .map_err(|e| match e {
                    kura_storage::StorageError::Corrupt(m) => ClusterPlaneError::BadSnapshot(m),
                    other => ClusterPlaneError::Storage(other.to_string()),
                })
        }

        async fn snapshot_restore(
            &self,
            pairs: Vec<(String, Vec<u8>)>,
        ) -> Result<(), ClusterPlaneError> {
            self.node
                .backend()
                .restore_snapshot(pairs)
                .await
                .map(|_| ())
                .map_err(|e| ClusterPlaneError::Storage(e.to_string()))
        }

        async fn fetch_challenge(
            &self,
            leader_api_addr: &str,
            server_id: &str,
        ) -> Result<BootstrapChallenge, ClusterPlaneError> {
            let v = self
                .post(
                    leader_api_addr,
                    "sys/storage/raft/bootstrap/challenge",
                    serde_json::json!({ "server_id": server_id }),
                )
                .await?;
            serde_json::from_value(v).map_err(|e| ClusterPlaneError::Join(e.to_string()))
        }

        async fn send_answer(
            &self,
            leader_api_addr: &str,
            server_id: &str,
            answer: &str,
        ) -> Result<BootstrapAnswerReply, ClusterPlaneError> {
            let v = self
                .post(
                    leader_api_addr,
                    "sys/storage/raft/bootstrap/answer",
                    serde_json::json!({ "server_id": server_id, "answer": answer }),
                )
                .await?;
            serde_json::from_value(v).map_err(|e| ClusterPlaneError::Join(e.to_string()))
        }
    }

    /// Serves requests forwarded by standbys (`kura-forward/1`) through the HTTP pipeline.
    pub struct ForwardService {
        /// The core.
        pub core: Arc<Core>,
        /// Limits applied to forwarded requests (the first API listener's).
        pub settings: ListenerSettings,
    }

    #[async_trait]
    impl StreamHandler for ForwardService {
        async fn handle(&self, mut stream: FramedStream, peer: PeerInfo) {
            loop {
                let frame = match stream.recv().await {
                    Ok(Some(f)) => f,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(peer = %peer.remote_addr, error = %e, "forwarding stream ended");
                        return;
                    }
                };
                let req: ForwardedRequest = match serde_json::from_slice(&frame) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(peer = %peer.remote_addr, error = %e, "malformed forwarded request");
                        return;
                    }
                };
                let resp =
                    kura_http::handle_forwarded(self.core.clone(), &self.settings, req).await;
                let bytes = match serde_json::to_vec(&resp) {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if stream.send_flush(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}
