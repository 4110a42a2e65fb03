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

/// Epidemic dissemination: a change goes to `recipients` random peers, and
/// every node that learns something new relays it to `recipients` random
/// peers in turn (a change already known is not relayed, which ends the
/// rumour). Every `sync_interval` a node pushes and pulls digests with
/// `recipients` random peers; with `restricted_init` only the first node
/// by sorted id starts rounds (the relays and answers carry the rest).
/// Converges in O(log N) relay hops.
///
/// ```
/// use hub_core::{NodeId, SyncStrategy};
/// use hub_strategies::Gossip;
/// use rand_core::SeedableRng;
/// let mut g = Gossip::default();
/// let peers: Vec<NodeId> = (0..8).map(|i| NodeId::new(format!("n{i}"))).collect();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// assert_eq!(g.change_targets(&peers, &mut rng).len(), 3);
/// assert!(g.round_targets(&NodeId::new("n9"), &peers, &mut rng).is_empty());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gossip {
    /// Period of digest rounds (default 15 s).
    pub sync_interval: Duration,
    /// Peers per relay and per round (default 3).
    pub recipients: usize,
    /// Only the first node by sorted id starts rounds (default true).
    pub restricted_init: bool,
}

impl Default for Gossip {
    fn default() -> Self {
        Gossip {
            sync_interval: Duration::from_millis(15_000),
            recipients: 3,
            restricted_init: true,
        }
    }
}

impl Gossip {
    fn pick(&self, peers: &[NodeId], rng: &mut dyn RngCore) -> Vec<NodeId> {
        // Partial Fisher-Yates over indices: `recipients` distinct peers.
        let mut idx: Vec<usize> = (0..peers.len()).collect();
        let k = self.recipients.min(peers.len());
        for i in 0..k {
            let j = i + (rng.next_u64() % (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx[..k].iter().map(|&i| peers[i].clone()).collect()
    }
}

impl SyncStrategy for Gossip {
    fn name(&self) -> &'static str {
        "gossip"
    }

    fn sync_interval(&self) -> Duration {
        self.sync_interval
    }

    fn change_targets(&mut self, peers: &[NodeId], rng: &mut dyn RngCore) -> Vec<NodeId> {
        self.pick(peers, rng)
    }

    fn round_targets(
        &mut self,
        me: &NodeId,
        peers: &[NodeId],
        rng: &mut dyn RngCore,
    ) -> Vec<NodeId> {
        if self.restricted_init && peers.iter().any(|p| p < me) {
            return Vec::new();
        }
        self.pick(peers, rng)
    }

    fn relays(&self) -> bool {
        true
    }
}
