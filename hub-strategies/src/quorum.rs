//! Partition tolerance by quorum: a node that cannot see enough of the
//! cluster stops its children and refuses starts until it can (the node's
//! partition mode; see `hub_core::PartitionStrategy`).

use std::collections::BTreeSet;
use std::time::Duration;

use hub_core::membership::Change;
use hub_core::{NodeId, PartitionStrategy, QuorumView, Time};

/// Partitioned while fewer than `quorum_size` members (self included) are
/// visible. With `startup_confirm`, a node also starts partitioned and
/// acts only once it sees a quorum; without (the default), the check runs
/// on membership changes only.
///
/// ```
/// use hub_strategies::StaticQuorum;
/// let q = StaticQuorum::new(3);
/// assert!(q.partitioned(2) && !q.partitioned(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticQuorum {
    /// Members needed (required; no default).
    pub quorum_size: usize,
    /// Check at start too (default false).
    pub startup_confirm: bool,
}

impl StaticQuorum {
    /// `quorum_size` members needed, without `startup_confirm`.
    pub fn new(quorum_size: usize) -> Self {
        StaticQuorum {
            quorum_size,
            startup_confirm: false,
        }
    }

    /// The decision for `visible` members.
    pub fn partitioned(&self, visible: usize) -> bool {
        visible < self.quorum_size
    }
}

impl PartitionStrategy for StaticQuorum {
    fn name(&self) -> &'static str {
        "static_quorum"
    }

    fn is_partitioned(&mut self, view: &QuorumView<'_>) -> bool {
        self.partitioned(view.visible)
    }

    fn check_at_start(&self) -> bool {
        self.startup_confirm
    }
}

/// Partitioned while fewer than a majority of the expected cluster are
/// visible: `visible < max_seen / 2 + 1`, where `max_seen` is the largest
/// cluster seen minus the members that left **gracefully** since (a
/// deliberate scale-down, e.g. `hub` nodes shut down one by one or all at
/// once, lowers the expectation; a crash or a partition does not).
/// [`MajorityQuorum::reset_cluster_size`] sets it outright.
///
/// Why this stays safe: a graceful leave is announced by the leaver itself
/// (its own `leaving` status), which a partition cannot fake, so the two
/// sides of a split still count each other as expected members.
///
/// ```
/// use hub_strategies::MajorityQuorum;
/// let q = MajorityQuorum::new(5);
/// assert_eq!(q.max_seen(), 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MajorityQuorum {
    /// Expected size at start (default 1).
    pub initial_cluster_size: usize,
    /// Raise `max_seen` when the cluster grows (default true).
    pub track_max_size: bool,
    max_seen: usize,
    /// Members whose graceful leave already lowered `max_seen` (a leaver
    /// shows up as `Leaving` and then `Left`; it counts once, until it
    /// joins again).
    departed: BTreeSet<NodeId>,
    /// History entries already applied: those before `applied_until`, and
    /// the first `applied_at_edge` at that instant (history is appended in
    /// time order, and older entries fall off its front).
    applied_until: Time,
    applied_at_edge: usize,
}

impl MajorityQuorum {
    /// With the SPEC's `track_max_size = true`.
    pub fn new(initial_cluster_size: usize) -> Self {
        MajorityQuorum {
            initial_cluster_size,
            track_max_size: true,
            max_seen: initial_cluster_size.max(1),
            departed: BTreeSet::new(),
            applied_until: Time::ZERO,
            applied_at_edge: 0,
        }
    }

    /// The cluster size this node counts a majority of.
    pub fn max_seen(&self) -> usize {
        self.max_seen
    }

    /// Sets the expected cluster size (e.g. after a deliberate scale-down).
    pub fn reset_cluster_size(&mut self, n: usize) {
        self.max_seen = n.max(1);
    }

    /// Applies the history entries not applied yet: graceful departures
    /// lower the expectation once each.
    fn apply_history(&mut self, view: &QuorumView<'_>) {
        let mut at_edge = 0;
        for h in view.history.iter() {
            if h.at < self.applied_until {
                continue;
            }
            if h.at == self.applied_until {
                at_edge += 1;
                if at_edge <= self.applied_at_edge {
                    continue;
                }
            } else {
                self.applied_until = h.at;
                at_edge = 1;
            }
            self.applied_at_edge = at_edge;
            match &h.change {
                Change::Leaving(n) | Change::Left(n) if self.departed.insert(n.clone()) => {
                    self.max_seen = self.max_seen.saturating_sub(1).max(1);
                }
                Change::Joined(n) => {
                    self.departed.remove(n);
                }
                _ => {}
            }
        }
    }
}

impl Default for MajorityQuorum {
    fn default() -> Self {
        Self::new(1)
    }
}

impl PartitionStrategy for MajorityQuorum {
    fn name(&self) -> &'static str {
        "majority_quorum"
    }

    /// A node expecting more than itself starts partitioned: alone (e.g.
    /// restarted before it has found its cluster) it is no majority, and
    /// running children then would run second copies.
    fn check_at_start(&self) -> bool {
        self.max_seen > 1
    }

    fn is_partitioned(&mut self, view: &QuorumView<'_>) -> bool {
        self.apply_history(view);
        if self.track_max_size {
            self.max_seen = self.max_seen.max(view.visible);
        }
        view.visible < self.max_seen / 2 + 1
    }
}

/// Partitioned while too many members were lost recently: members that went
/// down within the last `threshold_time` (and have not come back) count as
/// down; `remaining% = 100 - down * 100 / (visible + down)`; partitioned iff
/// `remaining% < quorum_size`. Members that left gracefully do not count, so
/// a slow scale-down never trips it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicQuorum {
    /// Percent of the recent cluster that must remain (required).
    pub quorum_size: u8,
    /// How long a loss counts (default 30 s).
    pub threshold_time: Duration,
}

impl DynamicQuorum {
    /// With the SPEC's default `threshold_time` of 30 s.
    pub fn new(quorum_size: u8) -> Self {
        DynamicQuorum {
            quorum_size,
            threshold_time: Duration::from_secs(30),
        }
    }

    /// Members lost within the threshold and not back since.
    pub fn recently_down(&self, view: &QuorumView<'_>) -> BTreeSet<NodeId> {
        let since = view.now - self.threshold_time;
        let mut down = BTreeSet::new();
        for h in view.history.iter() {
            match &h.change {
                Change::Down(n) if h.at >= since => {
                    down.insert(n.clone());
                }
                Change::Joined(n) | Change::Left(n) | Change::Leaving(n) => {
                    down.remove(n);
                }
                _ => {}
            }
        }
        down
    }
}

impl PartitionStrategy for DynamicQuorum {
    fn name(&self) -> &'static str {
        "dynamic_quorum"
    }

    fn is_partitioned(&mut self, view: &QuorumView<'_>) -> bool {
        let down = self.recently_down(view).len();
        let total = view.visible + down;
        let remaining = 100 - down * 100 / total.max(1);
        remaining < usize::from(self.quorum_size)
    }
}
