#![cfg(madsim)]
//! Children on demand under simulated faults: counters registered with
//! `register_on_demand` are never started by hand. First messages race
//! from every node; adds and reads go on through a join and a graceful
//! leave (messages *while* children move); a kill at the end. Checked:
//! every first message is delivered (or, its connection replaced after
//! it was sent, reported `Unanswered`, never hung or sent twice), one
//! instance per id at quiet time (the quiet invariants: registries agree,
//! placement by the ring, no duplicate), the history of every call
//! (invoke and answer in simulated time) is linearizable, and the final
//! counts hold every acknowledged add.
//!
//! Its first version found two defects, both fixed: a node that had just
//! joined started fresh copies of children whose rows it had not received
//! yet, replacing the moving copy's state (a counter read 1 after 7
//! acknowledged adds, seed 4); now a node starts a child on demand only
//! once its registry has caught up with every peer's heartbeat-announced
//! clock. And a call whose connection a newer duplicate connection
//! replaced waited its whole timeout (seed 90); now it is `Unanswered` at
//! once, as the README promises.

use hub_net::examples::Counter;
use hub_net::CallError;
use hub_sim::history::{check_final_counts, check_linearizable, CounterOp};
use hub_sim::scenario::{formed_with, seeded_rng, QUIET};
use hub_sim::{Clients, CounterKind, SimCluster, SimOptions};

const IDS: usize = 12;

/// Every counter, read through node 0, holds every add answered and none
/// that was not tried, and every call so far is linearizable.
async fn holds_every_acknowledged_add(c: &SimCluster, clients: &Clients, when: &str) {
    let finals = clients
        .read_all(&c.hub(0).expect("node 0"))
        .await
        .unwrap_or_else(|e| panic!("{when}: {e}"));
    let history = clients.history();
    if let Err(e) = check_final_counts(history.calls(), &finals, 0, |_| false) {
        panic!("{when}: {e}");
    }
    if let Err(e) = check_linearizable(history.calls(), 0) {
        panic!("{when}: {e}");
    }
}

#[madsim::test]
async fn on_demand_children_start_once_and_keep_every_acknowledged_add() {
    let opts =
        SimOptions::new(3).customize(|b| b.register_on_demand::<Counter>("counter", |_id| 0));
    let mut c = formed_with(opts).await;
    let ids: Vec<String> = (0..IDS).map(|i| format!("od{i}")).collect();
    let clients = Clients::new(ids.clone(), CounterKind::Counter);

    // First messages to every id from every node at once.
    let mut first = Vec::new();
    for id in &ids {
        for i in c.alive() {
            let hub = c.hub(i).expect("a live node");
            let (id, clients) = (id.clone(), clients.clone());
            first.push(tokio::spawn(async move {
                let r = clients.call(&hub, &id, CounterOp::Add(1)).await;
                (id, r)
            }));
        }
    }
    for h in first {
        match h.await.expect("the call's task") {
            (_, Ok(_)) => {}
            // Its connection closed after it was sent (a duplicate
            // connection of the formation replaced): it may or may not
            // have been applied, and is never sent twice.
            (_, Err(CallError::Unanswered(_))) => {}
            (id, Err(e)) => panic!("a first message to {id} failed: {e}"),
        }
    }
    c.settle(QUIET)
        .await
        .expect("one instance per id after the race");
    holds_every_acknowledged_add(&c, &clients, "after the race").await;

    let mut rng = seeded_rng();
    clients.run(&c, &mut rng, 20, 4).await;
    c.add_node();
    clients.run(&c, &mut rng, 20, 4).await;
    let leaver = c.hub(1).expect("node 1");
    let leaving = tokio::spawn(async move { leaver.shutdown().await });
    clients.run(&c, &mut rng, 20, 4).await;
    leaving
        .await
        .expect("the leave's task")
        .expect("graceful leave");
    let _ = c.shutdown(1).await;
    c.settle(QUIET)
        .await
        .expect("quiet after the join and the leave");
    holds_every_acknowledged_add(&c, &clients, "after the join and the leave").await;

    // A kill: the dead node's counters restart on their new owners from
    // their arguments (no snapshots here), and messages reach them, one
    // instance each.
    c.kill(2);
    c.settle(QUIET).await.expect("quiet after the kill");
    for id in &ids {
        let hub = c.hub(0).expect("node 0");
        let r = clients.call(&hub, id, CounterOp::Add(1)).await;
        assert!(r.is_ok(), "{id} after the kill: {r:?}");
    }
    c.settle(QUIET)
        .await
        .expect("one instance per id after the kill");
}
