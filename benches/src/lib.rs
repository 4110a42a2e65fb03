//! Shared inputs for the benchmarks: ids, rings and registries of a given
//! size, built the same way for our code and for its floor.
#![deny(missing_docs)]

use hub_core::{ChildSpec, Handle, NodeId, Registry, Ring};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` node ids.
pub fn nodes(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| NodeId::new(format!("node-{i}"))).collect()
}

/// `n` child ids in a seeded random order.
pub fn child_ids(n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| format!("child-{:016x}", rng.random::<u64>()))
        .collect()
}

/// A ring of `n` nodes with `vnodes` each.
pub fn ring(n: usize, vnodes: u32) -> Ring {
    Ring::new(vnodes, nodes(n))
}

/// A registry with `ids` spread over the ring's nodes' slices.
pub fn registry(ids: &[String], ring: &Ring) -> Registry {
    let mut r = Registry::new();
    for (i, id) in ids.iter().enumerate() {
        let owner = ring.owner(id).cloned().unwrap_or_else(|| NodeId::new("x"));
        r.local_insert(
            &owner,
            1,
            ChildSpec::new(id.as_str(), "counter"),
            Handle(i as u64),
        );
    }
    r
}
