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
        let alive = self
            .membership
            .get(&delta.node)
            .is_some_and(|m| m.status.in_ring() || m.status == Status::Leaving);
        if !alive {
            trace!(node = %delta.node, "delta for a node not alive here ignored");
            return;
        }
        let changes = self.registry.apply(&delta);
        self.registry_events(changes);
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
