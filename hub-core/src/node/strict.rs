//! Strict single-instance mode: majority-granted ownership with leases.
//!
//! Divergence mode lets both sides of a partition run a child and resolves
//! the duplicate on heal. Strict mode ([`Config::strict`]) never lets two
//! nodes run one child id at the same time. It combines two established
//! mechanisms: a child is *granted* by a quorum before it starts (as a
//! Paxos acceptor promises one proposer), and the holder keeps it only
//! under a *lease* that its granters renew by echoing its heartbeats (as
//! Raft and Chubby leader leases), measured on the holder's own clock.
//!
//! # Rules
//!
//! Let `q` be [`Strict::quorum`], `L` the lease, `ρ` the drift bound and
//! `V` = [`Strict::takeover_after`] = `L(1+ρ)² + margin`.
//!
//! 1. **Grant.** A node (a *granter*, each node is one, the claimant
//!    included) grants child `x` to claimant `C` only if it does not run
//!    `x` itself, its registry shows no other live holder of `x`, and it has
//!    not promised `x` to another node `H` — unless that promise *lapsed*:
//!    `H` released `x`, restarted (a higher incarnation: its processes
//!    died), left gracefully, or has been silent to the granter for `V`.
//!    A granted claim becomes the granter's promise to `C`.
//! 2. **Start.** `C` starts `x` only with grants from `q` nodes, itself
//!    included. Every start takes this path: requests, orphans of dead
//!    nodes, handoffs, restarts after fencing.
//! 3. **Terms.** A granter's *term* for `C` is its incarnation plus how
//!    often it let a promise of `C`'s lapse by silence. It bumps the term
//!    before it grants anything over a silent `C`'s promise; every grant
//!    and echo carries the term, and a grant counts only while the
//!    granter's latest echo carries the same term.
//! 4. **Lease.** `C`'s heartbeats carry its clock reading `at`; granters
//!    echo the latest `at` they got back, with their term. `C` keeps `x`
//!    while `q - 1` of `x`'s granters have echoed, with the grant's term, an
//!    `at` newer than `now - L`. Otherwise it *fences* `x`: stops it at
//!    once and keeps its spec to claim again later.
//! 5. **Restarts.** A node keeps nothing across restarts, so for `V` after
//!    it starts it grants nothing and does not count itself: leases may
//!    still rely on grants its previous run gave (a holder learns of the
//!    new term only when the new run's first echo reaches it). Meanwhile
//!    its own claims need `q` grants from the others.
//!
//! # Why two copies never run
//!
//! Suppose `C` runs `x` at real time `T` and `D` starts `x` at `T`. `D`
//! holds `q` grants of `x`, all given before `T`. `C` holds a lease at
//! `T`: `q` nodes (itself included) whose grant of `x` still carries their
//! current term and who echoed a heartbeat `C` sent after `T - L` on `C`'s
//! clock. The cluster never has `2q` nodes, so some granter `G` is in both
//! sets. `G` granted `x` to both; consider its later grant, say to `D`.
//! At that moment `C`'s promise had lapsed at `G`:
//!
//! - *released* or *restarted*: `C` had stopped that copy, and the copy
//!   running at `T` needed a later grant from `G`, which comes after the
//!   grant to `D` only through the same argument with roles swapped;
//! - `G` itself *restarted* between the two grants, forgetting its
//!   promise: its new run granted `D` at least `V` after its old run's
//!   last echo, and the echo `C` counts at `T` is from the old run (the
//!   term carries the incarnation), so the silence argument below applies
//!   with the restart as the silence;
//! - *silence*: `G` heard nothing from `C` for `V` before granting `D`,
//!   and bumped its term for `C`. The echo `C` counts at `T` carries the
//!   old term, so `G` sent it before the bump, echoing a heartbeat it
//!   received before the silence began: at least `V/(1+ρ)` real time
//!   before `T`. On `C`'s clock that heartbeat was sent after `T - L`,
//!   i.e. at most `L(1+ρ)` real time before `T`. `V > L(1+ρ)²` makes these
//!   incompatible.
//!
//! A lease is checked by timer, and a fenced process takes time to stop:
//! `margin` in `V` covers both. A child whose `init` runs longer than the
//! lease is fenced as soon as it reports started.
//!
//! # What it costs
//!
//! Every start waits for a round trip to the peers. A crashed node's
//! children restart after `V` (about 4.6 s with the defaults), not after
//! `down_after`. A cluster that has just started grants nothing for `V`
//! (rule 5): starts fail with `NotGranted` until then. Children stop on a
//! node that loses contact with `q - 1` granters, even if the rest of the
//! cluster is gone: with fewer than `q` nodes nothing runs. The quorum is
//! static: it must be a majority of the largest cluster; a node refuses
//! grants while it sees `2q` or more members, and nodes whose setting
//! differs ignore each other (`Event::PeerRefused`). Replication
//! (redundancy) and start-then-stop migration would run two copies by
//! design and are refused with strict mode.
//!
//! [`Config::strict`]: crate::Config::strict
//! [`Strict::quorum`]: crate::Strict::quorum
//! [`Strict::takeover_after`]: crate::Strict::takeover_after

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::{LocalState, Node, Orphan, StartPurpose, StopPurpose};
use crate::error::StartError;
use crate::event::Event;
use crate::id::{ChildId, Incarnation, NodeId};
use crate::membership::Status;
use crate::output::Output;
use crate::protocol::{Beat, Echo, Grants, Message, Term};
use crate::strict::Strict;
use crate::time::Time;

/// Most ids per claim message (a refresh of many children is split).
const MAX_CLAIM_IDS: usize = 4096;
/// Promises beyond the registry's size a peer may make this node keep.
const MAX_EXTRA_PROMISES: usize = 4096;

/// A node's strict-mode state: as a granter and as a holder.
#[derive(Debug)]
pub(super) struct StrictState {
    cfg: Strict,
    /// Granter: child -> the node it is promised to, and that node's
    /// incarnation then.
    promises: BTreeMap<ChildId, (NodeId, Incarnation)>,
    /// Granter: per holder, revocations so far and the holder's
    /// `last_heard` at the latest one (one bump per silence).
    revoked: BTreeMap<NodeId, (u64, Time)>,
    /// Granter: the latest `at` each peer sent, to echo, with the
    /// incarnation that sent it (a restarted peer's clock starts afresh:
    /// echoing its old run's readings would stretch its new leases).
    beats: BTreeMap<NodeId, (Incarnation, u64)>,
    /// Holder: the latest echo of each peer.
    echoes: BTreeMap<NodeId, Echo>,
    /// Holder: claims waiting for answers.
    claims: BTreeMap<u64, Pending>,
    next_claim: u64,
    /// Holder: when each peer was last asked to refresh its grants.
    refreshed: BTreeMap<NodeId, Time>,
    /// Holder: the earliest lease expiry among local children.
    fence_at: Option<Time>,
    /// Children this node stopped running or claiming: told to every peer
    /// when the input ends.
    releases: Vec<ChildId>,
    /// Whether the oversize warning was logged.
    warned_oversize: bool,
    /// Granter: promises to ask their holders about (see
    /// [`Message::Promised`]), sent when the input ends.
    ask: BTreeMap<NodeId, Vec<ChildId>>,
    /// Holder: the claim number of the input being handled: every start
    /// of one input goes out in one claim per peer.
    input_claim: Option<u64>,
    /// Until then this node grants nothing, itself included: it keeps no
    /// state across restarts, and leases may still count on grants its
    /// previous run gave.
    young_until: Time,
}

/// A claim in flight.
#[derive(Debug)]
struct Pending {
    deadline: Time,
    /// Nodes asked, this one included.
    asked: usize,
    /// Refusals so far, per child still waiting.
    refused: BTreeMap<ChildId, usize>,
}

/// A local child's grants.
#[derive(Clone, Debug, Default)]
pub(super) struct Hold {
    /// Granters (this node aside) and their terms then.
    grants: BTreeMap<NodeId, Term>,
    /// The claim it started (or starts) under.
    seq: u64,
    /// Clock (ms) when that claim was sent: a refresh grant counts only
    /// if asked for after it (an older one may predate a release).
    since: u64,
    /// Set while the start waits for grants.
    waiting: Option<Box<Waiting>>,
}

impl Hold {
    /// Whether its start waits for grants.
    pub(super) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }
}

/// A start waiting for grants.
#[derive(Clone, Debug)]
struct Waiting {
    restore: Option<Bytes>,
    /// The orphan it came from, restored if the claim fails.
    orphan: Option<Orphan>,
}

impl StrictState {
    pub(super) fn new(cfg: Strict, now: Time) -> Self {
        StrictState {
            young_until: now + cfg.takeover_after(),
            cfg,
            promises: BTreeMap::new(),
            revoked: BTreeMap::new(),
            beats: BTreeMap::new(),
            echoes: BTreeMap::new(),
            claims: BTreeMap::new(),
            next_claim: 0,
            refreshed: BTreeMap::new(),
            fence_at: None,
            releases: Vec::new(),
            warned_oversize: false,
            ask: BTreeMap::new(),
            input_claim: None,
        }
    }

    /// The next deadline: a lease expiry or a claim timeout.
    pub(super) fn deadline(&self) -> Option<Time> {
        let claims = self.claims.values().map(|p| p.deadline).min();
        match (self.fence_at, claims) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Promises kept as a granter (for tests and diagnostics).
    pub(super) fn promised_to(&self, id: &str) -> Option<&NodeId> {
        self.promises.get(id).map(|(n, _)| n)
    }
}

impl Node {
    fn strict_cfg(&self) -> Option<Strict> {
        self.strict.as_ref().map(|s| s.cfg)
    }

    // ----- granter ---------------------------------------------------------

    /// This node's term for `holder`.
    fn term_for(&self, holder: &NodeId) -> Term {
        let revoked = self
            .strict
            .as_ref()
            .and_then(|s| s.revoked.get(holder))
            .map_or(0, |r| r.0);
        Term {
            incarnation: self.cfg.incarnation,
            revoked,
        }
    }

    /// Whether a promise to `holder` (made while it ran `incarnation`) no
    /// longer binds. A lapse by silence bumps the term first.
    fn lapsed(&mut self, holder: &NodeId, incarnation: Option<Incarnation>) -> bool {
        if *holder == self.me {
            return false;
        }
        let Some(v) = self.strict_cfg().map(|s| s.takeover_after()) else {
            return true;
        };
        let Some(m) = self.membership.get(holder) else {
            return true;
        };
        if incarnation.is_some_and(|i| m.info.incarnation > i) || m.status == Status::Left {
            return true;
        }
        let heard = m.last_heard;
        if self.now.since(heard) < v {
            return false;
        }
        if let Some(s) = self.strict.as_mut() {
            let r = s.revoked.entry(holder.clone()).or_insert((0, Time::ZERO));
            if r.1 != heard || r.0 == 0 {
                r.0 += 1;
                r.1 = heard;
                info!(%holder, revoked = r.0, "strict: promises of a silent node lapse");
            }
        }
        true
    }

    /// Whether the cluster is too large for the configured quorum.
    fn oversize(&mut self) -> bool {
        let Some(cfg) = self.strict_cfg() else {
            return false;
        };
        let over = self.ring.len() >= 2 * cfg.quorum;
        if let Some(s) = self.strict.as_mut() {
            if over && !s.warned_oversize {
                warn!(
                    nodes = self.ring.len(),
                    quorum = cfg.quorum,
                    "strict: the cluster holds 2 x quorum nodes or more; no grants"
                );
            }
            s.warned_oversize = over;
        }
        over
    }

    /// Whether this node started less than `takeover_after` ago: it grants
    /// nothing yet and does not count itself as a granter.
    fn is_young(&self) -> bool {
        self.strict
            .as_ref()
            .is_some_and(|s| self.now < s.young_until)
    }

    /// Grants a node counts for itself: one, once it is no longer young.
    fn own_grant(&self) -> usize {
        usize::from(!self.is_young())
    }

    /// Rule 1: may `claimant` run `id`, per this node? Records the promise.
    fn grant(&mut self, claimant: &NodeId, incarnation: Incarnation, id: &ChildId) -> bool {
        if self.oversize() || self.is_young() {
            return false;
        }
        let handed_elsewhere = self.outbound.get(id).is_some_and(|o| o.to != *claimant);
        if *claimant != self.me && (self.local.contains_key(id) || handed_elsewhere) {
            return false;
        }
        let promised = self
            .strict
            .as_ref()
            .and_then(|s| s.promises.get(id).cloned());
        if let Some((holder, inc)) = promised {
            if holder == *claimant && incarnation < inc {
                // A late claim of the claimant's earlier run.
                return false;
            }
            if holder != *claimant && !self.lapsed(&holder, Some(inc)) {
                if holder != self.me && !self.runs_here(&holder, id) {
                    // Its release may have been lost: ask it.
                    if let Some(s) = self.strict.as_mut() {
                        s.ask.entry(holder).or_default().push(id.clone());
                    }
                }
                return false;
            }
        }
        let holders: Vec<NodeId> = self
            .registry
            .lookup_ref(id.as_str())
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n != claimant)
            .collect();
        for h in holders {
            let moving = self
                .registry
                .row(&h, id.as_str())
                .is_some_and(|r| r.moving_to.is_some());
            if !moving && !self.lapsed(&h, None) {
                return false;
            }
        }
        let cap = self.registry.len() + MAX_EXTRA_PROMISES;
        let Some(s) = self.strict.as_mut() else {
            return false;
        };
        if !s.promises.contains_key(id) && s.promises.len() >= cap {
            return false;
        }
        s.promises
            .insert(id.clone(), (claimant.clone(), incarnation));
        true
    }

    pub(super) fn on_claim(
        &mut self,
        from: &NodeId,
        seq: u64,
        at: u64,
        incarnation: Incarnation,
        ids: Vec<ChildId>,
    ) {
        if self.strict.is_none() {
            return;
        }
        self.record_beat(from, incarnation, at);
        let mut granted = Vec::new();
        let mut refused = Vec::new();
        for id in ids {
            if self.grant(from, incarnation, &id) {
                granted.push(id);
            } else {
                refused.push(id);
            }
        }
        let term = self.term_for(from);
        let grants = Grants {
            seq,
            at,
            incarnation,
            term,
            granted,
            refused,
        };
        self.send(from.clone(), Message::Grants(grants));
    }

    pub(super) fn on_release(&mut self, from: &NodeId, ids: Vec<ChildId>) {
        let Some(s) = self.strict.as_mut() else {
            return;
        };
        for id in ids {
            if s.promises.get(&id).is_some_and(|(n, _)| n == from) {
                s.promises.remove(&id);
            }
        }
    }

    fn record_beat(&mut self, from: &NodeId, inc: Incarnation, at: u64) {
        if let Some(s) = self.strict.as_mut() {
            let b = s.beats.entry(from.clone()).or_insert((inc, at));
            if b.0 == inc {
                b.1 = b.1.max(at);
            } else {
                *b = (inc, at);
            }
        }
    }

    /// The lease part of a heartbeat to `to`.
    pub(super) fn beat_for(&self, to: &NodeId) -> Option<Beat> {
        let s = self.strict.as_ref()?;
        Some(Beat {
            at: self.now.as_millis(),
            echo: s.beats.get(to).map(|&(incarnation, at)| Echo {
                at,
                incarnation,
                term: self.term_for(to),
            }),
        })
    }

    pub(super) fn on_beat(&mut self, from: &NodeId, incarnation: Incarnation, beat: Beat) {
        self.record_beat(from, incarnation, beat.at);
        if let Some(echo) = beat.echo {
            self.record_echo(from, echo);
        }
    }

    /// Keeps the newest echo of `from`; a new term voids its grants at
    /// once, so leases are checked now.
    fn record_echo(&mut self, from: &NodeId, echo: Echo) {
        if echo.incarnation != self.cfg.incarnation {
            return;
        }
        let now = self.now;
        let Some(s) = self.strict.as_mut() else {
            return;
        };
        match s.echoes.get_mut(from) {
            Some(e) if e.term == echo.term => e.at = e.at.max(echo.at),
            Some(e) => {
                debug!(peer = %from, "strict: granter's term changed");
                *e = echo;
                s.fence_at = Some(now);
            }
            None => {
                s.echoes.insert(from.clone(), echo);
            }
        }
    }

    // ----- holder ----------------------------------------------------------

    /// Rule 2: in strict mode a start waits for grants (`true`: the caller
    /// must not spawn now).
    pub(super) fn defer_spawn(
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
        if let Some(l) = self.local.get_mut(id) {
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
    pub(super) fn flush_claims(&mut self) {
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

    pub(super) fn on_grants(&mut self, from: &NodeId, g: Grants) {
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
            let Some(l) = self.local.get_mut(&id) else {
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
                let granted = self.local.get(&id).map_or(0, |l| l.hold.grants.len()) + own;
                self.claim_failed(&id, granted, true);
            }
        }
    }

    /// Enough grants: the child starts.
    fn launch(&mut self, id: &ChildId) {
        let Some(l) = self.local.get_mut(id) else {
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
    fn claim_failed(&mut self, id: &ChildId, granted: usize, sent: bool) {
        let Some(local) = self.local.get(id) else {
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
        let Some(local) = self.local.remove(id) else {
            return;
        };
        let requested = match local.state {
            LocalState::Starting(StartPurpose::Request(waiters)) => {
                for wt in waiters {
                    let e = StartError::NotGranted { granted, quorum };
                    self.deliver_start(wt.op, id.clone(), Err(e));
                }
                true
            }
            _ => false,
        };
        // An orphan (also one a start request took over), or a child handed
        // over (its sender's release may not have reached the granters
        // yet): never lost with a failed claim; tried again soon.
        let kept = match w.orphan {
            Some(orphan) => Some(orphan),
            None if !requested => Some(Orphan::new(local.spec.clone(), w.restore.clone(), true)),
            None => None,
        };
        if let Some(mut orphan) = kept {
            orphan.recovered = orphan.recovered.or(local.recovered);
            orphan.retry_at = Some(self.now + self.cfg.heartbeat_interval);
            orphan.sent_to = None;
            self.orphans.insert(id.clone(), orphan);
        }
    }

    /// This node no longer runs or claims `id`: its own promise goes and
    /// every peer is told.
    pub(super) fn release(&mut self, id: &ChildId) {
        self.drop_own_promise(id);
        if let Some(s) = self.strict.as_mut() {
            s.releases.push(id.clone());
        }
    }

    fn drop_own_promise(&mut self, id: &ChildId) {
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
    pub(super) fn audit_promises(&mut self) {
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

    /// Whether the registry shows `node` running `id` (a row not marked as
    /// moving away).
    fn runs_here(&self, node: &NodeId, id: &ChildId) -> bool {
        self.registry
            .row(node, id.as_str())
            .is_some_and(|r| r.moving_to.is_none())
    }

    /// A granter keeps promises to this node for these children: release
    /// the ones this node neither runs nor claims.
    pub(super) fn on_promised(&mut self, from: &NodeId, ids: Vec<ChildId>) {
        if self.strict.is_none() {
            return;
        }
        let stale: Vec<ChildId> = ids
            .into_iter()
            .filter(|id| !self.local.contains_key(id))
            .collect();
        if !stale.is_empty() {
            self.send(from.clone(), Message::Release(stale));
        }
    }

    /// When `id`'s lease runs out (rule 4): the `q - 1`-th latest echo of
    /// its granters, with the grant's term, plus the lease.
    fn lease_expiry(&self, id: &ChildId) -> Time {
        let (Some(s), Some(l)) = (self.strict.as_ref(), self.local.get(id)) else {
            return Time::ZERO;
        };
        let need = s.cfg.quorum.saturating_sub(self.own_grant());
        if need == 0 {
            return Time::from_millis(u64::MAX);
        }
        let mut times: Vec<u64> = l
            .hold
            .grants
            .iter()
            .filter_map(|(g, term)| s.echoes.get(g).filter(|e| e.term == *term))
            .map(|e| e.at)
            .collect();
        if times.len() < need {
            return Time::ZERO;
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        Time::from_millis(times[need - 1]) + s.cfg.lease
    }

    /// Fences every child whose lease ran out; schedules the next check.
    pub(super) fn check_leases(&mut self) {
        let Some(s) = self.strict.as_ref() else {
            return;
        };
        if s.fence_at.is_some_and(|f| f > self.now) {
            return;
        }
        let ids: Vec<ChildId> = self
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
    pub(super) fn check_lease_of(&mut self, id: &ChildId) {
        if self.strict.is_some() && self.lease_expiry(id) <= self.now {
            self.fence(id);
        }
    }

    fn fence(&mut self, id: &ChildId) {
        let Some(l) = self.local.get(id) else {
            return;
        };
        if matches!(l.state, LocalState::Running(_)) {
            warn!(child = %id, "strict: lease lost; fencing the child");
            self.begin_stop(id, StopPurpose::Fence, None);
        }
    }

    /// Rule 4's upkeep, every heartbeat: ask peers whose grants of running
    /// children are missing or from an old term (a granter restarted, or a
    /// node joined) to grant them again, at most twice per lease.
    pub(super) fn refresh_grants(&mut self) {
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
    pub(super) fn expire_claims(&mut self) {
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
                    .local
                    .get(&id)
                    .is_some_and(|l| l.hold.is_waiting() && l.hold.seq == seq);
                if waiting {
                    let granted =
                        self.local.get(&id).map_or(0, |l| l.hold.grants.len()) + self.own_grant();
                    self.claim_failed(&id, granted, true);
                }
            }
        }
    }

    /// The node a granter promised `id` to (strict mode), for tests.
    pub fn strict_promise(&self, id: &str) -> Option<NodeId> {
        self.strict.as_ref()?.promised_to(id).cloned()
    }
}

impl Node {
    /// Whether to ignore a message from `from` because that node runs
    /// another mode: a divergence-mode node in a strict cluster would start
    /// children without grants. Decided on its hello (the first message of
    /// every connection); a later hello that matches lifts the refusal.
    pub(super) fn refuses(&mut self, from: &NodeId, message: &Message) -> bool {
        let Message::Hello { info, .. } = message else {
            return self.mismatched.contains_key(from);
        };
        let ours = self.cfg.strict_quorum();
        if info.strict_quorum == ours {
            self.mismatched.remove(from);
            return false;
        }
        if self.mismatched.insert(from.clone(), info.incarnation) != Some(info.incarnation) {
            warn!(
                peer = %from,
                theirs = ?info.strict_quorum,
                ?ours,
                "peer runs another strict-mode setting; ignored"
            );
            self.emit(Event::PeerRefused {
                node: from.clone(),
                theirs: info.strict_quorum,
                ours,
            });
        }
        true
    }

    /// Whether another node runs `id` per the registry (a row not marked
    /// as moving away).
    pub(super) fn strict_held_elsewhere(&self, id: &ChildId) -> bool {
        self.registry
            .lookup_ref(id.as_str())
            .iter()
            .any(|(n, _)| *n != self.me && self.runs_here(n, id))
    }
}
