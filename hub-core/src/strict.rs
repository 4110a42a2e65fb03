//! Options of strict single-instance mode (see [`Config::strict`]).
//!
//! [`Config::strict`]: crate::Config::strict

use std::time::Duration;

use crate::error::ConfigError;

/// Strict single-instance mode: a child id never runs on two nodes at once,
/// through partitions, crashes, restarts and membership churn. The cost is
/// availability: a child runs only where a quorum of nodes granted it and
/// keeps confirming it, and a crashed node's children restart only after
/// [`Strict::takeover_after`] instead of `down_after`.
///
/// The mechanism (majority-granted ownership plus leases, after Chubby and
/// Raft's leader leases) and the safety argument are documented on the
/// node's strict module; in short:
///
/// - before a node starts a child it asks every peer for a *grant*; a node
///   grants a child to at most one holder at a time, and the child starts
///   only with `quorum` grants (its own included);
/// - the holder keeps the child only while `quorum` of its granters (self
///   included) have echoed one of its heartbeats sent less than `lease`
///   ago (its own clock); otherwise it stops the child (*fences* it);
/// - a granter hands a child to another node only after the holder
///   released it, or after hearing nothing from the holder for
///   [`Strict::takeover_after`] = `lease × (1 + drift)² + margin`, and
///   from then on its echoes stop counting for the old grant;
/// - a node that starts (or restarts: it keeps no state) grants nothing for
///   [`Strict::takeover_after`], so a new cluster starts its first
///   children after that delay.
///
/// Assumptions: any two nodes' clocks advance at rates within a factor
/// `1 + max_drift_permille/1000` of each other (no synchronisation is
/// needed); a fenced child is gone within `margin` after its lease ran out
/// (the driver acts on the timer and the process stops); a node that
/// restarts comes back with a higher incarnation after its old processes
/// died; and `quorum` is a majority of the largest cluster: the cluster
/// never holds `2 × quorum` nodes.
///
/// ```
/// use std::time::Duration;
/// use hub_core::{Config, NodeId, Strict};
/// let mut cfg = Config::new("my-hub", NodeId::new("a"));
/// cfg.strict = Some(Strict::new(2)); // clusters of up to 3 nodes
/// assert!(cfg.validate().is_ok());
/// let s = cfg.strict.unwrap();
/// assert!(s.takeover_after() > s.lease);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strict {
    /// Grants a child needs to start and keep running, the holder's own
    /// included: a majority of the largest cluster.
    pub quorum: usize,
    /// How long an echoed heartbeat keeps a holder's children running
    /// (default 3 s; at least three heartbeat intervals).
    pub lease: Duration,
    /// Bound on the relative clock rate of two nodes, in thousandths
    /// (default 100, i.e. 10%).
    pub max_drift_permille: u32,
    /// Time allowed from a lease running out to the fenced process being
    /// gone: timer latency plus the process's stop (default 1 s).
    pub margin: Duration,
}

impl Strict {
    /// Strict mode needing `quorum` grants, with the default timings.
    pub fn new(quorum: usize) -> Self {
        Strict {
            quorum,
            lease: Duration::from_secs(3),
            max_drift_permille: 100,
            margin: Duration::from_secs(1),
        }
    }

    /// Silence after which a granter may give a holder's children to
    /// another node: `lease × (1 + drift)² + margin`.
    pub fn takeover_after(&self) -> Duration {
        let rate = 1000 + u128::from(self.max_drift_permille);
        let scaled = self.lease.as_micros() * rate * rate / 1_000_000;
        Duration::from_micros(u64::try_from(scaled).unwrap_or(u64::MAX)) + self.margin
    }

    /// Checks the options against the heartbeat period.
    pub fn validate(&self, heartbeat_interval: Duration) -> Result<(), ConfigError> {
        if self.quorum == 0 {
            return Err(ConfigError::Strict("quorum must be at least 1"));
        }
        if self.lease < heartbeat_interval * 3 {
            return Err(ConfigError::Strict(
                "lease must be at least three heartbeat intervals",
            ));
        }
        if self.max_drift_permille >= 1000 {
            return Err(ConfigError::Strict("max_drift_permille must be below 1000"));
        }
        Ok(())
    }
}
