//! Orchestration: start the targets, set each scenario up on each, run alternating rounds
//! (bao, kura, ceiling, bao, kura, ceiling, ...) so that machine noise hits all of them, sample
//! CPU and memory per node, then the 3-node cluster scenarios and failover.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::ceiling;
use crate::lag::{self, LagKind, LagStorage, LagTarget};
use crate::loadgen::{self, LoadConfig, RequestGen, Schedule};
use crate::pg::{self, PgServer, PgSource};
use crate::procstat;
use crate::results::{
    median, Availability, BenchResults, Failover, Lag, Machine, Outcome, PgRun, Round,
    ScenarioResult, Summary, TargetInfo, PG_TOPOLOGY,
};
use crate::scenarios::{self, Placement, Scenario, SetupCtx, SetupError};
use crate::target::{CeilingProcess, Probe, Server, Storage, TargetKind};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Load shape for every run.
    pub load: LoadConfig,
    /// Rounds per target per scenario.
    pub rounds: usize,
    /// Single-node scenarios, by name, in order.
    pub scenarios: Vec<&'static Scenario>,
    /// Servers to compare (bao and/or kura).
    pub targets: Vec<TargetKind>,
    /// `bao` binary.
    pub bao: PathBuf,
    /// `kura` binary.
    pub kura: PathBuf,
    /// Keys in KV scenarios.
    pub keys: usize,
    /// Whether to measure the HTTP ceiling beside the scenarios that call for it.
    pub ceiling: bool,
    /// Scenarios run against a 3-node raft cluster (empty: no cluster).
    pub cluster_scenarios: Vec<&'static Scenario>,
    /// Failover measurements per target on the 3-node cluster (0: none).
    pub failovers: usize,
    /// Propagation delays to measure on the 3-node cluster (empty: none).
    pub lags: Vec<LagKind>,
    /// Samples per propagation measurement.
    pub lag_samples: usize,
    /// The command line to record as the way to reproduce the run.
    pub command: String,
    /// Scenarios run on nodes sharing one PostgreSQL database (empty: none).
    pub pg_scenarios: Vec<&'static Scenario>,
    /// Propagation delays to measure on PostgreSQL (empty: none).
    pub pg_lags: Vec<LagKind>,
    /// Failover measurements per target on PostgreSQL (0: none).
    pub pg_failovers: usize,
    /// Nodes per target on PostgreSQL.
    pub pg_nodes: usize,
    /// Where the PostgreSQL server comes from.
    pub pg_source: PgSource,
}

impl BenchOptions {
    /// Whether anything runs on PostgreSQL.
    pub fn wants_postgres(&self) -> bool {
        !self.pg_scenarios.is_empty() || !self.pg_lags.is_empty() || self.pg_failovers > 0
    }
}

/// A server that started, with the token the load uses.
struct Running {
    kind: TargetKind,
    server: Server,
    token: String,
    /// Node the load is sent to (the active one).
    active: usize,
}

impl Running {
    async fn start(
        kind: TargetKind,
        binary: &Path,
        nodes: usize,
        storage: &Storage,
    ) -> Result<Self, String> {
        let server = Server::start_on(kind, binary, nodes, storage)
            .await
            .map_err(|e| e.to_string())?;
        let active = server
            .active()
            .await
            .ok_or_else(|| "no active node after start-up".to_string())?;
        let root = server.root_api(active);
        let token = match scenarios::prepare_token(&root).await {
            Ok(Some(t)) => t,
            Ok(None) => server.keys.root_token.clone(),
            Err(e) => return Err(format!("token setup: {e}")),
        };
        Ok(Self {
            kind,
            server,
            token,
            active,
        })
    }

    fn policy_token(&self) -> bool {
        self.token != self.server.keys.root_token
    }

    /// Addresses the load of a scenario with `placement` goes to, `active` being the active
    /// node's index.
    fn addrs(&self, placement: Placement, active: usize) -> Vec<SocketAddr> {
        let nodes = &self.server.nodes;
        match placement {
            Placement::Active => vec![nodes[active].addr],
            Placement::Standbys => (0..nodes.len())
                .filter(|&i| i != active)
                .map(|i| nodes[i].addr)
                .collect(),
            Placement::AllNodes => nodes.iter().map(|n| n.addr).collect(),
        }
    }

    fn ctx(&self, keys: usize, active: usize) -> SetupCtx {
        SetupCtx {
            root: self.server.root_api(active),
            token: self.token.clone(),
            keys,
        }
    }
}

/// Something a round can be run against.
struct Runnable {
    kind: TargetKind,
    addrs: Vec<SocketAddr>,
    /// Index of the active node among `pids` (cluster runs).
    active: Option<usize>,
    pids: Vec<u32>,
    /// The database server's postmaster, whose process tree's CPU is measured too.
    db_pid: Option<u32>,
    gen: Arc<dyn RequestGen>,
}

/// CPU and memory sampled over one measured window.
struct Samples {
    /// CPU seconds per pid.
    cpu: Vec<f64>,
    /// Largest RSS per pid, KiB.
    rss: Vec<u64>,
    /// CPU seconds of the load generator.
    self_cpu: f64,
    /// CPU seconds of the database server's process tree.
    db_cpu: Option<f64>,
}

/// Samples CPU of every pid (and of the database server's process tree) at the window's start
/// and end and RSS during it.
async fn sample_processes(pids: Vec<u32>, db_pid: Option<u32>, schedule: Schedule) -> Samples {
    let me = std::process::id();
    let db_cpu = || db_pid.and_then(|p| procstat::tree_cpu_seconds(p).ok());
    tokio::time::sleep_until(schedule.measure_start.into()).await;
    let db0 = db_cpu();
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|&p| procstat::cpu_seconds(p).unwrap_or(0.0))
        .collect();
    let self0 = procstat::cpu_seconds(me).unwrap_or(0.0);
    let mut rss = vec![0u64; pids.len()];
    loop {
        for (i, &p) in pids.iter().enumerate() {
            rss[i] = rss[i].max(procstat::rss_kib(p).unwrap_or(0));
        }
        let now = Instant::now();
        if now >= schedule.end {
            break;
        }
        let next = (now + Duration::from_millis(250)).min(schedule.end);
        tokio::time::sleep_until(next.into()).await;
    }
    let cpu1: Vec<f64> = pids
        .iter()
        .map(|&p| procstat::cpu_seconds(p).unwrap_or(0.0))
        .collect();
    let self1 = procstat::cpu_seconds(me).unwrap_or(0.0);
    let db1 = db_cpu();
    let delta = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| (b - a).max(0.0))
        .collect();
    Samples {
        cpu: delta,
        rss,
        self_cpu: (self1 - self0).max(0.0),
        db_cpu: db0.zip(db1).map(|(a, b)| (b - a).max(0.0)),
    }
}

/// Runs one measured round.
async fn run_round(target: &Runnable, load: &LoadConfig) -> Result<Round, String> {
    let schedule = Schedule::starting_now(load);
    let sampler = tokio::spawn(sample_processes(
        target.pids.clone(),
        target.db_pid,
        schedule,
    ));
    let result = loadgen::run_spread(&target.addrs, load, schedule, target.gen.clone())
        .await
        .map_err(|e| e.to_string());
    let samples = sampler.await.map_err(|e| e.to_string())?;
    let result = result?;
    let mut round = Round::new(&result, &samples.cpu, samples.rss, samples.self_cpu);
    if result.ok > 0 {
        round.db_cpu_s_per_1k = samples.db_cpu.map(|c| c * 1000.0 / result.ok as f64);
    }
    Ok(round)
}

fn print_round(scenario: &str, kind: TargetKind, round: usize, r: &Round) {
    eprintln!(
        "  {scenario:<16} {:<8} round {:>2}: {:>10.0} req/s  p50 {:>8}  p99 {:>8}  errors {}",
        kind.name(),
        round + 1,
        r.throughput,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        r.errors()
    );
}

/// Formats microseconds as `123µs`, `4.5ms` or `1.2s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// Where a scenario runs: topology name, targets, and the database server's postmaster (whose
/// CPU is measured with the targets'), if any.
struct Stage<'a> {
    topology: &'a str,
    running: &'a [Running],
    skipped: &'a [(TargetKind, bool)],
    db_pid: Option<u32>,
}

/// Sets `scenario` up on every running server and runs the alternating rounds.
async fn run_scenario(
    opts: &BenchOptions,
    scenario: &'static Scenario,
    stage: &Stage<'_>,
    ceiling: &mut Option<CeilingProcess>,
    want_ceiling: bool,
) -> ScenarioResult {
    let Stage {
        topology,
        running,
        skipped,
        db_pid,
    } = *stage;
    eprintln!("scenario {} ({topology})", scenario.name);
    let mut outcomes: BTreeMap<TargetKind, Outcome> = BTreeMap::new();
    for &(kind, missing) in skipped {
        outcomes.insert(kind, Outcome::Skipped { missing });
    }
    let mut runnables = Vec::new();
    let mut notes = Vec::new();
    for r in running {
        // The active node as of now: an earlier scenario may have seen it change.
        let active = match r.server.active().await {
            Some(a) => a,
            None => r.active,
        };
        if active != r.active {
            notes.push((
                r.kind,
                format!(
                    "active node was {} before this scenario (was {})",
                    r.server.nodes[active].id, r.server.nodes[r.active].id
                ),
            ));
        }
        let addrs = r.addrs(scenario.placement, active);
        if addrs.is_empty() {
            outcomes.insert(
                r.kind,
                Outcome::Unsupported {
                    detail: format!("no {} node to send the load to", scenario.placement.name()),
                },
            );
            continue;
        }
        let ctx = r.ctx(opts.keys, active);
        let started = Instant::now();
        match (scenario.setup)(&ctx).await {
            Ok(prepared) => {
                eprintln!(
                    "  setup on {} took {:.1} s",
                    r.kind,
                    started.elapsed().as_secs_f64()
                );
                runnables.push(Runnable {
                    kind: r.kind,
                    addrs,
                    active: (r.server.nodes.len() > 1).then_some(active),
                    pids: r.server.pids(),
                    db_pid,
                    gen: prepared.gen,
                });
            }
            Err(SetupError::Unsupported(e)) => {
                eprintln!("  {} does not support {}: {e}", r.kind, scenario.name);
                outcomes.insert(
                    r.kind,
                    Outcome::Unsupported {
                        detail: e.to_string(),
                    },
                );
            }
            Err(e) => {
                eprintln!("  setup of {} on {} failed: {e}", scenario.name, r.kind);
                outcomes.insert(
                    r.kind,
                    Outcome::Failed {
                        detail: e.to_string(),
                    },
                );
            }
        }
    }
    if scenario.with_ceiling && want_ceiling && ceiling.is_none() {
        *ceiling = start_ceiling(&runnables).await;
    }
    if let (true, true, Some(c)) = (scenario.with_ceiling, want_ceiling, ceiling.as_ref()) {
        // Same paths as the servers get; the ceiling answers them all alike.
        let gen = runnables
            .first()
            .map(|r| r.gen.clone())
            .unwrap_or_else(|| Arc::new(|_c: usize, _s: u64| loadgen::RequestSpec::get("/")));
        runnables.push(Runnable {
            kind: TargetKind::Ceiling,
            addrs: vec![c.addr],
            active: None,
            pids: vec![c.pid()],
            db_pid: None,
            gen,
        });
    }
    let active_node: BTreeMap<TargetKind, usize> = runnables
        .iter()
        .filter_map(|t| Some((t.kind, t.active?)))
        .collect();
    let mut rounds: BTreeMap<TargetKind, Vec<Round>> = BTreeMap::new();
    let mut failed: BTreeMap<TargetKind, String> = BTreeMap::new();
    for round in 0..opts.rounds {
        for t in &runnables {
            if failed.contains_key(&t.kind) {
                continue;
            }
            match run_round(t, &opts.load).await {
                Ok(r) => {
                    print_round(scenario.name, t.kind, round, &r);
                    rounds.entry(t.kind).or_default().push(r);
                }
                Err(e) => {
                    eprintln!("  {} round {} failed: {e}", t.kind, round + 1);
                    failed.insert(t.kind, e);
                }
            }
        }
    }
    // A change of active node under the load bears on the figures (errors, stalls).
    for t in &runnables {
        let (Some(before), Some(r)) = (t.active, running.iter().find(|r| r.kind == t.kind)) else {
            continue;
        };
        let now = r.server.active().await;
        if now != Some(before) {
            let now = now.map_or("none".to_owned(), |i| r.server.nodes[i].id.clone());
            let note = format!(
                "the active node changed during the rounds ({} before, {now} after)",
                r.server.nodes[before].id
            );
            eprintln!("  {}: {note}", t.kind);
            notes.push((t.kind, note));
        }
    }
    for t in &runnables {
        let outcome = match (failed.remove(&t.kind), rounds.remove(&t.kind)) {
            (Some(detail), _) => Outcome::Failed { detail },
            (None, Some(rounds)) => {
                let summary = Summary::of(&rounds);
                Outcome::Ran { rounds, summary }
            }
            (None, None) => Outcome::Failed {
                detail: "no rounds ran".into(),
            },
        };
        outcomes.insert(t.kind, outcome);
    }
    ScenarioResult {
        name: scenario.name.to_owned(),
        description: scenario.description.to_owned(),
        topology: topology.to_owned(),
        targets: outcomes,
        placement: scenario.placement.name().to_owned(),
        active_node,
        notes,
    }
}

/// Size of the answer to the first request `gen` makes, sent to `addr` (to size the ceiling's
/// body like a real answer).
async fn answer_size(addr: SocketAddr, gen: &dyn RequestGen) -> Option<usize> {
    let spec = gen.next(0, 0);
    let mut api = Api::new(addr);
    if let Some(t) = &spec.token {
        api = api.with_token(t);
    }
    let body: Option<serde_json::Value> = match &spec.body {
        Some(b) => Some(serde_json::from_slice(b).ok()?),
        None => None,
    };
    let (status, answer) = api
        .raw(spec.method.clone(), &spec.path, body.as_ref())
        .await
        .ok()?;
    status.is_success().then_some(answer.len())
}

/// Starts the ceiling server with a body as large as `runnables[0]`'s answer.
async fn start_ceiling(runnables: &[Runnable]) -> Option<CeilingProcess> {
    let mut size = ceiling::DEFAULT_BODY_BYTES;
    if let Some(r) = runnables.first() {
        if let Some(n) = answer_size(r.addrs[0], r.gen.as_ref()).await {
            size = n;
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find own executable for the ceiling: {e}");
            return None;
        }
    };
    match CeilingProcess::start(&exe, size).await {
        Ok(c) => {
            eprintln!("  ceiling server up at {} ({size}-byte body)", c.addr);
            Some(c)
        }
        Err(e) => {
            eprintln!("  ceiling server failed to start: {e}");
            None
        }
    }
}

fn binary(opts: &BenchOptions, kind: TargetKind) -> PathBuf {
    match kind {
        TargetKind::Bao => opts.bao.clone(),
        _ => opts.kura.clone(),
    }
}

/// Starts every target as `nodes`-node servers (on raft, or each on a fresh database of `pg`);
/// returns the running ones, the infos, and the targets that did not start (with `true` when
/// the binary is missing).
async fn start_targets(
    opts: &BenchOptions,
    nodes: usize,
    pg: Option<&PgServer>,
) -> (Vec<Running>, Vec<TargetInfo>, Vec<(TargetKind, bool)>) {
    let mut running = Vec::new();
    let mut infos = Vec::new();
    let mut skipped = Vec::new();
    for &kind in &opts.targets {
        let bin = binary(opts, kind);
        eprintln!("starting {kind} ({nodes} node(s)) from {}", bin.display());
        let availability;
        let mut info = TargetInfo {
            kind,
            binary: bin.display().to_string(),
            availability: Availability::Ok,
            version: None,
            idle_rss_kib: Vec::new(),
            policy_token: false,
        };
        if !bin.is_file() {
            eprintln!(
                "  {kind}: binary not found at {} — reported as missing",
                bin.display()
            );
            availability = Availability::Missing(format!("not found: {}", bin.display()));
            skipped.push((kind, true));
        } else {
            let storage = match pg {
                None => Ok(Storage::Raft),
                Some(pg) => pg
                    .fresh_database(&pg::database_name(kind))
                    .await
                    .map(|url| Storage::Postgres { url })
                    .map_err(|e| format!("database setup: {e}")),
            };
            let started = match storage {
                Ok(storage) => Running::start(kind, &bin, nodes, &storage).await,
                Err(e) => Err(e),
            };
            match started {
                Ok(r) => {
                    // Let start-up work settle before calling the memory idle.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    info.idle_rss_kib = r
                        .server
                        .pids()
                        .iter()
                        .map(|&p| procstat::rss_kib(p).unwrap_or(0))
                        .collect();
                    info.version = r.server.version().await;
                    info.policy_token = r.policy_token();
                    eprintln!(
                        "  {kind} {} up, idle RSS {:?} KiB",
                        info.version.as_deref().unwrap_or("?"),
                        info.idle_rss_kib
                    );
                    availability = Availability::Ok;
                    running.push(r);
                }
                Err(e) => {
                    eprintln!("  {kind} failed to start: {e}");
                    availability = Availability::Failed(e);
                    skipped.push((kind, false));
                }
            }
        }
        info.availability = availability;
        infos.push(info);
    }
    (running, infos, skipped)
}

/// Runs the whole benchmark.
pub async fn run(opts: &BenchOptions) -> BenchResults {
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default();
    let mut results = BenchResults {
        date,
        command: opts.command.clone(),
        machine: Machine::detect(),
        connections: opts.load.connections,
        warmup_s: opts.load.warmup.as_secs_f64(),
        duration_s: opts.load.duration.as_secs_f64(),
        rounds: opts.rounds,
        keys: opts.keys,
        targets: Vec::new(),
        scenarios: Vec::new(),
        cluster_targets: Vec::new(),
        failover: Vec::new(),
        lags: Vec::new(),
        postgres: None,
    };

    // Single node.
    if !opts.scenarios.is_empty() {
        let (running, infos, skipped) = start_targets(opts, 1, None).await;
        results.targets = infos;
        let mut ceiling: Option<CeilingProcess> = None;
        for &scenario in &opts.scenarios {
            let stage = Stage {
                topology: "single",
                running: &running,
                skipped: &skipped,
                db_pid: None,
            };
            let r = run_scenario(opts, scenario, &stage, &mut ceiling, opts.ceiling).await;
            results.scenarios.push(r);
        }
        drop(ceiling);
        drop(running);
    }

    // 3-node cluster.
    if !opts.cluster_scenarios.is_empty() || !opts.lags.is_empty() || opts.failovers > 0 {
        let (mut running, infos, skipped) = start_targets(opts, 3, None).await;
        if results.targets.is_empty() {
            results.targets = infos.clone();
        }
        results.cluster_targets = infos;
        for &scenario in &opts.cluster_scenarios {
            let stage = Stage {
                topology: "cluster3",
                running: &running,
                skipped: &skipped,
                db_pid: None,
            };
            let r = run_scenario(opts, scenario, &stage, &mut None, false).await;
            results.scenarios.push(r);
        }
        results.lags = measure_lags(&running, &opts.lags, LagStorage::Raft, opts.lag_samples).await;
        if opts.failovers > 0 {
            for r in &mut running {
                results
                    .failover
                    .push(measure_failover(r, opts.failovers, Probe::Read).await);
            }
        }
    }

    if opts.wants_postgres() {
        results.postgres = Some(run_postgres(opts, &mut results.scenarios).await);
    }
    results
}

/// The PostgreSQL part: one database server, each target's nodes on a fresh database of it,
/// the scenarios (results appended to `scenarios`), then the failovers.
async fn run_postgres(opts: &BenchOptions, scenarios: &mut Vec<ScenarioResult>) -> PgRun {
    let mut run = PgRun {
        server: match &opts.pg_source {
            PgSource::Script(s) => format!("started by the harness from {}", s.display()),
            PgSource::Url(u) => pg::redact(u),
        },
        nodes: opts.pg_nodes,
        ..PgRun::default()
    };
    eprintln!("PostgreSQL: {}", run.server);
    let server = match PgServer::start(&opts.pg_source).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("  PostgreSQL server not available: {e}");
            run.error = Some(e.to_string());
            return run;
        }
    };
    eprintln!(
        "  PostgreSQL {} at {}",
        server.version,
        pg::redact(&server.url)
    );
    run.version = Some(server.version.clone());
    let (mut running, infos, skipped) = start_targets(opts, opts.pg_nodes, Some(&server)).await;
    run.targets = infos;
    for &scenario in &opts.pg_scenarios {
        let stage = Stage {
            topology: PG_TOPOLOGY,
            running: &running,
            skipped: &skipped,
            db_pid: server.postmaster_pid,
        };
        let r = run_scenario(opts, scenario, &stage, &mut None, false).await;
        scenarios.push(r);
    }
    run.lags = measure_lags(
        &running,
        &opts.pg_lags,
        LagStorage::Postgres,
        opts.lag_samples,
    )
    .await;
    if opts.pg_failovers > 0 {
        for r in &mut running {
            run.failover
                .push(measure_failover(r, opts.pg_failovers, Probe::Write).await);
        }
    }
    // The nodes go before the database server they use.
    drop(running);
    drop(server);
    run
}

/// Measures each of `kinds` on every running target (nodes on `storage`), `samples` samples
/// each, with the active node as of the start of each measurement.
async fn measure_lags(
    running: &[Running],
    kinds: &[LagKind],
    storage: LagStorage,
    samples: usize,
) -> Vec<Lag> {
    let mut lags = Vec::new();
    for &kind in kinds {
        for r in running {
            // An earlier scenario may have seen the active node change.
            let active = r.server.active().await.unwrap_or(r.active);
            let target = LagTarget {
                kind: r.kind,
                active: r.server.root_api(active),
                standbys: (0..r.server.nodes.len())
                    .filter(|&i| i != active)
                    .map(|i| r.server.nodes[i].api())
                    .collect(),
                token: r.token.clone(),
            };
            lags.push(lag::measure(&target, kind, storage, samples).await);
        }
    }
    lags
}

/// Kills the active node `runs` times and times the hand-over until the new active node
/// answers `probe`.
async fn measure_failover(r: &mut Running, runs: usize, probe_kind: Probe) -> Failover {
    eprintln!("failover on {} ({runs} runs)", r.kind);
    if let Some(a) = r.server.active().await {
        r.active = a;
    }
    let mut times = Vec::new();
    let mut error = None;
    // A KV v1 secret to read through the new active node.
    let probe = "/v1/bench-failover/probe";
    let setup = async {
        let root = r.server.root_api(r.active);
        root.post(
            "/v1/sys/mounts/bench-failover",
            &serde_json::json!({ "type": "kv", "options": { "version": "1" } }),
        )
        .await?;
        root.post(probe, &serde_json::json!({ "value": "probe" }))
            .await
    };
    if let Err(e) = setup.await {
        error = Some(format!("failover setup: {e}"));
    } else {
        for i in 0..runs {
            match r
                .server
                .failover_once(&r.token, probe_kind, probe, Duration::from_secs(120))
                .await
            {
                Ok(t) => {
                    eprintln!(
                        "  run {}: new active {} after {:.3} s",
                        i + 1,
                        match probe_kind {
                            Probe::Read => "answering a read",
                            Probe::Write => "accepting a write",
                        },
                        t.as_secs_f64()
                    );
                    times.push(t.as_secs_f64());
                }
                Err(e) => {
                    eprintln!("  run {} failed: {e}", i + 1);
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(a) = r.server.active().await {
            r.active = a;
        }
    }
    Failover {
        kind: r.kind,
        median_s: median(&times),
        max_s: times.iter().copied().fold(0.0, f64::max),
        times_s: times,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(targets: Vec<TargetKind>, bao: PathBuf, scenarios: &[&str]) -> BenchOptions {
        BenchOptions {
            load: LoadConfig {
                connections: 4,
                warmup: Duration::from_millis(200),
                duration: Duration::from_millis(500),
            },
            rounds: 2,
            scenarios: scenarios
                .iter()
                .map(|n| scenarios::find(n).unwrap())
                .collect(),
            targets,
            bao,
            kura: PathBuf::from("/nonexistent/kura"),
            keys: 20,
            // The ceiling runs as `current_exe() ceiling`, which in a test is the test binary.
            ceiling: false,
            cluster_scenarios: Vec::new(),
            failovers: 0,
            lags: Vec::new(),
            lag_samples: 0,
            command: "test".into(),
            pg_scenarios: Vec::new(),
            pg_lags: Vec::new(),
            pg_failovers: 0,
            pg_nodes: 3,
            pg_source: PgSource::Script(PathBuf::from("/nonexistent/scripts/postgres")),
        }
    }

    #[tokio::test]
    async fn missing_targets_are_reported_not_fatal() {
        let opts = options(
            vec![TargetKind::Bao, TargetKind::Kura],
            PathBuf::from("/nonexistent/bao"),
            &["seal_status", "kvv2_read"],
        );
        let r = run(&opts).await;
        assert_eq!(r.targets.len(), 2);
        assert!(r
            .targets
            .iter()
            .all(|t| matches!(t.availability, Availability::Missing(_))));
        assert_eq!(r.scenarios.len(), 2);
        for s in &r.scenarios {
            assert!(matches!(
                s.targets[&TargetKind::Kura],
                Outcome::Skipped { missing: true }
            ));
            assert!(matches!(
                s.targets[&TargetKind::Bao],
                Outcome::Skipped { missing: true }
            ));
            assert_eq!(s.ratio(), None);
        }
    }

    /// The `bao` binary: `$KURA_TEST_BAO_BIN`, else the workspace's `.venv/bin/bao`, else `bao`
    /// on `PATH`. Without one the smoke run prints a SKIPPED line and passes, unless `CI` or
    /// `KURA_TEST_REQUIRE_BAO` is set (as `scripts/test` does), when it fails.
    fn bao_binary() -> Option<PathBuf> {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/bao");
        let on_path = || {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("bao"))
                    .find(|p| p.is_file())
            })
        };
        let found = match std::env::var_os("KURA_TEST_BAO_BIN") {
            Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
            None if venv.is_file() => Some(venv),
            None => on_path(),
        };
        if found.is_none() {
            let msg = "kura-bench harness_against_bao: `bao` is not installed \
                       (run scripts/install-test-deps)";
            if std::env::var_os("CI").is_some()
                || std::env::var_os("KURA_TEST_REQUIRE_BAO").is_some()
            {
                panic!("{msg}");
            }
            use std::io::Write as _;
            // Straight to stderr so the skip shows in a normal `cargo test` run.
            let _ = writeln!(std::io::stderr(), "SKIPPED {msg}");
        }
        found
    }

    /// A smoke run of the whole harness against a real bao: start, init, unseal, policy token,
    /// setup of each scenario, two alternating rounds of load, CPU and memory sampling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn harness_against_bao() {
        let Some(bao) = bao_binary() else {
            return;
        };
        let opts = options(
            vec![TargetKind::Bao, TargetKind::Kura],
            bao,
            &["seal_status", "kvv2_read", "kvv1_write", "approle_login"],
        );
        let r = run(&opts).await;
        let bao = r.target(TargetKind::Bao).unwrap();
        assert!(matches!(bao.availability, Availability::Ok), "{bao:?}");
        assert!(bao.policy_token);
        assert!(bao.idle_rss_kib[0] > 10_000);
        for s in &r.scenarios {
            let Outcome::Ran { rounds, summary } = &s.targets[&TargetKind::Bao] else {
                panic!(
                    "{} did not run on bao: {:?}",
                    s.name,
                    s.targets[&TargetKind::Bao]
                );
            };
            assert_eq!(rounds.len(), 2);
            assert!(summary.ok > 0, "{}", s.name);
            assert_eq!(summary.errors, 0, "{}: {:?}", s.name, rounds[0].first_error);
            assert!(summary.cpu_s_per_1k[0] > 0.0);
            assert!(summary.rss_load_kib[0] > 10_000);
            assert!(summary.p50_us <= summary.p99_us && summary.p99_us <= summary.max_us);
            assert!(matches!(
                s.targets[&TargetKind::Kura],
                Outcome::Skipped { missing: true }
            ));
        }
    }
}
