//! The outbox: messages accumulated while one input is handled, sent
//! together when it ends.
use std::collections::BTreeMap;

use bytes::Bytes;

use super::Node;
use crate::id::{ChildId, NodeId};
use crate::output::Output;
use crate::protocol::{Handoff, Message, OpRef, StartResults, StopResults};
use crate::registry::Version;
use crate::spec::ChildSpec;

/// Messages accumulated while handling one input and sent together when it
/// returns, so that a batch of 10,000 starts yields one delta and one
/// result message per peer instead of 10,000.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Own slice changed since this clock.
    pub(super) dirty_since: Option<Version>,
    pub(super) start_results: BTreeMap<OpRef, StartResults>,
    pub(super) stop_results: BTreeMap<OpRef, StopResults>,
    pub(super) handoffs: BTreeMap<NodeId, Vec<Handoff>>,
    pub(super) acks: BTreeMap<NodeId, Vec<ChildId>>,
    pub(super) refusals: BTreeMap<NodeId, Vec<(ChildId, String)>>,
    /// Strict mode: per claim number, the peers asked and the children.
    pub(super) claims: BTreeMap<u64, (Vec<NodeId>, Vec<ChildId>)>,
    /// Snapshots for successors: `(to, id, seq, state)`, sent after this
    /// input's registry delta, so that a snapshot never overtakes the row
    /// that makes its sender the holder.
    pub(super) snapshots: Vec<(NodeId, ChildId, u64, Bytes)>,
    /// The leave is complete: `Left` goes to these peers after everything
    /// else of this input, so no handoff or ack trails behind it.
    pub(super) left_to: Vec<NodeId>,
}

impl Node {
    /// Queues `spec` (with `state`) for `to`; sent when the input ends.
    /// `recovered`: `state` is a crash-recovery snapshot with that number;
    /// `lineage`: snapshots taken of the child so far.
    pub(super) fn queue_handoff(
        &mut self,
        to: NodeId,
        spec: &ChildSpec,
        state: Option<Bytes>,
        recovered: Option<u64>,
        lineage: u64,
    ) {
        self.outbox.handoffs.entry(to).or_default().push(Handoff {
            spec: spec.clone(),
            state,
            repair: false,
            recovered,
            lineage,
        });
    }

    /// Ends every input: sends what the outbox accumulated.
    pub(super) fn finish(&mut self) {
        let me = self.me.clone();
        if let Some(since) = self.outbox.dirty_since.take() {
            let delta = self.registry.delta_since(&me, since);
            let peers = self.membership.ring_peers();
            let mut targets = self.strategies.sync.change_targets(&peers, &mut self.rng);
            // Read-your-writes: the node that asked for a start gets the
            // rows before the result (same connection, in order), so its
            // lookups see the child as soon as the awaited start returns,
            // whatever subset the sync strategy picked.
            for op in self.outbox.start_results.keys() {
                if op.origin != me && !targets.contains(&op.origin) {
                    targets.push(op.origin.clone());
                }
            }
            // A successor learns the new row with the snapshot it guards.
            for (to, ..) in &self.outbox.snapshots {
                if *to != me && !targets.contains(to) {
                    targets.push(to.clone());
                }
            }
            for to in targets {
                self.send(to, Message::Delta(delta.clone()));
            }
        }
        for (to, id, seq, state) in std::mem::take(&mut self.outbox.snapshots) {
            self.send(to, Message::Snapshot { id, seq, state });
        }
        self.flush_claims();
        for (op, results) in std::mem::take(&mut self.outbox.start_results) {
            let to = op.origin.clone();
            self.send(to, Message::StartResult { op, results });
        }
        for (op, results) in std::mem::take(&mut self.outbox.stop_results) {
            let to = op.origin.clone();
            self.send(to, Message::StopResult { op, results });
        }
        let leaving = self.leaving.is_some() || !self.outbox.left_to.is_empty();
        for (to, children) in std::mem::take(&mut self.outbox.handoffs) {
            self.send(to, Message::Handoff { children, leaving });
        }
        for (to, ids) in std::mem::take(&mut self.outbox.acks) {
            self.send(to, Message::HandoffAck(ids));
        }
        for (to, refused) in std::mem::take(&mut self.outbox.refusals) {
            self.send(to, Message::HandoffRefused(refused));
        }
        for to in std::mem::take(&mut self.outbox.left_to) {
            self.send(to, Message::Left);
        }
    }

    /// The next action: drain after every input.
    #[must_use = "every output is an action the driver must perform"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}
