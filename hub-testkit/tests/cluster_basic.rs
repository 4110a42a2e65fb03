//! The cluster scenarios over the in-memory testkit.

use std::collections::BTreeSet;

use hub_core::{planner, ChildId, ChildSpec, Event, NodeId, StartOptions};
use hub_strategies::ConsistentHashing;
use hub_testkit::{invariants, Cluster, ClusterOptions};

fn specs(n: usize) -> Vec<ChildSpec> {
    (0..n)
        .map(|i| ChildSpec::new(format!("child-{i}"), "counter"))
        .collect()
}

fn formed(nodes: usize, seed: u64) -> Cluster {
    let mut c = Cluster::new(ClusterOptions::new(nodes).seed(seed));
    assert!(c.settle(), "cluster of {nodes} did not form");
    c
}

#[test]
fn three_nodes_ten_thousand_children_land_on_their_ring_owner() {
    let mut c = formed(3, 1);
    let outcome = c.start(0, specs(10_000), StartOptions::awaited()).unwrap();
    assert!(
        outcome.is_ok(),
        "failures: {:?}",
        &outcome.failed[..outcome.failed.len().min(5)]
    );
    assert_eq!(outcome.started.len(), 10_000);
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    for i in 0..3 {
        assert_eq!(c.node(i).unwrap().count_children(), 10_000);
    }
    // Every child on its ring owner, checked independently of the node.
    let ring = c.node(0).unwrap().ring().clone();
    assert_eq!(ring.len(), 3);
    for spec in specs(10_000) {
        let holders = c.node(1).unwrap().child_lookup(spec.id.as_str());
        assert_eq!(holders.len(), 1);
        assert_eq!(Some(&holders[0].0), ring.owner(spec.id.as_str()));
    }
    // All three nodes got a share.
    for i in 0..3 {
        let n = c.runtime(i).running().count();
        assert!(n > 2_500, "node {i} runs only {n}");
    }
}
