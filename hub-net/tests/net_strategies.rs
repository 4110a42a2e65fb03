//! User-visible behaviour of the strategies over loopback TCP.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub_core::ring::DEFAULT_VNODES;
use hub_core::{ChildSpec, NodeId, Ring, StartOptions, Strategies};
use hub_net::examples::{Counter, CounterMsg};
use hub_net::Hub;
use hub_strategies::HotSwap;

use common::{node_with, wait_formed, wait_settled};

fn hot_swap() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.migration = HotSwap::default().with_handover(true).into();
    s
}

const CALL: Duration = Duration::from_secs(10);

async fn get(hub: &Hub, id: &str) -> i64 {
    hub.call::<Counter>(id, &CounterMsg::Get, CALL)
        .await
        .unwrap_or_else(|e| panic!("get {id}: {e}"))
}

/// Adds 1 to `id` through `hub` until told to stop; counts the
/// acknowledged adds and all attempts.
fn increment_in_background(
    hub: Hub,
    id: &'static str,
    acked: Arc<AtomicI64>,
    tried: Arc<AtomicI64>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            tried.fetch_add(1, Ordering::SeqCst);
            if hub
                .call::<Counter>(id, &CounterMsg::Add(1), CALL)
                .await
                .is_ok()
            {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_handover_keeps_counts_across_a_join_and_a_graceful_shutdown() {
    let n0 = node_with("n0", None, hot_swap()).await;
    let n1 = node_with("n1", Some(&n0), hot_swap()).await;
    wait_formed(&[&n0, &n1], 2).await;
    const N: i64 = 40;
    let specs: Vec<ChildSpec> = (0..N)
        .map(|i| ChildSpec::new(format!("c{i}"), "counter"))
        .collect();
    assert!(n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap()
        .is_ok());
    for i in 0..N {
        let id = format!("c{i}");
        let n = n1
            .call::<Counter>(id.as_str(), &CounterMsg::Add(1000 * i), CALL)
            .await
            .unwrap();
        assert_eq!(n, 1000 * i);
    }
    // Two children get increments all along: one that the join moves from
    // n0 to n2, one that n0's shutdown moves away (placement is a pure
    // function of the node ids).
    let ring2 = Ring::new(DEFAULT_VNODES, ["n0", "n1"].map(NodeId::new));
    let ring3 = Ring::new(DEFAULT_VNODES, ["n0", "n1", "n2"].map(NodeId::new));
    let owner = |r: &Ring, id: &str| r.owner(id).unwrap().as_str().to_owned();
    let ids: Vec<&'static str> = (0..N)
        .map(|i| &*Box::leak(format!("c{i}").into_boxed_str()))
        .collect();
    let on_join = *ids
        .iter()
        .find(|id| owner(&ring2, id) == "n0" && owner(&ring3, id) == "n2")
        .unwrap();
    let on_leave = *ids.iter().find(|id| owner(&ring3, id) == "n0").unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for id in [on_join, on_leave] {
        let (acked, tried) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
        let w = increment_in_background(n1.clone(), id, acked.clone(), tried.clone(), stop.clone());
        workers.push((id, acked, tried, w));
    }

    let n2 = node_with("n2", Some(&n0), hot_swap()).await;
    wait_formed(&[&n0, &n1, &n2], 3).await;
    assert!(wait_settled(&[&n0, &n1, &n2], N as usize).await);
    let on_joiner = n2.status().await.unwrap().local_children;
    assert!(on_joiner > 0, "nothing moved to the joiner");
    for i in 0..N {
        let id = format!("c{i}");
        if ![on_join, on_leave].contains(&id.as_str()) {
            assert_eq!(get(&n2, &id).await, 1000 * i, "{id} after the join");
        }
    }

    n0.shutdown().await.unwrap();
    wait_formed(&[&n1, &n2], 2).await;
    assert!(wait_settled(&[&n1, &n2], N as usize).await);
    for i in 0..N {
        let id = format!("c{i}");
        if ![on_join, on_leave].contains(&id.as_str()) {
            assert_eq!(get(&n1, &id).await, 1000 * i, "{id} after the shutdown");
        }
    }
    stop.cancel();
    for (id, acked, tried, w) in workers {
        w.await.unwrap();
        let base: i64 = id[1..].parse::<i64>().unwrap() * 1000;
        let n = get(&n2, id).await - base;
        let (acked, tried) = (acked.load(Ordering::SeqCst), tried.load(Ordering::SeqCst));
        assert!(acked > 10, "{id}: only {acked} adds acknowledged");
        // Every acknowledged add is in the state that moved; an add that
        // timed out may or may not have landed.
        assert!(
            n >= acked && n <= tried,
            "{id}: count {n}, acknowledged {acked}, tried {tried}"
        );
    }
    n1.shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
}

fn guided() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.distribution = Box::new(hub_strategies::Guided);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guided_children_run_where_named_and_a_non_member_is_an_error() {
    let n0 = node_with("n0", None, guided()).await;
    let n1 = node_with("n1", Some(&n0), guided()).await;
    wait_formed(&[&n0, &n1], 2).await;
    let specs = vec![
        ChildSpec::new("on-n1", "counter").with_nodes(["n1"]),
        ChildSpec::new("on-n0", "counter").with_nodes(["n0"]),
    ];
    let out = n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed);
    assert_eq!(out.started["on-n1"][0].0, NodeId::new("n1"));
    assert_eq!(out.started["on-n0"][0].0, NodeId::new("n0"));

    let out = n1
        .start_children(
            vec![ChildSpec::new("lost", "counter").with_nodes(["n7"])],
            StartOptions::awaited(),
        )
        .await
        .expect_err("a start on no member is an error")
        .into_start_outcome()
        .unwrap();
    assert!(out.started.is_empty());
    let err = out.failed[0].error.to_string();
    assert!(err.contains("n7 is not a member"), "{err}");
    assert!(wait_settled(&[&n0, &n1], 2).await);
    n0.shutdown().await.unwrap();
    n1.shutdown().await.unwrap();
}

fn gossip() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.sync = Box::new(hub_strategies::Gossip {
        sync_interval: Duration::from_millis(500),
        ..Default::default()
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_gossip_nodes_converge() {
    let first = node_with("g0", None, gossip()).await;
    let mut hubs = vec![first];
    for i in 1..8 {
        let h = node_with(&format!("g{i}"), Some(&hubs[0]), gossip()).await;
        hubs.push(h);
    }
    let refs: Vec<&Hub> = hubs.iter().collect();
    wait_formed(&refs, 8).await;
    for (i, h) in hubs.iter().enumerate().take(3) {
        let specs = (0..100)
            .map(|k| ChildSpec::new(format!("g{i}-{k}"), "echo"))
            .collect();
        let out = h
            .start_children(specs, StartOptions::awaited())
            .await
            .unwrap();
        assert!(out.is_ok(), "{:?}", out.failed.first());
    }
    assert!(
        wait_settled(&refs, 300).await,
        "registries did not converge"
    );
    for h in &hubs {
        h.shutdown().await.unwrap();
    }
}

fn active_passive() -> Strategies {
    use hub_strategies::{RedundancySignal, Replication, ReplicationModel};
    let mut s = hub_strategies::defaults();
    s.redundancy = Box::new(Replication {
        replication_factor: 2,
        model: ReplicationModel::ActivePassive,
        signal: RedundancySignal::All,
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_passive_calls_reach_the_active_replica_and_a_kill_promotes_the_passive() {
    use hub_net::examples::RoleProbe;
    let n0 = node_with("n0", None, active_passive()).await;
    let n1 = node_with("n1", Some(&n0), active_passive()).await;
    let n2 = node_with("n2", Some(&n0), active_passive()).await;
    wait_formed(&[&n0, &n1, &n2], 3).await;
    let specs: Vec<ChildSpec> = (0..12)
        .map(|i| ChildSpec::new(format!("p{i}"), "role-probe"))
        .collect();
    let out = n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed.first());
    assert!(
        out.started.values().all(|h| h.len() == 2),
        "two replicas each"
    );
    assert!(wait_settled(&[&n0, &n1, &n2], 12).await);
    // Every call lands on the replica that was told it is active.
    for i in 0..12 {
        let role = n1
            .call::<RoleProbe>(format!("p{i}"), &(), CALL)
            .await
            .unwrap();
        assert_eq!(role, "active", "p{i}");
        // Every node names the same active replica, and that replica (and
        // only it) holds the active role.
        let id = format!("p{i}");
        let active = n0.active_replica(id.as_str()).await.unwrap().unwrap();
        for n in [&n1, &n2] {
            assert_eq!(
                n.active_replica(id.as_str()).await.unwrap(),
                Some(active.clone())
            );
        }
        let mut actives = 0;
        for n in [&n0, &n1, &n2] {
            let role = n.local_role(id.as_str()).await.unwrap();
            if role == Some(hub_core::Role::Active) {
                actives += 1;
                assert_eq!(n.node_id(), &active, "{id}");
            }
        }
        assert_eq!(actives, 1, "{id}");
    }
    // Kill n2 without a goodbye: the children it was active for are
    // served by their promoted passive replica.
    let on_n2: Vec<String> = (0..12)
        .map(|i| format!("p{i}"))
        .filter(|id| {
            let ring = Ring::new(DEFAULT_VNODES, ["n0", "n1", "n2"].map(NodeId::new));
            ring.owner(id).map(NodeId::as_str) == Some("n2")
        })
        .collect();
    assert!(!on_n2.is_empty(), "no child had its active replica on n2");
    n2.abort();
    wait_formed(&[&n0, &n1], 2).await;
    assert!(wait_settled(&[&n0, &n1], 12).await);
    for id in &on_n2 {
        let role = n0.call::<RoleProbe>(id.as_str(), &(), CALL).await.unwrap();
        assert_eq!(role, "active", "{id} after the kill");
    }
    n0.shutdown().await.unwrap();
    n1.shutdown().await.unwrap();
}

fn static_quorum(n: usize) -> Strategies {
    let mut s = hub_strategies::defaults();
    s.partition = Box::new(hub_strategies::StaticQuorum::new(n));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_quorum_of_three_stops_a_two_node_remainder_then_recovers() {
    let n0 = node_with("n0", None, static_quorum(3)).await;
    let n1 = node_with("n1", Some(&n0), static_quorum(3)).await;
    let n2 = node_with("n2", Some(&n0), static_quorum(3)).await;
    wait_formed(&[&n0, &n1, &n2], 3).await;
    let specs: Vec<ChildSpec> = (0..30)
        .map(|i| ChildSpec::new(format!("q{i}"), "counter"))
        .collect();
    assert!(n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap()
        .is_ok());
    n2.abort();
    let both_partitioned = common::eventually(Duration::from_secs(10), || async {
        n0.is_partitioned().await.unwrap_or(false) && n1.is_partitioned().await.unwrap_or(false)
    })
    .await;
    assert!(
        both_partitioned,
        "the remainder did not notice it lost quorum"
    );
    // Their children are stopped and starts are refused.
    for h in [&n0, &n1] {
        assert_eq!(h.status().await.unwrap().local_children, 0);
        let err = h
            .start_children(
                vec![ChildSpec::new("refused", "counter")],
                StartOptions::awaited(),
            )
            .await;
        assert!(
            matches!(
                err,
                Err(hub_net::HubError::Command(
                    hub_core::CommandError::Partitioned
                ))
            ),
            "{err:?}"
        );
    }
    // n2 comes back (a new run under the same id): quorum returns and the
    // ring places every child again.
    let n2 = node_with("n2", Some(&n0), static_quorum(3)).await;
    let recovered = common::eventually(Duration::from_secs(10), || async {
        !n0.is_partitioned().await.unwrap_or(true) && !n1.is_partitioned().await.unwrap_or(true)
    })
    .await;
    assert!(recovered, "quorum did not return");
    assert!(wait_settled(&[&n0, &n1, &n2], 30).await);
    let mut running = 0;
    for h in [&n0, &n1, &n2] {
        running += h.status().await.unwrap().local_children;
    }
    assert_eq!(running, 30);
    for h in [&n0, &n1, &n2] {
        h.shutdown().await.unwrap();
    }
}

/// A node told to expect three (`majority:3`) that finds nobody, e.g. a
/// seed restarted after its cluster moved on, is no majority: it refuses
/// starts instead of running second copies, until a majority has joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_expecting_a_majority_of_three_runs_nothing_until_it_has_one() {
    let majority = || {
        let mut s = hub_strategies::defaults();
        s.partition = Box::new(hub_strategies::MajorityQuorum::new(3));
        s
    };
    let n0 = node_with("n0", None, majority()).await;
    assert!(n0.is_partitioned().await.unwrap(), "alone: 1 of 3");
    let refused = n0
        .start_child(ChildSpec::new("lonely", "counter"), StartOptions::awaited())
        .await;
    assert!(
        matches!(
            refused,
            Err(hub_net::HubError::Command(
                hub_core::CommandError::Partitioned
            ))
        ),
        "{refused:?}"
    );
    let n1 = node_with("n1", Some(&n0), majority()).await;
    wait_formed(&[&n0, &n1], 2).await;
    let ok = common::eventually(Duration::from_secs(10), || async {
        !n0.is_partitioned().await.unwrap_or(true)
    })
    .await;
    assert!(ok, "2 of 3 is a majority");
    n0.start_child(ChildSpec::new("lonely", "counter"), StartOptions::awaited())
        .await
        .unwrap();
    n1.shutdown().await.unwrap();
    n0.shutdown().await.unwrap();
}

fn balancer() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.distribution = Box::new(hub_strategies::CentralizedLoadBalancer::new(
        Duration::from_millis(200),
        30,
        0.9,
    ));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_steers_new_children_away_from_a_loaded_node() {
    let n0 = node_with("n0", None, balancer()).await;
    let n1 = node_with("n1", Some(&n0), balancer()).await;
    let n2 = node_with("n2", Some(&n0), balancer()).await;
    wait_formed(&[&n0, &n1, &n2], 3).await;
    let pinned: Vec<ChildSpec> = (0..150)
        .map(|i| ChildSpec::new(format!("pinned-{i}"), "echo").with_nodes(["n0"]))
        .collect();
    assert!(n1
        .start_children(pinned, StartOptions::awaited())
        .await
        .unwrap()
        .is_ok());
    // Once the scoreboard reflects the load, a batch mostly avoids n0
    // (capacity 0.1 against 1.0: about 1 in 21). Each probe batch is
    // stopped again so that the load stays as pinned.
    let mut batch = 0;
    let steered = common::eventually(Duration::from_secs(20), || {
        batch += 1;
        let specs: Vec<ChildSpec> = (0..30)
            .map(|i| ChildSpec::new(format!("b{batch}-{i}"), "echo"))
            .collect();
        let n2 = n2.clone();
        async move {
            let out = n2
                .start_children(specs, StartOptions::awaited())
                .await
                .unwrap();
            let on_n0 = out
                .started
                .values()
                .filter(|at| at[0].0.as_str() == "n0")
                .count();
            let ids: Vec<hub_core::ChildId> = out.started.keys().cloned().collect();
            let stopped = n2
                .stop_children(ids, hub_core::StopOptions::awaited())
                .await
                .unwrap();
            assert!(stopped.is_ok(), "{:?}", stopped.failed.first());
            out.is_ok() && on_n0 <= 5
        }
    })
    .await;
    assert!(steered, "new children kept landing on the loaded node");
    for h in [&n0, &n1, &n2] {
        h.shutdown().await.unwrap();
    }
}
