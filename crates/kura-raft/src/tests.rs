//! Tests of the raft backend: a real single node in a temporary directory.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::time::Instant;

use kura_storage::CachedBackend;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

use super::*;

fn opts(dir: &Path) -> RaftOptions {
    RaftOptions::new(dir.join("raft"), "node-a")
}

async fn open(dir: &Path) -> RaftBackend {
    RaftBackend::open(opts(dir))
        .await
        .expect("open raft backend")
}

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

#[tokio::test]
async fn put_get_list_delete_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    assert_eq!(b.name(), "raft");
    assert!(b.is_leader());

    b.put("a/b", b"1".to_vec()).await.unwrap();
    b.put("a/c/d", b"2".to_vec()).await.unwrap();
    b.put("a/c/e", b"3".to_vec()).await.unwrap();
    b.put("ab", b"4".to_vec()).await.unwrap();
    b.put("a-z", b"5".to_vec()).await.unwrap();
    assert_eq!(b.get("a/b").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(b.get("missing").await.unwrap(), None);
    assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/"]);
    assert_eq!(b.list("").await.unwrap(), vec!["a-z", "a/", "ab"]);
    assert_eq!(b.list("a/c/").await.unwrap(), vec!["d", "e"]);
    assert!(b.list("nothing/").await.unwrap().is_empty());

    b.delete("a/b").await.unwrap();
    assert_eq!(b.get("a/b").await.unwrap(), None);
    b.delete("never-existed").await.unwrap();

    b.transaction(vec![
        put("t/1", b"x"),
        put("t/2", b"y"),
        TxnOp::Delete { key: "ab".into() },
        put("t/1", b"z"),
    ])
    .await
    .unwrap();
    assert_eq!(b.get("t/1").await.unwrap(), Some(b"z".to_vec()));
    assert_eq!(b.get("t/2").await.unwrap(), Some(b"y".to_vec()));
    assert_eq!(b.get("ab").await.unwrap(), None);

    // A transaction with one bad key writes nothing.
    let err = b
        .transaction(vec![put("t/3", b"x"), put("/abs", b"y")])
        .await
        .unwrap_err();
    assert_eq!(err, StorageError::InvalidKey("/abs".into()));
    assert_eq!(b.get("t/3").await.unwrap(), None);
    assert!(matches!(b.get("").await, Err(StorageError::InvalidKey(_))));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn listing_matches_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    // Keys chosen around '/' and its neighbours in byte order ('.' < '/' < '0').
    let mut keys = Vec::new();
    for a in ["x", "x.", "x0", "x/", "y", "x-"] {
        for c in ["", "a", "a/b", "a/b/c", "0", ".", "a0"] {
            let key = format!("{a}{c}");
            if validate_key(&key).is_ok() && !key.ends_with('/') {
                keys.push(key);
            }
        }
    }
    let ops = keys.iter().map(|k| put(k, b"v")).collect();
    b.transaction(ops).await.unwrap();
    let all: BTreeSet<&str> = keys.iter().map(|s| s.as_str()).collect();
    // Folder prefixes, plus prefixes that do not end in '/' (listed the way inmem lists them).
    let mut prefixes: BTreeSet<String> =
        ["", "x", "x.", "y"].iter().map(|s| s.to_string()).collect();
    for k in &keys {
        for (i, _) in k.match_indices('/') {
            prefixes.insert(k[..=i].to_string());
        }
    }
    for prefix in prefixes {
        let expected = children_of(
            &prefix,
            all.iter()
                .copied()
                .filter(|k| k.starts_with(prefix.as_str())),
        );
        assert_eq!(
            b.list(&prefix).await.unwrap(),
            expected,
            "prefix {prefix:?}"
        );
    }
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let id = b.node_id();
    for i in 0..50 {
        b.put(&format!("k/{i}"), vec![i as u8; 100]).await.unwrap();
    }
    b.delete("k/7").await.unwrap();
    let last = b.indexed().unwrap().applied_index();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.path().join("raft");
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.clone()), 0o700);
        assert_eq!(mode(dir.join(DB_FILE)), 0o600);
    }
    b.shutdown().await.unwrap();
    assert!(matches!(
        b.get("k/1").await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        b.put("k/1", vec![]).await,
        Err(StorageError::Unavailable(_))
    ));
    drop(b);

    let b = open(dir.path()).await;
    assert_eq!(b.node_id(), id, "the raft id is kept");
    assert_eq!(b.node_name(), "node-a");
    assert!(b.indexed().unwrap().applied_index() >= last);
    for i in 0..50 {
        let want = (i != 7).then(|| vec![i as u8; 100]);
        assert_eq!(b.get(&format!("k/{i}")).await.unwrap(), want);
    }
    let members = b.members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[&id].name, "node-a");
    b.put("after", b"restart".to_vec()).await.unwrap();
    b.shutdown().await.unwrap();

    // The storage belongs to node-a; another name is refused, an empty one adopts it.
    let mut other = opts(dir.path());
    other.node_id = "node-b".into();
    match RaftBackend::open(other).await {
        Err(RaftBackendError::NodeIdMismatch { stored, configured }) => {
            assert_eq!((stored.as_str(), configured.as_str()), ("node-a", "node-b"));
        }
        Err(e) => panic!("expected NodeIdMismatch, got {e}"),
        Ok(_) => panic!("expected NodeIdMismatch, got a backend"),
    }
    let mut unnamed = opts(dir.path());
    unnamed.node_id = String::new();
    let b = RaftBackend::open(unnamed).await.unwrap();
    assert_eq!(b.node_name(), "node-a");
    assert_eq!(b.get("after").await.unwrap(), Some(b"restart".to_vec()));
    b.shutdown().await.unwrap();
}

const CRASH_DIR_ENV: &str = "KURA_RAFT_CRASH_DIR";

/// Child half of `acknowledged_writes_survive_kill_9`: writes keys from several tasks and
/// prints `ack <key>` after each write returns, until it is killed.
#[test]
#[ignore = "run as a child process by acknowledged_writes_survive_kill_9"]
fn crash_child() {
    let dir = std::env::var(CRASH_DIR_ENV).expect("crash_child runs only as a child process");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let b = RaftBackend::open(RaftOptions::new(PathBuf::from(dir), "crash"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..1_000_000u32 {
                    let key = format!("c/{t}/{i}");
                    b.put(&key, key.as_bytes().repeat(8)).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("raft");
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (acked, killed) = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        while acked.len() < 400 && started.elapsed() < Duration::from_secs(120) {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(key) = line.strip_prefix("ack ") {
                        acked.push(key.to_string());
                    }
                }
                _ => break,
            }
        }
        // SIGKILL: no destructor, no shutdown, no final commit.
        child.kill().unwrap();
        // Whatever the child printed before dying was acknowledged too.
        for line in lines.map_while(|l| l.ok()) {
            if let Some(key) = line.strip_prefix("ack ") {
                acked.push(key.to_string());
            }
        }
        let status = child.wait().unwrap();
        (acked, status)
    })
    .await
    .unwrap();
    assert!(!killed.success(), "the child was killed, not finished");
    assert!(
        acked.len() >= 400,
        "child acknowledged only {}",
        acked.len()
    );

    // What the crash left on disk: the state machine may lag the log, never lead it.
    {
        let db = Database::create(data.join(DB_FILE)).unwrap();
        let (applied, _) = state_machine::read_applied(&db).unwrap();
        let txn = db.begin_read().unwrap();
        let log = txn.open_table(db::LOG).unwrap();
        let (last, _) = redb::ReadableTable::last(&log).unwrap().unwrap();
        let (applied, last) = (applied.map_or(0, |l| l.index), last.value());
        assert!(applied <= last, "applied {applied} > last log index {last}");
        eprintln!("after kill -9: state machine at {applied}, log at {last}");
    }
    let b = RaftBackend::open(RaftOptions::new(data, "crash"))
        .await
        .unwrap();
    let mut missing = 0;
    for key in &acked {
        match b.get(key).await.unwrap() {
            Some(v) => assert_eq!(v, key.as_bytes().repeat(8)),
            None => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged keys lost",
        acked.len()
    );
    b.put("after-crash", vec![1]).await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn write_notifications_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let mut rx = b.write_notifier().unwrap().subscribe();
    let idx = b.indexed().unwrap();
    let start = idx.applied_index();

    let i1 = b.write(vec![put("n/1", b"a")]).await.unwrap();
    let i2 = b
        .write(vec![put("n/2", b"b"), TxnOp::Delete { key: "n/1".into() }])
        .await
        .unwrap();
    b.delete("n/3").await.unwrap();
    assert!(start < i1 && i1 < i2);

    let first = rx.recv().await.unwrap();
    assert_eq!(first, WriteBatch::new(i1, vec!["n/1".into()]));
    let second = rx.recv().await.unwrap();
    assert_eq!(second.index, i2);
    assert_eq!(second.keys, vec!["n/2", "n/1"]);
    let third = rx.recv().await.unwrap();
    assert_eq!(third.keys, vec!["n/3"]);
    assert_eq!(idx.applied_index(), third.index);

    // Concurrent writers: batches arrive with strictly increasing indexes, and every key once.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                b.put(&format!("c/{t}/{i}"), vec![1]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut last = third.index;
    let mut seen = BTreeSet::new();
    while seen.len() < 160 {
        let batch = rx.recv().await.unwrap();
        assert!(batch.index > last, "{} after {last}", batch.index);
        last = batch.index;
        for k in batch.keys {
            assert!(seen.insert(k), "key reported twice");
        }
    }
    assert_eq!(last, idx.applied_index());
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn wait_for_index() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let idx = b.indexed().unwrap();
    let now = idx.applied_index();
    idx.wait_for_index(now, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(
        idx.wait_for_index(now + 1, Duration::from_millis(20)).await,
        Err(StorageError::IndexTimeout(now + 1))
    );
    let waiter = {
        let idx = b.indexed().unwrap();
        tokio::spawn(async move { idx.wait_for_index(now + 1, Duration::from_secs(10)).await })
    };
    let written = b.write(vec![put("w", b"1")]).await.unwrap();
    assert_eq!(written, now + 1);
    waiter.await.unwrap().unwrap();
    // Once the index is reached, the write is visible.
    assert_eq!(b.get("w").await.unwrap(), Some(b"1".to_vec()));
    b.shutdown().await.unwrap();
    assert!(idx
        .wait_for_index(written + 5, Duration::from_secs(5))
        .await
        .is_err());
}

#[tokio::test]
async fn value_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let limit = DEFAULT_MAX_VALUE_BYTES;
    let big: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
    b.put("big", big.clone()).await.unwrap();
    assert_eq!(b.get("big").await.unwrap().as_deref(), Some(big.as_slice()));
    assert_eq!(
        b.put("bigger", vec![0; limit + 1]).await,
        Err(StorageError::ValueTooLarge {
            key: "bigger".into(),
            size: limit + 1,
            limit,
        })
    );
    assert!(matches!(
        b.transaction(vec![put("ok", b"1"), put("bigger", &vec![0; limit + 1])])
            .await,
        Err(StorageError::ValueTooLarge { .. })
    ));
    assert_eq!(b.get("ok").await.unwrap(), None);
    b.shutdown().await.unwrap();

    // The big value came back from the log and the state machine after a restart.
    let mut o = opts(dir.path());
    o.max_value_bytes = 1024;
    let b = RaftBackend::open(o).await.unwrap();
    assert_eq!(b.get("big").await.unwrap().map(|v| v.len()), Some(limit));
    assert!(matches!(
        b.put("k", vec![0; 1025]).await,
        Err(StorageError::ValueTooLarge { limit: 1024, .. })
    ));
    b.put("k", vec![0; 1024]).await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn snapshot_and_log_purge_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.snapshot_threshold = 50;
    o.trailing_logs = 10;
    let b = RaftBackend::open(o.clone()).await.unwrap();
    for i in 0..300u32 {
        b.put(&format!("s/{i:03}"), i.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    b.delete("s/000").await.unwrap();
    // The policy snapshots on its own; make sure one covers everything, then check purging.
    let snap = b.snapshot(Duration::from_secs(10)).await.unwrap().unwrap();
    let m = b
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index + 10 >= snap.index),
            "logs purged behind the snapshot",
        )
        .await
        .unwrap();
    let purged = m.purged.unwrap().index;
    assert!(purged > 200, "purged only up to {purged}");
    let snaps: Vec<_> = std::fs::read_dir(o.path.join(SNAPSHOT_DIR))
        .unwrap()
        .collect();
    assert_eq!(snaps.len(), 1, "exactly one snapshot file is kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = snaps[0].as_ref().unwrap().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    b.shutdown().await.unwrap();

    let b = RaftBackend::open(o).await.unwrap();
    assert_eq!(b.get("s/000").await.unwrap(), None);
    for i in 1..300u32 {
        assert_eq!(
            b.get(&format!("s/{i:03}")).await.unwrap(),
            Some(i.to_le_bytes().to_vec())
        );
    }
    let m = b.metrics().borrow().clone();
    assert!(m.purged.is_some_and(|p| p.index == purged));
    assert_eq!(b.list("s/").await.unwrap().len(), 299);
    b.put("s/new", vec![9]).await.unwrap();
    b.shutdown().await.unwrap();
}

/// Builds a state machine over a fresh database, as `open` does, without raft.
fn state_machine(dir: &Path) -> (StateMachine, broadcast::Receiver<WriteBatch>, Arc<Database>) {
    let snap_dir = dir.join("snapshots");
    std::fs::create_dir_all(&snap_dir).unwrap();
    let db = Arc::new(Database::create(dir.join("db.redb")).unwrap());
    db::create_tables(&db).unwrap();
    let (notify, rx) = broadcast::channel(64);
    let (applied, _) = watch::channel(0);
    let shared = Arc::new(SmShared {
        db: db.clone(),
        snap_dir,
        notify,
        applied,
        snapshot_lock: tokio::sync::Mutex::new(()),
    });
    (StateMachine::new(shared), rx, db)
}

fn normal(index: u64, cmd: Command) -> Entry {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(cmd),
    }
}

fn write_cmd(ops: Vec<Op>) -> Command {
    Command::Write(vec![ops])
}

fn op_put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

#[tokio::test]
async fn snapshot_installs_on_another_state_machine() {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;

    let a_dir = tempfile::tempdir().unwrap();
    let (mut a, _, _) = state_machine(a_dir.path());
    a.apply(vec![
        normal(
            1,
            write_cmd(vec![op_put("same", b"1"), op_put("changed", b"new")]),
        ),
        normal(2, write_cmd(vec![op_put("added", b"2")])),
        normal(
            3,
            Command::SetHolder(Holder {
                node: 1,
                term: 1,
                value: b"leader".to_vec(),
            }),
        ),
    ])
    .await
    .unwrap();
    let mut builder = a.get_snapshot_builder().await;
    let mut snap = builder.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));
    let mut bytes = Vec::new();
    snap.snapshot.read_to_end(&mut bytes).await.unwrap();

    let b_dir = tempfile::tempdir().unwrap();
    let (mut b, mut rx, b_db) = state_machine(b_dir.path());
    b.apply(vec![normal(
        1,
        write_cmd(vec![
            op_put("same", b"1"),
            op_put("changed", b"old"),
            op_put("removed", b"x"),
        ]),
    )])
    .await
    .unwrap();
    let _ = rx.recv().await.unwrap();

    // A corrupt transfer is refused and changes nothing.
    let mut bad = b.begin_receiving_snapshot().await.unwrap();
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    corrupt[n - 10] ^= 1;
    bad.write_all(&corrupt).await.unwrap();
    assert!(b.install_snapshot(&snap.meta, bad).await.is_err());
    assert_eq!(b.applied_state().await.unwrap().0.map(|l| l.index), Some(1));

    let mut recv = b.begin_receiving_snapshot().await.unwrap();
    recv.write_all(&bytes).await.unwrap();
    b.install_snapshot(&snap.meta, recv).await.unwrap();

    let batch = rx.recv().await.unwrap();
    assert_eq!(batch.index, 3);
    assert_eq!(batch.keys, vec!["added", "changed", "removed"]);
    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied, snap.meta.last_log_id);
    let txn = b_db.begin_read().unwrap();
    let kv = txn.open_table(KV).unwrap();
    let contents: Vec<(String, Vec<u8>)> = kv
        .range::<&str>(..)
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value().to_string(), v.value().to_vec())
        })
        .collect();
    assert_eq!(
        contents,
        vec![
            ("added".to_string(), b"2".to_vec()),
            ("changed".to_string(), b"new".to_vec()),
            ("same".to_string(), b"1".to_vec()),
        ]
    );
    assert_eq!(
        state_machine::read_holder(&b_db).unwrap().map(|h| h.value),
        Some(b"leader".to_vec())
    );
    let current = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);
    // Only the installed snapshot's file is left.
    assert_eq!(
        std::fs::read_dir(b_dir.path().join("snapshots"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test]
async fn ha_lock_follows_leadership() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let ha = b.ha_lock().unwrap();
    assert_eq!(ha.holder().await.unwrap(), None);
    let guard = tokio::time::timeout(Duration::from_secs(10), ha.acquire(b"me".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert!(!*guard.lost.borrow());
    assert_eq!(ha.holder().await.unwrap(), Some(b"me".to_vec()));

    let mut lost = guard.lost.clone();
    ha.release().await.unwrap();
    lost.wait_for(|l| *l).await.unwrap();
    assert_eq!(ha.holder().await.unwrap(), None);

    let guard = ha.acquire(b"me-again".to_vec()).await.unwrap();
    assert_eq!(ha.holder().await.unwrap(), Some(b"me-again".to_vec()));
    let mut lost = guard.lost.clone();
    b.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), lost.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();

    // The record of a holder from before the restart is not reported (openraft may restore a
    // single voter's leadership in the same term, so the term alone would not tell).
    let b = open(dir.path()).await;
    let ha = b.ha_lock().unwrap();
    assert_eq!(ha.holder().await.unwrap(), None);
    let _guard = ha.acquire(b"third".to_vec()).await.unwrap();
    assert_eq!(ha.holder().await.unwrap(), Some(b"third".to_vec()));
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn uninitialised_node_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.initialize = false;
    let b = RaftBackend::open(o).await.unwrap();
    assert!(!b.is_leader());
    assert!(matches!(
        b.put("k", vec![1]).await,
        Err(StorageError::Unavailable(_))
    ));
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            b.ha_lock().unwrap().acquire(vec![])
        )
        .await
        .is_err(),
        "a node that is not leader cannot take the HA lock"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn works_under_the_read_cache() {
    let dir = tempfile::tempdir().unwrap();
    let raft = open(dir.path()).await;
    let cached = CachedBackend::new(Arc::new(raft.clone()), 1 << 20);
    cached.put("c/1", b"one".to_vec()).await.unwrap();
    assert_eq!(cached.get("c/1").await.unwrap(), Some(b"one".to_vec()));
    // A write that bypasses the cache reaches it through the write notifier.
    let index = raft.write(vec![put("c/1", b"uno")]).await.unwrap();
    cached
        .indexed()
        .unwrap()
        .wait_for_index(index, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(cached.get("c/1").await.unwrap(), Some(b"uno".to_vec()));
    raft.shutdown().await.unwrap();
}

/// Runs `writers` tasks writing `per_writer` keys each; returns (writes/s, log entries used).
async fn write_load(b: &RaftBackend, writers: usize, per_writer: usize) -> (f64, u64) {
    let before = b.metrics().borrow().last_log_index.unwrap_or(0);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..writers {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                b.put(&format!("load/{t}/{i}"), vec![7; 256]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let after = b.metrics().borrow().last_log_index.unwrap_or(0);
    ((writers * per_writer) as f64 / secs, after - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let (_, entries) = write_load(&b, 32, 20).await;
    // 640 writes; with group commit they need far fewer entries (and fsyncs).
    assert!(entries < 640 / 2, "640 writes used {entries} log entries");
    for t in 0..32 {
        assert_eq!(b.list(&format!("load/{t}/")).await.unwrap().len(), 20);
    }
    b.shutdown().await.unwrap();
}

/// `cargo test -p kura-raft --release -- --ignored measure_write_throughput --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints figures"]
async fn measure_write_throughput() {
    for inflight in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.max_inflight_entries = inflight;
        let b = RaftBackend::open(o).await.unwrap();
        for (writers, per_writer) in [(1, 500), (32, 100), (32, 300)] {
            let (rate, entries) = write_load(&b, writers, per_writer).await;
            let writes = writers * per_writer;
            println!(
                "inflight {inflight}: {writers:>2} writers, {writes} writes: {rate:.0} writes/s, \
                 {entries} log entries ({:.1} writes per entry and fsync)",
                writes as f64 / entries as f64
            );
        }
        if inflight == 1 {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..32 {
                let b = b.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..1000 {
                        let got = b.get(&format!("load/{t}/{}", i % 100)).await.unwrap();
                        assert_eq!(got.map(|v| v.len()), Some(256));
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let rate = 32_000.0 / started.elapsed().as_secs_f64();
            println!("32 readers, 32000 gets of 256-byte values: {rate:.0} reads/s");
        }
        b.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn exported_snapshot_restores_on_another_node() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = open(dir_a.path()).await;
    a.put("keep/1", b"one".to_vec()).await.unwrap();
    a.put("keep/2", b"two".to_vec()).await.unwrap();
    let exported = a.export_snapshot().await.unwrap();

    let b = open(dir_b.path()).await;
    b.put("keep/1", b"changed".to_vec()).await.unwrap();
    b.put("gone", b"x".to_vec()).await.unwrap();
    let mut notes = b.write_notifier().unwrap().subscribe();

    // A damaged snapshot is refused and changes nothing.
    let mut damaged = exported.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    assert!(matches!(
        b.read_snapshot(damaged).await,
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        b.read_snapshot(b"not a snapshot".to_vec()).await,
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(b.get("gone").await.unwrap(), Some(b"x".to_vec()));

    let pairs = b.read_snapshot(exported).await.unwrap();
    assert_eq!(pairs.len(), 2);
    b.restore_snapshot(pairs).await.unwrap();
    assert_eq!(b.get("keep/1").await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(b.get("keep/2").await.unwrap(), Some(b"two".to_vec()));
    assert_eq!(b.get("gone").await.unwrap(), None);
    let batch = notes.recv().await.unwrap();
    assert_eq!(batch.keys, vec!["gone", "keep/1", "keep/2"]);

    // The restore is in the log: it survives a restart.
    b.shutdown().await.unwrap();
    drop(b);
    let b = open(dir_b.path()).await;
    assert_eq!(b.get("keep/1").await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(b.get("gone").await.unwrap(), None);
}
