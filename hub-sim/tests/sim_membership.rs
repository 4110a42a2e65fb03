#![cfg(madsim)]
//! Membership changes the way operators make them: several nodes leaving
//! at once, each process exiting the moment its leave is done.

use std::time::Duration;

use hub_sim::scenario::{dump_trace, formed, formed_with, start_counters, wait_granting, QUIET};
use hub_sim::SimCluster;
use hub_sim::SimOptions;

/// Starts `n` counters through node 0 and waits for quiet.
async fn counters(c: &SimCluster, n: usize) -> Vec<String> {
    let ids = start_counters(c, "c", n).await;
    c.settle(QUIET).await.unwrap();
    ids
}

/// Every one of `ids` runs on exactly one live node, and every live node's
/// registry lists it.
async fn all_running(c: &SimCluster, ids: &[String]) {
    if let Err(e) = c.settle(QUIET).await {
        panic!("quiet invariants: {e}");
    }
    let views = c.views().await;
    for id in ids {
        let holders: Vec<_> = views
            .iter()
            .filter(|v| v.local.iter().any(|l| l.as_str() == id))
            .map(|v| v.id.clone())
            .collect();
        let unregistered: Vec<_> = views
            .iter()
            .filter(|v| !v.registry.keys().any(|k| k.as_str() == id))
            .map(|v| v.id.clone())
            .collect();
        if holders.len() != 1 || !unregistered.is_empty() {
            dump_trace(c, id);
            panic!("{id} runs on {holders:?}; missing from the registries of {unregistered:?}");
        }
    }
}

#[madsim::test]
async fn two_nodes_shut_down_together_keep_every_child() {
    let mut c = formed(5).await;
    let ids = counters(&c, 500).await;
    for r in c.shutdown_together(&[3, 4]).await {
        r.expect("graceful leave");
    }
    all_running(&c, &ids).await;
    assert_eq!(c.views().await.len(), 3);
}

#[madsim::test]
async fn two_nodes_decommissioned_together_keep_every_child() {
    let mut c = formed(5).await;
    let ids = counters(&c, 500).await;
    for r in c.decommission_together(&[(3, 0), (4, 1)]).await {
        if let Err(e) = r {
            for l in c.trace() {
                eprintln!("TRACE {l}");
            }
            for i in 0..5 {
                if let Some(h) = c.hub(i) {
                    let s = tokio::time::timeout(Duration::from_secs(1), h.status()).await;
                    eprintln!("STATUS n{i} {s:?}");
                }
            }
            panic!("decommission: {e}");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    all_running(&c, &ids).await;
}

/// Strict mode (quorum 2 of 3): a node's graceful leave hands its children
/// over in about a second, not after the 60 s shutdown timeout, and every
/// child runs once afterwards.
#[madsim::test]
async fn a_strict_graceful_leave_hands_over_promptly() {
    let opts = SimOptions::new(3)
        .customize(|b| b.configure(|c| c.strict = Some(hub_core::Strict::new(2))));
    let mut c = formed_with(opts).await;
    wait_granting(&c, "counter").await;
    let mut ids = start_counters(&c, "s", 200).await;
    ids.push("probe".into());
    c.settle(QUIET).await.unwrap();
    let t0 = tokio::time::Instant::now();
    for r in c.shutdown_together(&[2]).await {
        r.expect("graceful leave");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "the leave took {took:?}");
    all_running(&c, &ids).await;
}
