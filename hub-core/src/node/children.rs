//! Every child this node is responsible for, in whichever phase it is:
//! running or moving here, waiting for an owner, handed over and not yet
//! acknowledged, stopped for lost quorum, or just stopped on request.
//!
//! One owner for these maps keeps the questions that span them ("does
//! it wait?", "is a retry due?", "when is the next move deadline?") in
//! one place, answered from data this type holds.
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::child::{Local, LocalState, Orphan, Outbound};
use super::handing::Handing;
use crate::id::{ChildId, Handle};
use crate::registry::Registry;
use crate::spec::ChildSpec;
use crate::time::Time;

#[derive(Debug, Default)]
pub(super) struct Children {
    /// Copies on this node, whatever their phase.
    pub(super) local: BTreeMap<ChildId, Local>,
    /// Children with no live holder that this node keeps until one runs.
    pub(super) orphans: BTreeMap<ChildId, Orphan>,
    /// Stopped and handed over, kept until the new owner acknowledges.
    pub(super) outbound: BTreeMap<ChildId, Outbound>,
    /// Running children being moved start-then-stop (HotSwap).
    pub(super) handing: BTreeMap<ChildId, Handing>,
    /// Children stopped because quorum was lost, with their final state;
    /// restarted when it returns.
    pub(super) suspended: BTreeMap<ChildId, (Arc<ChildSpec>, Option<Bytes>)>,
    /// Replicated children this node stopped on request, and when: repair
    /// offers for them are refused for two sync intervals, so that a stop
    /// racing a repair does not bring the child back.
    recently_stopped: BTreeMap<ChildId, Time>,
}

impl Children {
    /// `(id, handle)` of the children running here, sorted.
    pub(super) fn running(&self) -> Vec<(ChildId, Handle)> {
        self.local
            .iter()
            .filter_map(|(id, l)| match l.state {
                LocalState::Running(h) => Some((id.clone(), h)),
                _ => None,
            })
            .collect()
    }

    /// Whether `id` is known here but runs nowhere the registry knows of.
    pub(super) fn is_waiting(&self, id: &str, registry: &Registry) -> bool {
        (self.orphans.contains_key(id) || self.suspended.contains_key(id))
            && registry.lookup_ref(id).is_empty()
    }

    /// Every child [`Children::is_waiting`] holds for, sorted.
    pub(super) fn waiting(&self, registry: &Registry) -> Vec<ChildId> {
        let mut ids: Vec<ChildId> = self
            .orphans
            .keys()
            .chain(self.suspended.keys())
            .filter(|id| registry.lookup_ref(id.as_str()).is_empty())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether an orphan whose strict claim failed may be tried again.
    pub(super) fn retry_due(&self, now: Time) -> bool {
        self.orphans
            .values()
            .any(|o| o.retry_at.is_some_and(|t| t <= now))
    }

    /// The earliest HotSwap move deadline.
    pub(super) fn deadline(&self) -> Option<Time> {
        self.handing.values().map(|h| h.deadline).min()
    }

    /// A replicated child was stopped on request at `now`.
    pub(super) fn note_stopped(&mut self, id: ChildId, now: Time) {
        self.recently_stopped.insert(id, now);
    }

    /// `id` was started again: a repair of it is welcome.
    pub(super) fn clear_stopped(&mut self, id: &str) {
        self.recently_stopped.remove(id);
    }

    /// Whether a repair offer of `id` would undo a recent stop.
    pub(super) fn refuses_repair(&self, id: &str) -> bool {
        self.recently_stopped.contains_key(id)
    }

    /// Forgets stops older than `keep`.
    pub(super) fn forget_stops(&mut self, now: Time, keep: Duration) {
        self.recently_stopped.retain(|_, at| now.since(*at) < keep);
    }
}
