#![cfg(madsim)]
//! Children on demand under simulated faults: counters registered with
//! `register_on_demand` are never started by hand. First messages race
//! from every node; adds and reads go on through a join and a graceful
//! leave (messages *while* children move); a kill at the end. Checked:
//! every first message is delivered (or, its connection replaced after
//! it was sent, reported `Unanswered`, never hung or sent twice), one
//! instance per id at quiet time (the quiet invariants: registries agree,
//! placement by the ring, no duplicate), every read holds every add
//! acknowledged before it, and the final counts hold every acknowledged
//! add.
//!
//! Its first version found two defects, both fixed: a node that had just
//! joined started fresh copies of children whose rows it had not received
//! yet, replacing the moving copy's state (a counter read 1 after 7
//! acknowledged adds, seed 4); now a node starts a child on demand only
//! once its registry has caught up with every peer's heartbeat-announced
//! clock. And a call whose connection a newer duplicate connection
//! replaced waited its whole timeout (seed 90); now it is `Unanswered` at
//! once, as the README promises.

use std::time::Duration;

use hub_net::examples::{Counter, CounterMsg};
use hub_net::CallError;
use hub_sim::scenario::{adds_and_reads, formed_with, Adds, QUIET};
use hub_sim::SimOptions;

const IDS: usize = 12;

/// A read, asked again while its connection was replaced under it (a
/// read may be asked twice; an add may not).
async fn read(hub: &hub_net::Hub, id: &str) -> i64 {
    for _ in 0..5 {
        match hub.call::<Counter>(id, &CounterMsg::Get, T).await {
            Ok(n) => return n,
            Err(CallError::Unanswered(_)) => continue,
            Err(e) => panic!("a read of {id} failed: {e}"),
        }
    }
    panic!("five reads of {id} unanswered");
}
const T: Duration = Duration::from_secs(5);

/// Every counter, read through node 0, holds every add acknowledged and
/// none that was not tried.
async fn holds_every_acknowledged_add(c: &hub_sim::SimCluster, adds: &Adds, when: &str) {
    for (id, (acked, tried)) in adds {
        let n = read(&c.hub(0).expect("node 0"), id).await;
        assert!(
            n >= *acked && n <= *tried,
            "{when}: {id} holds {n}: {acked} adds acknowledged, {tried} tried"
        );
    }
}

#[madsim::test]
async fn on_demand_children_start_once_and_keep_every_acknowledged_add() {
    let opts =
        SimOptions::new(3).customize(|b| b.register_on_demand::<Counter>("counter", |_id| 0));
    let mut c = formed_with(opts).await;
    let ids: Vec<String> = (0..IDS).map(|i| format!("od{i}")).collect();

    // First messages to every id from every node at once.
    let mut first = Vec::new();
    for id in &ids {
        for i in c.alive() {
            let hub = c.hub(i).expect("a live node");
            let id = id.clone();
            first.push(tokio::spawn(async move {
                hub.call::<Counter>(id.as_str(), &CounterMsg::Add(1), T)
                    .await
            }));
        }
    }
    let senders = c.alive().len() as i64;
    let mut adds: Adds = ids.iter().map(|id| (id.clone(), (0, senders))).collect();
    for (k, h) in first.into_iter().enumerate() {
        let id = &ids[k / senders as usize];
        match h.await.expect("the call's task") {
            Ok(_) => adds.get_mut(id).expect("an id").0 += 1,
            // Its connection closed after it was sent (a duplicate
            // connection of the formation replaced): it may or may not
            // have been applied, and is never sent twice.
            Err(CallError::Unanswered(_)) => {}
            Err(e) => panic!("a first message to {id} failed: {e}"),
        }
    }
    c.settle(QUIET)
        .await
        .expect("one instance per id after the race");
    holds_every_acknowledged_add(&c, &adds, "after the race").await;

    adds_and_reads(&c, &mut adds, 80).await;
    c.add_node();
    adds_and_reads(&c, &mut adds, 80).await;
    let leaver = c.hub(1).expect("node 1");
    let leaving = tokio::spawn(async move { leaver.shutdown().await });
    adds_and_reads(&c, &mut adds, 80).await;
    leaving
        .await
        .expect("the leave's task")
        .expect("graceful leave");
    let _ = c.shutdown(1).await;
    c.settle(QUIET)
        .await
        .expect("quiet after the join and the leave");
    holds_every_acknowledged_add(&c, &adds, "after the join and the leave").await;

    // A kill: the dead node's counters restart on their new owners from
    // their arguments (no snapshots here), and messages reach them, one
    // instance each.
    c.kill(2);
    c.settle(QUIET).await.expect("quiet after the kill");
    for id in &ids {
        let hub = c.hub(0).expect("node 0");
        let r = hub
            .call::<Counter>(id.as_str(), &CounterMsg::Add(1), T)
            .await;
        assert!(r.is_ok(), "{id} after the kill: {r:?}");
    }
    c.settle(QUIET)
        .await
        .expect("one instance per id after the kill");
}
