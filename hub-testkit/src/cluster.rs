//! The in-memory cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use hub_core::{
    ChildId, ChildSpec, Command, Config, Event, ExitReason, LocalReport, Node, NodeId, NodeInfo,
    Output, Reply, RequestId, StartOptions, StartOutcome, StopOptions, StopOutcome, Time,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::failure::Failure;
use crate::network::{NetConfig, Network};
use crate::options::ClusterOptions;
use crate::runtime::FakeRuntime;

#[derive(Debug)]
struct SimNode {
    id: NodeId,
    node: Option<Node>,
    runtime: FakeRuntime,
    incarnation: u64,
}

/// A deterministic in-memory cluster: same options and calls, same run.
pub struct Cluster {
    opts: ClusterOptions,
    now: Time,
    rng: ChaCha8Rng,
    net: Network,
    nodes: Vec<SimNode>,
    replies: BTreeMap<RequestId, Reply>,
    events: Vec<(Time, NodeId, Event)>,
    next_request: u64,
    steps: u64,
    errors: Vec<String>,
    /// Delayed runtime reports: (due, seq) -> (node, incarnation, report).
    reports: BTreeMap<(Time, u64), (usize, u64, LocalReport)>,
    report_seq: u64,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// Longest run of steps without virtual time advancing.
const STEP_LIMIT: u64 = 5_000_000;

impl Cluster {
    /// Starts the nodes and runs until they formed one quiet cluster.
    pub fn formed(opts: ClusterOptions) -> Result<Self, Failure> {
        let mut c = Cluster::new(opts);
        if c.settle() {
            Ok(c)
        } else {
            Err(Failure::NotQuiet(c.unquiet_reason().unwrap_or_default()))
        }
    }

    /// Starts the nodes, each seeded with the first live ones. Call
    /// [`Cluster::settle`] to let them find each other.
    pub fn new(opts: ClusterOptions) -> Self {
        let mut c = Cluster {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            net: Network::new(opts.net),
            now: Time::ZERO,
            nodes: Vec::new(),
            replies: BTreeMap::new(),
            events: Vec::new(),
            next_request: 0,
            steps: 0,
            errors: Vec::new(),
            reports: BTreeMap::new(),
            report_seq: 0,
            opts,
        };
        for _ in 0..c.opts.nodes {
            c.add_node();
        }
        c
    }

    fn make_node(&self, index: usize, incarnation: u64) -> Node {
        let id = NodeId::new(format!("n{index}"));
        let mut cfg = Config::new("testkit", id);
        cfg.addr = format!("mem://n{index}");
        cfg.incarnation = incarnation;
        cfg.rng_seed = self.opts.seed ^ ((index as u64) << 32) ^ incarnation;
        if let Some(f) = &self.opts.configure {
            f(&mut cfg);
        }
        match Node::new(cfg, (self.opts.strategies)(), self.now) {
            Ok(n) => n,
            Err(e) => panic!("testkit node config rejected: {e}"),
        }
    }

    /// Adds and starts a node (seeded with the first live nodes, see
    /// [`ClusterOptions::seeds`]); returns its index.
    pub fn add_node(&mut self) -> usize {
        let index = self.nodes.len();
        let node = self.make_node(index, 1);
        self.nodes.push(SimNode {
            id: node.id().clone(),
            node: Some(node),
            runtime: FakeRuntime::new(self.opts.kinds.iter().cloned()),
            incarnation: 1,
        });
        self.introduce(index);
        index
    }

    fn introduce(&mut self, index: usize) {
        let seeds: Vec<NodeInfo> = (0..self.nodes.len())
            .filter(|&j| j != index)
            .filter_map(|j| self.nodes[j].node.as_ref())
            .filter(|n| n.is_alive())
            .map(|n| n.config().info())
            .take(self.opts.seeds)
            .collect();
        let now = self.now;
        if let Some(n) = self.nodes[index].node.as_mut() {
            for s in seeds {
                n.add_peer(now, s);
            }
        }
        self.drain(index);
    }

    // ----- accessors ------------------------------------------------------

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Number of nodes ever added (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the cluster has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Id of node `i`.
    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id.clone()
    }

    /// Index of the node with id `id`.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == *id)
    }

    /// Node `i`, or `None` while it is crashed.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(|n| n.node.as_ref())
    }

    /// Node `i`'s process runtime.
    pub fn runtime(&self, i: usize) -> &FakeRuntime {
        &self.nodes[i].runtime
    }

    /// Node `i`'s process runtime, to bump counters or refuse starts.
    pub fn runtime_mut(&mut self, i: usize) -> &mut FakeRuntime {
        &mut self.nodes[i].runtime
    }

    /// Indices of live nodes (not crashed, not left).
    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.node(i).is_some_and(Node::is_alive))
            .collect()
    }

    /// Every event so far: `(time, node, event)`.
    pub fn events(&self) -> &[(Time, NodeId, Event)] {
        &self.events
    }

    /// One line per event, for diffing two runs.
    pub fn trace(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(t, n, e)| format!("{} {n} {e:?}", t.as_millis()))
            .collect()
    }

    /// Messages sent and dropped so far.
    pub fn message_counts(&self) -> (u64, u64) {
        (self.net.sent, self.net.dropped)
    }

    /// Messages in flight right now.
    pub fn in_flight(&self) -> usize {
        self.net.in_flight()
    }

    /// Problems seen while running (codec failures): must stay empty.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Groups of live nodes that can reach each other both ways.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let alive = self.alive();
        let mut seen = BTreeSet::new();
        let mut groups = Vec::new();
        for &i in &alive {
            if !seen.insert(i) {
                continue;
            }
            let mut group = vec![i];
            let mut k = 0;
            while k < group.len() {
                let a = group[k];
                for &b in &alive {
                    if !seen.contains(&b) && self.linked(a, b) {
                        seen.insert(b);
                        group.push(b);
                    }
                }
                k += 1;
            }
            group.sort();
            groups.push(group);
        }
        groups
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a].id, &self.nodes[b].id);
        !self.net.is_blocked(x, y) && !self.net.is_blocked(y, x)
    }

    // ----- faults -----------------------------------------------------------

    /// Kills node `i` (kill -9): its processes die, in-flight messages to it
    /// are lost.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.nodes[i].runtime.kill_all();
    }

    /// Restarts a crashed node with the same id and a higher incarnation.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].node.is_some() {
            return;
        }
        self.nodes[i].incarnation += 1;
        let node = self.make_node(i, self.nodes[i].incarnation);
        self.nodes[i].node = Some(node);
        self.introduce(i);
    }

    /// Cuts every link between different groups, both ways.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        for (gi, ga) in groups.iter().enumerate() {
            for gb in groups.iter().skip(gi + 1) {
                for &a in ga.iter() {
                    for &b in gb.iter() {
                        let (x, y) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
                        self.net.block(&x, &y);
                        self.net.block(&y, &x);
                    }
                }
            }
        }
    }

    /// Cuts the link from `a` to `b` only (asymmetric partition).
    pub fn block(&mut self, a: usize, b: usize) {
        let (x, y) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
        self.net.block(&x, &y);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.net.unblock_all();
    }

    /// Changes the network behaviour from now on.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net.cfg = net;
    }

    /// Delivers `message` to node `to` as if node `from` had sent it (for
    /// hostile or stale inputs), then performs its outputs.
    pub fn deliver(&mut self, from: usize, to: usize, message: hub_core::Message) {
        let now = self.now;
        let from = self.nodes[from].id.clone();
        if let Some(n) = self.nodes[to].node.as_mut() {
            n.handle_message(now, &from, message);
        }
        self.drain(to);
    }

    /// Makes a child on node `i` exit on its own (its supervisor gave up).
    pub fn exit_child(&mut self, i: usize, id: &ChildId, reason: ExitReason) {
        if let Some(report) = self.nodes[i].runtime.exit(id, reason) {
            self.local(i, report);
        }
    }

    /// Has node `i`'s runtime snapshot child `id` for crash recovery (what
    /// a driver does per the kind's snapshot policy) and reports it.
    /// Returns the counter it captured, `None` if `id` does not run there.
    pub fn snapshot_child(&mut self, i: usize, id: &ChildId) -> Option<u64> {
        let (counter, report) = self.nodes[i].runtime.checkpoint(id)?;
        self.local(i, report);
        Some(counter)
    }

    fn local(&mut self, i: usize, report: LocalReport) {
        let now = self.now;
        if let Some(n) = self.nodes[i].node.as_mut() {
            n.handle_local(now, report);
        }
        self.drain(i);
    }

    // ----- commands ---------------------------------------------------------

    /// Gives node `i` a command; the reply is collected when it comes.
    pub fn command(&mut self, i: usize, command: Command) -> Result<RequestId, Failure> {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        let now = self.now;
        let node = self.nodes[i].node.as_mut().ok_or(Failure::NodeDown(i))?;
        node.handle_command(now, request, command);
        self.drain(i);
        Ok(request)
    }

    /// Runs until the reply to `request` arrives (at most `within`).
    pub fn wait_reply(&mut self, request: RequestId, within: Duration) -> Result<Reply, Failure> {
        self.run_until(within, |c| c.replies.contains_key(&request))?;
        self.replies.remove(&request).ok_or(Failure::NoReply)
    }

    /// Starts children from node `i` and waits for the reply.
    pub fn start(
        &mut self,
        i: usize,
        specs: Vec<ChildSpec>,
        opts: StartOptions,
    ) -> Result<StartOutcome, Failure> {
        let r = self.command(i, Command::StartChildren { specs, opts })?;
        match self.wait_reply(r, opts.timeout + Duration::from_secs(120))? {
            Reply::Started(o) => Ok(o),
            Reply::StartInitiated => Ok(StartOutcome::default()),
            Reply::Error(e) => Err(Failure::Refused(e)),
            other => Err(Failure::Unexpected(other)),
        }
    }

    /// Stops children from node `i` and waits for the reply.
    pub fn stop(
        &mut self,
        i: usize,
        ids: Vec<ChildId>,
        opts: StopOptions,
    ) -> Result<StopOutcome, Failure> {
        let r = self.command(i, Command::StopChildren { ids, opts })?;
        match self.wait_reply(r, opts.timeout + Duration::from_secs(120))? {
            Reply::Stopped(o) => Ok(o),
            Reply::StopInitiated => Ok(StopOutcome::default()),
            Reply::Error(e) => Err(Failure::Refused(e)),
            other => Err(Failure::Unexpected(other)),
        }
    }

    /// Node `i` leaves gracefully; waits until it has left.
    pub fn leave(&mut self, i: usize) -> Result<(), Failure> {
        let r = self.command(i, Command::Leave)?;
        match self.wait_reply(r, Duration::from_secs(300))? {
            Reply::Left => Ok(()),
            Reply::Error(e) => Err(Failure::Refused(e)),
            other => Err(Failure::Unexpected(other)),
        }
    }

    // ----- running ------------------------------------------------------------

    /// Runs `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Failure> {
        let end = self.now + d;
        while self.step(end)? {}
        self.now = self.now.max(end);
        Ok(())
    }

    /// Runs until `pred` holds (checked every 10 ms of virtual time and
    /// after each step once due) or `within` passes. Returns whether it held.
    pub fn run_until(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, Failure> {
        let end = self.now + within;
        let mut next_check = self.now;
        loop {
            if self.now >= next_check {
                if pred(self) {
                    return Ok(true);
                }
                next_check = self.now + Duration::from_millis(10);
            }
            if !self.step(end.min(next_check))? {
                if next_check > end {
                    return Ok(pred(self));
                }
                self.now = next_check;
            }
        }
    }

    /// Runs until the cluster is quiet: no message in flight, and within
    /// every connected group each node sees exactly the group, has no migration in flight, and holds
    /// the same registry. Returns false if that did not happen within 10
    /// virtual minutes.
    pub fn settle(&mut self) -> bool {
        matches!(
            self.run_until(Duration::from_secs(600), Cluster::is_quiet),
            Ok(true)
        )
    }

    /// See [`Cluster::settle`].
    pub fn is_quiet(&self) -> bool {
        self.unquiet_reason().is_none()
    }

    /// Why the cluster is not quiet (`None` when it is): the first unmet
    /// condition of [`Cluster::settle`], for failure messages.
    pub fn unquiet_reason(&self) -> Option<String> {
        if self.net.in_flight() > 0 || !self.reports.is_empty() {
            return Some(format!(
                "{} messages and {} process reports in flight at {}, e.g. {:?}",
                self.net.in_flight(),
                self.reports.len(),
                self.now.as_millis(),
                self.net.describe(4)
            ));
        }
        for group in self.components() {
            let mut ids: Vec<NodeId> = group.iter().map(|&i| self.nodes[i].id.clone()).collect();
            ids.sort();
            let mut reference: Option<(usize, _)> = None;
            for &i in &group {
                let n = self.node(i)?;
                if !n.is_settled() {
                    return Some(format!("{} is not settled: {:?}", n.id(), n.unsettled()));
                }
                if n.nodes() != ids {
                    return Some(format!(
                        "{} sees {:?}, its group is {ids:?}",
                        n.id(),
                        n.nodes()
                    ));
                }
                let digest = (n.registry().digest(), n.registry().len());
                match &reference {
                    None => reference = Some((i, digest)),
                    Some((j, r)) if *r != digest => {
                        return Some(format!(
                            "registries of {} and {} differ: {:?} vs {:?}",
                            self.id(*j),
                            n.id(),
                            r,
                            digest
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    /// One step: deliver what is due and fire due timers, at the earliest
    /// time something happens (not after `limit`). False if nothing
    /// happens by `limit`.
    fn step(&mut self, limit: Time) -> Result<bool, Failure> {
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref().and_then(Node::poll_timeout))
            .min();
        let next_report = self.reports.keys().next().map(|(t, _)| *t);
        let Some(next) = [self.net.next_at(), next_timer, next_report]
            .into_iter()
            .flatten()
            .min()
        else {
            return Ok(false);
        };
        if next > limit {
            return Ok(false);
        }
        if next > self.now {
            self.now = next;
            self.steps = 0;
        }
        self.steps += 1;
        if self.steps > STEP_LIMIT {
            return Err(Failure::Livelock);
        }
        let now = self.now;
        while let Some(m) = self.net.pop_due(now) {
            let Some(i) = self.index_of(&m.to) else {
                continue;
            };
            let msg =
                match hub_core::protocol::decode(&m.bytes, hub_core::protocol::DEFAULT_MAX_FRAME) {
                    Ok(msg) => msg,
                    Err(e) => {
                        self.errors
                            .push(format!("decode {} -> {}: {e}", m.from, m.to));
                        continue;
                    }
                };
            if let Some(n) = self.nodes[i].node.as_mut() {
                n.handle_message(now, &m.from, msg);
                self.drain(i);
            }
        }
        while let Some(entry) = self.reports.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (i, incarnation, report) = entry.remove();
            // Reports of a crashed incarnation died with it.
            if self.nodes[i].incarnation == incarnation {
                self.local(i, report);
            }
        }
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .node
                .as_ref()
                .and_then(Node::poll_timeout)
                .is_some_and(|t| t <= now);
            if due {
                if let Some(n) = self.nodes[i].node.as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(i);
            }
        }
        if let Some(e) = self.errors.first() {
            return Err(Failure::Codec(e.clone()));
        }
        Ok(true)
    }

    /// Performs node `i`'s outputs, feeding runtime reports back until none
    /// remain.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        let sim = &mut self.nodes[i];
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        loop {
            let mut reports = Vec::new();
            while let Some(out) = node.poll_output() {
                match out {
                    Output::Send { to, message } => {
                        if let Err(e) = self.net.send(&mut self.rng, now, &sim.id, &to, &message) {
                            self.errors.push(e);
                        }
                    }
                    Output::Spawn { spec, restore } => {
                        reports.push(sim.runtime.spawn(&spec, restore.as_ref()))
                    }
                    Output::Stop { id, reason } => {
                        reports.push(sim.runtime.stop(&id, reason.keeps_state()));
                    }
                    Output::RequestState { id } => reports.push(sim.runtime.snapshot(&id)),
                    Output::Resume { id } => sim.runtime.resume(&id),
                    // Roles are visible as RoleChanged events.
                    Output::Role { .. } => {}
                    Output::Reply { request, reply } => {
                        self.replies.insert(request, reply);
                    }
                    Output::Event(e) => self.events.push((now, sim.id.clone(), e)),
                }
            }
            if reports.is_empty() {
                break;
            }
            if self.opts.process_latency.is_zero() {
                node.handle_locals(now, reports);
            } else {
                let due = now + self.opts.process_latency;
                for r in reports {
                    self.report_seq += 1;
                    self.reports
                        .insert((due, self.report_seq), (i, sim.incarnation, r));
                }
                break;
            }
        }
    }
}
