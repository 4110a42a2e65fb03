//! Time: the node's periodic timers, what runs when they fire, and the
//! next deadline over every sub-state's own.
use tracing::debug;

use super::lock::Queued;
use super::ops::Op;
use super::{acks, decommission, strict, Node};
use crate::protocol::Message;
use std::time::Duration;

use crate::time::Time;

/// The node's periodic timers; every other deadline belongs to a
/// sub-state and is asked of it in [`Node::poll_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Heartbeats, and the retries paced by them.
    Heartbeat,
    /// Hellos to every member, to learn of members and heal views.
    Discover,
    /// A load report (load-aware distribution only).
    Load,
    /// A registry sync round.
    Sync,
}

impl Timer {
    /// In the order they run when due together.
    const ALL: [Timer; 4] = [Timer::Heartbeat, Timer::Discover, Timer::Load, Timer::Sync];
}

/// When each [`Timer`] fires next, and its period: a table indexed by
/// the timer, so that a new timer is one row, not one more field and one
/// more line in every place that reads them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    /// `None`: the timer is off (no load reports without a load-aware
    /// strategy).
    next: [Option<Time>; 4],
    period: [Duration; 4],
}

impl Timers {
    /// Timers that first fire at `first` and then every `period`.
    pub(super) fn new(rows: [(Timer, Option<(Time, Duration)>); 4]) -> Self {
        let mut t = Timers {
            next: [None; 4],
            period: [Duration::ZERO; 4],
        };
        for (timer, row) in rows {
            if let Some((first, period)) = row {
                t.next[timer as usize] = Some(first);
                t.period[timer as usize] = period;
            }
        }
        t
    }

    /// The timers due at `now`, in [`Timer::ALL`] order, each re-armed
    /// one period after `now` (a late wake-up does not fire twice).
    pub(super) fn take_due(&mut self, now: Time) -> Vec<Timer> {
        let mut due = Vec::new();
        for timer in Timer::ALL {
            let i = timer as usize;
            if self.next[i].is_some_and(|at| now >= at) {
                self.next[i] = Some(now + self.period[i]);
                due.push(timer);
            }
        }
        due
    }

    /// The earliest of the timers that are on.
    pub(super) fn next(&self) -> Option<Time> {
        self.next.iter().flatten().copied().min()
    }
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
        let due = self.timers.take_due(now);
        // Heartbeats and their retries see the membership before this
        // tick; hellos, load reports and syncs see it after.
        if due.contains(&Timer::Heartbeat) {
            self.beat(now);
        }
        let changes = self.membership.tick(now);
        self.on_membership(now, changes);
        for timer in due {
            match timer {
                Timer::Heartbeat => {}
                Timer::Discover => {
                    for to in self.discovery_targets() {
                        self.send_hello(&to);
                    }
                }
                Timer::Load => self.report_load(),
                Timer::Sync => {
                    let keep = self.strategies.sync.sync_interval() * 2;
                    self.children.forget_stops(now, keep);
                    self.sync_round();
                }
            }
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

    /// A heartbeat to every member, and the work paced by heartbeats.
    fn beat(&mut self, now: Time) {
        for to in self.contactable() {
            let msg = Message::Heartbeat {
                incarnation: self.cfg.incarnation,
                lease: self.beat_for(&to),
                clock: self.registry.clock(&self.me),
            };
            self.send(to, msg);
        }
        self.refresh_grants();
        if self.children.retry_due(now) {
            self.reconcile();
        }
        self.request_gaps();
        self.resend_stale_handoffs();
        self.repeat_snapshots();
        self.resend_unanswered_starts();
        self.resend_decommissions();
        self.reask_holders();
        self.check_hold_watches();
    }

    /// When [`Node::handle_timeout`] must next be called.
    #[must_use = "the node's timers only fire if the driver calls handle_timeout then"]
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.left {
            return None;
        }
        let mut t = self.timers.next()?;
        let deadlines = self
            .ops
            .values()
            .map(Op::deadline)
            .chain(self.lock.as_ref().map(|l| l.until))
            .chain(self.children.deadline())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn due_timers_fire_once_in_order_and_rearm_from_now() {
        let mut t = Timers::new([
            (Timer::Heartbeat, Some((at(0), Duration::from_millis(100)))),
            (
                Timer::Discover,
                Some((at(250), Duration::from_millis(1000))),
            ),
            (Timer::Sync, Some((at(250), Duration::from_millis(500)))),
            (Timer::Load, None),
        ]);
        assert_eq!(t.next(), Some(at(0)));
        assert_eq!(t.take_due(at(0)), vec![Timer::Heartbeat]);
        assert_eq!(t.next(), Some(at(100)));
        assert_eq!(t.take_due(at(50)), vec![]);
        // A late wake-up fires each due timer once, in table order.
        assert_eq!(
            t.take_due(at(400)),
            vec![Timer::Heartbeat, Timer::Discover, Timer::Sync]
        );
        assert_eq!(t.next(), Some(at(500)));
        assert_eq!(t.take_due(at(900)), vec![Timer::Heartbeat, Timer::Sync]);
        assert_eq!(t.take_due(at(1000)), vec![Timer::Heartbeat]);
        assert_eq!(
            t.take_due(at(1400)),
            vec![Timer::Heartbeat, Timer::Discover, Timer::Sync]
        );
    }

    #[test]
    fn a_timer_that_is_off_never_fires() {
        let mut t = Timers::new([
            (Timer::Heartbeat, None),
            (Timer::Discover, None),
            (Timer::Sync, None),
            (Timer::Load, None),
        ]);
        assert_eq!(t.next(), None);
        assert!(t.take_due(at(u32::MAX as u64)).is_empty());
    }
}
