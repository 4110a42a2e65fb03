//! What a node keeps per child: its local copy and why it starts or
//! stops, orphans waiting for an owner, and copies handed over but not
//! yet acknowledged.
use std::sync::Arc;

use bytes::Bytes;

use super::{snapshots, strict};
use crate::id::{Handle, NodeId};
use crate::protocol::OpRef;
use crate::spec::ChildSpec;
use crate::strategy::Role;
use crate::time::Time;

/// Why a local child is being started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum StartPurpose {
    /// A start request; answer these operations.
    Request(Vec<Waiter>),
    /// Its holder died; this node is its new owner.
    Orphan,
    /// Handed over by this node; acknowledge when running.
    Handoff(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Waiter {
    pub(super) op: OpRef,
    /// The request arrived while the child was already starting: answer
    /// `AlreadyStarted` rather than success.
    pub(super) duplicate: bool,
}

/// Why a local child is being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum StopPurpose {
    Requested,
    Migrate(NodeId),
    Conflict,
    Partition,
    Shutdown,
    /// The old copy of a start-then-stop move: the new owner runs it.
    Retire(NodeId),
    /// Restart here from a newer crash-recovery snapshot.
    Recover(Bytes, u64),
    /// Strict mode: its lease ran out.
    Fence,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LocalState {
    Starting(StartPurpose),
    Running(Handle),
    Stopping {
        handle: Handle,
        purpose: StopPurpose,
        waiters: Vec<OpRef>,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Local {
    pub(super) spec: Arc<ChildSpec>,
    pub(super) state: LocalState,
    /// The start operation that created it here, so that a re-sent request
    /// of that operation gets its result again, not `AlreadyStarted`.
    pub(super) started_by: Option<OpRef>,
    /// Its replica role here, once running.
    pub(super) role: Option<Role>,
    /// `Node::ring_epoch` when it began starting here.
    pub(super) epoch: u64,
    /// Its crash-recovery snapshots taken here.
    pub(super) snapshot: snapshots::Own,
    /// Restarted from a snapshot with this number: reported once running.
    pub(super) recovered: Option<u64>,
    /// Strict mode: its grants.
    pub(super) hold: strict::Hold,
}

/// Where a start begins: the state it restores, and that state's place
/// in the child's history.
#[derive(Clone, Debug, Default)]
pub(super) struct Restore {
    pub(super) state: Option<Bytes>,
    /// `state` is the crash-recovery snapshot with this number.
    pub(super) recovered: Option<u64>,
    /// Snapshots and handovers of the child so far (see
    /// [`Handoff::lineage`]): its own snapshots are numbered after it.
    pub(super) lineage: u64,
}

/// A child with no live holder: its node died or left without handing it
/// over. Every node keeps the spec until some node runs it again.
#[derive(Clone, Debug)]
pub(super) struct Orphan {
    pub(super) spec: Arc<ChildSpec>,
    /// Handed-over state it restarts from, if a handover carried one.
    pub(super) state: Option<Bytes>,
    /// Owner it was last handed to (not resent until the next sync round).
    pub(super) sent_to: Option<NodeId>,
    /// This node had the last copy (its own, or one it was handing over):
    /// another holder in the registry may be a stale row, so the orphan is
    /// not dropped for it; a duplicate, if any, is resolved like any other.
    pub(super) responsible: bool,
    /// `state` is the crash-recovery snapshot with this number.
    pub(super) recovered: Option<u64>,
    /// Snapshots taken of it so far (see [`Handoff::lineage`]).
    pub(super) lineage: u64,
    /// Strict mode: a claim of it failed; not tried again before this.
    pub(super) retry_at: Option<Time>,
    /// It was handed to this node by this sender, which keeps re-sending it
    /// until it runs here: told once it does.
    pub(super) handed_by: Option<NodeId>,
}

impl Orphan {
    pub(super) fn new(spec: Arc<ChildSpec>, state: Option<Bytes>, responsible: bool) -> Self {
        Orphan {
            spec,
            state,
            sent_to: None,
            responsible,
            recovered: None,
            handed_by: None,
            lineage: 0,
            retry_at: None,
        }
    }
}

/// A child this node stopped and handed over; kept until acknowledged.
#[derive(Clone, Debug)]
pub(super) struct Outbound {
    pub(super) spec: Arc<ChildSpec>,
    /// Handed-over state, re-sent with every retry.
    pub(super) state: Option<Bytes>,
    /// `state` is the crash-recovery snapshot with this number.
    pub(super) recovered: Option<u64>,
    /// Snapshots taken of it so far (see [`Handoff::lineage`]).
    pub(super) lineage: u64,
    pub(super) to: NodeId,
    /// Heartbeat ticks since it was last sent.
    pub(super) ticks: u32,
}
