//! Crash recovery over loopback TCP: counters snapshotted on every message
//! come back after their node is killed with the count the successor held.

mod common;

use std::time::Duration;

use hub_core::{ChildSpec, Event, StartOptions};
use hub_net::examples::{Counter, CounterMsg};
use hub_net::{Hub, SnapshotPolicy, StartupError};

use common::{eventually, node_built, wait_formed, COOKIE, HUB};

const CALL: Duration = Duration::from_secs(10);

async fn node(id: &str, seed: Option<&Hub>) -> Hub {
    node_built(id, seed, |b| {
        b.register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(1))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_counters_resume_from_the_replicated_snapshot() {
    let n0 = node("n0", None).await;
    let n1 = node("n1", Some(&n0)).await;
    let n2 = node("n2", Some(&n0)).await;
    let hubs = [n0, n1, n2];
    wait_formed(&hubs.iter().collect::<Vec<_>>(), 3).await;
    let specs: Vec<ChildSpec> = (0..30)
        .map(|i| ChildSpec::new(format!("s{i}"), "counter"))
        .collect();
    let out = hubs[0]
        .start_children(specs.clone(), StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok());
    // The children of n2, each added to a different number of times.
    let victims: Vec<(String, i64)> = out
        .started
        .iter()
        .filter(|(_, at)| at[0].0.as_str() == "n2")
        .enumerate()
        .map(|(k, (id, _))| (id.to_string(), k as i64 + 1))
        .collect();
    assert!(!victims.is_empty());
    for (id, adds) in &victims {
        for _ in 0..*adds {
            hubs[0]
                .call::<Counter>(id.as_str(), &CounterMsg::Add(1), CALL)
                .await
                .unwrap();
        }
    }
    // Wait until a survivor holds each child's latest snapshot (one per
    // message), so what a crash may lose is known.
    for (id, adds) in &victims {
        let replicated = eventually(Duration::from_secs(10), || async {
            for h in &hubs[..2] {
                if let Ok(Some((from, seq))) = h.stored_snapshot(id.as_str()).await {
                    if from.as_str() == "n2" && seq == *adds as u64 {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        assert!(replicated, "{id}: snapshot {adds} never reached a survivor");
    }
    let mut events = [hubs[0].subscribe(), hubs[1].subscribe()];
    hubs[2].abort();
    for (id, adds) in &victims {
        // Short calls: one routed to the dead node must not eat the wait.
        let back = eventually(Duration::from_secs(10), || async {
            hubs[0]
                .call::<Counter>(id.as_str(), &CounterMsg::Get, Duration::from_millis(300))
                .await
                .is_ok_and(|n| n == *adds)
        })
        .await;
        assert!(back, "{id} did not come back with its count {adds}");
    }
    let mut recovered = 0;
    for rx in &mut events {
        while let Ok(e) = rx.try_recv() {
            if matches!(e, Event::Recovered { .. }) {
                recovered += 1;
            }
        }
    }
    assert_eq!(recovered, victims.len());
    for h in &hubs[..2] {
        h.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_unusable_snapshot_policy_is_refused_at_start() {
    let r = Hub::builder(HUB)
        .node_id("bad")
        .cookie(COOKIE)
        .register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(0))
        .start()
        .await;
    assert!(
        matches!(r, Err(StartupError::SnapshotPolicy { ref kind, .. }) if kind == "counter"),
        "{r:?}"
    );
}

/// An interval policy snapshots a counter that handled messages; once a
/// snapshot taken after the last add reached a survivor, a kill loses
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_policy_snapshots_after_traffic() {
    let interval = || SnapshotPolicy::interval(Duration::from_millis(50));
    let n0 = node_built("i0", None, |b| {
        b.register_with_snapshots::<Counter>("counter", interval())
    })
    .await;
    let n1 = node_built("i1", Some(&n0), |b| {
        b.register_with_snapshots::<Counter>("counter", interval())
    })
    .await;
    wait_formed(&[&n0, &n1], 2).await;
    // A child that runs on i1, watched from i0.
    let specs: Vec<ChildSpec> = (0..20)
        .map(|i| ChildSpec::new(format!("t{i}"), "counter"))
        .collect();
    let out = n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    let id = out
        .started
        .iter()
        .find(|(_, at)| at[0].0.as_str() == "i1")
        .map(|(id, _)| id.clone())
        .expect("a child on i1");
    for _ in 0..5 {
        n0.call::<Counter>(id.as_str(), &CounterMsg::Add(1), CALL)
            .await
            .unwrap();
    }
    // Every snapshot taken after a `Get` was handled holds all five adds.
    let seen = |h: &Hub| {
        let h = h.clone();
        let id = id.clone();
        async move {
            h.stored_snapshot(id.as_str())
                .await
                .ok()
                .flatten()
                .map_or(0, |(_, seq)| seq)
        }
    };
    assert_eq!(
        n0.call::<Counter>(id.as_str(), &CounterMsg::Get, CALL)
            .await
            .unwrap(),
        5
    );
    let before = seen(&n0).await;
    let fresh = eventually(Duration::from_secs(10), || async {
        let _ = n0
            .call::<Counter>(id.as_str(), &CounterMsg::Get, CALL)
            .await;
        seen(&n0).await > before
    })
    .await;
    assert!(fresh, "no interval snapshot reached i0");
    n1.abort();
    let back = eventually(Duration::from_secs(10), || async {
        n0.call::<Counter>(id.as_str(), &CounterMsg::Get, Duration::from_millis(300))
            .await
            .is_ok_and(|n| n == 5)
    })
    .await;
    assert!(back, "{id} did not come back with its 5 adds");
    n0.shutdown().await.unwrap();
}
