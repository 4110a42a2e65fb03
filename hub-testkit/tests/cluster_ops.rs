//! Stops, queries, events, locking, leave and forwarding over the testkit.

use std::time::Duration;

use hub_core::{
    ChildId, ChildSpec, Command, CommandError, Direction, Event, Message, NodeId, OnFailure, Reply,
    StartError, StartOptions, StopError, StopOptions,
};
use hub_testkit::{invariants, specs, Cluster, ClusterOptions, Failure};

fn formed(nodes: usize, seed: u64) -> Cluster {
    Cluster::formed(ClusterOptions::new(nodes).seed(seed)).unwrap()
}

#[test]
fn awaited_stop_reports_per_child_and_unknown_ids_fail_at_once() {
    let mut c = formed(3, 20);
    assert!(c
        .start(0, specs(20), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let t0 = c.now();
    let out = c
        .stop(
            1,
            vec!["child-3".into(), "nope".into()],
            StopOptions::awaited(),
        )
        .unwrap();
    assert_eq!(out.stopped.len(), 1);
    assert_eq!(
        out.failed,
        vec![(ChildId::from("nope"), None, StopError::NotFound)]
    );
    assert!(
        c.now().since(t0) < Duration::from_secs(1),
        "must not wait for a timeout"
    );
    assert!(c.settle());
    for i in 0..3 {
        assert!(c.node(i).unwrap().child_lookup("child-3").is_empty());
        assert_eq!(c.node(i).unwrap().count_children(), 19);
    }
    invariants::check_all(&c).unwrap();
}

#[test]
fn empty_batches_and_invalid_specs_are_refused_whole() {
    let mut c = formed(2, 21);
    assert_eq!(
        c.start(0, vec![], StartOptions::awaited()),
        Err(Failure::Refused(CommandError::NoChildren))
    );
    assert!(matches!(
        c.start(
            0,
            vec![
                ChildSpec::new("ok", "counter"),
                ChildSpec::new("", "counter")
            ],
            StartOptions::awaited()
        ),
        Err(Failure::Refused(CommandError::InvalidSpec { .. }))
    ));
    assert_eq!(
        c.stop(0, vec![], StopOptions::awaited()),
        Err(Failure::Refused(CommandError::NoChildren))
    );
    assert!(c.settle());
    assert_eq!(c.node(1).unwrap().count_children(), 0);
}

#[test]
fn queries_answer_from_the_local_registry() {
    let mut c = formed(3, 22);
    let tagged: Vec<ChildSpec> = (0..10)
        .map(|i| {
            ChildSpec::new(format!("t{i}"), "echo")
                .with_metadata("tier", if i % 2 == 0 { "gold" } else { "free" })
        })
        .collect();
    assert!(c.start(2, tagged, StartOptions::awaited()).unwrap().is_ok());
    assert!(c.settle());
    let n = c.node(0).unwrap();
    assert_eq!(n.count_children(), 10);
    let gold = n.match_metadata("tier", "gold");
    assert_eq!(gold.len(), 5);
    let global = n.which_children(true);
    assert_eq!(global.values().map(Vec::len).sum::<usize>(), 10);
    let local = n.which_children(false);
    assert!(local.keys().all(|k| k == n.id()));
    assert_eq!(
        local.values().map(Vec::len).sum::<usize>(),
        c.runtime(0).running().count()
    );
    assert_eq!(n.nodes().len(), 3);
    assert!(n.is_alive() && !n.is_locked() && !n.is_partitioned());
}

#[test]
fn non_awaited_start_replies_at_once_and_still_starts() {
    let mut c = formed(3, 23);
    let r = c
        .command(
            0,
            Command::StartChildren {
                specs: specs(50),
                opts: StartOptions::default(),
            },
        )
        .unwrap();
    assert_eq!(
        c.wait_reply(r, Duration::from_millis(1)).unwrap(),
        Reply::StartInitiated
    );
    assert!(c.settle());
    assert_eq!(c.node(2).unwrap().count_children(), 50);
}

#[test]
fn a_join_emits_redistribution_events_and_queues_commands_under_the_lock() {
    // Processes take 50 ms to start or stop, so migrations hold the lock
    // long enough to send a command into it.
    let opts = ClusterOptions::new(3)
        .seed(24)
        .process_latency(Duration::from_millis(50));
    let mut c = Cluster::new(opts);
    assert!(c.settle());
    assert!(c
        .start(0, specs(3_000), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let d = c.add_node();
    // Run until node 0 is redistributing, then give it a command.
    assert!(c
        .run_until(Duration::from_secs(10), |c| c.node(0).unwrap().is_locked())
        .unwrap());
    let r = c
        .command(
            0,
            Command::StartChildren {
                specs: vec![ChildSpec::new("late", "echo")],
                opts: StartOptions::awaited(),
            },
        )
        .unwrap();
    match c.wait_reply(r, Duration::from_secs(60)).unwrap() {
        Reply::Started(o) => assert!(o.is_ok(), "{o:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(c.settle());
    let n0 = c.id(0);
    let mine: Vec<&Event> = c
        .events()
        .iter()
        .filter(|(_, n, _)| *n == n0)
        .map(|(_, _, e)| e)
        .collect();
    let pos = |want: &Event| mine.iter().position(|e| *e == want);
    let join = pos(&Event::ClusterJoin(c.id(d))).expect("ClusterJoin");
    let pre = pos(&Event::PreRedistribution {
        direction: Direction::Up,
        node: c.id(d),
    })
    .expect("Pre");
    let up = pos(&Event::PriorityStateUpdated { level: 1 }).expect("priority 1");
    let post = pos(&Event::PostRedistribution {
        direction: Direction::Up,
        node: c.id(d),
    })
    .expect("Post");
    let down = mine
        .iter()
        .rposition(|e| **e == Event::PriorityStateUpdated { level: 0 })
        .expect("priority 0");
    assert!(join < pre && pre < post && up < post && post < down);
    // The queued start ran after the lock lifted.
    let started_late = mine
        .iter()
        .position(|e| matches!(e, Event::RegistryInserted { id, .. } if id.as_str() == "late"))
        .expect("late child registered");
    assert!(started_late > post);
    invariants::check_all(&c).unwrap();
}

#[test]
fn graceful_leave_hands_every_child_over() {
    let mut c = formed(4, 25);
    let acked: Vec<ChildId> = c
        .start(0, specs(1_200), StartOptions::awaited())
        .unwrap()
        .started
        .into_keys()
        .collect();
    assert!(c.settle());
    let leaving_had = c.runtime(3).running().count();
    assert!(leaving_had > 0);
    c.leave(3).unwrap();
    assert!(!c.node(3).unwrap().is_alive());
    assert_eq!(c.runtime(3).running().count(), 0);
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    invariants::none_lost(&c, &acked).unwrap();
    let migrated: usize = c
        .events()
        .iter()
        .filter(|(_, n, _)| *n == c.id(3))
        .filter_map(|(_, _, e)| match e {
            Event::ChildMigrated { children, .. } => Some(children.len()),
            _ => None,
        })
        .sum();
    assert_eq!(migrated, leaving_had);
    // Commands to a node that left are refused.
    assert_eq!(
        c.start(3, specs(1), StartOptions::awaited()),
        Err(Failure::Refused(CommandError::ShuttingDown))
    );
}

#[test]
fn a_lossy_duplicating_reordering_network_still_converges() {
    let net = hub_testkit::NetConfig {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(40),
        drop_rate: 0.05,
        duplicate_rate: 0.05,
    };
    let mut c = Cluster::new(ClusterOptions::new(4).seed(26).net(net));
    assert!(c.settle());
    let opts = StartOptions {
        timeout: Duration::from_secs(5),
        ..StartOptions::awaited()
    };
    let out = c.start(0, specs(500), opts).unwrap();
    let acked: Vec<ChildId> = out.started.keys().cloned().collect();
    // A lost request or result makes its children time out; nothing else.
    assert!(!acked.is_empty());
    assert!(
        out.failed.iter().all(|f| f.error == StartError::Timeout),
        "{:?}",
        out.failed.first()
    );
    assert_eq!(acked.len() + out.failed.len(), 500);
    c.crash(1);
    assert!(c.settle(), "did not converge on a lossy network");
    // Perfect network again: everything must line up exactly.
    c.set_net(hub_testkit::NetConfig::default());
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    invariants::none_lost(&c, &acked).unwrap();
    let (sent, dropped) = c.message_counts();
    assert!(dropped > 0 && sent > dropped);
}

#[test]
fn forwarding_between_nodes_that_disagree_is_hop_limited() {
    let mut c = formed(3, 27);
    let non_owned = |c: &Cluster, prefix: &str| {
        (0..100)
            .map(|i| ChildSpec::new(format!("{prefix}{i}"), "echo"))
            .find(|s| c.node(0).unwrap().placement(s)[0] != c.id(0))
            .unwrap()
    };
    let forwarded = |c: &Cluster, spec: &ChildSpec| {
        c.events().iter().any(|(_, n, e)| {
            *n == c.id(0)
                && matches!(e, Event::ForwardedMigration { ids, .. } if ids.contains(&spec.id))
        })
    };
    let request = |c: &Cluster, spec: &ChildSpec, hops: usize| Message::StartRequest {
        op: hub_core::protocol::OpRef {
            origin: c.id(1),
            seq: 999,
        },
        specs: vec![spec.clone()],
        check_existing: true,
        path: (0..hops).map(|i| format!("hop{i}").into()).collect(),
    };
    // Within the limit: a non-owner passes the start on to the owner.
    let near = non_owned(&c, "near");
    let owner = c.node(0).unwrap().placement(&near)[0].clone();
    let msg = request(&c, &near, 1);
    c.deliver(1, 0, msg);
    assert!(c.settle());
    assert!(forwarded(&c, &near));
    assert_eq!(
        c.node(1).unwrap().child_lookup(near.id.as_str())[0].0,
        owner
    );
    // Past the limit (path of 4 > 3 hops): refused, not passed on.
    let far = non_owned(&c, "far");
    let msg = request(&c, &far, 4);
    c.deliver(1, 0, msg);
    assert!(c.settle());
    assert!(
        !forwarded(&c, &far),
        "past the hop limit nothing is forwarded"
    );
    assert!(c.node(1).unwrap().child_lookup(far.id.as_str()).is_empty());
    // An event names every node the request passed and the next one.
    let far_owner = c.node(0).unwrap().placement(&far)[0].clone();
    let named = c.events().iter().find_map(|(_, n, e)| match e {
        Event::ForwardingLimit { id, path, next } if *n == c.id(0) && *id == far.id => {
            Some((path.clone(), next.clone()))
        }
        _ => None,
    });
    let mut expected: Vec<NodeId> = (0..4).map(|i| format!("hop{i}").into()).collect();
    expected.push(c.id(0));
    assert_eq!(named, Some((expected, Some(far_owner))));
}

#[test]
fn starts_on_a_partitioned_node_are_refused_and_children_stop() {
    #[derive(Debug)]
    struct NeedsTwo;
    impl hub_core::PartitionStrategy for NeedsTwo {
        fn name(&self) -> &'static str {
            "needs_two"
        }
        fn is_partitioned(&mut self, view: &hub_core::QuorumView<'_>) -> bool {
            view.visible < 2
        }
    }
    let opts = ClusterOptions::new(3)
        .seed(28)
        .strategies(|| hub_core::Strategies {
            partition: Box::new(NeedsTwo),
            ..hub_strategies::defaults()
        });
    let mut c = Cluster::new(opts);
    assert!(c.settle());
    assert!(c
        .start(0, specs(300), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c.partition(&[&[0, 1], &[2]]);
    assert!(c
        .run_until(Duration::from_secs(30), |c| c
            .node(2)
            .unwrap()
            .is_partitioned())
        .unwrap());
    assert!(c.settle());
    assert_eq!(
        c.runtime(2).running().count(),
        0,
        "a minority node stops its children"
    );
    assert!(c
        .events()
        .iter()
        .any(|(_, n, e)| *n == c.id(2) && *e == Event::Partitioned));
    assert_eq!(
        c.start(2, specs(1), StartOptions::awaited()),
        Err(Failure::Refused(CommandError::Partitioned))
    );
    // The majority took over everything.
    assert_eq!(
        c.runtime(0).running().count() + c.runtime(1).running().count(),
        300
    );
    c.heal();
    assert!(c.settle());
    assert!(!c.node(2).unwrap().is_partitioned());
    assert!(c
        .events()
        .iter()
        .any(|(_, n, e)| *n == c.id(2) && *e == Event::QuorumRestored));
    invariants::check_all(&c).unwrap();
    assert!(c.runtime(2).running().count() > 50);
}

#[test]
fn a_child_that_fails_for_good_is_removed_everywhere() {
    let mut c = formed(3, 29);
    assert!(c
        .start(0, specs(10), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let id = ChildId::from("child-4");
    let host = (0..3)
        .find(|&i| c.runtime(i).is_running("child-4"))
        .unwrap();
    c.exit_child(
        host,
        &id,
        hub_core::ExitReason::Failed("too many restarts".into()),
    );
    assert!(c.settle());
    for i in 0..3 {
        assert!(c.node(i).unwrap().child_lookup("child-4").is_empty());
    }
    assert!(c
        .events()
        .iter()
        .any(|(_, _, e)| matches!(e, Event::ChildFailed { id, .. } if id.as_str() == "child-4")));
    invariants::check_all(&c).unwrap();
}

#[test]
fn same_seed_same_run() {
    fn run(seed: u64) -> Vec<String> {
        let net = hub_testkit::NetConfig {
            drop_rate: 0.02,
            max_delay: Duration::from_millis(20),
            ..Default::default()
        };
        let mut c = Cluster::new(ClusterOptions::new(4).seed(seed).net(net));
        c.settle();
        let _ = c.start(
            0,
            specs(200),
            StartOptions {
                on_failure: OnFailure::Continue,
                ..StartOptions::awaited()
            },
        );
        c.crash(2);
        c.settle();
        c.add_node();
        c.settle();
        c.trace()
    }
    let a = run(77);
    assert!(a.len() > 100);
    assert_eq!(a, run(77));
    assert_ne!(a, run(78));
}

#[test]
fn awaited_starts_and_stops_reply_as_soon_as_the_results_are_in() {
    for nodes in [1, 3] {
        let mut c = formed(nodes, 30);
        let t0 = c.now();
        assert!(c
            .start(0, specs(40), StartOptions::awaited())
            .unwrap()
            .is_ok());
        let ids = specs(40).into_iter().map(|s| s.id).collect();
        assert!(c.stop(0, ids, StopOptions::awaited()).unwrap().is_ok());
        let took = c.now().since(t0);
        assert!(
            took < Duration::from_millis(100),
            "{nodes} nodes: took {took:?}"
        );
    }
}

#[test]
fn the_redistribution_lock_lifts_by_itself_and_queued_commands_time_out() {
    // Processes take 2 s to stop, the lock times out after 1 s: a slow
    // migration must not hold the node hostage.
    let opts = ClusterOptions::new(3)
        .seed(31)
        .process_latency(Duration::from_secs(2))
        .configure(|cfg| cfg.lock_timeout = Duration::from_secs(1));
    let mut c = Cluster::new(opts);
    assert!(c.settle());
    assert!(c
        .start(0, specs(500), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let d = c.add_node();
    assert!(c
        .run_until(Duration::from_secs(1), |c| c.node(0).unwrap().is_locked())
        .unwrap());
    let locked_at = c.now();
    // A start queued behind the lock with a short timeout fails cleanly.
    let quick = StartOptions {
        timeout: Duration::from_millis(100),
        ..StartOptions::awaited()
    };
    let r = c
        .command(
            0,
            Command::StartChildren {
                specs: vec![ChildSpec::new("q", "echo")],
                opts: quick,
            },
        )
        .unwrap();
    assert_eq!(
        c.wait_reply(r, Duration::from_secs(1)).unwrap(),
        Reply::Error(CommandError::LockTimeout)
    );
    assert!(c
        .run_until(Duration::from_secs(2), |c| !c.node(0).unwrap().is_locked())
        .unwrap());
    let held = c.now().since(locked_at);
    assert!(held <= Duration::from_millis(1010), "lock held {held:?}");
    assert!(
        !c.node(0).unwrap().is_settled(),
        "migrations are still running"
    );
    let post = c.events().iter().any(|(_, n, e)| {
        *n == c.id(0)
            && *e
                == Event::PostRedistribution {
                    direction: Direction::Up,
                    node: c.id(d),
                }
    });
    assert!(post, "the timed-out lock still closes its redistribution");
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
}

#[test]
fn awaited_starts_are_resent_until_every_owner_answers() {
    // One message in five is lost: without re-sending, a batch spread over
    // three owners almost surely loses a request or an answer.
    for check_existing in [false, true] {
        let mut c = formed(3, 41);
        c.set_net(hub_testkit::NetConfig {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            drop_rate: 0.2,
            duplicate_rate: 0.0,
        });
        let opts = StartOptions {
            timeout: Duration::from_secs(60),
            check_existing,
            ..StartOptions::awaited()
        };
        for batch in 0..5 {
            let specs: Vec<ChildSpec> = (0..20)
                .map(|k| ChildSpec::new(format!("b{batch}-{k}"), "counter"))
                .collect();
            let out = c.start(0, specs, opts).unwrap();
            assert!(out.is_ok(), "batch {batch}: {:?}", out.failed);
            assert_eq!(out.started.len(), 20);
        }
        c.set_net(hub_testkit::NetConfig::default());
        assert!(c.settle());
        invariants::check_all(&c).unwrap();
        assert_eq!(c.node(1).unwrap().count_children(), 100);
    }
}
