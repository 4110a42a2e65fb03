//! Membership reactions: the ring, redistribution under the lock, orphan
//! restarts, handoffs, graceful leave and quorum loss.
//!
//! Placement is reconciled, not replayed: after any membership change each
//! node looks at the children it runs and the orphans it knows, and moves
//! or starts what the ring says. This is idempotent, so a lost message or a
//! second change in the middle only means the next reconcile does the rest.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::{LocalState, Lock, Node, Orphan, Queued, StartPurpose, StopPurpose};
use crate::command::Reply;
use crate::error::CommandError;
use crate::event::{Direction, Event};
use crate::id::{ChildId, Incarnation, NodeId, RequestId};
use crate::membership::Change;
use crate::protocol::{Handoff, Message};
use crate::strategy::QuorumView;
use crate::time::Time;

impl Node {
    pub(super) fn on_membership(&mut self, now: Time, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut triggers = Vec::new();
        self.ring_epoch += 1;
        for change in changes {
            info!(?change, "membership");
            self.decommission_progress(&change);
            match change {
                Change::Joined(n) => {
                    self.ring.insert(n.clone());
                    if let Some(m) = self.membership.get(&n) {
                        self.ring.set_tags(&n, m.info.tags.clone());
                    }
                    self.emit(Event::ClusterJoin(n.clone()));
                    // Pull what the newcomer has; it pulls ours likewise.
                    let digest = self.registry.digest();
                    self.send(n.clone(), Message::Digest(digest));
                    triggers.push((Direction::Up, n));
                }
                Change::Down(n) => {
                    if self.ring.remove(&n) {
                        self.emit(Event::ClusterLeave(n.clone()));
                    }
                    self.orphan_slice(&n, None);
                    self.reroute_outbound(&n);
                    triggers.push((Direction::Down, n));
                }
                Change::Leaving(n) => {
                    self.ring.remove(&n);
                    self.emit(Event::ClusterLeave(n.clone()));
                    triggers.push((Direction::Down, n));
                }
                Change::Left(n) => {
                    self.orphan_slice(&n, None);
                    self.reroute_outbound(&n);
                }
                Change::Recovered(_) => {}
                Change::Restarted(n) => {
                    self.ring.remove(&n);
                    let incarnation = self.membership.get(&n).map(|m| m.info.incarnation);
                    self.orphan_slice(&n, incarnation);
                    self.reroute_outbound(&n);
                }
            }
        }
        self.recheck_acks();
        self.resend_snapshots();
        let awaiting = self
            .leaving
            .as_ref()
            .is_some_and(|l| l.awaiting_successor.is_some());
        if awaiting && !self.ring_without_me().is_empty() {
            info!("a member joined during the leave: handing children over");
            self.drain_leaving(now);
        }
        self.check_stranded(now);
        // Quorum first: a minority node must not start orphans.
        self.check_quorum(now);
        if triggers.is_empty() {
            self.reconcile();
            return;
        }
        self.repair_replicas();
        for (direction, node) in &triggers {
            self.emit(Event::PreRedistribution {
                direction: *direction,
                node: node.clone(),
            });
        }
        match &mut self.lock {
            Some(lock) => lock.triggers.extend(triggers),
            None => {
                self.lock = Some(Lock {
                    until: now + self.cfg.lock_timeout,
                    triggers,
                });
                self.emit(Event::PriorityStateUpdated { level: 1 });
            }
        }
        self.reconcile();
        self.after_local_change(now);
    }

    /// Moves a departed node's live rows into the orphans. With
    /// `older_than`, only a slice of an earlier incarnation is dropped (the
    /// node restarted; its new slice stays).
    pub(super) fn orphan_slice(&mut self, node: &NodeId, older_than: Option<Incarnation>) {
        if let Some(inc) = older_than {
            if self.registry.clock(node).incarnation >= inc {
                return;
            }
        }
        let rows = self.registry.remove_slice(node);
        for (id, row) in rows {
            self.emit(Event::RegistryRemoved {
                id: id.clone(),
                nodes: vec![node.clone()],
            });
            let snapshot = self.take_snapshot_of(&id, node);
            if let Some((state, seq)) = &snapshot {
                // Someone runs it already (restarted before this node saw
                // the death): offer it the snapshot, in case it is newer
                // than what that copy started from.
                if self.offer_newer(&id, state, *seq) {
                    continue;
                }
                let other = self
                    .registry
                    .lookup_ref(id.as_str())
                    .iter()
                    .map(|(n, _)| n.clone())
                    .find(|n| *n != self.me);
                if let Some(holder) = other {
                    self.queue_handoff(holder, &row.spec, Some(state.clone()), Some(*seq), *seq);
                    continue;
                }
            }
            if self.registry.lookup_ref(id.as_str()).is_empty() && !self.local.contains_key(&id) {
                let mut orphan = Orphan::new(row.spec, None, false);
                if let Some((state, seq)) = snapshot {
                    debug!(child = %id, seq, "orphan keeps its latest snapshot");
                    orphan.state = Some(state);
                    orphan.recovered = Some(seq);
                }
                self.orphans.insert(id, orphan);
            }
        }
    }

    /// Handoffs to a node that went away are orphans again.
    fn reroute_outbound(&mut self, node: &NodeId) {
        self.abandon_handing_to(node);
        let lost: Vec<ChildId> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.to == *node)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            let Some(o) = self.outbound.remove(&id) else {
                continue;
            };
            debug!(child = %id, to = %node, "handoff target gone");
            // A leaving node does not act on orphans: it re-targets at once.
            match self.leaving.as_ref().and(self.successor(&o.spec)) {
                Some(to) => self.hand_off(o.spec, to, o.state, o.recovered, o.lineage),
                None => {
                    let mut orphan = Orphan::new(o.spec, o.state, true);
                    orphan.recovered = o.recovered;
                    orphan.lineage = o.lineage;
                    self.orphans.insert(id, orphan);
                }
            }
        }
    }

    /// Brings local placement in line with the ring: migrate away what this
    /// node should not run, stop extra copies, start orphans it owns and
    /// hand the other orphans to their owners.
    pub(super) fn reconcile(&mut self) {
        if self.partitioned || self.leaving.is_some() || self.left {
            return;
        }
        let ids: Vec<ChildId> = self.local.keys().cloned().collect();
        for id in &ids {
            self.reconcile_child(id);
        }
        self.update_roles();
        let ids: Vec<ChildId> = self.orphans.keys().cloned().collect();
        for id in ids {
            let responsible = self.orphans.get(&id).is_some_and(|o| o.responsible);
            let held_here = self.local.contains_key(&id) || self.outbound.contains_key(&id);
            let held_elsewhere = !self.registry.lookup_ref(id.as_str()).is_empty();
            if held_here || (held_elsewhere && !responsible) {
                debug!(child = %id, "orphan dropped: held elsewhere");
                self.orphans.remove(&id);
                continue;
            }
            if self.strict.is_some() && self.strict_held_elsewhere(&id) {
                // Only a quorum-granted copy gets a row: it is the child.
                debug!(child = %id, "strict: orphan runs elsewhere; dropped");
                self.orphans.remove(&id);
                self.write_own(None, &id);
                continue;
            }
            let Some(orphan) = self.orphans.get(&id) else {
                continue;
            };
            if orphan.retry_at.is_some_and(|t| t > self.now) {
                continue;
            }
            let spec = orphan.spec.clone();
            let state = orphan.state.clone();
            let recovered = orphan.recovered;
            let lineage = orphan.lineage;
            let owners = self.owners(&self.ring, &spec);
            if owners.contains(&self.me) {
                if let Some(named) = spec.nodes() {
                    if !named.iter().any(|n| self.ring.contains(n)) {
                        self.emit(Event::PlacementFallback {
                            id: id.clone(),
                            named,
                        });
                    }
                }
                let (state, recovered) = self.restore_point(&id, state, recovered);
                self.spawn(spec, state, StartPurpose::Orphan);
                if let Some(local) = self.local.get_mut(&id) {
                    local.recovered = recovered;
                    local.snapshot.seq = lineage;
                }
            } else if let Some(first) = owners.first() {
                // The owner may not know the child (e.g. it restarted and
                // lost its registry): tell it once per sync round.
                if orphan.sent_to.as_ref() != Some(first) {
                    let to = first.clone();
                    self.queue_handoff(to.clone(), &spec, state, recovered, lineage);
                    if let Some(o) = self.orphans.get_mut(&id) {
                        o.sent_to = Some(to);
                    }
                }
            }
        }
    }

    /// If this node runs `id` but is not among its owners, move it to an
    /// owner that lacks it, or stop it when every owner already has it.
    pub(super) fn reconcile_child(&mut self, id: &ChildId) {
        if self.partitioned || self.leaving.is_some() || self.left {
            return;
        }
        let Some(local) = self.local.get(id) else {
            return;
        };
        if !matches!(local.state, LocalState::Running(_)) || self.handing.contains_key(id) {
            return;
        }
        // Copies started apart (e.g. on both sides of a partition) may
        // carry different specs, and so different placements (a stamped
        // node list): every node judges by the same one, the registry's.
        let owners = self.owners(&self.ring, self.agreed_spec(id, &local.spec));
        // No node satisfies its constraints any more: it stays where it is
        // rather than stop.
        if owners.is_empty() || owners.contains(&self.me) {
            return;
        }
        // Never act on a suspect owner: it may be dead, its rows stale. The
        // change that settles its status reconciles again.
        let doubtful = owners.iter().any(|o| {
            self.membership
                .get(o)
                .is_some_and(|m| m.status == crate::membership::Status::Suspect)
        });
        if doubtful {
            return;
        }
        match owners.iter().find(|o| !self.registry.holds(o, id.as_str())) {
            Some(to) => {
                debug!(child = %id, %to, "not an owner any more: moving");
                self.move_away(id, Some(to.clone()));
            }
            None if self.strict.is_some() => {
                // Strict mode: this copy was granted by a quorum, so the
                // owners' rows are stale (their slices catch up, and the
                // next reconcile moves it).
                debug!(child = %id, "strict: the owners' rows for it are stale");
            }
            None => {
                debug!(child = %id, "not an owner and the owners run it: stopping");
                self.emit(Event::DuplicateResolved {
                    id: id.clone(),
                    kept_on: owners,
                });
                self.begin_stop(id, StopPurpose::Conflict, None);
            }
        }
    }

    /// Children handed to this node.
    pub(super) fn on_handoff(&mut self, from: &NodeId, children: Vec<Handoff>) {
        for h in children {
            let id = h.spec.id.clone();
            if h.spec.validate().is_err() {
                continue;
            }
            let spec = Arc::new(h.spec);
            if h.repair && self.recently_stopped.contains_key(&id) {
                debug!(child = %id, "repair offer for a child stopped here on request; refused");
                continue;
            }
            if let (Some(state), Some(seq), false) = (&h.state, h.recovered, h.repair) {
                if self.offer_newer(&id, state, seq) {
                    self.outbox.acks.entry(from.clone()).or_default().push(id);
                    continue;
                }
            }
            if let Some(local) = self.local.get(&id) {
                // Acknowledge only a copy that runs: one that is stopping
                // (e.g. the old copy of a move coming back) or may still
                // fail to start would be lost with the sender's. The sender
                // re-offers it later.
                if matches!(local.state, LocalState::Running(_)) && !self.handing.contains_key(&id)
                {
                    self.outbox.acks.entry(from.clone()).or_default().push(id);
                } else {
                    debug!(child = %id, "handoff for a child not settled here; not acknowledged");
                }
            } else if self.partitioned {
                self.suspended.insert(id.clone(), spec);
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
                self.orphans.insert(id.clone(), orphan);
                self.outbox.acks.entry(from.clone()).or_default().push(id);
            } else {
                let (state, recovered) = if h.repair {
                    (h.state, None)
                } else {
                    self.restore_point(&id, h.state, h.recovered)
                };
                self.spawn(spec, state, StartPurpose::Handoff(from.clone()));
                if let Some(local) = self.local.get_mut(&id) {
                    local.recovered = recovered;
                    local.snapshot.seq = h.lineage;
                }
            }
        }
    }

    pub(super) fn on_handoff_ack(&mut self, now: Time, from: &NodeId, ids: Vec<ChildId>) {
        let mut moved = Vec::new();
        for id in ids {
            self.handed(&id, from);
            // An orphan offered to its owner: the owner runs it now.
            if self
                .orphans
                .get(&id)
                .is_some_and(|o| o.sent_to.as_ref() == Some(from))
            {
                self.orphans.remove(&id);
            }
            if self.outbound.get(&id).is_some_and(|o| o.to == *from) {
                self.outbound.remove(&id);
                moved.push(id.clone());
            }
            // The new owner runs it: the row kept while moving can go (also
            // for orphans offered without tracking).
            let moving = self
                .registry
                .row(&self.me, id.as_str())
                .is_some_and(|r| r.moving_to.is_some());
            if moving && !self.outbound.contains_key(&id) {
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
            if self.handing.get(&id).is_some_and(|h| h.to == *from) {
                self.abandon(&id, Some(format!("{from} could not start it: {why}")));
            } else if self.outbound.get(&id).is_some_and(|o| o.to == *from) {
                // A stopped copy has nowhere else to go: the owner's
                // refusal (reported there as ChildFailed) ends it.
                self.outbound.remove(&id);
                self.write_own(None, &id);
            } else if self
                .orphans
                .get(&id)
                .is_some_and(|o| o.sent_to.as_ref() == Some(from))
            {
                self.orphans.remove(&id);
            }
        }
        self.after_local_change(now);
    }

    /// Redistribution may have finished, or a leave completed.
    pub(super) fn after_local_change(&mut self, now: Time) {
        if self.lock.is_none() && self.leaving.is_none() {
            return;
        }
        let migrating = !self.outbound.is_empty()
            || !self.handing.is_empty()
            || self.local.values().any(|l| {
                matches!(
                    l.state,
                    LocalState::Stopping {
                        purpose: StopPurpose::Migrate(_),
                        ..
                    }
                )
            });
        if self.lock.is_some() && !migrating {
            self.unlock(now);
        }
        let draining = self
            .leaving
            .as_ref()
            .is_some_and(|l| l.awaiting_successor.is_none());
        if draining && self.local.is_empty() && self.outbound.is_empty() {
            self.finish_leave();
        }
    }

    /// Lifts the redistribution lock and runs what was queued, in order.
    pub(super) fn unlock(&mut self, now: Time) {
        let Some(lock) = self.lock.take() else { return };
        for (direction, node) in lock.triggers {
            self.emit(Event::PostRedistribution { direction, node });
        }
        self.emit(Event::PriorityStateUpdated { level: 0 });
        let queued = std::mem::take(&mut self.queue);
        for q in queued {
            match q {
                Queued::Command {
                    request, command, ..
                } => self.dispatch_command(now, request, command),
                Queued::Remote { from, message } => self.dispatch_message(now, &from, message),
            }
        }
    }

    pub(super) fn expire_queue(&mut self, now: Time) {
        let (expired, kept): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| matches!(q, Queued::Command { deadline, .. } if *deadline <= now));
        self.queue = kept.into();
        for q in expired {
            if let Queued::Command { request, .. } = q {
                self.reply(request, Reply::Error(CommandError::LockTimeout));
            }
        }
    }

    /// Enters or leaves partition mode per the partition strategy.
    pub(super) fn check_quorum(&mut self, now: Time) {
        let view = QuorumView {
            now,
            visible: self.membership.visible(),
            history: self.membership.history(),
        };
        let partitioned = self.strategies.partition.is_partitioned(&view);
        if partitioned && !self.partitioned {
            info!(
                visible = view.visible,
                "quorum lost: stopping local children"
            );
            self.partitioned = true;
            self.emit(Event::Partitioned);
            let ids: Vec<ChildId> = self.local.keys().cloned().collect();
            for id in ids {
                self.begin_stop(&id, StopPurpose::Partition, None);
            }
        } else if !partitioned && self.partitioned {
            info!("quorum restored");
            self.partitioned = false;
            self.emit(Event::QuorumRestored);
            for (id, spec) in std::mem::take(&mut self.suspended) {
                if self.registry.lookup_ref(id.as_str()).is_empty() {
                    self.orphans.insert(id, Orphan::new(spec, None, true));
                }
            }
        }
    }

    /// Graceful leave: announce, hand every child to its owner in the ring
    /// without this node, then say `Left`.
    pub(super) fn begin_leave(&mut self, now: Time, request: Option<RequestId>) {
        if let Some(leaving) = &mut self.leaving {
            // Already draining (asked by a peer, or twice): the drain goes
            // on; the first local request gets the answer.
            match (leaving.request, request) {
                (None, r) => leaving.request = r,
                (Some(_), Some(r)) => self.reply(r, Reply::Error(CommandError::ShuttingDown)),
                (Some(_), None) => {}
            }
            return;
        }
        let alone = self.ring_without_me().is_empty();
        let holding = !self.local.is_empty() || !self.orphans.is_empty();
        let awaiting_successor =
            (alone && holding && self.cfg.expect_peers).then(|| now + self.cfg.successor_wait);
        self.leaving = Some(super::Leaving {
            request,
            deadline: now + self.cfg.shutdown_timeout,
            awaiting_successor,
            waited: awaiting_successor.is_some(),
        });
        for to in self.contactable() {
            self.send(to, Message::Leaving);
        }
        for q in std::mem::take(&mut self.queue) {
            if let Queued::Command { request, .. } = q {
                self.reply(request, Reply::Error(CommandError::ShuttingDown));
            }
        }
        if awaiting_successor.is_some() {
            info!(
                children = self.local.len() + self.orphans.len(),
                wait = ?self.cfg.successor_wait,
                "leaving, but no other member is known yet: waiting for one to hand children to"
            );
            return;
        }
        self.drain_leaving(now);
    }

    /// A leaving node hands every child (and orphan) to its owner in the
    /// ring without itself; with none, they stop for good.
    pub(super) fn drain_leaving(&mut self, now: Time) {
        if let Some(l) = &mut self.leaving {
            l.awaiting_successor = None;
        }
        let without_me = self.ring_without_me();
        let ids: Vec<ChildId> = self.local.keys().cloned().collect();
        if without_me.is_empty() && !ids.is_empty() {
            warn!(
                children = ids.len(),
                "the last node leaves: its children stop for good"
            );
        }
        for id in ids {
            if self.handing.contains_key(&id) {
                continue;
            }
            let to = self.successor_in(&without_me, &self.local[&id].spec);
            self.move_away(&id, to);
        }
        // Orphans this node knew about go to their owners too, kept until
        // acknowledged (this node may hold the only record of one).
        for (_, o) in std::mem::take(&mut self.orphans) {
            if let Some(to) = self.successor_in(&without_me, &o.spec) {
                self.hand_off(o.spec, to, o.state, o.recovered, o.lineage);
            }
        }
        if without_me.is_empty() && !self.outbound.is_empty() {
            // Handed to nodes that are all leaving too: no acknowledgement
            // that matters can come.
            warn!(
                children = self.outbound.len(),
                "every other member is leaving: children handed to them stop for good"
            );
            self.outbound.clear();
        }
        self.after_local_change(now);
    }

    /// A leaving node whose every other member is leaving or gone (the
    /// whole cluster is stopping) waits once for a new member, as a lone
    /// leaver does, and then lets its children go, rather than wait for
    /// handoffs to be acknowledged until the shutdown timeout.
    pub(super) fn check_stranded(&mut self, now: Time) {
        let Some(l) = &self.leaving else { return };
        if l.awaiting_successor.is_some() || !self.ring_without_me().is_empty() {
            return;
        }
        if self.local.is_empty() && self.outbound.is_empty() && self.orphans.is_empty() {
            return;
        }
        if self.cfg.expect_peers && !l.waited {
            let until = now + self.cfg.successor_wait;
            if let Some(l) = &mut self.leaving {
                l.awaiting_successor = Some(until);
                l.waited = true;
            }
            info!("every other member is leaving: waiting for one to hand children to");
            return;
        }
        self.drain_leaving(now);
    }

    pub(super) fn finish_leave(&mut self) {
        let Some(leaving) = self.leaving.take() else {
            return;
        };
        self.outbox.left_to = self.contactable();
        self.left = true;
        self.lock = None;
        self.emit(Event::Shutdown {
            reason: "left the cluster".into(),
        });
        if let Some(request) = leaving.request {
            self.reply(request, Reply::Left);
        }
    }

    /// A handoff unacknowledged for `suspect_after` is sent again (it may
    /// have been lost with a connection); the receiver deduplicates.
    pub(super) fn resend_stale_handoffs(&mut self) {
        if self.strict.is_some() {
            // Strict mode: another node runs it (only a quorum-granted copy
            // gets a live row), so this stopped copy is stale. Should that
            // node die, this node orphans its row like any other.
            let stale: Vec<ChildId> = self
                .outbound
                .keys()
                .filter(|id| self.strict_held_elsewhere(id))
                .cloned()
                .collect();
            for id in stale {
                debug!(child = %id, "strict: handed-over copy runs elsewhere; dropped");
                self.outbound.remove(&id);
                self.write_own(None, &id);
            }
        }
        let every = self.ticks_per_suspect();
        let mut again = Vec::new();
        for o in self.outbound.values_mut() {
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

    /// Periodic repair: digests to the sync targets, orphans re-offered,
    /// placement reconciled. (Unacknowledged handoffs are re-sent on the
    /// heartbeat by `resend_stale_handoffs`.)
    pub(super) fn sync_round(&mut self) {
        let peers = self.membership.ring_peers();
        let targets = self
            .strategies
            .sync
            .round_targets(&self.me, &peers, &mut self.rng);
        let digest = self.registry.digest();
        for to in targets {
            self.send(to, Message::Digest(digest.clone()));
        }
        for o in self.orphans.values_mut() {
            o.sent_to = None;
        }
        self.audit_promises();
        self.reconcile();
        self.repair_replicas();
    }
}
