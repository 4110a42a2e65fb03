use hub_core::ring::DEFAULT_VNODES;
use hub_core::{ChildSpec, DistributionStrategy, NodeId, Ring};

/// Owners are the first distinct nodes clockwise from the child id's hash.
/// The answer for `k` copies is a prefix of the answer for `k + 1`; with
/// fewer nodes than `k`, every node.
///
/// ```
/// use hub_core::{ChildSpec, DistributionStrategy, NodeId, Ring};
/// use hub_strategies::ConsistentHashing;
/// let ring = Ring::new(128, ["a", "b"].map(NodeId::new));
/// let owners = ConsistentHashing::default().owners(&ring, &ChildSpec::new("c", "k"), 5);
/// assert_eq!(owners.len(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistentHashing {
    /// Virtual nodes per member (default 128).
    pub vnodes: u32,
}

impl Default for ConsistentHashing {
    fn default() -> Self {
        ConsistentHashing {
            vnodes: DEFAULT_VNODES,
        }
    }
}

impl DistributionStrategy for ConsistentHashing {
    fn name(&self) -> &'static str {
        "consistent_hashing"
    }

    fn vnodes(&self) -> u32 {
        self.vnodes
    }

    fn owners(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Vec<NodeId> {
        ring.owners(spec.id.as_str(), replicas)
    }
}
