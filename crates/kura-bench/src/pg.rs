//! The PostgreSQL server the PostgreSQL-backed targets share: started for the run through
//! `scripts/postgres start DIR --watch-pid <this process>` (a throwaway server that stops when
//! the harness exits), or an existing server given by URL. Each target gets its own database on
//! it, dropped and created afresh (`bench_bao`, `bench_kura`), so both run against the same
//! server with the same settings.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::target::TargetKind;

/// Errors starting or preparing the database server.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `scripts/postgres` could not be run or failed.
    #[error("{0}")]
    Script(String),
    /// The URL has no `scheme://host/` shape.
    #[error("not a postgres:// URL: {0:?}")]
    Url(String),
    /// A statement failed.
    #[error("{what}: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// Underlying error.
        source: tokio_postgres::Error,
    },
}

/// Where the database server comes from.
#[derive(Clone, Debug)]
pub enum PgSource {
    /// Start a throwaway server with this `scripts/postgres`.
    Script(PathBuf),
    /// Use the server at this URL (any database on it; the harness creates its own).
    Url(String),
}

/// A database server for the run. A server the harness started is stopped and its directory
/// removed on drop.
pub struct PgServer {
    /// URL of the server's maintenance database (as given or printed by the script).
    pub url: String,
    /// `SHOW server_version`.
    pub version: String,
    /// The postmaster's process id, when the harness started the server (for its CPU).
    pub postmaster_pid: Option<u32>,
    started: Option<(PathBuf, PathBuf)>,
}

/// Name of the database a target gets (`bench_bao`, `bench_kura`).
pub fn database_name(kind: TargetKind) -> String {
    format!("bench_{}", kind.name())
}

/// `url` with its database (the path after the host) replaced by `db`; the query is kept.
pub fn with_database(url: &str, db: &str) -> Result<String, PgError> {
    let err = || PgError::Url(url.to_owned());
    let after_scheme = url.find("://").ok_or_else(err)? + 3;
    let (head, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    if head.len() < after_scheme {
        return Err(err());
    }
    let host_end = head[after_scheme..]
        .find('/')
        .map_or(head.len(), |i| after_scheme + i);
    if host_end == after_scheme {
        return Err(err());
    }
    Ok(format!("{}/{db}{query}", &head[..host_end]))
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, PgError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|source| PgError::Sql {
            what: format!("connect to {}", redact(url)),
            source,
        })?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; its error then is of no interest.
        let _ = conn.await;
    });
    Ok(client)
}

/// `url` without a password, for messages and reports.
pub fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let Some(at) = url[start..].find('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

impl PgServer {
    /// Starts or connects to the server and reads its version.
    pub async fn start(source: &PgSource) -> Result<Self, PgError> {
        let (url, started) = match source {
            PgSource::Url(url) => (url.clone(), None),
            PgSource::Script(script) => {
                let dir = scratch_dir();
                let (url, data) = run_script(script, &dir)?;
                (url, Some((script.clone(), data)))
            }
        };
        let postmaster_pid = started.as_ref().and_then(|(_, dir)| postmaster_pid(dir));
        let mut server = Self {
            url,
            version: String::new(),
            postmaster_pid,
            started,
        };
        let client = connect(&server.url).await?;
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|source| PgError::Sql {
                what: "SHOW server_version".into(),
                source,
            })?;
        server.version = row.get(0);
        Ok(server)
    }

    /// Drops `db` if it exists, creates it empty, and returns its URL.
    pub async fn fresh_database(&self, db: &str) -> Result<String, PgError> {
        let client = connect(&self.url).await?;
        let q = quote_ident(db);
        for stmt in [
            format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)"),
            format!("CREATE DATABASE {q}"),
        ] {
            client
                .batch_execute(&stmt)
                .await
                .map_err(|source| PgError::Sql { what: stmt, source })?;
        }
        with_database(&self.url, db)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some((script, dir)) = self.started.take() {
            // The watcher started with --watch-pid would also stop it once we exit.
            let _ = Command::new(&script).arg("stop").arg(&dir).output();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A path for the server's directory that does not exist yet. Directly under the temporary
/// directory: when run as root the script hands the directory to the `postgres` user, who must
/// be able to reach it.
fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("kura-bench-pg-{}-{nanos:09}", std::process::id()))
}

/// Runs `script start DIR --watch-pid <us>`; returns the URL it printed and DIR.
fn run_script(script: &Path, dir: &Path) -> Result<(String, PathBuf), PgError> {
    let out = Command::new(script)
        .arg("start")
        .arg(dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| PgError::Script(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(PgError::Script(format!(
            "{} start failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("postgres://") || l.starts_with("postgresql://"))
        .ok_or_else(|| {
            PgError::Script(format!(
                "{} start printed no URL: {stdout:?}",
                script.display()
            ))
        })?;
    Ok((url.trim().to_owned(), dir.to_owned()))
}

/// The postmaster's pid from `DIR/data/postmaster.pid` (its first line).
fn postmaster_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_query_kept() {
        let u = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(
            with_database(u, "bench_kura").unwrap(),
            "postgres://postgres@127.0.0.1:5432/bench_kura?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u:p@db.example:5433", "bench_bao").unwrap(),
            "postgresql://u:p@db.example:5433/bench_bao"
        );
        assert_eq!(
            with_database("postgres://h/?sslmode=require", "x").unwrap(),
            "postgres://h/x?sslmode=require"
        );
        assert!(with_database("host=localhost dbname=x", "y").is_err());
        assert!(with_database("postgres:///x", "y").is_err());
    }

    #[test]
    fn names_and_quoting() {
        assert_eq!(database_name(TargetKind::Bao), "bench_bao");
        assert_eq!(database_name(TargetKind::Kura), "bench_kura");
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db?x=y"),
            "postgres://u:***@h:1/db?x=y"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("nonsense"), "nonsense");
    }
}
