//! Strategy traits: the pluggable decisions of a hub.
//!
//! Strategies are pure: they see data the node hands them (the ring,
//! membership history, a seeded RNG) and answer with data the node acts on.
//! Implementations live in `hub-strategies`.

use std::fmt::Debug;
use std::time::Duration;

use rand_core::RngCore;

use crate::id::NodeId;
use crate::membership::HistoryEntry;
use crate::ring::{Ring, DEFAULT_VNODES};
use crate::spec::ChildSpec;
use crate::time::Time;

/// Decides which nodes own a child.
pub trait DistributionStrategy: Debug + Send {
    /// Name for logs and status output.
    fn name(&self) -> &'static str;

    /// Virtual nodes per member for the ring the node maintains.
    fn vnodes(&self) -> u32 {
        DEFAULT_VNODES
    }

    /// The `replicas` nodes that must run `spec`, primary first. Must be a
    /// pure function of its inputs so that every node agrees.
    fn owners(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Vec<NodeId>;

    /// Owners chosen for a new child at start time, stamped into its spec
    /// (see [`ChildSpec::with_nodes`]) so that every node agrees later;
    /// `None` leaves placement to [`DistributionStrategy::owners`].
    fn assign(&mut self, _ring: &Ring, _spec: &ChildSpec, _replicas: usize) -> Option<Vec<NodeId>> {
        None
    }

    /// The load-report protocol, for a strategy that places by load; `None`
    /// (the default): no reports are sent.
    fn load_reports(&mut self) -> Option<&mut dyn LoadReports> {
        None
    }

    /// Whether a new child can be placed at all; the start fails with
    /// [`crate::StartError::Placement`] and this message otherwise. Checked
    /// once, on the node the start is called on.
    fn validate(&self, _ring: &Ring, _spec: &ChildSpec, _replicas: usize) -> Result<(), String> {
        Ok(())
    }
}

/// A load-aware placement's side of the load-report protocol: every node
/// reports its share of the children to the leader (the lowest node id in
/// the ring), which answers everyone with its scoreboard.
pub trait LoadReports {
    /// How often each node reports its load.
    fn interval(&self) -> Duration;

    /// Leader: one node's load sample, in permille of all children.
    fn record_load(&mut self, node: &NodeId, permille: u32);

    /// Leader: the scoreboard to send, as capacity in permille per node.
    fn scoreboard(&self) -> Vec<(NodeId, u32)>;

    /// Every node: the leader's latest scoreboard.
    fn set_scoreboard(&mut self, board: Vec<(NodeId, u32)>);
}

/// Role of one replica of a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Serves calls.
    Active,
    /// Stands by.
    Passive,
}

/// Decides how many copies of each child run, and their roles.
pub trait RedundancyStrategy: Debug + Send {
    /// Name for logs and status output.
    fn name(&self) -> &'static str;

    /// Copies per child when `cluster_size` nodes are in the ring.
    fn replicas(&self, cluster_size: usize) -> usize;

    /// Role of the replica at `index` in the owners list.
    fn role(&self, index: usize) -> Role {
        if index == 0 {
            Role::Active
        } else {
            Role::Passive
        }
    }

    /// Whether a local instance is told when it takes `role` (at start and
    /// on every change).
    fn signals(&self, _role: Role) -> bool {
        false
    }
}

/// How a child moves from its old node to its new owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationMode {
    /// Stop the old instance, then start a fresh one on the new owner:
    /// never two copies at once.
    StopThenStart,
    /// Start the new instance first, then stop the old one.
    StartThenStop {
        /// Collect the old instance's state and restore it into the new one.
        handover: bool,
        /// The old copy stops at the latest after this.
        retention: Duration,
        /// Longest wait for a state snapshot on graceful shutdown.
        handover_data_wait: Duration,
        /// Per-child limit for the whole move.
        child_migration_timeout: Duration,
    },
}

impl MigrationMode {
    /// Name for logs and status output.
    pub fn name(&self) -> &'static str {
        match self {
            MigrationMode::StopThenStart => "cold_swap",
            MigrationMode::StartThenStop { .. } => "hot_swap",
        }
    }
}

/// Decides who hears about registry changes, and when.
pub trait SyncStrategy: Debug + Send {
    /// Name for logs and status output.
    fn name(&self) -> &'static str;

    /// Period of anti-entropy rounds.
    fn sync_interval(&self) -> Duration;

    /// Peers that get a local change at once. `peers` is sorted.
    fn change_targets(&mut self, peers: &[NodeId], rng: &mut dyn RngCore) -> Vec<NodeId>;

    /// Peers that get this node's digest in a periodic round. `me` lets a
    /// strategy restrict who initiates rounds.
    fn round_targets(
        &mut self,
        me: &NodeId,
        peers: &[NodeId],
        rng: &mut dyn RngCore,
    ) -> Vec<NodeId>;

    /// Epidemic mode: a node relays every change that is new to it to
    /// [`SyncStrategy::change_targets`] (a change it already had is not
    /// relayed, so rumours die out), and a digest is answered with every
    /// slice the answerer has newer, not only its own, plus a digest back
    /// when the asker is newer somewhere (push-pull). Off by default: the
    /// writer tells everyone itself.
    fn relays(&self) -> bool {
        false
    }
}

/// What a partition strategy sees.
#[derive(Clone, Copy, Debug)]
pub struct QuorumView<'a> {
    /// Current time.
    pub now: Time,
    /// Members in the ring, self included.
    pub visible: usize,
    /// Recent membership changes, oldest first.
    pub history: &'a std::collections::VecDeque<HistoryEntry>,
}

/// Decides when this node must stop acting because it lost quorum.
pub trait PartitionStrategy: Debug + Send {
    /// Name for logs and status output.
    fn name(&self) -> &'static str;

    /// Whether the node is cut off from its quorum.
    fn is_partitioned(&mut self, view: &QuorumView<'_>) -> bool;

    /// Whether a new node starts partitioned until the check passes (by
    /// default the check runs on membership changes only).
    fn check_at_start(&self) -> bool {
        false
    }
}

/// The strategies a node runs with.
#[derive(Debug)]
pub struct Strategies {
    /// Placement.
    pub distribution: Box<dyn DistributionStrategy>,
    /// Copies and roles.
    pub redundancy: Box<dyn RedundancyStrategy>,
    /// How children move (data: the node runs either mode itself).
    pub migration: MigrationMode,
    /// Registry sync.
    pub sync: Box<dyn SyncStrategy>,
    /// Partition handling.
    pub partition: Box<dyn PartitionStrategy>,
}
