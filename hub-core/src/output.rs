//! What the node asks its driver to do, and what the driver reports back
//! about local processes.

use std::sync::Arc;

use bytes::Bytes;

use crate::command::Reply;
use crate::error::StartError;
use crate::event::Event;
use crate::id::{ChildId, Handle, NodeId, RequestId};
use crate::protocol::Message;
use crate::spec::ChildSpec;

/// Why the node stops a local child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop command.
    Requested,
    /// It moves to another node.
    Migrated {
        /// The new owner.
        to: NodeId,
    },
    /// Another instance wins (after a partition heal or churn).
    Conflict,
    /// Rollback of a failed batch.
    RolledBack,
    /// The node lost quorum.
    Partitioned,
    /// The node is leaving and nobody can take the child.
    Shutdown,
    /// It restarts here at once from a newer crash-recovery snapshot than
    /// the one it was recovered from (another survivor held it).
    Recovering,
}

impl StopReason {
    /// The driver puts the instance's final state in its exit report: the
    /// child goes on from it, on its new owner ([`StopReason::Migrated`])
    /// or once this node may run it again ([`StopReason::Partitioned`]:
    /// quorum lost, or a strict-mode lease lapsed).
    pub fn keeps_state(&self) -> bool {
        matches!(self, StopReason::Migrated { .. } | StopReason::Partitioned)
    }
}

/// An action for the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Deliver `message` to node `to` (best effort: the core tolerates loss,
    /// duplication and reordering).
    Send {
        /// Recipient.
        to: NodeId,
        /// Message.
        message: Message,
    },
    /// Start a local instance; report [`LocalReport::Started`] or
    /// [`LocalReport::StartFailed`].
    Spawn {
        /// The child.
        spec: Arc<ChildSpec>,
        /// State to restore, when handed over.
        restore: Option<Bytes>,
    },
    /// Stop a local instance; report [`LocalReport::Exited`]. When the
    /// reason [keeps its state](StopReason::keeps_state), put the
    /// instance's final state in the report (the child goes on from it):
    /// stop it first, so that nothing it acknowledged is missing from that
    /// state.
    Stop {
        /// The child.
        id: ChildId,
        /// Why.
        reason: StopReason,
    },
    /// Snapshot a local instance's state for a handover and report it as
    /// [`LocalReport::State`]. From the snapshot on, the instance must not
    /// handle messages (so nothing it acknowledges is missing from the
    /// handed-over state) until it is stopped or [`Output::Resume`]d;
    /// callers meanwhile get a retryable "moving" answer.
    RequestState {
        /// The child.
        id: ChildId,
    },
    /// Tell a local instance its replica role (see
    /// [`crate::RedundancyStrategy::signals`]).
    Role {
        /// The child.
        id: ChildId,
        /// Its role on this node now.
        role: crate::strategy::Role,
    },
    /// The handover of a paused instance was abandoned: let it handle
    /// messages again.
    Resume {
        /// The child.
        id: ChildId,
    },
    /// The answer to a command.
    Reply {
        /// The command's id.
        request: RequestId,
        /// The answer.
        reply: Reply,
    },
    /// A hook event.
    Event(Event),
}

/// How a local child ended (after the driver's supervisor gave up
/// restarting it, or because the node asked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The node asked it to stop ([`Output::Stop`]).
    Stopped,
    /// It exited normally and its restart policy says not to restart.
    Normal,
    /// It crashed and its restart policy says not to restart.
    Crashed(String),
    /// It crashed more than `max_restarts` times in `max_seconds`.
    Failed(String),
}

/// What the driver's supervisor reports about local children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalReport {
    /// A spawned child is running.
    Started {
        /// Child.
        id: ChildId,
        /// Its handle.
        handle: Handle,
    },
    /// A spawn failed.
    StartFailed {
        /// Child.
        id: ChildId,
        /// Why.
        error: StartError,
    },
    /// The supervisor restarted a crashed child.
    Restarted {
        /// Child.
        id: ChildId,
        /// New handle.
        handle: Handle,
    },
    /// A child is gone for good.
    Exited {
        /// Child.
        id: ChildId,
        /// Why.
        reason: ExitReason,
        /// Its final state, when the stop was a move
        /// ([`StopReason::Migrated`]) and the process gave one.
        state: Option<Bytes>,
    },
    /// A periodic snapshot of a running child's state, taken by the
    /// driver per the kind's snapshot policy (every N messages and/or
    /// every interval) for crash recovery: the node replicates it to the
    /// child's ring successor, which restarts the child from the latest
    /// one if this node dies.
    Snapshot {
        /// Child.
        id: ChildId,
        /// Serialized state, as a handover would carry it.
        state: Bytes,
    },
    /// The state asked for by [`Output::RequestState`] (`None` if the
    /// process could not produce one).
    State {
        /// Child.
        id: ChildId,
        /// Serialized state.
        state: Option<Bytes>,
    },
}
