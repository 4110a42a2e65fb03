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

/// Where each registered child runs, as node 0 sees it.
async fn holders(c: &SimCluster) -> std::collections::BTreeMap<String, Vec<String>> {
    let views = c.views().await;
    views[0]
        .registry
        .iter()
        .map(|(id, at)| {
            (
                id.to_string(),
                at.iter().map(|(n, _)| n.to_string()).collect(),
            )
        })
        .collect()
}

/// `--distribution balanced`: children started right after the cluster
/// formed (before the first load report) are stamped with their node like
/// all others, so a join moves none of them.
#[madsim::test]
async fn balanced_children_started_before_any_load_report_stay_put_on_a_join() {
    let balanced = || {
        let mut s = hub_strategies::defaults();
        s.distribution = Box::new(hub_strategies::CentralizedLoadBalancer::default());
        s
    };
    let mut c = formed_with(SimOptions::new(3).customize(move |b| b.strategies(balanced()))).await;
    let ids = start_counters(&c, "b", 300).await;
    c.settle(QUIET).await.unwrap();
    let before = holders(&c).await;
    assert_eq!(before.len(), ids.len());
    c.add_node();
    c.settle(QUIET).await.unwrap();
    let after = holders(&c).await;
    let moved: Vec<&String> = ids
        .iter()
        .filter(|id| before.get(*id) != after.get(*id))
        .collect();
    assert!(
        moved.is_empty(),
        "{} of 300 moved on a join, e.g. {:?}",
        moved.len(),
        &moved[..moved.len().min(5)]
    );
}

/// Strict mode (quorum 2, so at most 3 nodes): a 4th node is refused and
/// stops with the reason; nothing that runs on the three stops or moves.
#[madsim::test]
async fn a_node_past_the_strict_cluster_size_is_refused_and_nothing_stops() {
    let opts = SimOptions::new(3)
        .customize(|b| b.configure(|c| c.strict = Some(hub_core::Strict::new(2))));
    let mut c = formed_with(opts).await;
    wait_granting(&c, "counter").await;
    let mut ids = start_counters(&c, "f", 100).await;
    ids.push("probe".into());
    c.settle(QUIET).await.unwrap();
    let before = holders(&c).await;
    let fourth = c.add_node();
    let mut refused = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(h) = c.hub(fourth) {
            if let Some(why) = h.stop_reason() {
                refused = Some(why);
                break;
            }
        }
    }
    let why = refused.expect("the fourth node was not refused");
    assert!(why.contains("cluster is full"), "{why}");
    c.kill(fourth);
    all_running(&c, &ids).await;
    assert_eq!(holders(&c).await, before, "something moved or stopped");
}

/// Strict mode (quorum 2 of 3): starts asked of a node cut off from the
/// others are refused (`NotGranted`), and a refused child never runs
/// later, not after the heal either.
#[madsim::test]
async fn a_start_refused_on_a_strict_minority_never_runs_later() {
    let opts = SimOptions::new(3)
        .customize(|b| b.configure(|c| c.strict = Some(hub_core::Strict::new(2))));
    let c = formed_with(opts).await;
    wait_granting(&c, "counter").await;
    c.partition(&[&[0], &[1, 2]]);
    // Until node 0 notices, its starts may still be forwarded; every
    // refusal is recorded.
    let opts = hub_core::StartOptions {
        timeout: Duration::from_secs(2),
        ..hub_core::StartOptions::awaited()
    };
    let mut refused = Vec::new();
    for k in 0..20 {
        let spec = hub_core::ChildSpec::new(format!("m{k}"), "counter");
        match c.hub(0).unwrap().start_child(spec, opts).await {
            Ok(_) => {}
            Err(e) => {
                let out = e.into_start_outcome().expect("a start outcome");
                let not_granted = out
                    .failed
                    .iter()
                    .all(|f| matches!(f.error, hub_core::StartError::NotGranted { .. }));
                if not_granted {
                    refused.push(format!("m{k}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(!refused.is_empty(), "no start was refused on the minority");
    c.heal();
    c.settle(QUIET).await.expect("quiet invariants");
    tokio::time::sleep(Duration::from_secs(10)).await;
    c.settle(QUIET).await.expect("quiet invariants");
    for v in c.views().await {
        for id in &refused {
            assert!(
                !v.registry.keys().any(|k| k.as_str() == id)
                    && !v.local.iter().any(|l| l.as_str() == id),
                "{id} was refused but {} has it",
                v.id
            );
        }
    }
}

/// A node restarted and shut down again before it has rejoined (it knows
/// no member yet: here it is cut off) holds children it started meanwhile,
/// the only copies. Its leave waits for a member to answer and hands them
/// over, instead of stopping them for good (found by the churn scenarios
/// once they stopped forgetting children after graceful leaves).
#[madsim::test]
async fn a_node_leaving_before_it_rejoined_hands_its_children_over() {
    use hub_core::{ChildSpec, StartOptions};
    let mut c = formed(3).await;
    let before = counters(&c, 30).await;
    c.kill(2);
    c.restart(2);
    c.partition(&[&[2], &[0, 1]]);
    let hub = loop {
        if let Some(h) = c.hub(2) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(hub.nodes().await.unwrap().len(), 1, "cut off: alone");
    let ids: Vec<String> = (0..20).map(|k| format!("alone-{k}")).collect();
    let specs = ids
        .iter()
        .map(|id| ChildSpec::new(id.as_str(), "counter"))
        .collect();
    hub.start_children(specs, StartOptions::awaited())
        .await
        .expect("started on the lone node");
    let heal_later = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.heal();
    };
    let (left, ()) = tokio::join!(hub.shutdown(), heal_later);
    left.expect("graceful leave");
    c.kill(2);
    let all: Vec<String> = before.into_iter().chain(ids).collect();
    all_running(&c, &all).await;
}

/// Every node gets SIGTERM at once (the whole cluster stops): no node is
/// left to take the children, so each leave ends promptly, well inside a
/// Kubernetes grace period, instead of waiting out the 60 s shutdown
/// timeout for handoffs between nodes that are all leaving.
#[madsim::test]
async fn a_whole_cluster_shut_down_together_leaves_promptly() {
    let mut c = formed(3).await;
    counters(&c, 60).await;
    let began = tokio::time::Instant::now();
    for r in c.shutdown_together(&[0, 1, 2]).await {
        r.expect("graceful leave");
    }
    let took = began.elapsed();
    assert!(took < Duration::from_secs(15), "the leaves took {took:?}");
}
