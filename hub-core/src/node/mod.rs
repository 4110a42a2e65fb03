//! The node state machine; its contract is on [`Node`].

mod acks;
mod decommission;
mod handing;
mod load;
mod ops;
mod owner;
mod redistribute;
mod replicas;
mod settled;
mod snapshots;
mod strict;
mod sync;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing::{debug, trace};

use crate::command::{Command, Reply};
use crate::config::Config;
use crate::error::{CommandError, ConfigError};
use crate::event::{Direction, Event};
use crate::id::{ChildId, Handle, NodeId, RequestId};
use crate::membership::{Member, Membership, Status};
use crate::output::{LocalReport, Output};
use crate::protocol::{Handoff, Message, NodeInfo, OpRef, StartResults, StopResults};
use crate::registry::{Registry, Version};
use crate::ring::Ring;
use crate::spec::ChildSpec;
use crate::strategy::{MigrationMode, Role, Strategies};
use crate::time::Time;

use ops::Op;
pub use settled::Unsettled;

/// Why a local child is being started.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StartPurpose {
    /// A start request; answer these operations.
    Request(Vec<Waiter>),
    /// Its holder died; this node is its new owner.
    Orphan,
    /// Handed over by this node; acknowledge when running.
    Handoff(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiter {
    op: OpRef,
    /// The request arrived while the child was already starting: answer
    /// `AlreadyStarted` rather than success.
    duplicate: bool,
}

/// Why a local child is being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StopPurpose {
    Requested,
    Migrate(NodeId),
    Conflict,
    Partition,
    Shutdown,
    /// The old copy of a start-then-stop move: the new owner runs it.
    Retire(NodeId),
    /// Restart here from a newer crash-recovery snapshot.
    Recover(Bytes, u64),
    /// Strict mode: its lease ran out.
    Fence,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LocalState {
    Starting(StartPurpose),
    Running(Handle),
    Stopping {
        handle: Handle,
        purpose: StopPurpose,
        waiters: Vec<OpRef>,
    },
}

#[derive(Clone, Debug)]
struct Local {
    spec: Arc<ChildSpec>,
    state: LocalState,
    /// The start operation that created it here, so that a re-sent request
    /// of that operation gets its result again, not `AlreadyStarted`.
    started_by: Option<OpRef>,
    /// Its replica role here, once running.
    role: Option<Role>,
    /// `Node::ring_epoch` when it began starting here.
    epoch: u64,
    /// Its crash-recovery snapshots taken here.
    snapshot: snapshots::Own,
    /// Restarted from a snapshot with this number: reported once running.
    recovered: Option<u64>,
    /// Strict mode: its grants.
    hold: strict::Hold,
}

/// A child with no live holder: its node died or left without handing it
/// over. Every node keeps the spec until some node runs it again.
#[derive(Clone, Debug)]
struct Orphan {
    spec: Arc<ChildSpec>,
    /// Handed-over state it restarts from, if a handover carried one.
    state: Option<Bytes>,
    /// Owner it was last handed to (not resent until the next sync round).
    sent_to: Option<NodeId>,
    /// This node had the last copy (its own, or one it was handing over):
    /// another holder in the registry may be a stale row, so the orphan is
    /// not dropped for it; a duplicate, if any, is resolved like any other.
    responsible: bool,
    /// `state` is the crash-recovery snapshot with this number.
    recovered: Option<u64>,
    /// Snapshots taken of it so far (see [`Handoff::lineage`]).
    lineage: u64,
    /// Strict mode: a claim of it failed; not tried again before this.
    retry_at: Option<Time>,
}

impl Orphan {
    fn new(spec: Arc<ChildSpec>, state: Option<Bytes>, responsible: bool) -> Self {
        Orphan {
            spec,
            state,
            sent_to: None,
            responsible,
            recovered: None,
            lineage: 0,
            retry_at: None,
        }
    }
}

/// A child this node stopped and handed over; kept until acknowledged.
#[derive(Clone, Debug)]
struct Outbound {
    spec: Arc<ChildSpec>,
    /// Handed-over state, re-sent with every retry.
    state: Option<Bytes>,
    /// `state` is the crash-recovery snapshot with this number.
    recovered: Option<u64>,
    /// Snapshots taken of it so far (see [`Handoff::lineage`]).
    lineage: u64,
    to: NodeId,
    /// Heartbeat ticks since it was last sent.
    ticks: u32,
}

#[derive(Clone, Debug)]
struct Lock {
    until: Time,
    /// Membership changes whose redistribution runs under this lock.
    triggers: Vec<(Direction, NodeId)>,
}

#[derive(Clone, Debug)]
enum Queued {
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

#[derive(Clone, Debug)]
struct Leaving {
    /// The local `Leave` to answer; `None` when a peer decommissioned us.
    request: Option<RequestId>,
    deadline: Time,
    /// No other member was known when the leave began: the children wait
    /// here until one joins, or until this time
    /// ([`Config::successor_wait`]).
    awaiting_successor: Option<Time>,
    /// The node has waited for a successor once already; when it finds
    /// itself stranded again, it gives up at once.
    waited: bool,
}

#[derive(Clone, Copy, Debug)]
struct Timers {
    heartbeat: Time,
    discover: Time,
    sync: Time,
    /// Next load report (load-aware distribution only).
    load: Option<Time>,
}

/// Messages accumulated while handling one input and sent together when it
/// returns, so that a batch of 10,000 starts yields one delta and one
/// result message per peer instead of 10,000.
#[derive(Debug, Default)]
struct Outbox {
    /// Own slice changed since this clock.
    dirty_since: Option<Version>,
    start_results: BTreeMap<OpRef, StartResults>,
    stop_results: BTreeMap<OpRef, StopResults>,
    handoffs: BTreeMap<NodeId, Vec<Handoff>>,
    acks: BTreeMap<NodeId, Vec<ChildId>>,
    refusals: BTreeMap<NodeId, Vec<(ChildId, String)>>,
    /// Strict mode: per claim number, the peers asked and the children.
    claims: BTreeMap<u64, (Vec<NodeId>, Vec<ChildId>)>,
    /// The leave is complete: `Left` goes to these peers after everything
    /// else of this input, so no handoff or ack trails behind it.
    left_to: Vec<NodeId>,
}

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
    local: BTreeMap<ChildId, Local>,
    orphans: BTreeMap<ChildId, Orphan>,
    outbound: BTreeMap<ChildId, Outbound>,
    /// Running children being moved start-then-stop (HotSwap).
    handing: BTreeMap<ChildId, handing::Handing>,
    /// Specs stopped because quorum was lost; restarted when it returns.
    suspended: BTreeMap<ChildId, Arc<ChildSpec>>,
    ops: BTreeMap<u64, Op>,
    next_seq: u64,
    lock: Option<Lock>,
    queue: VecDeque<Queued>,
    partitioned: bool,
    leaving: Option<Leaving>,
    left: bool,
    timers: Timers,
    /// Time of the input being handled (inputs carry it; the node never
    /// reads a clock).
    now: Time,
    /// Counts ring changes (a replica that started across one may be
    /// missing on a new owner).
    ring_epoch: u64,
    /// Replicated children this node stopped on request, and when: repair
    /// offers for them are refused for two sync intervals, so that a stop
    /// racing a repair does not bring the child back.
    recently_stopped: BTreeMap<ChildId, Time>,
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
}

impl Node {
    /// A node alone in its cluster. Peers are added with
    /// [`Node::add_peer`] (seeds) or learned from them.
    pub fn new(cfg: Config, strategies: Strategies, now: Time) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if let MigrationMode::StartThenStop {
            child_migration_timeout,
            ..
        } = strategies.migration.mode()
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
        let mut ring = Ring::new(strategies.distribution.vnodes(), [me.clone()]);
        ring.set_tags(&me, cfg.tags.clone());
        let sync_interval = strategies.sync.sync_interval();
        let strict = cfg.strict.map(|s| strict::StrictState::new(s, now));
        let mut node = Node {
            rng: ChaCha8Rng::seed_from_u64(cfg.rng_seed),
            membership: Membership::new(cfg.info(), cfg.timings()),
            timers: Timers {
                heartbeat: now,
                discover: now + cfg.discover_interval,
                sync: now + sync_interval,
                load: strategies.distribution.load_interval().map(|d| now + d),
            },
            me,
            cfg,
            strategies,
            ring,
            registry: Registry::new(),
            out: VecDeque::new(),
            outbox: Outbox::default(),
            local: BTreeMap::new(),
            orphans: BTreeMap::new(),
            outbound: BTreeMap::new(),
            handing: BTreeMap::new(),
            suspended: BTreeMap::new(),
            ops: BTreeMap::new(),
            next_seq: 0,
            lock: None,
            queue: VecDeque::new(),
            partitioned: false,
            leaving: None,
            left: false,
            now,
            ring_epoch: 0,
            recently_stopped: BTreeMap::new(),
            decommissions: Vec::new(),
            ack_waits: BTreeMap::new(),
            hold_watches: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            strict,
            mismatched: BTreeMap::new(),
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
        self.local
            .iter()
            .filter_map(|(id, l)| match l.state {
                LocalState::Running(h) => Some((id.clone(), h)),
                _ => None,
            })
            .collect()
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
        let mut ids: Vec<ChildId> = self
            .orphans
            .keys()
            .chain(self.suspended.keys())
            .filter(|id| self.registry.lookup_ref(id.as_str()).is_empty())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether `id` is one of [`Node::waiting_children`].
    pub fn is_waiting(&self, id: &str) -> bool {
        (self.orphans.contains_key(id) || self.suspended.contains_key(id))
            && self.registry.lookup_ref(id).is_empty()
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
        self.local.get(id).and_then(|l| l.role)
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
        self.orphans.len()
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

    fn dispatch_message(&mut self, now: Time, from: &NodeId, message: Message) {
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
            Message::Heartbeat { lease, incarnation } => {
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
            Message::Load(permille) => self.strategies.distribution.record_load(from, permille),
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
                    self.strategies.distribution.set_scoreboard(board);
                }
            }
        }
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

    fn dispatch_command(&mut self, now: Time, request: RequestId, command: Command) {
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

    fn validate_command(command: &Command) -> Result<(), CommandError> {
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

    fn local_report(&mut self, now: Time, report: LocalReport) {
        match report {
            LocalReport::Started { id, handle } => self.on_started(id, handle),
            LocalReport::StartFailed { id, error } => self.on_start_failed(id, error),
            LocalReport::Restarted { id, handle } => self.on_restarted(id, handle),
            LocalReport::Exited { id, reason, state } => self.on_exited(now, id, reason, state),
            LocalReport::State { id, state } => self.on_state(id, state),
            LocalReport::Snapshot { id, state } => self.on_snapshot_taken(id, state),
        }
    }

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
                .load_interval()
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

    /// The next action: drain after every input.
    #[must_use = "every output is an action the driver must perform"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
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

    /// Queues `spec` (with `state`) for `to`; sent when the input ends.
    /// `recovered`: `state` is a crash-recovery snapshot with that number;
    /// `lineage`: snapshots taken of the child so far.
    fn queue_handoff(
        &mut self,
        to: NodeId,
        spec: &ChildSpec,
        state: Option<Bytes>,
        recovered: Option<u64>,
        lineage: u64,
    ) {
        self.outbox.handoffs.entry(to).or_default().push(Handoff {
            spec: spec.clone(),
            state,
            repair: false,
            recovered,
            lineage,
        });
    }

    /// Ends every input: sends what the outbox accumulated.
    fn finish(&mut self) {
        let me = self.me.clone();
        if let Some(since) = self.outbox.dirty_since.take() {
            let delta = self.registry.delta_since(&me, since);
            let peers = self.membership.ring_peers();
            let mut targets = self.strategies.sync.change_targets(&peers, &mut self.rng);
            // Read-your-writes: the node that asked for a start gets the
            // rows before the result (same connection, in order), so its
            // lookups see the child as soon as the awaited start returns,
            // whatever subset the sync strategy picked.
            for op in self.outbox.start_results.keys() {
                if op.origin != me && !targets.contains(&op.origin) {
                    targets.push(op.origin.clone());
                }
            }
            for to in targets {
                self.send(to, Message::Delta(delta.clone()));
            }
        }
        self.flush_claims();
        for (op, results) in std::mem::take(&mut self.outbox.start_results) {
            let to = op.origin.clone();
            self.send(to, Message::StartResult { op, results });
        }
        for (op, results) in std::mem::take(&mut self.outbox.stop_results) {
            let to = op.origin.clone();
            self.send(to, Message::StopResult { op, results });
        }
        let leaving = self.leaving.is_some() || !self.outbox.left_to.is_empty();
        for (to, children) in std::mem::take(&mut self.outbox.handoffs) {
            self.send(to, Message::Handoff { children, leaving });
        }
        for (to, ids) in std::mem::take(&mut self.outbox.acks) {
            self.send(to, Message::HandoffAck(ids));
        }
        for (to, refused) in std::mem::take(&mut self.outbox.refusals) {
            self.send(to, Message::HandoffRefused(refused));
        }
        for to in std::mem::take(&mut self.outbox.left_to) {
            self.send(to, Message::Left);
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
