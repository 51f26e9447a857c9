//! Test support (feature `test-support`): a real PostgreSQL for tests.
//!
//! [`server_url`] is `KURA_TEST_PG_URL` when set (`scripts/test` starts one server for the whole
//! run); otherwise the first call starts a throwaway server through `scripts/postgres start`
//! (initdb into a temporary directory on a free port), which stops and removes itself once this
//! test process has exited. Tests never skip for want of a database: a server that cannot be
//! started fails the test. [`fresh_database`] gives each test its own database on that server.
//!
//! Tests of replication start their own primary ([`start_server`]) and a streaming replica of
//! it ([`start_replica`]), which [`promote`] turns into a primary.

use std::sync::OnceLock;

/// The environment variable naming a running server (a `postgres://` URL).
pub const ENV_URL: &str = "KURA_TEST_PG_URL";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres")
}

/// The URL of a running PostgreSQL server (its `postgres` database), starting one if needed.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var(ENV_URL) {
            if !url.trim().is_empty() {
                return url.trim().to_string();
            }
        }
        start_server(false).url
    })
    .clone()
}

/// A server started by [`start_server`]; it stops (and its directory goes) once this test
/// process has exited.
pub struct StartedServer {
    /// Its connection URL (`sslmode=disable`).
    pub url: String,
    /// Its directory; with TLS, `tls/ca.pem` there is the CA of its certificate (issued for
    /// `localhost` and `127.0.0.1`).
    pub dir: std::path::PathBuf,
}

impl StartedServer {
    /// Its URL for the database `db`.
    pub fn database_url(&self, db: &str) -> String {
        with_database(&self.url, db)
    }
}

/// A new directory name under the temporary directory.
fn new_dir(kind: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("kura-{kind}-{}-{nanos}", std::process::id()))
}

/// Runs `scripts/postgres ARGS...`, panicking with its error output when it fails; returns the
/// last line it printed.
fn run_script(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new("bash")
        .arg(script())
        .args(args)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("running scripts/postgres");
    assert!(
        out.status.success(),
        "scripts/postgres {:?} failed (PostgreSQL 15 is required for these tests; \
         scripts/install-test-deps installs it):\n{}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("output")
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Starts a new server through `scripts/postgres start`, with TLS when `ssl`.
pub fn start_server(ssl: bool) -> StartedServer {
    let dir = new_dir("pg");
    let pid = std::process::id().to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "start".as_ref(),
        dir.as_os_str(),
        "--watch-pid".as_ref(),
        pid.as_ref(),
    ];
    if ssl {
        args.push("--ssl".as_ref());
    }
    let url = run_script(&args);
    assert!(!url.is_empty(), "scripts/postgres printed no URL");
    StartedServer { url, dir }
}

/// Starts a streaming replica (a hot standby, read-only) of `primary` through
/// `scripts/postgres replica`: `pg_basebackup -R -X stream` of the whole cluster into a new
/// directory, started on a free port. It stops once this test process has exited.
pub fn start_replica(primary: &StartedServer) -> StartedServer {
    let dir = new_dir("pg-replica");
    let pid = std::process::id().to_string();
    let url = run_script(&[
        "replica".as_ref(),
        primary.dir.as_os_str(),
        dir.as_os_str(),
        "--watch-pid".as_ref(),
        pid.as_ref(),
    ]);
    assert!(!url.is_empty(), "scripts/postgres printed no URL");
    StartedServer { url, dir }
}

/// Promotes a replica started by [`start_replica`] to a primary (`pg_ctl promote`, waiting
/// until it accepts writes).
pub fn promote(replica: &StartedServer) {
    run_script(&["promote".as_ref(), replica.dir.as_os_str()]);
}

/// Stops a server started by [`start_server`] or [`start_replica`] (`pg_ctl stop -m fast`).
pub fn stop(server: &StartedServer) {
    run_script(&["stop".as_ref(), server.dir.as_os_str()]);
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// Creates a new, empty database named after `hint` on the test server; returns its URL.
pub async fn fresh_database(hint: &str) -> String {
    create_database(&server_url(), hint).await
}

/// Creates a new, empty database named after `hint` on the server at `base` (any database's
/// URL on it); returns its URL. Its name is the URL's last path segment.
pub async fn create_database(base: &str, hint: &str) -> String {
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "kura_{clean}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (config, tls) = crate::tls::prepare(base).expect("test server URL");
    let pool = crate::pool::Pool::new(
        config,
        tls,
        std::sync::Arc::new(crate::pool::Sql::new("x", "y")),
        false,
        1,
        0,
    );
    let client = pool
        .connect_raw()
        .await
        .expect("connecting to the test server");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", crate::describe(&e)));
    with_database(base, &name)
}

/// [`fresh_database`] for synchronous tests.
pub fn fresh_database_blocking(hint: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(fresh_database(hint))
}

/// Runs `sql` on the database at `url` and returns every row's columns as text (NULL as
/// `None`), for tests that inspect the tables directly.
pub async fn query_text(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (config, tls) = crate::tls::prepare(url).expect("URL");
    let pool = crate::pool::Pool::new(
        config,
        tls,
        std::sync::Arc::new(crate::pool::Sql::new("x", "y")),
        false,
        1,
        0,
    );
    let client = pool
        .connect_raw()
        .await
        .expect("connecting to the test server");
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", crate::describe(&e)));
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// SQL returning a WAL position a replica will reach that covers every commit made so far on
/// the primary: a transaction that writes WAL (a logical message; one that writes none is
/// committed without a flush), committed with a flush, then the flush position.
pub const SYNC_POSITION_SQL: &str = "BEGIN; SET LOCAL synchronous_commit = local; \
     SELECT pg_logical_emit_message(true, 'kura-test', 'sync'); COMMIT; \
     SELECT pg_current_wal_flush_lsn()::text";

/// [`query_text`] for synchronous tests.
pub fn query_text_blocking(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(query_text(url, sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
