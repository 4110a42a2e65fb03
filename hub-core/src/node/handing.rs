//! Start-then-stop migration (HotSwap): the old copy keeps running until the
//! new owner runs the child.
//!
//! A move goes through two stages, each with a deadline:
//! 1. *collecting* (with handover only): the driver snapshots the instance
//!    and pauses it, so nothing it acknowledges is missing from the state;
//!    waits at most `handover_data_wait`, then the child moves without
//!    state (logged).
//! 2. *offered*: the handoff (with the state) is sent and re-sent until the
//!    new owner acknowledges; then the old copy stops. A refusal, the new
//!    owner leaving, or no answer within `child_migration_timeout` keeps
//!    the old copy (resumed) and the next reconcile tries again. A leaving
//!    node cannot keep it: after `retention` it stops the old copy and
//!    keeps re-sending the handoff, state included, until it is gone.

use bytes::Bytes;
use tracing::{debug, warn};

use super::{LocalState, Node, Outbound, StopPurpose};
use crate::event::Event;
use crate::id::{ChildId, NodeId};
use crate::output::Output;
use crate::strategy::MigrationMode;
use crate::time::Time;

/// A running child on its way to `to`.
#[derive(Clone, Debug)]
pub(super) struct Handing {
    pub(super) to: NodeId,
    /// The handoff is sent (else the node waits for the state snapshot).
    pub(super) offered: bool,
    pub(super) deadline: Time,
    /// When the move began, for the handover time.
    pub(super) began: Time,
}

/// HotSwap's options, when the migration strategy runs start-then-stop.
#[derive(Clone, Copy, Debug)]
struct Hot {
    handover: bool,
    retention: std::time::Duration,
    handover_data_wait: std::time::Duration,
    child_migration_timeout: std::time::Duration,
}

impl Node {
    fn hot(&self) -> Option<Hot> {
        match self.strategies.migration {
            MigrationMode::StopThenStart => None,
            MigrationMode::StartThenStop {
                handover,
                retention,
                handover_data_wait,
                child_migration_timeout,
            } => Some(Hot {
                handover,
                retention,
                handover_data_wait,
                child_migration_timeout,
            }),
        }
    }

    /// Moves a running child to `to` per the migration strategy, or stops
    /// it for good when there is no `to` (the last node leaving).
    pub(super) fn move_away(&mut self, id: &ChildId, to: Option<NodeId>) {
        match (to, self.hot()) {
            (None, _) => self.begin_stop(id, StopPurpose::Shutdown, None),
            (Some(to), None) => self.begin_stop(id, StopPurpose::Migrate(to), None),
            (Some(to), Some(hot)) => self.begin_handing(id, to, hot),
        }
    }

    fn begin_handing(&mut self, id: &ChildId, to: NodeId, hot: Hot) {
        let running = self
            .children
            .local
            .get(id)
            .is_some_and(|l| matches!(l.state, LocalState::Running(_)));
        if !running || self.children.handing.contains_key(id) {
            return;
        }
        debug!(child = %id, %to, handover = hot.handover, "hot move");
        if hot.handover {
            self.children.handing.insert(
                id.clone(),
                Handing {
                    to,
                    offered: false,
                    deadline: self.now + hot.handover_data_wait,
                    began: self.now,
                },
            );
            self.out.push_back(Output::RequestState { id: id.clone() });
        } else {
            self.children.handing.insert(
                id.clone(),
                Handing {
                    to,
                    offered: false,
                    deadline: self.now,
                    began: self.now,
                },
            );
            self.offer(id, None);
        }
    }

    /// The snapshot asked for by a handover.
    pub(super) fn on_state(&mut self, id: ChildId, state: Option<Bytes>) {
        if self.children.handing.get(&id).is_some_and(|h| !h.offered) {
            self.offer(&id, state);
        } else {
            debug!(child = %id, "unrequested state report ignored");
        }
    }

    /// Sends the handoff of a handing child, if its target is still a
    /// member; otherwise picks the successor (leaving) or resumes the old
    /// copy (the next reconcile decides again).
    fn offer(&mut self, id: &ChildId, state: Option<Bytes>) {
        let (Some(h), Some(hot), Some(local)) = (
            self.children.handing.get(id),
            self.hot(),
            self.children.local.get(id),
        ) else {
            return;
        };
        let spec = local.spec.clone();
        let lineage = local.snapshot.seq;
        let mut to = h.to.clone();
        let began = h.began;
        if !self.ring.contains(&to) || to == self.me {
            match self.leaving.as_ref().and(self.successor(&spec)) {
                Some(next) => to = next,
                None => {
                    self.abandon(id, None);
                    return;
                }
            }
        }
        self.mark_moving(id, to.clone());
        self.queue_handoff(to.clone(), &spec, state.clone(), None, lineage);
        self.children.outbound.insert(
            id.clone(),
            Outbound {
                spec,
                state,
                recovered: None,
                lineage,
                to: to.clone(),
                ticks: 0,
            },
        );
        let wait = if self.leaving.is_some() {
            hot.retention
        } else {
            hot.child_migration_timeout
        };
        self.children.handing.insert(
            id.clone(),
            Handing {
                to,
                offered: true,
                deadline: self.now + wait,
                began,
            },
        );
    }

    /// Gives up a move and keeps the old copy: it handles messages again
    /// and its row is live again. With `reason`, a `ChildFailed` event
    /// says why.
    pub(super) fn abandon(&mut self, id: &ChildId, reason: Option<String>) {
        let Some(h) = self.children.handing.remove(id) else {
            return;
        };
        self.counters.handovers_abandoned += 1;
        if self.children.outbound.get(id).is_some_and(|o| o.to == h.to) {
            self.children.outbound.remove(id);
        }
        if self.hot().is_some_and(|hot| hot.handover) {
            self.out.push_back(Output::Resume { id: id.clone() });
        }
        if let Some(local) = self.children.local.get(id) {
            if let LocalState::Running(handle) = local.state {
                let spec = local.spec.clone();
                self.write_own(Some((spec, handle)), id);
            }
        }
        if let Some(reason) = reason {
            warn!(child = %id, to = %h.to, %reason, "hot move abandoned; old copy kept");
            self.emit(Event::ChildFailed {
                id: id.clone(),
                reason,
            });
        }
        if self.leaving.is_some() {
            let to = self
                .children
                .local
                .get(id)
                .and_then(|l| self.successor(&l.spec));
            self.move_away(id, to);
        }
    }

    /// The new owner runs the child: the old copy stops.
    pub(super) fn handed(&mut self, id: &ChildId, from: &NodeId) {
        if self.children.handing.get(id).is_some_and(|h| h.to == *from) {
            if let Some(h) = self.children.handing.remove(id) {
                self.counters.handovers += 1;
                self.counters.handover_time += self.now.since(h.began);
            }
            self.begin_stop(id, StopPurpose::Retire(from.clone()), None);
        }
    }

    /// Hot moves to a node that went away: keep the old copies.
    pub(super) fn abandon_handing_to(&mut self, node: &NodeId) {
        let ids: Vec<ChildId> = self
            .children
            .handing
            .iter()
            .filter(|(_, h)| h.to == *node)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.abandon(&id, None);
        }
    }

    pub(super) fn expire_handing(&mut self, now: Time) {
        let due: Vec<(ChildId, Handing)> = self
            .children
            .handing
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        for (id, h) in due {
            if !h.offered {
                warn!(child = %id, "no state within handover_data_wait; moving without it");
                self.offer(&id, None);
            } else if self.leaving.is_some() {
                // Retention is over: the old copy goes, the handoff (and its
                // state) stays outbound until acknowledged.
                self.children.handing.remove(&id);
                self.begin_stop(&id, StopPurpose::Retire(h.to), None);
            } else {
                let reason = format!(
                    "migration to {} not acknowledged within child_migration_timeout",
                    h.to
                );
                self.abandon(&id, Some(reason));
            }
        }
        self.after_local_change(now);
    }
}
