//! Acknowledged starts: after an awaited start's results are in, wait
//! until enough registries hold the started children ([`Ack`]).
//!
//! The calling node asks every ring peer whether its registry holds the
//! children and re-asks, on each heartbeat, those that did not yet say yes:
//! rows reach peers through whatever sync strategy runs (direct broadcast,
//! gossip, anti-entropy), so asking is the one check that does not depend
//! on how they travel. The count is taken against the calling node's ring
//! at the time of each answer. Under epidemic sync a peer that lacks rows
//! pulls them from the asker at once (push-pull digest).

use std::collections::BTreeSet;

use rand_chacha::rand_core::RngCore;
use tracing::debug;

use super::Node;
use crate::command::{Ack, Reply, StartOutcome};
use crate::id::{ChildId, NodeId, RequestId};
use crate::protocol::Message;
use crate::time::Time;

/// A start whose results are in, waiting for acknowledgements.
#[derive(Debug)]
pub(super) struct AckWait {
    request: RequestId,
    level: Ack,
    deadline: Time,
    outcome: StartOutcome,
    ids: Vec<ChildId>,
    confirmed: BTreeSet<NodeId>,
}

/// Most unanswered queries a node remembers (they live milliseconds).
const MAX_HOLD_WATCHES: usize = 1024;

/// A peer's query this registry could not answer "yes" yet.
#[derive(Debug)]
pub(super) struct HoldWatch {
    ids: Vec<ChildId>,
    since: Time,
}

impl AckWait {
    pub(super) fn deadline(&self) -> Time {
        self.deadline
    }
}

impl Node {
    /// Replies to a finished start, at once for [`Ack::Local`] (or when
    /// nothing started), else once enough registries hold its children.
    pub(super) fn reply_started(
        &mut self,
        request: RequestId,
        level: Ack,
        deadline: Time,
        outcome: StartOutcome,
    ) {
        if level == Ack::Local || outcome.started.is_empty() {
            return self.reply(request, Reply::Started(outcome));
        }
        let ids: Vec<ChildId> = outcome.started.keys().cloned().collect();
        // Queries are numbered from the seeded RNG, not the op sequence: a
        // late answer to a previous incarnation's query must not count.
        let seq = loop {
            let n = self.rng.next_u64();
            if !self.ack_waits.contains_key(&n) {
                break n;
            }
        };
        let wait = AckWait {
            request,
            level,
            deadline,
            outcome,
            ids,
            confirmed: BTreeSet::new(),
        };
        self.ack_waits.insert(seq, wait);
        self.ask_holders(seq);
        self.check_acks(seq);
        // The results themselves came at the deadline: no time to wait.
        if deadline <= self.now {
            self.finish_ack(seq, true);
        }
    }

    /// Asks the ring peers that have not confirmed `seq` yet, and checks
    /// this node's own registry.
    fn ask_holders(&mut self, seq: u64) {
        let Some(ids) = self.ack_waits.get(&seq).map(|w| w.ids.clone()) else {
            return;
        };
        let here = self.holds_all(&ids);
        let Some(wait) = self.ack_waits.get_mut(&seq) else {
            return;
        };
        if here {
            wait.confirmed.insert(self.me.clone());
        }
        let ask: Vec<NodeId> = self
            .ring
            .nodes()
            .iter()
            .filter(|n| **n != self.me && !wait.confirmed.contains(*n))
            .cloned()
            .collect();
        for to in ask {
            self.send(
                to,
                Message::HoldQuery {
                    seq,
                    ids: ids.clone(),
                },
            );
        }
    }

    /// A peer asks whether this registry holds `ids`. A "no" is remembered
    /// and turned into a "yes" as soon as the rows arrive, so the asker
    /// does not wait for its next heartbeat.
    pub(super) fn on_hold_query(&mut self, from: &NodeId, seq: u64, ids: Vec<ChildId>) {
        let all = self.holds_all(&ids);
        self.send(from.clone(), Message::Holds { seq, all });
        if !all {
            if self.hold_watches.len() >= MAX_HOLD_WATCHES {
                // Oldest first out: a dropped watch only means the asker
                // learns on its next query.
                if let Some(oldest) = self
                    .hold_watches
                    .iter()
                    .min_by_key(|(_, w)| w.since)
                    .map(|(k, _)| k.clone())
                {
                    self.hold_watches.remove(&oldest);
                }
            }
            let watch = HoldWatch {
                ids,
                since: self.now,
            };
            self.hold_watches.insert((from.clone(), seq), watch);
        }
        // Under epidemic sync the rows may be rumours that died out before
        // reaching here; the asker holds them (read-your-writes), so pull
        // from it now rather than wait for a round. Writers that broadcast
        // reach every node themselves.
        if !all && self.strategies.sync.relays() {
            let digest = self.registry.digest();
            self.send(from.clone(), Message::Digest(digest));
        }
    }

    fn holds_all(&self, ids: &[ChildId]) -> bool {
        ids.iter()
            .all(|id| !self.registry.lookup_ref(id.as_str()).is_empty())
    }

    /// Rows arrived: answer the queries they complete; forget stale ones.
    pub(super) fn check_hold_watches(&mut self) {
        if self.hold_watches.is_empty() {
            return;
        }
        let stale = self.cfg.down_after * 4;
        let mut done = Vec::new();
        for (key, w) in &self.hold_watches {
            if self.now.since(w.since) > stale {
                done.push((key.clone(), false));
            } else if self.holds_all(&w.ids) {
                done.push((key.clone(), true));
            }
        }
        for ((to, seq), all) in done {
            self.hold_watches.remove(&(to.clone(), seq));
            if all {
                self.send(to, Message::Holds { seq, all });
            }
        }
    }

    /// A peer answered a [`Message::HoldQuery`].
    pub(super) fn on_holds(&mut self, from: &NodeId, seq: u64, all: bool) {
        if !all {
            return;
        }
        if let Some(wait) = self.ack_waits.get_mut(&seq) {
            wait.confirmed.insert(from.clone());
            self.check_acks(seq);
        }
    }

    fn check_acks(&mut self, seq: u64) {
        let Some(wait) = self.ack_waits.get(&seq) else {
            return;
        };
        let members = self.ring.nodes();
        let needed = match wait.level {
            Ack::Local => 1,
            Ack::Quorum => members.len() / 2 + 1,
            Ack::All => members.len(),
        };
        let have = members
            .iter()
            .filter(|n| wait.confirmed.contains(*n))
            .count();
        if have >= needed {
            self.finish_ack(seq, false);
        }
    }

    fn finish_ack(&mut self, seq: u64, timed_out: bool) {
        let Some(mut wait) = self.ack_waits.remove(&seq) else {
            return;
        };
        if timed_out {
            debug!(
                seq,
                confirmed = wait.confirmed.len(),
                "ack level not reached in time"
            );
        }
        wait.outcome.acknowledged = wait.confirmed.into_iter().collect();
        wait.outcome.ack_timed_out = timed_out;
        self.reply(wait.request, Reply::Started(wait.outcome));
    }

    /// Heartbeat: asks again whoever has not confirmed.
    pub(super) fn reask_holders(&mut self) {
        let seqs: Vec<u64> = self.ack_waits.keys().copied().collect();
        for seq in seqs {
            self.ask_holders(seq);
            self.check_acks(seq);
        }
    }

    /// Answers the waits whose timeout passed, with what was confirmed.
    pub(super) fn expire_acks(&mut self, now: Time) {
        let late: Vec<u64> = self
            .ack_waits
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in late {
            self.finish_ack(seq, true);
        }
    }

    /// Membership changed: a smaller ring may already be satisfied.
    pub(super) fn recheck_acks(&mut self) {
        let seqs: Vec<u64> = self.ack_waits.keys().copied().collect();
        for seq in seqs {
            self.check_acks(seq);
        }
    }
}
