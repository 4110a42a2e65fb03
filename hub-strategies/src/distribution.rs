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

/// The caller names the node(s) of each child with
/// [`ChildSpec::with_nodes`], primary first. A start fails with a
/// placement error when the mapping is missing, malformed, of another
/// length than the replication factor, or names a node that is not a
/// member. Guided children do not move when nodes join. When every named
/// node is gone they run on their ring owners instead (never dropped) and
/// go back once a named node returns.
///
/// ```
/// use hub_core::{ChildSpec, DistributionStrategy, NodeId, Ring};
/// use hub_strategies::Guided;
/// let ring = Ring::new(128, ["a", "b"].map(NodeId::new));
/// let spec = ChildSpec::new("c", "k").with_nodes(["b"]);
/// assert_eq!(Guided.owners(&ring, &spec, 1), vec![NodeId::new("b")]);
/// assert!(Guided.validate(&ring, &ChildSpec::new("c", "k").with_nodes(["z"]), 1).is_err());
/// assert!(Guided.validate(&ring, &ChildSpec::new("c", "k"), 1).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guided;

impl DistributionStrategy for Guided {
    fn name(&self) -> &'static str {
        "guided"
    }

    fn owners(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Vec<NodeId> {
        let named: Vec<NodeId> = spec
            .nodes()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| ring.contains(n))
            .take(replicas)
            .collect();
        if named.is_empty() {
            ring.owners(spec.id.as_str(), replicas)
        } else {
            named
        }
    }

    fn validate(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Result<(), String> {
        let Some(nodes) = spec.nodes() else {
            return Err(format!(
                "Guided needs a node mapping for {} (ChildSpec::with_nodes)",
                spec.id
            ));
        };
        if nodes.iter().any(|n| n.as_str().is_empty()) {
            return Err(format!("malformed node mapping for {}", spec.id));
        }
        if nodes.len() != replicas {
            return Err(format!(
                "{} names {} node(s) but the replication factor is {replicas}",
                spec.id,
                nodes.len()
            ));
        }
        match nodes.iter().find(|n| !ring.contains(n)) {
            Some(n) => Err(format!("node {n} is not a member")),
            None => Ok(()),
        }
    }
}
