//! The replicated state machine ([`openraft::storage::RaftStateMachine`]): the key-value table,
//! the membership, the HA holder, and snapshots of all of it.
//!
//! Applying a batch of entries is one redb commit; only after it (data visible to readers) are
//! the entries' [`WriteBatch`]es broadcast, in log order, and the applied index published.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kura_storage::WriteBatch;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::db::{
    blocking, get_json, put_json, DbError, DbResult, KV, SM_APPLIED, SM_HOLDER, SM_MEMBERSHIP,
    SM_META, SM_SNAPSHOT,
};
use crate::snapshot::{sync_dir, SnapshotFile, SnapshotHeader, SnapshotReader, SnapshotWriter};
use crate::types::{
    Command, Entry, Holder, LogId, Op, RaftStorageError, Snapshot, SnapshotMeta, StoredMembership,
    TypeConfig,
};

/// The current snapshot as recorded in `SM_META`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CurrentSnapshot {
    /// Its metadata.
    pub meta: SnapshotMeta,
    /// Its file name inside the snapshot directory.
    pub file: String,
}

/// State shared by the state machine, its snapshot builders and the backend's read path.
pub(crate) struct SmShared {
    pub db: Arc<Database>,
    pub snap_dir: PathBuf,
    pub notify: broadcast::Sender<WriteBatch>,
    pub applied: watch::Sender<u64>,
    /// Serializes changes of the current snapshot (builds run beside applies and installs).
    pub snapshot_lock: tokio::sync::Mutex<()>,
}

/// The state machine handed to openraft.
pub struct StateMachine {
    shared: Arc<SmShared>,
}

/// Builds snapshots from a consistent read transaction, beside ongoing applies.
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
}

impl StateMachine {
    pub(crate) fn new(shared: Arc<SmShared>) -> Self {
        StateMachine { shared }
    }
}

/// The applied log id and membership recorded in the state machine.
pub(crate) fn read_applied(db: &Database) -> DbResult<(Option<LogId>, StoredMembership)> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(SM_META)?;
    let applied: Option<LogId> = get_json::<Option<LogId>, _>(&meta, SM_APPLIED)?.flatten();
    let membership: StoredMembership = get_json(&meta, SM_MEMBERSHIP)?.unwrap_or_default();
    Ok((applied, membership))
}

/// The current snapshot record, if any.
pub(crate) fn read_current_snapshot(db: &Database) -> DbResult<Option<CurrentSnapshot>> {
    crate::db::read_json(db, SM_META, SM_SNAPSHOT)
}

/// The HA holder recorded in the state machine.
pub(crate) fn read_holder(db: &Database) -> DbResult<Option<Holder>> {
    crate::db::read_json(db, SM_META, SM_HOLDER)
}

/// Removes snapshot files other than `keep` (leftovers of interrupted builds and transfers).
pub(crate) fn clean_snapshot_dir(dir: &Path, keep: Option<&str>) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        if Some(name.to_string_lossy().as_ref()) != keep {
            std::fs::remove_file(item.path())?;
        }
    }
    Ok(())
}

fn apply_ops(kv: &mut redb::Table<'_, &'static str, &'static [u8]>, ops: &[Op]) -> DbResult<()> {
    for op in ops {
        match op {
            Op::Put { key, value } => {
                kv.insert(key.as_str(), value.as_slice())?;
            }
            Op::Delete { key } => {
                kv.remove(key.as_str())?;
            }
        }
    }
    Ok(())
}

/// Replaces the whole key-value table with `pairs` (sorted by key); returns the keys whose
/// value changed (added, modified or removed), sorted.
fn replace_all(
    kv: &mut redb::Table<'_, &'static str, &'static [u8]>,
    pairs: &[(String, Vec<u8>)],
) -> DbResult<Vec<String>> {
    let mut old_keys = Vec::new();
    for item in kv.iter()? {
        let (k, _) = item?;
        old_keys.push(k.value().to_string());
    }
    let mut changed = Vec::new();
    for (key, value) in pairs {
        let old = kv.insert(key.as_str(), value.as_slice())?;
        if old.is_none_or(|o| o.value() != value.as_slice()) {
            changed.push(key.clone());
        }
    }
    let mut n = pairs.iter().map(|(k, _)| k.as_str()).peekable();
    for key in old_keys {
        while n.next_if(|k| *k < key.as_str()).is_some() {}
        if n.peek() != Some(&key.as_str()) {
            kv.remove(key.as_str())?;
            changed.push(key);
        }
    }
    changed.sort();
    Ok(changed)
}

/// Applies `entries` in one non-fsynced commit; returns each entry's index and written keys.
fn apply_entries(db: &Database, entries: &[Entry]) -> DbResult<Vec<(u64, Vec<String>)>> {
    let mut txn = db.begin_write()?;
    // The raft log is the durable record; the next log commit persists this one too.
    txn.set_durability(Durability::None)?;
    let mut notes = Vec::with_capacity(entries.len());
    {
        let mut kv = txn.open_table(KV)?;
        let mut meta = txn.open_table(SM_META)?;
        for entry in entries {
            let mut keys = Vec::new();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => {
                    keys = cmd.keys();
                    match cmd {
                        Command::Write(txns) => {
                            for ops in txns {
                                apply_ops(&mut kv, ops)?;
                            }
                        }
                        Command::SetHolder(h) => put_json(&mut meta, SM_HOLDER, h)?,
                        Command::ClearHolder { node } => {
                            let current: Option<Holder> = get_json(&meta, SM_HOLDER)?;
                            if current.is_some_and(|h| h.node == *node) {
                                meta.remove(SM_HOLDER)?;
                            }
                        }
                        Command::Restore(pairs) => keys = replace_all(&mut kv, pairs)?,
                    }
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    put_json(&mut meta, SM_MEMBERSHIP, &stored)?;
                }
            }
            notes.push((entry.log_id.index, keys));
        }
        if let Some(last) = entries.last() {
            put_json(&mut meta, SM_APPLIED, &Some(last.log_id))?;
        }
    }
    txn.commit()?;
    Ok(notes)
}

impl SmShared {
    /// Publishes applied entries: write batches in order, then the applied index.
    fn publish(&self, notes: Vec<(u64, Vec<String>)>) {
        let mut last = None;
        for (index, keys) in notes {
            last = Some(index);
            let _ = self.notify.send(WriteBatch::new(index, keys));
        }
        if let Some(index) = last {
            self.applied.send_replace(index);
        }
    }

    /// Writes a snapshot of the current state to a new file; returns its record.
    fn build(&self) -> DbResult<CurrentSnapshot> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(SM_META)?;
        let applied: Option<LogId> = get_json::<Option<LogId>, _>(&meta, SM_APPLIED)?.flatten();
        let membership: StoredMembership = get_json(&meta, SM_MEMBERSHIP)?.unwrap_or_default();
        let holder: Option<Holder> = get_json(&meta, SM_HOLDER)?;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let snapshot_id = match &applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, &unique[..12]),
            None => format!("0-0-{}", &unique[..12]),
        };
        let header = SnapshotHeader {
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id,
            },
            holder,
        };
        let tmp = self.snap_dir.join(format!("build-{unique}.tmp"));
        let file = format!("snap-{unique}.snap");
        let result = (|| -> DbResult<()> {
            let mut w = SnapshotWriter::create(&tmp, &header)?;
            let kv = txn.open_table(KV)?;
            for item in kv.iter()? {
                let (k, v) = item?;
                w.record(k.value(), v.value())?;
            }
            w.finish()?;
            std::fs::rename(&tmp, self.snap_dir.join(&file))?;
            sync_dir(&self.snap_dir)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(CurrentSnapshot {
            meta: header.meta,
            file,
        })
    }

    /// Makes `new` the current snapshot if it is not older than the current one; deletes the
    /// file of whichever loses. Returns the snapshot that is current afterwards.
    fn set_current(&self, new: CurrentSnapshot) -> DbResult<CurrentSnapshot> {
        let old = read_current_snapshot(&self.db)?;
        if let Some(old) = &old {
            if old.meta.last_log_id > new.meta.last_log_id {
                let _ = std::fs::remove_file(self.snap_dir.join(&new.file));
                return Ok(old.clone());
            }
        }
        crate::db::write_json(&self.db, SM_META, SM_SNAPSHOT, &new, true)?;
        if let Some(old) = old {
            if old.file != new.file {
                let _ = std::fs::remove_file(self.snap_dir.join(&old.file));
            }
        }
        Ok(new)
    }

    /// Replaces the whole state with the snapshot in `path`; returns the keys whose value
    /// changed (added, modified or removed), in order.
    fn install(&self, meta: &SnapshotMeta, path: &Path) -> DbResult<Vec<String>> {
        let (mut reader, header) = SnapshotReader::open(path)?;
        if header.meta.last_log_id != meta.last_log_id {
            return Err(DbError::Decode(crate::codec::DecodeError(format!(
                "snapshot file is at {:?}, its metadata says {:?}",
                header.meta.last_log_id, meta.last_log_id
            ))));
        }
        let file = format!("snap-{}.snap", uuid::Uuid::new_v4().simple());
        let final_path = self.snap_dir.join(&file);
        let txn = self.db.begin_write()?;
        let mut changed = Vec::new();
        let filled = (|| -> DbResult<()> {
            let mut kv = txn.open_table(KV)?;
            let mut old_keys = Vec::new();
            for item in kv.iter()? {
                let (k, _) = item?;
                old_keys.push(k.value().to_string());
            }
            let mut new_keys = Vec::new();
            while let Some((key, value)) = reader.next()? {
                let old = kv.insert(key.as_str(), value.as_slice())?;
                if old.is_none_or(|o| o.value() != value.as_slice()) {
                    changed.push(key.clone());
                }
                new_keys.push(key);
            }
            // Both lists are sorted: walk them together to find keys that disappeared.
            let mut n = new_keys.iter().peekable();
            for key in old_keys {
                while n.next_if(|k| k.as_str() < key.as_str()).is_some() {}
                if n.peek().map(|k| k.as_str()) != Some(key.as_str()) {
                    kv.remove(key.as_str())?;
                    changed.push(key);
                }
            }
            changed.sort();
            let mut sm = txn.open_table(SM_META)?;
            put_json(&mut sm, SM_APPLIED, &meta.last_log_id)?;
            put_json(&mut sm, SM_MEMBERSHIP, &meta.last_membership)?;
            match &header.holder {
                Some(h) => put_json(&mut sm, SM_HOLDER, h)?,
                None => {
                    sm.remove(SM_HOLDER)?;
                }
            }
            put_json(
                &mut sm,
                SM_SNAPSHOT,
                &CurrentSnapshot {
                    meta: meta.clone(),
                    file: file.clone(),
                },
            )?;
            Ok(())
        })();
        if let Err(e) = filled {
            // A bad record or checksum: nothing of the snapshot becomes visible.
            let _ = txn.abort();
            return Err(e);
        }
        // The file is in place (and durable) before the record that names it.
        std::fs::rename(path, &final_path)?;
        sync_dir(&self.snap_dir)?;
        txn.commit()?;
        clean_snapshot_dir(&self.snap_dir, Some(&file))?;
        Ok(changed)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, RaftStorageError> {
        let shared = self.shared.clone();
        let _guard = self.shared.snapshot_lock.lock().await;
        let current = tokio::task::spawn_blocking(move || {
            let built = shared.build()?;
            shared.set_current(built)
        })
        .await
        .map_err(DbError::from)
        .and_then(|r| r)
        .map_err(|e| e.snapshot(true))?;
        let file = SnapshotFile::open(self.shared.snap_dir.join(&current.file))
            .await
            .map_err(|e| DbError::Io(e).snapshot(false))?;
        tracing::info!(snapshot = %current.meta, "raft snapshot built");
        Ok(Snapshot {
            meta: current.meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        blocking(&self.shared.db, read_applied)
            .await
            .map_err(|e| e.sm(false))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let n = entries.len();
        let notes = blocking(&self.shared.db, move |db| apply_entries(db, &entries))
            .await
            .map_err(|e| e.sm(true))?;
        self.shared.publish(notes);
        Ok(vec![(); n])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, RaftStorageError> {
        let path = self
            .shared
            .snap_dir
            .join(format!("recv-{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = SnapshotFile::create(path)
            .await
            .map_err(|e| DbError::Io(e).snapshot(true))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), RaftStorageError> {
        let path = snapshot
            .finish()
            .await
            .map_err(|e| DbError::Io(e).snapshot(true))?;
        let _guard = self.shared.snapshot_lock.lock().await;
        let shared = self.shared.clone();
        let m = meta.clone();
        let changed = tokio::task::spawn_blocking(move || {
            let res = shared.install(&m, &path);
            if res.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            res
        })
        .await
        .map_err(DbError::from)
        .and_then(|r| r)
        .map_err(|e| e.snapshot(true))?;
        tracing::info!(snapshot = %meta, changed = changed.len(), "raft snapshot installed");
        let index = meta.last_log_id.map_or(0, |l| l.index);
        self.shared.publish(vec![(index, changed)]);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, RaftStorageError> {
        let current = blocking(&self.shared.db, read_current_snapshot)
            .await
            .map_err(|e| e.snapshot(false))?;
        let Some(current) = current else {
            return Ok(None);
        };
        match SnapshotFile::open(self.shared.snap_dir.join(&current.file)).await {
            Ok(file) => Ok(Some(Snapshot {
                meta: current.meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %current.file, "raft snapshot file missing");
                Ok(None)
            }
            Err(e) => Err(DbError::Io(e).snapshot(false)),
        }
    }
}
