//! Requests from control clients (`hub ctl`, `hub status`) and their
//! answers. Clients authenticate with the same handshake and cookie as
//! nodes, with [`crate::handshake::Role::Client`].

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use hub_core::{ChildId, ChildSpec, Handle, NodeId};

use crate::error::CallError;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlRequest {
    /// The node's view of the hub.
    Status,
    /// Start children (awaited).
    Start {
        /// Specs.
        specs: Vec<ChildSpec>,
    },
    /// Stop children (awaited).
    Stop {
        /// Ids.
        ids: Vec<ChildId>,
    },
    /// Where a child runs.
    Lookup {
        /// Id.
        id: ChildId,
    },
    /// Children per node.
    Which {
        /// All nodes, or only this one.
        global: bool,
    },
    /// Children that wait to run.
    Waiting,
    /// The registered process kind of a child.
    Kind {
        /// Id.
        id: ChildId,
    },
    /// Call a child with a postcard-encoded message of its kind.
    Call {
        /// Child.
        id: ChildId,
        /// Encoded message.
        payload: Bytes,
        /// Milliseconds to wait.
        timeout_ms: u64,
    },
    /// Drain a node and take it out of the cluster (answered once it left).
    Decommission {
        /// The node.
        node: NodeId,
    },
    /// The node's status with its running totals (what the dashboard
    /// shows of each member).
    Report,
    /// What the node knows of one of its local children.
    ChildReport {
        /// Id.
        id: ChildId,
    },
}

/// Running totals of one node since it started (the counters behind
/// `/metrics`), for rates such as starts per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Children started here.
    pub started: u64,
    /// Restarts by this node's supervisor.
    pub restarted: u64,
    /// Children that failed for good here.
    pub failed: u64,
    /// Copies stopped here because another copy won.
    pub duplicates_resolved: u64,
    /// Children moved off this node by migrations.
    pub migrated: u64,
    /// Calls made through this node.
    pub calls: u64,
    /// Their summed latency, in seconds.
    pub call_seconds: f64,
    /// Strict mode: children granted to a claimant.
    pub strict_grants: u64,
    /// Strict mode: claims refused.
    pub strict_refusals: u64,
    /// Strict mode: children fenced when their lease lapsed.
    pub strict_fencings: u64,
    /// HotSwap moves acknowledged by the new owner.
    pub handovers: u64,
    /// HotSwap moves abandoned.
    pub handovers_abandoned: u64,
    /// Times this node lost quorum.
    pub partitions: u64,
}

/// A node's status and totals ([`CtlRequest::Report`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What `hub status` shows.
    pub status: Status,
    /// Whether the node runs strict single-instance mode.
    pub strict: bool,
    /// Since the node started.
    pub totals: Totals,
}

/// One local child as its node knows it ([`CtlRequest::ChildReport`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// Its replica role here (`None` while it starts or stops).
    pub role: Option<String>,
    /// Times this node's supervisor restarted it since it started here.
    pub restarts: u32,
}

/// One member as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: NodeId,
    /// Its advertised address.
    pub addr: String,
    /// `up`, `suspect`, `down`, `joining`, `leaving` or `left`.
    pub status: String,
}

/// A node's status report (`hub status --json` prints this).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Hub id.
    pub hub_id: String,
    /// This node.
    pub node_id: NodeId,
    /// Nodes in the ring, sorted.
    pub ring: Vec<NodeId>,
    /// Every other member.
    pub members: Vec<MemberStatus>,
    /// Open connections to other nodes (one per peer once deduplicated).
    pub connections: usize,
    /// Children registered in the hub.
    pub children: usize,
    /// Children running on this node.
    pub local_children: usize,
    /// Children this node knows of that run nowhere yet (see
    /// [`hub_core::Node::waiting_children`]).
    pub waiting: usize,
    /// Redistributing now.
    pub locked: bool,
    /// Lost quorum.
    pub partitioned: bool,
    /// No migration, handoff or orphan restart in flight on this node
    /// (exactly when `unsettled` is `None`).
    pub settled: bool,
    /// Why it is not settled.
    pub unsettled: Option<hub_core::Unsettled>,
}

/// A control answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CtlReply {
    /// For [`CtlRequest::Status`].
    Status(Status),
    /// For [`CtlRequest::Start`].
    Started {
        /// Where each started child runs.
        started: BTreeMap<ChildId, Vec<(NodeId, Handle)>>,
        /// Failures, rendered.
        failed: Vec<(ChildId, String)>,
    },
    /// For [`CtlRequest::Stop`].
    Stopped {
        /// Stopped ids.
        stopped: Vec<ChildId>,
        /// Failures, rendered.
        failed: Vec<(ChildId, String)>,
    },
    /// For [`CtlRequest::Lookup`]: its holders, and whether it waits to
    /// run (known here, running nowhere yet).
    Lookup(Vec<(NodeId, Handle)>, bool),
    /// For [`CtlRequest::Waiting`].
    Waiting(Vec<ChildId>),
    /// For [`CtlRequest::Kind`]: `None` if no such child is registered.
    Kind(Option<String>),
    /// For [`CtlRequest::Which`].
    Which(BTreeMap<NodeId, Vec<(ChildId, Handle)>>),
    /// For [`CtlRequest::Call`]: the encoded reply.
    Called(Result<Bytes, CallError>),
    /// For [`CtlRequest::Decommission`]: the node has left.
    Decommissioned(NodeId),
    /// For [`CtlRequest::Report`].
    Report(Box<Report>),
    /// For [`CtlRequest::ChildReport`]: `None` if it does not run here.
    ChildReport(Option<ChildReport>),
    /// The request was refused.
    Error(String),
}
