//! Replication: copies on distinct ring successors, exactly one active
//! replica in ActivePassive, repair after crashes, joins and leaves.

use hub_core::{ChildId, Event, NodeId, Role, StartOptions, Strategies};
use hub_strategies::{RedundancySignal, Replication, ReplicationModel};
use hub_testkit::{invariants, specs, Cluster, ClusterOptions};

fn replication(factor: usize, model: ReplicationModel) -> impl Fn() -> Strategies {
    move || {
        let mut s = hub_strategies::defaults();
        s.redundancy = Box::new(Replication {
            replication_factor: factor,
            model,
            signal: RedundancySignal::All,
        });
        s
    }
}

fn formed(n: usize, seed: u64, factor: usize) -> Cluster {
    let opts = ClusterOptions::new(n)
        .seed(seed)
        .strategies(replication(factor, ReplicationModel::ActivePassive));
    Cluster::formed(opts).unwrap()
}

fn check(c: &Cluster, children: usize, factor: usize) {
    invariants::check_all(c).unwrap();
    invariants::one_active(c).unwrap();
    let n = c.node(c.alive()[0]).unwrap();
    assert_eq!(n.count_children(), children);
    let copies: usize = c
        .alive()
        .iter()
        .map(|&i| c.runtime(i).running().count())
        .sum();
    assert_eq!(copies, children * factor.min(c.alive().len()));
}

#[test]
fn replicas_run_on_distinct_ring_successors_with_one_active() {
    let mut c = formed(4, 51, 2);
    let out = c.start(0, specs(300), StartOptions::awaited()).unwrap();
    assert!(out.is_ok(), "{:?}", out.failed.first());
    assert!(out.started.values().all(|h| h.len() == 2));
    assert!(c.settle());
    check(&c, 300, 2);
    // The active replica is the first owner; calls go there.
    let n = c.node(0).unwrap();
    for spec in specs(300) {
        let owners = n.placement(&spec);
        assert_eq!(owners, n.ring().owners(spec.id.as_str(), 2));
        assert_eq!(n.active_holder(spec.id.as_str()), Some(owners[0].clone()));
    }
}

#[test]
fn a_crash_promotes_a_passive_replica_and_restores_the_factor() {
    let mut c = formed(4, 52, 2);
    assert!(c
        .start(0, specs(300), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let victim = c.id(3);
    let was_active: Vec<ChildId> = c
        .runtime(3)
        .running()
        .map(|(id, _)| id.clone())
        .filter(|id| c.node(3).unwrap().local_role(id.as_str()) == Some(Role::Active))
        .collect();
    assert!(!was_active.is_empty());
    let before = c.events().len();
    c.crash(3);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    check(&c, 300, 2);
    // Each child that was active on the dead node is active elsewhere now,
    // and that replica was told.
    let promoted: Vec<(NodeId, ChildId)> = c.events()[before..]
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::RoleChanged {
                id,
                role: Role::Active,
            } => Some((n.clone(), id.clone())),
            _ => None,
        })
        .collect();
    for id in &was_active {
        assert!(
            promoted.iter().any(|(n, p)| p == id && *n != victim),
            "{id} was not promoted"
        );
    }
}

#[test]
fn joins_and_leaves_keep_the_factor_and_one_active_replica() {
    let mut c = formed(3, 53, 3);
    assert!(c
        .start(1, specs(200), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    check(&c, 200, 3);
    c.add_node();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    check(&c, 200, 3);
    c.leave(0).unwrap();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    check(&c, 200, 3);
    c.crash(1);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    check(&c, 200, 3);
}

#[test]
fn active_active_replicas_are_all_active() {
    let opts = ClusterOptions::new(3)
        .seed(54)
        .strategies(replication(2, ReplicationModel::ActiveActive));
    let mut c = Cluster::formed(opts).unwrap();
    assert!(c
        .start(0, specs(100), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    for i in 0..3 {
        for (id, _) in c.runtime(i).running() {
            assert_eq!(
                c.node(i).unwrap().local_role(id.as_str()),
                Some(Role::Active)
            );
        }
    }
}
