//! Inputs routed to the code that handles them: a peer's message, a
//! local command, a supervisor's report.
use tracing::trace;

use super::lock::Queued;
use super::Node;
use crate::command::{Command, Reply};
use crate::error::CommandError;
use crate::id::{NodeId, RequestId};
use crate::output::LocalReport;
use crate::protocol::Message;
use crate::time::Time;

impl Node {
    pub(super) fn dispatch_message(&mut self, now: Time, from: &NodeId, message: Message) {
        if self.refuses(from, &message) {
            return;
        }
        let (incarnation, info) = match &message {
            Message::Hello { info, .. } => (Some(info.incarnation), Some(info)),
            Message::Heartbeat { incarnation, .. } => (Some(*incarnation), None),
            _ => (None, None),
        };
        let changes = self.membership.heard(now, from, incarnation, info);
        let greeted = changes
            .iter()
            .any(|c| matches!(c, crate::membership::Change::Joined(n) if n == from));
        self.on_membership(now, changes);
        if self.membership.get(from).is_none() {
            trace!("ignoring message from unknown node");
            return;
        }
        match message {
            Message::Hello {
                info,
                members,
                losses,
            } => {
                // Tags come with the node's own hello (a transport's first
                // notice of a peer may lack them): placement follows them.
                if self.ring.set_tags(from, info.tags) {
                    // Successors may differ too: snapshots follow.
                    self.resend_snapshots();
                    self.reconcile();
                }
                if self.membership.adopt_losses(now, &losses) {
                    self.check_quorum(now);
                }
                if greeted {
                    self.send_hello(from);
                }
                for m in members {
                    if self.membership.learn(now, &m) {
                        self.send_hello(&m.id);
                    }
                }
            }
            Message::Heartbeat {
                lease,
                incarnation,
                clock,
            } => {
                self.on_peer_clock(from, clock);
                if let Some(beat) = lease {
                    self.on_beat(from, incarnation, beat);
                }
            }
            Message::Leaving => {
                let changes = self.membership.leaving(now, from);
                self.on_membership(now, changes);
            }
            Message::Left => {
                let changes = self.membership.left(now, from);
                self.on_membership(now, changes);
            }
            Message::Delta(delta) => self.on_delta(from, delta),
            Message::Digest(digest) => self.on_digest(from, &digest),
            m @ (Message::StartRequest { .. } | Message::StopRequest { .. })
                if self.lock.is_some() =>
            {
                self.queue.push_back(Queued::Remote {
                    from: from.clone(),
                    message: m,
                });
            }
            Message::StartRequest {
                op,
                specs,
                check_existing,
                path,
            } => self.owner_start(op, specs, check_existing, path),
            Message::StartResult { op, results } => self.on_start_results(op, from, results),
            Message::StopRequest { op, ids } => self.owner_stop(Some(op), ids),
            Message::StopResult { op, results } => self.on_stop_results(op, from, results),
            Message::Handoff { children, leaving } => {
                if leaving {
                    let changes = self.membership.leaving(now, from);
                    self.on_membership(now, changes);
                }
                self.on_handoff(from, children)
            }
            Message::HandoffAck(ids) => self.on_handoff_ack(now, from, ids),
            Message::HandoffRefused(refused) => self.on_handoff_refused(now, from, refused),
            Message::Load(permille) => {
                if let Some(l) = self.strategies.distribution.load_reports() {
                    l.record_load(from, permille);
                }
            }
            Message::Decommission => self.on_decommission(now, from),
            Message::HoldQuery { seq, ids } => self.on_hold_query(from, seq, ids),
            Message::Holds { seq, all } => self.on_holds(from, seq, all),
            Message::Snapshot { id, seq, state } => self.on_snapshot(from, id, seq, state),
            Message::Claim {
                seq,
                at,
                incarnation,
                ids,
            } => self.on_claim(from, seq, at, incarnation, ids),
            Message::Grants(g) => self.on_grants(from, g),
            Message::Release(ids) => self.on_release(from, ids),
            Message::Promised(ids) => self.on_promised(from, ids),
            Message::Scoreboard(board) => {
                // Only the leader's board counts.
                if self.ring.nodes().first() == Some(from) {
                    if let Some(l) = self.strategies.distribution.load_reports() {
                        l.set_scoreboard(board);
                    }
                }
            }
        }
    }
    pub(super) fn dispatch_command(&mut self, now: Time, request: RequestId, command: Command) {
        if self.left || (self.leaving.is_some() && command != Command::Leave) {
            return self.reply(request, Reply::Error(CommandError::ShuttingDown));
        }
        if let Err(e) = Self::validate_command(&command) {
            return self.reply(request, Reply::Error(e));
        }
        match command {
            Command::Leave => self.begin_leave(now, Some(request)),
            Command::Decommission(node) => self.begin_decommission(now, request, node),
            _ if self.partitioned => self.reply(request, Reply::Error(CommandError::Partitioned)),
            command if self.lock.is_some() => {
                let deadline = now + command.timeout();
                self.queue.push_back(Queued::Command {
                    request,
                    command,
                    deadline,
                });
            }
            Command::StartChildren { specs, opts } => {
                self.start_children(now, request, specs, opts)
            }
            Command::StopChildren { ids, opts } => self.stop_children(now, request, ids, opts),
        }
    }

    pub(super) fn validate_command(command: &Command) -> Result<(), CommandError> {
        match command {
            Command::StartChildren { specs, .. } => {
                if specs.is_empty() {
                    return Err(CommandError::NoChildren);
                }
                for s in specs {
                    s.validate().map_err(|error| CommandError::InvalidSpec {
                        id: s.id.clone(),
                        error,
                    })?;
                }
                Ok(())
            }
            Command::StopChildren { ids, .. } if ids.is_empty() => Err(CommandError::NoChildren),
            _ => Ok(()),
        }
    }
    pub(super) fn local_report(&mut self, now: Time, report: LocalReport) {
        match report {
            LocalReport::Started { id, handle } => self.on_started(id, handle),
            LocalReport::StartFailed { id, error } => self.on_start_failed(id, error),
            LocalReport::Restarted { id, handle } => self.on_restarted(id, handle),
            LocalReport::Exited { id, reason, state } => self.on_exited(now, id, reason, state),
            LocalReport::State { id, state } => self.on_state(id, state),
            LocalReport::Snapshot { id, state } => self.on_snapshot_taken(id, state),
        }
    }
}
