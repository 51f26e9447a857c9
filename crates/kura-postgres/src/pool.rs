//! A small connection pool: at most `max_parallel` connections in use, at most
//! `max_idle_connections` kept idle, every statement prepared once per connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kura_storage::{Result, StorageError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Statement};

use crate::tls::Tls;
use crate::{db_err, quote_ident, IDLE_IN_TXN_TIMEOUT};

/// Time allowed to open one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The statements' text for one pair of tables.
pub(crate) struct Sql {
    pub(crate) get: String,
    pub(crate) put: String,
    pub(crate) delete: String,
    pub(crate) list: String,
    pub(crate) fence: String,
    pub(crate) holder: String,
    pub(crate) acquire: String,
    pub(crate) renew: String,
    pub(crate) release: String,
}

impl Sql {
    pub(crate) fn new(table: &str, ha_table: &str) -> Sql {
        let t = quote_ident(table);
        let ha = quote_ident(ha_table);
        Sql {
            get: format!("SELECT value FROM {t} WHERE path = $1 AND key = $2"),
            put: format!(
                "INSERT INTO {t} VALUES ($1, $2, $3, $4) ON CONFLICT (path, key) DO \
                 UPDATE SET (parent_path, path, key, value) = ($1, $2, $3, $4)"
            ),
            delete: format!("DELETE FROM {t} WHERE path = $1 AND key = $2"),
            // OpenBao's list query, with the LIKE pattern passed escaped as $2.
            list: format!(
                "SELECT key FROM {t} WHERE path = $1 \
                 UNION ALL SELECT DISTINCT substring(substr(path, length($1) + 1) from '^.*?/') \
                 FROM {t} WHERE parent_path LIKE $2 ORDER BY key"
            ),
            fence: format!(
                "SELECT 1 FROM {ha} WHERE ha_key = $1 AND ha_identity = $2 \
                 AND valid_until > clock_timestamp() FOR KEY SHARE"
            ),
            holder: format!("SELECT ha_value FROM {ha} WHERE now() <= valid_until AND ha_key = $1"),
            // $1 identity, $2 key, $3 value, $4 ttl in milliseconds. Insert, or take over an
            // expired lock (a fresh identity per acquisition: never "or mine"). Assigning
            // ha_key makes the takeover lock the row FOR UPDATE, the lock that waits for the
            // holder's fenced writes (FOR KEY SHARE): keep it in the SET list. While the lock
            // is valid, the NOT EXISTS makes the statement insert nothing, so it never reaches
            // the conflicting row: a standby's attempt does not queue for the row lock (where
            // every later write of the holder would queue behind it).
            acquire: format!(
                "INSERT INTO {ha} AS t (ha_identity, ha_key, ha_value, valid_until) \
                 SELECT $1::text, $2::text, $3::text, now() + $4::float8 * INTERVAL '1 millisecond' \
                 WHERE NOT EXISTS (SELECT 1 FROM {ha} WHERE ha_key = $2::text AND valid_until >= now()) \
                 ON CONFLICT (ha_key) DO UPDATE SET (ha_identity, ha_key, ha_value, valid_until) \
                 = ($1::text, $2::text, $3::text, now() + $4::float8 * INTERVAL '1 millisecond') \
                 WHERE t.valid_until < now() AND t.ha_key = $2::text"
            ),
            // $1 identity, $2 key, $3 ttl in milliseconds: only a lock still held is extended.
            renew: format!(
                "UPDATE {ha} SET valid_until = now() + $3 * INTERVAL '1 millisecond' \
                 WHERE ha_key = $2 AND ha_identity = $1 AND valid_until > now()"
            ),
            release: format!("DELETE FROM {ha} WHERE ha_identity = $1 AND ha_key = $2"),
        }
    }
}

/// Statements prepared on one connection.
pub(crate) struct Stmts {
    pub(crate) get: Statement,
    pub(crate) put: Statement,
    pub(crate) delete: Statement,
    pub(crate) list: Statement,
    pub(crate) fence: Option<Statement>,
    pub(crate) holder: Option<Statement>,
}

struct Conn {
    client: Client,
    stmts: Arc<Stmts>,
}

pub(crate) struct Pool {
    config: tokio_postgres::Config,
    tls: Tls,
    pub(crate) sql: Arc<Sql>,
    ha: bool,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(
        config: tokio_postgres::Config,
        tls: Tls,
        sql: Arc<Sql>,
        ha: bool,
        max_parallel: usize,
        max_idle: usize,
    ) -> Pool {
        Pool {
            config,
            tls,
            sql,
            ha,
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Opens a new connection outside the pool (start-up checks, the lock's own connection).
    pub(crate) async fn connect_raw(&self) -> std::result::Result<Client, String> {
        let connect = async {
            match &self.tls {
                Tls::None => {
                    let (client, conn) = self
                        .config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| crate::describe(&e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok::<_, String>(client)
                }
                Tls::Rustls(make) => {
                    let (client, conn) = self
                        .config
                        .connect(make.clone())
                        .await
                        .map_err(|e| crate::describe(&e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(client)
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| "timed out connecting to the database".to_string())?
    }

    async fn open(&self) -> Result<Conn> {
        let client = self
            .connect_raw()
            .await
            .map_err(|e| StorageError::Unavailable(format!("postgresql: {e}")))?;
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                IDLE_IN_TXN_TIMEOUT.as_millis()
            ))
            .await
            .map_err(db_err)?;
        let sql = &self.sql;
        let (get, put, delete, list) = futures::try_join!(
            client.prepare(&sql.get),
            client.prepare(&sql.put),
            client.prepare(&sql.delete),
            client.prepare(&sql.list),
        )
        .map_err(db_err)?;
        let (fence, holder) = if self.ha {
            let (f, h) =
                futures::try_join!(client.prepare(&sql.fence), client.prepare(&sql.holder))
                    .map_err(db_err)?;
            (Some(f), Some(h))
        } else {
            (None, None)
        };
        Ok(Conn {
            client,
            stmts: Arc::new(Stmts {
                get,
                put,
                delete,
                list,
                fence,
                holder,
            }),
        })
    }

    /// A connection for one operation; back to the pool when dropped.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledConn> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Unavailable("postgresql pool closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.client.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let conn = match reused {
            Some(c) => c,
            None => self.open().await?,
        };
        Ok(PooledConn {
            conn: Some(conn),
            pool: self.clone(),
            in_transaction: false,
            _permit: permit,
        })
    }
}

/// A connection checked out of the pool.
pub(crate) struct PooledConn {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    /// Set while a hand-run transaction is open: a connection dropped in that state (the
    /// operation was cancelled or failed half-way) is closed, never pooled, so the server rolls
    /// the transaction back and no later operation runs inside it.
    in_transaction: bool,
    _permit: OwnedSemaphorePermit,
}

impl PooledConn {
    pub(crate) fn client(&self) -> &Client {
        &self.conn.as_ref().expect("pooled connection").client
    }

    pub(crate) fn stmts(&self) -> &Arc<Stmts> {
        &self.conn.as_ref().expect("pooled connection").stmts
    }

    /// Marks a hand-run transaction as open (`true`) or ended (`false`).
    pub(crate) fn set_in_transaction(&mut self, open: bool) {
        self.in_transaction = open;
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.client.is_closed() || self.in_transaction {
                return;
            }
            let mut idle = self.pool.idle.lock().expect("pool lock");
            if idle.len() < self.pool.max_idle {
                idle.push(conn);
            }
        }
    }
}
