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
//! Rules 1, 3 and 4 are pure functions in `rules.rs`, each with a golden
//! table test; `granter.rs` and `holder.rs` gather their facts and apply
//! their verdicts.
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
use tracing::warn;

use super::{Node, Orphan};
use crate::event::Event;
use crate::id::{ChildId, Incarnation, NodeId};
use crate::protocol::{Echo, Message, Term};
use crate::strict::Strict;
use crate::time::Time;

mod granter;
mod holder;
mod rules;

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
    /// While its start waits for grants, it will start from `state`
    /// instead (a later point of the child's history, handed over while it
    /// waited); `false` when it does not wait.
    pub(super) fn restore_from(&mut self, state: Bytes) -> bool {
        match self.waiting.as_mut() {
            Some(w) => {
                w.restore = Some(state);
                true
            }
            None => false,
        }
    }

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
