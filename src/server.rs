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

/// The storage built from the configuration.
struct BuiltStorage {
    /// What the core stores through.
    backend: Arc<dyn Backend>,
    /// With raft storage: the cluster node.
    raft: Option<RaftParts>,
    /// With PostgreSQL as the data store: its handle (commit stream, replica waits).
    postgres: Option<kura_postgres::PostgresBackend>,
}

/// The clustered parts of a raft node.
struct RaftParts {
    node: Arc<kura_cluster::ClusterNode>,
    tls: Arc<kura_cluster::ClusterTls>,
    retry_join: Vec<String>,
    voter: bool,
    join_tls: Vec<(String, plane::JoinTls)>,
}

async fn build_storage(cfg: &Config, cluster_bind: SocketAddr) -> anyhow::Result<BuiltStorage> {
    let storage = cfg.storage.as_ref().ok_or_else(|| {
        anyhow!("no storage block in the configuration: a \"storage\" stanza is required")
    })?;
    let built = build_backend(storage, cfg, cluster_bind).await?;
    let Some(ha_storage) = cfg.ha_storage.as_ref() else {
        return Ok(built);
    };
    // `ha_storage`: the HA lock from another backend.
    if built.raft.is_some() {
        bail!("ha_storage cannot be used with storage \"raft\": raft provides its own HA");
    }
    if ha_storage.kind == "raft" {
        bail!("ha_storage \"raft\" is not supported by Kura (supported: postgresql)");
    }
    let ha = Box::pin(build_backend(ha_storage, cfg, cluster_bind))
        .await?
        .backend;
    let split = kura_storage::SplitHaBackend::new(built.backend, &ha).ok_or_else(|| {
        anyhow!(
            "ha_storage \"{}\" offers no HA lock (for postgresql set ha_enabled = \"true\")",
            ha_storage.kind
        )
    })?;
    Ok(BuiltStorage {
        backend: Arc::new(split),
        raft: None,
        postgres: built.postgres,
    })
}

/// Builds one backend from a `storage` (or `ha_storage`) block.
async fn build_backend(
    storage: &kura_config::StorageConfig,
    cfg: &Config,
    cluster_bind: SocketAddr,
) -> anyhow::Result<BuiltStorage> {
    match storage.kind.as_str() {
        "inmem" => Ok(BuiltStorage {
            backend: Arc::new(InmemBackend::new()),
            raft: None,
            postgres: None,
        }),
        "postgresql" => {
            // Options as OpenBao hands them over (strings); BAO_PG_CONNECTION_URL was applied
            // by the configuration already.
            let opts: BTreeMap<String, String> = kura_postgres::KNOWN_OPTIONS
                .iter()
                .filter_map(|k| Some((k.to_string(), storage.option_str(k)?)))
                .collect();
            let opts = kura_postgres::PostgresOptions::from_map(&opts)?;
            let backend = kura_postgres::PostgresBackend::connect(opts).await?;
            Ok(BuiltStorage {
                backend: Arc::new(backend.clone()),
                raft: None,
                postgres: Some(backend),
            })
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
            Ok(BuiltStorage {
                backend,
                raft: Some(RaftParts {
                    node: Arc::new(node),
                    tls,
                    retry_join,
                    voter: !raft_cfg.retry_join_as_non_voter,
                    join_tls,
                }),
                postgres: None,
            })
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

    let BuiltStorage {
        backend: physical,
        raft,
        postgres,
    } = build_storage(&cfg, cluster_bind).await?;
    let storage_name = physical.name();
    let ha = physical.ha_lock().is_some();
    // An HA backend that does not report the other nodes' writes cannot keep a read cache
    // coherent across a change of active node: no cache there. (PostgreSQL reports them
    // through the active node's invalidation stream.)
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
        let echoer = plane.clone();
        tokio::spawn(plane::heartbeat_loop(
            core.clone(),
            parts.tls.clone(),
            move || echoer.echo(),
        ));
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
    } else if ha {
        // HA without raft (PostgreSQL): a cluster port for forwarding, heartbeats and the
        // invalidation stream.
        let name = kura_cluster::listener::socket_target(cfg.cluster_addr.as_deref().unwrap_or(""))
            .map(str::to_string)
            .unwrap_or_else(|_| cluster_bind.to_string());
        let plane = plane::ha::HaPlane::start(cluster_bind, name.clone()).await?;
        core.set_cluster_plane(plane.clone());
        plane.listener().register(
            kura_cluster::ALPN_HEARTBEAT,
            Arc::new(plane::HeartbeatService {
                echoes: plane.echo_table(),
            }),
        );
        plane.listener().register(
            kura_cluster::ALPN_FORWARD,
            Arc::new(plane::ForwardService {
                core: core.clone(),
                settings: forward_settings,
            }),
        );
        let echo_core = Arc::downgrade(&core);
        let api_addr = cfg.api_addr.clone().unwrap_or_default();
        let cluster_addr = cfg.cluster_addr.clone().unwrap_or_default();
        tokio::spawn(plane::heartbeat_loop(
            core.clone(),
            plane.tls(),
            move || kura_core::autopilot::Echo {
                node_id: name.clone(),
                api_addr: api_addr.clone(),
                cluster_addr: cluster_addr.clone(),
                version: kura_core::VERSION.to_string(),
                voter: false,
                applied_index: echo_core.upgrade().map_or(0, |c| c.applied_index()),
            },
        ));
        if let Some(pg) = postgres.clone() {
            plane.listener().register(
                kura_cluster::ALPN_INVALIDATE,
                Arc::new(plane::ha::InvalidationService {
                    core: Arc::downgrade(&core),
                    backend: pg.clone(),
                }),
            );
            // A standby serves reads only while it follows the active node's stream.
            core.set_standby_reads_ready(false).await;
            tokio::spawn(plane::ha::follow_active(
                Arc::downgrade(&core),
                plane.tls(),
                pg,
            ));
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

mod plane;
