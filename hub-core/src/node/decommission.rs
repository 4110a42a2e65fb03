//! Decommissioning another node: ask it to leave, answer when it has.
//!
//! The drain itself is the target's ordinary graceful leave, so children
//! move exactly as on [`crate::Command::Leave`]. What makes it safe for
//! quorum is that a leave is recorded as `Leaving`/`Left`, never `Down`:
//! MajorityQuorum lowers its expected size once per departed node and
//! DynamicQuorum's loss log forgets it, on every node that sees the leave.

use tracing::info;

use super::Node;
use crate::command::Reply;
use crate::error::CommandError;
use crate::id::{NodeId, RequestId};
use crate::membership::{Change, Status};
use crate::protocol::Message;
use crate::time::Time;

/// A decommission this node asked for and still waits on.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    request: RequestId,
    node: NodeId,
    deadline: Time,
}

impl Pending {
    pub(super) fn deadline(&self) -> Time {
        self.deadline
    }
}

impl Node {
    pub(super) fn begin_decommission(&mut self, now: Time, request: RequestId, node: NodeId) {
        if node == self.me {
            return self.begin_leave(now, Some(request));
        }
        let status = self.membership.get(&node).map(|m| m.status);
        match status {
            Some(Status::Left) => self.reply(request, Reply::Decommissioned(node)),
            Some(Status::Up | Status::Suspect | Status::Leaving) => {
                info!(%node, "decommissioning");
                self.send(node.clone(), Message::Decommission);
                // The target needs at most its shutdown timeout; a lost
                // final `Left` is made up for by failure detection.
                let deadline = now + self.cfg.shutdown_timeout + self.cfg.down_after;
                self.decommissions.push(Pending {
                    request,
                    node,
                    deadline,
                });
            }
            _ => self.reply(request, Reply::Error(CommandError::UnknownNode(node))),
        }
    }

    /// A peer asked this node to leave.
    pub(super) fn on_decommission(&mut self, now: Time, from: &NodeId) {
        if self.leaving.is_none() {
            info!(by = %from, "decommissioned: leaving");
            self.begin_leave(now, None);
        }
    }

    /// Answers the decommissions a membership change settles.
    pub(super) fn decommission_progress(&mut self, change: &Change) {
        let (node, outcome) = match change {
            Change::Left(n) => (n, Reply::Decommissioned(n.clone())),
            Change::Down(n) | Change::Restarted(n) => {
                (n, Reply::Error(CommandError::NodeFailed(n.clone())))
            }
            _ => return,
        };
        let (done, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.decommissions)
            .into_iter()
            .partition(|p| p.node == *node);
        self.decommissions = waiting;
        for p in done {
            self.reply(p.request, outcome.clone());
        }
    }

    /// Asks again every target that has not started leaving: the request
    /// may have been lost with a connection (a replaced duplicate
    /// connection drops what it had not read), and the target ignores
    /// repeats.
    pub(super) fn resend_decommissions(&mut self) {
        let targets: Vec<NodeId> = self
            .decommissions
            .iter()
            .filter(|p| {
                self.membership
                    .get(&p.node)
                    .is_some_and(|m| matches!(m.status, Status::Up | Status::Suspect))
            })
            .map(|p| p.node.clone())
            .collect();
        for node in targets {
            self.send(node, Message::Decommission);
        }
    }

    pub(super) fn expire_decommissions(&mut self, now: Time) {
        let (late, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.decommissions)
            .into_iter()
            .partition(|p| now >= p.deadline);
        self.decommissions = waiting;
        for p in late {
            let e = CommandError::DecommissionTimeout(p.node.clone());
            self.reply(p.request, Reply::Error(e));
        }
    }
}
