//! The node's view of the cluster and its failure detector.
//!
//! Direct heartbeats over the full mesh: every node sends a heartbeat to
//! every member each `heartbeat_interval`; a member silent for
//! `suspect_after` is `Suspect` (still in the ring), silent for `down_after`
//! it is `Down` (out of the ring, its children restart elsewhere). Any
//! message from a `Down` member brings it back `Up` (partition heal); one
//! with a higher incarnation means it restarted. Down and not-yet-heard
//! members still get a `Hello` every `discover_interval`, which is how a
//! healed partition is noticed.
//!
//! Why not SWIM (foca): every pair of nodes keeps a connection anyway (the
//! registry is synced to every node), so direct heartbeats cost nothing
//! extra, and SWIM declares partitioned members dead until they rejoin with
//! a renewed identity, whereas a heal here must merge both sides as soon as
//! messages flow again. SWIM pays off past a few hundred nodes.

use std::collections::{BTreeMap, VecDeque};

use crate::id::{Incarnation, NodeId};
use crate::protocol::NodeInfo;
use crate::time::Time;

/// Most membership events kept for quorum strategies.
pub const HISTORY_LEN: usize = 1024;

/// A member's status as seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Known second-hand, never heard from directly.
    Joining,
    /// Heard from recently.
    Up,
    /// Silent past `suspect_after`; still owns its children.
    Suspect,
    /// Silent past `down_after`, or unreachable: out of the ring.
    Down,
    /// Announced it is leaving and is handing its children over: out of
    /// the ring. Silent past `down_after`, it counts as left.
    Leaving,
    /// Gone after a graceful leave.
    Left,
}

impl Status {
    /// Whether a member with this status is in the ring.
    pub fn in_ring(self) -> bool {
        matches!(self, Status::Up | Status::Suspect)
    }
}

/// One member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Who and where.
    pub info: NodeInfo,
    /// Current status.
    pub status: Status,
    /// Last time a message arrived from it.
    pub last_heard: Time,
}

/// A change the node must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The node entered the ring (new, healed or restarted).
    Joined(NodeId),
    /// The node left the ring because it went silent.
    Down(NodeId),
    /// The node announced it is leaving.
    Leaving(NodeId),
    /// The node finished leaving.
    Left(NodeId),
    /// The node restarted: its old incarnation is gone (a `Joined` follows).
    Restarted(NodeId),
    /// A suspect node was heard from again (not recorded in the history:
    /// membership did not change, but decisions deferred on it may resume).
    Recovered(NodeId),
}

/// A timestamped membership change, kept for quorum strategies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When this node saw it.
    pub at: Time,
    /// What happened.
    pub change: Change,
}

/// Failure-detection timings (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Heartbeat period.
    pub heartbeat_interval: std::time::Duration,
    /// Silence after which a member is suspect.
    pub suspect_after: std::time::Duration,
    /// Silence after which a member is down.
    pub down_after: std::time::Duration,
}

/// The membership view.
#[derive(Clone, Debug)]
pub struct Membership {
    me: NodeInfo,
    members: BTreeMap<NodeId, Member>,
    history: VecDeque<HistoryEntry>,
    timings: Timings,
}

impl Membership {
    /// A view holding only this node.
    pub fn new(me: NodeInfo, timings: Timings) -> Self {
        Membership {
            me,
            members: BTreeMap::new(),
            history: VecDeque::new(),
            timings,
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// Other members, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// One member.
    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Ids of the other members in the ring.
    pub fn ring_peers(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| m.status.in_ring())
            .map(|m| m.info.id.clone())
            .collect()
    }

    /// Members (self included) in the ring.
    pub fn visible(&self) -> usize {
        1 + self.members.values().filter(|m| m.status.in_ring()).count()
    }

    /// Recent changes, oldest first.
    pub fn history(&self) -> &VecDeque<HistoryEntry> {
        &self.history
    }

    /// Members lost (down) and not back since, with how long ago, in ms:
    /// what a `Hello` carries so that a joiner learns recent losses.
    pub fn losses(&self, now: Time) -> Vec<(NodeId, u64)> {
        let mut lost: BTreeMap<NodeId, Time> = BTreeMap::new();
        for h in &self.history {
            match &h.change {
                Change::Down(n) => {
                    lost.insert(n.clone(), h.at);
                }
                Change::Joined(n) | Change::Left(n) | Change::Leaving(n) => {
                    lost.remove(n);
                }
                _ => {}
            }
        }
        lost.into_iter()
            .map(|(n, at)| (n, now.since(at).as_millis() as u64))
            .collect()
    }

    /// Adopts a peer's loss log when it is longer than this node's (a
    /// joiner has none): its losses of nodes not up here enter the history
    /// at their age. Returns true if anything was adopted.
    pub fn adopt_losses(&mut self, now: Time, losses: &[(NodeId, u64)]) -> bool {
        let mine = self.losses(now);
        if losses.len() <= mine.len() {
            return false;
        }
        let mut adopted = false;
        for (n, age) in losses {
            let up_here = self.members.get(n).is_some_and(|m| m.status.in_ring());
            if *n == self.me.id || up_here || mine.iter().any(|(m, _)| m == n) {
                continue;
            }
            let at = now - std::time::Duration::from_millis(*age);
            let pos = self.history.partition_point(|h| h.at <= at);
            if self.history.len() == HISTORY_LEN {
                if pos == 0 {
                    continue;
                }
                self.history.pop_front();
            }
            let pos = self.history.partition_point(|h| h.at <= at);
            self.history.insert(
                pos,
                HistoryEntry {
                    at,
                    change: Change::Down(n.clone()),
                },
            );
            adopted = true;
        }
        adopted
    }

    fn record(&mut self, at: Time, change: Change, out: &mut Vec<Change>) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(HistoryEntry {
            at,
            change: change.clone(),
        });
        out.push(change);
    }

    /// Learns of a member second-hand (from a `Hello` member list).
    /// Returns true if it was new, so the caller greets it.
    pub fn learn(&mut self, now: Time, info: &NodeInfo) -> bool {
        if info.id == self.me.id {
            return false;
        }
        match self.members.get_mut(&info.id) {
            Some(m) => {
                // Only a message heard from the node itself may announce a
                // new run (see `heard`); second-hand news that overwrote the
                // incarnation would hide the restart. An address we lacked
                // is still worth keeping.
                if m.info.addr.is_empty() {
                    m.info.addr = info.addr.clone();
                }
                false
            }
            None => {
                self.members.insert(
                    info.id.clone(),
                    Member {
                        info: info.clone(),
                        status: Status::Joining,
                        last_heard: now,
                    },
                );
                true
            }
        }
    }

    /// A message arrived directly from `from` with its `incarnation` (when
    /// the message carries one) and, for `Hello`, its full info.
    pub fn heard(
        &mut self,
        now: Time,
        from: &NodeId,
        incarnation: Option<Incarnation>,
        info: Option<&NodeInfo>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        if *from == self.me.id {
            return out;
        }
        let Some(m) = self.members.get_mut(from) else {
            // A stranger who is not greeting us: we cannot know its address.
            let Some(info) = info else { return out };
            self.members.insert(
                from.clone(),
                Member {
                    info: info.clone(),
                    status: Status::Up,
                    last_heard: now,
                },
            );
            self.record(now, Change::Joined(from.clone()), &mut out);
            return out;
        };
        m.last_heard = now;
        let restarted = incarnation.is_some_and(|i| i > m.info.incarnation);
        let stale = incarnation.is_some_and(|i| i < m.info.incarnation);
        if stale {
            return out; // a message from a previous run still in flight
        }
        if let Some(info) = info {
            m.info = info.clone();
        } else if let Some(i) = incarnation {
            m.info.incarnation = i;
        }
        let was = m.status;
        if restarted && was != Status::Joining {
            m.status = Status::Up;
            self.record(now, Change::Restarted(from.clone()), &mut out);
            self.record(now, Change::Joined(from.clone()), &mut out);
            return out;
        }
        match was {
            Status::Up | Status::Leaving => {}
            Status::Suspect => {
                m.status = Status::Up;
                out.push(Change::Recovered(from.clone()));
            }
            Status::Left if !restarted => {}
            Status::Joining | Status::Down | Status::Left => {
                m.status = Status::Up;
                self.record(now, Change::Joined(from.clone()), &mut out);
            }
        }
        out
    }

    /// `from` announced it is leaving.
    pub fn leaving(&mut self, now: Time, from: &NodeId) -> Vec<Change> {
        let mut out = Vec::new();
        if let Some(m) = self.members.get_mut(from) {
            m.last_heard = now;
            if m.status.in_ring() || m.status == Status::Joining {
                let was_in_ring = m.status.in_ring();
                m.status = Status::Leaving;
                if was_in_ring {
                    self.record(now, Change::Leaving(from.clone()), &mut out);
                }
            }
        }
        out
    }

    /// `from` finished leaving.
    pub fn left(&mut self, now: Time, from: &NodeId) -> Vec<Change> {
        let mut out = self.leaving(now, from);
        if let Some(m) = self.members.get_mut(from) {
            if m.status != Status::Left {
                m.status = Status::Left;
                self.record(now, Change::Left(from.clone()), &mut out);
            }
        }
        out
    }

    /// Advances the failure detector to `now`.
    pub fn tick(&mut self, now: Time) -> Vec<Change> {
        let mut out = Vec::new();
        let t = self.timings;
        let mut downs = Vec::new();
        for m in self.members.values_mut() {
            let silent = now.since(m.last_heard);
            match m.status {
                Status::Up | Status::Suspect if silent >= t.down_after => {
                    m.status = Status::Down;
                    downs.push(Change::Down(m.info.id.clone()));
                }
                Status::Up if silent >= t.suspect_after => m.status = Status::Suspect,
                // Its final `Left` was lost: the leave is over all the same.
                Status::Leaving if silent >= t.down_after => {
                    m.status = Status::Left;
                    downs.push(Change::Left(m.info.id.clone()));
                }
                _ => {}
            }
        }
        for change in downs {
            self.record(now, change, &mut out);
        }
        out
    }
}
