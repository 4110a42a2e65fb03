//! The cluster scenarios over the in-memory testkit.

use std::collections::BTreeSet;

use hub_core::{ChildId, ChildSpec, Event, NodeId, OnFailure, StartError, StartOptions};
use hub_testkit::{invariants, specs, Cluster, ClusterOptions};

fn formed(nodes: usize, seed: u64) -> Cluster {
    Cluster::formed(ClusterOptions::new(nodes).seed(seed)).unwrap()
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

#[test]
fn a_fourth_node_joins_and_exactly_the_children_whose_ring_owner_changed_move() {
    let mut c = formed(3, 2);
    let all = specs(2_000);
    assert!(c
        .start(1, all.clone(), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let old_ring = c.node(0).unwrap().ring().clone();
    let before: Vec<(ChildId, NodeId)> = all
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                c.node(0).unwrap().child_lookup(s.id.as_str())[0].0.clone(),
            )
        })
        .collect();

    let d = c.add_node();
    assert!(c.settle(), "join did not settle");
    invariants::check_all(&c).unwrap();

    let new_ring = c.node(d).unwrap().ring().clone();
    assert_eq!(new_ring.len(), 4);
    // The oracle is the bare ring, not the node's code: a child moves
    // exactly when its first owner on the ring changed, and only to the
    // joiner.
    let planned: BTreeSet<ChildId> = all
        .iter()
        .filter(|s| old_ring.owner(s.id.as_str()) != new_ring.owner(s.id.as_str()))
        .map(|s| s.id.clone())
        .collect();
    assert!(!planned.is_empty());
    assert!(planned
        .iter()
        .all(|id| new_ring.owner(id.as_str()) == Some(&c.id(d))));
    let moved: BTreeSet<ChildId> = before
        .iter()
        .filter(|(id, old)| c.node(0).unwrap().child_lookup(id.as_str())[0].0 != *old)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        moved, planned,
        "moved children differ from the ring's answer"
    );
    // The old nodes report what they handed over.
    let migrated: usize = c
        .events()
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::ChildMigrated { to, children } if *to == c.id(d) => Some(children.len()),
            _ => None,
        })
        .sum();
    assert_eq!(migrated, planned.len());
    assert_eq!(c.runtime(d).running().count(), planned.len());
}

#[test]
fn a_crashed_nodes_children_restart_on_their_new_owners() {
    let mut c = formed(3, 3);
    let all = specs(1_000);
    let acked: Vec<ChildId> = c
        .start(0, all.clone(), StartOptions::awaited())
        .unwrap()
        .started
        .into_keys()
        .collect();
    assert_eq!(acked.len(), 1_000);
    assert!(c.settle());
    let victims = c.runtime(2).running().count();
    assert!(victims > 0);
    c.crash(2);
    assert!(c.settle(), "did not recover from the crash");
    invariants::check_all(&c).unwrap();
    invariants::none_lost(&c, &acked).unwrap();
    let survivors = c.runtime(0).running().count() + c.runtime(1).running().count();
    assert_eq!(survivors, 1_000);
    // Both survivors saw the leave and the removal of the dead node's rows.
    for i in [0, 1] {
        let me = c.id(i);
        let removed = c
            .events()
            .iter()
            .filter(|(_, n, e)| {
                *n == me
                    && matches!(e, Event::RegistryRemoved { nodes, .. } if nodes == &vec![c.id(2)])
            })
            .count();
        assert_eq!(removed, victims, "node {i} RegistryRemoved events");
        assert!(c
            .events()
            .iter()
            .any(|(_, n, e)| *n == me && *e == Event::ClusterLeave(c.id(2))));
    }
}

#[test]
fn a_restarted_node_gets_its_share_back() {
    let mut c = formed(3, 4);
    let acked: Vec<ChildId> = c
        .start(0, specs(600), StartOptions::awaited())
        .unwrap()
        .started
        .into_keys()
        .collect();
    assert!(c.settle());
    c.crash(1);
    assert!(c.settle());
    c.restart(1);
    assert!(c.settle(), "restart did not settle");
    invariants::check_all(&c).unwrap();
    invariants::none_lost(&c, &acked).unwrap();
    assert!(c.runtime(1).running().count() > 100);
}

#[test]
fn divergence_partition_then_heal_leaves_one_instance_per_child() {
    let mut c = formed(3, 5);
    let acked: Vec<ChildId> = c
        .start(0, specs(900), StartOptions::awaited())
        .unwrap()
        .started
        .into_keys()
        .collect();
    assert!(c.settle());
    c.partition(&[&[0, 1], &[2]]);
    assert!(c.settle(), "sides did not settle apart");
    // Divergence: each side runs every child.
    assert_eq!(c.runtime(2).running().count(), 900);
    assert_eq!(
        c.runtime(0).running().count() + c.runtime(1).running().count(),
        900
    );
    assert!(
        invariants::single_instance(&c).is_err(),
        "both sides run copies during the split"
    );
    c.heal();
    assert!(c.settle(), "heal did not settle");
    invariants::check_all(&c).unwrap();
    invariants::none_lost(&c, &acked).unwrap();
    let total: usize = (0..3).map(|i| c.runtime(i).running().count()).sum();
    assert_eq!(total, 900);
    // Every copy that lost says so, names the owner that kept the child,
    // and that owner is the one running it now.
    let resolved: Vec<_> = c
        .events()
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::DuplicateResolved { id, kept_on } => Some((n.clone(), id.clone(), kept_on)),
            _ => None,
        })
        .collect();
    assert!(!resolved.is_empty(), "no duplicate was resolved");
    for (loser, id, kept_on) in resolved {
        assert!(!kept_on.contains(&loser), "{id}: the loser {loser} kept it");
        let holders: Vec<NodeId> = c
            .node(0)
            .unwrap()
            .child_lookup(id.as_str())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(&holders, kept_on, "{id}: runs elsewhere than the winner");
    }
}

#[test]
fn check_existing_reports_already_started_and_restarts_nothing() {
    let mut c = formed(3, 6);
    let spec = ChildSpec::new("only", "counter");
    let first = c
        .start(0, vec![spec.clone()], StartOptions::awaited())
        .unwrap();
    let (node, handle) = first.started[&spec.id][0].clone();
    assert!(c.settle());
    // From another node: the owner decides, so the duplicate is caught.
    let again = c
        .start(2, vec![spec.clone()], StartOptions::awaited())
        .unwrap();
    assert!(again.started.is_empty());
    assert_eq!(again.failed.len(), 1);
    assert_eq!(
        again.failed[0].error,
        StartError::AlreadyStarted {
            node: node.clone(),
            handle
        }
    );
    assert!(c.settle());
    assert_eq!(
        c.node(1).unwrap().child_lookup("only"),
        vec![(node, handle)]
    );
}

#[test]
fn two_specs_with_one_id_in_a_batch_start_once() {
    let mut c = formed(2, 7);
    let spec = ChildSpec::new("twin", "counter");
    let out = c
        .start(0, vec![spec.clone(), spec.clone()], StartOptions::awaited())
        .unwrap();
    assert_eq!(out.started.len(), 1);
    assert_eq!(out.failed.len(), 1);
    assert!(matches!(
        out.failed[0].error,
        StartError::AlreadyStarted { .. }
    ));
}

#[test]
fn an_unknown_kind_is_a_clear_error_and_nothing_is_registered() {
    let mut c = formed(3, 8);
    let out = c
        .start(
            0,
            vec![ChildSpec::new("ghost", "no-such-kind")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert_eq!(out.failed.len(), 1);
    assert_eq!(
        out.failed[0].error,
        StartError::UnknownKind("no-such-kind".into())
    );
    assert!(c.settle());
    for i in 0..3 {
        assert_eq!(c.node(i).unwrap().count_children(), 0);
        assert_eq!(c.runtime(i).running().count(), 0);
    }
}

#[test]
fn rollback_stops_every_child_of_a_failed_batch() {
    let mut c = formed(3, 9);
    let mut batch = specs(30);
    batch.push(ChildSpec::new("bad", "failing"));
    let opts = StartOptions {
        on_failure: OnFailure::Rollback,
        ..StartOptions::awaited()
    };
    let out = c.start(1, batch, opts).unwrap();
    assert!(out.rolled_back);
    assert!(out.started.is_empty());
    assert!(out
        .failed
        .iter()
        .any(|f| f.id.as_str() == "bad" && matches!(f.error, StartError::InitFailed(_))));
    assert_eq!(
        out.failed
            .iter()
            .filter(|f| f.error == StartError::RolledBack)
            .count(),
        30
    );
    assert!(c.settle());
    for i in 0..3 {
        assert_eq!(
            c.node(i).unwrap().count_children(),
            0,
            "node {i} still lists children"
        );
        assert_eq!(c.runtime(i).running().count(), 0);
    }
}

#[test]
fn without_rollback_the_good_children_stay() {
    let mut c = formed(2, 10);
    let mut batch = specs(5);
    batch.push(ChildSpec::new("bad", "failing"));
    let out = c.start(0, batch, StartOptions::awaited()).unwrap();
    assert!(!out.rolled_back);
    assert_eq!(out.started.len(), 5);
    assert!(c.settle());
    assert_eq!(c.node(1).unwrap().count_children(), 5);
}

#[test]
fn nodes_seeded_with_one_node_learn_the_full_mesh() {
    let mut c = Cluster::new(ClusterOptions::new(8).seed(11).seeds(1));
    assert!(c.settle(), "no full mesh");
    for i in 0..8 {
        assert_eq!(c.node(i).unwrap().nodes().len(), 8, "node {i}");
    }
}
