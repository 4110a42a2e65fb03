//! Strict mode, the holder's side: rules 2 and 4 (a start waits for a
//! quorum of grants; a running child keeps a lease or is fenced).

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, warn};

use super::{rules, Hold, Pending, Waiting, MAX_CLAIM_IDS};
use crate::error::StartError;
use crate::id::{ChildId, NodeId};
use crate::membership::Status;
use crate::node::{LocalState, Node, Orphan, StartPurpose, StopPurpose};
use crate::output::Output;
use crate::protocol::{Echo, Grants, Message};
use crate::time::Time;

impl Node {
    /// Rule 2: in strict mode a start waits for grants (`true`: the caller
    /// must not spawn now).
    pub(in crate::node) fn defer_spawn(
        &mut self,
        id: &ChildId,
        restore: Option<Bytes>,
        orphan: Option<Orphan>,
    ) -> bool {
        let Some(cfg) = self.strict_cfg() else {
            return false;
        };
        let Some(s) = self.strict.as_mut() else {
            return false;
        };
        let seq = match s.input_claim {
            Some(seq) => seq,
            None => {
                s.next_claim += 1;
                let seq = s.next_claim;
                s.input_claim = Some(seq);
                // The peers are asked once per input, whatever it starts.
                let peers = self.membership.ring_peers();
                self.outbox.claims.insert(seq, (peers, Vec::new()));
                seq
            }
        };
        let peers = self.outbox.claims.get(&seq).map_or(0, |(p, _)| p.len());
        let since = self.now.as_millis();
        let deadline = self.now + cfg.lease;
        if let Some(l) = self.children.local.get_mut(id) {
            l.hold = Hold {
                grants: BTreeMap::new(),
                seq,
                since,
                waiting: Some(Box::new(Waiting { restore, orphan })),
            };
        }
        let me = self.me.clone();
        let own = self.own_grant();
        if own == 1 && !self.grant(&me, self.cfg.incarnation, id) {
            debug!(child = %id, "strict: this node refuses the claim itself");
            self.claim_failed(id, 0, false);
            return true;
        }
        if own >= cfg.quorum {
            self.launch(id);
            return true;
        }
        if peers + own < cfg.quorum {
            debug!(child = %id, peers, "strict: quorum out of reach");
            self.claim_failed(id, own, false);
            return true;
        }
        let Some(s) = self.strict.as_mut() else {
            return true;
        };
        let pending = s.claims.entry(seq).or_insert(Pending {
            deadline,
            asked: peers + own,
            refused: BTreeMap::new(),
        });
        pending.refused.insert(id.clone(), 0);
        // One message per claim number and peer, sent when the input ends.
        if let Some((_, ids)) = self.outbox.claims.get_mut(&seq) {
            ids.push(id.clone());
        }
        true
    }

    /// Sends the releases, then the claims, the input produced (a release
    /// must not overtake a later claim of the same child).
    pub(in crate::node) fn flush_claims(&mut self) {
        let (releases, ask) = match self.strict.as_mut() {
            Some(s) => {
                s.input_claim = None;
                (std::mem::take(&mut s.releases), std::mem::take(&mut s.ask))
            }
            None => return,
        };
        for (to, mut ids) in ask {
            ids.sort();
            ids.dedup();
            for chunk in ids.chunks(MAX_CLAIM_IDS) {
                self.send(to.clone(), Message::Promised(chunk.to_vec()));
            }
        }
        if !releases.is_empty() {
            for to in self.contactable() {
                self.send(to, Message::Release(releases.clone()));
            }
        }
        let at = self.now.as_millis();
        for (seq, (peers, ids)) in std::mem::take(&mut self.outbox.claims) {
            for chunk in ids.chunks(MAX_CLAIM_IDS) {
                for p in &peers {
                    let msg = Message::Claim {
                        seq,
                        at,
                        incarnation: self.cfg.incarnation,
                        ids: chunk.to_vec(),
                    };
                    self.send(p.clone(), msg);
                }
            }
        }
    }

    pub(in crate::node) fn on_grants(&mut self, from: &NodeId, g: Grants) {
        let Grants {
            seq,
            at,
            incarnation,
            term,
            granted,
            refused,
        } = g;
        let Some(quorum) = self.strict_cfg().map(|s| s.quorum) else {
            return;
        };
        let own = self.own_grant();
        if incarnation != self.cfg.incarnation {
            // Answers an earlier run's claim (its numbers start afresh).
            return;
        }
        self.record_echo(
            from,
            Echo {
                at,
                incarnation,
                term,
            },
        );
        let mut stale = Vec::new();
        for id in granted {
            let Some(l) = self.children.local.get_mut(&id) else {
                stale.push(id);
                continue;
            };
            let h = &mut l.hold;
            let current = if seq == 0 {
                h.waiting.is_none() && at >= h.since
            } else {
                seq == h.seq
            };
            if !current {
                // An answer to a claim of an earlier copy: the granter saw
                // that copy's release after it.
                continue;
            }
            h.grants.insert(from.clone(), term);
            if h.waiting.is_some() && h.grants.len() + own >= quorum {
                self.launch(&id);
            }
        }
        if !stale.is_empty() {
            // Granted after this node gave up: free the promise again.
            self.send(from.clone(), Message::Release(stale));
        }
        for id in refused {
            if seq == 0 {
                warn!(child = %id, peer = %from, "strict: a granter refuses a running child");
                continue;
            }
            let Some(p) = self.strict.as_mut().and_then(|s| s.claims.get_mut(&seq)) else {
                continue;
            };
            let asked = p.asked;
            let Some(n) = p.refused.get_mut(&id) else {
                continue;
            };
            *n += 1;
            if asked - *n < quorum {
                let granted = self
                    .children
                    .local
                    .get(&id)
                    .map_or(0, |l| l.hold.grants.len())
                    + own;
                self.claim_failed(&id, granted, true);
            }
        }
    }

    /// Enough grants: the child starts, unless it was this node's orphan
    /// and another node has run it since (its row is live, or it hands
    /// the child here): that node's state is newer, so the orphan goes and
    /// the grants with it; the handoff, if one comes, starts it here.
    pub(super) fn launch(&mut self, id: &ChildId) {
        let from_orphan = self
            .children
            .local
            .get(id)
            .is_some_and(|l| matches!(l.state, LocalState::Starting(StartPurpose::Orphan)));
        if from_orphan && self.superseded(id) {
            debug!(child = %id, "strict: granted, but another node ran it since; orphan dropped");
            self.children.local.remove(id);
            self.release(id);
            return;
        }
        if from_orphan && !self.registry_caught_up() {
            // A peer's rows are still on their way: one of them may show
            // that it ran the child since. Tried again once they are here.
            debug!(child = %id, "strict: granted, but the registry lags a peer; retried");
            let granted = self
                .children
                .local
                .get(id)
                .map_or(0, |l| l.hold.grants.len());
            self.claim_failed(id, granted, true);
            return;
        }
        let Some(l) = self.children.local.get_mut(id) else {
            return;
        };
        let seq = l.hold.seq;
        let Some(w) = l.hold.waiting.take() else {
            return;
        };
        let spec = l.spec.clone();
        if let Some(p) = self.strict.as_mut().and_then(|s| s.claims.get_mut(&seq)) {
            p.refused.remove(id);
        }
        debug!(child = %id, "strict: granted by a quorum; starting");
        self.out.push_back(Output::Spawn {
            spec,
            restore: w.restore,
        });
        let expiry = self.lease_expiry(id);
        if let Some(s) = self.strict.as_mut() {
            s.fence_at = Some(s.fence_at.map_or(expiry, |f| f.min(expiry)));
        }
    }

    /// The claim of `id` failed with `granted` grants: a request gets an
    /// error; an orphan or a handed-over child waits for the next try.
    /// `sent`: peers were asked (and are told to drop their promises).
    pub(super) fn claim_failed(&mut self, id: &ChildId, granted: usize, sent: bool) {
        let Some(local) = self.children.local.get(id) else {
            return;
        };
        let seq = local.hold.seq;
        let Some(w) = local.hold.waiting.clone() else {
            return;
        };
        if let Some(p) = self.strict.as_mut().and_then(|s| s.claims.get_mut(&seq)) {
            p.refused.remove(id);
        }
        let quorum = self.strict_cfg().map_or(1, |s| s.quorum);
        debug!(child = %id, granted, quorum, "strict: claim failed");
        if sent {
            self.release(id);
        } else {
            self.drop_own_promise(id);
        }
        let Some(local) = self.children.local.remove(id) else {
            return;
        };
        let mut handed_by = None;
        let requested = match local.state {
            LocalState::Starting(StartPurpose::Request(waiters)) => {
                for wt in waiters {
                    let e = StartError::NotGranted { granted, quorum };
                    self.deliver_start(wt.op, id.clone(), Err(e));
                }
                true
            }
            LocalState::Starting(StartPurpose::Handoff(from)) => {
                handed_by = Some(from);
                false
            }
            _ => false,
        };
        // An orphan (also one a start request took over), or a child handed
        // over (its sender's release may not have reached the granters
        // yet): never lost with a failed claim; tried again soon.
        let kept = match w.orphan {
            // The state the start would have used is the newest known (the
            // orphan's own, or a later handoff's).
            Some(mut orphan) => {
                if w.restore.is_some() {
                    orphan.state = w.restore.clone();
                    orphan.recovered = local.recovered;
                }
                Some(orphan)
            }
            None if !requested => Some(Orphan::new(local.spec.clone(), w.restore.clone(), true)),
            None => None,
        };
        if let Some(mut orphan) = kept {
            orphan.recovered = orphan.recovered.or(local.recovered);
            orphan.retry_at = Some(self.now + self.cfg.heartbeat_interval);
            orphan.sent_to = None;
            orphan.handed_by = orphan.handed_by.or(handed_by);
            self.children.orphans.insert(id.clone(), orphan);
        }
    }

    /// This node no longer runs or claims `id`: its own promise goes and
    /// every peer is told.
    pub(in crate::node) fn release(&mut self, id: &ChildId) {
        self.drop_own_promise(id);
        if let Some(s) = self.strict.as_mut() {
            s.releases.push(id.clone());
        }
    }

    pub(super) fn drop_own_promise(&mut self, id: &ChildId) {
        let me = self.me.clone();
        if let Some(s) = self.strict.as_mut() {
            if s.promises.get(id).is_some_and(|(n, _)| *n == me) {
                s.promises.remove(id);
            }
        }
    }

    /// Sync-round upkeep of the promises: those to nodes that restarted or
    /// left go; a live node is asked about promises of children it has no
    /// row for (its release may have been lost), and releases those it
    /// neither runs nor claims.
    pub(in crate::node) fn audit_promises(&mut self) {
        let Some(s) = self.strict.as_ref() else {
            return;
        };
        let mut gone = Vec::new();
        let mut ask: BTreeMap<NodeId, Vec<ChildId>> = BTreeMap::new();
        for (id, (holder, inc)) in &s.promises {
            if *holder == self.me {
                continue;
            }
            match self.membership.get(holder) {
                Some(m) if m.info.incarnation > *inc || m.status == Status::Left => {
                    gone.push(id.clone())
                }
                Some(m) if m.status.in_ring() && !self.runs_here(holder, id) => {
                    ask.entry(holder.clone()).or_default().push(id.clone())
                }
                _ => {}
            }
        }
        if let Some(s) = self.strict.as_mut() {
            for id in gone {
                s.promises.remove(&id);
            }
            for (to, ids) in ask {
                s.ask.entry(to).or_default().extend(ids);
            }
        }
    }

    /// Whether another node runs `id` or hands it to this one, as far as
    /// the registry knows.
    fn superseded(&self, id: &ChildId) -> bool {
        self.strict_held_elsewhere(id) || self.handed_here_by_any(id)
    }

    /// Whether the registry shows `node` running `id` (a row not marked as
    /// moving away).
    pub(super) fn runs_here(&self, node: &NodeId, id: &ChildId) -> bool {
        self.registry
            .row(node, id.as_str())
            .is_some_and(|r| r.moving_to.is_none())
    }

    /// A granter keeps promises to this node for these children: release
    /// the ones this node neither runs nor claims.
    pub(in crate::node) fn on_promised(&mut self, from: &NodeId, ids: Vec<ChildId>) {
        if self.strict.is_none() {
            return;
        }
        let stale: Vec<ChildId> = ids
            .into_iter()
            .filter(|id| !self.children.local.contains_key(id))
            .collect();
        if !stale.is_empty() {
            self.send(from.clone(), Message::Release(stale));
        }
    }

    /// When `id`'s lease runs out (rule 4): the `q - 1`-th latest echo of
    /// its granters, with the grant's term, plus the lease.
    pub(super) fn lease_expiry(&self, id: &ChildId) -> Time {
        let (Some(s), Some(l)) = (self.strict.as_ref(), self.children.local.get(id)) else {
            return Time::ZERO;
        };
        let need = s.cfg.quorum.saturating_sub(self.own_grant());
        let echoes = l
            .hold
            .grants
            .iter()
            .filter_map(|(g, term)| s.echoes.get(g).filter(|e| e.term == *term))
            .map(|e| e.at)
            .collect();
        rules::lease_expiry(need, echoes, s.cfg.lease)
    }

    /// Fences every child whose lease ran out; schedules the next check.
    pub(in crate::node) fn check_leases(&mut self) {
        let Some(s) = self.strict.as_ref() else {
            return;
        };
        if s.fence_at.is_some_and(|f| f > self.now) {
            return;
        }
        let ids: Vec<ChildId> = self
            .children
            .local
            .iter()
            .filter(|(_, l)| !l.hold.is_waiting())
            .map(|(id, _)| id.clone())
            .collect();
        let mut next: Option<Time> = None;
        for id in ids {
            let expiry = self.lease_expiry(&id);
            if expiry <= self.now {
                self.fence(&id);
            } else {
                next = Some(next.map_or(expiry, |n| n.min(expiry)));
            }
        }
        if let Some(s) = self.strict.as_mut() {
            s.fence_at = next;
        }
    }

    /// A child that just reported started: fenced at once if its lease ran
    /// out while it started.
    pub(in crate::node) fn check_lease_of(&mut self, id: &ChildId) {
        if self.strict.is_some() && self.lease_expiry(id) <= self.now {
            self.fence(id);
        }
    }

    pub(super) fn fence(&mut self, id: &ChildId) {
        let Some(l) = self.children.local.get(id) else {
            return;
        };
        if matches!(l.state, LocalState::Running(_)) {
            warn!(child = %id, "strict: lease lost; fencing the child");
            self.counters.strict_fencings += 1;
            self.begin_stop(id, StopPurpose::Fence, None);
        }
    }

    /// Rule 4's upkeep, every heartbeat: ask peers whose grants of running
    /// children are missing or from an old term (a granter restarted, or a
    /// node joined) to grant them again, at most twice per lease.
    pub(in crate::node) fn refresh_grants(&mut self) {
        let Some(cfg) = self.strict_cfg() else {
            return;
        };
        if cfg.quorum <= 1 {
            return;
        }
        let every = cfg.lease / 2;
        let at = self.now.as_millis();
        for peer in self.membership.ring_peers() {
            let Some(s) = self.strict.as_ref() else {
                return;
            };
            if s.refreshed
                .get(&peer)
                .is_some_and(|t| self.now.since(*t) < every)
            {
                continue;
            }
            let term = s.echoes.get(&peer).map(|e| e.term);
            let ids: Vec<ChildId> = self
                .children
                .local
                .iter()
                .filter(|(_, l)| !l.hold.is_waiting())
                .filter(|(_, l)| matches!(l.state, LocalState::Running(_)))
                .filter(|(_, l)| term.is_none() || l.hold.grants.get(&peer).copied() != term)
                .map(|(id, _)| id.clone())
                .collect();
            if ids.is_empty() {
                continue;
            }
            if let Some(s) = self.strict.as_mut() {
                s.refreshed.insert(peer.clone(), self.now);
            }
            for chunk in ids.chunks(MAX_CLAIM_IDS) {
                let msg = Message::Claim {
                    seq: 0,
                    at,
                    incarnation: self.cfg.incarnation,
                    ids: chunk.to_vec(),
                };
                self.send(peer.clone(), msg);
            }
        }
    }

    /// Claims past their deadline fail for the children still waiting.
    pub(in crate::node) fn expire_claims(&mut self) {
        let now = self.now;
        let expired: Vec<(u64, Vec<ChildId>)> = match self.strict.as_mut() {
            Some(s) => {
                let seqs: Vec<u64> = s
                    .claims
                    .iter()
                    .filter(|(_, p)| p.deadline <= now || p.refused.is_empty())
                    .map(|(seq, _)| *seq)
                    .collect();
                seqs.into_iter()
                    .filter_map(|seq| s.claims.remove(&seq).map(|p| (seq, p)))
                    .map(|(seq, p)| (seq, p.refused.into_keys().collect()))
                    .collect()
            }
            None => return,
        };
        for (seq, ids) in expired {
            for id in ids {
                let waiting = self
                    .children
                    .local
                    .get(&id)
                    .is_some_and(|l| l.hold.is_waiting() && l.hold.seq == seq);
                if waiting {
                    let granted = self
                        .children
                        .local
                        .get(&id)
                        .map_or(0, |l| l.hold.grants.len())
                        + self.own_grant();
                    self.claim_failed(&id, granted, true);
                }
            }
        }
    }
}
