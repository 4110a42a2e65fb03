//! Acknowledged starts: `StartOptions::ack` waits until enough registries
//! hold the started children.

use std::time::Duration;

use hub_core::{Ack, ChildSpec, NodeId, StartOptions, Strategies};
use hub_strategies::Gossip;
use hub_testkit::{Cluster, ClusterOptions};

/// Slow, narrow gossip: a row reaches most nodes only after relays or a
/// sync round, so what an ack level adds is visible.
fn slow_gossip() -> Strategies {
    let mut s = hub_strategies::defaults();
    s.sync = Box::new(Gossip {
        sync_interval: Duration::from_secs(30),
        recipients: 1,
        restricted_init: true,
    });
    s
}

fn batch(tag: &str, n: usize) -> Vec<ChildSpec> {
    (0..n)
        .map(|k| ChildSpec::new(format!("{tag}-{k}"), "counter"))
        .collect()
}

/// Nodes whose registries hold every child of `specs`, right now.
fn holding(c: &Cluster, specs: &[ChildSpec]) -> Vec<NodeId> {
    c.alive()
        .into_iter()
        .filter(|&i| {
            let n = c.node(i).unwrap();
            specs
                .iter()
                .all(|s| !n.child_lookup(s.id.as_str()).is_empty())
        })
        .map(|i| c.id(i))
        .collect()
}

#[test]
fn quorum_and_all_acks_hold_on_that_many_registries_when_the_start_returns() {
    let mut c = Cluster::formed(ClusterOptions::new(7).seed(81).strategies(slow_gossip)).unwrap();
    // The contrast: with the default (Local) ack, right after the reply
    // the caller sees the children but some other node does not yet.
    let local = batch("local", 40);
    let out = c.start(3, local.clone(), StartOptions::awaited()).unwrap();
    assert!(out.is_ok());
    assert!(out.acknowledged.is_empty());
    let seen = holding(&c, &local);
    assert!(seen.contains(&c.id(3)));
    assert!(seen.len() < 7, "gossip too fast for the contrast: {seen:?}");

    for (round, ack) in [Ack::Quorum, Ack::All, Ack::Quorum].into_iter().enumerate() {
        let specs = batch(&format!("acked{round}"), 40);
        let out = c.start(3, specs.clone(), StartOptions::acked(ack)).unwrap();
        assert!(out.is_ok(), "{ack:?}: {out:?}");
        assert!(!out.ack_timed_out);
        let needed = if ack == Ack::All { 7 } else { 4 };
        assert!(
            out.acknowledged.len() >= needed,
            "{ack:?}: {:?}",
            out.acknowledged
        );
        // No settling: what the reply claims holds at once.
        let seen = holding(&c, &specs);
        for n in &out.acknowledged {
            assert!(
                seen.contains(n),
                "{ack:?}: {n} acknowledged but misses rows"
            );
        }
    }
}

#[test]
fn an_ack_level_out_of_reach_times_out_with_what_was_confirmed() {
    let mut c = Cluster::formed(ClusterOptions::new(5).seed(82)).unwrap();
    // Children owned on the minority side, started there before failure
    // detection shrinks the ring: only the two of them can confirm.
    let specs: Vec<ChildSpec> = (0..400)
        .map(|k| ChildSpec::new(format!("m-{k}"), "counter"))
        .filter(|s| {
            let owner = c.node(0).unwrap().placement(s)[0].clone();
            owner == c.id(0) || owner == c.id(1)
        })
        .take(20)
        .collect();
    assert_eq!(specs.len(), 20);
    c.partition(&[&[0, 1], &[2, 3, 4]]);
    let opts = StartOptions {
        timeout: Duration::from_millis(800),
        ..StartOptions::acked(Ack::Quorum)
    };
    let out = c.start(0, specs.clone(), opts).unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.started.len(), 20);
    assert!(out.ack_timed_out);
    assert!(!out.is_ok());
    assert_eq!(out.acknowledged, vec![c.id(0), c.id(1)]);
    // Once the sides see each other again, the same level is reached.
    c.heal();
    assert!(c.settle());
    let after = vec![ChildSpec::new("after-heal", "counter")];
    let again = c
        .start(1, after.clone(), StartOptions::acked(Ack::All))
        .unwrap();
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(again.acknowledged.len(), 5);
    assert_eq!(holding(&c, &after).len(), 5);
}
