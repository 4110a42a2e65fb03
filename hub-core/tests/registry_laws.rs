//! Registry CRDT laws and delta sync.

use hub_core::registry::{Registry, SliceDelta};
use hub_core::{ChildSpec, Handle, NodeId};
use proptest::prelude::*;

/// One write by one of three writers: insert (with handle) or remove.
#[derive(Clone, Debug)]
struct Write {
    writer: usize,
    child: u8,
    handle: Option<u64>,
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    proptest::collection::vec(
        (0usize..3, 0u8..12, proptest::option::of(0u64..1000)).prop_map(
            |(writer, child, handle)| Write {
                writer,
                child,
                handle,
            },
        ),
        0..40,
    )
}

/// Runs the writes on their writers; returns every delta in write order and
/// the writers' own registries.
fn history(ws: &[Write], incarnation: u64) -> Vec<SliceDelta> {
    let mut regs: Vec<Registry> = (0..3).map(|_| Registry::new()).collect();
    let mut deltas = Vec::new();
    for w in ws {
        let me = NodeId::new(format!("w{}", w.writer));
        let id = format!("c{}", w.child);
        let reg = &mut regs[w.writer];
        match w.handle {
            Some(h) => {
                let (d, _) = reg.local_insert(
                    &me,
                    incarnation,
                    // The kind follows the handle, so one id can change
                    // kind between writes.
                    ChildSpec::new(id.as_str(), format!("k{}", h % 3)),
                    Handle(h),
                );
                deltas.push(d);
            }
            None => {
                if let Some((d, _)) = reg.local_remove(&me, incarnation, &id.as_str().into()) {
                    deltas.push(d);
                }
            }
        }
    }
    deltas
}

/// A replica that saw the deltas picked by `mask`, in the given order.
fn replica(deltas: &[SliceDelta], mask: &[bool]) -> Registry {
    let mut r = Registry::new();
    for (d, keep) in deltas.iter().zip(mask.iter().cycle()) {
        if *keep {
            r.apply(d);
        }
    }
    r
}

/// Running rows per (node, kind), counted from the rows themselves.
fn recount(r: &Registry) -> Vec<(NodeId, String, usize)> {
    let mut counts: std::collections::BTreeMap<(NodeId, String), usize> = Default::default();
    for node in r.slice_nodes() {
        for (_, row) in r.slice_rows(node) {
            if row.running().is_some() {
                *counts
                    .entry((node.clone(), row.spec.kind.clone()))
                    .or_default() += 1;
            }
        }
    }
    counts.into_iter().map(|((n, k), c)| (n, k, c)).collect()
}

fn kept_counts(r: &Registry) -> Vec<(NodeId, String, usize)> {
    r.running_by_kind()
        .map(|(n, k, c)| (n.clone(), k.to_string(), c))
        .collect()
}

fn merged(a: &Registry, b: &Registry) -> Registry {
    let mut x = a.clone();
    x.merge(b);
    x
}

proptest! {
    /// The per-kind counts kept as rows change equal a recount of the
    /// rows, on any replica, after merges, and after a slice is dropped.
    #[test]
    fn running_counts_by_kind_always_equal_a_recount(
        ws in writes(),
        ma in proptest::collection::vec(any::<bool>(), 1..8),
        mb in proptest::collection::vec(any::<bool>(), 1..8),
        drop_writer in 0usize..3,
    ) {
        let deltas = history(&ws, 1);
        let a = replica(&deltas, &ma);
        prop_assert_eq!(kept_counts(&a), recount(&a));
        let mut m = merged(&a, &replica(&deltas, &mb));
        prop_assert_eq!(kept_counts(&m), recount(&m));
        m.remove_slice(&NodeId::new(format!("w{drop_writer}")));
        prop_assert_eq!(kept_counts(&m), recount(&m));
        // A newer incarnation of a writer replaces its slice.
        for d in history(&ws, 2).iter().take(3) {
            m.apply(d);
        }
        prop_assert_eq!(kept_counts(&m), recount(&m));
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent(
        ws in writes(),
        ma in proptest::collection::vec(any::<bool>(), 1..8),
        mb in proptest::collection::vec(any::<bool>(), 1..8),
        mc in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let deltas = history(&ws, 1);
        let (a, b, c) = (replica(&deltas, &ma), replica(&deltas, &mb), replica(&deltas, &mc));
        prop_assert_eq!(merged(&a, &b).view(), merged(&b, &a).view());
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        // Merging everything gives the writers' final state.
        let full = replica(&deltas, &[true]);
        prop_assert_eq!(merged(&merged(&a, &b), &merged(&c, &full)), full);
    }

    #[test]
    fn delta_sync_reaches_the_same_state_as_a_full_merge(
        ws in writes(),
        mask in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let deltas = history(&ws, 1);
        let source = replica(&deltas, &[true]);
        let mut target = replica(&deltas, &mask);
        let mut expected = target.clone();
        expected.merge(&source);
        // Digest exchange: for each slice, the source sends what is newer
        // than the target's clock.
        for node in source.slice_nodes().cloned().collect::<Vec<_>>() {
            let d = source.delta_since(&node, target.clock(&node));
            target.apply(&d);
        }
        prop_assert_eq!(&target, &expected);
        prop_assert_eq!(target.view(), source.view());
    }

    #[test]
    fn deltas_applied_in_any_order_converge_and_close_their_gaps(
        ws in writes(),
        rotate in 0usize..40,
    ) {
        let mut deltas = history(&ws, 1);
        let in_order = replica(&deltas, &[true]);
        if !deltas.is_empty() {
            let k = rotate % deltas.len();
            deltas.rotate_left(k);
        }
        let shuffled = replica(&deltas, &[true]);
        prop_assert_eq!(&shuffled, &in_order);
        prop_assert!(shuffled.gaps().is_empty(), "all deltas arrived: no gap may remain");
    }
}

#[test]
fn a_newer_incarnation_replaces_the_old_slice() {
    let me = NodeId::new("a");
    let mut remote = Registry::new();
    let mut old = Registry::new();
    let (d1, _) = old.local_insert(&me, 1, ChildSpec::new("x", "k"), Handle(1));
    remote.apply(&d1);
    assert_eq!(remote.lookup("x").len(), 1);
    let mut new = Registry::new();
    let (d2, _) = new.local_insert(&me, 2, ChildSpec::new("y", "k"), Handle(5));
    remote.apply(&d2);
    assert!(
        remote.lookup("x").is_empty(),
        "rows of the dead incarnation must go"
    );
    assert_eq!(remote.lookup("y"), vec![(me.clone(), Handle(5))]);
    // A late delta of the old incarnation changes nothing.
    remote.apply(&d1);
    assert!(remote.lookup("x").is_empty());
}

#[test]
fn lookup_and_metadata_queries() {
    let me = NodeId::new("a");
    let mut r = Registry::new();
    r.local_insert(
        &me,
        1,
        ChildSpec::new("x", "k").with_metadata("zone", "eu"),
        Handle(1),
    );
    r.local_insert(
        &me,
        1,
        ChildSpec::new("y", "k").with_metadata("zone", "us"),
        Handle(2),
    );
    r.local_insert(
        &me,
        1,
        ChildSpec::new("z", "k").with_metadata("zone", "eu"),
        Handle(3),
    );
    assert_eq!(r.match_metadata("zone", "eu"), vec!["x".into(), "z".into()]);
    assert_eq!(r.len(), 3);
    r.local_remove(&me, 1, &"x".into());
    assert_eq!(r.match_metadata("zone", "eu"), vec!["z".into()]);
    assert!(r.lookup("x").is_empty());
}

/// Two moving rows of one id, a node's own stale one first in node order
/// and the one of the node really handing it over: `moving_rows` names
/// both, so "is another node handing it to me?" is not hidden by the
/// first. (A simulated node once restarted a child from its own older
/// state while the newer one was on its way, because only the first
/// moving row was looked at: seed 5000386 of the crash-window history.)
#[test]
fn every_moving_row_of_an_id_is_seen() {
    let (a, b) = (NodeId::new("a"), NodeId::new("b"));
    let id: hub_core::ChildId = "c".into();
    let mut on_a = Registry::new();
    let mut on_b = Registry::new();
    on_a.local_insert(&a, 1, ChildSpec::new("c", "k"), Handle(1));
    let (da, _) = on_a
        .local_mark_moving(&a, 1, &id, a.clone())
        .expect("a's row");
    on_b.local_insert(&b, 1, ChildSpec::new("c", "k"), Handle(2));
    let (db, _) = on_b
        .local_mark_moving(&b, 1, &id, a.clone())
        .expect("b's row");
    let mut view = Registry::new();
    view.apply(&da);
    view.apply(&db);
    assert_eq!(view.moving_row("c").map(|(n, _)| n), Some(&a));
    let movers: Vec<&NodeId> = view.moving_rows("c").map(|(n, _)| n).collect();
    assert_eq!(movers, vec![&a, &b]);
    assert!(view
        .moving_rows("c")
        .any(|(n, r)| *n != a && r.moving_to.as_ref() == Some(&a)));
}
