//! CentralizedLoadBalancer: hashing until scores exist, then new children
//! go to the least loaded nodes; nothing moves on a join.

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions, Strategies};
use hub_strategies::CentralizedLoadBalancer;
use hub_testkit::{invariants, Cluster, ClusterOptions};

fn balancer() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.distribution = Box::new(CentralizedLoadBalancer::new(
        Duration::from_millis(500),
        30,
        0.9,
    ));
    s
}

fn batch(prefix: &str, n: usize) -> Vec<ChildSpec> {
    (0..n)
        .map(|k| ChildSpec::new(format!("{prefix}{k}"), "counter"))
        .collect()
}

#[test]
fn without_scores_children_are_placed_by_hashing() {
    let mut c = Cluster::formed(ClusterOptions::new(3).seed(61).strategies(balancer)).unwrap();
    // Formed within the first push interval: no scoreboard yet.
    let out = c.start(0, batch("h", 60), StartOptions::awaited()).unwrap();
    assert!(out.is_ok());
    let ring = c.node(0).unwrap().ring().clone();
    for (id, at) in &out.started {
        assert_eq!(Some(&at[0].0), ring.owner(id.as_str()), "{id}");
    }
}

#[test]
fn new_children_go_to_the_least_loaded_nodes_and_stay_on_a_join() {
    let mut c = Cluster::formed(ClusterOptions::new(3).seed(62).strategies(balancer)).unwrap();
    // Load n0 on purpose: 300 children pinned there.
    let pinned: Vec<ChildSpec> = batch("pinned", 300)
        .into_iter()
        .map(|s| s.with_nodes(["n0"]))
        .collect();
    assert!(c.start(1, pinned, StartOptions::awaited()).unwrap().is_ok());
    // A few report rounds: the scoreboard now says n0 is full.
    c.run_for(Duration::from_secs(3)).unwrap();
    let out = c
        .start(2, batch("new", 300), StartOptions::awaited())
        .unwrap();
    assert!(out.is_ok());
    let on = |n: &str| {
        out.started
            .values()
            .filter(|at| at[0].0.as_str() == n)
            .count()
    };
    // n0's capacity is at its floor (0.1) against 1.0 for the others.
    assert!(on("n0") <= 300 / 10, "n0 got {}", on("n0"));
    assert!(
        on("n1") > 100 && on("n2") > 100,
        "n1 {} n2 {}",
        on("n1"),
        on("n2")
    );
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    let joined = c.add_node();
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    assert_eq!(
        c.runtime(joined).running().count(),
        0,
        "children moved on join"
    );
}

#[test]
fn the_leader_role_moves_when_the_leader_leaves() {
    let mut c = Cluster::formed(ClusterOptions::new(3).seed(63).strategies(balancer)).unwrap();
    let pinned: Vec<ChildSpec> = batch("p", 200)
        .into_iter()
        .map(|s| s.with_nodes(["n2"]))
        .collect();
    assert!(c.start(1, pinned, StartOptions::awaited()).unwrap().is_ok());
    c.leave(0).unwrap(); // n0 was the leader
    assert!(c.settle());
    c.run_for(Duration::from_secs(3)).unwrap();
    // n1 leads now; n2 is loaded, so new children go to n1.
    let out = c
        .start(2, batch("q", 100), StartOptions::awaited())
        .unwrap();
    assert!(out.is_ok());
    let on_n1 = out
        .started
        .values()
        .filter(|at| at[0].0.as_str() == "n1")
        .count();
    assert!(on_n1 >= 80, "n1 got {on_n1}");
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
}
