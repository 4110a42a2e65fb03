//! Crash recovery from replicated snapshots.
//!
//! A driver takes periodic snapshots of children whose kind asks for it
//! ([`LocalReport::Snapshot`](crate::LocalReport::Snapshot)). The holder
//! numbers them and sends each to the child's ring successor: the node
//! that owns the child once the holder is out of the ring. The successor
//! keeps the latest one. When the holder dies, every node orphans its
//! children; the successor's orphan carries the snapshot, so the new owner
//! (the successor itself, unless the ring changed otherwise meanwhile)
//! restarts the child from it and emits
//! [`Event::Recovered`](crate::Event::Recovered) with its sequence number.
//!
//! Loss window: what the child did after its last snapshot reached the
//! successor (at most the kind's snapshot interval or message count, plus
//! one network delay). The holder keeps its last snapshot and re-sends it
//! when the successor changes (a join or leave), so a ring change does not
//! widen the window; and since the successor is also where a move without
//! handover goes, such a move restarts the child from that snapshot too.
//! The new owner uses its snapshot whoever offers it the orphan first.
//! Not covered: two failures at once (holder and successor), or a further
//! ring change between the last snapshot and the crash that makes another
//! node the new owner before the holder could re-send; then the child
//! starts from scratch, as without snapshots.

use bytes::Bytes;
use tracing::debug;

use super::{LocalState, Node, StopPurpose};
use crate::event::Event;
use crate::id::{ChildId, NodeId};

/// Most snapshots kept beyond one per registered child (for snapshots that
/// arrive before their child's row).
const MAX_UNREGISTERED: usize = 1024;

/// The latest snapshot of a child another node runs.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    /// The node that ran the child and sent it.
    pub(super) from: NodeId,
    pub(super) seq: u64,
    pub(super) state: Bytes,
}

/// What a holder remembers of its own latest snapshot of a child.
#[derive(Clone, Debug, Default)]
pub(super) struct Own {
    /// Snapshots taken of this instance (from the recovery point on).
    pub(super) seq: u64,
    /// The latest one and the successor it went to.
    pub(super) last: Option<(Bytes, Option<NodeId>)>,
    /// `Node::ring_epoch` when that successor was computed: within one
    /// ring the next snapshot goes to the same node without asking again.
    pub(super) epoch: u64,
    /// The latest one was taken since the last heartbeat: the next one
    /// sends it once more (a snapshot is not acknowledged, and one sent on
    /// a connection that a duplicate then replaced is lost).
    pub(super) unrepeated: bool,
}

impl Node {
    /// The driver snapshotted a local child: number it, send it on.
    pub(super) fn on_snapshot_taken(&mut self, id: ChildId, state: Bytes) {
        let Some(local) = self.children.local.get(&id) else {
            return;
        };
        // A stopping child's last snapshots still count: they reach the
        // successor before the handoff its exit triggers.
        if matches!(local.state, LocalState::Starting(_)) {
            return;
        }
        let known = match &local.snapshot.last {
            Some((_, to)) if local.snapshot.epoch == self.ring_epoch => Some(to.clone()),
            _ => None,
        };
        let to = known.unwrap_or_else(|| self.successor(&local.spec));
        let epoch = self.ring_epoch;
        let Some(local) = self.children.local.get_mut(&id) else {
            return;
        };
        local.snapshot.seq += 1;
        let seq = local.snapshot.seq;
        local.snapshot.last = Some((state.clone(), to.clone()));
        local.snapshot.epoch = epoch;
        local.snapshot.unrepeated = true;
        if let Some(to) = to {
            self.outbox.snapshots.push((to, id, seq, state));
        }
    }

    /// On the heartbeat: each child's latest snapshot, if taken since the
    /// last heartbeat, goes to its successor once more (at most one extra
    /// message per snapshot, none for an idle child).
    pub(super) fn repeat_snapshots(&mut self) {
        for (id, local) in self.children.local.iter_mut() {
            if !std::mem::take(&mut local.snapshot.unrepeated) {
                continue;
            }
            if let Some((state, Some(to))) = &local.snapshot.last {
                let seq = local.snapshot.seq;
                self.outbox
                    .snapshots
                    .push((to.clone(), id.clone(), seq, state.clone()));
            }
        }
    }

    /// A peer's snapshot of a child it runs.
    pub(super) fn on_snapshot(&mut self, from: &NodeId, id: ChildId, seq: u64, state: Bytes) {
        // Only from a node that runs it as far as this registry knows (or
        // before its row got here): a late snapshot from a former holder
        // must not replace the current one.
        let holders = self.registry.lookup_ref(id.as_str());
        // The node a move hands it to counts as its holder before that
        // node's own row arrives (its first snapshot is taken at start).
        let moving_to_sender = self
            .registry
            .moving_row(id.as_str())
            .is_some_and(|(_, r)| r.moving_to.as_ref() == Some(from));
        if !holders.is_empty() && !holders.iter().any(|(n, _)| n == from) && !moving_to_sender {
            debug!(child = %id, %from, "snapshot from a node that does not hold it; ignored");
            return;
        }
        // Snapshots of ids not registered (yet) are bounded: a peer cannot
        // grow this table past the registry plus a margin.
        if holders.is_empty()
            && !self.snapshots.contains_key(&id)
            && self.snapshots.len() >= self.registry.len() + MAX_UNREGISTERED
        {
            debug!(child = %id, %from, "snapshot of an unknown child over the bound; ignored");
            return;
        }
        // Numbers run along the child's history, across holders: one at
        // or below the stored one is older, or a branch restarted from an
        // older point (a node that took over from a stale snapshot while
        // this one held a newer, which it offers when it sees the old
        // holder die).
        let stale = self.snapshots.get(&id).is_some_and(|s| s.seq >= seq);
        if !stale {
            let from = from.clone();
            self.snapshots.insert(id, Stored { from, seq, state });
        }
    }

    /// A holder's row went (stopped, or moved on purpose): its snapshot
    /// is not the child's state any more.
    pub(super) fn forget_snapshot_of(&mut self, id: &ChildId, node: &NodeId) {
        self.take_snapshot_of(id, node);
    }

    /// The ring changed: re-send each local child's latest snapshot to
    /// its successor if that is another node now.
    pub(super) fn resend_snapshots(&mut self) {
        if self
            .children
            .local
            .values()
            .all(|l| l.snapshot.last.is_none())
        {
            return;
        }
        let without_me = self.ring_without_me();
        let epoch = self.ring_epoch;
        let mut again = Vec::new();
        for (id, local) in &self.children.local {
            let Some((state, sent_to)) = &local.snapshot.last else {
                continue;
            };
            let to = self.successor_in(&without_me, &local.spec);
            if to != *sent_to {
                again.push((id.clone(), local.snapshot.seq, state.clone(), to));
            }
        }
        for local in self.children.local.values_mut() {
            local.snapshot.epoch = epoch;
        }
        for (id, seq, state, to) in again {
            if let Some(local) = self.children.local.get_mut(&id) {
                local.snapshot.last = Some((state.clone(), to.clone()));
            }
            if let Some(to) = to {
                self.outbox.snapshots.push((to, id, seq, state));
            }
        }
    }

    /// Takes the snapshot of a child whose holder `node` died, if this node
    /// has one: `(state, seq)` for its orphan.
    pub(super) fn take_snapshot_of(&mut self, id: &ChildId, node: &NodeId) -> Option<(Bytes, u64)> {
        if self.snapshots.get(id).is_some_and(|s| s.from == *node) {
            return self.snapshots.remove(id).map(|s| (s.state, s.seq));
        }
        None
    }

    /// What a child starting here without a holder to hand it over (an
    /// orphan, or a handoff without state) restarts from: the state it
    /// came with, else the snapshot this node keeps for it. Whichever node
    /// offers an orphan first, the new owner, being the successor, has the
    /// snapshot.
    pub(super) fn restore_point(
        &mut self,
        id: &ChildId,
        state: Option<Bytes>,
        recovered: Option<u64>,
    ) -> (Option<Bytes>, Option<u64>) {
        // Read, not taken: the start may still not happen (a strict claim
        // that fails, an orphan dropped for a copy elsewhere), and the
        // snapshot must outlive it; `on_started` drops it.
        let mut mine = self.snapshots.get(id).map(|m| (m.state.clone(), m.seq));
        // A snapshot this node already moved into an orphan of the child
        // (it saw the holder die before this offer came) counts as its own.
        let kept = self.children.orphans.get(id).and_then(|o| {
            let state = o.state.clone()?;
            Some((state, o.recovered?))
        });
        if let Some(k) = kept {
            if mine.as_ref().is_none_or(|m| k.1 > m.1) {
                mine = Some(k);
            }
        }
        match (state, recovered, mine) {
            // A handover: the old instance's state itself, fresher than
            // any snapshot.
            (Some(state), None, _) => (Some(state), None),
            // Two snapshots (another survivor's offer and this node's
            // copy, e.g. one of them kept by a former successor): the
            // newer one.
            (Some(_), Some(_), Some(m)) if Some(m.1) > recovered => (Some(m.0), Some(m.1)),
            (Some(state), Some(seq), _) => (Some(state), Some(seq)),
            (None, _, Some(m)) => (Some(m.0), Some(m.1)),
            (None, _, None) => (None, None),
        }
    }

    /// A survivor offers a snapshot with number `seq` of a child whose
    /// holder died. If this node already runs the child from an older
    /// point of that lineage (it recovered from a stale copy, or started
    /// fresh before the offer came), it restarts it from the offer.
    /// Returns whether the offer was taken.
    pub(super) fn offer_newer(&mut self, id: &ChildId, state: &Bytes, seq: u64) -> bool {
        let Some(local) = self.children.local.get(id) else {
            return false;
        };
        if !matches!(local.state, LocalState::Running(_)) || local.snapshot.seq >= seq {
            return false;
        }
        debug!(child = %id, from = local.snapshot.seq, to = seq, "restarting from a newer snapshot");
        self.begin_stop(id, StopPurpose::Recover(state.clone(), seq), None);
        true
    }

    /// A child restarted here from a snapshot is running.
    pub(super) fn recovered(&mut self, id: &ChildId) {
        let Some(local) = self.children.local.get_mut(id) else {
            return;
        };
        if let Some(seq) = local.recovered.take() {
            local.snapshot.seq = local.snapshot.seq.max(seq);
            self.emit(Event::Recovered {
                id: id.clone(),
                seq,
            });
        }
    }

    /// The snapshot this node keeps for `id` (run elsewhere): the node it
    /// came from and its sequence number.
    pub fn stored_snapshot(&self, id: &str) -> Option<(NodeId, u64)> {
        self.snapshots.get(id).map(|s| (s.from.clone(), s.seq))
    }
}
