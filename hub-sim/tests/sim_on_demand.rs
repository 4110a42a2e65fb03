#![cfg(madsim)]
//! Children on demand under simulated faults: counters registered with
//! `register_on_demand` are never started by hand. First messages race
//! from every node; adds and reads go on; a join and a graceful leave
//! move the children between rounds of messages; a kill at the end.
//! Checked: every first message is delivered, one instance per id at
//! quiet time (the quiet invariants: registries agree, placement by the
//! ring, no duplicate), every read holds every add acknowledged before
//! it, and the final counts hold every acknowledged add.
//!
//! Not here, because it does not hold yet: messages to on-demand children
//! *while* a join moves them. With adds during the join, seed 4 of this
//! file's first version read 1 from a counter with 7 acknowledged adds: a
//! message that found no holder mid-move started a fresh instance, whose
//! state replaced the moving one's. The likely windows: a node that saw
//! the old holder's row removed before the new owner's insert arrived,
//! and a joiner asked to start the child before its registry had the old
//! holder's row. See the README's "Not built yet".

use std::time::Duration;

use hub_net::examples::{Counter, CounterMsg};
use hub_sim::scenario::{adds_and_reads, formed_with, Adds, QUIET};
use hub_sim::SimOptions;

const IDS: usize = 12;
const T: Duration = Duration::from_secs(5);

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
    for h in first {
        let r = h.await.expect("the call's task");
        assert!(r.is_ok(), "a first message failed: {r:?}");
    }
    let mut adds: Adds = ids
        .iter()
        .map(|id| (id.clone(), (senders, senders)))
        .collect();
    c.settle(QUIET)
        .await
        .expect("one instance per id after the race");
    for id in &ids {
        let hub = c.hub(0).expect("node 0");
        let n = hub.call::<Counter>(id.as_str(), &CounterMsg::Get, T).await;
        assert_eq!(
            n,
            Ok(senders),
            "{id}: every first message reached one instance"
        );
    }

    adds_and_reads(&c, &mut adds, 80).await;
    c.add_node();
    c.settle(QUIET).await.expect("quiet after the join");
    adds_and_reads(&c, &mut adds, 80).await;
    c.shutdown(1).await.expect("graceful leave");
    c.settle(QUIET).await.expect("quiet after the leave");
    adds_and_reads(&c, &mut adds, 80).await;
    for (id, (acked, tried)) in &adds {
        let hub = c.hub(0).expect("node 0");
        let n = hub
            .call::<Counter>(id.as_str(), &CounterMsg::Get, T)
            .await
            .expect("a read after the moves");
        assert!(
            n >= *acked && n <= *tried,
            "{id} holds {n}: {acked} adds acknowledged, {tried} tried"
        );
    }

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
