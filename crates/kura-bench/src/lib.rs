//! `kura-bench`: Kura against OpenBao 2.7.2 side by side on loopback.
//!
//! Both servers start from the same OpenBao-style configuration, get the same setup through the
//! HTTP API, and take the same closed-loop load from [`loadgen`] in alternating rounds. A minimal
//! HTTP server ([`ceiling`]) gives the physical ceiling of the machine. Results go to the terminal,
//! `bench-out/results.json`, `BENCHMARKS.md` and an SVG chart ([`report`]).

pub mod api;
pub mod ceiling;
pub mod lag;
pub mod loadgen;
pub mod pg;
pub mod procstat;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenarios;
pub mod target;

pub use loadgen::{LoadConfig, LoadResult, RequestGen, RequestSpec, Schedule};

/// Errors parsing a duration given on the command line.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {0:?}: use e.g. 10s, 500ms, 2m or a number of seconds")]
pub struct DurationError(pub String);

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, DurationError> {
    let err = || DurationError(s.to_owned());
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(err());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }
}
