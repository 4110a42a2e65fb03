//! Strict single-instance mode: no child id ever runs on two nodes at once,
//! checked every 10 ms of virtual time through partitions, crashes and
//! restarts.

use std::time::Duration;

use hub_core::{
    ChildSpec, Config, ConfigError, Event, MigrationMode, Node, NodeId, StartError, StartOptions,
    Strategies, Strict, Time,
};
use hub_testkit::{invariants, specs, Cluster, ClusterOptions};

const QUORUM: usize = 3;

fn strict_opts(nodes: usize) -> ClusterOptions {
    ClusterOptions::new(nodes).configure(|c| c.strict = Some(Strict::new(QUORUM)))
}

/// A formed strict cluster, past the time new nodes grant nothing.
fn formed_strict(nodes: usize) -> Cluster {
    let mut c = Cluster::formed(strict_opts(nodes)).unwrap();
    run_checked(&mut c, takeover_after());
    c
}

/// [`formed_strict`] running `children` children started from node 0.
fn formed_running(nodes: usize, children: usize) -> Cluster {
    let mut c = formed_strict(nodes);
    let out = c
        .start(0, specs(children), StartOptions::awaited())
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    c
}

/// Runs `d`, failing at the first moment two nodes run one child.
fn run_checked(c: &mut Cluster, d: Duration) {
    let mut violation = None;
    c.run_until(d, |c| {
        if let Err(v) = invariants::single_instance(c) {
            violation = Some(format!("at {:?}: {v:?}", c.now()));
            return true;
        }
        false
    })
    .unwrap();
    assert_eq!(violation, None, "two copies ran at once");
}

/// Children running on the given nodes.
fn running_on(c: &Cluster, nodes: &[usize]) -> usize {
    nodes.iter().map(|&i| c.runtime(i).running().count()).sum()
}

fn takeover_after() -> Duration {
    Strict::new(QUORUM).takeover_after()
}

/// The default heartbeat period: a granter counts the silence from the
/// last message it heard, which may precede a crash or a cut by this much.
const HEARTBEAT: Duration = Duration::from_millis(500);

#[test]
fn a_minority_side_fences_its_children_and_the_majority_takes_them_over_after_the_lease() {
    let mut c = formed_running(5, 300);
    assert_eq!(running_on(&c, &[0, 1, 2, 3, 4]), 300);
    let on_minority: Vec<String> = [0usize, 1]
        .iter()
        .flat_map(|&i| {
            c.runtime(i)
                .running()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!on_minority.is_empty());
    // Every start was granted by a quorum: QUORUM grants per child, the
    // claimant's own included.
    let grants: u64 = (0..5)
        .map(|i| c.node(i).unwrap().counters().strict_grants)
        .sum();
    assert!(grants >= (300 * QUORUM) as u64, "{grants} grants");
    let fenced_before: u64 = (0..2)
        .map(|i| c.node(i).unwrap().counters().strict_fencings)
        .sum();
    assert_eq!(fenced_before, 0);

    let split = c.now();
    c.partition(&[&[0, 1], &[2, 3, 4]]);
    run_checked(&mut c, Duration::from_secs(20));
    assert_eq!(
        running_on(&c, &[0, 1]),
        0,
        "the minority must stop everything"
    );
    let fenced: u64 = (0..2)
        .map(|i| c.node(i).unwrap().counters().strict_fencings)
        .sum();
    assert_eq!(
        fenced,
        on_minority.len() as u64,
        "each minority child fenced once, and counted"
    );
    assert_eq!(
        running_on(&c, &[2, 3, 4]),
        300,
        "the majority runs every child"
    );
    // No minority child started on the majority side before the takeover
    // delay: the minority might still have run it.
    let first_takeover = c
        .events()
        .iter()
        .filter(|(t, n, e)| {
            *t > split
                && [2usize, 3, 4].iter().any(|&i| c.id(i) == *n)
                && matches!(e, Event::ChildStarted { id, .. } if on_minority.contains(&id.to_string()))
        })
        .map(|(t, _, _)| *t)
        .min()
        .expect("the majority restarted the minority's children");
    assert!(
        first_takeover.since(split) >= takeover_after() - HEARTBEAT,
        "taken over after {:?}, before the lease provably expired ({:?})",
        first_takeover.since(split),
        takeover_after()
    );
    // The minority refuses new starts: no quorum grants them.
    let out = c
        .start(
            0,
            vec![ChildSpec::new("lonely", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(out.started.is_empty(), "{out:?}");
    assert!(
        out.failed
            .iter()
            .all(|f| matches!(f.error, StartError::NotGranted { .. })),
        "{out:?}"
    );
    assert!(!c.runtime(0).is_running("lonely") && !c.runtime(1).is_running("lonely"));

    c.heal();
    run_checked(&mut c, Duration::from_secs(20));
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::single_instance(&c).unwrap();
    assert_eq!(running_on(&c, &[0, 1, 2, 3, 4]), 300);
    for i in 0..5 {
        assert_eq!(c.node(i).unwrap().count_children(), 300, "node {i}");
    }
}

#[test]
fn divergence_mode_runs_both_sides_of_the_same_partition() {
    // The control for the test above: without strict mode the minority
    // keeps its children while the majority restarts them.
    let mut c = Cluster::formed(ClusterOptions::new(5)).unwrap();
    assert!(c
        .start(0, specs(300), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c.partition(&[&[0, 1], &[2, 3, 4]]);
    c.run_for(Duration::from_secs(20)).unwrap();
    assert!(invariants::single_instance(&c).is_err());
}

#[test]
fn a_bridge_node_grants_each_child_to_one_side_only() {
    // Nodes 0,1 and 3,4 cannot talk; node 2 talks to all. Each side sees
    // three nodes, a quorum, and believes the other side dead: the bridge's
    // single promise per child is what keeps one copy.
    let mut c = formed_running(5, 200);
    for a in [0, 1] {
        for b in [3, 4] {
            c.block(a, b);
            c.block(b, a);
        }
    }
    run_checked(&mut c, Duration::from_secs(20));
    // Both sides try to start the same new child.
    let r0 = c.command(
        0,
        hub_core::Command::StartChildren {
            specs: vec![ChildSpec::new("contested", "counter")],
            opts: StartOptions::awaited(),
        },
    );
    let r3 = c.command(
        3,
        hub_core::Command::StartChildren {
            specs: vec![ChildSpec::new("contested", "counter")],
            opts: StartOptions::awaited(),
        },
    );
    let (r0, r3) = (r0.unwrap(), r3.unwrap());
    run_checked(&mut c, Duration::from_secs(10));
    let _ = c.wait_reply(r0, Duration::from_secs(5));
    let _ = c.wait_reply(r3, Duration::from_secs(5));
    let copies = (0..5)
        .filter(|&i| c.runtime(i).is_running("contested"))
        .count();
    assert!(copies <= 1, "contested runs {copies} times");
    // Every child still runs somewhere, once.
    assert_eq!(running_on(&c, &[0, 1, 2, 3, 4]), 200 + copies);
    c.heal();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::single_instance(&c).unwrap();
}

#[test]
fn crashes_and_restarts_never_run_two_copies_and_restart_after_the_takeover_delay() {
    let mut c = formed_running(5, 200);
    for victim in [1usize, 3, 0] {
        let lost: Vec<String> = c
            .runtime(victim)
            .running()
            .map(|(id, _)| id.to_string())
            .collect();
        let at = c.now();
        c.crash(victim);
        run_checked(&mut c, Duration::from_secs(12));
        let others: Vec<usize> = (0..5).filter(|&i| i != victim).collect();
        assert_eq!(running_on(&c, &others), 200, "after crashing {victim}");
        let restarted = c
            .events()
            .iter()
            .filter(|(t, _, e)| {
                *t > at
                    && matches!(e, Event::ChildStarted { id, .. } if lost.contains(&id.to_string()))
            })
            .map(|(t, _, _)| *t)
            .min()
            .expect("the victim's children restarted");
        assert!(
            restarted.since(at) >= takeover_after() - HEARTBEAT,
            "victim {victim} crashed at {at:?}, its children restarted at {restarted:?}"
        );
        c.restart(victim);
        run_checked(&mut c, Duration::from_secs(12));
        assert!(c.settle(), "{:?}", c.unquiet_reason());
        invariants::single_instance(&c).unwrap();
        assert_eq!(running_on(&c, &[0, 1, 2, 3, 4]), 200);
    }
}

#[test]
fn running_children_keep_their_lease_through_a_rolling_restart_of_their_granters() {
    // Node 4's children were granted by nodes 0-3. Restarting those one by
    // one voids their grants (new incarnations); node 4 asks again, so its
    // children never lose the lease.
    let mut c = formed_running(5, 200);
    let before: Vec<_> = c
        .runtime(4)
        .running()
        .map(|(id, h)| (id.clone(), h))
        .collect();
    assert!(!before.is_empty());
    for i in 0..4 {
        c.crash(i);
        run_checked(&mut c, Duration::from_secs(2));
        c.restart(i);
        run_checked(&mut c, Duration::from_secs(8));
        assert!(c.settle(), "{:?}", c.unquiet_reason());
    }
    for (id, h) in before {
        let now: Vec<_> = c.runtime(4).running().filter(|(i, _)| **i == id).collect();
        assert_eq!(now, vec![(&id, h)], "{id} was fenced or moved on node 4");
    }
    assert_eq!(running_on(&c, &[0, 1, 2, 3, 4]), 200);
}

#[test]
fn a_granter_keeps_one_promise_per_child_against_forged_claims() {
    let mut c = formed_running(5, 20);
    let id = hub_core::ChildId::from("child-7");
    let holder = (0..5)
        .find(|&i| c.runtime(i).is_running("child-7"))
        .unwrap();
    let granter = (holder + 1) % 5;
    let thief = (holder + 2) % 5;
    let before = c.node(granter).unwrap().strict_promise("child-7");
    assert_eq!(before, Some(c.id(holder)));
    c.deliver(
        thief,
        granter,
        hub_core::Message::Claim {
            seq: 99,
            at: 0,
            incarnation: 1,
            ids: vec![id.clone()],
        },
    );
    assert_eq!(
        c.node(granter).unwrap().strict_promise("child-7"),
        Some(c.id(holder))
    );
    // A release from a node that does not hold the promise changes nothing.
    c.deliver(thief, granter, hub_core::Message::Release(vec![id]));
    assert_eq!(
        c.node(granter).unwrap().strict_promise("child-7"),
        Some(c.id(holder))
    );
    run_checked(&mut c, Duration::from_secs(5));
}

#[test]
fn strict_mode_refuses_options_that_would_run_two_copies() {
    let cfg = |strict: Strict| {
        let mut c = Config::new("h", NodeId::new("a"));
        c.strict = Some(strict);
        c
    };
    let now = Time::ZERO;
    let hot = Strategies {
        migration: hub_strategies::HotSwap::default().into(),
        ..hub_strategies::defaults()
    };
    assert!(matches!(hot.migration, MigrationMode::StartThenStop { .. }));
    assert!(matches!(
        Node::new(cfg(Strict::new(2)), hot, now),
        Err(ConfigError::Strict(_))
    ));
    let replicated = Strategies {
        redundancy: Box::new(hub_strategies::Replication::default()),
        ..hub_strategies::defaults()
    };
    assert!(matches!(
        Node::new(cfg(Strict::new(2)), replicated, now),
        Err(ConfigError::Strict(_))
    ));
    let mut zero = Strict::new(0);
    assert!(matches!(cfg(zero).validate(), Err(ConfigError::Strict(_))));
    zero.quorum = 2;
    zero.lease = Duration::from_millis(100);
    assert!(matches!(cfg(zero).validate(), Err(ConfigError::Strict(_))));
    assert!(Node::new(cfg(Strict::new(2)), hub_strategies::defaults(), now).is_ok());
}

#[test]
fn joins_and_graceful_leaves_move_children_without_a_second_copy() {
    let mut c = formed_running(4, 300);
    let joined = c.add_node();
    run_checked(&mut c, Duration::from_secs(10));
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert!(
        c.runtime(joined).running().count() > 0,
        "the joiner took its share"
    );
    assert_eq!(running_on(&c, &[0, 1, 2, 3, joined]), 300);
    let r = c.command(1, hub_core::Command::Leave).unwrap();
    run_checked(&mut c, Duration::from_secs(10));
    assert_eq!(
        c.wait_reply(r, Duration::from_secs(5)).unwrap(),
        hub_core::Reply::Left
    );
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert_eq!(c.runtime(1).running().count(), 0);
    assert_eq!(running_on(&c, &[0, 2, 3, joined]), 300);
    invariants::single_instance(&c).unwrap();
}

#[test]
fn a_promise_whose_release_was_lost_is_cleared_by_asking_its_holder() {
    let mut c = formed_strict(5);
    let (claimant, granter) = (1, 2);
    // The granter promises a child the claimant never runs; the claimant's
    // release is lost on the way back.
    c.block(claimant, granter);
    c.deliver(
        claimant,
        granter,
        hub_core::Message::Claim {
            seq: 7,
            at: 0,
            incarnation: 1,
            ids: vec!["ghost".into()],
        },
    );
    assert_eq!(
        c.node(granter).unwrap().strict_promise("ghost"),
        Some(c.id(claimant))
    );
    c.run_for(Duration::from_millis(50)).unwrap();
    c.heal();
    assert_eq!(
        c.node(granter).unwrap().strict_promise("ghost"),
        Some(c.id(claimant)),
        "the release was meant to be lost"
    );
    // The next sync round asks the claimant, which releases it.
    let cleared = c
        .run_until(Duration::from_secs(60), |c| {
            c.node(granter).unwrap().strict_promise("ghost").is_none()
        })
        .unwrap();
    assert!(cleared, "the stale promise stayed");
    // And the child can be started normally.
    let out = c
        .start(
            3,
            vec![ChildSpec::new("ghost", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
}

#[test]
fn a_new_or_restarted_node_grants_nothing_until_the_takeover_delay() {
    let mut c = Cluster::formed(strict_opts(3)).unwrap();
    let young = c
        .start(
            0,
            vec![ChildSpec::new("early", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(
        young
            .failed
            .iter()
            .any(|f| matches!(f.error, StartError::NotGranted { granted: 0, .. })),
        "{young:?}"
    );
    run_checked(&mut c, takeover_after());
    let out = c
        .start(
            0,
            vec![ChildSpec::new("early", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    // A restarted node has forgotten its promises: it refuses to grant
    // until its previous run's grants can no longer hold a lease.
    c.crash(1);
    c.restart(1);
    c.deliver(
        2,
        1,
        hub_core::Message::Claim {
            seq: 1,
            at: 0,
            incarnation: 1,
            ids: vec!["early".into()],
        },
    );
    assert_eq!(c.node(1).unwrap().strict_promise("early"), None);
    run_checked(&mut c, takeover_after());
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::single_instance(&c).unwrap();
}

#[test]
fn nodes_of_another_mode_refuse_each_other() {
    // n2 runs divergence mode, n3 another quorum: a mixed cluster would
    // start children without grants, so they never join.
    let opts = ClusterOptions::new(4).configure(|c| {
        c.strict = match c.node_id.as_str() {
            "n2" => None,
            "n3" => Some(Strict::new(3)),
            _ => Some(Strict::new(2)),
        }
    });
    let mut c = Cluster::new(opts);
    c.run_for(Duration::from_secs(15)).unwrap();
    let ring = |c: &Cluster, i: usize| c.node(i).unwrap().nodes();
    assert_eq!(ring(&c, 0), vec![c.id(0), c.id(1)]);
    assert_eq!(ring(&c, 1), vec![c.id(0), c.id(1)]);
    assert_eq!(ring(&c, 2), vec![c.id(2)]);
    assert_eq!(ring(&c, 3), vec![c.id(3)]);
    let refused = |by: usize, peer: usize, theirs: Option<u32>, ours: Option<u32>| {
        c.events().iter().any(|(_, n, e)| {
            *n == c.id(by)
                && *e
                    == Event::PeerRefused {
                        node: c.id(peer),
                        theirs,
                        ours,
                    }
        })
    };
    // Whoever got the other's hello says why.
    assert!(refused(0, 2, None, Some(2)) || refused(2, 0, Some(2), None));
    assert!(refused(1, 3, Some(3), Some(2)) || refused(3, 1, Some(2), Some(3)));
}

#[test]
fn a_refused_start_request_keeps_the_fenced_copy_it_took_over() {
    let mut c = formed_strict(5);
    let out = c
        .start(
            0,
            vec![ChildSpec::new("solo", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let holder = (0..5).find(|&i| c.runtime(i).is_running("solo")).unwrap();
    let others: Vec<usize> = (0..5).filter(|&i| i != holder).collect();
    c.partition(&[&[holder], &others]);
    run_checked(&mut c, Duration::from_secs(10));
    assert!(!c.runtime(holder).is_running("solo"), "fenced");
    assert_eq!(
        c.node(holder).unwrap().orphan_count(),
        1,
        "kept to claim again"
    );
    // A start request reaches the lone holder: its claim fails, and the
    // fenced copy it took over must not vanish with it.
    let out = c
        .start(
            holder,
            vec![ChildSpec::new("solo", "counter")],
            StartOptions::awaited(),
        )
        .unwrap();
    assert!(out.started.is_empty(), "{out:?}");
    assert_eq!(c.node(holder).unwrap().orphan_count(), 1);
    c.heal();
    run_checked(&mut c, Duration::from_secs(10));
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert_eq!(
        (0..5).filter(|&i| c.runtime(i).is_running("solo")).count(),
        1
    );
}
