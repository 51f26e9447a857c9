//! The `kura-bench` binary: `run` compares Kura with OpenBao, `ceiling` serves the fixed HTTP
//! answer that marks the machine's ceiling, `list` names the scenarios.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use http::StatusCode;

use kura_bench::lag::{LagKind, LagStorage, LAGS};
use kura_bench::pg::PgSource;
use kura_bench::results::Availability;
use kura_bench::runner::{self, BenchOptions};
use kura_bench::scenarios::{self, Placement, Scenario, PG_SCENARIOS, SCENARIOS};
use kura_bench::target::TargetKind;
use kura_bench::{ceiling, parse_duration, report, LoadConfig};

/// Benchmarks Kura against OpenBao side by side on loopback.
#[derive(Parser)]
#[command(name = "kura-bench", version, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark and write the results, BENCHMARKS.md and the chart.
    Run(Box<RunArgs>),
    /// Serve a fixed KV-v2-read-sized JSON answer: the machine's HTTP ceiling.
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8300")]
        listen: SocketAddr,
        /// Size of the body in bytes.
        #[arg(long, default_value_t = ceiling::DEFAULT_BODY_BYTES)]
        body_bytes: usize,
        /// HTTP status to answer with.
        #[arg(long, default_value_t = 200)]
        status: u16,
    },
    /// List the scenarios.
    List,
}

/// Options of `run`; a repeated option takes its last value (so scripts can set defaults).
#[derive(clap::Args)]
#[command(args_override_self = true)]
struct RunArgs {
    /// Measured window per run (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up before each window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Alternating rounds per target per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Single-node scenarios: comma-separated names, `default`, `all` or `none`.
    #[arg(long, default_value = "default")]
    scenarios: String,
    /// Scenarios to run on a 3-node raft cluster: names, `default`, `all` or `none`. Beside the
    /// single-node names: `kvv2_read_standbys` (load on the two standbys only) and
    /// `kvv2_read_spread` (load over all three nodes), which bring `kvv2_read` (load on the
    /// active node) along as their baseline, and the propagation delays `kvv2_lag` and
    /// `revoke_lag`.
    #[arg(long, default_value = "none")]
    cluster_scenarios: String,
    /// Samples per propagation delay (`kvv2_lag`, `revoke_lag`, `pg_kvv2_lag`, `pg_revoke_lag`).
    #[arg(long, default_value_t = 300)]
    lag_samples: usize,
    /// Failover measurements (kill -9 of the active node) per target on a 3-node cluster.
    #[arg(long, default_value_t = 0)]
    failovers: usize,
    /// Scenarios on PostgreSQL storage: names (`kura-bench list`), `default`, `all` or `none`.
    /// Each target's nodes share one fresh database (`bench_bao`, `bench_kura`) on one
    /// PostgreSQL server; the load goes to the active node, except for `pg_kvv2_read_standbys`
    /// (the standbys only) and `pg_kvv2_read_spread` (every node), which bring `pg_kvv2_read`
    /// along as their baseline. The propagation delays `pg_kvv2_lag` and `pg_revoke_lag`
    /// (part of `default`) are measured as `kvv2_lag` and `revoke_lag` are on raft.
    #[arg(long, default_value = "none")]
    pg_scenarios: String,
    /// Failover measurements (kill -9 of the active node, until a write is accepted) per target
    /// on PostgreSQL storage.
    #[arg(long, default_value_t = 0)]
    pg_failovers: usize,
    /// Nodes per target on PostgreSQL storage.
    #[arg(long, default_value_t = 3)]
    pg_nodes: usize,
    /// An existing PostgreSQL server to use (any database on it; the harness drops and creates
    /// `bench_bao` and `bench_kura` there). Without it the harness starts a throwaway server
    /// with `--pg-script`.
    #[arg(long)]
    pg_url: Option<String>,
    /// The script that starts a throwaway PostgreSQL server (`start DIR --watch-pid PID`).
    #[arg(long, default_value = "scripts/postgres")]
    pg_script: PathBuf,
    /// Servers to compare, comma-separated (bao, kura).
    #[arg(long, default_value = "bao,kura")]
    targets: String,
    /// The bao binary.
    #[arg(long, default_value = ".venv/bin/bao")]
    bao: PathBuf,
    /// The kura binary.
    #[arg(long, default_value = "target/release/kura")]
    kura: PathBuf,
    /// Keys in KV scenarios.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Skip the HTTP ceiling.
    #[arg(long)]
    no_ceiling: bool,
    /// Directory for results.json.
    #[arg(long, default_value = "bench-out")]
    out_dir: PathBuf,
    /// Where to write the Markdown report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
    /// Where to write the SVG chart.
    #[arg(long, default_value = "docs/bench.svg")]
    svg: PathBuf,
    /// Write only results.json and the terminal table (no BENCHMARKS.md, no chart).
    #[arg(long)]
    no_markdown: bool,
    /// Command line recorded in BENCHMARKS.md as the way to reproduce it.
    #[arg(long)]
    command: Option<String>,
    /// Exit non-zero if bao is missing or fails to start.
    #[arg(long)]
    require_bao: bool,
}

/// Scenarios and propagation delays picked by a `--scenarios` / `--cluster-scenarios` value.
type Picked = (Vec<&'static Scenario>, Vec<LagKind>);

fn pick_scenarios(spec: &str, cluster: bool) -> Result<Picked> {
    let fits = |s: &&Scenario| cluster || s.placement == Placement::Active;
    let (mut picked, lags) = match spec {
        "none" | "" => (Vec::new(), Vec::new()),
        "all" => (
            SCENARIOS.iter().filter(fits).collect(),
            if cluster { LAGS.to_vec() } else { Vec::new() },
        ),
        "default" => (
            SCENARIOS
                .iter()
                .filter(|s| s.default)
                .filter(fits)
                .collect(),
            Vec::new(),
        ),
        list => {
            let mut picked = Vec::new();
            let mut lags = Vec::new();
            for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if let Some(l) = LagKind::find(n) {
                    if !cluster {
                        bail!("{n} is measured on a cluster only (use --cluster-scenarios)");
                    }
                    lags.push(l);
                    continue;
                }
                let s = scenarios::find(n)
                    .with_context(|| format!("unknown scenario {n:?} (see `kura-bench list`)"))?;
                if !fits(&s) {
                    bail!("{n} runs on a cluster only (use --cluster-scenarios)");
                }
                picked.push(s);
            }
            (picked, lags)
        }
    };
    // Load on standbys or spread over the nodes is compared with the same load on the active
    // node, so that one comes along.
    let baseline = "kvv2_read";
    if picked.iter().any(|s| s.placement != Placement::Active)
        && !picked.iter().any(|s| s.name == baseline)
    {
        picked.insert(
            0,
            scenarios::find(baseline).expect("kvv2_read is a scenario"),
        );
    }
    Ok((picked, lags))
}

/// PostgreSQL scenarios and propagation delays picked by a `--pg-scenarios` value (`default`
/// and `all` include both delays). A scenario with the load elsewhere than on the active node
/// brings the first (active-node) scenario along as its baseline.
fn pick_pg_scenarios(spec: &str) -> Result<Picked> {
    let (mut picked, lags): Picked = match spec {
        "none" | "" => (Vec::new(), Vec::new()),
        "all" => (PG_SCENARIOS.iter().collect(), LAGS.to_vec()),
        "default" => (
            PG_SCENARIOS.iter().filter(|s| s.default).collect(),
            LAGS.to_vec(),
        ),
        list => {
            let mut picked = Vec::new();
            let mut lags = Vec::new();
            for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if let Some(l) = LagKind::find_on(LagStorage::Postgres, n) {
                    lags.push(l);
                    continue;
                }
                picked.push(scenarios::find_pg(n).with_context(|| {
                    format!("unknown PostgreSQL scenario {n:?} (see `kura-bench list`)")
                })?);
            }
            (picked, lags)
        }
    };
    let baseline = &PG_SCENARIOS[0];
    if picked.iter().any(|s| s.placement != Placement::Active)
        && !picked.iter().any(|s| s.name == baseline.name)
    {
        picked.insert(0, baseline);
    }
    Ok((picked, lags))
}

fn relative_link(from_file: &std::path::Path, to: &std::path::Path) -> String {
    // BENCHMARKS.md normally sits at the repository root beside docs/.
    match from_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => to.strip_prefix(dir).unwrap_or(to).display().to_string(),
        None => to.display().to_string(),
    }
}

async fn run(args: RunArgs) -> Result<bool> {
    let mut targets = Vec::new();
    for t in args
        .targets
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        targets.push(TargetKind::parse_server(t).with_context(|| format!("unknown target {t:?}"))?);
    }
    if args.connections == 0 || args.rounds == 0 {
        bail!("--connections and --rounds must be at least 1");
    }
    let command = args.command.clone().unwrap_or_else(|| {
        let argv: Vec<String> = std::env::args().collect();
        argv.join(" ")
    });
    let (single, _) = pick_scenarios(&args.scenarios, false)?;
    let (cluster_scenarios, lags) = pick_scenarios(&args.cluster_scenarios, true)?;
    let (pg_scenarios, pg_lags) = pick_pg_scenarios(&args.pg_scenarios)?;
    if args.pg_nodes < 2 && args.pg_failovers > 0 {
        bail!("--pg-failovers needs --pg-nodes of at least 2");
    }
    let opts = BenchOptions {
        load: LoadConfig {
            connections: args.connections,
            warmup: args.warmup,
            duration: args.duration,
        },
        rounds: args.rounds,
        scenarios: single,
        targets,
        bao: args.bao.clone(),
        kura: args.kura.clone(),
        keys: args.keys.max(1),
        ceiling: !args.no_ceiling,
        cluster_scenarios,
        failovers: args.failovers,
        lags,
        lag_samples: args.lag_samples.max(1),
        command,
        pg_scenarios,
        pg_lags,
        pg_failovers: args.pg_failovers,
        pg_nodes: args.pg_nodes.max(1),
        pg_source: match &args.pg_url {
            Some(url) => PgSource::Url(url.clone()),
            None => PgSource::Script(args.pg_script.clone()),
        },
    };
    let results = runner::run(&opts).await;

    println!("{}", report::terminal_table(&results));
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("create {}", args.out_dir.display()))?;
    let json_path = args.out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("write {}", json_path.display()))?;
    println!("wrote {}", json_path.display());
    if !args.no_markdown {
        if let Some(dir) = args.svg.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(&args.svg, report::svg(&results))
            .with_context(|| format!("write {}", args.svg.display()))?;
        let link = relative_link(&args.markdown, &args.svg);
        std::fs::write(&args.markdown, report::markdown(&results, &link))
            .with_context(|| format!("write {}", args.markdown.display()))?;
        println!(
            "wrote {} and {}",
            args.markdown.display(),
            args.svg.display()
        );
    }
    let bao_ok = results
        .target(TargetKind::Bao)
        .is_none_or(|t| matches!(t.availability, Availability::Ok));
    Ok(!args.require_bao || bao_ok)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kura-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async move {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::Ceiling {
                listen,
                body_bytes,
                status,
            } => {
                let status = StatusCode::from_u16(status).context("invalid status")?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("bind {listen}"))?;
                println!("ceiling server listening on {}", listener.local_addr()?);
                ceiling::serve(listener, status, ceiling::kv2_read_body(body_bytes)).await?;
                Ok(true)
            }
            Command::List => {
                for s in SCENARIOS {
                    println!(
                        "{:<20} {}{}{}",
                        s.name,
                        s.description,
                        if s.placement == Placement::Active {
                            ""
                        } else {
                            " (cluster only)"
                        },
                        if s.default { "" } else { " (not in default)" }
                    );
                }
                for l in LAGS {
                    println!("{:<20} {} (cluster only)", l.name(), l.description());
                }
                for s in PG_SCENARIOS {
                    println!(
                        "{:<20} {} (--pg-scenarios{}){}",
                        s.name,
                        s.description,
                        if s.placement == Placement::Active {
                            ""
                        } else {
                            ", --pg-nodes 2 or more"
                        },
                        if s.default { "" } else { " (not in default)" }
                    );
                }
                for l in LAGS {
                    println!(
                        "{:<20} {} (--pg-scenarios, --pg-nodes 2 or more)",
                        l.name_on(LagStorage::Postgres),
                        l.description()
                    );
                }
                Ok(true)
            }
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kura-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_scenarios_are_picked_by_name_default_all_and_none() {
        let names = |spec| {
            let (scenarios, lags) = pick_pg_scenarios(spec).unwrap();
            scenarios
                .iter()
                .map(|s| s.name)
                .chain(lags.iter().map(|l| l.name_on(LagStorage::Postgres)))
                .collect::<Vec<_>>()
        };
        assert!(names("none").is_empty());
        assert_eq!(
            names("default"),
            [
                "pg_kvv2_read",
                "pg_kvv2_read_standbys",
                "pg_kvv2_read_spread",
                "pg_kvv2_write",
                "pg_kvv2_lag",
                "pg_revoke_lag"
            ]
        );
        // Load elsewhere than on the active node brings the baseline along, first.
        assert_eq!(
            names("pg_kvv2_read_standbys"),
            ["pg_kvv2_read", "pg_kvv2_read_standbys"]
        );
        assert_eq!(
            names("pg_kvv2_read_spread,pg_kvv2_read"),
            ["pg_kvv2_read_spread", "pg_kvv2_read"]
        );
        assert_eq!(names("pg_kvv2_write"), ["pg_kvv2_write"]);
        assert_eq!(
            names(" pg_kvv2_write , pg_kvv2_read"),
            ["pg_kvv2_write", "pg_kvv2_read"]
        );
        // The delays alone bring no scenario along.
        assert_eq!(
            names("pg_revoke_lag,pg_kvv2_lag"),
            ["pg_revoke_lag", "pg_kvv2_lag"]
        );
        assert_eq!(names("all").len(), PG_SCENARIOS.len() + LAGS.len());
        assert!(pick_pg_scenarios("kvv2_read").is_err());
        assert!(pick_pg_scenarios("pg_nope").is_err());
        // The raft names are not PostgreSQL ones, nor the other way round.
        assert!(pick_pg_scenarios("kvv2_lag").is_err());
        assert!(pick_scenarios("pg_kvv2_lag", true).is_err());
    }
}
