//! Failure detector transitions, driven by explicit times.

use std::time::Duration;

use hub_core::membership::{Change, Membership, Status, Timings};
use hub_core::{NodeId, NodeInfo, Time};

const T: Timings = Timings {
    heartbeat_interval: Duration::from_millis(500),
    suspect_after: Duration::from_millis(1500),
    down_after: Duration::from_millis(3000),
};

fn info(id: &str, incarnation: u64) -> NodeInfo {
    NodeInfo {
        id: NodeId::new(id),
        addr: format!("{id}:1"),
        incarnation,
        tags: Default::default(),
        strict_quorum: None,
    }
}

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

fn view() -> (Membership, NodeId) {
    let mut m = Membership::new(info("me", 1), T);
    let b = NodeId::new("b");
    assert!(m.learn(ms(0), &info("b", 1)));
    assert_eq!(m.get(&b).unwrap().status, Status::Joining);
    assert_eq!(
        m.heard(ms(0), &b, Some(1), Some(&info("b", 1))),
        vec![Change::Joined(b.clone())]
    );
    (m, b)
}

#[test]
fn silence_makes_a_member_suspect_then_down() {
    let (mut m, b) = view();
    assert!(m.tick(ms(1499)).is_empty());
    assert!(m.tick(ms(1500)).is_empty());
    assert_eq!(m.get(&b).unwrap().status, Status::Suspect);
    assert_eq!(m.visible(), 2, "a suspect still counts");
    assert_eq!(m.tick(ms(3000)), vec![Change::Down(b.clone())]);
    assert_eq!(m.visible(), 1);
    assert!(m.tick(ms(9000)).is_empty(), "down is reported once");
}

#[test]
fn a_suspect_heard_again_recovers_and_a_down_one_rejoins() {
    let (mut m, b) = view();
    m.tick(ms(2000));
    assert_eq!(
        m.heard(ms(2100), &b, Some(1), None),
        vec![Change::Recovered(b.clone())]
    );
    assert_eq!(m.get(&b).unwrap().status, Status::Up);
    m.tick(ms(3700));
    assert_eq!(m.tick(ms(5200)), vec![Change::Down(b.clone())]);
    // Partition heals: any message brings it back.
    assert_eq!(
        m.heard(ms(8000), &b, None, None),
        vec![Change::Joined(b.clone())]
    );
}

#[test]
fn a_higher_incarnation_is_a_restart_and_a_lower_one_is_ignored() {
    let (mut m, b) = view();
    assert_eq!(
        m.heard(ms(100), &b, Some(2), None),
        vec![Change::Restarted(b.clone()), Change::Joined(b.clone())]
    );
    assert_eq!(m.get(&b).unwrap().info.incarnation, 2);
    assert!(
        m.heard(ms(200), &b, Some(1), None).is_empty(),
        "stale message from the old run"
    );
}

#[test]
fn a_leave_completes_on_left_or_by_silence() {
    let (mut m, b) = view();
    assert_eq!(m.leaving(ms(10), &b), vec![Change::Leaving(b.clone())]);
    assert_eq!(m.visible(), 1);
    assert!(m.tick(ms(2000)).is_empty());
    assert_eq!(
        m.tick(ms(3010)),
        vec![Change::Left(b.clone())],
        "its Left was lost"
    );
    let (mut m, b) = view();
    assert_eq!(
        m.left(ms(10), &b),
        vec![Change::Leaving(b.clone()), Change::Left(b.clone())]
    );
    assert!(
        m.heard(ms(20), &b, Some(1), None).is_empty(),
        "a departed run stays gone"
    );
    assert_eq!(
        m.heard(ms(30), &b, Some(2), None).len(),
        2,
        "a new run joins again"
    );
}

#[test]
fn history_records_membership_changes_for_quorum_strategies() {
    let (mut m, b) = view();
    m.tick(ms(3000));
    let kinds: Vec<&Change> = m.history().iter().map(|h| &h.change).collect();
    assert_eq!(kinds, vec![&Change::Joined(b.clone()), &Change::Down(b)]);
    assert_eq!(m.history().back().unwrap().at, ms(3000));
}

#[test]
fn second_hand_news_of_a_new_run_does_not_hide_the_restart() {
    let (mut m, b) = view();
    assert_eq!(m.left(ms(10), &b).len(), 2);
    // The transport (or a peer's member list) mentions b's new run first...
    assert!(!m.learn(ms(20), &info("b", 5)));
    assert_eq!(m.get(&b).unwrap().info.incarnation, 1);
    // ...then b itself speaks: it rejoins.
    assert_eq!(
        m.heard(ms(30), &b, Some(5), Some(&info("b", 5))),
        vec![Change::Restarted(b.clone()), Change::Joined(b.clone())]
    );
}
