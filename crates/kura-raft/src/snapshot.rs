//! Snapshot files: the whole state machine (every key and value, the membership, the HA holder)
//! at one applied log id, streamed to and from disk so a snapshot never has to fit in memory.
//!
//! Format (little-endian): `b"KURASNAP" | version u32 = 1 | header_len u32 | header JSON`
//! (`{"meta": SnapshotMeta, "holder": Holder?}`), then one record per key in ascending key
//! order, `1 | key_len u32 | key | value_len u32 | value`, then `0 | count u64 | crc32 u32`
//! where the CRC-32 covers every byte before it.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::codec::{Crc32, DecodeError};
use crate::types::{Holder, SnapshotMeta};

const MAGIC: &[u8; 8] = b"KURASNAP";
const VERSION: u32 = 1;
const TAG_RECORD: u8 = 1;
const TAG_END: u8 = 0;
/// Upper bound of a header, to refuse absurd allocations from a corrupt file.
const MAX_HEADER: u32 = 64 * 1024 * 1024;

/// The snapshot data openraft moves around: an open snapshot file and its path.
///
/// It is read (to send a snapshot to a follower) and written (to receive one) through the tokio
/// I/O traits; the path lets the state machine move a received file into place.
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .finish()
    }
}

impl SnapshotFile {
    /// Opens an existing snapshot file for reading.
    pub async fn open(path: PathBuf) -> io::Result<Self> {
        let file = tokio::fs::File::open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    /// Creates (truncating) a file to receive a snapshot into.
    pub async fn create(path: PathBuf) -> io::Result<Self> {
        let mut options = tokio::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs the file, then closes it, returning its path.
    pub(crate) async fn finish(mut self) -> io::Result<PathBuf> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(self.path)
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}

/// The JSON header of a snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    /// Log id, membership and id of the snapshot.
    pub meta: SnapshotMeta,
    /// The HA lock holder recorded in the state machine.
    pub holder: Option<Holder>,
}

/// Writes a snapshot file record by record, checksumming as it goes.
pub(crate) struct SnapshotWriter {
    out: BufWriter<fs::File>,
    crc: Crc32,
    count: u64,
}

impl SnapshotWriter {
    /// Creates `path` and writes the header.
    pub(crate) fn create(path: &Path, header: &SnapshotHeader) -> io::Result<Self> {
        let file = private_file(path)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(256 * 1024, file),
            crc: Crc32::new(),
            count: 0,
        };
        let json = serde_json::to_vec(header).map_err(io::Error::other)?;
        w.write(MAGIC)?;
        w.write(&VERSION.to_le_bytes())?;
        w.write(&(json.len() as u32).to_le_bytes())?;
        w.write(&json)?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.out.write_all(b)
    }

    /// Appends one key and value (callers go in ascending key order).
    pub(crate) fn record(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        self.write(&[TAG_RECORD])?;
        self.write(&(key.len() as u32).to_le_bytes())?;
        self.write(key.as_bytes())?;
        self.write(&(value.len() as u32).to_le_bytes())?;
        self.write(value)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer and fsyncs the file.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.write(&[TAG_END])?;
        let count = self.count;
        self.write(&count.to_le_bytes())?;
        let crc = self.crc.value();
        self.out.write_all(&crc.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// Reads a snapshot file record by record. The checksum is verified by [`Self::next`] when it
/// reaches the trailer, so a consumer must not make its effects permanent before `next`
/// returned `Ok(None)`.
pub(crate) struct SnapshotReader {
    input: BufReader<fs::File>,
    crc: Crc32,
    count: u64,
    last_key: Option<String>,
    done: bool,
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, DecodeError(msg.into()))
}

impl SnapshotReader {
    /// Opens `path` and reads its header.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, SnapshotHeader)> {
        let file = fs::File::open(path)?;
        let mut r = SnapshotReader {
            input: BufReader::with_capacity(256 * 1024, file),
            crc: Crc32::new(),
            count: 0,
            last_key: None,
            done: false,
        };
        let mut magic = [0u8; 8];
        r.read(&mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt("not a Kura snapshot file"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(corrupt(format!("unknown snapshot version {version}")));
        }
        let len = r.u32()?;
        if len > MAX_HEADER {
            return Err(corrupt("snapshot header too large"));
        }
        let mut json = vec![0u8; len as usize];
        r.read(&mut json)?;
        let header: SnapshotHeader =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("header: {e}")))?;
        Ok((r, header))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt("truncated snapshot file")
            } else {
                e
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The next key and value, or `None` at the (verified) end of the file.
    pub(crate) fn next(&mut self) -> io::Result<Option<(String, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.read(&mut tag)?;
        match tag[0] {
            TAG_RECORD => {
                let klen = self.u32()? as usize;
                let mut key = vec![0u8; klen];
                self.read(&mut key)?;
                let key = String::from_utf8(key).map_err(|_| corrupt("key is not UTF-8"))?;
                let vlen = self.u32()? as usize;
                let mut value = vec![0u8; vlen];
                self.read(&mut value)?;
                if self
                    .last_key
                    .as_deref()
                    .is_some_and(|last| last >= key.as_str())
                {
                    return Err(corrupt("snapshot keys out of order"));
                }
                self.last_key = Some(key.clone());
                self.count += 1;
                Ok(Some((key, value)))
            }
            TAG_END => {
                let count = self.u64()?;
                let expected = self.crc.value();
                let mut b = [0u8; 4];
                self.input.read_exact(&mut b).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        corrupt("truncated snapshot file")
                    } else {
                        e
                    }
                })?;
                if u32::from_le_bytes(b) != expected {
                    return Err(corrupt("snapshot checksum mismatch"));
                }
                if count != self.count {
                    return Err(corrupt("snapshot record count mismatch"));
                }
                let mut rest = [0u8; 1];
                if self.input.read(&mut rest)? != 0 {
                    return Err(corrupt("trailing bytes after snapshot"));
                }
                self.done = true;
                Ok(None)
            }
            t => Err(corrupt(format!("unknown snapshot record tag {t}"))),
        }
    }
}

/// Creates (truncating) a file only its owner can read and write.
pub(crate) fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Fsyncs a directory so a rename or create in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StoredMembership;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "s1".into(),
            },
            holder: Some(Holder {
                node: 1,
                term: 2,
                value: b"v".to_vec(),
            }),
        }
    }

    fn write_sample(path: &Path) {
        let mut w = SnapshotWriter::create(path, &header()).unwrap();
        w.record("a", b"1").unwrap();
        w.record("b/c", &[0u8; 1000]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write_sample(&p);
        let (mut r, h) = SnapshotReader::open(&p).unwrap();
        assert_eq!(h.meta.snapshot_id, "s1");
        assert_eq!(h.holder, header().holder);
        assert_eq!(r.next().unwrap(), Some(("a".into(), b"1".to_vec())));
        assert_eq!(r.next().unwrap(), Some(("b/c".into(), vec![0u8; 1000])));
        assert_eq!(r.next().unwrap(), None);
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write_sample(&p);
        let good = fs::read(&p).unwrap();
        let drain = |bytes: &[u8]| -> io::Result<()> {
            fs::write(&p, bytes)?;
            let (mut r, _) = SnapshotReader::open(&p)?;
            while r.next()?.is_some() {}
            Ok(())
        };
        assert!(drain(&good).is_ok());
        // A flipped byte in a value, a truncated file, trailing garbage.
        let mut flipped = good.clone();
        let at = good.len() - 100;
        flipped[at] ^= 0x40;
        assert!(drain(&flipped).is_err());
        assert!(drain(&good[..good.len() - 3]).is_err());
        let mut longer = good.clone();
        longer.push(7);
        assert!(drain(&longer).is_err());
    }
}
