//! Guided distribution: the caller names each child's node.

use hub_core::{ChildSpec, Event, NodeId, StartError, StartOptions, Strategies};
use hub_strategies::Guided;
use hub_testkit::{invariants, Cluster, ClusterOptions};

fn guided() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.distribution = Box::new(Guided);
    s
}

fn formed(n: usize, seed: u64) -> Cluster {
    Cluster::formed(ClusterOptions::new(n).seed(seed).strategies(guided)).unwrap()
}

fn on(node: &str, k: usize) -> ChildSpec {
    ChildSpec::new(format!("g{k}"), "counter").with_nodes([node])
}

fn holder(c: &Cluster, id: &str) -> NodeId {
    let h = c.node(c.alive()[0]).unwrap().child_lookup(id);
    assert_eq!(h.len(), 1, "{id}: {h:?}");
    h[0].0.clone()
}

#[test]
fn guided_children_run_on_the_named_node_and_stay_there_when_nodes_join() {
    let mut c = formed(3, 21);
    let specs: Vec<ChildSpec> = (0..90).map(|k| on(&format!("n{}", k % 3), k)).collect();
    assert!(c
        .start(0, specs.clone(), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    for (k, s) in specs.iter().enumerate() {
        assert_eq!(
            holder(&c, s.id.as_str()),
            NodeId::new(format!("n{}", k % 3))
        );
    }
    let joined = c.add_node();
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    assert_eq!(
        c.runtime(joined).running().count(),
        0,
        "guided children moved"
    );
}

#[test]
fn a_missing_malformed_mis_sized_or_foreign_mapping_is_a_placement_error() {
    let mut c = formed(2, 22);
    let bad = vec![
        ChildSpec::new("none", "counter"),
        ChildSpec::new("empty", "counter").with_nodes([""]),
        ChildSpec::new("two", "counter").with_nodes(["n0", "n1"]),
        ChildSpec::new("stranger", "counter").with_nodes(["n9"]),
    ];
    let out = c.start(0, bad, StartOptions::awaited()).unwrap();
    assert!(out.started.is_empty());
    let reason = |id: &str| {
        out.failed
            .iter()
            .find(|f| f.id.as_str() == id)
            .map(|f| f.error.clone())
            .unwrap_or_else(|| panic!("no failure for {id}"))
    };
    assert!(matches!(reason("none"), StartError::Placement(m) if m.contains("mapping")));
    assert!(matches!(reason("empty"), StartError::Placement(m) if m.contains("malformed")));
    assert!(matches!(reason("two"), StartError::Placement(m) if m.contains("replication factor")));
    assert!(
        matches!(reason("stranger"), StartError::Placement(m) if m.contains("n9 is not a member"))
    );
    assert!(c.settle());
    assert_eq!(c.node(1).unwrap().count_children(), 0);
}

#[test]
fn a_guided_child_whose_node_dies_restarts_on_the_ring_owner_and_goes_back() {
    let mut c = formed(3, 23);
    let specs: Vec<ChildSpec> = (0..30).map(|k| on("n2", k)).collect();
    assert!(c
        .start(0, specs.clone(), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let before = c.events().len();
    c.crash(2);
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    let fallbacks = c.events()[before..]
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::PlacementFallback { named, .. } if named == &[NodeId::new("n2")]))
        .count();
    assert_eq!(
        fallbacks,
        specs.len(),
        "one fallback event per re-placed child"
    );
    for s in &specs {
        let h = holder(&c, s.id.as_str());
        assert_ne!(h, NodeId::new("n2"));
        let ring = c.node(0).unwrap().ring();
        assert_eq!(Some(&h), ring.owner(s.id.as_str()));
    }
    c.restart(2);
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    for s in &specs {
        assert_eq!(holder(&c, s.id.as_str()), NodeId::new("n2"));
    }
}
