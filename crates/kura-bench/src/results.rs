//! Result types (serialised to `bench-out/results.json`) and their summaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::loadgen::LoadResult;
use crate::target::TargetKind;

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` from `/proc/meminfo`, in MiB.
    pub memory_mib: u64,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

impl Machine {
    /// Reads the current machine's description.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_mib: memory_kib / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// Whether a target could be run at all.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "lowercase")]
pub enum Availability {
    /// Running.
    Ok,
    /// Binary not found (Kura not built yet, bao not installed).
    Missing(String),
    /// Present but failed to start, initialise or unseal.
    Failed(String),
}

/// One target's description in the results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetInfo {
    /// bao or kura.
    pub kind: TargetKind,
    /// Binary used.
    pub binary: String,
    /// Availability.
    pub availability: Availability,
    /// Version reported by `sys/seal-status`.
    pub version: Option<String>,
    /// Resident memory per node after start, unseal and token setup, before any load, KiB.
    pub idle_rss_kib: Vec<u64>,
    /// Whether the load used a policy-bound token (`false`: root token).
    pub policy_token: bool,
}

/// One measured run of one target in one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Round {
    /// Successful requests in the window.
    pub ok: u64,
    /// Non-2xx answers per status code.
    pub status_errors: BTreeMap<u16, u64>,
    /// Transport errors.
    pub transport_errors: u64,
    /// Window length in seconds.
    pub window_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Largest latency, microseconds.
    pub max_us: u64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// CPU seconds per 1,000 successful requests, per node (same order as the nodes).
    pub cpu_s_per_1k: Vec<f64>,
    /// Largest resident memory sampled during the window, per node, KiB.
    pub rss_load_kib: Vec<u64>,
    /// CPU seconds of the load generator per 1,000 requests (it shares the machine).
    pub loadgen_cpu_s_per_1k: f64,
    /// First non-2xx body seen, if any.
    pub first_error: Option<String>,
    /// CPU seconds of the database server (postmaster and backends) per 1,000 successful
    /// requests, on PostgreSQL storage when the harness started the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_cpu_s_per_1k: Option<f64>,
}

impl Round {
    /// Builds a round from a load result and the process samples.
    pub fn new(
        load: &LoadResult,
        cpu_delta_s: &[f64],
        rss_load_kib: Vec<u64>,
        loadgen_cpu_s: f64,
    ) -> Self {
        let per_1k = |cpu: f64| {
            if load.ok > 0 {
                cpu * 1000.0 / load.ok as f64
            } else {
                0.0
            }
        };
        Self {
            ok: load.ok,
            status_errors: load.status_errors.clone(),
            transport_errors: load.transport_errors,
            window_s: load.window.as_secs_f64(),
            throughput: load.throughput(),
            p50_us: load.percentile_us(0.50),
            p99_us: load.percentile_us(0.99),
            max_us: load.max_us(),
            mean_us: load.mean_us(),
            cpu_s_per_1k: cpu_delta_s.iter().map(|&c| per_1k(c)).collect(),
            rss_load_kib,
            loadgen_cpu_s_per_1k: per_1k(loadgen_cpu_s),
            first_error: load.first_error.clone(),
            db_cpu_s_per_1k: None,
        }
    }

    /// Non-2xx answers plus transport errors.
    pub fn errors(&self) -> u64 {
        self.status_errors.values().sum::<u64>() + self.transport_errors
    }
}

/// Median of the rounds of one target in one scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Median throughput, successful requests per second.
    pub throughput: f64,
    /// Median p50, microseconds.
    pub p50_us: u64,
    /// Median p99, microseconds.
    pub p99_us: u64,
    /// Largest latency over all rounds, microseconds.
    pub max_us: u64,
    /// Errors (non-2xx + transport) over all rounds.
    pub errors: u64,
    /// Successful requests over all rounds.
    pub ok: u64,
    /// Median CPU seconds per 1,000 requests, per node.
    pub cpu_s_per_1k: Vec<f64>,
    /// Largest resident memory under load over all rounds, per node, KiB.
    pub rss_load_kib: Vec<u64>,
    /// Median CPU seconds of the database server per 1,000 requests (PostgreSQL storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_cpu_s_per_1k: Option<f64>,
}

/// Median of a list (mean of the middle two for even lengths); 0 for an empty list.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Summary {
    /// Summarises rounds.
    pub fn of(rounds: &[Round]) -> Self {
        let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        let nodes = rounds
            .iter()
            .map(|r| r.cpu_s_per_1k.len())
            .max()
            .unwrap_or(0);
        Self {
            throughput: med(&|r| r.throughput),
            p50_us: med(&|r| r.p50_us as f64).round() as u64,
            p99_us: med(&|r| r.p99_us as f64).round() as u64,
            max_us: rounds.iter().map(|r| r.max_us).max().unwrap_or(0),
            errors: rounds.iter().map(Round::errors).sum(),
            ok: rounds.iter().map(|r| r.ok).sum(),
            cpu_s_per_1k: (0..nodes)
                .map(|i| med(&|r| r.cpu_s_per_1k.get(i).copied().unwrap_or(0.0)))
                .collect(),
            rss_load_kib: (0..nodes)
                .map(|i| {
                    rounds
                        .iter()
                        .filter_map(|r| r.rss_load_kib.get(i).copied())
                        .max()
                        .unwrap_or(0)
                })
                .collect(),
            db_cpu_s_per_1k: {
                let db: Vec<f64> = rounds.iter().filter_map(|r| r.db_cpu_s_per_1k).collect();
                (!db.is_empty()).then(|| median(&db))
            },
        }
    }
}

/// Outcome of one target in one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Outcome {
    /// Ran: every round and their summary.
    Ran {
        /// Rounds in the order they ran.
        rounds: Vec<Round>,
        /// Medians.
        summary: Summary,
    },
    /// The target lacks an endpoint the scenario needs.
    Unsupported {
        /// The answer that said so.
        detail: String,
    },
    /// Setup or load failed.
    Failed {
        /// What went wrong.
        detail: String,
    },
    /// The target is not available: its binary is missing, or it failed to start.
    Skipped {
        /// `true`: binary missing; `false`: failed to start.
        missing: bool,
    },
}

impl Outcome {
    /// The summary, when the scenario ran.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Outcome::Ran { summary, .. } => Some(summary),
            _ => None,
        }
    }

    /// Short word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Ran { .. } => "ok",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped { missing: true } => "missing",
            Outcome::Skipped { missing: false } => "not started",
        }
    }
}

/// One scenario across targets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// What a request does.
    pub description: String,
    /// `single` or `cluster3`.
    pub topology: String,
    /// Outcome per target (`bao`, `kura`, `ceiling`).
    pub targets: BTreeMap<TargetKind, Outcome>,
    /// Which nodes the load went to (`active`, `standbys`, `all`); `active` on a single node.
    #[serde(default = "default_placement")]
    pub placement: String,
    /// Index of the active node per target (cluster runs), to single out its CPU.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub active_node: BTreeMap<TargetKind, usize>,
    /// Things seen during the rounds that bear on the figures, per target (e.g. the active node
    /// changed under the load).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<(TargetKind, String)>,
}

fn default_placement() -> String {
    "active".into()
}

impl ScenarioResult {
    /// Median throughput of `kind`, when it ran.
    pub fn throughput(&self, kind: TargetKind) -> Option<f64> {
        self.targets
            .get(&kind)
            .and_then(Outcome::summary)
            .map(|s| s.throughput)
    }

    /// Kura's median throughput over bao's.
    pub fn ratio(&self) -> Option<f64> {
        let bao = self.throughput(TargetKind::Bao)?;
        let kura = self.throughput(TargetKind::Kura)?;
        (bao > 0.0).then(|| kura / bao)
    }

    /// The active node's median CPU seconds per 1,000 successful requests, for `kind`.
    pub fn active_cpu_s_per_1k(&self, kind: TargetKind) -> Option<f64> {
        let i = *self.active_node.get(&kind)?;
        let summary = self.targets.get(&kind)?.summary()?;
        summary.cpu_s_per_1k.get(i).copied()
    }
}

/// A propagation delay measured on a 3-node cluster (raft, or nodes sharing one PostgreSQL
/// database): a change made on the active node, then a standby polled (with
/// `X-Vault-No-Request-Forwarding: true`) until it shows the change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lag {
    /// Target.
    pub kind: TargetKind,
    /// `kvv2_lag` (a KV v2 write) or `revoke_lag` (a token revocation); `pg_kvv2_lag` and
    /// `pg_revoke_lag` on PostgreSQL.
    pub name: String,
    /// Delays of the samples that completed, microseconds, in the order measured.
    pub samples_us: Vec<u64>,
    /// Median of `samples_us`.
    pub p50_us: u64,
    /// 99th percentile of `samples_us`.
    pub p99_us: u64,
    /// Largest of `samples_us`.
    pub max_us: u64,
    /// Samples where the standby did not show the change within the limit.
    pub timeouts: u64,
    /// Error that stopped the measurement, or the last wrong answer seen, if any.
    pub error: Option<String>,
}

impl Lag {
    /// Builds the record from the samples and computes the percentiles.
    pub fn new(
        kind: TargetKind,
        name: &str,
        samples_us: Vec<u64>,
        timeouts: u64,
        error: Option<String>,
    ) -> Self {
        let mut sorted = samples_us.clone();
        sorted.sort_unstable();
        let q = |f: f64| {
            if sorted.is_empty() {
                0
            } else {
                let i = ((sorted.len() as f64 * f).ceil() as usize).clamp(1, sorted.len()) - 1;
                sorted[i]
            }
        };
        Self {
            kind,
            name: name.to_owned(),
            p50_us: q(0.50),
            p99_us: q(0.99),
            max_us: sorted.last().copied().unwrap_or(0),
            samples_us,
            timeouts,
            error,
        }
    }
}

/// Failover measurements for one target's cluster (raft or a shared PostgreSQL database).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failover {
    /// Target.
    pub kind: TargetKind,
    /// Time from `kill -9` of the active node to a new active node answering a read (raft) or
    /// accepting a write (PostgreSQL), seconds.
    pub times_s: Vec<f64>,
    /// Median of `times_s`.
    pub median_s: f64,
    /// Largest of `times_s`.
    pub max_s: f64,
    /// Error that stopped the measurement, if any.
    pub error: Option<String>,
}

/// Everything one run of the harness measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResults {
    /// UTC date and time of the run (`YYYY-MM-DD hh:mm:ss UTC`).
    pub date: String,
    /// Command that reproduces the run.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// Connections per run.
    pub connections: usize,
    /// Warm-up per run, seconds.
    pub warmup_s: f64,
    /// Measured window per run, seconds.
    pub duration_s: f64,
    /// Rounds per target per scenario.
    pub rounds: usize,
    /// Keys in KV scenarios.
    pub keys: usize,
    /// Targets.
    pub targets: Vec<TargetInfo>,
    /// Single-node and cluster scenarios.
    pub scenarios: Vec<ScenarioResult>,
    /// Targets as started for the 3-node cluster runs (availability, idle RSS per node).
    pub cluster_targets: Vec<TargetInfo>,
    /// Failover measurements.
    pub failover: Vec<Failover>,
    /// Propagation delays to standbys (3-node cluster).
    #[serde(default)]
    pub lags: Vec<Lag>,
    /// The runs on PostgreSQL storage (their scenarios are in `scenarios`, topology
    /// [`PG_TOPOLOGY`]); absent when none were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgRun>,
}

/// Topology name of the scenarios run on nodes sharing one PostgreSQL database.
pub const PG_TOPOLOGY: &str = "postgres";

/// The PostgreSQL part of a run: one database server, one database per target on it, every
/// target's nodes sharing their database (with its HA lock).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PgRun {
    /// Where the server came from: `started by the harness (scripts/postgres)` or the URL
    /// given, without its password.
    pub server: String,
    /// `SHOW server_version`, when the server answered.
    pub version: Option<String>,
    /// Why the PostgreSQL runs did not happen, if they did not.
    pub error: Option<String>,
    /// Nodes per target.
    pub nodes: usize,
    /// Targets as started on PostgreSQL (availability, idle RSS per node).
    pub targets: Vec<TargetInfo>,
    /// Failover measurements on PostgreSQL.
    pub failover: Vec<Failover>,
    /// Propagation delays to the standbys on PostgreSQL (`pg_kvv2_lag`, `pg_revoke_lag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lags: Vec<Lag>,
}

impl BenchResults {
    /// Kura's single-node KV v2 read throughput over the ceiling's.
    pub fn kura_ceiling_fraction(&self) -> Option<f64> {
        let s = self
            .scenarios
            .iter()
            .find(|s| s.name == "kvv2_read" && s.topology == "single")?;
        let ceiling = s.throughput(TargetKind::Ceiling)?;
        let kura = s.throughput(TargetKind::Kura)?;
        (ceiling > 0.0).then(|| kura / ceiling)
    }

    /// Same fraction for bao.
    pub fn bao_ceiling_fraction(&self) -> Option<f64> {
        let s = self
            .scenarios
            .iter()
            .find(|s| s.name == "kvv2_read" && s.topology == "single")?;
        let ceiling = s.throughput(TargetKind::Ceiling)?;
        let bao = s.throughput(TargetKind::Bao)?;
        (ceiling > 0.0).then(|| bao / ceiling)
    }

    /// Info of one target.
    pub fn target(&self, kind: TargetKind) -> Option<&TargetInfo> {
        self.targets.iter().find(|t| t.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(throughput: f64, p99: u64, max: u64) -> Round {
        Round {
            ok: 10,
            status_errors: BTreeMap::from([(500, 1)]),
            transport_errors: 2,
            window_s: 1.0,
            throughput,
            p50_us: 100,
            p99_us: p99,
            max_us: max,
            mean_us: 120.0,
            cpu_s_per_1k: vec![throughput / 100.0],
            rss_load_kib: vec![max],
            loadgen_cpu_s_per_1k: 0.1,
            first_error: None,
            db_cpu_s_per_1k: Some(throughput / 1000.0),
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn summary_takes_medians_and_maxima() {
        let rounds = [
            round(100.0, 900, 5000),
            round(300.0, 700, 9000),
            round(200.0, 800, 1000),
        ];
        let s = Summary::of(&rounds);
        assert_eq!(s.throughput, 200.0);
        assert_eq!(s.p99_us, 800);
        assert_eq!(s.max_us, 9000);
        assert_eq!(s.errors, 9);
        assert_eq!(s.ok, 30);
        assert_eq!(s.cpu_s_per_1k, vec![2.0]);
        assert_eq!(s.rss_load_kib, vec![9000]);
        assert_eq!(s.db_cpu_s_per_1k, Some(0.2));
        let mut plain = round(1.0, 1, 1);
        plain.db_cpu_s_per_1k = None;
        assert_eq!(Summary::of(&[plain]).db_cpu_s_per_1k, None);
    }

    #[test]
    fn ratio_needs_both_targets() {
        let mut s = ScenarioResult {
            name: "kvv2_read".into(),
            description: String::new(),
            topology: "single".into(),
            targets: BTreeMap::new(),
            placement: "active".into(),
            active_node: BTreeMap::new(),
            notes: Vec::new(),
        };
        let ran = |t: f64| Outcome::Ran {
            rounds: vec![],
            summary: Summary {
                throughput: t,
                ..Summary::default()
            },
        };
        s.targets.insert(TargetKind::Bao, ran(1000.0));
        assert_eq!(s.ratio(), None);
        s.targets.insert(
            TargetKind::Kura,
            Outcome::Unsupported {
                detail: String::new(),
            },
        );
        assert_eq!(s.ratio(), None);
        s.targets.insert(TargetKind::Kura, ran(12000.0));
        assert_eq!(s.ratio(), Some(12.0));
    }

    #[test]
    fn lag_percentiles() {
        let l = Lag::new(
            TargetKind::Kura,
            "kvv2_lag",
            (1..=200).rev().collect(),
            1,
            None,
        );
        assert_eq!(l.p50_us, 100);
        assert_eq!(l.p99_us, 198);
        assert_eq!(l.max_us, 200);
        assert_eq!(l.samples_us[0], 200);
        let empty = Lag::new(TargetKind::Bao, "revoke_lag", vec![], 3, Some("307".into()));
        assert_eq!((empty.p50_us, empty.p99_us, empty.max_us), (0, 0, 0));
    }
}
