//! Redundancy beyond one copy: missing replicas are re-created by the
//! holders, and every local replica knows (and is told) its role.
//!
//! Repair runs on membership changes and on sync rounds. A repair offer
//! can race a stop that removed one replica and not yet the others, so a
//! node refuses repair offers for a child it stopped on request within the
//! last two sync intervals (`Children::refuses_repair`).

use tracing::debug;

use super::{LocalState, Node};
use crate::event::Event;
use crate::id::ChildId;
use crate::membership::Status;
use crate::output::Output;
use crate::protocol::Handoff;

impl Node {
    pub(super) fn redundant(&self) -> bool {
        self.strategies.redundancy.replicas(usize::MAX) > 1
    }

    /// Every child this node runs is offered to its owners that lack it.
    pub(super) fn repair_replicas(&mut self) {
        if !self.redundant() {
            return;
        }
        let ids: Vec<ChildId> = self.children.local.keys().cloned().collect();
        for id in ids {
            self.repair_replica(&id);
        }
    }

    /// Offers a running child to those of its owners that lack it (an
    /// untracked handoff: the next membership change offers it again).
    pub(super) fn repair_replica(&mut self, id: &ChildId) {
        if !self.redundant() || self.partitioned || self.leaving.is_some() || self.left {
            return;
        }
        let Some(local) = self.children.local.get(id) else {
            return;
        };
        if !matches!(local.state, LocalState::Running(_)) || self.children.handing.contains_key(id)
        {
            return;
        }
        let spec = local.spec.clone();
        for to in self.owners(&self.ring, self.agreed_spec(id, &spec)) {
            let usable = to != self.me
                && !self.registry.holds(&to, id.as_str())
                && self
                    .membership
                    .get(&to)
                    .is_some_and(|m| m.status == Status::Up);
            if usable {
                debug!(child = %id, %to, "offering a missing replica");
                self.outbox.handoffs.entry(to).or_default().push(Handoff {
                    recovered: None,
                    lineage: 0,
                    spec: (*spec).clone(),
                    state: None,
                    repair: true,
                });
            }
        }
    }

    /// Recomputes every local replica's role.
    pub(super) fn update_roles(&mut self) {
        // With one copy per child an owner is always at index 0, and a
        // copy outside the owners keeps its role: a child that already has
        // the first owner's role cannot change, so only the others are
        // looked at (a join at 1 M children spent a third of its time here).
        let settled = (self.replicas() == 1).then(|| self.strategies.redundancy.role(0));
        let ids: Vec<ChildId> = self
            .children
            .local
            .iter()
            .filter(|(_, l)| settled.is_none() || l.role != settled)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.update_role(&id);
        }
    }

    /// Sets a running replica's role from its place among the owners, and
    /// tells it when the strategy signals that role.
    pub(super) fn update_role(&mut self, id: &ChildId) {
        let Some(local) = self.children.local.get(id) else {
            return;
        };
        if !matches!(local.state, LocalState::Running(_)) {
            return;
        }
        let owners = self.owners(&self.ring, self.agreed_spec(id, &local.spec));
        // A copy outside the owners (on its way out) keeps its last role.
        let Some(index) = owners.iter().position(|o| *o == self.me) else {
            return;
        };
        let role = self.strategies.redundancy.role(index);
        if local.role == Some(role) {
            return;
        }
        if let Some(l) = self.children.local.get_mut(id) {
            l.role = Some(role);
        }
        if self.strategies.redundancy.signals(role) {
            self.out.push_back(Output::Role {
                id: id.clone(),
                role,
            });
            self.emit(Event::RoleChanged {
                id: id.clone(),
                role,
            });
        }
    }
}
