//! Crash recovery from snapshots replicated to the ring successor.

use hub_core::{ChildId, ChildSpec, Event, Message, StartOptions, StopOptions};
use hub_testkit::{specs, Cluster, ClusterOptions};

fn formed(n: usize, seed: u64, children: usize) -> Cluster {
    let mut c = Cluster::formed(ClusterOptions::new(n).seed(seed)).unwrap();
    assert!(c
        .start(0, specs(children), StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    c
}

/// Ids running on node `i`, sorted.
fn on(c: &Cluster, i: usize) -> Vec<ChildId> {
    c.runtime(i).running().map(|(id, _)| id.clone()).collect()
}

/// Where `id` runs now, and its counter there.
fn counter(c: &Cluster, id: &ChildId) -> Option<(usize, u64)> {
    c.alive()
        .into_iter()
        .find_map(|i| c.runtime(i).counter(id.as_str()).map(|n| (i, n)))
}

fn recovered_events(c: &Cluster, since: usize) -> Vec<(ChildId, u64)> {
    c.events()[since..]
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::Recovered { id, seq } => Some((id.clone(), *seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_crashed_nodes_children_restart_from_their_latest_snapshot() {
    let mut c = formed(4, 91, 80);
    let victims = on(&c, 1);
    assert!(victims.len() > 8);
    // Half get work, two snapshots, then more work that no snapshot saw;
    // the other half are never snapshotted.
    let (snapped, plain) = victims.split_at(victims.len() / 2);
    let mut expected = Vec::new();
    for (k, id) in snapped.iter().enumerate() {
        for _ in 0..=k {
            c.runtime_mut(1).bump(id.as_str()).unwrap();
        }
        c.snapshot_child(1, id).unwrap();
        c.runtime_mut(1).bump(id.as_str()).unwrap();
        let at = c.snapshot_child(1, id).unwrap();
        c.runtime_mut(1).bump(id.as_str()).unwrap(); // lost with the crash
        expected.push((id.clone(), at));
    }
    for id in plain {
        c.runtime_mut(1).bump(id.as_str()).unwrap();
    }
    assert!(c.settle());
    let before = c.events().len();
    c.crash(1);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    for (id, at) in &expected {
        let (_, n) = counter(&c, id).unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(
            n, *at,
            "{id} restarted from elsewhere than its last snapshot"
        );
    }
    for id in plain {
        assert_eq!(counter(&c, id).map(|(_, n)| n), Some(0), "{id}");
    }
    let mut events = recovered_events(&c, before);
    events.sort();
    let mut want: Vec<(ChildId, u64)> = snapped.iter().map(|id| (id.clone(), 2)).collect();
    want.sort();
    assert_eq!(events, want);
}

#[test]
fn a_ring_change_moves_the_latest_snapshot_to_the_new_successor() {
    let mut c = formed(3, 92, 120);
    let victims = on(&c, 1);
    for id in &victims {
        c.runtime_mut(1).bump(id.as_str()).unwrap();
        c.runtime_mut(1).bump(id.as_str()).unwrap();
        c.snapshot_child(1, id).unwrap();
    }
    assert!(c.settle());
    // A join changes the successor of some of node 1's children (and moves
    // some children away from node 1 altogether).
    let joined = c.add_node();
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    let still: Vec<ChildId> = on(&c, 1);
    let new_successor = still.iter().any(|id| {
        c.node(joined)
            .unwrap()
            .stored_snapshot(id.as_str())
            .is_some()
    });
    assert!(new_successor, "no snapshot reached the joined node");
    c.crash(1);
    assert!(c.settle(), "{:?}", c.unquiet_reason());
    for id in &still {
        assert_eq!(counter(&c, id).map(|(_, n)| n), Some(2), "{id}");
    }
}

#[test]
fn a_stopped_child_leaves_no_snapshot_behind_and_stale_senders_are_ignored() {
    let mut c = formed(3, 93, 60);
    let id = on(&c, 1)[0].clone();
    c.runtime_mut(1).bump(id.as_str()).unwrap();
    c.snapshot_child(1, &id).unwrap();
    assert!(c.settle());
    let keeper = (0..3)
        .find(|&i| c.node(i).unwrap().stored_snapshot(id.as_str()).is_some())
        .expect("the successor keeps the snapshot");
    assert_ne!(keeper, 1);
    // A node that does not run the child cannot overwrite its snapshot.
    let other = 3 - keeper - 1;
    let forged = Message::Snapshot {
        id: id.clone(),
        seq: 99,
        state: bytes::Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 0]),
    };
    c.deliver(other, keeper, forged);
    assert_eq!(
        c.node(keeper).unwrap().stored_snapshot(id.as_str()),
        Some((c.id(1), 1))
    );
    // Stopped on request: the snapshot goes with it, so a new child under
    // the same id never resumes the old one's state.
    assert!(c
        .stop(0, vec![id.clone()], StopOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    assert_eq!(c.node(keeper).unwrap().stored_snapshot(id.as_str()), None);
    let spec = ChildSpec::new(id.clone(), "counter");
    assert!(c
        .start(2, vec![spec], StartOptions::awaited())
        .unwrap()
        .is_ok());
    assert!(c.settle());
    let (at, _) = counter(&c, &id).unwrap();
    c.crash(at);
    assert!(c.settle());
    assert_eq!(counter(&c, &id).map(|(_, n)| n), Some(0));
}

#[test]
fn snapshots_of_unknown_children_are_bounded() {
    let mut c = formed(2, 94, 10);
    for k in 0..2000 {
        let forged = Message::Snapshot {
            id: format!("ghost-{k}").into(),
            seq: 1,
            state: bytes::Bytes::from_static(&[0; 8]),
        };
        c.deliver(1, 0, forged);
    }
    let kept = (0..2000)
        .filter(|k| {
            c.node(0)
                .unwrap()
                .stored_snapshot(&format!("ghost-{k}"))
                .is_some()
        })
        .count();
    // The registry's 10 children plus the margin of 1,024.
    assert!(kept > 0 && kept <= 10 + 1024, "{kept} kept");
}
