//! Ring properties: order independence, prefix owners, balance, minimal
//! movement.

use std::collections::BTreeMap;

use hub_core::{NodeId, Ring};
use proptest::prelude::*;

fn nodes(names: &[String]) -> Vec<NodeId> {
    names.iter().map(NodeId::new).collect()
}

proptest! {
    /// The arcs tile the circle in order, and an id's owner is the node
    /// of the arc its point falls in.
    #[test]
    fn arcs_tile_the_circle_and_name_each_ids_owner(
        names in proptest::collection::btree_set("[a-z]{1,6}", 1..6),
        vnodes in 1u32..40,
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 1..40),
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let ring = Ring::new(vnodes, nodes(&names));
        let arcs: Vec<(u64, u64, NodeId)> =
            ring.arcs().map(|(a, b, n)| (a, b, n.clone())).collect();
        prop_assert_eq!(arcs.len(), names.len() * vnodes as usize);
        for pair in arcs.windows(2) {
            prop_assert_eq!(pair[0].1, pair[1].0);
        }
        prop_assert_eq!(arcs[0].0, arcs[arcs.len() - 1].1);
        for id in &ids {
            let p = hub_core::ring::child_point(id);
            let arc = arcs
                .iter()
                .find(|(a, b, _)| a < b && *a < p && p <= *b)
                .or_else(|| arcs.iter().find(|(a, b, _)| a >= b))
                .or_else(|| arcs.first());
            let owner = ring.owner(id).cloned();
            prop_assert_eq!(arc.map(|x| x.2.clone()), owner);
        }
    }

    /// The filtered walk: every owner holds every requirement, owners that
    /// also hold every preference come first, both groups keep ring order,
    /// nothing matching is skipped, and no constraint means plain owners.
    #[test]
    fn constrained_owners_are_the_filtered_ring_walk(
        zones in proptest::collection::vec(0u8..3, 1..10),
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 1..30),
        require in proptest::option::of(0u8..3),
        prefer in proptest::option::of(0u8..3),
        n in 1usize..5,
    ) {
        let names: Vec<NodeId> = (0..zones.len()).map(|i| NodeId::new(format!("n{i}"))).collect();
        let mut ring = Ring::new(16, names.clone());
        for (node, z) in names.iter().zip(&zones) {
            ring.set_tags(node, [("zone".to_string(), format!("z{z}"))].into());
        }
        let zone = |node: &NodeId| ring.tags(node).and_then(|t| t.get("zone")).cloned();
        for id in &ids {
            let mut spec = hub_core::ChildSpec::new(id.as_str(), "k");
            if let Some(r) = require {
                spec = spec.with_requirement("zone", &format!("z{r}"));
            }
            if let Some(p) = prefer {
                spec = spec.with_preference("zone", &format!("z{p}"));
            }
            let got = ring.owners_for(&spec, n);
            let walk = ring.owners(id, names.len());
            let ok = |node: &NodeId, want: Option<u8>| want.is_none_or(|w| zone(node) == Some(format!("z{w}")));
            let matching: Vec<NodeId> = walk.iter().filter(|x| ok(x, require)).cloned().collect();
            prop_assert!(got.iter().all(|x| ok(x, require)));
            prop_assert_eq!(got.len(), n.min(matching.len()));
            let mut expected: Vec<NodeId> = matching.iter().filter(|x| ok(x, prefer)).cloned().collect();
            expected.extend(matching.iter().filter(|x| !ok(x, prefer)).cloned());
            expected.truncate(n);
            prop_assert_eq!(&got, &expected);
            if require.is_none() && prefer.is_none() {
                prop_assert_eq!(got, ring.owners(id, n));
            }
        }
    }

    #[test]
    fn same_members_in_any_order_give_the_same_owners(
        names in proptest::collection::btree_set("[a-z]{1,8}", 1..12),
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 1..50),
        shuffle_seed in any::<u64>(),
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let mut shuffled = names.clone();
        // Deterministic shuffle from the seed.
        let mut s = shuffle_seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let a = Ring::new(32, nodes(&names));
        let mut b = Ring::new(32, []);
        for n in nodes(&shuffled) {
            b.insert(n);
        }
        prop_assert_eq!(&a, &b);
        // Incremental removal equals a rebuild without the member.
        let gone = &names[shuffle_seed as usize % names.len()];
        let mut c = b.clone();
        prop_assert!(c.remove(&NodeId::new(gone)));
        let rest: Vec<String> = names.iter().filter(|n| *n != gone).cloned().collect();
        prop_assert_eq!(&c, &Ring::new(32, nodes(&rest)));
        for id in &ids {
            prop_assert_eq!(a.owners(id, 3), b.owners(id, 3));
        }
    }

    #[test]
    fn owners_for_k_are_a_prefix_of_owners_for_k_plus_one(
        names in proptest::collection::btree_set("[a-z]{1,8}", 1..10),
        id in "[a-z0-9]{1,12}",
        k in 0usize..12,
    ) {
        let ring = Ring::new(16, names.iter().map(NodeId::new));
        let small = ring.owners(&id, k);
        let big = ring.owners(&id, k + 1);
        prop_assert_eq!(&big[..small.len()], &small[..]);
        prop_assert_eq!(small.len(), k.min(names.len()));
        let mut dedup = big.clone();
        dedup.sort();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), big.len(), "owners must be distinct");
        prop_assert_eq!(ring.owner(&id), big.first());
    }

    #[test]
    fn a_join_moves_only_ids_that_the_joiner_now_owns(
        names in proptest::collection::btree_set("[a-z]{1,8}", 1..8),
        joiner in "[A-Z]{1,8}",
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 1..200),
    ) {
        let before = Ring::new(64, names.iter().map(NodeId::new));
        let mut after = before.clone();
        let joiner = NodeId::new(joiner);
        after.insert(joiner.clone());
        for id in &ids {
            let (old, new) = (before.owner(id), after.owner(id));
            if old != new {
                prop_assert_eq!(new, Some(&joiner));
            }
        }
    }

    #[test]
    fn a_leave_moves_only_the_leavers_ids(
        names in proptest::collection::btree_set("[a-z]{1,8}", 2..8),
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 1..200),
        pick in any::<prop::sample::Index>(),
    ) {
        let before = Ring::new(64, names.iter().map(NodeId::new));
        let leaver = before.nodes()[pick.index(before.len())].clone();
        let mut after = before.clone();
        prop_assert!(after.remove(&leaver));
        for id in &ids {
            if before.owner(id) != after.owner(id) {
                prop_assert_eq!(before.owner(id), Some(&leaver));
            }
        }
    }
}

#[test]
fn ten_nodes_share_a_hundred_thousand_ids_within_25_percent_of_the_mean() {
    let ring = Ring::new(128, (0..10).map(|i| NodeId::new(format!("node-{i}"))));
    let mut load: BTreeMap<NodeId, usize> = BTreeMap::new();
    for i in 0..100_000 {
        *load
            .entry(ring.owner(&format!("child-{i}")).unwrap().clone())
            .or_default() += 1;
    }
    assert_eq!(load.len(), 10);
    let max = *load.values().max().unwrap() as f64;
    let mean = 100_000.0 / 10.0;
    assert!(
        max <= 1.25 * mean,
        "max {max} > 1.25 x mean {mean}: {load:?}"
    );
}

#[test]
fn empty_ring_has_no_owner() {
    let ring = Ring::new(128, []);
    assert_eq!(ring.owner("x"), None);
    assert!(ring.owners("x", 3).is_empty());
}

#[test]
fn hash_is_stable_across_versions_and_platforms() {
    // Pinned values: if these change, every deployed hub would reshuffle.
    assert_eq!(
        hub_core::ring::child_point("child-1"),
        11_383_299_999_834_639_314
    );
    let ring = Ring::new(128, ["a", "b", "c"].map(NodeId::new));
    let owners: Vec<String> = (0..8)
        .map(|i| ring.owner(&format!("c{i}")).unwrap().to_string())
        .collect();
    assert_eq!(owners, PINNED_OWNERS);
}

const PINNED_OWNERS: [&str; 8] = ["a", "b", "c", "b", "b", "b", "a", "a"];
