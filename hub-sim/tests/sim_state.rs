#![cfg(madsim)]
//! A stateful child keeps every acknowledged message through joins,
//! graceful leaves and decommissions, whatever the migration strategy:
//! ColdSwap hands the stopped instance's final state over, HotSwap with
//! handover its paused snapshot.

use hub_core::Strategies;
use hub_net::examples::Counter;
use hub_net::SnapshotPolicy;
use hub_sim::scenario::{adds_and_reads, formed_with, start_counters, Adds, QUIET};
use hub_sim::SimOptions;

/// 40 counters through node 0; adds and reads from random nodes through
/// a join, a graceful leave under load, a decommission under load and
/// another join; every read holds every add acknowledged before it.
async fn adds_survive_membership_changes(opts: SimOptions) {
    let mut c = formed_with(opts).await;
    let ids = start_counters(&c, "h", 40).await;
    let mut adds: Adds = ids.into_iter().map(|id| (id, (0, 0))).collect();
    adds_and_reads(&c, &mut adds, 100).await;
    c.add_node();
    adds_and_reads(&c, &mut adds, 150).await;
    // A graceful leave while the adds go on.
    let leaver = c.hub(1).unwrap();
    let leaving = tokio::spawn(async move { leaver.shutdown().await });
    adds_and_reads(&c, &mut adds, 150).await;
    leaving.await.unwrap().expect("graceful leave");
    let _ = c.shutdown(1).await;
    // A decommission asked of node 0 while the adds go on.
    let (by, target) = (c.hub(0).unwrap(), c.hub(2).unwrap());
    let draining = tokio::spawn(async move { by.decommission(target.node_id().clone()).await });
    adds_and_reads(&c, &mut adds, 150).await;
    draining.await.unwrap().expect("decommission");
    let _ = c.shutdown(2).await;
    c.add_node();
    adds_and_reads(&c, &mut adds, 100).await;
    c.settle(QUIET).await.expect("quiet invariants");
    adds_and_reads(&c, &mut adds, 100).await;
    let acked: i64 = adds.values().map(|a| a.0).sum();
    assert!(acked > 300, "only {acked} adds acknowledged");
}

fn hot_swap_handover() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.migration = Box::new(hub_strategies::HotSwap::default().with_handover(true));
    s
}

#[madsim::test]
async fn hot_swap_handover_keeps_every_acknowledged_add_through_joins_and_leaves() {
    adds_survive_membership_changes(
        SimOptions::new(3).customize(|b| b.strategies(hot_swap_handover())),
    )
    .await;
}

#[madsim::test]
async fn the_default_cold_swap_keeps_every_acknowledged_add_through_joins_and_leaves() {
    adds_survive_membership_changes(SimOptions::new(3)).await;
}

#[madsim::test]
async fn cold_swap_with_crash_snapshots_keeps_every_acknowledged_add_through_joins_and_leaves() {
    adds_survive_membership_changes(
        SimOptions::new(3).customize(|b| {
            b.register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(1))
        }),
    )
    .await;
}
