//! Graceful leave: announce it, hand every child to its owner in the ring
//! without this node (or wait for a successor when there is none), then
//! say `Left`.

use tracing::{info, warn};

use super::lock::Queued;
use super::Node;
use crate::command::Reply;
use crate::error::CommandError;
use crate::event::Event;
use crate::id::{ChildId, RequestId};
use crate::protocol::Message;
use crate::time::Time;

#[derive(Clone, Debug)]
pub(super) struct Leaving {
    /// The local `Leave` to answer; `None` when a peer decommissioned us.
    pub(super) request: Option<RequestId>,
    pub(super) deadline: Time,
    /// No other member was known when the leave began: the children wait
    /// here until one joins, or until this time
    /// ([`Config::successor_wait`]).
    pub(super) awaiting_successor: Option<Time>,
    /// The node has waited for a successor once already; when it finds
    /// itself stranded again, it gives up at once.
    pub(super) waited: bool,
}

impl Node {
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
        let holding = !self.children.local.is_empty() || !self.children.orphans.is_empty();
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
                children = self.children.local.len() + self.children.orphans.len(),
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
        let ids: Vec<ChildId> = self.children.local.keys().cloned().collect();
        if without_me.is_empty() && !ids.is_empty() {
            warn!(
                children = ids.len(),
                "the last node leaves: its children stop for good"
            );
        }
        for id in ids {
            if self.children.handing.contains_key(&id) {
                continue;
            }
            let to = self.successor_in(&without_me, &self.children.local[&id].spec);
            self.move_away(&id, to);
        }
        // Orphans this node knew about go to their owners too, kept until
        // acknowledged (this node may hold the only record of one).
        for (_, o) in std::mem::take(&mut self.children.orphans) {
            if let Some(to) = self.successor_in(&without_me, &o.spec) {
                self.hand_off(o.spec, to, o.state, o.recovered, o.lineage);
            }
        }
        if without_me.is_empty() && !self.children.outbound.is_empty() {
            // Handed to nodes that are all leaving too: no acknowledgement
            // that matters can come.
            warn!(
                children = self.children.outbound.len(),
                "every other member is leaving: children handed to them stop for good"
            );
            self.children.outbound.clear();
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
        if self.children.local.is_empty()
            && self.children.outbound.is_empty()
            && self.children.orphans.is_empty()
        {
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
}
