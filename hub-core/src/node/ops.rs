//! Origin side of starts and stops: dispatch to owners, collect per-child
//! results, time out, roll back, reply.

use std::collections::{BTreeMap, BTreeSet};
use tracing::{debug, warn};

use super::{dedup_ids, Node};
use crate::command::{
    Ack, OnFailure, Reply, StartFailure, StartOptions, StartOutcome, StopOptions, StopOutcome,
};
use crate::error::{StartError, StopError};
use crate::id::{ChildId, Handle, NodeId, RequestId};
use crate::protocol::{Message, OpRef};
use crate::spec::ChildSpec;
use crate::time::Time;

/// Specs still unanswered, with the nodes that did answer for each.
type Unanswered = Vec<(ChildSpec, BTreeSet<NodeId>)>;

/// An awaited operation this node originated.
#[derive(Debug)]
pub(super) enum Op {
    Start(StartOp),
    Stop(StopOp),
}

impl Op {
    pub(super) fn deadline(&self) -> Time {
        match self {
            Op::Start(o) => o.deadline,
            Op::Stop(o) => o.deadline,
        }
    }
}

#[derive(Debug)]
pub(super) struct StartOp {
    request: RequestId,
    on_failure: OnFailure,
    ack: Ack,
    deadline: Time,
    /// Results still expected per child (one per owner it was sent to).
    pending: BTreeMap<ChildId, usize>,
    /// (child, node) pairs that answered, so a duplicated message counts once.
    answered: BTreeSet<(ChildId, NodeId)>,
    /// Ids repeated in the batch: answered `AlreadyStarted` at the end.
    repeats: Vec<ChildId>,
    outcome: StartOutcome,
    /// Specs still unanswered, for re-sending: the transport may lose a
    /// request or its answer (e.g. with a connection replaced under it).
    unanswered: BTreeMap<ChildId, ChildSpec>,
    check_existing: bool,
    /// Heartbeat ticks since the requests were last sent.
    ticks: u32,
}

#[derive(Debug)]
pub(super) struct StopOp {
    request: RequestId,
    deadline: Time,
    pending: BTreeMap<ChildId, usize>,
    answered: BTreeSet<(ChildId, NodeId)>,
    outcome: StopOutcome,
}

impl Node {
    pub(super) fn start_children(
        &mut self,
        now: Time,
        request: RequestId,
        specs: Vec<ChildSpec>,
        opts: StartOptions,
    ) {
        let op = self.next_op();
        let (unique, repeats) = dedup_ids(specs.iter().map(|s| &s.id));
        let mut by_id: BTreeMap<ChildId, ChildSpec> = BTreeMap::new();
        for s in specs {
            by_id.entry(s.id.clone()).or_insert(s);
        }
        let mut by_node: BTreeMap<NodeId, Vec<ChildSpec>> = BTreeMap::new();
        let mut pending = BTreeMap::new();
        let mut unplaced = Vec::new();
        let mut unanswered = BTreeMap::new();
        let replicas = self.replicas();
        for id in unique {
            let Some(mut spec) = by_id.remove(&id) else {
                continue;
            };
            if spec.nodes().is_none() {
                let assigned = self
                    .strategies
                    .distribution
                    .assign(&self.ring, &spec, replicas);
                if let Some(nodes) = assigned {
                    let names: Vec<String> = nodes.iter().map(|n| n.as_str().to_owned()).collect();
                    spec = spec.with_nodes(names);
                }
            }
            let valid = self
                .strategies
                .distribution
                .validate(&self.ring, &spec, replicas);
            if let Err(why) = valid {
                // Also the only trace of it for a start that is not awaited.
                warn!(child = %id, %why, "start refused by the distribution strategy");
                pending.insert(id.clone(), 1);
                unplaced.push((id, why));
                continue;
            }
            let owners = self.owners(&self.ring, &spec);
            if owners.is_empty() {
                let why = format!("no node satisfies the placement constraints of {id}");
                pending.insert(id.clone(), 1);
                unplaced.push((id, why));
                continue;
            }
            pending.insert(id.clone(), owners.len());
            for o in owners {
                by_node.entry(o).or_default().push(spec.clone());
            }
            if opts.await_result {
                unanswered.insert(id, spec);
            }
        }
        if opts.await_result {
            self.ops.insert(
                op.seq,
                Op::Start(StartOp {
                    request,
                    on_failure: opts.on_failure,
                    ack: opts.ack,
                    deadline: now + opts.timeout,
                    pending,
                    answered: BTreeSet::new(),
                    repeats,
                    outcome: StartOutcome::default(),
                    unanswered,
                    check_existing: opts.check_existing,
                    ticks: 0,
                }),
            );
        } else {
            self.reply(request, Reply::StartInitiated);
        }
        for (id, why) in unplaced {
            self.deliver_start(op.clone(), id, Err(StartError::Placement(why)));
        }
        for (node, specs) in by_node {
            if node == self.me {
                self.owner_start(
                    op.clone(),
                    specs,
                    opts.check_existing,
                    vec![self.me.clone()],
                );
            } else {
                let msg = Message::StartRequest {
                    op: op.clone(),
                    specs,
                    check_existing: opts.check_existing,
                    path: vec![self.me.clone()],
                };
                self.send(node, msg);
            }
        }
        self.try_complete(op.seq);
    }

    pub(super) fn stop_children(
        &mut self,
        now: Time,
        request: RequestId,
        ids: Vec<ChildId>,
        opts: StopOptions,
    ) {
        let op = self.next_op();
        let (unique, _) = dedup_ids(ids.iter());
        let mut outcome = StopOutcome::default();
        let mut by_node: BTreeMap<NodeId, Vec<ChildId>> = BTreeMap::new();
        let mut pending = BTreeMap::new();
        for id in unique {
            let holders = self.registry.lookup(id.as_str());
            if holders.is_empty() {
                // Only nodes that host it are asked; an unknown id fails now.
                outcome.failed.push((id, None, StopError::NotFound));
                continue;
            }
            pending.insert(id.clone(), holders.len());
            for (n, _) in holders {
                by_node.entry(n).or_default().push(id.clone());
            }
        }
        if opts.await_result {
            self.ops.insert(
                op.seq,
                Op::Stop(StopOp {
                    request,
                    deadline: now + opts.timeout,
                    pending,
                    answered: BTreeSet::new(),
                    outcome,
                }),
            );
        } else {
            self.reply(request, Reply::StopInitiated);
        }
        for (node, ids) in by_node {
            if node == self.me {
                self.owner_stop(Some(op.clone()), ids);
            } else {
                self.send(
                    node,
                    Message::StopRequest {
                        op: op.clone(),
                        ids,
                    },
                );
            }
        }
        self.try_complete(op.seq);
    }

    /// Routes per-child start results to the op's origin (batched).
    pub(super) fn deliver_start(
        &mut self,
        op: OpRef,
        id: ChildId,
        result: Result<Handle, StartError>,
    ) {
        if op.origin == self.me {
            let me = self.me.clone();
            self.record_start(op.seq, &me, id, result);
            self.try_complete(op.seq);
        } else {
            self.outbox
                .start_results
                .entry(op)
                .or_default()
                .push((id, result));
        }
    }

    /// Routes per-child stop results to the op's origin (batched).
    pub(super) fn deliver_stop(&mut self, op: OpRef, id: ChildId, result: Result<(), StopError>) {
        if op.origin == self.me {
            let me = self.me.clone();
            self.record_stop(op.seq, &me, id, result);
            self.try_complete(op.seq);
        } else {
            self.outbox
                .stop_results
                .entry(op)
                .or_default()
                .push((id, result));
        }
    }

    pub(super) fn on_start_results(
        &mut self,
        op: OpRef,
        from: &NodeId,
        results: crate::protocol::StartResults,
    ) {
        if op.origin != self.me {
            return;
        }
        for (id, r) in results {
            self.record_start(op.seq, from, id, r);
        }
        self.try_complete(op.seq);
    }

    pub(super) fn on_stop_results(
        &mut self,
        op: OpRef,
        from: &NodeId,
        results: crate::protocol::StopResults,
    ) {
        if op.origin != self.me {
            return;
        }
        for (id, r) in results {
            self.record_stop(op.seq, from, id, r);
        }
        self.try_complete(op.seq);
    }

    fn record_start(
        &mut self,
        seq: u64,
        from: &NodeId,
        id: ChildId,
        r: Result<Handle, StartError>,
    ) {
        let Some(Op::Start(op)) = self.ops.get_mut(&seq) else {
            return;
        };
        if !take_pending(&mut op.pending, &mut op.answered, &id, from) {
            return;
        }
        if !op.pending.contains_key(&id) {
            op.unanswered.remove(&id);
        }
        match r {
            Ok(h) => op
                .outcome
                .started
                .entry(id)
                .or_default()
                .push((from.clone(), h)),
            Err(error) => op.outcome.failed.push(StartFailure {
                id,
                node: Some(from.clone()),
                error,
            }),
        }
    }

    fn record_stop(&mut self, seq: u64, from: &NodeId, id: ChildId, r: Result<(), StopError>) {
        let Some(Op::Stop(op)) = self.ops.get_mut(&seq) else {
            return;
        };
        if !take_pending(&mut op.pending, &mut op.answered, &id, from) {
            return;
        }
        match r {
            Ok(()) => op.outcome.stopped.entry(id).or_default().push(from.clone()),
            Err(e) => op.outcome.failed.push((id, Some(from.clone()), e)),
        }
    }

    /// Completes the op if nothing is pending any more.
    pub(super) fn try_complete(&mut self, seq: u64) {
        let done = match self.ops.get(&seq) {
            Some(Op::Start(o)) => o.pending.is_empty(),
            Some(Op::Stop(o)) => o.pending.is_empty(),
            None => false,
        };
        if done {
            self.complete(seq);
        }
    }

    /// Re-sends, every `suspect_after`, the start requests of awaited
    /// starts that some owner has not answered. Owners answer a repeat of
    /// a request they already served with the same result.
    pub(super) fn resend_unanswered_starts(&mut self) {
        let every = self.ticks_per_suspect();
        let mut again: Vec<(OpRef, bool, Unanswered)> = Vec::new();
        for (seq, op) in self.ops.iter_mut() {
            let Op::Start(op) = op else { continue };
            op.ticks += 1;
            if op.ticks % every != 0 || op.unanswered.is_empty() {
                continue;
            }
            let specs = op
                .unanswered
                .values()
                .map(|spec| {
                    let answered: BTreeSet<NodeId> = op
                        .answered
                        .range((spec.id.clone(), NodeId::new(""))..)
                        .take_while(|(id, _)| *id == spec.id)
                        .map(|(_, n)| n.clone())
                        .collect();
                    (spec.clone(), answered)
                })
                .collect();
            let op_ref = OpRef {
                origin: self.me.clone(),
                seq: *seq,
            };
            again.push((op_ref, op.check_existing, specs));
        }
        for (op, check_existing, specs) in again {
            let mut by_node: BTreeMap<NodeId, Vec<ChildSpec>> = BTreeMap::new();
            for (spec, answered) in specs {
                for o in self.owners(&self.ring, &spec) {
                    if !answered.contains(&o) {
                        by_node.entry(o).or_default().push(spec.clone());
                    }
                }
            }
            for (node, specs) in by_node {
                debug!(%node, count = specs.len(), "re-sending unanswered start requests");
                if node == self.me {
                    self.owner_start(op.clone(), specs, check_existing, vec![self.me.clone()]);
                } else {
                    let msg = Message::StartRequest {
                        op: op.clone(),
                        specs,
                        check_existing,
                        path: vec![self.me.clone()],
                    };
                    self.send(node, msg);
                }
            }
        }
    }

    pub(super) fn expire_ops(&mut self, now: Time) {
        let due: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, o)| o.deadline() <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            self.complete(seq);
        }
    }

    /// Finishes an op: whatever is still pending timed out.
    fn complete(&mut self, seq: u64) {
        match self.ops.remove(&seq) {
            Some(Op::Start(op)) => self.complete_start(op),
            Some(Op::Stop(mut op)) => {
                for (id, _) in std::mem::take(&mut op.pending) {
                    op.outcome.failed.push((id, None, StopError::Timeout));
                }
                self.reply(op.request, Reply::Stopped(op.outcome));
            }
            None => {}
        }
    }

    fn complete_start(&mut self, mut op: StartOp) {
        let out = &mut op.outcome;
        for (id, _) in std::mem::take(&mut op.pending) {
            out.failed.push(StartFailure {
                id,
                node: None,
                error: StartError::Timeout,
            });
        }
        let real_failure = !out.failed.is_empty();
        for id in std::mem::take(&mut op.repeats) {
            let error = match out.started.get(&id).and_then(|h| h.first()) {
                Some((node, handle)) => StartError::AlreadyStarted {
                    node: node.clone(),
                    handle: *handle,
                },
                None => out
                    .failed
                    .iter()
                    .find(|f| f.id == id)
                    .map(|f| f.error.clone())
                    .unwrap_or(StartError::Timeout),
            };
            let node = out
                .started
                .get(&id)
                .and_then(|h| h.first())
                .map(|(n, _)| n.clone());
            out.failed.push(StartFailure { id, node, error });
        }
        if op.on_failure == OnFailure::Rollback && real_failure && !out.started.is_empty() {
            let mut by_node: BTreeMap<NodeId, Vec<ChildId>> = BTreeMap::new();
            for (id, holders) in std::mem::take(&mut out.started) {
                for (n, _) in holders {
                    by_node.entry(n.clone()).or_default().push(id.clone());
                    out.failed.push(StartFailure {
                        id: id.clone(),
                        node: Some(n),
                        error: StartError::RolledBack,
                    });
                }
            }
            out.rolled_back = true;
            for (node, ids) in by_node {
                if node == self.me {
                    self.owner_stop(None, ids);
                } else {
                    // Results of this stop go to an op id nobody waits for.
                    let op = self.next_op();
                    self.send(node, Message::StopRequest { op, ids });
                }
            }
        }
        self.reply_started(op.request, op.ack, op.deadline, op.outcome);
    }
}

/// Counts one answer for `(id, from)`; false for an unexpected or repeated
/// answer.
fn take_pending(
    pending: &mut BTreeMap<ChildId, usize>,
    answered: &mut BTreeSet<(ChildId, NodeId)>,
    id: &ChildId,
    from: &NodeId,
) -> bool {
    let Some(left) = pending.get_mut(id) else {
        return false;
    };
    if !answered.insert((id.clone(), from.clone())) {
        return false;
    }
    *left -= 1;
    if *left == 0 {
        pending.remove(id);
    }
    true
}
