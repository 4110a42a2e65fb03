#![cfg(madsim)]
//! Where children run through churn: one active replica under
//! ActivePassive, placement constraints held.

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions};
use hub_sim::scenario::{churn, dump_trace, formed_with, heal_and_restart_all, seeded_rng, QUIET};
use hub_sim::{SimCluster, SimOptions, Workload};
use rand::Rng;

fn active_passive() -> hub_core::Strategies {
    use hub_strategies::{RedundancySignal, Replication, ReplicationModel};
    let mut s = hub_strategies::defaults();
    s.redundancy = Box::new(Replication {
        replication_factor: 2,
        model: ReplicationModel::ActivePassive,
        signal: RedundancySignal::All,
    });
    s
}

/// Whether the replicas are as ActivePassive promises: every live node up,
/// equal rings and registries, two holders per child, every node names the
/// same active replica, and exactly that replica holds the active role.
async fn replica_roles(c: &SimCluster) -> Result<(), String> {
    let alive = c.alive();
    let hubs: Vec<_> = alive.iter().filter_map(|&i| c.hub(i)).collect();
    if hubs.len() != alive.len() || hubs.is_empty() {
        return Err("a live node has no hub yet".into());
    }
    let e = |e: hub_net::HubError| e.to_string();
    let first = &hubs[0];
    let registry = first.registry_dump().await.map_err(e)?;
    let ring = first.nodes().await.map_err(e)?;
    for h in &hubs[1..] {
        if h.nodes().await.map_err(e)? != ring {
            return Err(format!("{} sees another ring", h.node_id()));
        }
        if h.registry_dump().await.map_err(e)? != registry {
            return Err(format!("{} has another registry", h.node_id()));
        }
    }
    let want = ring.len().min(2);
    for (id, holders) in &registry {
        if holders.len() != want {
            return Err(format!("{id} has {} replicas: {holders:?}", holders.len()));
        }
        let active = first.active_replica(id.clone()).await.map_err(e)?;
        let mut actives = Vec::new();
        for h in &hubs {
            if h.active_replica(id.clone()).await.map_err(e)? != active {
                return Err(format!(
                    "{} names another active replica of {id}",
                    h.node_id()
                ));
            }
            if h.local_role(id.clone()).await.map_err(e)? == Some(hub_core::Role::Active) {
                actives.push(h.node_id().clone());
            }
        }
        if actives.len() != 1 || Some(&actives[0]) != active.as_ref() {
            return Err(format!(
                "{id}: active role on {actives:?}, active replica {active:?}"
            ));
        }
    }
    Ok(())
}

#[madsim::test]
async fn active_passive_keeps_exactly_one_active_replica_through_churn() {
    let mut c = formed_with(SimOptions::new(4).customize(|b| b.strategies(active_passive()))).await;
    let mut w = Workload::default();
    churn(&mut c, &mut w, 10, 6, 6).await;
    // Quiet: the roles must settle to exactly one active replica each.
    let deadline = tokio::time::Instant::now() + QUIET;
    let mut verdict = replica_roles(&c).await;
    while let Err(reason) = &verdict {
        assert!(
            tokio::time::Instant::now() < deadline,
            "roles did not settle: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        verdict = replica_roles(&c).await;
    }
    let alive = c.alive();
    let hub = c.hub(alive[0]).expect("a live node");
    let registered = hub.registry_dump().await.expect("registry");
    assert!(!registered.is_empty(), "the workload started nothing");
    if let Err(e) = w.check_none_lost(&c).await {
        if let Some(id) = e.split('"').nth(1) {
            dump_trace(&c, id);
        }
        panic!("no acknowledged child lost: {e}");
    }
}

/// Placement affinity under kills, restarts and partitions: machines 0, 2,
/// 4 are zone a, 1, 3, 5 zone b. Children requiring zone a never run on
/// zone b, at any check; once everything is back, every child runs, the
/// required ones in zone a and the preferring ones in zone b.
#[madsim::test]
async fn placement_constraints_hold_through_churn() {
    let mut opts = SimOptions::new(6);
    for i in 0..6 {
        opts = opts.tag(i, "zone", if i % 2 == 0 { "a" } else { "b" });
    }
    let mut c = formed_with(opts).await;
    let mut specs = Vec::new();
    for k in 0..24 {
        specs.push(ChildSpec::new(format!("req{k}"), "counter").with_requirement("zone", "a"));
        specs.push(ChildSpec::new(format!("pref{k}"), "counter").with_preference("zone", "b"));
        specs.push(ChildSpec::new(format!("free{k}"), "counter"));
    }
    let out = c
        .hub(1)
        .unwrap()
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed);
    let zone = |i: usize| if i.is_multiple_of(2) { "a" } else { "b" };
    let mut rng = seeded_rng();
    for round in 0..10 {
        let alive = c.alive();
        match rng.random_range(0..4) {
            0 if alive.len() > 2 => c.kill(alive[rng.random_range(0..alive.len())]),
            1 => {
                if let Some(i) = (0..c.len()).find(|i| !alive.contains(i)) {
                    c.restart(i);
                }
            }
            2 => {
                let cut = rng.random_range(1..6);
                let (a, b): (Vec<usize>, Vec<usize>) = (0..6).partition(|&i| i < cut);
                c.partition(&[&a, &b]);
            }
            _ => c.heal(),
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        for i in c.alive() {
            let Some(hub) = c.hub(i) else { continue };
            let Ok(local) = hub.which_children(false).await else {
                continue;
            };
            for (id, _) in local.values().flatten() {
                assert!(
                    !(id.as_str().starts_with("req") && zone(i) == "b"),
                    "round {round}: {id} requires zone a but runs on n{i}"
                );
            }
        }
    }
    heal_and_restart_all(&mut c);
    c.settle(QUIET)
        .await
        .expect("settles with every machine back");
    let mut running = std::collections::BTreeMap::new();
    for i in 0..6 {
        let local = c.hub(i).unwrap().which_children(false).await.unwrap();
        for (id, _) in local.values().flatten() {
            running.insert(id.to_string(), i);
        }
    }
    assert_eq!(running.len(), 72, "every child runs once all are back");
    for (id, i) in &running {
        if id.starts_with("req") {
            assert_eq!(zone(*i), "a", "{id} on n{i}");
        }
        if id.starts_with("pref") {
            assert_eq!(zone(*i), "b", "{id} on n{i}");
        }
    }
}
