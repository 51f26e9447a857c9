//! The PostgreSQL backend against a real PostgreSQL 15 (started by `scripts/postgres`, or the
//! one named by `KURA_TEST_PG_URL`): the storage contract, OpenBao's row layout, the HA lock
//! and fencing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kura_postgres::testing::{fresh_database, query_text};
use kura_postgres::{LockTiming, PostgresBackend, PostgresOptions};
use kura_storage::{Backend, HaLock, StorageError, TxnOp};

async fn backend(url: &str, ha: bool) -> PostgresBackend {
    let mut o = PostgresOptions::new(url);
    o.ha_enabled = ha;
    PostgresBackend::connect(o).await.expect("connect")
}

async fn backend_with(url: &str, timing: LockTiming) -> PostgresBackend {
    let mut o = PostgresOptions::new(url);
    o.ha_enabled = true;
    o.lock_timing = timing;
    PostgresBackend::connect(o).await.expect("connect")
}

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

#[tokio::test]
async fn storage_contract() {
    let url = fresh_database("contract").await;
    let b = backend(&url, false).await;
    assert_eq!(b.name(), "postgresql");
    assert_eq!(b.get("missing").await.unwrap(), None);
    b.put("top", b"0".to_vec()).await.unwrap();
    b.put("a/b", b"1".to_vec()).await.unwrap();
    b.put("a/c/d", b"2".to_vec()).await.unwrap();
    b.put("a/c/e/f", b"3".to_vec()).await.unwrap();
    b.put("a/c/e/g", b"4".to_vec()).await.unwrap();
    b.put("ab", b"5".to_vec()).await.unwrap();
    b.put("a_x/y", b"6".to_vec()).await.unwrap();
    // Overwrite.
    b.put("a/b", b"1b".to_vec()).await.unwrap();
    assert_eq!(b.get("a/b").await.unwrap(), Some(b"1b".to_vec()));
    assert_eq!(b.get("a/c/e/g").await.unwrap(), Some(b"4".to_vec()));
    // Binary values survive.
    let binary: Vec<u8> = (0..=255u8).collect();
    b.put("bin", binary.clone()).await.unwrap();
    assert_eq!(b.get("bin").await.unwrap(), Some(binary));
    // Empty values are values.
    b.put("empty", Vec::new()).await.unwrap();
    assert_eq!(b.get("empty").await.unwrap(), Some(Vec::new()));

    assert_eq!(
        b.list("").await.unwrap(),
        vec!["a/", "a_x/", "ab", "bin", "empty", "top"]
    );
    assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/"]);
    assert_eq!(b.list("a/c/").await.unwrap(), vec!["d", "e/"]);
    assert_eq!(b.list("a/c/e/").await.unwrap(), vec!["f", "g"]);
    // `_` in a prefix is not a wildcard.
    assert_eq!(b.list("a_x/").await.unwrap(), vec!["y"]);
    assert!(b.list("nothing/").await.unwrap().is_empty());

    b.delete("a/c/d").await.unwrap();
    b.delete("a/c/d").await.unwrap(); // deleting a missing key is fine
    assert_eq!(b.get("a/c/d").await.unwrap(), None);
    assert_eq!(b.list("a/c/").await.unwrap(), vec!["e/"]);
    b.delete("a/c/e/f").await.unwrap();
    b.delete("a/c/e/g").await.unwrap();
    assert_eq!(b.list("a/").await.unwrap(), vec!["b"]);

    assert!(matches!(
        b.put("", vec![]).await,
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        b.get("/abs").await,
        Err(StorageError::InvalidKey(_))
    ));

    // Transactions apply in order.
    b.transaction(vec![
        put("t/1", b"x"),
        put("t/2", b"y"),
        TxnOp::Delete { key: "t/1".into() },
        put("t/3", b"z"),
    ])
    .await
    .unwrap();
    assert_eq!(b.list("t/").await.unwrap(), vec!["2", "3"]);
    b.transaction(Vec::new()).await.unwrap();
}

#[tokio::test]
async fn transactions_are_atomic() {
    let url = fresh_database("atomic").await;
    let b = backend(&url, false).await;
    b.put("keep", b"old".to_vec()).await.unwrap();
    // A constraint the second write violates: the whole transaction must roll back.
    query_text(
        &url,
        "ALTER TABLE openbao_kv_store ADD CONSTRAINT no_poison CHECK (key <> 'poison')",
    )
    .await;
    let err = b
        .transaction(vec![
            put("keep", b"new"),
            put("txn/a", b"1"),
            put("txn/poison", b"2"),
            put("txn/b", b"3"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err:?}");
    assert_eq!(b.get("keep").await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(b.get("txn/a").await.unwrap(), None);
    assert!(b.list("txn/").await.unwrap().is_empty());
    // The pool's connection is usable afterwards.
    b.put("txn/a", b"1".to_vec()).await.unwrap();
    assert_eq!(b.get("txn/a").await.unwrap(), Some(b"1".to_vec()));
}

#[tokio::test]
async fn rows_use_openbaos_layout() {
    let url = fresh_database("layout").await;
    let b = backend(&url, true).await;
    b.put("sys/token/id/abc", b"v".to_vec()).await.unwrap();
    b.put("core/seal-config", b"s".to_vec()).await.unwrap();
    b.put("top", b"t".to_vec()).await.unwrap();
    let rows = query_text(
        &url,
        "SELECT parent_path, path, key FROM openbao_kv_store ORDER BY path, key",
    )
    .await;
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.unwrap_or_default()).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["", "/", "top"],
            vec!["/", "/core/", "seal-config"],
            vec!["/sys/token/", "/sys/token/id/", "abc"],
        ]
    );
    // Rows written by another OpenBao-layout writer are read and listed.
    query_text(
        &url,
        "INSERT INTO openbao_kv_store VALUES ('/x/', '/x/y/', 'z', '\\x6869')",
    )
    .await;
    assert_eq!(b.get("x/y/z").await.unwrap(), Some(b"hi".to_vec()));
    assert_eq!(b.list("x/").await.unwrap(), vec!["y/"]);
    // The lock table has OpenBao's columns.
    let cols = query_text(
        &url,
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'openbao_ha_locks' ORDER BY ordinal_position",
    )
    .await;
    let cols: Vec<String> = cols
        .into_iter()
        .map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        cols,
        vec![
            "ha_key text",
            "ha_identity text",
            "ha_value text",
            "valid_until timestamp with time zone"
        ]
    );
}

#[tokio::test]
async fn skip_create_table_and_custom_tables() {
    let url = fresh_database("tables").await;
    let mut o = PostgresOptions::new(&url);
    o.skip_create_table = true;
    let b = PostgresBackend::connect(o).await.unwrap();
    // No table: operations fail with a typed I/O error, not a panic.
    assert!(matches!(b.get("k").await, Err(StorageError::Io(_))));

    let mut o = PostgresOptions::new(&url);
    o.table = "my \"kv\"".into();
    o.ha_table = "my_locks".into();
    o.ha_enabled = true;
    o.max_parallel = 2;
    o.max_idle_connections = 0;
    let b = PostgresBackend::connect(o).await.unwrap();
    // More concurrent operations than connections: they queue.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.put(&format!("p/{i}"), vec![i as u8]).await.unwrap();
            b.get(&format!("p/{i}")).await.unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), Some(vec![i as u8]));
    }
    assert_eq!(b.list("p/").await.unwrap().len(), 16);
    let n = query_text(&url, "SELECT count(*) FROM \"my \"\"kv\"\"\"").await;
    assert_eq!(n[0][0].as_deref(), Some("16"));
}

#[tokio::test]
async fn lock_has_one_holder_and_release_hands_over() {
    let url = fresh_database("lock").await;
    let a = backend(&url, true).await;
    let b = backend(&url, true).await;
    let la = a.ha_lock().unwrap();
    let lb = b.ha_lock().unwrap();
    assert_eq!(la.holder().await.unwrap(), None);
    let ga = la.acquire(b"node-a".to_vec()).await.unwrap();
    assert_eq!(la.holder().await.unwrap(), Some(b"node-a".to_vec()));
    assert_eq!(lb.holder().await.unwrap(), Some(b"node-a".to_vec()));

    // B waits; A keeps the lock well past its lifetime by renewing it.
    let lb2 = lb.clone();
    let waiting = tokio::spawn(async move { lb2.acquire(b"node-b".to_vec()).await });
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!waiting.is_finished(), "B took a lock A holds");
    assert!(!*ga.lost.borrow(), "A lost a lock it renews");
    // A's writes pass the fence; B's fail (it competes without holding).
    a.put("k", b"a".to_vec()).await.unwrap();
    assert_eq!(
        b.put("k", b"b".to_vec()).await,
        Err(StorageError::NotLeader)
    );

    // Release: B gets the lock within about one retry interval.
    let released = Instant::now();
    la.release().await.unwrap();
    assert!(*ga.lost.borrow());
    let gb = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("B did not take the released lock")
        .unwrap()
        .unwrap();
    assert!(released.elapsed() < Duration::from_millis(1000));
    assert!(!*gb.lost.borrow());
    assert_eq!(la.holder().await.unwrap(), Some(b"node-b".to_vec()));
    assert_eq!(
        a.put("k", b"a2".to_vec()).await,
        Err(StorageError::NotLeader)
    );
    b.put("k", b"b".to_vec()).await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), Some(b"b".to_vec()));
}

#[tokio::test]
async fn an_unrenewed_lock_expires_and_is_taken_over() {
    let url = fresh_database("expiry").await;
    // A never renews in time (renewal interval longer than the lifetime): as a dead or paused
    // holder would.
    let a = backend_with(
        &url,
        LockTiming {
            ttl: Duration::from_millis(1000),
            renew_interval: Duration::from_secs(60),
            retry_interval: Duration::from_millis(100),
        },
    )
    .await;
    let b = backend(&url, true).await;
    let ga = a.ha_lock().unwrap().acquire(b"a".to_vec()).await.unwrap();
    let start = Instant::now();
    let gb = tokio::time::timeout(
        Duration::from_secs(5),
        b.ha_lock().unwrap().acquire(b"b".to_vec()),
    )
    .await
    .expect("B did not take the expired lock")
    .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "taken before expiry: {took:?}"
    );
    assert!(took < Duration::from_millis(3000), "took {took:?}");
    // A learnt of its loss by its own deadline.
    assert!(*ga.lost.borrow());
    assert!(!*gb.lost.borrow());
    assert_eq!(
        a.put("x", b"a".to_vec()).await,
        Err(StorageError::NotLeader)
    );
}

#[tokio::test]
async fn fencing_stops_a_holder_whose_lock_was_taken() {
    let url = fresh_database("fence_steal").await;
    let a = backend(&url, true).await;
    let la = a.ha_lock().unwrap();
    let ga = la.acquire(b"a".to_vec()).await.unwrap();
    a.put("before", b"1".to_vec()).await.unwrap();
    // Another node takes the lock behind A's back (as after a pause longer than the lifetime):
    // A still believes it holds the lock.
    query_text(
        &url,
        "UPDATE openbao_ha_locks SET ha_identity = 'thief', ha_value = 'other', \
         valid_until = now() + interval '1 minute'",
    )
    .await;
    assert!(!*ga.lost.borrow());
    let err = a
        .transaction(vec![put("after/1", b"x"), put("after/2", b"y")])
        .await
        .unwrap_err();
    assert_eq!(err, StorageError::NotLeader);
    assert_eq!(
        a.put("after/3", b"z".to_vec()).await,
        Err(StorageError::NotLeader)
    );
    assert_eq!(a.delete("before").await, Err(StorageError::NotLeader));
    // Nothing landed, and A knows it lost the lock.
    let rows = query_text(&url, "SELECT key FROM openbao_kv_store ORDER BY key").await;
    assert_eq!(rows, vec![vec![Some("before".to_string())]]);
    assert!(*ga.lost.borrow());
}

#[tokio::test]
async fn fencing_stops_a_holder_whose_lock_expired() {
    let url = fresh_database("fence_expiry").await;
    let a = backend(&url, true).await;
    let la = a.ha_lock().unwrap();
    let _ga = la.acquire(b"a".to_vec()).await.unwrap();
    // The lock expires (nobody took it yet): A may not write either.
    query_text(
        &url,
        "UPDATE openbao_ha_locks SET valid_until = now() - interval '1 second'",
    )
    .await;
    assert_eq!(
        a.put("late", b"x".to_vec()).await,
        Err(StorageError::NotLeader)
    );
    let rows = query_text(&url, "SELECT count(*) FROM openbao_kv_store").await;
    assert_eq!(rows[0][0].as_deref(), Some("0"));
}

/// An open transaction holding the fence row, as a holder's write does between its fence
/// check and its commit (made by hand so that it stays open as long as the test wants).
async fn open_fenced_write(url: &str, identity: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM openbao_ha_locks WHERE ha_identity = '{identity}' FOR KEY SHARE"
        ))
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn a_takeover_waits_for_the_holders_open_write() {
    let url = fresh_database("fence_order").await;
    let a = backend(&url, true).await;
    let la = a.lock().unwrap();
    let ga = la.acquire(b"a".to_vec()).await.unwrap();
    let identity = la.identity().unwrap();
    let client = open_fenced_write(&url, &identity).await;
    // A's lock expires (as if A had stopped renewing): an update of valid_until alone does
    // not wait for the open write.
    query_text(
        &url,
        "UPDATE openbao_ha_locks SET valid_until = now() - interval '1 second'",
    )
    .await;
    let mut lost = ga.lost.clone();
    tokio::time::timeout(Duration::from_secs(3), lost.wait_for(|l| *l))
        .await
        .expect("A did not notice that its lock expired")
        .unwrap();
    let b = backend(&url, true).await;
    let lb = b.ha_lock().unwrap();
    let waiting = {
        let lb = lb.clone();
        tokio::spawn(async move { lb.acquire(b"b".to_vec()).await })
    };
    // The lock is free, but while the write is open nobody can take over: a write of the old
    // holder can never commit after a new holder took the lock.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "taken over under an open fenced write"
    );
    client.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("B did not take over after the write finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        a.put("k", b"a".to_vec()).await,
        Err(StorageError::NotLeader)
    );
}

#[tokio::test]
async fn a_standby_trying_for_a_held_lock_never_waits_for_the_row() {
    let url = fresh_database("standby_attempts").await;
    let a = backend(&url, true).await;
    let la = a.lock().unwrap();
    let _ga = la.acquire(b"a".to_vec()).await.unwrap();
    let identity = la.identity().unwrap();
    let b = backend_with(
        &url,
        LockTiming {
            ttl: Duration::from_millis(1500),
            renew_interval: Duration::from_millis(300),
            retry_interval: Duration::from_millis(20),
        },
    )
    .await;
    let lb = b.ha_lock().unwrap();
    let trying = tokio::spawn(async move { lb.acquire(b"b".to_vec()).await });
    // A write of the holder stays open while the standby keeps trying: an attempt at a lock
    // that is still valid must not queue for the row (it would wait up to its lock timeout,
    // holding a connection, every time).
    let write = open_fenced_write(&url, &identity).await;
    let mut waits = 0;
    for _ in 0..40 {
        let rows = query_text(
            &url,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND query LIKE 'INSERT INTO%'",
        )
        .await;
        if rows[0][0].as_deref() != Some("0") {
            waits += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write.batch_execute("COMMIT").await.unwrap();
    assert!(!trying.is_finished(), "the standby took a held lock");
    trying.abort();
    assert_eq!(waits, 0, "a standby's attempt waited for the lock row");
}

#[tokio::test]
async fn renewals_do_not_wait_for_the_holders_open_writes() {
    let url = fresh_database("renew_under_writes").await;
    let a = backend_with(
        &url,
        LockTiming {
            ttl: Duration::from_millis(800),
            renew_interval: Duration::from_millis(150),
            retry_interval: Duration::from_millis(100),
        },
    )
    .await;
    let la = a.lock().unwrap();
    let ga = la.acquire(b"a".to_vec()).await.unwrap();
    let identity = la.identity().unwrap();
    // Writes overlapping without a gap, for three times the lock's lifetime: the row is never
    // free of fence locks, yet the holder keeps its lock.
    let first = open_fenced_write(&url, &identity).await;
    let deadline = Instant::now() + Duration::from_millis(2400);
    let mut open = Some(first);
    while Instant::now() < deadline {
        let next = open_fenced_write(&url, &identity).await;
        if let Some(prev) = open.replace(next) {
            prev.batch_execute("COMMIT").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !*ga.lost.borrow(),
        "the lock was lost under a stream of writes"
    );
    a.put("k", b"still the holder".to_vec()).await.unwrap();
    if let Some(c) = open {
        c.batch_execute("COMMIT").await.unwrap();
    }
}

#[tokio::test]
async fn holder_value_and_lost_signal_when_renewal_finds_the_lock_gone() {
    let url = fresh_database("renew_gone").await;
    let a = backend(&url, true).await;
    let la: Arc<dyn HaLock> = a.ha_lock().unwrap();
    let ga = la.acquire(b"a".to_vec()).await.unwrap();
    query_text(&url, "DELETE FROM openbao_ha_locks").await;
    let mut lost = ga.lost.clone();
    tokio::time::timeout(Duration::from_secs(2), lost.wait_for(|l| *l))
        .await
        .expect("no lost signal after the lock row vanished")
        .unwrap();
    assert_eq!(la.holder().await.unwrap(), None);
    assert_eq!(
        a.put("k", b"v".to_vec()).await,
        Err(StorageError::NotLeader)
    );
}

#[tokio::test]
async fn wal_position_advances_with_writes() {
    let url = fresh_database("lsn").await;
    let b = backend(&url, false).await;
    let before = b.current_wal_lsn().await.unwrap();
    b.put("k", vec![1; 4096]).await.unwrap();
    let after = b.current_wal_lsn().await.unwrap();
    assert!(after > before, "{before} -> {after}");
}

#[tokio::test]
async fn tls_follows_sslmode_against_a_real_server() {
    let server = kura_postgres::testing::start_server(true);
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let ca = server.dir.join("tls/ca.pem");
    let not_a_ca = server.dir.join("tls/server.pem");
    let base = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let ssl_in_use = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    // Encrypted without verification (libpq's require and prefer), and verified.
    for url in [
        format!("{base}?sslmode=require"),
        base.clone(),
        format!("{base}?sslmode=verify-ca&sslrootcert={}", ca.display()),
        format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            ca.display()
        ),
    ] {
        let rows = query_text(&url, ssl_in_use).await;
        assert_eq!(rows[0][0].as_deref(), Some("t"), "{url}");
    }
    let rows = query_text(&format!("{base}?sslmode=disable"), ssl_in_use).await;
    assert_eq!(rows[0][0].as_deref(), Some("f"));

    // The backend works over a verified connection.
    let b = backend(
        &format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        true,
    )
    .await;
    b.put("tls/k", b"v".to_vec()).await.unwrap();
    assert_eq!(b.get("tls/k").await.unwrap(), Some(b"v".to_vec()));

    // A certificate from an unknown CA is refused.
    let mut o = PostgresOptions::new(format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        not_a_ca.display()
    ));
    o.skip_create_table = true;
    assert!(PostgresBackend::connect(o).await.is_err());
    // A name the certificate does not carry: refused by verify-full, accepted by verify-ca.
    let by_other_name = |mode: &str| {
        format!(
            "host=db.invalid hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres \
             sslmode={mode} sslrootcert={}",
            ca.display()
        )
    };
    assert!(
        PostgresBackend::connect(PostgresOptions::new(by_other_name("verify-full")))
            .await
            .is_err()
    );
    PostgresBackend::connect(PostgresOptions::new(by_other_name("verify-ca")))
        .await
        .expect("verify-ca ignores the host name");
}
