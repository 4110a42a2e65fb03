//! Membership reactions: the ring, redistribution under the lock, orphan
//! restarts, handoffs, graceful leave and quorum loss.
//!
//! Placement is reconciled, not replayed: after any membership change each
//! node looks at the children it runs and the orphans it knows, and moves
//! or starts what the ring says. This is idempotent, so a lost message or a
//! second change in the middle only means the next reconcile does the rest.

use tracing::{debug, info};

use super::{LocalState, Lock, Node, Orphan, Restore, StartPurpose, StopPurpose};
use crate::event::{Direction, Event};
use crate::id::{ChildId, Incarnation, NodeId};
use crate::membership::Change;
use crate::protocol::Message;
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
                    self.met_peers = true;
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
            if self.registry.lookup_ref(id.as_str()).is_empty()
                && !self.children.local.contains_key(&id)
            {
                // An orphan this node already keeps (e.g. handed here by a
                // peer that saw the death first, with this node's snapshot
                // in it) is not replaced by a poorer one.
                // Strict mode: it was on its way to a live node, whose copy of
                // the handoff (with the state) may only be late, its sender
                // cut off rather than dead. Nothing is offered for the
                // takeover delay, as for a running child.
                let in_transit = row
                    .moving_to
                    .as_ref()
                    .is_some_and(|to| to != node && self.ring.contains(to));
                let hold = self
                    .cfg
                    .strict
                    .filter(|_| in_transit)
                    .map(|s| self.now + s.takeover_after());
                let orphan = self
                    .children
                    .orphans
                    .entry(id.clone())
                    .or_insert_with(|| Orphan::new(row.spec, None, false));
                orphan.retry_at = orphan.retry_at.max(hold);
                if let Some((state, seq)) = snapshot {
                    // A handed-over final state (no number) beats any
                    // snapshot; otherwise the newer snapshot wins.
                    let older = match (&orphan.state, orphan.recovered) {
                        (None, _) => true,
                        (Some(_), Some(have)) => have < seq,
                        (Some(_), None) => false,
                    };
                    if older {
                        debug!(child = %id, seq, "orphan keeps its latest snapshot");
                        orphan.state = Some(state);
                        orphan.recovered = Some(seq);
                    }
                }
            }
        }
    }

    /// Handoffs to a node that went away are orphans again.
    fn reroute_outbound(&mut self, node: &NodeId) {
        self.abandon_handing_to(node);
        let lost: Vec<ChildId> = self
            .children
            .outbound
            .iter()
            .filter(|(_, o)| o.to == *node)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            let Some(o) = self.children.outbound.remove(&id) else {
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
                    self.children.orphans.insert(id, orphan);
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
        let ids: Vec<ChildId> = self.children.local.keys().cloned().collect();
        for id in &ids {
            self.reconcile_child(id);
        }
        self.update_roles();
        let ids: Vec<ChildId> = self.children.orphans.keys().cloned().collect();
        for id in ids {
            let responsible = self
                .children
                .orphans
                .get(&id)
                .is_some_and(|o| o.responsible);
            let held_here =
                self.children.local.contains_key(&id) || self.children.outbound.contains_key(&id);
            let held_elsewhere = !self.registry.lookup_ref(id.as_str()).is_empty();
            // A live node is handing it over, with its state: an orphan this
            // node made from a stale view (e.g. it saw that node die while
            // cut off) must not race that handoff with none.
            let handed_elsewhere = self
                .registry
                .moving_row(id.as_str())
                .is_some_and(|(n, _)| *n != self.me && self.ring.contains(n));
            if held_here || ((held_elsewhere || handed_elsewhere) && !responsible) {
                debug!(child = %id, "orphan dropped: held elsewhere");
                self.children.orphans.remove(&id);
                continue;
            }
            if self.strict.is_some() && self.strict_held_elsewhere(&id) {
                // Only a quorum-granted copy gets a row: it is the child.
                debug!(child = %id, "strict: orphan runs elsewhere; dropped");
                self.children.orphans.remove(&id);
                self.write_own(None, &id);
                continue;
            }
            let Some(orphan) = self.children.orphans.get(&id) else {
                continue;
            };
            if orphan.retry_at.is_some_and(|t| t > self.now) {
                continue;
            }
            let spec = orphan.spec.clone();
            let state = orphan.state.clone();
            let recovered = orphan.recovered;
            let lineage = orphan.lineage;
            // Started from a handoff whose first claim failed: its sender
            // still waits to hear that it runs.
            let purpose = orphan
                .handed_by
                .clone()
                .map_or(StartPurpose::Orphan, StartPurpose::Handoff);
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
                let restore = Restore {
                    state,
                    recovered,
                    lineage,
                };
                self.spawn(spec, restore, purpose);
            } else if let Some(first) = owners.first() {
                // The owner may not know the child (e.g. it restarted and
                // lost its registry): tell it once per sync round.
                if orphan.sent_to.as_ref() != Some(first) {
                    let to = first.clone();
                    self.queue_handoff(to.clone(), &spec, state, recovered, lineage);
                    if let Some(o) = self.children.orphans.get_mut(&id) {
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
        let Some(local) = self.children.local.get(id) else {
            return;
        };
        if !matches!(local.state, LocalState::Running(_)) || self.children.handing.contains_key(id)
        {
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
            let ids: Vec<ChildId> = self.children.local.keys().cloned().collect();
            for id in ids {
                self.begin_stop(&id, StopPurpose::Partition, None);
            }
        } else if !partitioned && self.partitioned {
            info!("quorum restored");
            self.partitioned = false;
            self.emit(Event::QuorumRestored);
            for (id, (spec, state)) in std::mem::take(&mut self.children.suspended) {
                if self.registry.lookup_ref(id.as_str()).is_empty() {
                    self.children
                        .orphans
                        .insert(id, Orphan::new(spec, state, true));
                }
            }
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
        for o in self.children.orphans.values_mut() {
            o.sent_to = None;
        }
        self.audit_promises();
        self.reconcile();
        self.repair_replicas();
    }
}
