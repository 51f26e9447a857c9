//! Per-process CPU time and resident memory from Linux's `/proc`.

use std::sync::OnceLock;

/// Errors reading `/proc`.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (usually: the process is gone).
    #[error("cannot read /proc/{pid}: {source}")]
    Read {
        /// Process id.
        pid: u32,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file did not have the expected shape.
    #[error("unexpected format in /proc/{pid}/{file}")]
    Format {
        /// Process id.
        pid: u32,
        /// File name under the process directory.
        file: &'static str,
    },
}

/// Clock ticks per second used by `/proc/<pid>/stat` (from `getconf CLK_TCK`, else 100).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Parses user + system CPU ticks out of the text of `/proc/<pid>/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces; fields after the last
    // ')' start at field 3 (state). utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Parses `VmRSS` (KiB) out of the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| ProcError::Read { pid, source })?;
    let ticks = parse_stat_ticks(&text).ok_or(ProcError::Format { pid, file: "stat" })?;
    Ok(ticks as f64 / clock_ticks() as f64)
}

/// Fields of `/proc/<pid>/stat` a process tree's CPU is summed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatTree {
    /// Parent process id (field 4).
    pub ppid: u32,
    /// utime + stime, ticks (fields 14 and 15).
    pub own_ticks: u64,
    /// cutime + cstime, ticks (fields 16 and 17): children that exited and were reaped.
    pub reaped_children_ticks: u64,
}

/// Parses the fields of [`StatTree`] out of the text of `/proc/<pid>/stat`.
pub fn parse_stat_tree(stat: &str) -> Option<StatTree> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| -> Option<u64> { f.get(i)?.parse().ok() };
    Some(StatTree {
        ppid: f.get(1)?.parse().ok()?,
        own_ticks: n(11)? + n(12)?,
        reaped_children_ticks: n(13)? + n(14)?,
    })
}

/// CPU seconds used so far by process `pid` and its direct children, the living ones and those
/// it has reaped (a PostgreSQL postmaster and its per-connection backends, which come and go).
pub fn tree_cpu_seconds(pid: u32) -> Result<f64, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| ProcError::Read { pid, source })?;
    let root = parse_stat_tree(&text).ok_or(ProcError::Format { pid, file: "stat" })?;
    let mut ticks = root.own_ticks + root.reaped_children_ticks;
    let entries = std::fs::read_dir("/proc").map_err(|source| ProcError::Read { pid, source })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process that exits between listing and reading is simply skipped.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let Some(t) = parse_stat_tree(&text).filter(|t| t.ppid == pid) {
            ticks += t.own_ticks;
        }
    }
    Ok(ticks as f64 / clock_ticks() as f64)
}

/// Resident memory of the process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, ProcError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| ProcError::Read { pid, source })?;
    parse_status_rss_kib(&text).ok_or(ProcError::Format {
        pid,
        file: "status",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    8 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_tree_fields() {
        let stat = "1234 (postgres: x) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 75 40 2 20 0 \
                    8 0 100 1000000 500 18446744073709551615";
        assert_eq!(
            parse_stat_tree(stat),
            Some(StatTree {
                ppid: 77,
                own_ticks: 325,
                reaped_children_ticks: 42
            })
        );
        assert_eq!(parse_stat_tree("1 (x) S 1"), None);
    }

    #[test]
    fn tree_includes_children() {
        let me = std::process::id();
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Own CPU first: it only grows, so the tree read after it cannot be smaller.
        let own = cpu_seconds(me).unwrap();
        let total = tree_cpu_seconds(me).unwrap();
        assert!(total >= own, "{total} < {own}");
        assert!(matches!(
            tree_cpu_seconds(u32::MAX),
            Err(ProcError::Read { .. })
        ));
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tbao\nVmPeak:\t  9000 kB\nVmRSS:\t   131072 kB\nThreads:\t12\n";
        assert_eq!(parse_status_rss_kib(status), Some(131_072));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        // Burn a little CPU so the counter is non-zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_kib(pid).unwrap() > 100);
        assert!(matches!(rss_kib(u32::MAX), Err(ProcError::Read { .. })));
    }
}
