//! The commit stream, the write notifier and the index of the PostgreSQL backend, reads from a
//! streaming replica, and a node whose database is a replica taking the lock once promoted —
//! against real PostgreSQL 15 servers (replication tests start their own primary and replica).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kura_postgres::testing::{
    create_database, fresh_database, promote, query_text, start_replica, start_server,
    StartedServer, SYNC_POSITION_SQL,
};
use kura_postgres::{LockTiming, PostgresBackend, PostgresOptions, StreamBatch, StreamPosition};
use kura_storage::{Backend, HaLock, StorageError, TxnOp, WriteBatch};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver;

async fn backend(url: &str) -> PostgresBackend {
    PostgresBackend::connect(PostgresOptions::new(url))
        .await
        .expect("connect")
}

fn fast_timing() -> LockTiming {
    LockTiming {
        ttl: Duration::from_millis(1000),
        renew_interval: Duration::from_millis(200),
        retry_interval: Duration::from_millis(100),
    }
}

/// Everything queued on `rx` now.
fn drain<T: Clone>(rx: &mut Receiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(v) => out.push(v),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("receiver: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_commits_publish_increasing_indexes_and_every_key() {
    let url = fresh_database("stream_commits").await;
    let b = backend(&url).await;
    let (start, mut commits) = b.subscribe_commits();
    assert_eq!(start, StreamPosition { index: 0, lsn: 0 });
    let mut notes = b.write_notifier().expect("notifier").subscribe();
    let indexed = b.indexed().expect("indexed");
    assert_eq!(indexed.applied_index(), 0);

    let mut expected = BTreeSet::new();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let b = b.clone();
        for i in 0..6 {
            expected.insert(format!("w{w}/k{i}"));
        }
        expected.insert(format!("w{w}/t/a"));
        expected.insert(format!("w{w}/t/b"));
        tasks.push(tokio::spawn(async move {
            for i in 0..6 {
                b.put(&format!("w{w}/k{i}"), vec![i as u8]).await.unwrap();
            }
            b.transaction(vec![
                TxnOp::Put {
                    key: format!("w{w}/t/a"),
                    value: b"a".to_vec(),
                },
                TxnOp::Delete {
                    key: format!("w{w}/k0"),
                },
                TxnOp::Put {
                    key: format!("w{w}/t/b"),
                    value: b"b".to_vec(),
                },
            ])
            .await
            .unwrap();
            b.delete(&format!("w{w}/k1")).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = b.current_wal_lsn().await.unwrap();

    let batches = drain(&mut commits);
    // 6 puts, one transaction and one delete per writer.
    assert_eq!(batches.len(), 32 * 8);
    let mut last = 0;
    let mut seen = BTreeSet::new();
    for batch in &batches {
        assert!(batch.index > last, "index {} after {last}", batch.index);
        assert!(batch.lsn <= batch.index, "{batch:?}");
        assert!(batch.lsn > 0 && batch.lsn <= after, "{batch:?}");
        last = batch.index;
        seen.extend(batch.keys.iter().cloned());
    }
    assert_eq!(seen, expected);
    // A transaction is one batch with its keys in order.
    assert!(batches
        .iter()
        .any(|b| b.keys == ["w3/t/a", "w3/k0", "w3/t/b"]));
    // The notifier carries the same batches, and the index follows the last one.
    let notes = drain(&mut notes);
    let as_notes: Vec<WriteBatch> = batches
        .iter()
        .map(|b| WriteBatch::new(b.index, b.keys.clone()))
        .collect();
    assert_eq!(notes, as_notes);
    assert_eq!(indexed.applied_index(), last);
    indexed
        .wait_for_index(last, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(
        indexed
            .wait_for_index(last + 1, Duration::from_millis(20))
            .await,
        Err(StorageError::IndexTimeout(last + 1))
    );
    let (pos, _) = b.subscribe_commits();
    assert_eq!(pos.index, last);
    assert_eq!(pos.lsn, batches.last().unwrap().lsn);

    // A failed write publishes nothing.
    query_text(
        &url,
        "ALTER TABLE openbao_kv_store ADD CONSTRAINT no_poison CHECK (key <> 'poison')",
    )
    .await;
    assert!(b.put("x/poison", b"1".to_vec()).await.is_err());
    assert!(drain(&mut commits).is_empty());
    // The connection it used went back clean: the next write commits and publishes.
    b.put("x/fine", b"1".to_vec()).await.unwrap();
    assert_eq!(drain(&mut commits)[0].keys, ["x/fine"]);
    assert_eq!(b.get("x/fine").await.unwrap(), Some(b"1".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn subscribing_mid_stream_loses_and_repeats_nothing() {
    let url = fresh_database("stream_subscribe").await;
    let b = backend(&url).await;
    let (_, mut all) = b.subscribe_commits();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let b = b.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                b.put(&format!("s{w}/{i}"), vec![1]).await.unwrap();
                i += 1;
            }
        }));
    }
    let mut subscriptions = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        subscriptions.push(b.subscribe_commits());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let all = drain(&mut all);
    assert!(all.len() > 40, "only {} commits", all.len());
    let mut mid_stream = 0;
    for (pos, mut rx) in subscriptions {
        let got = drain(&mut rx);
        // The position is a published batch (or the start), and the receiver has exactly
        // every batch after it.
        let at = match all.iter().position(|b| b.index == pos.index) {
            Some(i) => {
                assert_eq!(all[i].lsn, pos.lsn);
                i + 1
            }
            None => {
                assert_eq!(pos, StreamPosition { index: 0, lsn: 0 });
                0
            }
        };
        if at > 0 && at < all.len() {
            mid_stream += 1;
        }
        assert_eq!(got, all[at..].to_vec(), "subscription at {pos:?}");
    }
    assert!(mid_stream > 0, "no subscription happened mid-stream");
}

#[tokio::test]
async fn remote_batches_resync_and_stream_loss_reach_the_notifier_and_the_index() {
    let url = fresh_database("stream_remote").await;
    let b = backend(&url).await;
    assert!(!b.has_read_replica());
    let mut notes = b.write_notifier().unwrap().subscribe();
    let indexed = b.indexed().unwrap();
    let lsn = b.current_wal_lsn().await.unwrap();

    // Reading from a primary: nothing to wait for.
    b.wait_replayed(lsn, Duration::from_millis(100))
        .await
        .unwrap();
    b.apply_remote(StreamBatch {
        index: lsn + 10,
        lsn,
        keys: vec!["a/b".into(), "c".into()],
    })
    .await
    .unwrap();
    assert_eq!(
        drain(&mut notes),
        [WriteBatch::new(lsn + 10, vec!["a/b".into(), "c".into()])]
    );
    assert_eq!(indexed.applied_index(), lsn + 10);

    // A resync to an older position drops caches but never lowers the index.
    b.resync(StreamPosition {
        index: lsn + 5,
        lsn,
    })
    .await
    .unwrap();
    assert_eq!(
        drain(&mut notes),
        [WriteBatch {
            index: lsn + 5,
            keys: vec![],
            reset: true
        }]
    );
    assert_eq!(indexed.applied_index(), lsn + 10);
    b.resync(StreamPosition {
        index: lsn + 20,
        lsn,
    })
    .await
    .unwrap();
    assert_eq!(drain(&mut notes)[0].index, lsn + 20);
    assert_eq!(indexed.applied_index(), lsn + 20);
    indexed
        .wait_for_index(lsn + 20, Duration::from_millis(10))
        .await
        .unwrap();

    // A waiter for a later index is released by the batch that reaches it.
    let waiter = {
        let indexed = b.indexed().unwrap();
        tokio::spawn(async move {
            indexed
                .wait_for_index(lsn + 30, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    b.apply_remote(StreamBatch {
        index: lsn + 30,
        lsn,
        keys: vec!["d".into()],
    })
    .await
    .unwrap();
    waiter.await.unwrap().unwrap();
    drain(&mut notes);

    b.stream_lost();
    assert_eq!(
        drain(&mut notes),
        [WriteBatch {
            index: lsn + 30,
            keys: vec![],
            reset: true
        }]
    );
    assert_eq!(indexed.applied_index(), lsn + 30);

    // A local commit after remote batches keeps the index growing.
    let (_, mut commits) = b.subscribe_commits();
    b.put("local", vec![1]).await.unwrap();
    let batch = drain(&mut commits).remove(0);
    assert!(batch.index > lsn + 30);
    assert_eq!(indexed.applied_index(), batch.index);
}

/// A primary with a streaming replica, and a database (with the tables) created on the
/// primary and already replayed by the replica: the servers and the database's name.
async fn replicated_database(hint: &str) -> (StartedServer, StartedServer, String) {
    let primary = start_server(false);
    let replica = start_replica(&primary);
    let url = create_database(&primary.url, hint).await;
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // Creates the tables (with the lock table).
    let mut o = PostgresOptions::new(&url);
    o.ha_enabled = true;
    drop(PostgresBackend::connect(o).await.expect("connect"));
    let lsn = query_text(&url, SYNC_POSITION_SQL).await.last().unwrap()[0]
        .clone()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let caught_up = query_text(
            &replica.url,
            &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        )
        .await;
        if caught_up[0][0].as_deref() == Some("t") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (primary, replica, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_reads_from_the_replica_after_waiting_for_its_replay() {
    let (primary, replica, db) = replicated_database("stream_replica").await;
    let (primary_url, replica_url) = (primary.database_url(&db), replica.database_url(&db));
    let node = |_: ()| {
        let mut o = PostgresOptions::new(&primary_url);
        o.read_connection_url = Some(replica_url.clone());
        o.ha_enabled = true;
        o.lock_timing = fast_timing();
        PostgresBackend::connect(o)
    };
    let active = node(()).await.expect("active");
    let standby = node(()).await.expect("standby");
    assert!(active.has_read_replica() && standby.has_read_replica());
    active
        .lock()
        .unwrap()
        .acquire(b"active".to_vec())
        .await
        .unwrap();
    // The standby competes for the lock, as an unsealed standby does.
    let standby_lock = standby.lock().unwrap();
    let competing = tokio::spawn(async move { standby_lock.acquire(b"standby".to_vec()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (_, mut commits) = active.subscribe_commits();
    active.put("sec/one", b"1".to_vec()).await.unwrap();
    let first = drain(&mut commits).remove(0);
    standby
        .wait_replayed(first.lsn, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(standby.get("sec/one").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(standby.list("sec/").await.unwrap(), ["one"]);

    // With replay paused, the replica stays behind: the wait times out and the standby does
    // not see the write yet, while the active node (reading from the primary) does.
    query_text(&replica.url, "SELECT pg_wal_replay_pause()").await;
    active.put("sec/two", b"2".to_vec()).await.unwrap();
    let second = drain(&mut commits).remove(0);
    let started = Instant::now();
    assert_eq!(
        standby
            .wait_replayed(second.lsn, Duration::from_millis(300))
            .await,
        Err(StorageError::IndexTimeout(second.lsn))
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(standby.get("sec/two").await.unwrap(), None);
    assert_eq!(standby.list("sec/").await.unwrap(), ["one"]);
    assert_eq!(active.get("sec/two").await.unwrap(), Some(b"2".to_vec()));
    // The active node's wait is on the primary: immediate.
    active
        .wait_replayed(second.lsn, Duration::from_millis(100))
        .await
        .unwrap();

    // apply_remote waits for the replay before it publishes.
    let mut notes = standby.write_notifier().unwrap().subscribe();
    let applying = {
        let standby = standby.clone();
        let batch = second.clone();
        tokio::spawn(async move { standby.apply_remote(batch).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!applying.is_finished());
    assert!(drain(&mut notes).is_empty());
    assert!(standby.indexed().unwrap().applied_index() < second.index);

    query_text(&replica.url, "SELECT pg_wal_replay_resume()").await;
    tokio::time::timeout(Duration::from_secs(5), applying)
        .await
        .expect("apply_remote finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        drain(&mut notes),
        [WriteBatch::new(second.index, vec!["sec/two".into()])]
    );
    assert_eq!(standby.indexed().unwrap().applied_index(), second.index);
    assert_eq!(standby.get("sec/two").await.unwrap(), Some(b"2".to_vec()));
    standby
        .wait_replayed(second.lsn, Duration::from_millis(100))
        .await
        .unwrap();

    // The standby never took the lock, and cannot write.
    assert!(!competing.is_finished());
    assert_eq!(
        standby.put("sec/three", vec![]).await,
        Err(StorageError::NotLeader)
    );
    competing.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_replica_takes_the_lock_once_the_replica_is_promoted() {
    let (primary, replica, db) = replicated_database("stream_promote").await;
    let (primary_url, replica_url) = (primary.database_url(&db), replica.database_url(&db));
    // The last holder's row, about to expire, as a dead active node leaves it.
    query_text(
        &primary_url,
        "INSERT INTO openbao_ha_locks (ha_key, ha_identity, ha_value, valid_until) \
         VALUES ('core/lock', 'old', 'old-node', now() + interval '700 milliseconds')",
    )
    .await;
    let lsn = query_text(&primary_url, SYNC_POSITION_SQL)
        .await
        .last()
        .unwrap()[0]
        .clone()
        .unwrap();

    // Connecting to a hot standby works (table creation is skipped: read-only).
    let mut o = PostgresOptions::new(&replica_url);
    o.ha_enabled = true;
    o.lock_timing = fast_timing();
    let node = PostgresBackend::connect(o)
        .await
        .expect("connect to a replica");
    node.wait_replayed(
        kura_postgres::parse_lsn(&lsn).unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(
        node.lock().unwrap().holder().await.unwrap(),
        Some(b"old-node".to_vec())
    );
    let lock = node.lock().unwrap();
    let acquiring = tokio::spawn(async move { lock.acquire(b"new-node".to_vec()).await });
    // Long past the old row's expiry: still not taken, the database is read-only.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!acquiring.is_finished(), "took the lock on a replica");

    promote(&replica);
    let guard = tokio::time::timeout(Duration::from_secs(5), acquiring)
        .await
        .expect("the lock was taken after the promotion")
        .unwrap()
        .unwrap();
    assert!(!*guard.lost.borrow());
    assert_eq!(
        node.lock().unwrap().holder().await.unwrap(),
        Some(b"new-node".to_vec())
    );
    // The promoted node writes, fenced, and publishes.
    let (_, mut commits) = node.subscribe_commits();
    node.put("after/promotion", b"x".to_vec()).await.unwrap();
    assert_eq!(drain(&mut commits)[0].keys, ["after/promotion"]);
    assert_eq!(
        node.get("after/promotion").await.unwrap(),
        Some(b"x".to_vec())
    );
    drop(primary);
}
