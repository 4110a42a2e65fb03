//! Quorum strategies driving partition mode in a cluster.

use std::time::Duration;

use hub_core::{CommandError, Event, StartOptions, Strategies};
use hub_strategies::{DynamicQuorum, MajorityQuorum, StaticQuorum};
use hub_testkit::{invariants, specs, Cluster, ClusterOptions, Failure};

fn with(partition: fn() -> Box<dyn hub_core::PartitionStrategy>) -> impl Fn() -> Strategies {
    move || Strategies {
        partition: partition(),
        ..hub_strategies::defaults()
    }
}

/// A formed cluster running `n` children started (awaited) from node 0.
fn formed_running(opts: ClusterOptions, n: usize) -> Cluster {
    let mut c = Cluster::formed(opts).unwrap();
    assert!(c
        .start(0, specs(n), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c
}

/// Crashes `victims` and waits until `observer` enters partition mode.
fn crash_until_partitioned(c: &mut Cluster, victims: &[usize], observer: usize) {
    for &v in victims {
        c.crash(v);
    }
    let partitioned = c
        .run_until(Duration::from_secs(10), |c| {
            c.node(observer).unwrap().is_partitioned()
        })
        .unwrap();
    assert!(partitioned, "node {observer} did not enter partition mode");
}

fn split_and_heal(mut c: Cluster, minority: &[usize], majority: &[usize]) {
    assert!(c
        .start(majority[0], specs(500), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c.partition(&[majority, minority]);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    for &i in minority {
        let n = c.node(i).unwrap();
        assert!(n.is_partitioned(), "minority node {i} must be partitioned");
        assert_eq!(
            c.runtime(i).running().count(),
            0,
            "minority node {i} runs children"
        );
        assert!(c
            .events()
            .iter()
            .any(|(_, id, e)| *id == c.id(i) && *e == Event::Partitioned));
        assert_eq!(
            c.start(i, specs(1), StartOptions::awaited()),
            Err(Failure::Refused(CommandError::Partitioned))
        );
    }
    for &i in majority {
        assert!(!c.node(i).unwrap().is_partitioned(), "majority node {i}");
    }
    let on_majority: usize = majority
        .iter()
        .map(|&i| c.runtime(i).running().count())
        .sum();
    assert_eq!(on_majority, 500, "the majority runs every child, once");
    invariants::single_instance(&c).unwrap();
    c.heal();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    for &i in minority {
        assert!(!c.node(i).unwrap().is_partitioned());
        assert!(c
            .events()
            .iter()
            .any(|(_, id, e)| *id == c.id(i) && *e == Event::QuorumRestored));
    }
    invariants::check_all(&c).unwrap();
    assert_eq!(c.node(0).unwrap().count_children(), 500);
}

#[test]
fn majority_quorum_stops_the_minority_and_never_duplicates() {
    let opts = ClusterOptions::new(5)
        .seed(40)
        .strategies(with(|| Box::new(MajorityQuorum::new(5))));
    split_and_heal(Cluster::formed(opts).unwrap(), &[3, 4], &[0, 1, 2]);
}

#[test]
fn static_quorum_of_three_on_a_two_node_remainder() {
    let opts = ClusterOptions::new(4)
        .seed(41)
        .strategies(with(|| Box::new(StaticQuorum::new(3))));
    let mut c = formed_running(opts, 200);
    // Two crash: the 2-node remainder is below quorum 3 and stops.
    crash_until_partitioned(&mut c, &[2, 3], 0);
    assert!(c.settle());
    assert_eq!(
        c.runtime(0).running().count() + c.runtime(1).running().count(),
        0
    );
    // One comes back: quorum again, children restarted where they belong.
    c.restart(2);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert!(!c.node(0).unwrap().is_partitioned());
    invariants::check_all(&c).unwrap();
    let running: usize = [0, 1, 2]
        .iter()
        .map(|&i| c.runtime(i).running().count())
        .sum();
    assert_eq!(running, 200, "every child of the 200 runs again");
}

#[test]
fn dynamic_quorum_tolerates_a_slow_scale_down_but_not_a_mass_crash() {
    let opts = ClusterOptions::new(6).seed(42).strategies(with(|| {
        Box::new(DynamicQuorum {
            quorum_size: 60,
            threshold_time: Duration::from_secs(30),
        })
    }));
    let mut c = formed_running(opts, 300);
    // Graceful leaves, one by one: never partitioned.
    for i in [5, 4, 3] {
        c.leave(i).unwrap();
        assert!(c.settle());
        assert!(c
            .alive()
            .iter()
            .all(|&j| !c.node(j).unwrap().is_partitioned()));
    }
    assert_eq!(c.node(0).unwrap().count_children(), 300);
    // 2 of the 3 left crash at once: remaining 100 - 2*100/3 = 34% < 60%.
    crash_until_partitioned(&mut c, &[1, 2], 0);
}

#[test]
fn a_joiner_adopts_the_loss_log_and_does_not_act_outside_quorum() {
    let opts = ClusterOptions::new(5)
        .seed(71)
        .seeds(usize::MAX)
        .strategies(with(|| Box::new(DynamicQuorum::new(80))));
    let mut c = formed_running(opts, 100);
    // Two of five lost at once: 60% remain, below 80%.
    crash_until_partitioned(&mut c, &[3, 4], 0);
    // A fresh node joins within threshold_time. Alone in its log it would
    // see 4 of 4 members (100%); the log it adopts says 4 of 6 (66%).
    let joiner = c.add_node();
    let joined = c
        .run_until(Duration::from_secs(10), |c| {
            c.node(joiner).is_some_and(|n| n.nodes().len() == 4)
        })
        .unwrap();
    assert!(joined);
    c.run_for(Duration::from_secs(1)).unwrap();
    let n = c.node(joiner).unwrap();
    assert!(n.is_partitioned(), "the joiner ignored the recent losses");
    assert_eq!(c.runtime(joiner).running().count(), 0);
}

#[test]
fn startup_confirm_keeps_a_new_node_partitioned_until_it_sees_a_quorum() {
    for confirm in [true, false] {
        let opts = ClusterOptions::new(3)
            .seed(72)
            .strategies(move || Strategies {
                partition: Box::new(StaticQuorum {
                    quorum_size: 3,
                    startup_confirm: confirm,
                }),
                ..hub_strategies::defaults()
            });
        let mut c = Cluster::new(opts);
        assert_eq!(c.node(0).unwrap().is_partitioned(), confirm);
        if confirm {
            let r = c.start(0, specs(1), StartOptions::awaited());
            assert_eq!(r, Err(Failure::Refused(CommandError::Partitioned)));
        }
        assert!(c.settle());
        assert!(!c.node(0).unwrap().is_partitioned());
        assert!(c
            .start(0, specs(10), StartOptions::awaited())
            .unwrap()
            .is_ok());
    }
}

/// Graceful leaves (a node's own `Leave`, or a decommission sent from a
/// survivor) lower MajorityQuorum's expected cluster size, so 10 -> 3
/// never trips partition mode, one by one or all at once, and every child
/// keeps running.
#[test]
fn majority_quorum_survives_a_graceful_scale_down_from_ten_to_three() {
    for decommission in [false, true] {
        for all_at_once in [false, true] {
            let opts = ClusterOptions::new(10)
                .seed(44)
                .strategies(with(|| Box::new(MajorityQuorum::new(10))));
            let c = formed_running(opts, 300);
            scale_down_to_three(c, decommission, all_at_once);
        }
    }
}

/// DynamicQuorum forgets nodes that left gracefully: a decommission of 5
/// of 8 at once, inside `threshold_time`, keeps the three survivors out of
/// partition mode (a crash of 5 would not: 3 of 8 is below 60%).
#[test]
fn dynamic_quorum_survives_decommissioning_most_of_the_cluster_at_once() {
    let opts = ClusterOptions::new(8).seed(45).strategies(with(|| {
        Box::new(DynamicQuorum {
            quorum_size: 60,
            threshold_time: Duration::from_secs(300),
        })
    }));
    let c = formed_running(opts, 300);
    scale_down_to_three(c, true, true);
}

/// Takes nodes 3.. out (by their own leave or a decommission from node 0)
/// and checks that nodes 0..3 never entered partition mode and run all 300
/// children.
fn scale_down_to_three(mut c: Cluster, decommission: bool, all_at_once: bool) {
    let case = format!("decommission: {decommission}, all at once: {all_at_once}");
    // Nodes may start partitioned until they see a quorum; only what
    // happens from here on counts.
    let formed_at = c.events().len();
    let leavers: Vec<usize> = (3..c.len()).rev().collect();
    let command = |c: &mut Cluster, i: usize| {
        if decommission {
            let target = c.id(i);
            c.command(0, hub_core::Command::Decommission(target))
                .unwrap()
        } else {
            c.command(i, hub_core::Command::Leave).unwrap()
        }
    };
    let expect = |c: &Cluster, i: usize| {
        if decommission {
            hub_core::Reply::Decommissioned(c.id(i))
        } else {
            hub_core::Reply::Left
        }
    };
    if all_at_once {
        let replies: Vec<_> = leavers.iter().map(|&i| (i, command(&mut c, i))).collect();
        for (i, r) in replies {
            let reply = c.wait_reply(r, Duration::from_secs(300)).unwrap();
            assert_eq!(reply, expect(&c, i), "{case}");
        }
    } else {
        for &i in &leavers {
            let r = command(&mut c, i);
            let reply = c.wait_reply(r, Duration::from_secs(300)).unwrap();
            assert_eq!(reply, expect(&c, i), "{case}");
            assert!(c.settle(), "{case}: {:?}", c.unquiet_reason());
            for k in 0..i {
                assert!(
                    !c.node(k).unwrap().is_partitioned(),
                    "{case}: node {k} after {i} left"
                );
            }
        }
    }
    assert!(c.settle(), "{case}: {:?}", c.unquiet_reason());
    for &i in &leavers {
        assert!(!c.node(i).unwrap().is_alive(), "{case}: node {i} still up");
    }
    let partitioned = c.events()[formed_at..].iter().any(|(_, n, e)| {
        matches!(e, Event::Partitioned) && [c.id(0), c.id(1), c.id(2)].contains(n)
    });
    assert!(
        !partitioned,
        "{case}: a remaining node entered partition mode"
    );
    let running: usize = (0..3).map(|i| c.runtime(i).running().count()).sum();
    assert_eq!(running, 300, "{case}");
}

/// A decommission names a live member; a node that is gone or unknown is
/// refused with a clear error, and decommissioning a node twice answers
/// both.
#[test]
fn decommission_refuses_unknown_nodes_and_answers_repeats() {
    let mut c = formed_running(ClusterOptions::new(3).seed(46), 30);
    let r = c
        .command(0, hub_core::Command::Decommission("nobody".into()))
        .unwrap();
    assert_eq!(
        c.wait_reply(r, Duration::from_secs(1)).unwrap(),
        hub_core::Reply::Error(hub_core::CommandError::UnknownNode("nobody".into()))
    );
    let target = c.id(2);
    let first = c
        .command(0, hub_core::Command::Decommission(target.clone()))
        .unwrap();
    let second = c
        .command(1, hub_core::Command::Decommission(target.clone()))
        .unwrap();
    for r in [first, second] {
        assert_eq!(
            c.wait_reply(r, Duration::from_secs(60)).unwrap(),
            hub_core::Reply::Decommissioned(target.clone())
        );
    }
    assert!(c.settle());
    // Once it has left, asking again is answered at once.
    let again = c
        .command(0, hub_core::Command::Decommission(target.clone()))
        .unwrap();
    assert_eq!(
        c.wait_reply(again, Duration::from_millis(1)).unwrap(),
        hub_core::Reply::Decommissioned(target)
    );
    let running: usize = (0..2).map(|i| c.runtime(i).running().count()).sum();
    assert_eq!(running, 30);
}
