use std::time::Duration;

use hub_core::{NodeId, SyncStrategy};
use rand_core::RngCore;

/// Every change goes to every peer at once; every `sync_interval` each node
/// sends every peer its digest, and peers answer with what it misses of
/// their own slice (repair).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PubSub {
    /// Period of repair rounds (default 15 s).
    pub sync_interval: Duration,
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            sync_interval: Duration::from_millis(15_000),
        }
    }
}

impl SyncStrategy for PubSub {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn sync_interval(&self) -> Duration {
        self.sync_interval
    }

    fn change_targets(&mut self, peers: &[NodeId], _rng: &mut dyn RngCore) -> Vec<NodeId> {
        peers.to_vec()
    }

    fn round_targets(
        &mut self,
        _me: &NodeId,
        peers: &[NodeId],
        _rng: &mut dyn RngCore,
    ) -> Vec<NodeId> {
        peers.to_vec()
    }
}
