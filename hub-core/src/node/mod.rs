//! The node state machine; its contract is on [`Node`].

mod acks;
mod child;
mod children;
mod counters;
mod decommission;
mod handing;
mod handoff;
mod inputs;
mod leave;
mod load;
mod lock;
mod ops;
mod outbox;
mod owner;
mod redistribute;
mod replicas;
mod settled;
mod snapshots;
mod strict;
mod sync;
mod timers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::command::{Command, Reply};
use crate::config::Config;
use crate::error::ConfigError;
use crate::event::Event;
use crate::id::{ChildId, Handle, NodeId, RequestId};
use crate::membership::{Member, Membership, Status};
use crate::output::{LocalReport, Output};
use crate::protocol::{Message, NodeInfo, OpRef};
use crate::registry::Registry;
use crate::ring::Ring;
use crate::spec::ChildSpec;
use crate::strategy::{MigrationMode, Role, Strategies};
use crate::time::Time;

use child::{Local, LocalState, Orphan, Outbound, Restore, StartPurpose, StopPurpose, Waiter};
use children::Children;
pub use counters::Counters;
use leave::Leaving;
use lock::{Lock, Queued};
use ops::Op;
use outbox::Outbox;
pub use settled::Unsettled;
use timers::{Timer, Timers};

/// Up members each discovery round's hello goes to (besides every member
/// not up).
const DISCOVERY_FANOUT: usize = 3;

/// A hub node: the deterministic core that drivers (hub-net over TCP,
/// hub-testkit in memory, your own) run.
///
/// # The contract
///
/// Methods come in four kinds (quinn-proto style):
///
/// 1. **Inputs**, `handle_*` and [`Node::add_peer`]: a peer's message
///    ([`Node::handle_message`], from an authenticated peer), a local API
///    call ([`Node::handle_command`], answered by an [`Output::Reply`] with
///    its request id), reports of the local supervisor
///    ([`Node::handle_local`], [`Node::handle_locals`]), and timer expiry
///    ([`Node::handle_timeout`]). Each takes `now`, a [`Time`] that never
///    goes backwards.
/// 2. **[`Node::poll_output`]**: after every input, call it until it
///    returns `None` and perform each action in order (send, spawn, stop,
///    reply, event...). Actions left undrained are not lost, but their
///    order relative to the next input's is then yours to keep.
/// 3. **[`Node::poll_timeout`]**: after draining, the next deadline; call
///    [`Node::handle_timeout`] at (or after) it. Calling it early is
///    harmless; the deadline changes after every input.
/// 4. **Getters** answer queries from local state at once (`child_lookup`,
///    `which_children`, `registry`, `is_settled`, `unsettled`...); they
///    change nothing.
///
/// The node never reads a clock, spawns a task or does I/O, and draws
/// randomness only from its seeded RNG ([`Config::rng_seed`]), so a run
/// is a pure function of its inputs. Each input runs in a `debug` span
/// named for it (`message{peer}`, `command`, `local`, `timeout`); a driver
/// wraps them in a span naming the node (hub-net's is `node{id}`).
///
/// The driver loop, as hub-net runs it:
///
/// ```text
/// loop {
///     select! {
///         message from peer p  => node.handle_message(now, &p, m),
///         API call             => node.handle_command(now, request, cmd),
///         supervisor reports   => node.handle_locals(now, batch),
///         sleep until node.poll_timeout() => node.handle_timeout(now),
///     }
///     while let Some(out) = node.poll_output() { perform(out) }
/// }
/// ```
///
/// The [crate docs](crate) have the same loop as a runnable example.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    me: NodeId,
    strategies: Strategies,
    rng: ChaCha8Rng,
    membership: Membership,
    ring: Ring,
    registry: Registry,
    out: VecDeque<Output>,
    outbox: Outbox,
    children: Children,
    ops: BTreeMap<u64, Op>,
    next_seq: u64,
    lock: Option<Lock>,
    queue: VecDeque<Queued>,
    partitioned: bool,
    leaving: Option<Leaving>,
    left: bool,
    timers: Timers,
    /// Discovery rounds so far: which up members this round's hellos go to.
    discover_round: usize,
    /// Time of the input being handled (inputs carry it; the node never
    /// reads a clock).
    now: Time,
    /// Counts ring changes (a replica that started across one may be
    /// missing on a new owner).
    ring_epoch: u64,
    /// Decommissions of other nodes this node waits on.
    decommissions: Vec<decommission::Pending>,
    /// Finished starts waiting for registry acknowledgements, by query.
    ack_waits: BTreeMap<u64, acks::AckWait>,
    /// Peers' acknowledgement queries this registry cannot answer yet.
    hold_watches: BTreeMap<(NodeId, u64), acks::HoldWatch>,
    /// Latest crash-recovery snapshots of children run elsewhere.
    snapshots: BTreeMap<ChildId, snapshots::Stored>,
    /// Strict single-instance mode's grants and leases.
    strict: Option<strict::StrictState>,
    /// Peers refused for running another mode, with the incarnation whose
    /// hello said so.
    mismatched: BTreeMap<NodeId, crate::id::Incarnation>,
    /// Each peer's own slice clock, as its latest heartbeat said (see
    /// [`Node::registry_caught_up`]).
    peer_clocks: BTreeMap<NodeId, crate::registry::Version>,
    /// Some peer has been in this node's ring since it started.
    met_peers: bool,
    counters: Counters,
}

impl Node {
    /// A node alone in its cluster. Peers are added with
    /// [`Node::add_peer`] (seeds) or learned from them.
    pub fn new(cfg: Config, strategies: Strategies, now: Time) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if let MigrationMode::StartThenStop {
            child_migration_timeout,
            ..
        } = strategies.migration
        {
            if child_migration_timeout.is_zero() {
                return Err(ConfigError::Timing(
                    "child_migration_timeout must be positive",
                ));
            }
            if cfg.strict.is_some() {
                return Err(ConfigError::Strict(
                    "start-then-stop migration runs two copies; use StopThenStart",
                ));
            }
        }
        if cfg.strict.is_some() && strategies.redundancy.replicas(usize::MAX) > 1 {
            return Err(ConfigError::Strict(
                "redundancy runs several copies by design",
            ));
        }
        let me = cfg.node_id.clone();
        let mut strategies = strategies;
        let load_interval = strategies.distribution.load_reports().map(|l| l.interval());
        let mut ring = Ring::new(strategies.distribution.vnodes(), [me.clone()]);
        ring.set_tags(&me, cfg.tags.clone());
        let sync_interval = strategies.sync.sync_interval();
        let strict = cfg.strict.map(|s| strict::StrictState::new(s, now));
        let mut node = Node {
            rng: ChaCha8Rng::seed_from_u64(cfg.rng_seed),
            membership: Membership::new(cfg.info(), cfg.timings()),
            timers: Timers::new([
                (Timer::Heartbeat, Some((now, cfg.heartbeat_interval))),
                (
                    Timer::Discover,
                    Some((now + cfg.discover_interval, cfg.discover_interval)),
                ),
                (Timer::Sync, Some((now + sync_interval, sync_interval))),
                (Timer::Load, load_interval.map(|d| (now + d, d))),
            ]),
            discover_round: 0,
            me,
            cfg,
            strategies,
            ring,
            registry: Registry::new(),
            out: VecDeque::new(),
            outbox: Outbox::default(),
            children: Children::default(),
            ops: BTreeMap::new(),
            next_seq: 0,
            lock: None,
            queue: VecDeque::new(),
            partitioned: false,
            leaving: None,
            left: false,
            now,
            ring_epoch: 0,
            decommissions: Vec::new(),
            ack_waits: BTreeMap::new(),
            hold_watches: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            strict,
            mismatched: BTreeMap::new(),
            peer_clocks: BTreeMap::new(),
            met_peers: false,
            counters: Counters::default(),
        };
        if node.strategies.partition.check_at_start() {
            node.check_quorum(now);
        }
        Ok(node)
    }

    // ----- getters -------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.me
    }

    /// This node's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The registry replica.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current ring (members up or suspect, self included).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Other members and their status.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.membership.members()
    }

    /// Ids of the nodes in the ring, self included, sorted.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.ring.nodes().to_vec()
    }

    /// Where this node's strategies place `spec` in the current ring,
    /// primary first.
    pub fn placement(&self, spec: &ChildSpec) -> Vec<NodeId> {
        self.owners(&self.ring, spec)
    }

    /// Where `id` runs, from the local registry: `(node, handle)` pairs.
    pub fn child_lookup(&self, id: &str) -> Vec<(NodeId, Handle)> {
        self.registry.lookup(id)
    }

    /// `(id, handle)` of the children running on this node, sorted.
    pub fn local_children(&self) -> Vec<(ChildId, Handle)> {
        self.children.running()
    }

    /// Children per node (`global`), or only this node's, from the registry.
    pub fn which_children(&self, global: bool) -> BTreeMap<NodeId, Vec<(ChildId, Handle)>> {
        let mut out: BTreeMap<NodeId, Vec<(ChildId, Handle)>> = BTreeMap::new();
        for (id, holders) in self.registry.iter() {
            for (n, h) in holders {
                if global || *n == self.me {
                    out.entry(n.clone()).or_default().push((id.clone(), *h));
                }
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// Children this node knows of that run nowhere yet: orphans waiting
    /// for an owner (e.g. for a node with the tags they require, or for
    /// strict-mode grants) and children stopped while quorum is lost,
    /// sorted. They start as soon as they can; a lookup finds no holder
    /// for them meanwhile.
    pub fn waiting_children(&self) -> Vec<ChildId> {
        self.children.waiting(&self.registry)
    }

    /// Whether `id` is one of [`Node::waiting_children`].
    pub fn is_waiting(&self, id: &str) -> bool {
        self.children.is_waiting(id, &self.registry)
    }

    /// Children whose metadata has `key == value`, sorted.
    pub fn match_metadata(&self, key: &str, value: &str) -> Vec<ChildId> {
        self.registry.match_metadata(key, value)
    }

    /// Number of distinct children registered in the hub.
    pub fn count_children(&self) -> usize {
        self.registry.len()
    }

    /// The role of `id`'s replica on this node, if it runs here.
    pub fn local_role(&self, id: &str) -> Option<Role> {
        self.children.local.get(id).and_then(|l| l.role)
    }

    /// The holder a call to `id` should go to: the first node of its
    /// placement that runs it (the active replica), else any holder.
    pub fn active_holder(&self, id: &str) -> Option<NodeId> {
        let holders = self.registry.lookup_ref(id);
        let first = holders.first().map(|(n, _)| n.clone());
        if holders.len() < 2 {
            return first;
        }
        let spec = self.registry.spec(id)?;
        self.owners(&self.ring, spec)
            .into_iter()
            .find(|o| holders.iter().any(|(n, _)| n == o))
            .or(first)
    }

    /// Whether this node is redistributing (new commands are queued).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Whether this node lost quorum.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Whether this node is draining: a graceful leave or a decommission
    /// is handing its children over.
    pub fn is_leaving(&self) -> bool {
        self.leaving.is_some()
    }

    /// False once the node has left the cluster.
    pub fn is_alive(&self) -> bool {
        !self.left
    }

    /// Children waiting for a node to restart them (their holder died).
    pub fn orphan_count(&self) -> usize {
        self.children.orphans.len()
    }

    // ----- inputs --------------------------------------------------------

    /// The driver connected to (or was told of) a peer, e.g. a seed whose
    /// identity the transport handshake revealed. The node greets it.
    pub fn add_peer(&mut self, now: Time, info: NodeInfo) {
        if self.left || info.id == self.me {
            return;
        }
        self.now = now;
        self.membership.learn(now, &info);
        self.send_hello(&info.id);
        self.finish();
    }

    /// A protocol message from `from` (authenticated by the transport).
    pub fn handle_message(&mut self, now: Time, from: &NodeId, message: Message) {
        if self.left || *from == self.me {
            return;
        }
        self.now = now;
        let span = tracing::debug_span!("message", peer = %from);
        let _g = span.enter();
        self.dispatch_message(now, from, message);
        self.finish();
    }

    /// A local API call; the answer comes as [`Output::Reply`] with
    /// `request` (at once, or after the results when awaited).
    pub fn handle_command(&mut self, now: Time, request: RequestId, command: Command) {
        self.now = now;
        let span = tracing::debug_span!("command");
        let _g = span.enter();
        self.dispatch_command(now, request, command);
        self.finish();
    }

    /// A report from the local supervisor about one of this node's children.
    pub fn handle_local(&mut self, now: Time, report: LocalReport) {
        self.handle_locals(now, [report]);
    }

    /// Several reports at once (e.g. everything the supervisor queued since
    /// the driver last woke): one registry delta and one result message
    /// per peer for the whole batch.
    pub fn handle_locals(&mut self, now: Time, reports: impl IntoIterator<Item = LocalReport>) {
        if self.left {
            return;
        }
        self.now = now;
        let span = tracing::debug_span!("local");
        let _g = span.enter();
        for report in reports {
            self.local_report(now, report);
        }
        self.after_local_change(now);
        self.finish();
    }

    // ----- shared helpers -------------------------------------------------

    fn send(&mut self, to: NodeId, message: Message) {
        self.out.push_back(Output::Send { to, message });
    }

    fn emit(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.out.push_back(Output::Reply { request, reply });
    }

    fn send_hello(&mut self, to: &NodeId) {
        let members = self
            .membership
            .members()
            .filter(|m| m.status.in_ring())
            .map(|m| m.info.clone())
            .collect();
        let msg = Message::Hello {
            info: self.cfg.info(),
            members,
            losses: self.membership.losses(self.now),
        };
        self.send(to.clone(), msg);
    }

    /// Members worth a heartbeat or hello: all but those that left.
    fn contactable(&self) -> Vec<NodeId> {
        self.membership
            .members()
            .filter(|m| m.status != Status::Left)
            .map(|m| m.info.id.clone())
            .collect()
    }

    /// Who this discovery round's hellos go to: every member not up (to
    /// reach nodes known second-hand, and to heal partitions), and
    /// [`DISCOVERY_FANOUT`] of the up members, in turn. A hello lists
    /// every member, so sending it to all up members each round would cost
    /// each node O(N²) bytes per round; up members are heard from every
    /// heartbeat anyway, and the turns reach each within ⌈(N−1)/3⌉ rounds.
    fn discovery_targets(&mut self) -> Vec<NodeId> {
        let (up, others): (Vec<_>, Vec<_>) = self
            .membership
            .members()
            .filter(|m| m.status != Status::Left && m.info.id != self.me)
            .partition(|m| m.status == Status::Up);
        let mut targets: Vec<NodeId> = others.into_iter().map(|m| m.info.id.clone()).collect();
        if !up.is_empty() {
            let start = self.discover_round * DISCOVERY_FANOUT;
            targets.extend(
                (0..DISCOVERY_FANOUT.min(up.len()))
                    .map(|k| up[(start + k) % up.len()].info.id.clone()),
            );
        }
        self.discover_round = self.discover_round.wrapping_add(1);
        targets
    }

    fn replicas(&self) -> usize {
        self.strategies.redundancy.replicas(self.ring.len()).max(1)
    }

    /// The spec every node judges `id` by: the registry's (its lowest
    /// holder's), else the local one. Copies started apart may differ.
    fn agreed_spec<'a>(&'a self, id: &ChildId, local: &'a ChildSpec) -> &'a ChildSpec {
        self.registry.spec(id.as_str()).map_or(local, |s| &**s)
    }

    fn owners(&self, ring: &Ring, spec: &ChildSpec) -> Vec<NodeId> {
        self.strategies
            .distribution
            .owners(ring, spec, self.replicas())
    }

    /// Where `spec` goes without this node: its first owner in the current
    /// ring minus self (a leaving node's target, recomputed as members
    /// come and go).
    fn successor(&self, spec: &ChildSpec) -> Option<NodeId> {
        self.successor_in(&self.ring_without_me(), spec)
    }

    /// The current ring minus self: build it once when asking
    /// [`Node::successor_in`] for many children.
    fn ring_without_me(&self) -> Ring {
        let mut ring = self.ring.clone();
        ring.remove(&self.me);
        ring
    }

    /// [`Node::successor`] against a ring from [`Node::ring_without_me`].
    /// When no remaining node satisfies the child's constraints, the first
    /// remaining node keeps it, waiting, rather than it being lost.
    fn successor_in(&self, without_me: &Ring, spec: &ChildSpec) -> Option<NodeId> {
        self.strategies
            .distribution
            .owners(without_me, spec, 1)
            .into_iter()
            .next()
            .or_else(|| without_me.nodes().first().cloned())
    }

    /// Heartbeat ticks in one `suspect_after`: how often unanswered
    /// requests and handoffs are re-sent.
    fn ticks_per_suspect(&self) -> u32 {
        (self.cfg.suspect_after.as_millis() / self.cfg.heartbeat_interval.as_millis().max(1)).max(1)
            as u32
    }

    fn next_op(&mut self) -> OpRef {
        self.next_seq += 1;
        OpRef {
            origin: self.me.clone(),
            seq: self.next_seq,
        }
    }
}

/// Ids of a batch, deduplicated in order, and the repeats.
fn dedup_ids<'a>(ids: impl Iterator<Item = &'a ChildId>) -> (Vec<ChildId>, Vec<ChildId>) {
    let mut seen = BTreeSet::new();
    let mut unique = Vec::new();
    let mut repeats = Vec::new();
    for id in ids {
        if seen.insert(id.clone()) {
            unique.push(id.clone());
        } else {
            repeats.push(id.clone());
        }
    }
    (unique, repeats)
}
