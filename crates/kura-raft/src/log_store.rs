//! The raft log and vote ([`openraft::storage::RaftLogStorage`]) in redb.
//!
//! Every append, truncation, purge and vote is one durable redb commit (fsync) before it is
//! acknowledged. The committed log id is saved without an fsync: it is only a hint that lets a
//! restarting node re-apply committed entries before it hears from a leader, and the next durable
//! commit persists it anyway.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, Vote};
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::codec::{decode_entry, decode_entry_log_id, encode_entry};
use crate::db::{
    blocking, get_json, put_json, read_json, write_json, DbResult, LOG, LOG_META, META_COMMITTED,
    META_PURGED, META_VOTE,
};
use crate::types::{Entry, LogId, NodeId, RaftStorageError, TypeConfig};

/// The log store: raft log entries, vote, committed and purged log ids.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// A log store over the tables of `db` (which must exist).
    pub(crate) fn new(db: Arc<Database>) -> Self {
        LogStore { db }
    }
}

fn to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

fn read_entries(db: &Database, range: (Bound<u64>, Bound<u64>)) -> DbResult<Vec<Entry>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG)?;
    let mut out = Vec::new();
    for item in table.range::<u64>(range)? {
        let (_, v) = item?;
        out.push(decode_entry(v.value())?);
    }
    Ok(out)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let bounds = to_bounds(&range);
        blocking(&self.db, move |db| read_entries(db, bounds))
            .await
            .map_err(|e| e.log_read())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(LOG_META)?;
            let purged: Option<LogId> = get_json(&meta, META_PURGED)?;
            let log = txn.open_table(LOG)?;
            let last = match log.last()? {
                Some((_, v)) => Some(decode_entry_log_id(v.value())?),
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
        .map_err(|e| e.log_read())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        let vote = *vote;
        blocking(&self.db, move |db| {
            write_json(db, LOG_META, META_VOTE, &vote, true)
        })
        .await
        .map_err(|e| e.vote(true))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        blocking(&self.db, |db| read_json(db, LOG_META, META_VOTE))
            .await
            .map_err(|e| e.vote(false))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        blocking(&self.db, move |db| {
            write_json(db, LOG_META, META_COMMITTED, &committed, false)
        })
        .await
        .map_err(|e| e.log_write())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        blocking(&self.db, |db| {
            Ok(read_json::<Option<LogId>>(db, LOG_META, META_COMMITTED)?.flatten())
        })
        .await
        .map_err(|e| e.log_read())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, encode_entry(&e)))
            .collect();
        let res = blocking(&self.db, move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(LOG)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            // Durability::Immediate (the default): fsync before the flush is acknowledged.
            txn.commit()?;
            Ok(())
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.log_write())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let since = log_id.index;
        blocking(&self.db, move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(LOG)?;
                table.retain_in::<u64, _>(since.., |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| e.log_write())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(LOG_META)?;
                put_json(&mut meta, META_PURGED, &log_id)?;
                let mut table = txn.open_table(LOG)?;
                table.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| e.log_write())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::db::create_tables;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        create_tables(&db).unwrap();
        (dir, LogStore::new(Arc::new(db)))
    }

    async fn write(store: &LogStore, entries: Vec<Entry>) {
        // Drive the same code path as append without a LogFlushed (which only openraft builds).
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.log_id.index, encode_entry(e)))
            .collect();
        blocking(&store.db, move |db| {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(LOG)?;
                for (i, b) in &encoded {
                    t.insert(*i, b.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn state_truncate_purge_vote() {
        let (_dir, mut s) = store();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, None);
        write(&s, (1..=10).map(|i| entry(1, i)).collect()).await;
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(entry(1, 10).log_id));

        s.truncate(entry(1, 8).log_id).await.unwrap();
        let got = s.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(got.len(), 7);
        assert_eq!(got.last().unwrap().log_id.index, 7);

        s.purge(entry(1, 3).log_id).await.unwrap();
        let got = s.try_get_log_entries(..).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(entry(1, 3).log_id));
        assert_eq!(st.last_log_id, Some(entry(1, 7).log_id));

        // Everything purged: the last log id is the purged one.
        s.purge(entry(1, 7).log_id).await.unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(entry(1, 7).log_id));

        assert_eq!(s.read_vote().await.unwrap(), None);
        let vote = Vote::new_committed(3, 1);
        s.save_vote(&vote).await.unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(vote));

        assert_eq!(s.read_committed().await.unwrap(), None);
        s.save_committed(Some(entry(1, 5).log_id)).await.unwrap();
        assert_eq!(s.read_committed().await.unwrap(), Some(entry(1, 5).log_id));
    }
}
