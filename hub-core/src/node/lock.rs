//! The redistribution lock: while children move for a membership change,
//! starts and stops wait in a queue, run in order when it lifts.

use super::{LocalState, Node, StopPurpose};
use crate::command::{Command, Reply};
use crate::error::CommandError;
use crate::event::{Direction, Event};
use crate::id::{NodeId, RequestId};
use crate::protocol::Message;
use crate::time::Time;

#[derive(Clone, Debug)]
pub(super) struct Lock {
    pub(super) until: Time,
    /// Membership changes whose redistribution runs under this lock.
    pub(super) triggers: Vec<(Direction, NodeId)>,
}

#[derive(Clone, Debug)]
pub(super) enum Queued {
    Command {
        request: RequestId,
        command: Command,
        deadline: Time,
    },
    Remote {
        from: NodeId,
        message: Message,
    },
}

impl Node {
    /// Redistribution may have finished, or a leave completed.
    pub(super) fn after_local_change(&mut self, now: Time) {
        if self.lock.is_none() && self.leaving.is_none() {
            return;
        }
        let migrating = !self.children.outbound.is_empty()
            || !self.children.handing.is_empty()
            || self.children.local.values().any(|l| {
                matches!(
                    l.state,
                    LocalState::Stopping {
                        purpose: StopPurpose::Migrate(_),
                        ..
                    }
                )
            });
        if self.lock.is_some() && !migrating {
            self.unlock(now);
        }
        let draining = self
            .leaving
            .as_ref()
            .is_some_and(|l| l.awaiting_successor.is_none());
        if draining && self.children.local.is_empty() && self.children.outbound.is_empty() {
            self.finish_leave();
        }
    }

    /// Lifts the redistribution lock and runs what was queued, in order.
    pub(super) fn unlock(&mut self, now: Time) {
        let Some(lock) = self.lock.take() else { return };
        for (direction, node) in lock.triggers {
            self.emit(Event::PostRedistribution { direction, node });
        }
        self.emit(Event::PriorityStateUpdated { level: 0 });
        let queued = std::mem::take(&mut self.queue);
        for q in queued {
            match q {
                Queued::Command {
                    request, command, ..
                } => self.dispatch_command(now, request, command),
                Queued::Remote { from, message } => self.dispatch_message(now, &from, message),
            }
        }
    }

    pub(super) fn expire_queue(&mut self, now: Time) {
        let (expired, kept): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| matches!(q, Queued::Command { deadline, .. } if *deadline <= now));
        self.queue = kept.into();
        for q in expired {
            if let Queued::Command { request, .. } = q {
                self.reply(request, Reply::Error(CommandError::LockTimeout));
            }
        }
    }
}
