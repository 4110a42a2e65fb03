//! Quorum strategies: decisions over membership histories.

use std::collections::VecDeque;
use std::time::Duration;

use hub_core::membership::{Change, HistoryEntry};
use hub_core::{NodeId, PartitionStrategy, QuorumView, Time};
use hub_strategies::{DynamicQuorum, MajorityQuorum, StaticQuorum};
use proptest::prelude::*;

fn view(now: u64, visible: usize, history: &VecDeque<HistoryEntry>) -> QuorumView<'_> {
    QuorumView {
        now: Time::from_millis(now),
        visible,
        history,
    }
}

fn entry(at: u64, change: Change) -> HistoryEntry {
    HistoryEntry {
        at: Time::from_millis(at),
        change,
    }
}

fn n(i: usize) -> NodeId {
    NodeId::new(format!("n{i}"))
}

#[test]
fn static_quorum_counts_visible_members() {
    let h = VecDeque::new();
    let mut q = StaticQuorum::new(3);
    assert!(q.is_partitioned(&view(0, 2, &h)));
    assert!(!q.is_partitioned(&view(0, 3, &h)));
    assert!(!q.is_partitioned(&view(0, 5, &h)));
}

#[test]
fn majority_quorum_remembers_the_largest_cluster() {
    let h = VecDeque::new();
    let mut q = MajorityQuorum::new(1);
    assert!(!q.is_partitioned(&view(0, 1, &h)));
    assert!(!q.is_partitioned(&view(0, 5, &h)));
    assert_eq!(q.max_seen(), 5);
    assert!(!q.is_partitioned(&view(0, 3, &h)), "3 of 5 is a majority");
    assert!(q.is_partitioned(&view(0, 2, &h)), "2 of 5 is not");
    assert_eq!(q.max_seen(), 5, "shrinking never lowers it by itself");
    q.reset_cluster_size(3);
    assert!(
        !q.is_partitioned(&view(0, 2, &h)),
        "2 of 3 after a deliberate scale-down"
    );
    let mut fixed = MajorityQuorum::new(4);
    fixed.track_max_size = false;
    assert!(!fixed.is_partitioned(&view(0, 9, &h)));
    assert!(
        fixed.is_partitioned(&view(0, 2, &h)),
        "2 of 4 is not a majority"
    );
}

#[test]
fn dynamic_quorum_counts_recent_losses_only() {
    let mut q = DynamicQuorum {
        quorum_size: 60,
        threshold_time: Duration::from_secs(30),
    };
    // 5 nodes; two crash at t=10s.
    let h: VecDeque<_> = [
        entry(10_000, Change::Down(n(3))),
        entry(10_000, Change::Down(n(4))),
    ]
    .into();
    // remaining = 100 - 2*100/5 = 60: not below 60.
    assert!(!q.is_partitioned(&view(11_000, 3, &h)));
    // A third crash: 100 - 3*100/5 = 40 < 60.
    let mut h3 = h.clone();
    h3.push_back(entry(12_000, Change::Down(n(2))));
    assert!(q.is_partitioned(&view(12_000, 2, &h3)));
    // Past the threshold the losses no longer count.
    assert!(!q.is_partitioned(&view(45_000, 2, &h3)));
    // A node that comes back leaves the loss log.
    h3.push_back(entry(13_000, Change::Joined(n(2))));
    assert!(!q.is_partitioned(&view(13_000, 3, &h3)));
}

proptest! {
    #[test]
    fn a_graceful_scale_down_never_trips_dynamic_quorum(
        size in 3usize..12,
        leaves in 1usize..10,
        gap_ms in 0u64..60_000,
        quorum in 1u8..100,
    ) {
        let mut q = DynamicQuorum::new(quorum);
        let mut h = VecDeque::new();
        let mut visible = size;
        let mut now = 0;
        for i in 0..leaves.min(size - 1) {
            now += gap_ms;
            h.push_back(entry(now, Change::Leaving(n(i))));
            h.push_back(entry(now, Change::Left(n(i))));
            visible -= 1;
            prop_assert!(!q.is_partitioned(&view(now, visible, &h)));
        }
    }

    #[test]
    fn majority_quorum_is_exactly_a_majority_of_the_peak(
        sizes in proptest::collection::vec(1usize..20, 1..30),
    ) {
        let h = VecDeque::new();
        let mut q = MajorityQuorum::new(1);
        let mut peak = 1;
        for s in sizes {
            peak = peak.max(s);
            let p = q.is_partitioned(&view(0, s, &h));
            prop_assert_eq!(p, s * 2 <= peak, "visible {} peak {}", s, peak);
        }
    }

    #[test]
    fn dynamic_quorum_matches_its_formula_for_crashes_within_the_threshold(
        size in 2usize..20,
        crashes in 0usize..19,
        quorum in 1u8..100,
    ) {
        let crashes = crashes.min(size - 1);
        let h: VecDeque<_> = (0..crashes).map(|i| entry(1_000, Change::Down(n(i)))).collect();
        let mut q = DynamicQuorum::new(quorum);
        let remaining = 100 - crashes * 100 / size;
        let p = q.is_partitioned(&view(2_000, size - crashes, &h));
        prop_assert_eq!(p, remaining < usize::from(quorum));
    }
}
