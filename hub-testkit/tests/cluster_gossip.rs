//! Gossip synchronization: relayed changes and push-pull rounds.

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions, Strategies};
use hub_strategies::Gossip;
use hub_testkit::{invariants, Cluster, ClusterOptions, NetConfig};

fn gossip(restricted_init: bool) -> impl Fn() -> Strategies {
    move || {
        let mut s = hub_strategies::defaults();
        s.sync = Box::new(Gossip {
            sync_interval: Duration::from_secs(2),
            recipients: 3,
            restricted_init,
        });
        s
    }
}

fn start_from_everywhere(c: &mut Cluster, per_node: usize) {
    for i in 0..c.len() {
        let specs: Vec<ChildSpec> = (0..per_node)
            .map(|k| ChildSpec::new(format!("n{i}-c{k}"), "counter"))
            .collect();
        assert!(c.start(i, specs, StartOptions::awaited()).unwrap().is_ok());
    }
}

#[test]
fn eight_nodes_converge_with_gossip() {
    for restricted in [true, false] {
        let opts = ClusterOptions::new(8)
            .seed(31)
            .strategies(gossip(restricted));
        let mut c = Cluster::formed(opts).unwrap();
        start_from_everywhere(&mut c, 50);
        assert!(c.settle(), "{:?}", c.unquiet_reason());
        invariants::check_all(&c).unwrap();
        for i in 0..8 {
            assert_eq!(c.node(i).unwrap().count_children(), 400);
        }
    }
}

#[test]
fn relays_reach_most_nodes_within_a_few_hops_and_rounds_repair_the_rest() {
    // 16 nodes, fanout 3, 10 ms per hop. A relay-once rumour reaches all
    // but a few percent of nodes in O(log N) hops; the rounds fill in the
    // rest.
    let mut opts = ClusterOptions::new(16).seed(32).strategies(|| {
        let mut s = hub_strategies::defaults();
        s.sync = Box::new(Gossip {
            sync_interval: Duration::from_secs(5),
            recipients: 3,
            restricted_init: true,
        });
        s
    });
    opts = opts.net(NetConfig {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        ..Default::default()
    });
    let mut c = Cluster::formed(opts).unwrap();
    let specs: Vec<ChildSpec> = (0..200)
        .map(|k| ChildSpec::new(format!("r{k}"), "counter"))
        .collect();
    assert!(c.start(0, specs, StartOptions::awaited()).unwrap().is_ok());
    // Ten hops.
    c.run_for(Duration::from_millis(100)).unwrap();
    let known: usize = (0..16).map(|i| c.node(i).unwrap().count_children()).sum();
    assert!(
        known * 10 >= 16 * 200 * 9,
        "relays reached only {known} of {} (node, child) pairs",
        16 * 200
    );
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::check_all(&c).unwrap();
}

#[test]
fn gossip_repairs_what_a_lossy_network_dropped() {
    let opts = ClusterOptions::new(6)
        .seed(33)
        .strategies(gossip(true))
        .net(NetConfig {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            drop_rate: 0.05,
            duplicate_rate: 0.02,
        });
    let mut c = Cluster::formed(opts).unwrap();
    for i in 0..6 {
        let specs: Vec<ChildSpec> = (0..30)
            .map(|k| ChildSpec::new(format!("n{i}-c{k}"), "counter"))
            .collect();
        let _ = c.start(i, specs, StartOptions::awaited());
    }
    c.set_net(NetConfig::default());
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::check_all(&c).unwrap();
}

#[test]
fn after_an_awaited_start_the_calling_node_sees_every_child_at_once() {
    // One relay recipient: without care, most owners would not tell the
    // caller directly and its lookups would miss until a sync round.
    let opts = ClusterOptions::new(8).seed(33).strategies(|| {
        let mut s = hub_strategies::defaults();
        s.sync = Box::new(Gossip {
            sync_interval: Duration::from_secs(30),
            recipients: 1,
            restricted_init: true,
        });
        s
    });
    let mut c = Cluster::formed(opts).unwrap();
    for round in 0..5 {
        let specs: Vec<ChildSpec> = (0..80)
            .map(|k| ChildSpec::new(format!("r{round}-c{k}"), "counter"))
            .collect();
        let out = c.start(2, specs.clone(), StartOptions::awaited()).unwrap();
        assert!(out.is_ok());
        // No settling: right after the reply.
        let node = c.node(2).unwrap();
        for s in &specs {
            let seen: Vec<_> = node.child_lookup(s.id.as_str());
            let started: Vec<_> = out.started[&s.id].clone();
            assert_eq!(seen, started, "{} not visible on the caller", s.id);
        }
    }
}
