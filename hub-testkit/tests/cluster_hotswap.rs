//! Migration over the in-memory cluster: state kept across joins, graceful
//! leaves and decommissions by ColdSwap (final state) and HotSwap
//! (handover); HotSwap's overlap, refusals and timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use hub_core::{ChildId, Event, NodeId, StartOptions, Strategies};
use hub_strategies::HotSwap;
use hub_testkit::{invariants, specs, Cluster, ClusterOptions};

fn strategies(hot: HotSwap) -> impl Fn() -> Strategies {
    move || {
        let mut s = hub_strategies::defaults();
        s.migration = hot.into();
        s
    }
}

fn cold() -> Strategies {
    hub_strategies::defaults()
}

fn holder(c: &Cluster, id: &ChildId) -> usize {
    let holders = c.node(c.alive()[0]).unwrap().child_lookup(id.as_str());
    assert_eq!(holders.len(), 1, "{id} has holders {holders:?}");
    c.index_of(&holders[0].0).unwrap()
}

/// Starts `n` children and gives child k `k % 7 + 1` units of work on the
/// node that runs it; returns every child's counter.
fn start_and_work(c: &mut Cluster, n: usize) -> BTreeMap<ChildId, u64> {
    assert!(c
        .start(0, specs(n), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let mut counters = BTreeMap::new();
    for (k, spec) in specs(n).into_iter().enumerate() {
        let at = holder(c, &spec.id);
        let mut last = 0;
        for _ in 0..(k % 7 + 1) {
            last = c.runtime_mut(at).bump(spec.id.as_str()).unwrap();
        }
        counters.insert(spec.id, last);
    }
    counters
}

/// Every child runs once, where the ring says, with the counter it had.
fn assert_counters_kept(c: &Cluster, counters: &BTreeMap<ChildId, u64>) {
    invariants::check_all(c).unwrap();
    for (id, &n) in counters {
        let at = holder(c, id);
        assert_eq!(c.runtime(at).counter(id.as_str()), Some(n), "{id} on {at}");
    }
}

/// 1,000 stateful children through a join, a graceful leave and a
/// decommission: every counter survives, with either migration strategy.
fn counters_survive_join_leave_and_decommission(strategies: impl Fn() -> Strategies + 'static) {
    let opts = ClusterOptions::new(3).seed(21).strategies(strategies);
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 1000);
    let joined = c.add_node();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert!(
        c.runtime(joined).running().count() > 100,
        "the join moved too little"
    );
    assert_counters_kept(&c, &counters);
    c.leave(1).unwrap();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert_counters_kept(&c, &counters);
    let target = c.id(2);
    let r = c
        .command(0, hub_core::Command::Decommission(target))
        .unwrap();
    let reply = c.wait_reply(r, Duration::from_secs(120)).unwrap();
    assert!(
        matches!(reply, hub_core::Reply::Decommissioned(_)),
        "{reply:?}"
    );
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert_eq!(c.runtime(2).running().count(), 0);
    assert_counters_kept(&c, &counters);
}

#[test]
fn cold_swap_keeps_every_counter_across_a_join_a_leave_and_a_decommission() {
    counters_survive_join_leave_and_decommission(cold);
}

#[test]
fn hot_swap_with_handover_keeps_every_counter_across_a_join_a_leave_and_a_decommission() {
    counters_survive_join_leave_and_decommission(strategies(handover()));
}

fn handover() -> HotSwap {
    HotSwap::default().with_handover(true)
}

#[test]
fn hot_swap_with_handover_keeps_every_counter_across_a_join() {
    let opts = ClusterOptions::new(3)
        .seed(11)
        .strategies(strategies(handover()));
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 600);
    let joined = c.add_node();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let moved = c.runtime(joined).running().count();
    assert!(moved > 50, "only {moved} children moved to the joiner");
    assert_counters_kept(&c, &counters);
    let migrated: usize = c
        .events()
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::ChildMigrated { to, children } if *to == c.id(joined) => Some(children.len()),
            _ => None,
        })
        .sum();
    assert_eq!(migrated, moved, "a ChildMigrated event per moved child");
}

#[test]
fn hot_swap_with_handover_keeps_every_counter_across_a_graceful_leave() {
    let opts = ClusterOptions::new(4)
        .seed(12)
        .strategies(strategies(handover()));
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 600);
    let had = c.runtime(2).running().count();
    assert!(had > 50);
    c.leave(2).unwrap();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    assert_eq!(c.runtime(2).running().count(), 0);
    assert_counters_kept(&c, &counters);
}

#[test]
fn without_handover_children_restart_from_scratch_but_none_is_lost() {
    let opts = ClusterOptions::new(3)
        .seed(13)
        .strategies(strategies(HotSwap::default()));
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 300);
    let joined = c.add_node();
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    let moved: Vec<ChildId> = c
        .runtime(joined)
        .running()
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!moved.is_empty());
    for id in &moved {
        assert_eq!(c.runtime(joined).counter(id.as_str()), Some(0));
    }
    assert_eq!(c.node(0).unwrap().count_children(), counters.len());
}

/// Steps through a join one millisecond at a time and reports whether any
/// moving child ever ran on two nodes at once.
fn overlap_during_a_join(strategies: impl Fn() -> Strategies + 'static) -> bool {
    let opts = ClusterOptions::new(3)
        .seed(14)
        .process_latency(Duration::from_millis(20))
        .strategies(strategies);
    let mut c = Cluster::formed(opts).unwrap();
    assert!(c
        .start(0, specs(200), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let joined = c.add_node();
    let mut overlap = false;
    for _ in 0..5_000 {
        c.run_for(Duration::from_millis(1)).unwrap();
        overlap |= c
            .runtime(joined)
            .running()
            .any(|(id, _)| (0..3).any(|i| c.runtime(i).is_running(id.as_str())));
        if c.is_quiet() {
            break;
        }
    }
    assert!(c.settle());
    invariants::check_all(&c).unwrap();
    overlap
}

#[test]
fn hot_swap_starts_the_new_copy_before_the_old_stops_and_cold_swap_never_does() {
    assert!(overlap_during_a_join(strategies(HotSwap::default())));
    assert!(!overlap_during_a_join(cold));
}

#[test]
fn a_refused_move_keeps_the_old_copy_running_with_its_state() {
    let opts = ClusterOptions::new(3)
        .seed(15)
        .strategies(strategies(handover()));
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 300);
    let joined = c.add_node();
    for id in counters.keys() {
        c.runtime_mut(joined).refuse(id.clone());
    }
    c.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(c.runtime(joined).running().count(), 0);
    let failed: Vec<(NodeId, ChildId)> = c
        .events()
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::ChildFailed { id, reason } if reason.contains("could not start") => {
                Some((n.clone(), id.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty(), "no refusal reported");
    // Every refused child still runs on its old node, resumed, counter kept.
    for (node, id) in failed {
        let at = c.index_of(&node).unwrap();
        assert_eq!(c.runtime(at).counter(id.as_str()), Some(counters[&id]));
        assert_eq!(
            c.runtime_mut(at).bump(id.as_str()),
            Some(counters[&id] + 1),
            "{id} is still paused"
        );
    }
    for n in c.alive() {
        assert_eq!(c.node(n).unwrap().count_children(), counters.len());
    }
}

#[test]
fn a_move_past_child_migration_timeout_is_abandoned_and_retried_until_it_lands() {
    // The timeout is shorter than a round trip: every first offer times
    // out; the late acknowledgement or the next reconcile settles it.
    let hot = HotSwap {
        child_migration_timeout: Duration::from_millis(1),
        ..handover()
    };
    let opts = ClusterOptions::new(3)
        .seed(16)
        .net(hub_testkit::NetConfig {
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            ..Default::default()
        })
        .strategies(strategies(hot));
    let mut c = Cluster::formed(opts).unwrap();
    assert!(c
        .start(0, specs(100), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c.add_node();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::check_all(&c).unwrap();
    assert!(c.events().iter().any(|(_, _, e)| matches!(
        e,
        Event::ChildFailed { reason, .. } if reason.contains("child_migration_timeout")
    )));
    assert_eq!(c.node(0).unwrap().count_children(), 100);
}

#[test]
fn the_old_copy_stays_when_the_new_owner_crashes_mid_move() {
    let opts = ClusterOptions::new(3)
        .seed(17)
        .process_latency(Duration::from_millis(200))
        .strategies(strategies(handover()));
    let mut c = Cluster::formed(opts).unwrap();
    let counters = start_and_work(&mut c, 300);
    let joined = c.add_node();
    let handing = |c: &Cluster| {
        (0..3).any(|i| {
            c.node(i)
                .is_some_and(|n| n.unsettled().is_some_and(|u| u.handing > 0))
        })
    };
    assert!(c.run_until(Duration::from_secs(30), handing).unwrap());
    c.crash(joined);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    invariants::check_all(&c).unwrap();
    // Children that never reached the joiner kept their state.
    let mut kept = 0;
    for (id, &n) in &counters {
        let at = holder(&c, id);
        if c.runtime(at).counter(id.as_str()) == Some(n) {
            kept += 1;
        }
    }
    assert!(kept > counters.len() / 2, "only {kept} kept their state");
    assert_eq!(c.node(0).unwrap().count_children(), counters.len());
}
