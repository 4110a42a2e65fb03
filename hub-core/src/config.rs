//! Node configuration, with the SPEC's defaults.

use std::time::Duration;

use crate::error::ConfigError;
use crate::id::{Incarnation, NodeId};
use crate::membership::Timings;
use crate::protocol::NodeInfo;

/// How a node runs. Build with [`Config::new`] and adjust the fields.
///
/// ```
/// use hub_core::{Config, NodeId};
/// let mut cfg = Config::new("my-hub", NodeId::new("a"));
/// cfg.addr = "127.0.0.1:7000".into();
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Hub id; nodes of different hubs never form a cluster.
    pub hub_id: String,
    /// This node's id, unique in the hub.
    pub node_id: NodeId,
    /// Address peers dial (opaque to the core; empty when not listening).
    pub addr: String,
    /// Bumped by the driver each time the node restarts with the same id
    /// (e.g. a persisted counter, or start-up wall-clock milliseconds).
    pub incarnation: Incarnation,
    /// Seed of the node's RNG (gossip peer choice). The core never reads
    /// global randomness.
    pub rng_seed: u64,
    /// Heartbeat period (default 500 ms).
    pub heartbeat_interval: Duration,
    /// Silence before a peer is suspect (default 1.5 s).
    pub suspect_after: Duration,
    /// Silence before a peer is down and its children restart elsewhere
    /// (default 3 s).
    pub down_after: Duration,
    /// Period of membership re-announcement (default 10 s).
    pub discover_interval: Duration,
    /// A redistribution lock lifts by itself after this (default 60 s).
    pub lock_timeout: Duration,
    /// Longest graceful leave before the node goes anyway (default 60 s).
    pub shutdown_timeout: Duration,
    /// This node was told of peers to join (hub-net sets it when seeds are
    /// given): a graceful leave that finds no other member (e.g. right
    /// after a restart, before the node has rejoined) waits up to
    /// `successor_wait` for one to hand its children to, instead of
    /// stopping them for good at once (default false).
    pub expect_peers: bool,
    /// See `expect_peers` (default 5 s).
    pub successor_wait: Duration,
    /// Most nodes a start may be forwarded through (default 3).
    pub forward_hop_limit: usize,
    /// This node's tags (e.g. `zone=a`), matched by children's placement
    /// constraints (default none).
    pub tags: crate::ring::Tags,
    /// Strict single-instance mode (default off: divergence mode, where
    /// both sides of a partition run the children and the ring owner's
    /// copy wins on heal). All nodes of a hub must agree on it.
    pub strict: Option<crate::strict::Strict>,
}

impl Config {
    /// A config with the default options.
    pub fn new(hub_id: impl Into<String>, node_id: NodeId) -> Self {
        Config {
            hub_id: hub_id.into(),
            node_id,
            addr: String::new(),
            incarnation: 1,
            rng_seed: 0,
            heartbeat_interval: Duration::from_millis(500),
            suspect_after: Duration::from_millis(1500),
            down_after: Duration::from_millis(3000),
            discover_interval: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
            expect_peers: false,
            successor_wait: Duration::from_secs(5),
            forward_hop_limit: 3,
            tags: Default::default(),
            strict: None,
        }
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hub_id.is_empty() {
            return Err(ConfigError::EmptyHubId);
        }
        if self.node_id.as_str().is_empty() {
            return Err(ConfigError::EmptyNodeId);
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Timing("heartbeat_interval must be positive"));
        }
        if self.suspect_after < self.heartbeat_interval || self.down_after < self.suspect_after {
            return Err(ConfigError::Timing(
                "need heartbeat_interval <= suspect_after <= down_after",
            ));
        }
        if self.discover_interval.is_zero() {
            return Err(ConfigError::Timing("discover_interval must be positive"));
        }
        if let Some(strict) = &self.strict {
            strict.validate(self.heartbeat_interval)?;
        }
        Ok(())
    }

    /// This node as peers see it.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            tags: self.tags.clone(),
            strict_quorum: self.strict_quorum(),
        }
    }

    /// The strict-mode quorum peers must match (`None`: divergence mode).
    pub fn strict_quorum(&self) -> Option<u32> {
        self.strict
            .map(|s| u32::try_from(s.quorum).unwrap_or(u32::MAX))
    }

    pub(crate) fn timings(&self) -> Timings {
        Timings {
            heartbeat_interval: self.heartbeat_interval,
            suspect_after: self.suspect_after,
            down_after: self.down_after,
        }
    }
}
