//! The body of a request a read-serving standby runs itself, kept in case the request has to be
//! forwarded to the active node after all (it tried to write). Small bodies stay in memory;
//! larger ones are spilled to an anonymous temporary file, so a standby does not hold two
//! copies of a large body (the parsed request and the raw bytes) in memory.

use std::io::{Read, Seek, SeekFrom, Write};

use bytes::Bytes;

/// Bodies up to this size stay in memory.
pub(crate) const MEMORY_LIMIT: usize = 1024 * 1024;

/// A request body kept for replay.
pub(crate) enum Spool {
    /// Held in memory.
    Memory(Bytes),
    /// Spilled to a temporary file (deleted when dropped).
    File(std::fs::File),
}

impl Spool {
    /// Keeps `body`: in memory up to `limit` bytes, in a temporary file above. If the file
    /// cannot be written, the body stays in memory.
    pub(crate) fn keep(body: Bytes, limit: usize) -> Spool {
        if body.len() <= limit {
            return Spool::Memory(body);
        }
        let spilled = tempfile::tempfile().and_then(|mut f| {
            f.write_all(&body)?;
            Ok(f)
        });
        match spilled {
            Ok(f) => Spool::File(f),
            Err(e) => {
                tracing::warn!(error = %e, "spooling a request body to disk failed; keeping it in memory");
                Spool::Memory(body)
            }
        }
    }

    /// The body again, for forwarding.
    pub(crate) fn replay(self) -> std::io::Result<Bytes> {
        match self {
            Spool::Memory(b) => Ok(b),
            Spool::File(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                let mut out = Vec::new();
                f.read_to_end(&mut out)?;
                Ok(Bytes::from(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_large_ones_spill_and_replay_intact() {
        let small = Spool::keep(Bytes::from_static(b"{}"), 16);
        assert!(matches!(small, Spool::Memory(_)));
        assert_eq!(small.replay().unwrap(), Bytes::from_static(b"{}"));

        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let spooled = Spool::keep(Bytes::from(big.clone()), 1024);
        assert!(matches!(spooled, Spool::File(_)));
        assert_eq!(spooled.replay().unwrap().as_ref(), big.as_slice());
    }
}
