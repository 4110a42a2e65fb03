//! Planner: exact moves for joins and leaves.

use hub_core::{planner, ChildSpec, NodeId, Ring};
use hub_strategies::ConsistentHashing;
use proptest::prelude::*;

fn specs(n: usize) -> Vec<ChildSpec> {
    (0..n)
        .map(|i| ChildSpec::new(format!("c{i}"), "k"))
        .collect()
}

/// The same placement without the ring-position shortcut, so the planner
/// has to ask it about every child.
#[derive(Debug)]
struct Opaque;

impl hub_core::DistributionStrategy for Opaque {
    fn name(&self) -> &'static str {
        "opaque"
    }
    fn owners(&self, ring: &Ring, spec: &ChildSpec, n: usize) -> Vec<NodeId> {
        ring.owners(spec.id.as_str(), n)
    }
}

proptest! {
    #[test]
    fn the_arc_shortcut_plans_exactly_what_asking_every_child_plans(
        names in proptest::collection::btree_set("[a-z]{1,6}", 1..7),
        changes in proptest::collection::vec(("[a-z]{1,6}", any::<bool>()), 1..4),
        vnodes in 1u32..48,
        n in 1usize..300,
        k in 1usize..4,
    ) {
        let old = Ring::new(vnodes, names.iter().map(NodeId::new));
        let mut new = old.clone();
        for (name, join) in changes {
            if join { new.insert(NodeId::new(name)); } else { new.remove(&NodeId::new(name)); }
        }
        let specs = specs(n);
        let fast = planner::plan_ring_change(&old, &new, &specs, &ConsistentHashing::default(), k);
        let slow = planner::plan_ring_change(&old, &new, &specs, &Opaque, k);
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn a_join_plans_exactly_the_children_whose_owner_changed(
        names in proptest::collection::btree_set("[a-z]{1,6}", 1..6),
        n in 1usize..300,
    ) {
        let old = Ring::new(32, names.iter().map(NodeId::new));
        let mut new = old.clone();
        new.insert(NodeId::new("joiner"));
        let specs = specs(n);
        let plan = planner::plan_ring_change(&old, &new, &specs, &ConsistentHashing::default(), 1);
        let changed: Vec<_> = specs.iter().filter(|s| old.owner(s.id.as_str()) != new.owner(s.id.as_str())).collect();
        prop_assert_eq!(plan.move_count(), changed.len());
        for s in changed {
            let (from, to) = plan.move_of(&s.id).expect("planned");
            prop_assert_eq!(Some(from), old.owner(s.id.as_str()));
            prop_assert_eq!(to.as_str(), "joiner");
        }
        prop_assert!(plan.stops.is_empty() && plan.starts.is_empty());
    }

    #[test]
    fn replicated_plans_keep_the_surviving_copies(
        names in proptest::collection::btree_set("[a-z]{1,6}", 3..7),
        n in 1usize..200,
        k in 1usize..3,
    ) {
        let old = Ring::new(32, names.iter().map(NodeId::new));
        let leaver = old.nodes()[0].clone();
        let mut new = old.clone();
        new.remove(&leaver);
        let specs = specs(n);
        let plan = planner::plan_ring_change(&old, &new, &specs, &ConsistentHashing::default(), k);
        // Only the leaver's copies move; nothing is stopped or started fresh.
        for (from, to) in plan.moves.keys() {
            prop_assert_eq!(from, &leaver);
            prop_assert_ne!(to, &leaver);
        }
        prop_assert!(plan.stops.is_empty() && plan.starts.is_empty());
        let expected = specs.iter().filter(|s| old.owners(s.id.as_str(), k).contains(&leaver)).count();
        prop_assert_eq!(plan.move_count(), expected);
    }
}

#[test]
fn duplicates_become_stops_and_missing_copies_starts() {
    let ring = Ring::new(32, ["a", "b", "c"].map(NodeId::new));
    let spec = ChildSpec::new("x", "k");
    let owner = ring.owner("x").unwrap().clone();
    let others: Vec<NodeId> = ring
        .nodes()
        .iter()
        .filter(|n| **n != owner)
        .cloned()
        .collect();
    let holders = vec![owner.clone(), others[0].clone()];
    let plan = planner::plan(
        [(&spec, holders.as_slice())],
        &ring,
        &ConsistentHashing::default(),
        1,
    );
    assert_eq!(plan.stops.get(&others[0]).map(Vec::len), Some(1));
    assert!(plan.moves.is_empty());
    let none: Vec<NodeId> = vec![];
    let plan = planner::plan(
        [(&spec, none.as_slice())],
        &ring,
        &ConsistentHashing::default(),
        1,
    );
    assert_eq!(plan.starts.get(&owner).map(Vec::len), Some(1));
}
