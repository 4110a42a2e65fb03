//! The node's metrics, in Prometheus' text format: counters kept as the
//! node works (events, frames and bytes, refused handshakes, call
//! latency) and gauges read from the node's state at each scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use hub_core::{ChildId, Counters, Direction, Event, EventKind, NodeId};

use crate::control::Totals;

type Labels = Vec<(String, String)>;

fn label(key: &str, value: impl Into<String>) -> Labels {
    vec![(key.to_string(), value.into())]
}

/// What a scrape reads from the node's state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) members: BTreeMap<String, i64>,
    pub(crate) local_by_kind: BTreeMap<String, i64>,
    pub(crate) registry_by_kind: BTreeMap<String, i64>,
    pub(crate) waiting: i64,
    pub(crate) connections: i64,
    pub(crate) locked: bool,
    pub(crate) partitioned: bool,
    pub(crate) settled: bool,
    pub(crate) counters: Counters,
    /// Registry slices with deltas applied ahead of a gap: how far this
    /// node's sync lags behind its peers' writes.
    pub(crate) slices_behind: i64,
}

/// Totals the node keeps ([`Counters`]), mirrored into Prometheus counters
/// at each scrape.
#[derive(Default)]
struct Mirrored {
    strict_grants: Counter,
    strict_refusals: Counter,
    strict_fencings: Counter,
    registry_repairs: Counter,
    registry_gap_requests: Counter,
    handovers: Counter,
    handovers_abandoned: Counter,
    handover_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

/// Raises `c` to the node's total `v` (totals only grow; scrapes are
/// serialised by [`Metrics::render`]'s lock).
fn mirror(c: &Counter, v: u64) {
    let cur = c.get();
    if v > cur {
        c.inc_by(v - cur);
    }
}

/// Every metric of one node (names in the README's metrics table).
pub(crate) struct Metrics {
    registry: Registry,
    /// One counter per event kind, indexed by `EventKind as usize`, so an
    /// event costs one atomic increment.
    events: Vec<Counter>,
    migrated: Counter,
    frames: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    calls: Family<Labels, Histogram>,
    members: Family<Labels, Gauge>,
    local: Family<Labels, Gauge>,
    registered: Family<Labels, Gauge>,
    waiting: Gauge,
    connections: Gauge,
    locked: Gauge,
    partitioned: Gauge,
    settled: Gauge,
    slices_behind: Gauge,
    mirrored: Mirrored,
    redistribution: Histogram,
    /// Membership changes whose redistribution began and has not ended.
    redistributing: Mutex<BTreeMap<(bool, NodeId), Instant>>,
    /// Serialises scrapes, so that mirroring a total never counts twice.
    rendering: Mutex<()>,
    /// Calls and their summed latency in nanoseconds, for the dashboard's
    /// rates (the histogram's own sum is not readable back).
    call_count: AtomicU64,
    call_nanos: AtomicU64,
    /// Supervisor restarts of each local child since it started here,
    /// forgotten when it leaves the registry here; at most
    /// [`MAX_RESTART_ROWS`] children are tracked.
    restarts: Mutex<HashMap<ChildId, u32>>,
    /// This node, whose registry removals end a restart row.
    node: NodeId,
}

/// Bounds the restart table: a crash-looping fleet cannot grow it past
/// this many children.
const MAX_RESTART_ROWS: usize = 100_000;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn call_buckets() -> Histogram {
    // 10 µs to ~5 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1e-5, 2.0, 20,
    ))
}

/// The event kinds with a metric of their own, besides `hub_events_total`.
const NAMED: [(EventKind, &str, &str); 6] = [
    (
        EventKind::ChildStarted,
        "hub_children_started",
        "Children started on this node",
    ),
    (
        EventKind::ChildRestarted,
        "hub_children_restarted",
        "Children restarted by this node's supervisor",
    ),
    (
        EventKind::ChildFailed,
        "hub_children_failed",
        "Children that failed for good on this node",
    ),
    (
        EventKind::DuplicateResolved,
        "hub_duplicates_resolved",
        "Copies of a child this node stopped because another copy won",
    ),
    (
        EventKind::Recovered,
        "hub_children_recovered",
        "Children of dead nodes restarted here from a crash snapshot",
    ),
    (
        EventKind::Partitioned,
        "hub_partitions",
        "Times this node lost quorum",
    ),
];

/// Reads a scrape's gauges from the node.
pub(crate) fn snapshot(n: &hub_core::Node) -> Snapshot {
    let mut s = Snapshot::default();
    for m in n.members() {
        *s.members
            .entry(format!("{:?}", m.status).to_lowercase())
            .or_default() += 1;
    }
    // Counts the registry keeps as rows change: a pass over every child
    // took 150–220 ms of the node's task at 100 k children (measured).
    for (node, kind, count) in n.registry().running_by_kind() {
        *s.registry_by_kind.entry(kind.to_string()).or_default() += count as i64;
        if node == n.id() {
            *s.local_by_kind.entry(kind.to_string()).or_default() += count as i64;
        }
    }
    s.waiting = n.waiting_children().len() as i64;
    s.locked = n.is_locked();
    s.partitioned = n.is_partitioned();
    s.settled = n.is_settled();
    s.counters = n.counters();
    s.slices_behind = n.registry().gaps().len() as i64;
    s
}

impl Metrics {
    pub(crate) fn new(node: NodeId) -> Arc<Self> {
        let mut registry = Registry::default();
        let by_kind: Family<Labels, Counter> = Family::default();
        registry.register(
            "hub_events",
            "Events on this node, by kind",
            by_kind.clone(),
        );
        let events: Vec<Counter> = EventKind::ALL
            .iter()
            .map(|k| {
                by_kind
                    .get_or_create(&label("kind", format!("{k:?}")))
                    .clone()
            })
            .collect();
        for (kind, name, help) in NAMED {
            registry.register(name, help, events[kind as usize].clone());
        }
        let m = Metrics {
            events,
            migrated: Counter::default(),
            frames: Family::default(),
            bytes: Family::default(),
            refused: Family::default(),
            calls: Family::new_with_constructor(call_buckets),
            members: Family::default(),
            local: Family::default(),
            registered: Family::default(),
            waiting: Gauge::default(),
            connections: Gauge::default(),
            locked: Gauge::default(),
            partitioned: Gauge::default(),
            settled: Gauge::default(),
            slices_behind: Gauge::default(),
            mirrored: Mirrored::default(),
            // 1 ms to ~65 s.
            redistribution: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1e-3, 2.0, 17),
            ),
            redistributing: Mutex::new(BTreeMap::new()),
            rendering: Mutex::new(()),
            call_count: AtomicU64::new(0),
            call_nanos: AtomicU64::new(0),
            restarts: Mutex::new(HashMap::new()),
            node,
            registry: Registry::default(),
        };
        registry.register(
            "hub_children_migrated",
            "Children this node handed to another node",
            m.migrated.clone(),
        );
        registry.register(
            "hub_frames",
            "Protocol frames, by direction",
            m.frames.clone(),
        );
        registry.register(
            "hub_frame_bytes",
            "Protocol frame bytes, by direction",
            m.bytes.clone(),
        );
        registry.register(
            "hub_handshakes_refused",
            "Handshakes this node refused or was refused, by reason",
            m.refused.clone(),
        );
        registry.register(
            "hub_call_seconds",
            "Calls to children through this node's API, by kind",
            m.calls.clone(),
        );
        registry.register("hub_members", "Members by status", m.members.clone());
        registry.register(
            "hub_local_children",
            "Children running on this node, by kind",
            m.local.clone(),
        );
        registry.register(
            "hub_registry_children",
            "Running copies in this node's registry, by kind (a child counts once per replica)",
            m.registered.clone(),
        );
        registry.register(
            "hub_waiting_children",
            "Children known here that run nowhere yet",
            m.waiting.clone(),
        );
        registry.register(
            "hub_connections",
            "Open connections to other nodes",
            m.connections.clone(),
        );
        registry.register(
            "hub_redistribution_locked",
            "1 while this node redistributes",
            m.locked.clone(),
        );
        registry.register(
            "hub_partitioned",
            "1 while this node has lost quorum",
            m.partitioned.clone(),
        );
        registry.register(
            "hub_settled",
            "1 when nothing is moving on this node",
            m.settled.clone(),
        );
        registry.register(
            "hub_registry_slices_behind",
            "Registry slices this node has applied ahead of a gap (sync lag)",
            m.slices_behind.clone(),
        );
        let mi = &m.mirrored;
        for (name, help, c) in [
            (
                "hub_strict_grants",
                "Strict mode: children this node granted to a claimant",
                &mi.strict_grants,
            ),
            (
                "hub_strict_refusals",
                "Strict mode: claims this node refused",
                &mi.strict_refusals,
            ),
            (
                "hub_strict_fencings",
                "Strict mode: local children stopped because their lease lapsed",
                &mi.strict_fencings,
            ),
            (
                "hub_registry_repairs",
                "Registry deltas sent to a peer found behind",
                &mi.registry_repairs,
            ),
            (
                "hub_registry_gap_requests",
                "Requests for registry deltas missing before early ones",
                &mi.registry_gap_requests,
            ),
            (
                "hub_handovers",
                "Hot moves acknowledged by the new owner",
                &mi.handovers,
            ),
            (
                "hub_handovers_abandoned",
                "Hot moves given up; the old copy kept running",
                &mi.handovers_abandoned,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "hub_handover_seconds",
            "Time of acknowledged hot moves, from their start to the new owner's acknowledgement",
            mi.handover_seconds.clone(),
        );
        registry.register(
            "hub_redistribution_seconds",
            "Redistributions for a membership change, from start to end",
            m.redistribution.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    pub(crate) fn event(&self, e: &Event) {
        self.events[e.kind() as usize].inc();
        match e {
            Event::ChildRestarted { id, .. } => {
                if let Ok(mut r) = self.restarts.lock() {
                    if r.len() < MAX_RESTART_ROWS || r.contains_key(id) {
                        *r.entry(id.clone()).or_default() += 1;
                    }
                }
            }
            Event::RegistryRemoved { id, nodes } if nodes.contains(&self.node) => {
                if let Ok(mut r) = self.restarts.lock() {
                    r.remove(id);
                }
            }
            Event::ChildMigrated { children, .. } => {
                self.migrated.inc_by(children.len() as u64);
            }
            Event::PreRedistribution { direction, node } => {
                let key = (*direction == Direction::Up, node.clone());
                if let Ok(mut r) = self.redistributing.lock() {
                    r.insert(key, Instant::now());
                }
            }
            Event::PostRedistribution { direction, node } => {
                let key = (*direction == Direction::Up, node.clone());
                let began = self
                    .redistributing
                    .lock()
                    .ok()
                    .and_then(|mut r| r.remove(&key));
                if let Some(began) = began {
                    self.redistribution.observe(began.elapsed().as_secs_f64());
                }
            }
            _ => {}
        }
    }

    pub(crate) fn frame_in(&self, bytes: usize) {
        self.frames.get_or_create(&label("direction", "in")).inc();
        self.bytes
            .get_or_create(&label("direction", "in"))
            .inc_by(bytes as u64);
    }

    pub(crate) fn frame_out(&self, bytes: usize) {
        self.frames.get_or_create(&label("direction", "out")).inc();
        self.bytes
            .get_or_create(&label("direction", "out"))
            .inc_by(bytes as u64);
    }

    /// A handshake refused, by this node or by its peer: `reason` is one
    /// of a few fixed words.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&label("reason", reason)).inc();
    }

    pub(crate) fn call(&self, kind: Option<&str>, took: Duration) {
        self.calls
            .get_or_create(&label("kind", kind.unwrap_or("untyped")))
            .observe(took.as_secs_f64());
        self.call_count.fetch_add(1, Ordering::Relaxed);
        self.call_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Restarts of local child `id` since it started here.
    pub(crate) fn restarts(&self, id: &str) -> u32 {
        self.restarts
            .lock()
            .ok()
            .and_then(|r| r.get(id).copied())
            .unwrap_or(0)
    }

    /// This node's running totals, with the node's own `c`.
    pub(crate) fn totals(&self, c: &Counters) -> Totals {
        let event = |k: EventKind| self.events[k as usize].get();
        Totals {
            started: event(EventKind::ChildStarted),
            restarted: event(EventKind::ChildRestarted),
            failed: event(EventKind::ChildFailed),
            duplicates_resolved: event(EventKind::DuplicateResolved),
            migrated: self.migrated.get(),
            calls: self.call_count.load(Ordering::Relaxed),
            call_seconds: self.call_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            strict_grants: c.strict_grants,
            strict_refusals: c.strict_refusals,
            strict_fencings: c.strict_fencings,
            handovers: c.handovers,
            handovers_abandoned: c.handovers_abandoned,
            partitions: event(EventKind::Partitioned),
        }
    }

    /// The text exposition, with the gauges set from `s`.
    pub(crate) fn render(&self, s: &Snapshot) -> String {
        let set = |family: &Family<Labels, Gauge>, key: &str, values: &BTreeMap<String, i64>| {
            family.clear();
            for (k, v) in values {
                family.get_or_create(&label(key, k.as_str())).set(*v);
            }
        };
        set(&self.members, "status", &s.members);
        set(&self.local, "kind", &s.local_by_kind);
        set(&self.registered, "kind", &s.registry_by_kind);
        self.waiting.set(s.waiting);
        self.connections.set(s.connections);
        self.locked.set(i64::from(s.locked));
        self.partitioned.set(i64::from(s.partitioned));
        self.settled.set(i64::from(s.settled));
        self.slices_behind.set(s.slices_behind);
        // A poisoned lock only means another scrape panicked; mirroring
        // stays correct.
        let _guard = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        let (c, mi) = (&s.counters, &self.mirrored);
        mirror(&mi.strict_grants, c.strict_grants);
        mirror(&mi.strict_refusals, c.strict_refusals);
        mirror(&mi.strict_fencings, c.strict_fencings);
        mirror(&mi.registry_repairs, c.registry_repairs);
        mirror(&mi.registry_gap_requests, c.registry_gap_requests);
        mirror(&mi.handovers, c.handovers);
        mirror(&mi.handovers_abandoned, c.handovers_abandoned);
        let secs = c.handover_time.as_secs_f64();
        let cur = mi.handover_seconds.get();
        if secs > cur {
            mi.handover_seconds.inc_by(secs - cur);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
