//! Handoffs received and sent: a child handed to this node starts here
//! and is acknowledged once it runs; one handed away is re-sent until it
//! is acknowledged or refused.

use std::sync::Arc;

use tracing::debug;

use super::{LocalState, Node, Orphan, Restore, StartPurpose};
use crate::event::Event;
use crate::id::{ChildId, NodeId};
use crate::protocol::Handoff;
use crate::time::Time;

impl Node {
    /// Children handed to this node.
    pub(super) fn on_handoff(&mut self, from: &NodeId, children: Vec<Handoff>) {
        for h in children {
            let id = h.spec.id.clone();
            if h.spec.validate().is_err() {
                continue;
            }
            let spec = Arc::new(h.spec);
            if h.repair && self.children.refuses_repair(id.as_str()) {
                debug!(child = %id, "repair offer for a child stopped here on request; refused");
                continue;
            }
            if let (Some(state), Some(seq), false) = (&h.state, h.recovered, h.repair) {
                if self.offer_newer(&id, state, seq) {
                    self.outbox.acks.entry(from.clone()).or_default().push(id);
                    continue;
                }
            }
            if let Some(local) = self.children.local.get_mut(&id) {
                // Acknowledge only a copy that runs: one that is stopping
                // (e.g. the old copy of a move coming back) or may still
                // fail to start would be lost with the sender's. The sender
                // re-offers it later.
                if matches!(local.state, LocalState::Running(_))
                    && !self.children.handing.contains_key(&id)
                {
                    self.outbox.acks.entry(from.clone()).or_default().push(id);
                } else {
                    // A start waiting for grants takes a later point of the
                    // child's history (e.g. the sender got the child back
                    // meanwhile and moved it again): a move's number, or a
                    // crash snapshot's. At the same point a handoff beats
                    // this node's own orphan (a fenced copy numbers its
                    // final state like the next holder's first move).
                    let point = h.lineage.max(h.recovered.unwrap_or(0));
                    let orphan = matches!(local.state, LocalState::Starting(StartPurpose::Orphan));
                    let newer =
                        point > local.snapshot.seq || (orphan && point == local.snapshot.seq);
                    if let (true, Some(state), false) = (newer, h.state.clone(), h.repair) {
                        if local.hold.restore_from(state) {
                            local.snapshot.seq = local.snapshot.seq.max(point);
                            local.recovered = h.recovered;
                            debug!(child = %id, %from, "a waiting start takes a newer state");
                        }
                    }
                    debug!(child = %id, "handoff for a child not settled here; not acknowledged");
                }
            } else if self
                .children
                .outbound
                .get(&id)
                .is_some_and(|o| h.lineage <= o.lineage)
            {
                // A re-send of a move this node took and has since passed
                // on (no later point of the child's history): the state it
                // carries is older than the one on its way, so it must not
                // start here again.
                debug!(child = %id, "handoff of a child already handed on; acknowledged");
                self.outbox.acks.entry(from.clone()).or_default().push(id);
            } else if h.state.is_none() && !h.repair && self.handed_here(&id, from) {
                // A stateless offer (a peer orphaned the child from a stale
                // view) while its holder's own handoff, with the state, is
                // on its way here: that one starts it. Not acknowledged;
                // offered again if that holder turns out dead.
                debug!(child = %id, %from, "stateless offer while its holder hands it here; ignored");
            } else if self.partitioned {
                self.children.suspended.insert(id.clone(), (spec, h.state));
                self.outbox.acks.entry(from.clone()).or_default().push(id);
            } else if self.leaving.is_some() {
                // Pass it on to where it goes without this node, and keep
                // it until that node acknowledges: the sender forgets it on
                // our ack, and our leave waits for every outbound child.
                match self.successor(&spec) {
                    Some(to) if to != *from => {
                        self.hand_off(spec, to, h.state, h.recovered, h.lineage);
                        self.outbox.acks.entry(from.clone()).or_default().push(id);
                    }
                    // Not acknowledged: the sender keeps it and re-offers it
                    // once this node is gone.
                    _ => debug!(child = %id, "leaving node cannot take a handoff"),
                }
            } else if self.owners(&self.ring, &spec).is_empty() {
                // No node satisfies its constraints (its last one left):
                // it waits here, registered nowhere, and starts on its
                // owner once one joins.
                debug!(child = %id, "handed a child no node can run; it waits");
                let mut orphan = Orphan::new(spec, h.state, true);
                orphan.recovered = h.recovered;
                orphan.lineage = h.lineage;
                self.children.orphans.insert(id.clone(), orphan);
                self.outbox.acks.entry(from.clone()).or_default().push(id);
            } else {
                let (state, recovered) = if h.repair {
                    (h.state, None)
                } else {
                    self.restore_point(&id, h.state, h.recovered)
                };
                let restore = Restore {
                    state,
                    recovered,
                    lineage: h.lineage,
                };
                self.spawn(spec, restore, StartPurpose::Handoff(from.clone()));
            }
        }
    }

    /// Whether a node other than `except` (a stateless offer's sender) is
    /// handing `id` to this node, as far as the registry knows: the first
    /// moving row of `id`, in node order, is its and marked moving here.
    /// (Looking at every moving row here instead made two nodes, each with
    /// a stale row moving here and each offering the child stateless,
    /// refuse each other's offers for good.)
    pub(super) fn handed_here(&self, id: &ChildId, except: &NodeId) -> bool {
        self.registry.moving_row(id.as_str()).is_some_and(|(n, r)| {
            n != except && *n != self.me && r.moving_to.as_ref() == Some(&self.me)
        })
    }

    /// Whether any live node is handing `id` to this node: any of its
    /// moving rows, from a ring member, is marked moving here. Every row
    /// counts, not only the first in node order: this node's own stale
    /// row can come first and hide the node really handing it over (a
    /// node back from a cut restarted a child from its own older state so,
    /// while the newer one was on its way).
    pub(super) fn handed_here_by_any(&self, id: &ChildId) -> bool {
        self.registry.moving_rows(id.as_str()).any(|(n, r)| {
            *n != self.me && self.ring.contains(n) && r.moving_to.as_ref() == Some(&self.me)
        })
    }

    pub(super) fn on_handoff_ack(&mut self, now: Time, from: &NodeId, ids: Vec<ChildId>) {
        let mut moved = Vec::new();
        for id in ids {
            self.handed(&id, from);
            // An orphan offered to its owner: the owner runs it now.
            if self
                .children
                .orphans
                .get(&id)
                .is_some_and(|o| o.sent_to.as_ref() == Some(from))
            {
                self.children.orphans.remove(&id);
            }
            if self
                .children
                .outbound
                .get(&id)
                .is_some_and(|o| o.to == *from)
            {
                self.children.outbound.remove(&id);
                moved.push(id.clone());
            }
            // The new owner runs it: the row kept while moving can go (also
            // for orphans offered without tracking).
            let moving = self
                .registry
                .row(&self.me, id.as_str())
                .is_some_and(|r| r.moving_to.is_some());
            if moving && !self.children.outbound.contains_key(&id) {
                self.write_own(None, &id);
            }
        }
        if !moved.is_empty() {
            self.emit(Event::ChildMigrated {
                to: from.clone(),
                children: moved,
            });
        }
        self.after_local_change(now);
    }

    /// The receiver of a handoff could not start these children.
    pub(super) fn on_handoff_refused(
        &mut self,
        now: Time,
        from: &NodeId,
        refused: Vec<(ChildId, String)>,
    ) {
        for (id, why) in refused {
            if self
                .children
                .handing
                .get(&id)
                .is_some_and(|h| h.to == *from)
            {
                self.abandon(&id, Some(format!("{from} could not start it: {why}")));
            } else if self
                .children
                .outbound
                .get(&id)
                .is_some_and(|o| o.to == *from)
            {
                // A stopped copy has nowhere else to go: the owner's
                // refusal (reported there as ChildFailed) ends it.
                self.children.outbound.remove(&id);
                self.write_own(None, &id);
            } else if self
                .children
                .orphans
                .get(&id)
                .is_some_and(|o| o.sent_to.as_ref() == Some(from))
            {
                self.children.orphans.remove(&id);
            }
        }
        self.after_local_change(now);
    }

    /// A handoff unacknowledged for `suspect_after` is sent again (it may
    /// have been lost with a connection); the receiver deduplicates.
    pub(super) fn resend_stale_handoffs(&mut self) {
        if self.strict.is_some() {
            // Strict mode: another node runs it (only a quorum-granted copy
            // gets a live row), so this stopped copy is stale. Should that
            // node die, this node orphans its row like any other.
            let stale: Vec<ChildId> = self
                .children
                .outbound
                .keys()
                .filter(|id| self.strict_held_elsewhere(id))
                .cloned()
                .collect();
            for id in stale {
                debug!(child = %id, "strict: handed-over copy runs elsewhere; dropped");
                self.children.outbound.remove(&id);
                self.write_own(None, &id);
            }
        }
        let every = self.ticks_per_suspect();
        let mut again = Vec::new();
        for o in self.children.outbound.values_mut() {
            o.ticks += 1;
            if o.ticks % every == 0 {
                again.push((
                    o.to.clone(),
                    o.spec.clone(),
                    o.state.clone(),
                    o.recovered,
                    o.lineage,
                ));
            }
        }
        for (to, spec, state, recovered, lineage) in again {
            self.queue_handoff(to, &spec, state, recovered, lineage);
        }
    }
}
