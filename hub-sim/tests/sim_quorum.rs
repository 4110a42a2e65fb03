#![cfg(madsim)]
//! Quorum and strict mode under faults: a minority runs nothing, a
//! scale-down keeps a majority, strict mode never runs two copies.

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions};
use hub_sim::scenario::{
    dump_trace, formed_with, heal_and_restart_all, load, seeded_rng, verify, wait_granting, QUIET,
};
use hub_sim::{SimOptions, Workload};
use rand::Rng;

#[madsim::test]
async fn a_minority_outside_majority_quorum_runs_nothing_then_rejoins() {
    let majority = || {
        let mut s = hub_strategies::defaults();
        s.partition = Box::new(hub_strategies::MajorityQuorum::new(5));
        s
    };
    let c = formed_with(SimOptions::new(5).customize(move |b| b.strategies(majority()))).await;
    let mut w = Workload::default();
    load(&c, &mut w, 30).await;
    c.partition(&[&[0, 1, 2], &[3, 4]]);
    load(&c, &mut w, 20).await;
    // Checked at every step of the split, not only once quiet: as soon as
    // a minority node knows it lost quorum it runs nothing and refuses.
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in [3, 4] {
            let hub = c.hub(i).unwrap();
            if hub.is_partitioned().await.unwrap() {
                let local = hub.status().await.unwrap().local_children;
                assert_eq!(local, 0, "partitioned node {i} still runs {local} children");
            }
        }
    }
    for i in [3, 4] {
        assert!(
            c.hub(i).unwrap().is_partitioned().await.unwrap(),
            "node {i}"
        );
    }
    for i in [0, 1, 2] {
        assert!(
            !c.hub(i).unwrap().is_partitioned().await.unwrap(),
            "node {i}"
        );
    }
    load(&c, &mut w, 10).await;
    verify(&c, &mut w).await;
    for i in 0..5 {
        assert!(!c.hub(i).unwrap().is_partitioned().await.unwrap());
    }
}

#[madsim::test]
async fn a_scale_down_from_seven_to_three_by_leave_or_decommission_keeps_majority_quorum() {
    let majority = || {
        let mut s = hub_strategies::defaults();
        s.partition = Box::new(hub_strategies::MajorityQuorum::new(7));
        s
    };
    let mut c = formed_with(SimOptions::new(7).customize(move |b| b.strategies(majority()))).await;
    let mut w = Workload::default();
    load(&c, &mut w, 30).await;
    let mut rng = seeded_rng();
    // Four go: one by one or in overlapping pairs, under load, each by its
    // own graceful shutdown or decommissioned by a survivor; checked every
    // 100 ms meanwhile that no remaining node lost quorum.
    let mut leavers: Vec<usize> = (3..7).collect();
    while !leavers.is_empty() {
        let take = rng.random_range(1..=leavers.len().min(2));
        let now: Vec<usize> = leavers.drain(..take).collect();
        let mut going = Vec::new();
        for &i in &now {
            let hub = c.hub(i).unwrap();
            if rng.random_bool(0.5) {
                going.push(tokio::spawn(async move { hub.shutdown().await }));
            } else {
                let by = c.hub(rng.random_range(0..3)).unwrap();
                going.push(tokio::spawn(async move {
                    by.decommission(hub.node_id().clone()).await?;
                    hub.closed().await;
                    Ok(())
                }));
            }
        }
        load(&c, &mut w, 5).await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for i in 0..3 {
                assert!(
                    !c.hub(i).unwrap().is_partitioned().await.unwrap(),
                    "node {i} lost quorum while {now:?} left"
                );
            }
        }
        for g in going {
            g.await.unwrap().expect("graceful leave or decommission");
        }
        for i in now {
            let _ = c.shutdown(i).await;
        }
        // Nothing is forgotten: every leave was graceful, so every
        // acknowledged child must still run.
    }
    load(&c, &mut w, 10).await;
    verify(&c, &mut w).await;
    for i in 0..3 {
        assert!(
            !c.hub(i).unwrap().is_partitioned().await.unwrap(),
            "node {i}"
        );
    }
}

/// Strict mode (quorum 3 of 5) with drifting clocks (within the 10% bound),
/// partitions, one-way clogs, kills, graceful leaves, restarts, and starts
/// of the same ids
/// from both sides at once: the witness process records every instance's
/// start and end, so two copies are caught the moment the second starts.
#[madsim::test]
async fn strict_mode_never_runs_two_copies_through_partitions_kills_and_restarts() {
    use hub_sim::Witness;
    Witness::reset();
    let mut rng = seeded_rng();
    let mut opts = SimOptions::new(5)
        .customize(|b| b.configure(|c| c.strict = Some(hub_core::Strict::new(3))));
    for i in 0..5 {
        opts = opts.clock_rate(i, rng.random_range(0.96..1.04));
    }
    let mut c = formed_with(opts).await;
    let witness = |k: usize| ChildSpec::new(format!("x{k}"), "witness");
    let opts = StartOptions {
        timeout: Duration::from_secs(3),
        ..StartOptions::awaited()
    };
    wait_granting(&c, "witness").await;
    let out = c
        .hub(0)
        .unwrap()
        .start_children((0..60).map(witness).collect(), opts)
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed);
    let mut started: std::collections::BTreeSet<String> =
        (0..60).map(|k| format!("x{k}")).collect();
    let mut next = 60;
    for round in 0..14 {
        let alive = c.alive();
        match rng.random_range(0..7) {
            0 if alive.len() > 3 => c.kill(alive[rng.random_range(0..alive.len())]),
            1 => {
                if let Some(i) = (0..5).find(|i| !alive.contains(i)) {
                    c.restart(i);
                }
            }
            // A graceful leave (its children are handed over, stop first).
            6 if alive.len() > 3 => {
                let _ = c.shutdown(alive[rng.random_range(0..alive.len())]).await;
            }
            2 => {
                let cut = rng.random_range(1..5);
                let (a, b): (Vec<usize>, Vec<usize>) = (0..5).partition(|&i| i < cut);
                c.partition(&[&a, &b]);
            }
            3 => {
                let a = rng.random_range(0..5);
                c.clog(a, (a + rng.random_range(1..5)) % 5);
            }
            _ => c.heal(),
        }
        // The same new ids started from two nodes at once (they may
        // disagree on membership), and a stop.
        let alive = c.alive();
        let pick = rng.random_range(0..alive.len().max(1));
        let hubs = (alive.len() >= 2)
            .then(|| (c.hub(alive[pick]), c.hub(alive[(pick + 1) % alive.len()])));
        // A machine just restarted may not run its hub yet.
        if let Some((Some(ha), Some(hb))) = hubs {
            let specs: Vec<ChildSpec> = (next..next + 3).map(witness).collect();
            next += 3;
            let (ra, rb) = tokio::join!(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    ha.start_children(specs.clone(), opts)
                ),
                tokio::time::timeout(Duration::from_secs(5), hb.start_children(specs, opts)),
            );
            for r in [ra, rb].into_iter().flatten().flatten() {
                started.extend(r.started.into_keys().map(|id| id.to_string()));
            }
            if rng.random_bool(0.3) {
                if let Some(id) = started.iter().next().cloned() {
                    started.remove(&id);
                    let stop = hub_core::StopOptions {
                        timeout: Duration::from_secs(3),
                        ..hub_core::StopOptions::awaited()
                    };
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), ha.stop_child(id, stop)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..4000))).await;
        let seen = Witness::violations();
        assert!(seen.is_empty(), "round {round}: {seen:#?}");
    }
    heal_and_restart_all(&mut c);
    c.settle(QUIET)
        .await
        .expect("settles with every machine back");
    let seen = Witness::violations();
    if let Some(id) = seen.first().and_then(|v| v.split(' ').next()) {
        dump_trace(&c, id);
    }
    assert!(seen.is_empty(), "{seen:#?}");
    let registered = c.hub(0).unwrap().count_children().await.unwrap();
    for id in &started {
        let at = c.hub(0).unwrap().child_lookup(id.as_str()).unwrap();
        if at.len() != 1 {
            dump_trace(&c, id);
        }
        assert_eq!(at.len(), 1, "{id} acknowledged but runs on {at:?}");
    }
    assert_eq!(
        Witness::live(),
        registered,
        "every registered child runs once"
    );
}
