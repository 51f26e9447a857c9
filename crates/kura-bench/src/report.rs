//! Output: the terminal table, `BENCHMARKS.md` and the SVG chart (drawn by hand: a grouped bar
//! chart of throughput per scenario on a logarithmic axis).

use std::fmt::Write as _;

use crate::lag::{LagKind, LagStorage};
use crate::results::{
    Availability, BenchResults, Failover, Lag, Outcome, PgRun, ScenarioResult, Summary, TargetInfo,
    PG_TOPOLOGY,
};
use crate::runner::fmt_us;
use crate::target::TargetKind;

const SERVERS: [TargetKind; 2] = [TargetKind::Bao, TargetKind::Kura];

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn join_mib(kib: &[u64]) -> String {
    if kib.is_empty() {
        "–".into()
    } else {
        kib.iter().map(|&k| mib(k)).collect::<Vec<_>>().join(" / ")
    }
}

fn join_cpu(cpu: &[f64]) -> String {
    if cpu.is_empty() {
        "–".into()
    } else {
        cpu.iter()
            .map(|c| format!("{c:.3}"))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn ratio_text(s: &ScenarioResult) -> String {
    s.ratio().map_or("–".into(), |r| format!("{r:.2}×"))
}

/// The KV v2 read scenarios on one storage that the standby figures compare: the same load on
/// the active node, on the standbys only and spread over every node.
struct ReadFamily {
    /// Topology the three scenarios ran in.
    topology: &'static str,
    /// Storage name for the terminal (`raft`, `postgres`).
    storage: &'static str,
    /// Heading of its section in `BENCHMARKS.md`.
    heading: &'static str,
    /// Load on the active node (the baseline).
    active: &'static str,
    /// Load on the standbys only.
    standbys: &'static str,
    /// Load spread over every node.
    spread: &'static str,
}

/// KV v2 reads on the 3-node raft cluster.
const RAFT_READS: ReadFamily = ReadFamily {
    topology: "cluster3",
    storage: "raft",
    heading: "KV v2 reads on standbys",
    active: "kvv2_read",
    standbys: "kvv2_read_standbys",
    spread: "kvv2_read_spread",
};

/// KV v2 reads on nodes sharing one PostgreSQL database.
const PG_READS: ReadFamily = ReadFamily {
    topology: PG_TOPOLOGY,
    storage: "postgres",
    heading: "KV v2 reads on PostgreSQL standbys",
    active: "pg_kvv2_read",
    standbys: "pg_kvv2_read_standbys",
    spread: "pg_kvv2_read_spread",
};

/// The scenario named `name` in `topology`, if it ran.
fn scenario_in<'a>(r: &'a BenchResults, topology: &str, name: &str) -> Option<&'a ScenarioResult> {
    r.scenarios
        .iter()
        .find(|s| s.name == name && s.topology == topology)
}

/// Standby read figures of one target: KV v2 reads on the active node, on the standbys and
/// spread over every node.
struct StandbyReads {
    kind: TargetKind,
    active_rps: Option<f64>,
    active_cpu: Option<f64>,
    standbys_rps: Option<f64>,
    standbys_active_cpu: Option<f64>,
    spread_rps: Option<f64>,
}

impl StandbyReads {
    fn of(r: &BenchResults, family: &ReadFamily, kind: TargetKind) -> Self {
        let base = scenario_in(r, family.topology, family.active);
        let standbys = scenario_in(r, family.topology, family.standbys);
        let spread = scenario_in(r, family.topology, family.spread);
        Self {
            kind,
            active_rps: base.and_then(|s| s.throughput(kind)),
            active_cpu: base.and_then(|s| s.active_cpu_s_per_1k(kind)),
            standbys_rps: standbys.and_then(|s| s.throughput(kind)),
            standbys_active_cpu: standbys.and_then(|s| s.active_cpu_s_per_1k(kind)),
            spread_rps: spread.and_then(|s| s.throughput(kind)),
        }
    }

    /// Active node's CPU per 1k requests with the load on the standbys over the same with the
    /// load on the active node.
    fn cpu_ratio(&self) -> Option<f64> {
        let (s, a) = (self.standbys_active_cpu?, self.active_cpu?);
        (a > 0.0).then(|| s / a)
    }

    /// Spread throughput over active-only throughput.
    fn spread_ratio(&self) -> Option<f64> {
        let (s, a) = (self.spread_rps?, self.active_rps?);
        (a > 0.0).then(|| s / a)
    }
}

/// Three significant digits (small CPU figures and ratios stay readable).
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).clamp(0, 7) as usize;
    format!("{x:.decimals$}")
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

/// Whether a scenario of `topology` sent its load elsewhere than to the active node.
fn any_standby_scenario(r: &BenchResults, topology: &str) -> bool {
    r.scenarios
        .iter()
        .any(|s| s.topology == topology && s.placement != "active")
}

/// Kura's p50 lag over bao's for the same measurement, among `lags`.
fn lag_ratio(lags: &[Lag], l: &Lag) -> Option<f64> {
    let find = |k: TargetKind| {
        lags.iter()
            .find(|x| x.kind == k && x.name == l.name && !x.samples_us.is_empty())
    };
    let (bao, kura) = (find(TargetKind::Bao)?, find(TargetKind::Kura)?);
    (bao.p50_us > 0).then(|| kura.p50_us as f64 / bao.p50_us as f64)
}

fn first_line(e: &str) -> String {
    let line: String = e.lines().next().unwrap_or("").chars().take(200).collect();
    line.replace('|', "\\|").replace('`', "'")
}

/// The terminal table: one line per scenario and target.
pub fn terminal_table(r: &BenchResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<8} {:<8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>14} {:>18} {:>8}",
        "scenario",
        "topology",
        "target",
        "req/s",
        "p50",
        "p99",
        "max",
        "errors",
        "CPU s/1k req",
        "RSS under load",
        "kura/bao"
    );
    for s in &r.scenarios {
        for (kind, outcome) in &s.targets {
            let ratio = if *kind == TargetKind::Kura {
                ratio_text(s)
            } else {
                String::new()
            };
            match outcome.summary() {
                Some(m) => {
                    let _ = writeln!(
                        out,
                        "{:<16} {:<8} {:<8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>14} {:>18} {:>8}",
                        s.name,
                        s.topology,
                        kind.name(),
                        rate(m.throughput),
                        fmt_us(m.p50_us),
                        fmt_us(m.p99_us),
                        fmt_us(m.max_us),
                        m.errors,
                        join_cpu(&m.cpu_s_per_1k),
                        join_mib(&m.rss_load_kib),
                        ratio
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<16} {:<8} {:<8} {:>10}",
                        s.name,
                        s.topology,
                        kind.name(),
                        outcome.word()
                    );
                }
            }
        }
    }
    for s in r.scenarios.iter().filter(|s| s.topology == PG_TOPOLOGY) {
        if SERVERS.iter().any(|&k| db_cpu(s, k).is_some()) {
            let _ = writeln!(
                out,
                "{:<16} database CPU s/1k req: bao {}, kura {}",
                s.name,
                opt(db_cpu(s, TargetKind::Bao), sig3),
                opt(db_cpu(s, TargetKind::Kura), sig3)
            );
        }
    }
    for t in &r.targets {
        let _ = writeln!(
            out,
            "idle RSS {:<5} {}",
            t.kind.name(),
            match &t.availability {
                Availability::Ok => join_mib(&t.idle_rss_kib),
                Availability::Missing(d) => format!("missing ({d})"),
                Availability::Failed(_) => "failed to start".into(),
            }
        );
    }
    if let Some(f) = r.kura_ceiling_fraction() {
        let _ = writeln!(out, "kura kvv2_read / HTTP ceiling: {:.1}%", f * 100.0);
    }
    if let Some(f) = r.bao_ceiling_fraction() {
        let _ = writeln!(out, "bao kvv2_read / HTTP ceiling: {:.1}%", f * 100.0);
    }
    let pg_failover = r.postgres.iter().flat_map(|p| &p.failover);
    for (storage, f) in r
        .failover
        .iter()
        .map(|f| ("raft", f))
        .chain(pg_failover.map(|f| ("postgres", f)))
    {
        let _ = writeln!(
            out,
            "failover {storage:<8} {:<5} median {:.2} s, max {:.2} s over {} run(s){}",
            f.kind.name(),
            f.median_s,
            f.max_s,
            f.times_s.len(),
            f.error
                .as_ref()
                .map(|e| format!(" (error: {})", e.lines().next().unwrap_or("")))
                .unwrap_or_default()
        );
    }
    for family in [&RAFT_READS, &PG_READS] {
        if !any_standby_scenario(r, family.topology) {
            continue;
        }
        for kind in SERVERS {
            let sr = StandbyReads::of(r, family, kind);
            let _ = writeln!(
                out,
                "standby reads {:<8} {:<5} active node CPU s/1k: load on active {}, load on \
                 standbys {} (ratio {}); spread over all nodes {} req/s vs active only {} req/s \
                 ({})",
                family.storage,
                kind.name(),
                opt(sr.active_cpu, sig3),
                opt(sr.standbys_active_cpu, sig3),
                opt(sr.cpu_ratio(), sig3),
                opt(sr.spread_rps, rate),
                opt(sr.active_rps, rate),
                opt(sr.spread_ratio(), |x| format!("{x:.2}×")),
            );
        }
    }
    let pg_lags = r.postgres.iter().flat_map(|p| &p.lags);
    for l in r.lags.iter().chain(pg_lags) {
        let _ = writeln!(
            out,
            "{:<10} {:<5} p50 {} p99 {} max {} over {} samples, {} timeouts{}",
            l.name,
            l.kind.name(),
            fmt_us(l.p50_us),
            fmt_us(l.p99_us),
            fmt_us(l.max_us),
            l.samples_us.len(),
            l.timeouts,
            l.error
                .as_ref()
                .map(|e| format!(" ({})", e.lines().next().unwrap_or("")))
                .unwrap_or_default()
        );
    }
    out
}

/// The standby-read section of `family`: the active node's CPU with the load on the standbys,
/// and spread throughput, per target; `nodes` is the number of nodes per target.
fn standby_section(out: &mut String, r: &BenchResults, family: &ReadFamily, nodes: usize) {
    let _ = writeln!(out, "### {}\n", family.heading);
    let standbys = format!("{} standbys", the_standbys(nodes));
    let _ = writeln!(
        out,
        "The same KV v2 read load sent to the active node only (`{}`), to {standbys} only \
         (`{}`) and spread evenly over all {nodes} nodes (`{}`). \"active CPU\" is the active \
         node's CPU seconds per 1,000 successful requests in each case; a standby that serves \
         reads itself leaves the active node idle, one that forwards makes it do the work.\n",
        family.active, family.standbys, family.spread
    );
    let _ = writeln!(
        out,
        "| target | on active: req/s | active CPU s/1k | on standbys: req/s | active CPU s/1k | \
         active CPU, standbys / active | spread over {nodes}: req/s | spread / active only |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for kind in SERVERS {
        let sr = StandbyReads::of(r, family, kind);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            sr.kind.name(),
            opt(sr.active_rps, rate),
            opt(sr.active_cpu, sig3),
            opt(sr.standbys_rps, rate),
            opt(sr.standbys_active_cpu, sig3),
            opt(sr.cpu_ratio(), sig3),
            opt(sr.spread_rps, rate),
            opt(sr.spread_ratio(), |x| format!("{x:.2}×")),
        );
    }
    let _ = writeln!(out);
}

/// "the two" / "the N": the standbys of a target with `nodes` nodes.
fn the_standbys(nodes: usize) -> String {
    match nodes.saturating_sub(1) {
        2 => "the two".to_owned(),
        n => format!("the {n}"),
    }
}

/// A propagation section: how long a standby takes to reflect a change made on the active
/// node, for the `lags` measured on `storage` with `nodes` nodes per target.
fn lag_section(out: &mut String, lags: &[Lag], storage: LagStorage, nodes: usize) {
    let heading = match storage {
        LagStorage::Raft => format!("## Propagation to standbys ({nodes} nodes)"),
        LagStorage::Postgres => format!("### Propagation to PostgreSQL standbys ({nodes} nodes)"),
    };
    let _ = writeln!(out, "{heading}\n");
    let (kv, revoke) = (
        LagKind::Kvv2Write.name_on(storage),
        LagKind::TokenRevoke.name_on(storage),
    );
    let _ = writeln!(
        out,
        "A change is made on the active node; from its acknowledgement, one standby (alternating \
         between {}) is polled back to back with `X-Vault-No-Request-Forwarding: true` and \
         no index header until it answers according to the change. `{kv}`: a KV v2 write, \
         until the standby returns the new value. `{revoke}`: a token (first seen working on \
         the standby) revoked, until the standby answers 403 to it. A sample that takes over 5 s \
         is a timeout; three in a row stop the measurement.\n",
        the_standbys(nodes)
    );
    let _ = writeln!(
        out,
        "| measurement | target | samples | p50 | p99 | max | timeouts | kura/bao p50 | note |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    for l in lags {
        let done = !l.samples_us.is_empty();
        let t = |us: u64| if done { fmt_us(us) } else { "–".into() };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.name,
            l.kind.name(),
            l.samples_us.len(),
            t(l.p50_us),
            t(l.p99_us),
            t(l.max_us),
            l.timeouts,
            if l.kind == TargetKind::Kura {
                opt(lag_ratio(lags, l), |x| format!("{}×", sig3(x)))
            } else {
                String::new()
            },
            l.error.as_deref().map(first_line).unwrap_or_default()
        );
    }
    let _ = writeln!(out);
}

fn cell(outcome: Option<&Outcome>, f: impl Fn(&Summary) -> String) -> String {
    match outcome {
        Some(o) => o.summary().map_or_else(|| o.word().to_owned(), f),
        None => "–".into(),
    }
}

fn scenario_table(out: &mut String, r: &BenchResults, topology: &str) {
    let _ = writeln!(
        out,
        "| scenario | bao req/s | kura req/s | kura/bao | bao p50 / p99 | kura p50 / p99 | \
         bao CPU s per 1k req | kura CPU s per 1k req | bao RSS under load | kura RSS under load | errors bao / kura |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for s in r.scenarios.iter().filter(|s| s.topology == topology) {
        let get = |k: TargetKind| s.targets.get(&k);
        let [bao, kura] = SERVERS.map(get);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            s.name,
            cell(bao, |m| rate(m.throughput)),
            cell(kura, |m| rate(m.throughput)),
            ratio_text(s),
            cell(bao, |m| format!(
                "{} / {}",
                fmt_us(m.p50_us),
                fmt_us(m.p99_us)
            )),
            cell(kura, |m| format!(
                "{} / {}",
                fmt_us(m.p50_us),
                fmt_us(m.p99_us)
            )),
            cell(bao, |m| join_cpu(&m.cpu_s_per_1k)),
            cell(kura, |m| join_cpu(&m.cpu_s_per_1k)),
            cell(bao, |m| join_mib(&m.rss_load_kib)),
            cell(kura, |m| join_mib(&m.rss_load_kib)),
            cell(bao, |m| m.errors.to_string()),
            cell(kura, |m| m.errors.to_string()),
        );
    }
}

/// Lists why targets did not run scenarios of `topology` (unsupported or failed), one line each.
fn not_run_notes(out: &mut String, r: &BenchResults, topology: &str) {
    let mut notes = Vec::new();
    for s in r.scenarios.iter().filter(|s| s.topology == topology) {
        for (kind, outcome) in &s.targets {
            let detail = match outcome {
                Outcome::Unsupported { detail } | Outcome::Failed { detail } => detail,
                _ => continue,
            };
            let mut line: String = detail
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            if line.len() < detail.len() {
                line.push('…');
            }
            notes.push(format!(
                "- {} {}: {}: `{}`",
                kind.name(),
                s.name,
                outcome.word(),
                line.replace('`', "'")
            ));
        }
        for (kind, note) in &s.notes {
            notes.push(format!("- {} {}: {}", kind.name(), s.name, note));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "Not run, or to note:\n");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
        let _ = writeln!(out);
    }
}

fn goal_row(
    out: &mut String,
    goal: &str,
    measured: Option<String>,
    met: Option<bool>,
    why_not: &str,
) {
    let _ = writeln!(
        out,
        "| {goal} | {} | {} |",
        measured.unwrap_or_else(|| format!("not measured (Kura: {why_not})")),
        match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        }
    );
}

/// A failover table: runs, median and max per target; targets without figures say why.
fn failover_table(out: &mut String, failover: &[Failover], targets: &[TargetInfo]) {
    let _ = writeln!(out, "| target | runs | median | max | note |");
    let _ = writeln!(out, "|---|--:|--:|--:|---|");
    for f in failover {
        let done = !f.times_s.is_empty();
        let secs = |x: f64| {
            if done {
                format!("{x:.2} s")
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            f.kind.name(),
            f.times_s.len(),
            secs(f.median_s),
            secs(f.max_s),
            f.error.as_deref().map(first_line).unwrap_or_default()
        );
    }
    for t in targets
        .iter()
        .filter(|t| !failover.iter().any(|f| f.kind == t.kind))
    {
        let why = match t.availability {
            Availability::Ok => "not measured",
            Availability::Missing(_) => "missing",
            Availability::Failed(_) => "cluster did not start",
        };
        let _ = writeln!(out, "| {} | 0 | – | – | {why} |", t.kind.name());
    }
    let _ = writeln!(out);
}

/// Median database-server CPU per 1,000 requests of `kind` in `s`, when measured.
fn db_cpu(s: &ScenarioResult, kind: TargetKind) -> Option<f64> {
    s.targets.get(&kind)?.summary()?.db_cpu_s_per_1k
}

/// The database server's own CPU per 1,000 requests, per PostgreSQL scenario and target.
fn db_cpu_table(out: &mut String, r: &BenchResults) {
    let pg: Vec<&ScenarioResult> = r
        .scenarios
        .iter()
        .filter(|s| s.topology == PG_TOPOLOGY)
        .collect();
    if !pg
        .iter()
        .any(|s| SERVERS.iter().any(|&k| db_cpu(s, k).is_some()))
    {
        return;
    }
    let _ = writeln!(
        out,
        "The database server's CPU (postmaster and its backends, from `/proc`) per 1,000 \
         successful requests, in the same windows:\n"
    );
    let _ = writeln!(
        out,
        "| scenario | bao: database CPU s per 1k req | kura: database CPU s per 1k req | kura/bao |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|");
    for s in pg {
        let (bao, kura) = (db_cpu(s, TargetKind::Bao), db_cpu(s, TargetKind::Kura));
        let ratio = bao.zip(kura).filter(|(b, _)| *b > 0.0).map(|(b, k)| k / b);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            s.name,
            opt(bao, sig3),
            opt(kura, sig3),
            opt(ratio, |x| format!("{}×", sig3(x)))
        );
    }
    let _ = writeln!(out);
}

/// Kura's failover median over bao's on PostgreSQL.
fn pg_failover_ratio(pg: &PgRun) -> Option<f64> {
    let find = |k: TargetKind| {
        pg.failover
            .iter()
            .find(|f| f.kind == k && !f.times_s.is_empty())
    };
    let (bao, kura) = (find(TargetKind::Bao)?, find(TargetKind::Kura)?);
    (bao.median_s > 0.0).then(|| kura.median_s / bao.median_s)
}

/// The PostgreSQL section: scenarios and failover with every target on one database server.
fn pg_section(out: &mut String, r: &BenchResults, pg: &PgRun) {
    let _ = writeln!(out, "## PostgreSQL storage (same database server)\n");
    let _ = writeln!(
        out,
        "One PostgreSQL {} server ({}) for the run; each target gets a fresh database on it \
         (`bench_bao`, `bench_kura`) that its {} nodes share through `storage \"postgresql\" \
         {{ connection_url = \"…\", ha_enabled = \"true\" }}` — the node holding the lock \
         in the database is active, the others are standbys. The load goes to the active node \
         unless the name says otherwise (`_standbys`: the standbys only; `_spread`: every \
         node, connections split evenly); requests are not redirected, so a 307 or any other \
         non-2xx answer counts as an error. CPU and memory columns list the target's nodes in \
         order (node1 / node2 / …), not the database server.\n",
        pg.version.as_deref().unwrap_or("(version unknown)"),
        pg.server,
        pg.nodes
    );
    if let Some(e) = &pg.error {
        let _ = writeln!(out, "Not run: `{}`\n", first_line(e));
        return;
    }
    if r.scenarios.iter().any(|s| s.topology == PG_TOPOLOGY) {
        scenario_table(out, r, PG_TOPOLOGY);
        let _ = writeln!(out);
        not_run_notes(out, r, PG_TOPOLOGY);
        db_cpu_table(out, r);
    }
    for t in &pg.targets {
        let state = match &t.availability {
            Availability::Ok => format!("idle RSS per node {}", join_mib(&t.idle_rss_kib)),
            Availability::Missing(d) => format!("missing: {d}"),
            Availability::Failed(d) => format!("did not start: `{}`", first_line(d)),
        };
        let _ = writeln!(out, "- {}: {state}", t.kind.name());
    }
    let _ = writeln!(out);
    if any_standby_scenario(r, PG_READS.topology) {
        standby_section(out, r, &PG_READS, pg.nodes);
    }
    if !pg.lags.is_empty() {
        lag_section(out, &pg.lags, LagStorage::Postgres, pg.nodes);
    }
    if !pg.failover.is_empty() {
        let _ = writeln!(
            out,
            "### Failover on PostgreSQL ({} nodes, `kill -9` of the active node)\n",
            pg.nodes
        );
        let _ = writeln!(
            out,
            "Time from SIGKILL of the active node until another node reports active on \
             `sys/health` and accepts a KV write with the load token. The killed node's lock \
             row stays in the database until it expires, so this is mostly the lock's lifetime \
             (OpenBao: 15 s) plus the standbys' retry interval.{}\n",
            opt(pg_failover_ratio(pg), |x| format!(
                " Kura's median is {}× bao's.",
                sig3(x)
            ))
        );
        failover_table(out, &pg.failover, &pg.targets);
    }
}

/// `BENCHMARKS.md`: figures, machine, date, reproducing command, chart link, method.
pub fn markdown(r: &BenchResults, svg_link: &str) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(out, "# Benchmarks: Kura and OpenBao side by side\n");
    let _ = writeln!(
        out,
        "Generated by `kura-bench` (crates/kura-bench); regenerate it rather than editing it.\n"
    );
    let _ = writeln!(out, "- **Date:** {}", r.date);
    let _ = writeln!(
        out,
        "- **Machine:** {} CPUs ({}), {:.1} GiB memory, Linux {}",
        m.cpus,
        m.cpu_model,
        m.memory_mib as f64 / 1024.0,
        m.kernel
    );
    let _ = writeln!(out, "- **Reproduce:** `{}`", r.command);
    let _ = writeln!(
        out,
        "- **Load:** {} keep-alive HTTP/1.1 connections on loopback, each sending requests back \
         to back (closed loop); {} s warm-up, then {} s measured; {} alternating round(s) per \
         target (bao, kura, bao, kura, …); the figures are medians over rounds (max latency: the \
         largest seen). KV scenarios spread over {} keys; the measured window counts answers \
         that complete inside it, and requests still in flight when it closes are drained \
         before the next run.",
        r.connections, r.warmup_s, r.duration_s, r.rounds, r.keys
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "![Throughput, bao and Kura per scenario]({svg_link})\n"
    );

    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(
        out,
        "| target | state | version | idle RSS per node | load token |"
    );
    let _ = writeln!(out, "|---|---|---|--:|---|");
    for t in &r.targets {
        let state = match &t.availability {
            Availability::Ok => "ran".to_owned(),
            Availability::Missing(d) => format!("missing: {d}"),
            Availability::Failed(d) => {
                format!("failed to start: {}", d.lines().next().unwrap_or(""))
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.kind.name(),
            state,
            t.version.as_deref().unwrap_or("–"),
            join_mib(&t.idle_rss_kib),
            if matches!(t.availability, Availability::Ok) {
                if t.policy_token {
                    "policy-bound"
                } else {
                    "root"
                }
            } else {
                "–"
            }
        );
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "## Single node\n");
    scenario_table(&mut out, r, "single");
    let _ = writeln!(out);
    not_run_notes(&mut out, r, "single");
    let ceiling = r
        .scenarios
        .iter()
        .find(|s| s.topology == "single" && s.targets.contains_key(&TargetKind::Ceiling));
    if let Some(s) = ceiling {
        if let Some(c) = s
            .targets
            .get(&TargetKind::Ceiling)
            .and_then(Outcome::summary)
        {
            let _ = writeln!(out, "### HTTP ceiling\n");
            let _ = writeln!(
                out,
                "A minimal hyper server (`kura-bench ceiling`) answering every request with a \
                 fixed JSON body as large as a KV v2 read answer, driven by the same load \
                 generator in the same rounds: **{} req/s**, p50 {}, p99 {}, {} CPU s per 1k \
                 requests.",
                rate(c.throughput),
                fmt_us(c.p50_us),
                fmt_us(c.p99_us),
                join_cpu(&c.cpu_s_per_1k)
            );
            let frac = |f: Option<f64>| f.map_or("–".into(), |f| format!("{:.1}%", f * 100.0));
            let _ = writeln!(
                out,
                "kvv2_read as a fraction of it: bao {}, Kura {}.\n",
                frac(r.bao_ceiling_fraction()),
                frac(r.kura_ceiling_fraction())
            );
        }
    }

    let _ = writeln!(out, "## Goals\n");
    let _ = writeln!(out, "| goal | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    let single = |name: &str| {
        r.scenarios
            .iter()
            .find(|s| s.name == name && s.topology == "single")
    };
    let kura_word = |name: &str| {
        single(name)
            .and_then(|s| s.targets.get(&TargetKind::Kura))
            .map_or("not run", Outcome::word)
    };
    let read_ratio = single("kvv2_read").and_then(ScenarioResult::ratio);
    goal_row(
        &mut out,
        "single-node KV v2 reads ≥ 10× bao",
        read_ratio.map(|x| format!("{x:.2}×")),
        read_ratio.map(|x| x >= 10.0),
        kura_word("kvv2_read"),
    );
    let frac = r.kura_ceiling_fraction();
    goal_row(
        &mut out,
        "single-node KV v2 reads ≥ 50% of the HTTP ceiling",
        frac.map(|f| format!("{:.1}%", f * 100.0)),
        frac.map(|f| f >= 0.5),
        kura_word("kvv2_read"),
    );
    let write_ratio = single("kvv2_write").and_then(ScenarioResult::ratio);
    goal_row(
        &mut out,
        "single-node KV v2 writes ≥ 5× bao",
        write_ratio.map(|x| format!("{x:.2}×")),
        write_ratio.map(|x| x >= 5.0),
        kura_word("kvv2_write"),
    );
    let idle = r
        .target(TargetKind::Kura)
        .filter(|t| matches!(t.availability, Availability::Ok))
        .and_then(|t| t.idle_rss_kib.first().copied());
    let bao_idle = r
        .target(TargetKind::Bao)
        .and_then(|t| t.idle_rss_kib.first().copied());
    goal_row(
        &mut out,
        "idle resident memory ≤ 20 MB",
        idle.map(|k| format!("{} (bao {})", mib(k), bao_idle.map_or("–".into(), mib))),
        idle.map(|k| k * 1024 <= 20_000_000),
        match r.target(TargetKind::Kura).map(|t| &t.availability) {
            Some(Availability::Missing(_)) => "missing",
            Some(Availability::Failed(_)) => "failed to start",
            _ => "not run",
        },
    );
    let _ = writeln!(out);

    if r.scenarios.iter().any(|s| s.topology == "cluster3") {
        let _ = writeln!(out, "## 3-node raft cluster\n");
        let _ = writeln!(
            out,
            "CPU and memory columns list the nodes in order (node1 / node2 / node3). The load \
             goes to the active node unless the name says otherwise (`_standbys`: the two \
             standbys only; `_spread`: all three nodes, connections split evenly). Requests \
             are not redirected: a 307 or any other non-2xx answer counts as an error.\n"
        );
        scenario_table(&mut out, r, "cluster3");
        let _ = writeln!(out);
        not_run_notes(&mut out, r, "cluster3");
        for t in &r.cluster_targets {
            let state = match &t.availability {
                Availability::Ok => format!("idle RSS per node {}", join_mib(&t.idle_rss_kib)),
                Availability::Missing(d) => format!("missing: {d}"),
                Availability::Failed(d) => format!(
                    "cluster failed to start: `{}`",
                    d.lines().next().unwrap_or("").replace('`', "'")
                ),
            };
            let _ = writeln!(out, "- {}: {state}", t.kind.name());
        }
        let _ = writeln!(out);
        if any_standby_scenario(r, RAFT_READS.topology) {
            standby_section(&mut out, r, &RAFT_READS, 3);
        }
    }
    if !r.lags.is_empty() {
        lag_section(&mut out, &r.lags, LagStorage::Raft, 3);
    }
    if !r.failover.is_empty() {
        let _ = writeln!(out, "## Failover (3 nodes, `kill -9` of the active node)\n");
        let _ = writeln!(
            out,
            "Time from SIGKILL of the active node until another node reports active on \
             `sys/health` and answers a KV read with the load token.\n"
        );
        failover_table(&mut out, &r.failover, &r.cluster_targets);
    }
    if let Some(pg) = &r.postgres {
        pg_section(&mut out, r, pg);
    }

    let _ = writeln!(out, "## Method\n");
    let _ = writeln!(
        out,
        "- Both servers start from the same OpenBao-style configuration file (`storage \"raft\"`, \
         one node unless stated, a `tcp` listener with `tls_disable`), are initialised with one \
         key share and unsealed through the HTTP API; each scenario is set up through the API \
         (mounts, 1,000 keys, roles, users)."
    );
    let _ = writeln!(
        out,
        "- Reads and writes use a token bound to a `kura-bench` policy (the root token only if a \
         target lacks policies); logins issue service tokens with a 10-minute TTL."
    );
    let _ = writeln!(
        out,
        "- Throughput counts 2xx answers only; non-2xx answers and transport errors are counted \
         separately (the errors column) and never as successes. Latencies are of 2xx answers, \
         from sending the request to reading the whole body, in an HDR histogram."
    );
    let _ = writeln!(
        out,
        "- CPU seconds per 1,000 requests come from `/proc/<pid>/stat` (utime + stime) deltas over \
         the measured window; resident memory from `VmRSS` in `/proc/<pid>/status`: idle after \
         start-up, and the largest value sampled every 250 ms under load."
    );
    let _ = writeln!(
        out,
        "- The load generator runs on the same {}-CPU machine and competes with the server for \
         CPU; its own cost is in `bench-out/results.json` (`loadgen_cpu_s_per_1k`).",
        m.cpus
    );
    let _ = writeln!(
        out,
        "- A scenario a target does not support (its setup gets 404/400/405) is shown as \
         \"unsupported\"; a target whose binary is absent as \"missing\"."
    );
    out
}

const COLORS: [(TargetKind, &str); 3] = [
    (TargetKind::Bao, "#d08c2c"),
    (TargetKind::Kura, "#2f6fb3"),
    (TargetKind::Ceiling, "#9a9a9a"),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn short_rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0).replace(".0k", "k")
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The chart: throughput of bao and Kura (and the ceiling, where measured) per single-node
/// scenario, grouped bars on a log10 axis, with value labels.
pub fn svg(r: &BenchResults) -> String {
    let scenarios: Vec<&ScenarioResult> = r
        .scenarios
        .iter()
        .filter(|s| s.topology == "single")
        .collect();
    let values: Vec<f64> = scenarios
        .iter()
        .flat_map(|s| COLORS.iter().filter_map(|(k, _)| s.throughput(*k)))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(10.0)
        .log10()
        .floor()
        .max(0.0);
    let hi = values
        .iter()
        .copied()
        .fold(1.0, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let (left, right, top, bottom) = (70.0, 20.0, 60.0, 90.0);
    let group_w = 120.0;
    let width = left + right + group_w * scenarios.len().max(1) as f64;
    let height = 440.0;
    let plot_h = height - top - bottom;
    let y = |v: f64| {
        let l = v.max(10f64.powf(lo)).log10();
        top + plot_h * (1.0 - (l - lo) / (hi - lo))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">Throughput, successful requests per second (log scale, higher is better)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="42" fill="#555">{} · {} conns · {} s × {} rounds, medians · {} CPUs</text>"##,
        esc(&r.date),
        r.connections,
        r.duration_s,
        r.rounds,
        r.machine.cpus
    );
    for d in (lo as i32)..=(hi as i32) {
        let v = 10f64.powi(d);
        let yy = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/>"##,
            width - right
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            yy + 4.0,
            short_rate(v)
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333333"/>"##,
        top + plot_h,
        width - right,
        top + plot_h
    );
    let bar_w = 28.0;
    for (gi, s) in scenarios.iter().enumerate() {
        let kinds: Vec<(TargetKind, &str)> = COLORS
            .iter()
            .copied()
            .filter(|(k, _)| s.targets.contains_key(k) || *k != TargetKind::Ceiling)
            .collect();
        let gx = left + group_w * gi as f64 + (group_w - bar_w * kinds.len() as f64) / 2.0;
        for (bi, (kind, color)) in kinds.iter().enumerate() {
            let x = gx + bar_w * bi as f64;
            match s.throughput(*kind) {
                Some(v) if v > 0.0 => {
                    let yy = y(v);
                    let _ = writeln!(
                        out,
                        r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{} {}: {:.1} req/s</title></rect>"#,
                        bar_w - 4.0,
                        top + plot_h - yy,
                        kind.name(),
                        s.name,
                        v
                    );
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                        x + (bar_w - 4.0) / 2.0,
                        yy - 4.0,
                        short_rate(v)
                    );
                }
                _ => {
                    let word = match s.targets.get(kind) {
                        Some(Outcome::Ran { .. }) => "all errors",
                        Some(o) => o.word(),
                        None => "–",
                    };
                    let _ = writeln!(
                        out,
                        r##"<text x="{:.1}" y="{:.1}" text-anchor="start" font-size="10" fill="{color}" transform="rotate(-90 {:.1} {:.1})">{}</text>"##,
                        x + (bar_w - 4.0) / 2.0 + 3.0,
                        top + plot_h - 4.0,
                        x + (bar_w - 4.0) / 2.0 + 3.0,
                        top + plot_h - 4.0,
                        word
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + group_w * gi as f64 + group_w / 2.0,
            top + plot_h + 18.0,
            esc(&s.name)
        );
        if let Some(ratio) = s.ratio() {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#2f6fb3">kura {ratio:.2}×</text>"##,
                left + group_w * gi as f64 + group_w / 2.0,
                top + plot_h + 34.0
            );
        }
    }
    let ly = height - 24.0;
    for (i, (kind, color)) in COLORS.iter().enumerate() {
        let lx = left + 150.0 * i as f64;
        let label = match kind {
            TargetKind::Bao => "OpenBao 2.7.2",
            TargetKind::Kura => "Kura",
            TargetKind::Ceiling => "HTTP ceiling",
        };
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="14" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{label}</text>"#,
            ly - 11.0,
            lx + 20.0
        );
    }
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Machine, Round};
    use std::collections::BTreeMap;

    fn sample() -> BenchResults {
        let ran = |t: f64| {
            let round = Round {
                ok: (t * 2.0) as u64,
                status_errors: BTreeMap::new(),
                transport_errors: 0,
                window_s: 2.0,
                throughput: t,
                p50_us: 900,
                p99_us: 4000,
                max_us: 9000,
                mean_us: 1000.0,
                cpu_s_per_1k: vec![0.2],
                rss_load_kib: vec![150_000],
                loadgen_cpu_s_per_1k: 0.05,
                first_error: None,
                db_cpu_s_per_1k: None,
            };
            let summary = Summary::of(std::slice::from_ref(&round));
            Outcome::Ran {
                rounds: vec![round],
                summary,
            }
        };
        let mut read = BTreeMap::new();
        read.insert(TargetKind::Bao, ran(5000.0));
        read.insert(TargetKind::Kura, Outcome::Skipped { missing: true });
        read.insert(TargetKind::Ceiling, ran(60000.0));
        let mut login = BTreeMap::new();
        login.insert(TargetKind::Bao, ran(40.0));
        login.insert(
            TargetKind::Kura,
            Outcome::Unsupported {
                detail: "404".into(),
            },
        );
        BenchResults {
            date: "2026-11-21T00:00:00Z".into(),
            command: "scripts/bench --duration 2s".into(),
            machine: Machine {
                cpus: 2,
                cpu_model: "Test CPU".into(),
                memory_mib: 24000,
                kernel: "6.1".into(),
            },
            connections: 32,
            warmup_s: 1.0,
            duration_s: 2.0,
            rounds: 1,
            keys: 1000,
            targets: vec![
                TargetInfo {
                    kind: TargetKind::Bao,
                    binary: "bao".into(),
                    availability: Availability::Ok,
                    version: Some("2.7.2".into()),
                    idle_rss_kib: vec![130_000],
                    policy_token: true,
                },
                TargetInfo {
                    kind: TargetKind::Kura,
                    binary: "kura".into(),
                    availability: Availability::Missing("not built".into()),
                    version: None,
                    idle_rss_kib: vec![],
                    policy_token: false,
                },
            ],
            scenarios: vec![
                ScenarioResult {
                    name: "kvv2_read".into(),
                    description: String::new(),
                    topology: "single".into(),
                    targets: read,
                    placement: "active".into(),
                    active_node: BTreeMap::new(),
                    notes: Vec::new(),
                },
                ScenarioResult {
                    name: "userpass_login".into(),
                    description: String::new(),
                    topology: "single".into(),
                    targets: login,
                    placement: "active".into(),
                    active_node: BTreeMap::new(),
                    notes: Vec::new(),
                },
            ],
            cluster_targets: vec![],
            failover: vec![],
            lags: vec![],
            postgres: None,
        }
    }

    #[test]
    fn markdown_states_machine_command_and_outcomes() {
        let md = markdown(&sample(), "docs/bench.svg");
        assert!(md.contains("Test CPU"));
        assert!(md.contains("`scripts/bench --duration 2s`"));
        assert!(md.contains("](docs/bench.svg)"));
        assert!(md.contains("| kvv2_read | 5000 | missing |"));
        assert!(md.contains("| userpass_login | 40.0 | unsupported |"));
        assert!(md.contains("60000 req/s"));
        assert!(md.contains("bao 8.3%"));
        assert!(md.contains("- kura userpass_login: unsupported: `404`"));
    }

    #[test]
    fn svg_is_well_formed_and_has_bars() {
        let svg = svg(&sample());
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        // bao ×2, ceiling ×1 bars, plus 3 legend squares and the background.
        assert_eq!(svg.matches("<rect").count(), 3 + 3 + 1);
        assert!(svg.contains(">unsupported<"));
        assert!(svg.contains(">missing<"));
    }

    #[test]
    fn standby_and_lag_sections() {
        let mut r = sample();
        let cpu_ran = |t: f64, cpu: Vec<f64>| {
            let mut o = sample().scenarios[0].targets[&TargetKind::Bao].clone();
            if let Outcome::Ran { summary, .. } = &mut o {
                summary.throughput = t;
                summary.cpu_s_per_1k = cpu;
            }
            o
        };
        for (name, placement, t, cpu) in [
            ("kvv2_read", "active", 1000.0, vec![0.01, 0.2, 0.01]),
            (
                "kvv2_read_standbys",
                "standbys",
                1500.0,
                vec![0.05, 0.01, 0.05],
            ),
            ("kvv2_read_spread", "all", 2500.0, vec![0.05, 0.1, 0.05]),
        ] {
            r.scenarios.push(ScenarioResult {
                name: name.into(),
                description: String::new(),
                topology: "cluster3".into(),
                targets: BTreeMap::from([(TargetKind::Kura, cpu_ran(t, cpu))]),
                placement: placement.into(),
                active_node: BTreeMap::from([(TargetKind::Kura, 1)]),
                notes: Vec::new(),
            });
        }
        r.lags.push(Lag::new(
            TargetKind::Kura,
            "kvv2_lag",
            vec![300, 500, 400],
            0,
            None,
        ));
        r.lags.push(Lag::new(
            TargetKind::Bao,
            "kvv2_lag",
            vec![],
            3,
            Some("307: |x|".into()),
        ));
        let md = markdown(&r, "docs/bench.svg");
        assert!(
            md.contains("| kura | 1000 | 0.200 | 1500 | 0.0100 | 0.0500 | 2500 | 2.50× |"),
            "{md}"
        );
        assert!(md.contains("| kvv2_lag | kura | 3 | 400µs | 500µs | 500µs | 0 |"));
        assert!(md.contains("| kvv2_lag | bao | 0 | – | – | – | 3 |  | 307: \\|x\\| |"));
        let t = terminal_table(&r);
        assert!(t.contains("load on standbys 0.0100 (ratio 0.0500)"), "{t}");
        assert_eq!(sig3(0.000212345), "0.000212");
        assert_eq!(sig3(47402.3), "47402");
        assert_eq!(sig3(1.5), "1.50");
        assert!(t.contains("kvv2_lag   kura  p50 400µs"));
    }

    #[test]
    fn postgres_section() {
        let mut r = sample();
        assert!(!markdown(&r, "x.svg").contains("PostgreSQL storage"));
        let ran = |t: f64| {
            let mut o = sample().scenarios[0].targets[&TargetKind::Bao].clone();
            if let Outcome::Ran { summary, .. } = &mut o {
                summary.throughput = t;
                summary.db_cpu_s_per_1k = Some(1000.0 / t);
            }
            o
        };
        r.scenarios.push(ScenarioResult {
            name: "pg_kvv2_read".into(),
            description: String::new(),
            topology: PG_TOPOLOGY.into(),
            targets: BTreeMap::from([
                (TargetKind::Bao, ran(500.0)),
                (TargetKind::Kura, ran(2000.0)),
            ]),
            placement: "active".into(),
            active_node: BTreeMap::new(),
            notes: Vec::new(),
        });
        let failover = |kind, times_s: Vec<f64>, error: Option<&str>| Failover {
            kind,
            median_s: crate::results::median(&times_s),
            max_s: times_s.iter().copied().fold(0.0, f64::max),
            times_s,
            error: error.map(str::to_owned),
        };
        r.postgres = Some(PgRun {
            server: "started by the harness from scripts/postgres".into(),
            version: Some("15.8".into()),
            error: None,
            nodes: 3,
            targets: r.targets.clone(),
            failover: vec![
                failover(TargetKind::Bao, vec![15.2, 15.9, 15.4], None),
                failover(TargetKind::Kura, vec![1.6, 1.9, 1.7], None),
            ],
            lags: vec![
                Lag::new(
                    TargetKind::Bao,
                    "pg_kvv2_lag",
                    vec![2000],
                    3,
                    Some(r#"timed out after 5s; last answer 200: value "lag-000000""#.into()),
                ),
                Lag::new(TargetKind::Kura, "pg_kvv2_lag", vec![300, 500], 0, None),
                Lag::new(
                    TargetKind::Bao,
                    "pg_revoke_lag",
                    vec![],
                    3,
                    Some("200".into()),
                ),
                Lag::new(TargetKind::Kura, "pg_revoke_lag", vec![700], 0, None),
            ],
        });
        let md = markdown(&r, "x.svg");
        assert!(
            md.contains("## PostgreSQL storage (same database server)"),
            "{md}"
        );
        // The propagation table, as on raft, with its own heading and names; timeouts and the
        // last answer shown.
        assert!(
            md.contains("### Propagation to PostgreSQL standbys (3 nodes)"),
            "{md}"
        );
        assert!(md.contains("alternating between the two"), "{md}");
        assert!(md.contains("`pg_kvv2_lag`: a KV v2 write"), "{md}");
        assert!(
            md.contains(
                "| pg_kvv2_lag | bao | 1 | 2.00ms | 2.00ms | 2.00ms | 3 |  | timed out after 5s; \
                 last answer 200: value \"lag-000000\" |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| pg_kvv2_lag | kura | 2 | 300µs | 500µs | 500µs | 0 | 0.150× |  |"),
            "{md}"
        );
        assert!(
            md.contains("| pg_revoke_lag | bao | 0 | – | – | – | 3 |  | 200 |"),
            "{md}"
        );
        assert!(
            md.contains("| pg_revoke_lag | kura | 1 | 700µs | 700µs | 700µs | 0 | – |  |"),
            "{md}"
        );
        // Not in the raft section, which is absent.
        assert!(!md.contains("## Propagation to standbys"), "{md}");
        assert!(md.contains("One PostgreSQL 15.8 server"));
        assert!(md.contains("| pg_kvv2_read | 500 | 2000 | 4.00× |"), "{md}");
        assert!(
            md.contains("| pg_kvv2_read | 2.00 | 0.500 | 0.250× |"),
            "{md}"
        );
        assert!(md.contains("| bao | 3 | 15.40 s | 15.90 s |  |"), "{md}");
        assert!(md.contains("| kura | 3 | 1.70 s | 1.90 s |  |"), "{md}");
        assert!(md.contains("Kura's median is 0.110× bao's."), "{md}");
        // The raft tables are not mixed in.
        assert!(!md.contains("## Failover (3 nodes"));
        let t = terminal_table(&r);
        assert!(t.contains("pg_kvv2_read     postgres kura"), "{t}");
        assert!(
            t.contains("database CPU s/1k req: bao 2.00, kura 0.500"),
            "{t}"
        );
        assert!(t.contains("failover postgres kura  median 1.70 s, max 1.90 s over 3 run(s)"));
        assert!(
            t.contains(
                "pg_kvv2_lag bao   p50 2.00ms p99 2.00ms max 2.00ms over 1 samples, 3 timeouts"
            ),
            "{t}"
        );

        if let Some(pg) = r.postgres.as_mut() {
            pg.error = Some("scripts/postgres start failed\nmore".into());
            pg.failover.clear();
        }
        let md = markdown(&r, "x.svg");
        assert!(
            md.contains("Not run: `scripts/postgres start failed`"),
            "{md}"
        );
    }

    #[test]
    fn postgres_standby_section() {
        let mut r = sample();
        let cpu_ran = |t: f64, cpu: Vec<f64>| {
            let mut o = sample().scenarios[0].targets[&TargetKind::Bao].clone();
            if let Outcome::Ran { summary, .. } = &mut o {
                summary.throughput = t;
                summary.cpu_s_per_1k = cpu;
            }
            o
        };
        r.postgres = Some(PgRun {
            server: "started by the harness from scripts/postgres".into(),
            version: Some("15.8".into()),
            error: None,
            nodes: 3,
            targets: r.targets.clone(),
            failover: Vec::new(),
            lags: Vec::new(),
        });
        // No standby scenario on PostgreSQL: no section, even with raft ones.
        let md = markdown(&r, "x.svg");
        assert!(!md.contains("PostgreSQL standbys"), "{md}");
        for (name, placement, t, cpu) in [
            ("pg_kvv2_read", "active", 800.0, vec![0.02, 0.4, 0.02]),
            (
                "pg_kvv2_read_standbys",
                "standbys",
                1200.0,
                vec![0.3, 0.04, 0.3],
            ),
            ("pg_kvv2_read_spread", "all", 2000.0, vec![0.2, 0.2, 0.2]),
        ] {
            r.scenarios.push(ScenarioResult {
                name: name.into(),
                description: String::new(),
                topology: PG_TOPOLOGY.into(),
                targets: BTreeMap::from([(TargetKind::Kura, cpu_ran(t, cpu))]),
                placement: placement.into(),
                active_node: BTreeMap::from([(TargetKind::Kura, 1)]),
                notes: Vec::new(),
            });
        }
        let md = markdown(&r, "x.svg");
        assert!(
            md.contains("### KV v2 reads on PostgreSQL standbys"),
            "{md}"
        );
        assert!(md.contains("(`pg_kvv2_read_standbys`)"), "{md}");
        assert!(
            md.contains("| kura | 800 | 0.400 | 1200 | 0.0400 | 0.100 | 2000 | 2.50× |"),
            "{md}"
        );
        // The section sits in the PostgreSQL part, and the raft one is not drawn.
        let pg_at = md.find("## PostgreSQL storage").unwrap();
        assert!(md.find("### KV v2 reads on PostgreSQL standbys").unwrap() > pg_at);
        assert!(!md.contains("### KV v2 reads on standbys\n"), "{md}");
        let t = terminal_table(&r);
        assert!(
            t.contains("standby reads postgres kura  active node CPU s/1k: load on active 0.400"),
            "{t}"
        );
        assert!(!t.contains("standby reads raft"), "{t}");
    }

    #[test]
    fn terminal_table_lists_every_target() {
        let t = terminal_table(&sample());
        assert!(t.contains("kvv2_read        single   ceiling"));
        assert!(t.contains("unsupported"));
        assert!(t.contains("idle RSS bao"));
    }
}
