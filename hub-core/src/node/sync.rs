//! Registry sync: applying peers' deltas and answering digests.

use tracing::trace;

use super::Node;
use crate::id::NodeId;
use crate::membership::Status;
use crate::protocol::Message;
use crate::registry::{SliceDelta, Version};

impl Node {
    pub(super) fn on_delta(&mut self, from: &NodeId, delta: SliceDelta) {
        if delta.node == self.me {
            return; // only this node writes its slice
        }
        // A slice is accepted only while its writer is alive here (a leaving
        // writer still sends its tombstones), so a departed node's rows are
        // never resurrected by a late or relayed delta.
        // ...and only from its current incarnation: a late delta of a run
        // that has since restarted must not bring its rows back.
        if !self.accepts_slice(&delta.node, delta.clock) {
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
        let news = !changes.is_empty();
        self.registry_events(changes);
        if news {
            self.check_hold_watches();
        }
        if replaced {
            self.reconcile();
        }
        if news && self.strategies.sync.relays() {
            self.relay(from, delta);
        }
    }

    /// Passes a change that was new here on to a few peers other than its
    /// writer and the peer it came from.
    fn relay(&mut self, from: &NodeId, delta: SliceDelta) {
        let peers: Vec<NodeId> = self
            .membership
            .ring_peers()
            .into_iter()
            .filter(|p| *p != delta.node && p != from)
            .collect();
        let targets = self.strategies.sync.change_targets(&peers, &mut self.rng);
        for to in targets {
            self.send(to, Message::Delta(delta.clone()));
        }
    }

    /// Whether a delta of `node`'s slice at `clock` would be applied here.
    fn accepts_slice(&self, node: &NodeId, clock: Version) -> bool {
        self.membership.get(node).is_some_and(|m| {
            (m.status.in_ring() || m.status == Status::Leaving)
                && clock.incarnation >= m.info.incarnation
        })
    }

    /// A peer's heartbeat says how far its own slice is. Behind it on two
    /// heartbeats in a row (one is a delta still on its way), this node
    /// asks for the rest: a lost delta is repaired within a heartbeat or
    /// two, not at the next sync round.
    pub(super) fn on_peer_clock(&mut self, from: &NodeId, clock: Version) {
        let mine = self.registry.clock(from);
        let was_behind = self.peer_clocks.get(from).is_some_and(|v| *v > mine);
        self.peer_clocks.insert(from.clone(), clock);
        if clock > mine && was_behind && self.accepts_slice(from, clock) {
            self.counters.registry_gap_requests += 1;
            self.send(from.clone(), Message::Digest(vec![(from.clone(), mine)]));
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
                self.counters.registry_gap_requests += 1;
                self.send(node.clone(), Message::Digest(vec![(node, clock)]));
            }
        }
    }

    pub(super) fn on_digest(&mut self, from: &NodeId, digest: &[(NodeId, Version)]) {
        if self.strategies.sync.relays() {
            return self.on_digest_epidemic(from, digest);
        }
        let theirs = digest
            .iter()
            .find(|(n, _)| *n == self.me)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        let me = self.me.clone();
        let mine = self.registry.clock(&me);
        if mine != theirs {
            let delta = self.registry.delta_since(&me, theirs);
            self.counters.registry_repairs += 1;
            self.send(from.clone(), Message::Delta(delta));
        }
    }

    /// Push-pull: every slice this node has newer goes back; if the asker
    /// has something newer, ask it in turn.
    fn on_digest_epidemic(&mut self, from: &NodeId, digest: &[(NodeId, Version)]) {
        let theirs: std::collections::BTreeMap<&NodeId, Version> =
            digest.iter().map(|(n, v)| (n, *v)).collect();
        let mine = self.registry.digest();
        for (node, clock) in &mine {
            let their = theirs.get(node).copied().unwrap_or_default();
            if *clock > their && node != from {
                let delta = self.registry.delta_since(node, their);
                self.counters.registry_repairs += 1;
                self.send(from.clone(), Message::Delta(delta));
            }
        }
        // Only slices this node would accept, or two nodes could trade
        // digests forever over one neither applies.
        let behind = digest.iter().any(|(n, v)| {
            n != &self.me && *v > self.registry.clock(n) && self.accepts_slice(n, *v)
        });
        if behind {
            self.send(from.clone(), Message::Digest(mine));
        }
    }

    /// Whether this node's registry holds every ring peer's own rows at
    /// least as far as that peer's latest heartbeat said. Until then (a
    /// node that just joined or restarted, a peer's rows still on their
    /// way), an id missing here may run on that peer: "runs nowhere"
    /// cannot be concluded from this registry. A peer not heard from
    /// since it joined the ring is not caught up with (a member known only
    /// second-hand counts: it may hold children), and a node that
    /// expects peers ([`crate::Config::expect_peers`]) and has met none yet
    /// has not caught up.
    pub fn registry_caught_up(&self) -> bool {
        // A node told to expect peers that has not met one yet is a
        // cluster of one only until its seeds answer.
        if self.cfg.expect_peers && !self.met_peers {
            return false;
        }
        // Every member it knows of and may hear from, joining ones too: a
        // member learned second-hand may run children this node's ring
        // does not place there yet.
        self.membership
            .members()
            .filter(|m| !matches!(m.status, Status::Down | Status::Left))
            .all(|m| {
                let p = &m.info.id;
                self.peer_clocks
                    .get(p)
                    .is_some_and(|v| self.registry.clock(p) >= *v)
            })
    }
}
