//! The wire protocol: one versioned message enum, postcard-encoded.
//!
//! A frame body is `postcard(PROTOCOL_VERSION: u16) ++ postcard(Message)`.
//! Length-delimiting and the handshake are the transport's job; this module
//! turns bodies into messages and back, refusing anything larger than the
//! limit, of another version, malformed or with trailing bytes. Decoding
//! arbitrary bytes never panics, and allocation stays bounded by the frame
//! size: serde preallocates at most about 1 MiB whatever length a frame
//! declares, and every element must actually be present in the input.
//!
//! ```
//! use hub_core::protocol::{decode, encode, Message, DEFAULT_MAX_FRAME};
//! let beat = Message::Heartbeat { incarnation: 3, lease: None, clock: Default::default() };
//! let bytes = encode(&beat, DEFAULT_MAX_FRAME).unwrap();
//! assert_eq!(decode(&bytes, DEFAULT_MAX_FRAME).unwrap(), beat);
//! assert!(decode(&[0xff, 0xff, 0xff], DEFAULT_MAX_FRAME).is_err());
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, EncodeError, StartError, StopError};
use crate::id::{ChildId, Handle, Incarnation, NodeId};
use crate::registry::{SliceDelta, Version};
use crate::spec::ChildSpec;

/// Version written in every frame; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 6;
/// Default maximum frame size: 8 MiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// Who a node is and where it listens (the address is opaque to the core).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: NodeId,
    /// Address peers dial, e.g. `"127.0.0.1:7000"`; empty if not listening.
    pub addr: String,
    /// Incarnation of this run of the node.
    pub incarnation: Incarnation,
    /// Node tags (e.g. `zone=a`) for placement constraints.
    pub tags: crate::ring::Tags,
    /// The node's strict-mode quorum (`None`: divergence mode). Nodes that
    /// differ refuse each other: a mixed cluster would run two copies.
    pub strict_quorum: Option<u32>,
}

/// Names one in-flight start or stop operation cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpRef {
    /// Node that issued the command and collects the results.
    pub origin: NodeId,
    /// Origin-local sequence number.
    pub seq: u64,
}

/// A child handed from its old node to its new owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The child.
    pub spec: ChildSpec,
    /// The old instance's state, when the migration strategy hands it over.
    pub state: Option<Bytes>,
    /// An offer of a missing replica, not a move: refused by a node that
    /// just stopped the child on request (it may be a stop in progress).
    pub repair: bool,
    /// `state` is a crash-recovery snapshot with this sequence number (the
    /// child's holder died), not a handover.
    pub recovered: Option<u64>,
    /// Crash-recovery snapshots taken of the child before this handover:
    /// the new instance numbers its own after them, so that no older
    /// snapshot (still held by a former successor) ever replaces the
    /// handed-over state.
    pub lineage: u64,
}

/// Per-child results of a start on one node.
pub type StartResults = Vec<(ChildId, Result<Handle, StartError>)>;
/// Per-child results of a stop on one node.
pub type StopResults = Vec<(ChildId, Result<(), StopError>)>;

/// Every message nodes exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Sent on connect and every `discover_interval`: who I am and whom I
    /// know, so that the cluster becomes a full mesh.
    Hello {
        /// The sender.
        info: NodeInfo,
        /// Members the sender sees up.
        members: Vec<NodeInfo>,
        /// Members the sender lost and has not seen back, with how many ms
        /// ago: a joiner adopts the longer loss log (DynamicQuorum).
        losses: Vec<(NodeId, u64)>,
    },
    /// Liveness signal.
    Heartbeat {
        /// Sender's incarnation (a higher one means it restarted).
        incarnation: Incarnation,
        /// Strict mode's lease exchange (`None` otherwise).
        lease: Option<Beat>,
        /// The sender's own registry slice clock: a receiver whose
        /// registry is behind it knows rows are still on their way (see
        /// [`crate::Node::registry_caught_up`]).
        clock: crate::registry::Version,
    },
    /// The sender leaves gracefully: take it out of the ring now; it hands
    /// its children over before it sends [`Message::Left`].
    Leaving,
    /// The sender has handed everything over and is gone.
    Left,
    /// Registry changes of one slice.
    Delta(SliceDelta),
    /// The sender's registry clocks; answer with newer deltas of your slice.
    Digest(Vec<(NodeId, Version)>),
    /// Start these children (the receiver is, per the sender, an owner).
    StartRequest {
        /// The operation.
        op: OpRef,
        /// Specs to start.
        specs: Vec<ChildSpec>,
        /// Refuse ids that are already registered.
        check_existing: bool,
        /// Nodes the request passed through, origin first (hop limit).
        path: Vec<NodeId>,
    },
    /// Per-child results of a [`Message::StartRequest`].
    StartResult {
        /// The operation.
        op: OpRef,
        /// Per child: the handle, or why it failed.
        results: StartResults,
    },
    /// Stop these children if you run them.
    StopRequest {
        /// The operation.
        op: OpRef,
        /// Children to stop.
        ids: Vec<ChildId>,
    },
    /// Per-child results of a [`Message::StopRequest`].
    StopResult {
        /// The operation.
        op: OpRef,
        /// Per child: stopped, or why not.
        results: StopResults,
    },
    /// Children migrating to the receiver.
    Handoff {
        /// The children.
        children: Vec<Handoff>,
        /// The sender is leaving: apply its [`Message::Leaving`] first, in
        /// case this message overtook it.
        leaving: bool,
    },
    /// The receiver of a handoff runs these children (or already had them,
    /// or parked them while out of quorum).
    HandoffAck(Vec<ChildId>),
    /// The sender's load, in permille of all children (to the leader of a
    /// load-aware distribution strategy).
    Load(u32),
    /// The leader's scoreboard: capacity in permille per node.
    Scoreboard(Vec<(NodeId, u32)>),
    /// The receiver of a handoff could not start these children, and why.
    /// A start-then-stop sender keeps its old copy running.
    HandoffRefused(Vec<(ChildId, String)>),
    /// Leave gracefully now (an operator's decommission from the sender).
    Decommission,
    /// Does your registry hold all of these children? (An acknowledged
    /// start of the sender's, numbered `seq`.)
    HoldQuery {
        /// The sender's query number (random, so never reused).
        seq: u64,
        /// The children.
        ids: Vec<ChildId>,
    },
    /// The latest snapshot of a child the sender runs, for the receiver to
    /// keep in case the sender dies (the receiver is its ring successor).
    Snapshot {
        /// The child.
        id: ChildId,
        /// Snapshots of this instance so far (recovery point).
        seq: u64,
        /// Serialized state.
        state: Bytes,
    },
    /// Answer to [`Message::HoldQuery`].
    Holds {
        /// The operation number asked about.
        seq: u64,
        /// Whether every child of the query is in the registry.
        all: bool,
    },
    /// Strict mode: may the sender run these children? Answered with
    /// [`Message::Grants`].
    Claim {
        /// The sender's claim number (0: a refresh of running children).
        seq: u64,
        /// Sender's clock when sent, echoed in the answer (a lease
        /// renewal, like a heartbeat's).
        at: u64,
        /// Sender's incarnation: promises are to this run of it.
        incarnation: Incarnation,
        /// The children.
        ids: Vec<ChildId>,
    },
    /// Strict mode: answer to [`Message::Claim`].
    Grants(Grants),
    /// Strict mode: the sender no longer runs (nor claims) these children.
    Release(Vec<ChildId>),
    /// Strict mode: the sender keeps promises of these children to the
    /// receiver; the receiver releases those it neither runs nor claims.
    Promised(Vec<ChildId>),
}

/// Strict mode: a granter's answer to a [`Message::Claim`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// The claim number.
    pub seq: u64,
    /// The claim's `at`, echoed.
    pub at: u64,
    /// The claim's incarnation, echoed (an answer to an earlier run's
    /// claim is ignored).
    pub incarnation: Incarnation,
    /// The granter's term for the claimant: grants count only while the
    /// granter's echoes carry the same term.
    pub term: Term,
    /// Granted to the claimant.
    pub granted: Vec<ChildId>,
    /// Held by (or promised to) another node.
    pub refused: Vec<ChildId>,
}

/// Strict mode's part of a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// Sender's clock when sent (ms), for the receiver to echo.
    pub at: u64,
    /// The latest `at` the sender heard from the receiver, echoed.
    pub echo: Option<Echo>,
}

/// An echoed heartbeat: the receiver's own clock reading, returned with the
/// echoing node's term for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The echoed `at`.
    pub at: u64,
    /// The receiver's incarnation that sent `at` (a restarted node's clock
    /// starts afresh: an echo of its earlier run is ignored).
    pub incarnation: Incarnation,
    /// The echoing node's term for the receiver.
    pub term: Term,
}

/// A granter's term for one holder: it changes when the granter restarts
/// or gives that holder's children away after its silence, which voids
/// every earlier grant to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Term {
    /// The granter's incarnation.
    pub incarnation: Incarnation,
    /// How many times the granter revoked the holder.
    pub revoked: u64,
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    version: u16,
    message: &'a Message,
}

/// Encodes a message into a frame body no larger than `max_frame`.
pub fn encode(msg: &Message, max_frame: usize) -> Result<Vec<u8>, EncodeError> {
    let bytes = postcard::to_stdvec(&EnvelopeRef {
        version: PROTOCOL_VERSION,
        message: msg,
    })
    .map_err(|e| EncodeError::Serialize(e.to_string()))?;
    if bytes.len() > max_frame {
        return Err(EncodeError::TooLarge {
            size: bytes.len(),
            max: max_frame,
        });
    }
    Ok(bytes)
}

/// Decodes a frame body; any error means the connection must be closed.
pub fn decode(bytes: &[u8], max_frame: usize) -> Result<Message, DecodeError> {
    if bytes.len() > max_frame {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: max_frame,
        });
    }
    let (version, rest) = postcard::take_from_bytes::<u16>(bytes)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let (msg, rest) = postcard::take_from_bytes::<Message>(rest)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}
