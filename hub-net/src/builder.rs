//! Building a node: what it is told, and `start`, which binds, joins and
//! returns its [`Hub`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use hub_core::protocol::{DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
use hub_core::{ChildSpec, Config, Event, EventKind, Node, NodeId, StartOptions, Strategies, Time};

use crate::driver::{self, Driver, NetSettings};
use crate::error::{HubError, StartupError};
use crate::handshake::{Hello, Local, Role};
use crate::hooks::{Events, HookFn};
use crate::hub::{Hub, Shared};
use crate::lookup::LookupView;
use crate::metrics::Metrics;
use crate::process::{Kinds, Process};
use crate::snapshot::SnapshotPolicy;
use crate::supervisor::{Limits, Supervisor};

/// How the management endpoint is set up ([`HubBuilder::management`]).
#[derive(Clone, Debug, Default)]
#[cfg_attr(not(feature = "management"), allow(dead_code))]
pub(crate) struct Management {
    pub(crate) addr: String,
    /// Bearer token for `POST /drain`; without one, read-only.
    pub(crate) token: Option<String>,
    /// `/ready` needs at least this many ring members, self included.
    pub(crate) min_members: usize,
}

/// Configures a hub node. See [`Hub::builder`].
pub struct HubBuilder {
    config: Config,
    listen: Option<String>,
    advertise: Option<String>,
    seeds: Vec<String>,
    cookie: Bytes,
    strategies: Option<Strategies>,
    kinds: Kinds,
    limits: Limits,
    max_frame: usize,
    handshake_timeout: Duration,
    clock_rate: f64,
    frame_loss: f64,
    hooks: Vec<(EventKind, String, i32, HookFn)>,
    hook_queue: usize,
    static_children: Vec<ChildSpec>,
    #[cfg_attr(not(feature = "management"), allow(dead_code))]
    management: Option<Management>,
    #[cfg(feature = "dns")]
    discovery: Option<crate::discovery::DnsDiscovery>,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder")
            .field("hub_id", &self.config.hub_id)
            .field("node_id", &self.config.node_id)
            .field("listen", &self.listen)
            .field("seeds", &self.seeds)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl HubBuilder {
    /// A builder with every option at its default.
    pub(crate) fn new(hub_id: impl Into<String>) -> Self {
        HubBuilder {
            config: Config::new(hub_id, NodeId::new("")),
            listen: None,
            advertise: None,
            seeds: Vec::new(),
            cookie: Bytes::new(),
            strategies: None,
            kinds: Kinds::default(),
            limits: Limits::default(),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            clock_rate: 1.0,
            frame_loss: 0.0,
            hooks: Vec::new(),
            hook_queue: crate::hooks::HOOK_QUEUE,
            static_children: Vec::new(),
            management: None,
            #[cfg(feature = "dns")]
            discovery: None,
        }
    }

    /// This node's id (default: the listen address, or "node").
    pub fn node_id(mut self, id: impl Into<NodeId>) -> Self {
        self.config.node_id = id.into();
        self
    }

    /// Address to listen on, e.g. `"127.0.0.1:7000"` (port 0 picks one).
    /// Without it the node can still join through seeds.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// The address peers reach this node at, `host:port` (default: the
    /// bound listen address). Needed when listening on an unspecified
    /// address (`0.0.0.0`, `[::]`), behind NAT or in a container: peers are
    /// told this address, not the bound one.
    pub fn advertise(mut self, addr: impl Into<String>) -> Self {
        self.advertise = Some(addr.into());
        self
    }

    /// A seed to join through, `host:port` (repeatable).
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// The shared secret every node and client of the hub must know.
    pub fn cookie(mut self, cookie: impl Into<Bytes>) -> Self {
        self.cookie = cookie.into();
        self
    }

    /// Strategies (default: `hub_strategies::defaults()`).
    pub fn strategies(mut self, s: Strategies) -> Self {
        self.strategies = Some(s);
        self
    }

    /// Adds a node tag (e.g. `zone`, `a`) that children's placement
    /// constraints match ([`ChildSpec::with_requirement`],
    /// [`ChildSpec::with_preference`]).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.tags.insert(key.into(), value.into());
        self
    }

    /// Registers a process kind under `name`.
    pub fn register<P: Process>(mut self, name: impl Into<String>) -> Self {
        self.kinds.register::<P>(name);
        self
    }

    /// Registers a process kind whose children start on demand: the first
    /// typed call or cast to an id that runs nowhere (through
    /// [`Hub::entity`], [`Hub::call`] or [`Hub::send`] with `P`) starts it
    /// on the id's ring owner with `args(id)` and then delivers the
    /// message. First messages sent at once from several nodes start one
    /// instance: the owner decides. A start that fails is
    /// [`crate::CallError::NotActivated`]. Untyped [`Hub::call_raw`] never
    /// starts anything. Every node should register the kind the same way.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use hub_net::{examples::{Counter, CounterMsg}, Hub};
    /// let hub = Hub::builder("my-hub")
    ///     .node_id("a")
    ///     .register_on_demand::<Counter>("counter", |_id| 0)
    ///     .start()
    ///     .await?;
    /// // No start: the first call brings "account-7" to life.
    /// let n = hub.entity::<Counter>("account-7")?
    ///     .call(&CounterMsg::Add(5), Duration::from_secs(5))
    ///     .await?;
    /// assert_eq!(n, 5);
    /// # Ok(()) }
    /// ```
    pub fn register_on_demand<P: Process>(
        mut self,
        name: impl Into<String>,
        args: impl Fn(&hub_core::ChildId) -> P::Args + Send + Sync + 'static,
    ) -> Self {
        self.kinds.register_on_demand::<P>(name, args);
        self
    }

    /// Registers a process kind whose children's state is snapshotted
    /// per `policy` and replicated to their ring successor, so that a
    /// crash of this node loses at most the work since the last snapshot
    /// (see [`SnapshotPolicy`]).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use hub_net::{examples::Counter, Hub, SnapshotPolicy};
    /// let hub = Hub::builder("my-hub")
    ///     .node_id("a")
    ///     .register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(10))
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn register_with_snapshots<P: Process>(
        mut self,
        name: impl Into<String>,
        policy: SnapshotPolicy,
    ) -> Self {
        self.kinds.register_with_snapshots::<P>(name, policy);
        self
    }

    /// Supervision limits (restart intensity, `max_children`).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Largest frame accepted or sent (default 8 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Longest a peer may take to complete the handshake (default 5 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// How fast this node's clock runs against real time (default 1.0;
    /// 1.1 is 10% fast). Only for fault injection: the node's timers
    /// (heartbeats, failure detection, rounds, timeouts) run at that rate.
    /// Rates outside 0.1..=10 are clamped. Behind the `faults` feature,
    /// which the simulator enables.
    #[cfg(feature = "faults")]
    pub fn clock_rate(mut self, rate: f64) -> Self {
        self.clock_rate = if rate.is_finite() {
            rate.clamp(0.1, 10.0)
        } else {
            1.0
        };
        self
    }

    /// Drops this share (0..=1) of the frames this node sends to its peers,
    /// each on its own, on open connections: what TCP never does, so the
    /// protocol's own repair (re-sent handoffs, sync rounds, heartbeats)
    /// is all that recovers them. Only for fault injection, behind the
    /// `faults` feature, which the simulator enables.
    #[cfg(feature = "faults")]
    pub fn frame_loss(mut self, rate: f64) -> Self {
        self.frame_loss = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Turns on strict single-instance mode ([`hub_core::Strict`]): a child
    /// id never runs on two nodes at once; every node of the hub must use
    /// the same options. Checked when the hub starts.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), hub_net::StartupError> {
    /// use hub_core::Strict;
    /// use hub_net::{examples::Counter, Hub};
    /// // Clusters of up to five nodes: a child needs three grants.
    /// let hub = Hub::builder("my-hub")
    ///     .cookie("secret")
    ///     .listen("127.0.0.1:7000")
    ///     .strict(Strict::new(3))
    ///     .register::<Counter>("counter")
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn strict(mut self, strict: hub_core::Strict) -> Self {
        self.config.strict = Some(strict);
        self
    }

    /// Registers a hook at start (see [`Hub::register_hook`]); a duplicate
    /// id for one kind fails [`HubBuilder::start`] with
    /// [`StartupError::Hook`].
    pub fn hook(
        mut self,
        kind: EventKind,
        id: impl Into<String>,
        priority: i32,
        run: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.push((kind, id.into(), priority, Arc::new(run)));
        self
    }

    /// How many events may wait for the hooks (default
    /// [`crate::HOOK_QUEUE`]).
    pub fn hook_queue(mut self, events: usize) -> Self {
        self.hook_queue = events;
        self
    }

    /// Finds peers by DNS, re-resolving the name periodically (see
    /// [`crate::DnsDiscovery`]); works beside literal seeds. Feature `dns`.
    #[cfg(feature = "dns")]
    pub fn discovery(mut self, d: crate::discovery::DnsDiscovery) -> Self {
        self.discovery = Some(d);
        self
    }

    /// Serves the management endpoint on `addr` (HTTP: `GET /alive`,
    /// `/ready`, `/cluster`, `/metrics`; `POST /drain` with
    /// [`HubBuilder::management_token`]). Feature `management`.
    #[cfg(feature = "management")]
    pub fn management(mut self, addr: impl Into<String>) -> Self {
        self.management.get_or_insert_with(Management::default).addr = addr.into();
        self
    }

    /// The bearer token `POST /drain` needs; without one the management
    /// endpoint is read-only.
    #[cfg(feature = "management")]
    pub fn management_token(mut self, token: impl Into<String>) -> Self {
        self.management
            .get_or_insert_with(Management::default)
            .token = Some(token.into());
        self
    }

    /// `GET /ready` answers 503 while the ring has fewer than `n` members
    /// (self included; default 1).
    #[cfg(feature = "management")]
    pub fn min_members(mut self, n: usize) -> Self {
        self.management
            .get_or_insert_with(Management::default)
            .min_members = n;
        self
    }

    /// Static children: started (awaited) as part of [`HubBuilder::start`],
    /// which fails with [`StartupError::StaticChildren`] naming every
    /// child that did not start (the node then leaves; children that did
    /// start stay in the cluster). A child already running in the cluster
    /// counts as started, so every node may list the same ones. With
    /// seeds, the start waits up to [`STATIC_JOIN_WAIT`] for a first peer,
    /// so that a node joining a running cluster does not start them alone.
    pub fn child_specs(mut self, specs: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.static_children.extend(specs);
        self
    }

    /// Adjusts the core configuration (timers, lock timeout, hop limit...).
    /// What it sets is kept: `start` fills in only `addr` (from
    /// [`HubBuilder::advertise`] or the bound address), `incarnation` (the
    /// start time in ms) and `rng_seed` when they are still at
    /// [`Config::new`]'s defaults (empty, 1, 0).
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds, starts the node task and joins the seeds.
    pub async fn start(self) -> Result<Hub, StartupError> {
        let HubBuilder {
            mut config,
            listen,
            advertise,
            seeds,
            cookie,
            strategies,
            kinds,
            limits,
            max_frame,
            handshake_timeout,
            clock_rate,
            frame_loss,
            hooks,
            hook_queue,
            static_children,
            management,
            #[cfg(feature = "dns")]
            discovery,
        } = self;
        kinds
            .validate()
            .map_err(|(kind, reason)| StartupError::SnapshotPolicy { kind, reason })?;
        #[cfg(feature = "dns")]
        let has_seeds = !seeds.is_empty() || discovery.is_some();
        #[cfg(not(feature = "dns"))]
        let has_seeds = !seeds.is_empty();
        for s in seeds.iter().chain(advertise.as_ref()) {
            check_host_port(s)?;
        }
        let listener = match &listen {
            Some(addr) => Some(TcpListener::bind(addr.as_str()).await.map_err(|source| {
                StartupError::Bind {
                    addr: addr.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let management_listener = match &management {
            Some(m) => Some(TcpListener::bind(m.addr.as_str()).await.map_err(|source| {
                StartupError::Bind {
                    addr: m.addr.clone(),
                    source,
                }
            })?),
            None => None,
        };
        // What `configure` set stays (an address, an incarnation, a seed);
        // only what it left at `Config::new`'s defaults is filled in here.
        let configured_addr = (!config.addr.is_empty()).then(|| config.addr.clone());
        config.addr = match (advertise.as_ref().or(configured_addr.as_ref()), local_addr) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) if a.ip().is_unspecified() => {
                return Err(StartupError::Advertise(a.to_string()));
            }
            (None, Some(a)) => a.to_string(),
            (None, None) => String::new(),
        };
        if config.node_id.as_str().is_empty() {
            config.node_id = NodeId::new(if config.addr.is_empty() {
                "node"
            } else {
                &config.addr
            });
        }
        let defaults = Config::new("", NodeId::new(""));
        // With seeds, a leave that finds no member yet waits for one.
        config.expect_peers |= has_seeds;
        if config.incarnation == defaults.incarnation {
            // A restarted node must look new to its peers.
            config.incarnation = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(1);
        }
        if config.rng_seed == defaults.rng_seed {
            config.rng_seed = config.incarnation ^ 0x5eed;
        }
        let strategies = strategies.unwrap_or_else(hub_strategies::defaults);
        let node = Node::new(config.clone(), strategies, Time::ZERO)?;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            hub_id: config.hub_id.clone(),
            node_id: config.node_id.to_string(),
            addr: config.addr.clone(),
            incarnation: config.incarnation,
            role: Role::Node,
            nonce: [0; 32],
        };
        let net = NetSettings {
            local: Local {
                hello,
                cookie,
                timeout: handshake_timeout,
            },
            max_frame,
            connect_timeout: Duration::from_secs(3),
            seeds,
            clock_rate,
            frame_loss,
            metrics: Metrics::new(config.node_id.clone()),
        };
        let cancel = CancellationToken::new();
        let (api_tx, api_rx) = mpsc::channel(1024);
        let (net_tx, net_rx) = mpsc::channel(4096);
        // Unbounded on purpose: supervisor reports are state the core must
        // not lose, the node task itself sends some (so it must never block
        // on this channel), and there are at most a few in flight per child.
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        #[cfg(feature = "dns")]
        if let Some(d) = discovery {
            tokio::spawn(d.run(net_tx.clone(), cancel.clone()));
        }
        let (events, hook_task) = Events::new(cancel.clone(), hook_queue, net.metrics.clone());
        tokio::spawn(hook_task);
        for (kind, id, priority, run) in hooks {
            events
                .register(kind, id, priority, run)
                .map_err(StartupError::Hook)?;
        }
        if let Some(l) = listener {
            tokio::spawn(driver::accept_loop(
                l,
                Arc::new(net.clone()),
                net_tx.clone(),
                cancel.clone(),
            ));
        }
        let hub = Hub {
            tx: api_tx,
            shared: Arc::new(Shared {
                events: events.clone(),
                cancel: cancel.clone(),
                node_id: config.node_id.clone(),
                addr: local_addr,
                stop_reason: Arc::new(std::sync::Mutex::new(None)),
                kind_names: kinds.names_by_type(),
                on_demand: kinds.on_demand(),
                metrics: net.metrics.clone(),
                lookup: LookupView::default(),
                management: management_listener
                    .as_ref()
                    .and_then(|l| l.local_addr().ok()),
            }),
        };
        #[cfg(feature = "management")]
        if let (Some(l), Some(m)) = (management_listener, management) {
            tokio::spawn(crate::management::serve(
                l,
                hub.downgrade(),
                m,
                config.expect_peers,
                (config.hub_id.clone(), net.local.cookie.clone()),
                cancel.clone(),
            ));
        }
        #[cfg(not(feature = "management"))]
        drop(management_listener);
        let sup = Supervisor::new(
            kinds,
            limits,
            local_tx.clone(),
            config.node_id.clone(),
            hub.downgrade(),
        );
        let d = Driver::new(
            node,
            Instant::now(),
            net,
            sup,
            events,
            cancel,
            net_tx,
            local_tx,
            hub.shared.stop_reason.clone(),
            hub.tx.downgrade(),
            hub.shared.lookup.clone(),
        );
        let mut joins = hub.subscribe();
        let span = tracing::info_span!("node", id = %config.node_id);
        tokio::spawn(tracing::Instrument::instrument(
            d.run(api_rx, net_rx, local_rx),
            span,
        ));
        info!(node = %config.node_id, addr = %config.addr, "hub node started");
        if !static_children.is_empty() {
            if has_seeds {
                let joined = async {
                    loop {
                        match joins.recv().await {
                            Ok(Event::ClusterJoin(_))
                            | Err(broadcast::error::RecvError::Closed) => break,
                            _ => {}
                        }
                    }
                };
                let _ = tokio::time::timeout(STATIC_JOIN_WAIT, joined).await;
            }
            start_static(&hub, static_children).await?;
        }
        Ok(hub)
    }
}

/// How long a node with seeds and static children waits for a first peer
/// before starting them.
pub const STATIC_JOIN_WAIT: Duration = Duration::from_secs(2);

/// Starts the static children; on failure the node leaves.
async fn start_static(hub: &Hub, specs: Vec<ChildSpec>) -> Result<(), StartupError> {
    let failed: Vec<String> = match hub.start_children(specs, StartOptions::awaited()).await {
        Ok(_) => return Ok(()),
        Err(HubError::StartFailed(outcome)) => outcome
            .failed
            .iter()
            .filter(|f| !matches!(f.error, hub_core::StartError::AlreadyStarted { .. }))
            .map(|f| format!("{}: {}", f.id, f.error))
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    if failed.is_empty() {
        return Ok(());
    }
    let _ = hub.shutdown().await;
    Err(StartupError::StaticChildren(failed.join("; ")))
}

/// A seed or advertised address must be `host:port` (resolved later, so a
/// DNS name that does not resolve yet is fine; a typo is not).
fn check_host_port(addr: &str) -> Result<(), StartupError> {
    let bad = |reason: &str| StartupError::Address {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
    if host.is_empty() || !host.chars().all(allowed) {
        return Err(bad("the host is not a name or an IP address"));
    }
    Ok(())
}
