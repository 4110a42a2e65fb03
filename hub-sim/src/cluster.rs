//! A simulated cluster of hub-net nodes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use hub_core::{ChildId, NodeId};
use hub_net::examples::{Counter, Echo};
use hub_net::{Hub, HubBuilder};

use crate::check::NodeView;

const PORT: u16 = 7000;

type Customize = Arc<dyn Fn(HubBuilder) -> HubBuilder + Send + Sync>;

/// How to build a [`SimCluster`].
#[derive(Clone)]
pub struct SimOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Hub id.
    pub hub_id: String,
    /// Failure detection: heartbeat period (suspect after 4, down after 8).
    pub heartbeat: Duration,
    /// Clock rate per machine index (default 1.0 for all): a skewed clock
    /// runs its node's timers fast or slow against everyone else's.
    pub clock_rates: Vec<f64>,
    /// Node tags per machine index (placement affinity).
    pub tags: Vec<Vec<(String, String)>>,
    /// Share of the frames every node drops on open connections (see
    /// `HubBuilder::frame_loss`; 0 by default).
    pub frame_loss: f64,
    customize: Customize,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("nodes", &self.nodes)
            .field("hub_id", &self.hub_id)
            .field("heartbeat", &self.heartbeat)
            .field("clock_rates", &self.clock_rates)
            .finish_non_exhaustive()
    }
}

impl SimOptions {
    /// `nodes` nodes with 100 ms heartbeats, running the `counter` and
    /// `echo` kinds.
    pub fn new(nodes: usize) -> Self {
        SimOptions {
            nodes,
            hub_id: "sim".into(),
            heartbeat: Duration::from_millis(100),
            clock_rates: Vec::new(),
            tags: Vec::new(),
            frame_loss: 0.0,
            customize: Arc::new(|b| {
                b.register::<Counter>("counter")
                    .register::<Echo>("echo")
                    .register::<crate::Witness>("witness")
                    .register::<crate::Tally>("tally")
            }),
        }
    }

    /// Makes machine `i`'s clock run at `rate` (e.g. 1.2: 20% fast).
    pub fn clock_rate(mut self, i: usize, rate: f64) -> Self {
        if self.clock_rates.len() <= i {
            self.clock_rates.resize(i + 1, 1.0);
        }
        self.clock_rates[i] = rate;
        self
    }

    /// Every node drops this share of its frames on open connections
    /// (lost whole, the connection kept: what TCP never does).
    pub fn frame_loss(mut self, rate: f64) -> Self {
        self.frame_loss = rate;
        self
    }

    /// Tags machine `i`'s node with `key=value` (also after a restart).
    pub fn tag(mut self, i: usize, key: &str, value: &str) -> Self {
        if self.tags.len() <= i {
            self.tags.resize(i + 1, Vec::new());
        }
        self.tags[i].push((key.into(), value.into()));
        self
    }

    /// Adjusts every node's builder: register your own process kinds,
    /// strategies, limits. Applied after the defaults.
    pub fn customize(
        mut self,
        f: impl Fn(HubBuilder) -> HubBuilder + Send + Sync + 'static,
    ) -> Self {
        let before = self.customize.clone();
        self.customize = Arc::new(move |b| f(before(b)));
        self
    }
}

struct SimNode {
    handle: NodeHandle,
    hub: Arc<Mutex<Option<Hub>>>,
    alive: bool,
    paused: bool,
}

/// Longest the simulation waits on one node's API (a stalled node must not
/// stall the scenario).
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(5);

/// One line per event of every node, in simulated-time order: what a
/// determinism check compares.
pub type Trace = Arc<Mutex<Vec<String>>>;

/// N simulated machines, each running one hub node on `10.0.0.i:7000`.
pub struct SimCluster {
    nodes: Vec<SimNode>,
    opts: SimOptions,
    trace: Trace,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8))
}

impl SimCluster {
    /// Creates the machines; each starts its node, seeded with every other
    /// machine.
    pub fn new(opts: SimOptions) -> Self {
        let mut c = SimCluster {
            nodes: Vec::new(),
            opts,
            trace: Arc::new(Mutex::new(Vec::new())),
        };
        for i in 0..c.opts.nodes {
            c.add_node_at(i);
        }
        c
    }

    fn add_node_at(&mut self, i: usize) {
        let slot: Arc<Mutex<Option<Hub>>> = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let opts = self.opts.clone();
        let trace = self.trace.clone();
        // A static member list: every machine created so far, and the
        // ones the cluster starts with (their seed tasks retry until up).
        let seeds: Vec<String> = (0..self.opts.nodes.max(i + 1))
            .filter(|&j| j != i)
            .map(|j| SocketAddr::new(ip(j), PORT).to_string())
            .collect();
        // `init` runs again on restart: the node comes back with the same id.
        let handle = Handle::current()
            .create_node()
            .name(format!("n{i}"))
            .ip(ip(i))
            .init(move || {
                let s = s.clone();
                let opts = opts.clone();
                let seeds = seeds.clone();
                let trace = trace.clone();
                async move {
                    let hb = opts.heartbeat;
                    let rate = opts.clock_rates.get(i).copied().unwrap_or(1.0);
                    let b = Hub::builder(opts.hub_id.clone())
                        .node_id(format!("n{i}"))
                        .listen(SocketAddr::new(ip(i), PORT).to_string())
                        .cookie("sim-cookie")
                        .clock_rate(rate)
                        .frame_loss(opts.frame_loss);
                    let mut b = b;
                    for (k, v) in opts.tags.get(i).into_iter().flatten() {
                        b = b.tag(k.as_str(), v.as_str());
                    }
                    let mut b = (opts.customize)(b).configure(move |c| {
                        c.heartbeat_interval = hb;
                        c.suspect_after = hb * 4;
                        c.down_after = hb * 8;
                        c.discover_interval = hb * 20;
                    });
                    for seed in seeds {
                        b = b.seed(seed);
                    }
                    let hub = match b.start().await {
                        Ok(hub) => hub,
                        Err(e) => panic!("node n{i} failed to start: {e}"),
                    };
                    let mut events = hub.subscribe();
                    *s.lock().unwrap_or_else(|e| e.into_inner()) = Some(hub);
                    let t0 = tokio::time::Instant::now();
                    while let Ok(e) = events.recv().await {
                        let line = format!("{:>8} n{i} {:?}", t0.elapsed().as_millis(), e);
                        trace.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    }
                    std::future::pending::<()>().await;
                }
            })
            .build();
        let node = SimNode {
            handle,
            hub: slot,
            alive: true,
            paused: false,
        };
        if i < self.nodes.len() {
            self.nodes[i] = node;
        } else {
            self.nodes.push(node);
        }
    }

    /// Adds a machine running a new node; returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        self.add_node_at(i);
        i
    }

    /// The event trace so far.
    pub fn trace(&self) -> Vec<String> {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of machines (dead ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there is no machine.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s hub handle, once started and while alive and not paused.
    pub fn hub(&self, i: usize) -> Option<Hub> {
        let n = self.nodes.get(i)?;
        if !n.alive || n.paused {
            return None;
        }
        n.hub.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Machine `i`'s simulator name, as `madsim::plugin::node()` gives it
    /// inside (what [`crate::Tally`] answers with).
    pub fn machine(&self, i: usize) -> String {
        self.nodes[i].handle.id().to_string()
    }

    /// Indices of live machines that are not paused.
    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && !self.nodes[i].paused)
            .collect()
    }

    /// kill -9 machine `i`.
    pub fn kill(&mut self, i: usize) {
        Handle::current().kill(self.nodes[i].handle.id());
        *self.nodes[i].hub.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.nodes[i].alive = false;
    }

    /// Restarts machine `i` (same node id, new incarnation).
    pub fn restart(&mut self, i: usize) {
        Handle::current().restart(self.nodes[i].handle.id());
        self.nodes[i].alive = true;
    }

    /// Cuts every link between the groups, both ways.
    pub fn partition(&self, groups: &[&[usize]]) {
        let net = NetSim::current();
        for (gi, a) in groups.iter().enumerate() {
            for b in groups.iter().skip(gi + 1) {
                for &x in a.iter() {
                    for &y in b.iter() {
                        let (x, y) = (self.nodes[x].handle.id(), self.nodes[y].handle.id());
                        net.clog_link(x, y);
                        net.clog_link(y, x);
                    }
                }
            }
        }
    }

    /// Graceful shutdown of node `i` (hands its children over).
    pub async fn shutdown(&mut self, i: usize) -> Result<(), String> {
        let hub = self.hub(i).ok_or("node not running")?;
        let r = match tokio::time::timeout(Duration::from_secs(120), hub.shutdown()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("shutdown did not finish".to_string()),
        };
        // The process exits after its leave: nothing of it lingers (its
        // listening socket included) when the machine restarts.
        Handle::current().kill(self.nodes[i].handle.id());
        self.nodes[i].alive = false;
        *self.nodes[i].hub.lock().unwrap_or_else(|e| e.into_inner()) = None;
        r
    }

    /// Graceful shutdowns of several nodes at once, as when several
    /// `hub node` processes get SIGTERM together: every leave starts at the
    /// same moment and each machine dies the moment its own leave returns,
    /// as its process would exit (nothing it left queued gets more time).
    pub async fn shutdown_together(&mut self, which: &[usize]) -> Vec<Result<(), String>> {
        let mut tasks = Vec::new();
        for &i in which {
            let hub = self.hub(i);
            let machine = self.nodes[i].handle.id();
            tasks.push(tokio::spawn(async move {
                let Some(hub) = hub else {
                    return Err("node not running".to_string());
                };
                let r = match tokio::time::timeout(Duration::from_secs(120), hub.shutdown()).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("shutdown did not finish".to_string()),
                };
                Handle::current().kill(machine);
                r
            }));
        }
        let mut out = Vec::new();
        for (t, &i) in tasks.into_iter().zip(which) {
            out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
            self.nodes[i].alive = false;
            *self.nodes[i].hub.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        out
    }

    /// Decommissions several nodes at once, each asked by its own
    /// survivor (`(target, asked_by)` pairs); each target's machine dies
    /// the moment its drain completes, as its process would exit.
    pub async fn decommission_together(
        &mut self,
        pairs: &[(usize, usize)],
    ) -> Vec<Result<(), String>> {
        let mut tasks = Vec::new();
        for &(target, by) in pairs {
            let hubs = (self.hub(target), self.hub(by));
            let machine = self.nodes[target].handle.id();
            tasks.push(tokio::spawn(async move {
                let (Some(target), Some(by)) = hubs else {
                    return Err("node not running".to_string());
                };
                let closed = {
                    let target = target.clone();
                    tokio::spawn(async move {
                        target.closed().await;
                        Handle::current().kill(machine);
                    })
                };
                let asked = tokio::time::timeout(
                    Duration::from_secs(120),
                    by.decommission(target.node_id().clone()),
                )
                .await;
                let r = match asked {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("decommission did not finish".to_string()),
                };
                let _ = tokio::time::timeout(Duration::from_secs(120), closed).await;
                r
            }));
        }
        let mut out = Vec::new();
        for (t, &(i, _)) in tasks.into_iter().zip(pairs) {
            out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
            self.nodes[i].alive = false;
            *self.nodes[i].hub.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        out
    }

    /// Freezes machine `i` (a slow or stalled node) until [`SimCluster::resume`].
    pub fn pause(&mut self, i: usize) {
        Handle::current().pause(self.nodes[i].handle.id());
        self.nodes[i].paused = true;
    }

    /// Unfreezes machine `i`.
    pub fn resume(&mut self, i: usize) {
        Handle::current().resume(self.nodes[i].handle.id());
        self.nodes[i].paused = false;
    }

    /// Sets the one-way latency range of every link.
    pub fn latency(&self, range: std::ops::Range<Duration>) {
        NetSim::current().update_config(|c| c.send_latency = range);
    }

    /// Sets the packet loss rate of every link. TCP retransmits what a
    /// lossy link drops, so on an open connection this shows up as delay
    /// and jitter, as on a real network; frames themselves are lost only
    /// with their connection (kills, restarts, replaced connections).
    pub fn loss_rate(&self, rate: f64) {
        NetSim::current().update_config(|c| c.packet_loss_rate = rate.clamp(0.0, 1.0));
    }

    /// Cuts the link from `a` to `b` only.
    pub fn clog(&self, a: usize, b: usize) {
        NetSim::current().clog_link(self.nodes[a].handle.id(), self.nodes[b].handle.id());
    }

    /// Restores the link from `a` to `b`.
    pub fn unclog(&self, a: usize, b: usize) {
        NetSim::current().unclog_link(self.nodes[a].handle.id(), self.nodes[b].handle.id());
    }

    /// Restores every link between machines.
    pub fn heal(&self) {
        let net = NetSim::current();
        for a in &self.nodes {
            for b in &self.nodes {
                if a.handle.id() != b.handle.id() {
                    net.unclog_link(a.handle.id(), b.handle.id());
                }
            }
        }
    }

    /// What every live node reports.
    pub async fn views(&self) -> Vec<NodeView> {
        let mut out = Vec::new();
        for i in self.alive() {
            let Some(h) = self.hub(i) else { continue };
            let ask = async {
                (
                    h.nodes().await,
                    h.registry_dump().await,
                    h.which_children(false).await,
                    h.status().await,
                    h.placements().await,
                    h.registry_specs().await,
                )
            };
            let Ok((Ok(ring), Ok(registry), Ok(local), Ok(status), Ok(owners), Ok(specs))) =
                tokio::time::timeout(API_TIMEOUT, ask).await
            else {
                continue;
            };
            let local: Vec<ChildId> = local.into_values().flatten().map(|(id, _)| id).collect();
            out.push(NodeView {
                id: h.node_id().clone(),
                ring,
                registry,
                local,
                settled: status.settled,
                owners,
                specs,
            });
        }
        out
    }

    /// Waits (simulated time) until every live node sees all live nodes and
    /// the invariants hold, or `within` passes; returns the last violation.
    pub async fn settle(&self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        let expected = crate::check::Expected {
            vnodes: hub_core::ring::DEFAULT_VNODES,
            tags: (0..self.nodes.len())
                .map(|i| {
                    let tags = self.opts.tags.get(i).cloned().unwrap_or_default();
                    (NodeId::new(format!("n{i}")), tags)
                })
                .collect(),
        };
        loop {
            let views = self.views().await;
            let r = if views.len() != self.alive().len() {
                Err(format!(
                    "{} of {} live nodes answer",
                    views.len(),
                    self.alive().len()
                ))
            } else if views.iter().any(|v| v.ring.len() != views.len()) {
                let rings: Vec<String> = views
                    .iter()
                    .map(|v| format!("{} sees {:?}", v.id, v.ring))
                    .collect();
                Err(format!("rings not full: {}", rings.join("; ")))
            } else if let Some(v) = views.iter().find(|v| !v.settled) {
                Err(format!("{} still has migrations in flight", v.id))
            } else {
                crate::check::quiet_invariants(&views, &expected)
            };
            if r.is_ok() || tokio::time::Instant::now() >= deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
