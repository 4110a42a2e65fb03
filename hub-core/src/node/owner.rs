//! Owner side: start and stop requests, local process reports, and the
//! node's own registry slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::{
    snapshots, Local, LocalState, Node, Orphan, Restore, StartPurpose, StopPurpose, Waiter,
};
use crate::error::{StartError, StopError};
use crate::event::Event;
use crate::id::{ChildId, Handle, NodeId};
use crate::output::{ExitReason, Output, StopReason};
use crate::protocol::{Message, OpRef};
use crate::registry::RegistryChange;
use crate::spec::ChildSpec;
use crate::time::Time;

impl Node {
    /// Handles a start request for children this node owns (per the
    /// sender); forwards those it does not own, within the hop limit.
    pub(super) fn owner_start(
        &mut self,
        op: OpRef,
        specs: Vec<ChildSpec>,
        check_existing: bool,
        path: Vec<NodeId>,
    ) {
        let mut forwards: BTreeMap<NodeId, Vec<ChildSpec>> = BTreeMap::new();
        for spec in specs {
            let id = spec.id.clone();
            if let Err(e) = spec.validate() {
                self.deliver_start(op.clone(), id, Err(StartError::InvalidSpec(e)));
                continue;
            }
            if self.partitioned {
                self.deliver_start(op.clone(), id, Err(StartError::Partitioned));
                continue;
            }
            if self.leaving.is_some() {
                self.deliver_start(op.clone(), id, Err(StartError::ShuttingDown));
                continue;
            }
            let owners = self.owners(&self.ring, &spec);
            if !owners.contains(&self.me) {
                let next = owners.iter().find(|o| !path.contains(o));
                match next {
                    Some(to) if path.len() <= self.cfg.forward_hop_limit => {
                        forwards.entry(to.clone()).or_default().push(spec);
                    }
                    _ => {
                        let mut nodes = path.clone();
                        nodes.push(self.me.clone());
                        warn!(child = %id, ?nodes, "start forwarding limit reached");
                        self.emit(Event::ForwardingLimit {
                            id: id.clone(),
                            path: nodes.clone(),
                            next: next.cloned(),
                        });
                        self.deliver_start(op.clone(), id, Err(StartError::HopLimit(nodes)));
                    }
                }
                continue;
            }
            if let Some(local) = self.children.local.get_mut(&id) {
                let repeat = local.started_by.as_ref() == Some(&op);
                match &mut local.state {
                    LocalState::Running(handle) => {
                        let r = if check_existing && !repeat {
                            Err(StartError::AlreadyStarted {
                                node: self.me.clone(),
                                handle: *handle,
                            })
                        } else {
                            Ok(*handle)
                        };
                        self.deliver_start(op.clone(), id, r);
                    }
                    LocalState::Starting(StartPurpose::Request(_)) if repeat => {}
                    LocalState::Starting(StartPurpose::Request(waiters)) => {
                        waiters.push(Waiter {
                            op: op.clone(),
                            duplicate: check_existing,
                        });
                    }
                    LocalState::Starting(_) | LocalState::Stopping { .. } => {
                        // Being moved in or out: it exists, under another flow.
                        let handle = match local.state {
                            LocalState::Stopping { handle, .. } => handle,
                            _ => Handle(0),
                        };
                        let r = Err(StartError::AlreadyStarted {
                            node: self.me.clone(),
                            handle,
                        });
                        self.deliver_start(op.clone(), id, r);
                    }
                }
                continue;
            }
            if check_existing {
                // Each owner answers for its own replica (above); a copy on
                // any other node means the child exists already.
                let elsewhere = self
                    .registry
                    .lookup_ref(id.as_str())
                    .iter()
                    .find(|(n, _)| !owners.contains(n));
                if let Some((node, handle)) = elsewhere {
                    let r = Err(StartError::AlreadyStarted {
                        node: node.clone(),
                        handle: *handle,
                    });
                    self.deliver_start(op.clone(), id, r);
                    continue;
                }
                // In transit to this node: handed over (its old node's row
                // says so, the handoff not here yet), or orphaned and
                // waiting to be restarted here. A fresh copy now would
                // race the handed-over state and could replace it.
                let in_transit = self
                    .registry
                    .moving_row(id.as_str())
                    .map(|(node, row)| (node.clone(), row.handle))
                    .or_else(|| {
                        self.children
                            .orphans
                            .contains_key(&id)
                            .then(|| (self.me.clone(), Handle(0)))
                    });
                if let Some((node, handle)) = in_transit {
                    debug!(child = %id, %node, "start of a child in transit: it exists");
                    let r = Err(StartError::AlreadyStarted { node, handle });
                    self.deliver_start(op.clone(), id, r);
                    continue;
                }
            }
            let waiter = Waiter {
                op: op.clone(),
                duplicate: false,
            };
            self.spawn(
                Arc::new(spec),
                Restore::default(),
                StartPurpose::Request(vec![waiter]),
            );
        }
        for (to, specs) in forwards {
            let ids = specs.iter().map(|s| s.id.clone()).collect();
            let mut next_path = path.clone();
            next_path.push(self.me.clone());
            self.emit(Event::ForwardedMigration {
                node: to.clone(),
                ids,
            });
            let msg = Message::StartRequest {
                op: op.clone(),
                specs,
                check_existing,
                path: next_path,
            };
            self.send(to, msg);
        }
    }

    /// Stops the listed children if they run here; `op` gets the results.
    pub(super) fn owner_stop(&mut self, op: Option<OpRef>, ids: Vec<ChildId>) {
        for id in ids {
            let running = self
                .children
                .local
                .get(&id)
                .is_some_and(|l| !matches!(l.state, LocalState::Starting(_)));
            if running {
                self.begin_stop(&id, StopPurpose::Requested, op.clone());
            } else if let Some(op) = op.clone() {
                self.deliver_stop(op, id, Err(StopError::NotFound));
            }
        }
    }

    pub(super) fn spawn(&mut self, spec: Arc<ChildSpec>, restore: Restore, purpose: StartPurpose) {
        let orphan = self.children.orphans.remove(&spec.id);
        if matches!(purpose, StartPurpose::Request(_)) {
            self.children.clear_stopped(spec.id.as_str());
        }
        // A handoff without state (sent from a stale orphan elsewhere) must
        // not replace the state this node already keeps for the child.
        let restore = match (&purpose, &orphan) {
            (StartPurpose::Request(_), _) | (_, None) => restore,
            (_, Some(_)) if restore.state.is_some() => restore,
            (_, Some(o)) => Restore {
                state: o.state.clone(),
                recovered: o.recovered,
                lineage: o.lineage.max(restore.lineage),
            },
        };
        let started_by = match &purpose {
            StartPurpose::Request(waiters) => waiters.first().map(|w| w.op.clone()),
            _ => None,
        };
        self.children.local.insert(
            spec.id.clone(),
            Local {
                spec: spec.clone(),
                state: LocalState::Starting(purpose),
                started_by,
                role: None,
                epoch: self.ring_epoch,
                // Its snapshots are numbered after the point it starts from.
                snapshot: snapshots::Own {
                    seq: restore.lineage.max(restore.recovered.unwrap_or(0)),
                    ..Default::default()
                },
                recovered: restore.recovered,
                hold: Default::default(),
            },
        );
        let restore = restore.state;
        if self.defer_spawn(&spec.id, restore.clone(), orphan) {
            return;
        }
        self.out.push_back(Output::Spawn { spec, restore });
    }

    /// Asks the driver to stop a running child; a second stop while one is
    /// in flight only adds the waiter.
    pub(super) fn begin_stop(&mut self, id: &ChildId, purpose: StopPurpose, waiter: Option<OpRef>) {
        if !matches!(purpose, StopPurpose::Retire(_)) && self.children.handing.remove(id).is_some()
        {
            // A stop overrides a hot move in flight: the old copy goes and
            // so does the offer (the new owner may still start it, and the
            // reconcile then keeps one copy).
            self.children.outbound.remove(id);
        }
        let Some(local) = self.children.local.get_mut(id) else {
            return;
        };
        match &mut local.state {
            LocalState::Running(handle) => {
                let reason = match &purpose {
                    StopPurpose::Requested => StopReason::Requested,
                    StopPurpose::Migrate(to) | StopPurpose::Retire(to) => {
                        StopReason::Migrated { to: to.clone() }
                    }
                    StopPurpose::Conflict => StopReason::Conflict,
                    StopPurpose::Partition => StopReason::Partitioned,
                    StopPurpose::Shutdown => StopReason::Shutdown,
                    StopPurpose::Recover(..) => StopReason::Recovering,
                    StopPurpose::Fence => StopReason::Partitioned,
                };
                local.state = LocalState::Stopping {
                    handle: *handle,
                    purpose,
                    waiters: waiter.into_iter().collect(),
                };
                self.out.push_back(Output::Stop {
                    id: id.clone(),
                    reason,
                });
            }
            LocalState::Stopping { waiters, .. } => waiters.extend(waiter),
            LocalState::Starting(_) => {}
        }
    }

    pub(super) fn on_started(&mut self, id: ChildId, handle: Handle) {
        let Some(local) = self.children.local.get_mut(&id) else {
            // Started after we gave up on it (e.g. it was moved meanwhile).
            warn!(child = %id, "start report for an unknown child; stopping it");
            self.out.push_back(Output::Stop {
                id,
                reason: StopReason::Conflict,
            });
            return;
        };
        let LocalState::Starting(purpose) =
            std::mem::replace(&mut local.state, LocalState::Running(handle))
        else {
            debug!(child = %id, "duplicate start report");
            return;
        };
        let spec = local.spec.clone();
        // It runs here now: another holder's snapshot of it is history.
        self.snapshots.remove(&id);
        // A requested start reached every owner of the ring it was sent
        // in; a restarted orphan, a handed-over child, or any child whose
        // start spanned a ring change may be missing on some owner.
        let repair = !matches!(purpose, StartPurpose::Request(_)) || local.epoch != self.ring_epoch;
        self.write_own(Some((spec, handle)), &id);
        self.emit(Event::ChildStarted {
            id: id.clone(),
            handle,
        });
        self.recovered(&id);
        match purpose {
            StartPurpose::Request(waiters) => {
                for w in waiters {
                    let r = if w.duplicate {
                        Err(StartError::AlreadyStarted {
                            node: self.me.clone(),
                            handle,
                        })
                    } else {
                        Ok(handle)
                    };
                    self.deliver_start(w.op, id.clone(), r);
                }
            }
            StartPurpose::Handoff(from) => {
                self.outbox.acks.entry(from).or_default().push(id.clone())
            }
            StartPurpose::Orphan => {}
        }
        self.check_lease_of(&id);
        if self.partitioned {
            self.begin_stop(&id, StopPurpose::Partition, None);
        } else if self.leaving.is_none() {
            // The ring may have changed while it started.
            self.reconcile_child(&id);
            self.update_role(&id);
            if repair {
                self.repair_replica(&id);
            }
        } else {
            let to = self.successor(&self.children.local[&id].spec);
            self.move_away(&id, to);
        }
    }

    pub(super) fn on_start_failed(&mut self, id: ChildId, error: StartError) {
        let Some(local) = self.children.local.remove(&id) else {
            return;
        };
        self.release(&id);
        let LocalState::Starting(purpose) = local.state else {
            self.children.local.insert(id, local);
            return;
        };
        match purpose {
            StartPurpose::Request(waiters) => {
                for w in waiters {
                    self.deliver_start(w.op, id.clone(), Err(error.clone()));
                }
            }
            StartPurpose::Handoff(from) => {
                self.outbox
                    .refusals
                    .entry(from)
                    .or_default()
                    .push((id.clone(), error.to_string()));
                self.emit(Event::ChildFailed {
                    id,
                    reason: error.to_string(),
                });
            }
            StartPurpose::Orphan => self.emit(Event::ChildFailed {
                id,
                reason: error.to_string(),
            }),
        }
    }

    pub(super) fn on_restarted(&mut self, id: ChildId, handle: Handle) {
        let Some(local) = self.children.local.get_mut(&id) else {
            return;
        };
        let LocalState::Running(h) = &mut local.state else {
            return;
        };
        *h = handle;
        let spec = local.spec.clone();
        self.write_own(Some((spec, handle)), &id);
        self.emit(Event::ChildRestarted { id, handle });
    }

    pub(super) fn on_exited(
        &mut self,
        _now: Time,
        id: ChildId,
        reason: ExitReason,
        state: Option<Bytes>,
    ) {
        let Some(local) = self.children.local.remove(&id) else {
            return;
        };
        if !matches!(local.state, LocalState::Starting(_)) {
            self.release(&id);
        }
        match local.state {
            LocalState::Stopping {
                purpose, waiters, ..
            } => {
                for op in waiters {
                    self.deliver_stop(op, id.clone(), Ok(()));
                }
                match purpose {
                    StopPurpose::Migrate(to) => {
                        self.migrate_stopped(local.spec, Some(to), state, local.snapshot.seq)
                    }
                    StopPurpose::Retire(_) => {
                        // Its row went when the new owner acknowledged,
                        // unless the handoff is still outbound.
                        if !self.children.outbound.contains_key(&id) {
                            self.write_own(None, &id);
                        }
                    }
                    StopPurpose::Shutdown => {
                        self.migrate_stopped(local.spec, None, state, local.snapshot.seq)
                    }
                    StopPurpose::Recover(state, seq) => {
                        // Its row stays: the new instance replaces it.
                        let restore = Restore {
                            state: Some(state),
                            recovered: Some(seq),
                            lineage: 0,
                        };
                        self.spawn(local.spec, restore, StartPurpose::Orphan);
                    }
                    StopPurpose::Partition => {
                        self.write_own(None, &id);
                        self.children.suspended.insert(id, (local.spec, state));
                    }
                    StopPurpose::Fence => {
                        // Its row stays, marked moving to nowhere, so that
                        // nodes that saw it orphan it if this node dies;
                        // this node claims it again when it can.
                        let me = self.me.clone();
                        self.mark_moving(&id, me);
                        // It goes on from its final state, not from nothing.
                        let mut orphan = Orphan::new(local.spec, state, true);
                        orphan.lineage = local.snapshot.seq + u64::from(orphan.state.is_some());
                        orphan.retry_at = Some(self.now + self.cfg.heartbeat_interval);
                        self.children.orphans.insert(id, orphan);
                    }
                    StopPurpose::Conflict => {
                        self.write_own(None, &id);
                        // The winning copy's row may be stale (its node
                        // handed the child on, possibly to this very node,
                        // and the removal has not arrived): keep a
                        // responsible orphan, offered to the owner until it
                        // acknowledges that it runs the child. It carries
                        // the winner's spec, which every node judges by
                        // (this copy's may name other nodes, and would
                        // start here again).
                        let spec = self
                            .registry
                            .spec(id.as_str())
                            .cloned()
                            .unwrap_or(local.spec);
                        self.children
                            .orphans
                            .insert(id, Orphan::new(spec, None, true));
                        self.reconcile();
                    }
                    StopPurpose::Requested => {
                        self.write_own(None, &id);
                        if self.redundant() {
                            self.children.note_stopped(id, self.now);
                        }
                    }
                }
            }
            LocalState::Running(_) => {
                // Gone for good per its restart policy (the supervisor
                // restarts the others): removed cluster-wide. A hot move
                // already offered still brings up the new copy.
                self.children.handing.remove(&id);
                self.write_own(None, &id);
                // The child is done, not one replica: the others go too.
                let others: Vec<NodeId> = self
                    .registry
                    .lookup_ref(id.as_str())
                    .iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| *n != self.me)
                    .collect();
                for n in others {
                    let op = self.next_op();
                    let ids = vec![id.clone()];
                    self.send(n, Message::StopRequest { op, ids });
                }
                if let ExitReason::Crashed(r) | ExitReason::Failed(r) = reason {
                    self.emit(Event::ChildFailed { id, reason: r });
                }
            }
            LocalState::Starting(purpose) => {
                self.children.local.insert(
                    id.clone(),
                    Local {
                        spec: local.spec,
                        state: LocalState::Starting(purpose),
                        started_by: local.started_by,
                        role: None,
                        epoch: local.epoch,
                        snapshot: local.snapshot,
                        recovered: local.recovered,
                        hold: local.hold,
                    },
                );
                self.on_start_failed(id, StartError::InitFailed(format!("{reason:?}")));
            }
        }
    }

    /// A child stopped to move: hand it to `to` if that node is still in
    /// the ring, else (when leaving) to its current successor, else keep it
    /// as an orphan. Its row stays, marked moving, until acknowledged.
    /// `state` is its final state: the new owner starts from it, numbering
    /// its snapshots after `lineage`.
    fn migrate_stopped(
        &mut self,
        spec: Arc<ChildSpec>,
        to: Option<NodeId>,
        state: Option<Bytes>,
        lineage: u64,
    ) {
        let id = spec.id.clone();
        // A move is a point of the child's history like a snapshot:
        // numbered after the last one, so that a copy started from an
        // earlier point (a stale orphan, an older snapshot, a re-sent
        // handoff) is known to be older.
        let lineage = lineage + 1;
        let target = to
            .filter(|t| self.ring.contains(t) && *t != self.me)
            .or_else(|| self.leaving.as_ref().and(self.successor(&spec)));
        match target {
            Some(to) => {
                self.mark_moving(&id, to.clone());
                self.hand_off(spec, to, state, None, lineage);
            }
            None if self.leaving.is_some() => {
                debug!(child = %id, "no node left to take it over");
                self.write_own(None, &id);
            }
            None => {
                let me = self.me.clone();
                self.mark_moving(&id, me);
                let mut orphan = Orphan::new(spec, state, true);
                orphan.lineage = lineage;
                self.children.orphans.insert(id, orphan);
            }
        }
    }

    /// Sends a stopped child to its new owner and remembers it until
    /// acknowledged.
    pub(super) fn hand_off(
        &mut self,
        spec: Arc<ChildSpec>,
        to: NodeId,
        state: Option<Bytes>,
        recovered: Option<u64>,
        lineage: u64,
    ) {
        let id = spec.id.clone();
        self.queue_handoff(to.clone(), &spec, state.clone(), recovered, lineage);
        let outbound = super::Outbound {
            spec,
            state,
            recovered,
            lineage,
            to,
            ticks: 0,
        };
        self.children.outbound.insert(id, outbound);
    }

    /// Marks this node's row for `id` as handed to `to`.
    pub(super) fn mark_moving(&mut self, id: &ChildId, to: NodeId) {
        let me = self.me.clone();
        let since = self.registry.clock(&me);
        if let Some((_, changes)) =
            self.registry
                .local_mark_moving(&me, self.cfg.incarnation, id, to)
        {
            self.outbox.dirty_since.get_or_insert(since);
            self.registry_events(changes);
        }
    }

    /// Writes (or with `None` removes) this node's own registry row.
    pub(super) fn write_own(&mut self, row: Option<(Arc<ChildSpec>, Handle)>, id: &ChildId) {
        let me = self.me.clone();
        let inc = self.cfg.incarnation;
        let since = self.registry.clock(&me);
        let changes = match row {
            Some((spec, handle)) => Some(self.registry.local_insert(&me, inc, spec, handle).1),
            None => self.registry.local_remove(&me, inc, id).map(|(_, c)| c),
        };
        if let Some(changes) = changes {
            self.outbox.dirty_since.get_or_insert(since);
            self.registry_events(changes);
        }
    }

    /// Emits the SPEC's registry events for changes of the live view, and
    /// forgets orphans that some node runs again.
    pub(super) fn registry_events(&mut self, changes: Vec<RegistryChange>) {
        for c in changes {
            match c {
                RegistryChange::Inserted { id, node, .. } => {
                    self.children.orphans.remove(&id);
                    if node != self.me {
                        // Another copy appeared: keep only the owner's.
                        self.reconcile_child(&id);
                        // The agreed spec (the lowest holder's) may differ now.
                        self.update_role(&id);
                    }
                    let owners = self.registry.lookup(id.as_str());
                    self.emit(Event::RegistryInserted { id, owners });
                }
                RegistryChange::Removed { id, node } => {
                    self.forget_snapshot_of(&id, &node);
                    if node != self.me {
                        self.update_role(&id);
                    }
                    self.emit(Event::RegistryRemoved {
                        id,
                        nodes: vec![node],
                    })
                }
            }
        }
    }
}
