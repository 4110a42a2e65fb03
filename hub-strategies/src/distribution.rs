use hub_core::ring::DEFAULT_VNODES;
use hub_core::{ChildSpec, DistributionStrategy, LoadReports, NodeId, Ring};

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
        ring.owners_for(spec, replicas)
    }

    /// Named nodes would be ignored here: refused rather than silently
    /// placed elsewhere.
    fn validate(&self, _ring: &Ring, spec: &ChildSpec, _replicas: usize) -> Result<(), String> {
        match spec.nodes() {
            Some(_) => Err(format!(
                "{} names nodes (ChildSpec::with_nodes, hub ctl start --nodes), but consistent hashing places children by id: choose the Guided distribution",
                spec.id
            )),
            None => Ok(()),
        }
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
        named_or_hashed(ring, spec, replicas)
    }

    fn validate(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Result<(), String> {
        let Some(nodes) = spec.nodes() else {
            return Err(format!(
                "Guided needs a node mapping for {} (ChildSpec::with_nodes, hub ctl start --nodes)",
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

/// The nodes named in the spec that are still members, then ring owners
/// up to `replicas` (a child is never left without a place, nor short of
/// copies because it was named while the cluster was smaller).
fn named_or_hashed(ring: &Ring, spec: &ChildSpec, replicas: usize) -> Vec<NodeId> {
    let mut owners: Vec<NodeId> = spec
        .nodes()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| ring.contains(n))
        .take(replicas)
        .collect();
    if owners.len() < replicas {
        for n in ring.owners_for(spec, replicas) {
            if owners.len() == replicas {
                break;
            }
            if !owners.contains(&n) {
                owners.push(n);
            }
        }
    }
    owners
}

/// Places new children on the least loaded nodes. Every `push_interval`
/// each node reports the share of all children it runs to the leader (the
/// lowest node id in the ring, so a new leader takes over when it leaves);
/// the leader keeps the last `max_history_size` samples per node, scores
/// each node by their average weighted by `weight_decay_factor` per sample
/// of age, and sends everyone the capacities `max(0.1, 1 - score)`. A batch
/// is split across nodes in proportion to capacity (smooth weighted round
/// robin, so the split is deterministic); the choice is stamped into each
/// spec, so children never move on a join. With no scoreboard yet (the
/// first `push_interval` after the cluster forms), ring hashing chooses
/// and that choice is stamped likewise. Children whose chosen node is gone
/// run on their ring owner.
///
/// ```
/// use hub_core::{ChildSpec, DistributionStrategy, LoadReports, NodeId, Ring};
/// use hub_strategies::CentralizedLoadBalancer;
/// let ring = Ring::new(128, ["a", "b"].map(NodeId::new));
/// let mut lb = CentralizedLoadBalancer::default();
/// // No scores yet: the ring owner, stamped like any other choice.
/// assert_eq!(lb.assign(&ring, &ChildSpec::new("c", "k"), 1), Some(ring.owners_for(&ChildSpec::new("c", "k"), 1)));
/// lb.record_load(&NodeId::new("a"), 900);
/// lb.record_load(&NodeId::new("b"), 100);
/// let board = lb.scoreboard();
/// lb.set_scoreboard(board);
/// let picks: Vec<_> = (0..10)
///     .map(|i| lb.assign(&ring, &ChildSpec::new(format!("c{i}"), "k"), 1).unwrap()[0].clone())
///     .collect();
/// let on_b = picks.iter().filter(|n| n.as_str() == "b").count();
/// assert!(on_b >= 8, "{picks:?}");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CentralizedLoadBalancer {
    /// Load report period (default 10 s).
    pub push_interval: std::time::Duration,
    /// Samples kept per node (default 30).
    pub max_history_size: usize,
    /// Weight of a sample one report older (default 0.9).
    pub weight_decay_factor: f64,
    history: std::collections::BTreeMap<NodeId, std::collections::VecDeque<u32>>,
    board: std::collections::BTreeMap<NodeId, u32>,
    credit: std::collections::BTreeMap<NodeId, i64>,
}

impl Default for CentralizedLoadBalancer {
    fn default() -> Self {
        CentralizedLoadBalancer::new(std::time::Duration::from_millis(10_000), 30, 0.9)
    }
}

impl CentralizedLoadBalancer {
    /// A balancer with the given options and no scores yet.
    pub fn new(push_interval: std::time::Duration, max_history_size: usize, decay: f64) -> Self {
        CentralizedLoadBalancer {
            push_interval,
            max_history_size: max_history_size.max(1),
            weight_decay_factor: decay,
            history: Default::default(),
            board: Default::default(),
            credit: Default::default(),
        }
    }

    fn capacity(&self, samples: &std::collections::VecDeque<u32>) -> u32 {
        let (mut sum, mut weights, mut w) = (0.0, 0.0, 1.0);
        for s in samples.iter().rev() {
            sum += w * f64::from(*s);
            weights += w;
            w *= self.weight_decay_factor;
        }
        let score = if weights > 0.0 { sum / weights } else { 0.0 };
        (1000.0 - score).clamp(100.0, 1000.0) as u32
    }
}

impl DistributionStrategy for CentralizedLoadBalancer {
    fn name(&self) -> &'static str {
        "centralized_load_balancer"
    }

    fn owners(&self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Vec<NodeId> {
        named_or_hashed(ring, spec, replicas)
    }

    fn assign(&mut self, ring: &Ring, spec: &ChildSpec, replicas: usize) -> Option<Vec<NodeId>> {
        if self.board.is_empty() {
            // Stamped too: an unstamped child would follow the ring and
            // move on the next join.
            let owners = ring.owners_for(spec, replicas);
            return (!owners.is_empty()).then_some(owners);
        }
        // A member without a score yet (e.g. just joined) counts as idle.
        let weights: Vec<(NodeId, i64)> = ring
            .nodes()
            .iter()
            .map(|n| (n.clone(), i64::from(*self.board.get(n).unwrap_or(&1000))))
            .collect();
        let total: i64 = weights.iter().map(|(_, w)| w).sum();
        let mut chosen: Vec<NodeId> = Vec::new();
        for _ in 0..replicas.min(weights.len()) {
            let mut best: Option<(&NodeId, i64)> = None;
            for (n, w) in &weights {
                if chosen.contains(n) {
                    continue;
                }
                let c = self.credit.entry(n.clone()).or_insert(0);
                *c += w;
                if best.is_none_or(|(_, b)| *c > b) {
                    best = Some((n, *c));
                }
            }
            let (n, _) = best?;
            if let Some(c) = self.credit.get_mut(n) {
                *c -= total;
            }
            chosen.push(n.clone());
        }
        Some(chosen)
    }

    fn load_reports(&mut self) -> Option<&mut dyn LoadReports> {
        Some(self)
    }
}

impl LoadReports for CentralizedLoadBalancer {
    fn interval(&self) -> std::time::Duration {
        self.push_interval
    }

    fn record_load(&mut self, node: &NodeId, permille: u32) {
        let h = self.history.entry(node.clone()).or_default();
        h.push_back(permille.min(1000));
        while h.len() > self.max_history_size {
            h.pop_front();
        }
    }

    fn scoreboard(&self) -> Vec<(NodeId, u32)> {
        self.history
            .iter()
            .map(|(n, h)| (n.clone(), self.capacity(h)))
            .collect()
    }

    fn set_scoreboard(&mut self, board: Vec<(NodeId, u32)>) {
        self.board = board
            .into_iter()
            .map(|(n, c)| (n, c.clamp(100, 1000)))
            .collect();
    }
}
