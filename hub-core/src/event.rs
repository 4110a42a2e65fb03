//! Events (the SPEC's hooks), emitted as [`crate::Output::Event`].

use crate::id::{ChildId, Handle, NodeId};

/// Direction of a membership change that triggers redistribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A node joined.
    Up,
    /// A node left or went down.
    Down,
}

/// Something that happened on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A node joined this node's view (once per joiner and observer).
    ClusterJoin(NodeId),
    /// A node left this node's view (down or leaving).
    ClusterLeave(NodeId),
    /// A child's holders changed by gaining one.
    RegistryInserted {
        /// Child.
        id: ChildId,
        /// Holders now.
        owners: Vec<(NodeId, Handle)>,
    },
    /// A child's rows vanished from these nodes (stopped, moved, or the node
    /// died).
    RegistryRemoved {
        /// Child.
        id: ChildId,
        /// Nodes it was removed from.
        nodes: Vec<NodeId>,
    },
    /// Children of this node were handed to `to`.
    ChildMigrated {
        /// New node.
        to: NodeId,
        /// The children.
        children: Vec<ChildId>,
    },
    /// Starts this node does not own were forwarded to `node`.
    ForwardedMigration {
        /// Where they went.
        node: NodeId,
        /// The children.
        ids: Vec<ChildId>,
    },
    /// The node's queue priority changed (1 while redistributing, 0 after).
    PriorityStateUpdated {
        /// New level.
        level: u8,
    },
    /// Redistribution for a membership change begins.
    PreRedistribution {
        /// Join or leave.
        direction: Direction,
        /// The node that joined or left.
        node: NodeId,
    },
    /// Redistribution for a membership change is done.
    PostRedistribution {
        /// Join or leave.
        direction: Direction,
        /// The node that joined or left.
        node: NodeId,
    },
    /// A child started on this node.
    ChildStarted {
        /// Child.
        id: ChildId,
        /// Handle.
        handle: Handle,
    },
    /// A child was restarted by the local supervisor.
    ChildRestarted {
        /// Child.
        id: ChildId,
        /// New handle.
        handle: Handle,
    },
    /// A local replica took a new role (with a redundancy strategy that
    /// signals it).
    RoleChanged {
        /// Child.
        id: ChildId,
        /// Its role on this node now.
        role: crate::strategy::Role,
    },
    /// A child placed on named nodes (Guided, load balancer) lost them
    /// all: it was restarted here, on its ring owner, instead of dropped.
    PlacementFallback {
        /// Child.
        id: ChildId,
        /// The nodes its spec names.
        named: Vec<NodeId>,
    },
    /// A peer runs another mode (strict or divergence, or another strict
    /// quorum): this node ignores it until it restarts with the same one.
    PeerRefused {
        /// The peer.
        node: NodeId,
        /// Its strict quorum (`None`: divergence mode).
        theirs: Option<u32>,
        /// This node's.
        ours: Option<u32>,
    },
    /// A start was forwarded between nodes that disagree on its owner
    /// (their membership views differ) until the hop limit
    /// ([`crate::Config::forward_hop_limit`]); it failed with
    /// [`crate::StartError::HopLimit`] instead of looping.
    ForwardingLimit {
        /// Child.
        id: ChildId,
        /// The nodes the request passed through, this one last.
        path: Vec<NodeId>,
        /// Where this node would have sent it next (`None`: every owner it
        /// knows was already on the path).
        next: Option<NodeId>,
    },
    /// Copies of one child ran on several nodes (started on both sides of
    /// a partition, or across a membership change) and this node's copy
    /// lost: the ring owners' copy wins, this one is stopped with
    /// [`crate::StopReason::Conflict`].
    DuplicateResolved {
        /// Child.
        id: ChildId,
        /// The owners that keep running it.
        kept_on: Vec<NodeId>,
    },
    /// A child whose node died was restarted here from the latest
    /// snapshot its ring successor held, not from scratch.
    Recovered {
        /// Child.
        id: ChildId,
        /// The snapshot's sequence number (the recovery point).
        seq: u64,
    },
    /// A child failed for good and was removed.
    ChildFailed {
        /// Child.
        id: ChildId,
        /// Why.
        reason: String,
    },
    /// This node lost quorum: its children stopped, starts are refused.
    Partitioned,
    /// Quorum is back.
    QuorumRestored,
    /// This node has left the cluster.
    Shutdown {
        /// Why.
        reason: String,
    },
}

/// The kind of an [`Event`], without its data: what a hook is registered
/// for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// [`Event::ClusterJoin`].
    ClusterJoin,
    /// [`Event::ClusterLeave`].
    ClusterLeave,
    /// [`Event::RegistryInserted`].
    RegistryInserted,
    /// [`Event::RegistryRemoved`].
    RegistryRemoved,
    /// [`Event::ChildMigrated`].
    ChildMigrated,
    /// [`Event::ForwardedMigration`].
    ForwardedMigration,
    /// [`Event::PriorityStateUpdated`].
    PriorityStateUpdated,
    /// [`Event::PreRedistribution`].
    PreRedistribution,
    /// [`Event::PostRedistribution`].
    PostRedistribution,
    /// [`Event::ChildStarted`].
    ChildStarted,
    /// [`Event::ChildRestarted`].
    ChildRestarted,
    /// [`Event::RoleChanged`].
    RoleChanged,
    /// [`Event::PlacementFallback`].
    PlacementFallback,
    /// [`Event::PeerRefused`].
    PeerRefused,
    /// [`Event::ForwardingLimit`].
    ForwardingLimit,
    /// [`Event::DuplicateResolved`].
    DuplicateResolved,
    /// [`Event::Recovered`].
    Recovered,
    /// [`Event::ChildFailed`].
    ChildFailed,
    /// [`Event::Partitioned`].
    Partitioned,
    /// [`Event::QuorumRestored`].
    QuorumRestored,
    /// [`Event::Shutdown`].
    Shutdown,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 21] = [
        EventKind::ClusterJoin,
        EventKind::ClusterLeave,
        EventKind::RegistryInserted,
        EventKind::RegistryRemoved,
        EventKind::ChildMigrated,
        EventKind::ForwardedMigration,
        EventKind::PriorityStateUpdated,
        EventKind::PreRedistribution,
        EventKind::PostRedistribution,
        EventKind::ChildStarted,
        EventKind::ChildRestarted,
        EventKind::RoleChanged,
        EventKind::PlacementFallback,
        EventKind::PeerRefused,
        EventKind::ForwardingLimit,
        EventKind::DuplicateResolved,
        EventKind::Recovered,
        EventKind::ChildFailed,
        EventKind::Partitioned,
        EventKind::QuorumRestored,
        EventKind::Shutdown,
    ];
}

impl Event {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ClusterJoin(_) => EventKind::ClusterJoin,
            Event::ClusterLeave(_) => EventKind::ClusterLeave,
            Event::RegistryInserted { .. } => EventKind::RegistryInserted,
            Event::RegistryRemoved { .. } => EventKind::RegistryRemoved,
            Event::ChildMigrated { .. } => EventKind::ChildMigrated,
            Event::ForwardedMigration { .. } => EventKind::ForwardedMigration,
            Event::PriorityStateUpdated { .. } => EventKind::PriorityStateUpdated,
            Event::PreRedistribution { .. } => EventKind::PreRedistribution,
            Event::PostRedistribution { .. } => EventKind::PostRedistribution,
            Event::ChildStarted { .. } => EventKind::ChildStarted,
            Event::ChildRestarted { .. } => EventKind::ChildRestarted,
            Event::RoleChanged { .. } => EventKind::RoleChanged,
            Event::PlacementFallback { .. } => EventKind::PlacementFallback,
            Event::PeerRefused { .. } => EventKind::PeerRefused,
            Event::ForwardingLimit { .. } => EventKind::ForwardingLimit,
            Event::DuplicateResolved { .. } => EventKind::DuplicateResolved,
            Event::Recovered { .. } => EventKind::Recovered,
            Event::ChildFailed { .. } => EventKind::ChildFailed,
            Event::Partitioned => EventKind::Partitioned,
            Event::QuorumRestored => EventKind::QuorumRestored,
            Event::Shutdown { .. } => EventKind::Shutdown,
        }
    }
}
