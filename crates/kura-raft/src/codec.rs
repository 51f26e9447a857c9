//! Binary encodings of what Kura's raft writes to disk (and, in the cluster, to the wire).
//!
//! Values are opaque bytes up to many MiB, so a text format is out of the question; the format is
//! our own and versioned rather than tied to a serialization crate's layout. All integers are
//! little-endian. Membership configurations (rare, small, nested) are embedded as JSON.
//!
//! - entry: `version u8 = 1 | term u64 | leader u64 | index u64 | kind u8 | payload`, where kind
//!   is 0 (blank), 1 (command) or 2 (membership: `len u32 | JSON`);
//! - command: `tag u8` then for `Write` (1) `txns u32 | (ops u32 | op*)*` with an op being
//!   `1 | key | value` (put) or `2 | key` (delete), strings and byte strings as `len u32 | bytes`;
//!   `SetHolder` (2) `node u64 | term u64 | value`; `ClearHolder` (3) `node u64`.

use openraft::{CommittedLeaderId, EntryPayload};

use crate::types::{Command, Entry, Holder, LogId, Membership, NodeId, Op};

/// Decoding failed: the bytes are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt encoding: {0}")]
pub struct DecodeError(pub String);

const ENTRY_VERSION: u8 = 1;
const KIND_BLANK: u8 = 0;
const KIND_COMMAND: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

const CMD_WRITE: u8 = 1;
const CMD_SET_HOLDER: u8 = 2;
const CMD_CLEAR_HOLDER: u8 = 3;
const CMD_RESTORE: u8 = 4;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// Appends `v` little-endian.
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` little-endian.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).expect("byte strings are limited to 4 GiB");
    put_u32(out, len);
    out.extend_from_slice(b);
}

/// A cursor over encoded bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(format!(
                "truncated: wanted {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("key is not UTF-8".into()))
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

/// Encodes a command.
pub fn encode_command(cmd: &Command, out: &mut Vec<u8>) {
    match cmd {
        Command::Write(txns) => {
            out.push(CMD_WRITE);
            put_u32(out, txns.len() as u32);
            for txn in txns {
                put_u32(out, txn.len() as u32);
                for op in txn {
                    match op {
                        Op::Put { key, value } => {
                            out.push(OP_PUT);
                            put_bytes(out, key.as_bytes());
                            put_bytes(out, value);
                        }
                        Op::Delete { key } => {
                            out.push(OP_DELETE);
                            put_bytes(out, key.as_bytes());
                        }
                    }
                }
            }
        }
        Command::SetHolder(h) => {
            out.push(CMD_SET_HOLDER);
            put_u64(out, h.node);
            put_u64(out, h.term);
            put_bytes(out, &h.value);
        }
        Command::ClearHolder { node } => {
            out.push(CMD_CLEAR_HOLDER);
            put_u64(out, *node);
        }
        Command::Restore(pairs) => {
            out.push(CMD_RESTORE);
            put_u64(out, pairs.len() as u64);
            for (key, value) in pairs {
                put_bytes(out, key.as_bytes());
                put_bytes(out, value);
            }
        }
    }
}

fn decode_command(r: &mut Reader<'_>) -> Result<Command, DecodeError> {
    match r.u8()? {
        CMD_WRITE => {
            let ntxn = r.u32()? as usize;
            let mut txns = Vec::with_capacity(ntxn.min(1024));
            for _ in 0..ntxn {
                let nops = r.u32()? as usize;
                let mut ops = Vec::with_capacity(nops.min(1024));
                for _ in 0..nops {
                    let op = match r.u8()? {
                        OP_PUT => Op::Put {
                            key: r.string()?,
                            value: r.bytes()?.to_vec(),
                        },
                        OP_DELETE => Op::Delete { key: r.string()? },
                        t => return Err(DecodeError(format!("unknown op tag {t}"))),
                    };
                    ops.push(op);
                }
                txns.push(ops);
            }
            Ok(Command::Write(txns))
        }
        CMD_SET_HOLDER => Ok(Command::SetHolder(Holder {
            node: r.u64()?,
            term: r.u64()?,
            value: r.bytes()?.to_vec(),
        })),
        CMD_CLEAR_HOLDER => Ok(Command::ClearHolder { node: r.u64()? }),
        CMD_RESTORE => {
            let n = r.u64()? as usize;
            let mut pairs = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                pairs.push((r.string()?, r.bytes()?.to_vec()));
            }
            Ok(Command::Restore(pairs))
        }
        t => Err(DecodeError(format!("unknown command tag {t}"))),
    }
}

/// Encodes a raft log entry.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(ENTRY_VERSION);
    put_u64(&mut out, entry.log_id.leader_id.term);
    put_u64(&mut out, entry.log_id.leader_id.node_id);
    put_u64(&mut out, entry.log_id.index);
    match &entry.payload {
        EntryPayload::Blank => out.push(KIND_BLANK),
        EntryPayload::Normal(cmd) => {
            out.push(KIND_COMMAND);
            encode_command(cmd, &mut out);
        }
        EntryPayload::Membership(m) => {
            out.push(KIND_MEMBERSHIP);
            let json = serde_json::to_vec(m).expect("membership serializes");
            put_bytes(&mut out, &json);
        }
    }
    out
}

fn decode_log_id(r: &mut Reader<'_>) -> Result<LogId, DecodeError> {
    let version = r.u8()?;
    if version != ENTRY_VERSION {
        return Err(DecodeError(format!("unknown entry version {version}")));
    }
    let term = r.u64()?;
    let node: NodeId = r.u64()?;
    let index = r.u64()?;
    Ok(LogId::new(CommittedLeaderId::new(term, node), index))
}

/// Decodes only the log id of an encoded entry.
pub fn decode_entry_log_id(bytes: &[u8]) -> Result<LogId, DecodeError> {
    decode_log_id(&mut Reader::new(bytes))
}

/// Decodes a raft log entry.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(bytes);
    let log_id = decode_log_id(&mut r)?;
    let payload = match r.u8()? {
        KIND_BLANK => EntryPayload::Blank,
        KIND_COMMAND => EntryPayload::Normal(decode_command(&mut r)?),
        KIND_MEMBERSHIP => {
            let json = r.bytes()?;
            let m: Membership = serde_json::from_slice(json)
                .map_err(|e| DecodeError(format!("membership: {e}")))?;
            EntryPayload::Membership(m)
        }
        k => return Err(DecodeError(format!("unknown entry kind {k}"))),
    };
    r.finish()?;
    Ok(Entry { log_id, payload })
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), used to check snapshot files.
#[derive(Debug, Clone)]
pub(crate) struct Crc32 {
    state: u32,
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32 {
    /// A fresh checksum.
    pub(crate) fn new() -> Self {
        Crc32 { state: 0xFFFF_FFFF }
    }

    /// Feeds `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        let mut c = self.state;
        for &b in data {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    /// The checksum of everything fed so far.
    pub(crate) fn value(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::types::KuraNode;

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    #[test]
    fn entries_round_trip() {
        let members = BTreeMap::from([(
            7u64,
            KuraNode {
                name: "n1".into(),
                api_addr: "https://a:8200".into(),
                cluster_addr: "https://a:8201".into(),
            },
        )]);
        let entries = vec![
            Entry {
                log_id: log_id(1, 7, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(2, 7, 2),
                payload: EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([7u64])],
                    members,
                )),
            },
            Entry {
                log_id: log_id(3, 9, u64::MAX),
                payload: EntryPayload::Normal(Command::Write(vec![
                    vec![
                        Op::Put {
                            key: "a/b".into(),
                            value: vec![0, 1, 2, 255],
                        },
                        Op::Delete { key: "c".into() },
                    ],
                    vec![Op::Put {
                        key: "ü".into(),
                        value: vec![],
                    }],
                ])),
            },
            Entry {
                log_id: log_id(4, 7, 5),
                payload: EntryPayload::Normal(Command::SetHolder(Holder {
                    node: 7,
                    term: 4,
                    value: b"node-a".to_vec(),
                })),
            },
            Entry {
                log_id: log_id(4, 7, 6),
                payload: EntryPayload::Normal(Command::ClearHolder { node: 7 }),
            },
        ];
        for e in entries {
            let bytes = encode_entry(&e);
            assert_eq!(decode_entry(&bytes).unwrap(), e);
            assert_eq!(decode_entry_log_id(&bytes).unwrap(), e.log_id);
        }
    }

    #[test]
    fn truncated_and_garbage_entries_are_rejected() {
        let e = Entry {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Normal(Command::Write(vec![vec![Op::Put {
                key: "k".into(),
                value: vec![1; 10],
            }]])),
        };
        let bytes = encode_entry(&e);
        for cut in 0..bytes.len() {
            assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_entry(&extra).is_err());
        let mut bad_version = bytes;
        bad_version[0] = 99;
        assert!(decode_entry(&bad_version).is_err());
    }

    #[test]
    fn crc32_matches_reference_vector() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xCBF4_3926);
        let mut split = Crc32::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.value(), 0xCBF4_3926);
    }
}
