//! Placement affinity: node tags and per-child `require`/`prefer`
//! constraints, with failover as tagged nodes come and go.

use hub_core::{ChildSpec, CommandError, NodeId, StartError, StartOptions};
use hub_testkit::{Cluster, ClusterOptions};

/// n0, n2, n4 are in zone a; n1, n3 in zone b.
fn zoned(n: usize, seed: u64) -> Cluster {
    let opts = ClusterOptions::new(n).seed(seed).configure(|c| {
        let i: usize = c.node_id.as_str()[1..].parse().unwrap_or(0);
        let zone = if i.is_multiple_of(2) { "a" } else { "b" };
        c.tags.insert("zone".into(), zone.into());
    });
    Cluster::formed(opts).unwrap()
}

fn zone_of(c: &Cluster, i: usize) -> &'static str {
    let _ = c;
    if i.is_multiple_of(2) {
        "a"
    } else {
        "b"
    }
}

/// Node index of every running copy of the `tag`-prefixed children.
fn placements(c: &Cluster, tag: &str) -> Vec<usize> {
    c.alive()
        .into_iter()
        .flat_map(|i| {
            c.runtime(i)
                .running()
                .filter(|(id, _)| id.as_str().starts_with(tag))
                .map(move |_| i)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn batch(tag: &str, n: usize, f: impl Fn(ChildSpec) -> ChildSpec) -> Vec<ChildSpec> {
    (0..n)
        .map(|k| f(ChildSpec::new(format!("{tag}{k}"), "counter")))
        .collect()
}

#[test]
fn required_tags_are_honoured_and_fail_over_to_other_tagged_nodes() {
    let mut c = zoned(5, 101);
    let specs = batch("req", 60, |s| s.with_requirement("zone", "a"));
    let out = c.start(1, specs, StartOptions::awaited()).unwrap();
    assert!(out.is_ok(), "{:?}", out.failed);
    assert!(c.settle());
    let at = placements(&c, "req");
    assert_eq!(at.len(), 60);
    assert!(at.iter().all(|&i| zone_of(&c, i) == "a"), "{at:?}");
    // Spread over the zone, not piled on one node.
    assert!([0, 2, 4].iter().filter(|i| at.contains(i)).count() >= 2);

    // Zone-a nodes fail one by one: the children follow the tag.
    c.crash(0);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let at = placements(&c, "req");
    assert_eq!(at.len(), 60);
    assert!(at.iter().all(|&i| i == 2 || i == 4), "{at:?}");
    c.crash(2);
    c.crash(4);
    let settled = c.run_until(std::time::Duration::from_secs(10), |c| {
        c.alive()
            .iter()
            .all(|&i| c.node(i).unwrap().nodes().len() == 2)
    });
    assert!(settled.unwrap());
    c.run_for(std::time::Duration::from_secs(2)).unwrap();
    // No node of zone a left: they wait rather than run elsewhere.
    assert!(placements(&c, "req").is_empty());
    assert!(c.node(1).unwrap().orphan_count() >= 60);

    // A zone-a node returns: they run there again.
    c.restart(0);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let at = placements(&c, "req");
    assert_eq!(at.len(), 60);
    assert!(at.iter().all(|&i| i == 0), "{at:?}");
}

#[test]
fn preferred_tags_come_first_and_others_take_over_when_none_is_left() {
    let mut c = zoned(4, 102);
    let specs = batch("pref", 40, |s| s.with_preference("zone", "b"));
    assert!(c.start(0, specs, StartOptions::awaited()).unwrap().is_ok());
    assert!(c.settle());
    let at = placements(&c, "pref");
    assert_eq!(at.len(), 40);
    assert!(at.iter().all(|&i| zone_of(&c, i) == "b"), "{at:?}");
    c.leave(1).unwrap();
    c.leave(3).unwrap();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let at = placements(&c, "pref");
    assert_eq!(at.len(), 40, "a soft preference never strands a child");
    assert!(at.iter().all(|&i| i == 0 || i == 2), "{at:?}");
    // A zone-a node joins: it is as good as the others for them.
    let j = c.add_node();
    assert_eq!(zone_of(&c, j), "a");
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert!(placements(&c, "pref")
        .iter()
        .all(|&i| zone_of(&c, i) == "a"));
    // A zone-b node joins: they all move to it.
    let k = c.add_node();
    assert_eq!(zone_of(&c, k), "b");
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let at = placements(&c, "pref");
    assert_eq!(at.len(), 40);
    assert!(at.iter().all(|&i| i == k), "{at:?}");
}

#[test]
fn unsatisfiable_or_malformed_constraints_are_refused_at_start() {
    let mut c = zoned(3, 103);
    let spec = ChildSpec::new("nowhere", "counter").with_requirement("zone", "z");
    let out = c.start(0, vec![spec], StartOptions::awaited()).unwrap();
    assert_eq!(out.failed.len(), 1);
    assert!(
        matches!(out.failed[0].error, StartError::Placement(_)),
        "{out:?}"
    );
    let bad = ChildSpec::new("bad", "counter").with_metadata(hub_core::spec::REQUIRE_TAG, "zone");
    let r = c.command(
        0,
        hub_core::Command::StartChildren {
            specs: vec![bad],
            opts: StartOptions::awaited(),
        },
    );
    let reply = c
        .wait_reply(r.unwrap(), std::time::Duration::from_secs(1))
        .unwrap();
    assert!(
        matches!(
            reply,
            hub_core::Reply::Error(CommandError::InvalidSpec { .. })
        ),
        "{reply:?}"
    );
    // Both nodes agree on where a constrained child goes.
    let spec = ChildSpec::new("agreed", "counter").with_requirement("zone", "a");
    let places: Vec<Vec<NodeId>> = (0..3)
        .map(|i| c.node(i).unwrap().placement(&spec))
        .collect();
    assert!(places.windows(2).all(|w| w[0] == w[1]), "{places:?}");
    assert!(places[0]
        .iter()
        .all(|n| n.as_str() == "n0" || n.as_str() == "n2"));
}
