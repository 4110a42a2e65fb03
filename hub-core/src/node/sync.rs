//! Registry sync: applying peers' deltas and answering digests.

use tracing::trace;

use super::Node;
use crate::id::NodeId;
use crate::membership::Status;
use crate::protocol::Message;
use crate::registry::{SliceDelta, Version};

impl Node {
    pub(super) fn on_delta(&mut self, delta: SliceDelta) {
        if delta.node == self.me {
            return; // only this node writes its slice
        }
        // A slice is accepted only while its writer is alive here (a leaving
        // writer still sends its tombstones), so a departed node's rows are
        // never resurrected by a late or relayed delta.
        // ...and only from its current incarnation: a late delta of a run
        // that has since restarted must not bring its rows back.
        let alive = self.membership.get(&delta.node).is_some_and(|m| {
            (m.status.in_ring() || m.status == Status::Leaving)
                && delta.clock.incarnation >= m.info.incarnation
        });
        if !alive {
            trace!(node = %delta.node, "delta for a node not alive here ignored");
            return;
        }
        // A newer incarnation's delta replaces the slice: the old
        // incarnation's children become orphans first, whichever of this
        // delta or the restart notice arrives first.
        let replaced = delta.clock.incarnation > self.registry.clock(&delta.node).incarnation;
        if replaced {
            self.orphan_slice(&delta.node, Some(delta.clock.incarnation));
        }
        let changes = self.registry.apply(&delta);
        self.registry_events(changes);
        if replaced {
            self.reconcile();
        }
    }

    /// Asks writers for the deltas missing before ones that arrived early
    /// (run on the heartbeat tick, so reordering alone costs nothing).
    pub(super) fn request_gaps(&mut self) {
        for (node, clock) in self.registry.gaps() {
            if self
                .membership
                .get(&node)
                .is_some_and(|m| m.status.in_ring())
            {
                self.send(node.clone(), Message::Digest(vec![(node, clock)]));
            }
        }
    }

    pub(super) fn on_digest(&mut self, from: &NodeId, digest: &[(NodeId, Version)]) {
        let theirs = digest
            .iter()
            .find(|(n, _)| *n == self.me)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        let me = self.me.clone();
        let mine = self.registry.clock(&me);
        if mine != theirs {
            let delta = self.registry.delta_since(&me, theirs);
            self.send(from.clone(), Message::Delta(delta));
        }
    }
}
