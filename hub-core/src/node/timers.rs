//! Time: the node's periodic timers, what runs when they fire, and the
//! next deadline over every sub-state's own.
use tracing::debug;

use super::lock::Queued;
use super::ops::Op;
use super::{acks, decommission, strict, Node};
use crate::protocol::Message;
use crate::time::Time;

#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    pub(super) heartbeat: Time,
    pub(super) discover: Time,
    pub(super) sync: Time,
    /// Next load report (load-aware distribution only).
    pub(super) load: Option<Time>,
}

impl Node {
    /// Timers: call at (or after) [`Node::poll_timeout`]'s deadline. Calling
    /// it early is harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.left {
            return;
        }
        self.now = now;
        let span = tracing::debug_span!("timeout");
        let _g = span.enter();
        if now >= self.timers.heartbeat {
            self.timers.heartbeat = now + self.cfg.heartbeat_interval;
            for to in self.contactable() {
                let msg = Message::Heartbeat {
                    incarnation: self.cfg.incarnation,
                    lease: self.beat_for(&to),
                };
                self.send(to, msg);
            }
            self.refresh_grants();
            if self
                .orphans
                .values()
                .any(|o| o.retry_at.is_some_and(|t| t <= now))
            {
                self.reconcile();
            }
            self.request_gaps();
            self.resend_stale_handoffs();
            self.resend_unanswered_starts();
            self.resend_decommissions();
            self.reask_holders();
            self.check_hold_watches();
        }
        let changes = self.membership.tick(now);
        self.on_membership(now, changes);
        if now >= self.timers.discover {
            self.timers.discover = now + self.cfg.discover_interval;
            for to in self.contactable() {
                self.send_hello(&to);
            }
        }
        if let Some(at) = self.timers.load.filter(|at| now >= *at) {
            let every = self
                .strategies
                .distribution
                .load_reports()
                .map(|l| l.interval())
                .unwrap_or_default();
            self.timers.load = Some(at.max(now) + every);
            self.report_load();
        }
        if now >= self.timers.sync {
            self.timers.sync = now + self.strategies.sync.sync_interval();
            let keep = self.strategies.sync.sync_interval() * 2;
            self.recently_stopped.retain(|_, at| now.since(*at) < keep);
            self.sync_round();
        }
        self.expire_ops(now);
        self.expire_queue(now);
        self.expire_decommissions(now);
        self.expire_acks(now);
        self.expire_handing(now);
        self.expire_claims();
        self.check_leases();
        if self.lock.as_ref().is_some_and(|l| now >= l.until) {
            debug!("redistribution lock timed out");
            self.unlock(now);
        }
        let awaited = self.leaving.as_ref().and_then(|l| l.awaiting_successor);
        if awaited.is_some_and(|t| now >= t) {
            self.drain_leaving(now);
        }
        if self.leaving.as_ref().is_some_and(|l| now >= l.deadline) {
            self.finish_leave();
        }
        self.finish();
    }

    /// When [`Node::handle_timeout`] must next be called.
    #[must_use = "the node's timers only fire if the driver calls handle_timeout then"]
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.left {
            return None;
        }
        let mut t = self
            .timers
            .heartbeat
            .min(self.timers.discover)
            .min(self.timers.sync);
        if let Some(load) = self.timers.load {
            t = t.min(load);
        }
        let deadlines = self
            .ops
            .values()
            .map(Op::deadline)
            .chain(self.lock.as_ref().map(|l| l.until))
            .chain(self.handing.values().map(|h| h.deadline))
            .chain(self.leaving.as_ref().map(|l| l.deadline))
            .chain(self.leaving.as_ref().and_then(|l| l.awaiting_successor))
            .chain(
                self.decommissions
                    .iter()
                    .map(decommission::Pending::deadline),
            )
            .chain(self.ack_waits.values().map(acks::AckWait::deadline))
            .chain(self.strict.as_ref().and_then(strict::StrictState::deadline))
            .chain(self.queue.iter().filter_map(|q| match q {
                Queued::Command { deadline, .. } => Some(*deadline),
                Queued::Remote { .. } => None,
            }));
        for d in deadlines {
            t = t.min(d);
        }
        Some(t)
    }
}
