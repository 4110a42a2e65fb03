//! The node's metrics, in Prometheus' text format: counters kept as the
//! node works (events, frames and bytes, refused handshakes, call
//! latency) and gauges read from the node's state at each scrape.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use hub_core::{Event, EventKind};

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
}

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
    let kind = |id: &hub_core::ChildId| {
        n.registry()
            .spec(id.as_str())
            .map_or_else(|| "unknown".to_string(), |spec| spec.kind.clone())
    };
    for (id, _) in n.local_children() {
        *s.local_by_kind.entry(kind(&id)).or_default() += 1;
    }
    for (id, _) in n.registry().iter() {
        *s.registry_by_kind.entry(kind(id)).or_default() += 1;
    }
    s.waiting = n.waiting_children().len() as i64;
    s.locked = n.is_locked();
    s.partitioned = n.is_partitioned();
    s.settled = n.is_settled();
    s
}

impl Metrics {
    pub(crate) fn new() -> Arc<Self> {
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
            "Children in this node's registry, by kind",
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
        Arc::new(Metrics { registry, ..m })
    }

    pub(crate) fn event(&self, e: &Event) {
        self.events[e.kind() as usize].inc();
        if let Event::ChildMigrated { children, .. } = e {
            self.migrated.inc_by(children.len() as u64);
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
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
