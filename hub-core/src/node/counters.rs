//! Running totals of what a node decided, for metrics: they only grow, so
//! a scraper can take rates of them.

use std::time::Duration;

use super::Node;

/// Totals since the node started (see [`Node::counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Strict mode: children this node granted to a claimant (itself
    /// included).
    pub strict_grants: u64,
    /// Strict mode: claims this node refused (another holder, too young,
    /// too many nodes).
    pub strict_refusals: u64,
    /// Strict mode: local children stopped because their lease lapsed.
    pub strict_fencings: u64,
    /// Registry deltas sent to a peer whose digest showed it behind.
    pub registry_repairs: u64,
    /// Requests for deltas missing before ones that arrived early.
    pub registry_gap_requests: u64,
    /// Hot moves (HotSwap) acknowledged by the new owner.
    pub handovers: u64,
    /// Hot moves given up (refused, timed out, target gone): the old copy
    /// kept running.
    pub handovers_abandoned: u64,
    /// Sum of the acknowledged hot moves' durations, from the move's start
    /// to the new owner's acknowledgement.
    pub handover_time: Duration,
}

impl Node {
    /// What this node has decided so far, in totals.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}
