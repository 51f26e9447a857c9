//! The `kura-raft/1` protocol: raft RPCs and membership requests as frames.
//!
//! A connection carries one request at a time; the dialing side sends a request and reads its
//! reply before it sends the next one (it keeps the connection for reuse). A request starts
//! with a header frame, `kind u8 | JSON`, followed by kind-specific frames:
//!
//! | kind | header | further frames | reply |
//! |---|---|---|---|
//! | 1 append entries | vote, prev log id, commit, entry count `n` | `n` entries in Kura's binary log-entry encoding ([`kura_raft::encode_entry`]) | `Result<AppendEntriesResponse, RaftError>` |
//! | 2 vote | `VoteRequest` | — | `Result<VoteResponse, RaftError>` |
//! | 3 snapshot chunk | vote, meta, offset, done | one frame of data | `Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>` |
//! | 4 full snapshot | vote, meta | data frames, then an empty frame | `Result<SnapshotResponse, Fatal>` |
//! | 5 join | [`JoinRequest`] | — | `Result<JoinReply, MembershipError>` |
//! | 6 remove peer | [`RemoveRequest`] | — | `Result<(), MembershipError>` |
//!
//! Replies are one frame of JSON. JSON is used for the small, rare or nested parts (openraft's
//! own types are serde types); the parts that carry user data — log entries and snapshot
//! bytes — travel in binary, never inflated by a text encoding.

use std::collections::BTreeMap;

use kura_raft::{KuraNode, LogId, NodeId, SnapshotMeta};
use openraft::Vote;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Request kinds (the first byte of a request's header frame).
pub(crate) const KIND_APPEND: u8 = 1;
pub(crate) const KIND_VOTE: u8 = 2;
pub(crate) const KIND_SNAPSHOT_CHUNK: u8 = 3;
pub(crate) const KIND_FULL_SNAPSHOT: u8 = 4;
pub(crate) const KIND_JOIN: u8 = 5;
pub(crate) const KIND_REMOVE: u8 = 6;

/// A frame that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// An empty header frame.
    #[error("empty request frame")]
    Empty,
    /// A request kind this node does not know.
    #[error("unknown request kind {0}")]
    UnknownKind(u8),
    /// JSON that does not decode to the expected message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// A log entry that does not decode.
    #[error("malformed log entry: {0}")]
    Entry(#[from] kura_raft::DecodeError),
}

/// Header of an append-entries request; the entries follow in their own frames.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppendHeader {
    pub vote: Vote<NodeId>,
    pub prev_log_id: Option<LogId>,
    pub leader_commit: Option<LogId>,
    pub entries: u32,
}

/// Header of one snapshot chunk (openraft's chunked transfer); the data follows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkHeader {
    pub vote: Vote<NodeId>,
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub done: bool,
}

/// Header of a streamed full snapshot; data frames follow until an empty one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FullSnapshotHeader {
    pub vote: Vote<NodeId>,
    pub meta: SnapshotMeta,
}

/// A node asks the leader to add it to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The joining node's raft id.
    pub id: NodeId,
    /// Its name and addresses, as they go into the membership.
    pub node: KuraNode,
    /// Promote it to voter once it has caught up (`false`: it stays a non-voter).
    pub voter: bool,
}

/// The leader's answer to a successful join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    /// The leader that admitted the node.
    pub leader: NodeId,
    /// Every member after the join.
    pub members: BTreeMap<NodeId, KuraNode>,
    /// Whether the node is a voter now.
    pub voter: bool,
}

/// A request to remove a member, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// The member's name (`node_id` in its configuration).
    pub name: String,
}

/// The current leader as a non-leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    /// The leader's raft id.
    pub id: NodeId,
    /// The leader's name and addresses.
    pub node: KuraNode,
}

/// Why a membership request (join, remove) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipError {
    /// The node asked is not the leader; `leader` is where to ask instead, when known.
    #[error("not the raft leader (leader: {})", leader.as_ref().map_or("unknown".to_string(), |l| l.node.to_string()))]
    NotLeader {
        /// The leader, if one is known.
        leader: Option<LeaderHint>,
    },
    /// Another member already has this name.
    #[error("a member named {name:?} already exists with raft id {existing}")]
    NameTaken {
        /// The name.
        name: String,
        /// The raft id of the member that has it.
        existing: NodeId,
    },
    /// No member has this name.
    #[error("no member named {0:?}")]
    PeerNotFound(String),
    /// The new node did not catch up with the leader's log in time; it stays a non-voter
    /// and joining again resumes where this attempt stopped.
    #[error("the joining node did not catch up within {millis} ms")]
    CatchUpTimeout {
        /// The time waited.
        millis: u64,
    },
    /// openraft refused the membership change.
    #[error("membership change failed: {0}")]
    Raft(String),
}

/// Encodes a header frame.
pub(crate) fn header<T: Serialize>(kind: u8, body: &T) -> Vec<u8> {
    let mut out = vec![kind];
    serde_json::to_writer(&mut out, body).expect("wire messages serialize");
    out
}

/// Splits a header frame into kind and body.
pub(crate) fn split_header(frame: &[u8]) -> Result<(u8, &[u8]), WireError> {
    let (&kind, body) = frame.split_first().ok_or(WireError::Empty)?;
    Ok((kind, body))
}

/// Decodes a JSON body.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    Ok(serde_json::from_slice(body)?)
}

/// Encodes a reply.
pub(crate) fn reply<T: Serialize, E: Serialize>(r: &Result<T, E>) -> Vec<u8> {
    serde_json::to_vec(r).expect("wire replies serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::error::RaftError;
    use openraft::raft::VoteResponse;
    use openraft::CommittedLeaderId;

    #[test]
    fn headers_and_replies_round_trip() {
        let h = AppendHeader {
            vote: Vote::new_committed(3, 7),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 7), 10)),
            leader_commit: None,
            entries: 2,
        };
        let frame = header(KIND_APPEND, &h);
        let (kind, body) = split_header(&frame).unwrap();
        assert_eq!(kind, KIND_APPEND);
        let back: AppendHeader = decode(body).unwrap();
        assert_eq!(back.vote, h.vote);
        assert_eq!(back.prev_log_id, h.prev_log_id);
        assert_eq!(back.entries, 2);
        assert!(matches!(split_header(&[]), Err(WireError::Empty)));
        assert!(matches!(
            decode::<AppendHeader>(b"{"),
            Err(WireError::Json(_))
        ));

        let resp = VoteResponse::new(Vote::new(4, 2), None, true);
        let ok: Result<VoteResponse<NodeId>, RaftError<NodeId>> = Ok(resp.clone());
        let back: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
            serde_json::from_slice(&reply(&ok)).unwrap();
        assert_eq!(back.unwrap(), resp);
        let stopped: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
            Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        let back: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
            serde_json::from_slice(&reply(&stopped)).unwrap();
        assert!(matches!(
            back,
            Err(RaftError::Fatal(openraft::error::Fatal::Stopped))
        ));

        let err: Result<JoinReply, MembershipError> = Err(MembershipError::NotLeader {
            leader: Some(LeaderHint {
                id: 9,
                node: KuraNode {
                    name: "n9".into(),
                    api_addr: "https://a:8200".into(),
                    cluster_addr: "https://a:8201".into(),
                },
            }),
        });
        let back: Result<JoinReply, MembershipError> =
            serde_json::from_slice(&reply(&err)).unwrap();
        assert_eq!(back, err);
        assert!(back.unwrap_err().to_string().contains("n9@https://a:8201"));
    }
}
