//! Migration planning: which children must move when placement changes.
//!
//! A plan compares where children are (their current holders) with where
//! the strategies want them; a child moves from each holder that is no
//! longer an owner to an owner that does not hold it yet. Holders and
//! owners are paired in order (sorted holders, owners in preference order),
//! so the plan is deterministic. Holders left without a partner are extra
//! copies to stop; owners left without one need a fresh start.
//!
//! ```
//! use hub_core::{planner, ChildSpec, NodeId, Ring};
//! # #[derive(Debug)] struct Hashing;
//! # impl hub_core::DistributionStrategy for Hashing {
//! #     fn name(&self) -> &'static str { "hashing" }
//! #     fn owners(&self, ring: &Ring, spec: &ChildSpec, n: usize) -> Vec<NodeId> {
//! #         ring.owners(spec.id.as_str(), n)
//! #     }
//! # }
//! let old = Ring::new(128, ["a", "b", "c"].map(NodeId::new));
//! let mut new = old.clone();
//! new.insert(NodeId::new("d"));
//! let specs: Vec<ChildSpec> = (0..100).map(|i| ChildSpec::new(format!("c{i}"), "echo")).collect();
//! let plan = planner::plan_ring_change(&old, &new, &specs, &Hashing, 1);
//! // Only moves to the joiner.
//! assert!(plan.moves.keys().all(|(_, to)| to.as_str() == "d"));
//! ```

use std::collections::BTreeMap;

use crate::id::{ChildId, NodeId};
use crate::ring::Ring;
use crate::spec::ChildSpec;
use crate::strategy::DistributionStrategy;

/// The moves, stops and starts that take children from where they are to
/// where they belong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Children to move, grouped by `(from, to)`, ids sorted.
    pub moves: BTreeMap<(NodeId, NodeId), Vec<ChildId>>,
    /// Extra copies to stop, by holder.
    pub stops: BTreeMap<NodeId, Vec<ChildId>>,
    /// Missing copies to start, by owner.
    pub starts: BTreeMap<NodeId, Vec<ChildId>>,
}

impl Plan {
    /// Number of child moves.
    pub fn move_count(&self) -> usize {
        self.moves.values().map(Vec::len).sum()
    }

    /// True when nothing needs to happen.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.stops.is_empty() && self.starts.is_empty()
    }

    /// Where `id` moves from this plan, if it moves: `(from, to)`.
    pub fn move_of(&self, id: &ChildId) -> Option<(&NodeId, &NodeId)> {
        self.moves
            .iter()
            .find(|(_, ids)| ids.binary_search(id).is_ok())
            .map(|((f, t), _)| (f, t))
    }
}

/// Plans the moves for `children`, each given with its current holders,
/// towards the placement `distribution` computes on `ring` with `replicas`
/// copies.
pub fn plan<'a>(
    children: impl IntoIterator<Item = (&'a ChildSpec, &'a [NodeId])>,
    ring: &Ring,
    distribution: &dyn DistributionStrategy,
    replicas: usize,
) -> Plan {
    let mut plan = Plan::default();
    for (spec, holders) in children {
        let owners = distribution.owners(ring, spec, replicas);
        let mut from: Vec<&NodeId> = holders.iter().filter(|h| !owners.contains(h)).collect();
        from.sort();
        from.dedup();
        let to: Vec<&NodeId> = owners.iter().filter(|o| !holders.contains(o)).collect();
        let pairs = from.len().min(to.len());
        for i in 0..pairs {
            plan.moves
                .entry((from[i].clone(), to[i].clone()))
                .or_default()
                .push(spec.id.clone());
        }
        for f in &from[pairs..] {
            plan.stops
                .entry((*f).clone())
                .or_default()
                .push(spec.id.clone());
        }
        for t in &to[pairs..] {
            plan.starts
                .entry((*t).clone())
                .or_default()
                .push(spec.id.clone());
        }
    }
    for ids in plan
        .moves
        .values_mut()
        .chain(plan.stops.values_mut())
        .chain(plan.starts.values_mut())
    {
        ids.sort_unstable();
    }
    plan
}

/// Plans a membership change: children placed by `old` move to where `new`
/// places them. Children the strategy places by ring position alone
/// ([`DistributionStrategy::ring_point`]) are skipped unless they hash
/// into an arc whose owners changed, so a join costs one hash and a small
/// binary search per unaffected child.
pub fn plan_ring_change(
    old: &Ring,
    new: &Ring,
    specs: &[ChildSpec],
    distribution: &dyn DistributionStrategy,
    replicas: usize,
) -> Plan {
    let arcs = old.changed_arcs(new, replicas);
    let affected: Vec<&ChildSpec> = specs
        .iter()
        .filter(|s| distribution.ring_point(s).is_none_or(|p| arcs.contains(p)))
        .collect();
    let holders: Vec<Vec<NodeId>> = affected
        .iter()
        .map(|s| distribution.owners(old, s, replicas))
        .collect();
    plan(
        affected.into_iter().zip(holders.iter().map(Vec::as_slice)),
        new,
        distribution,
        replicas,
    )
}
