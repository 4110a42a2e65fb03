//! The public API: build a node, start it, and use it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use tokio_util::sync::CancellationToken;

use hub_core::{
    ChildId, ChildSpec, Command, Event, EventKind, Handle, Node, NodeId, Reply, StartOptions,
    StartOutcome, StopOptions, StopOutcome,
};

use crate::control::Status;
use crate::driver::{self, Api};
use crate::error::HubError;
use crate::hooks::{Events, HookError};
use crate::lookup::LookupView;
use crate::metrics::Metrics;

use crate::builder::HubBuilder;

/// A handle on a running hub node. Cheap to clone; every method talks to
/// the node task.
#[derive(Clone, Debug)]
pub struct Hub {
    pub(crate) tx: mpsc::Sender<Api>,
    pub(crate) shared: Arc<Shared>,
}

/// What every handle on one node shares, strong or weak.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) events: Events,
    pub(crate) cancel: CancellationToken,
    pub(crate) node_id: NodeId,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) stop_reason: Arc<std::sync::Mutex<Option<String>>>,
    /// The kind name each registered process type runs under.
    pub(crate) kind_names: BTreeMap<std::any::TypeId, String>,
    /// Kinds started on demand, with their argument builders.
    pub(crate) on_demand: crate::activation::OnDemand,
    pub(crate) metrics: Arc<Metrics>,
    /// The registry's lookup index, kept by the node task.
    pub(crate) lookup: LookupView,
    pub(crate) management: Option<SocketAddr>,
}

/// A [`Hub`] that does not keep its node running: what children hold.
#[derive(Clone, Debug)]
pub(crate) struct WeakHub {
    tx: mpsc::WeakSender<Api>,
    shared: Arc<Shared>,
}

impl WeakHub {
    /// The hub, while any user handle keeps its node running.
    pub(crate) fn upgrade(&self) -> Option<Hub> {
        Some(Hub {
            tx: self.tx.upgrade()?,
            shared: self.shared.clone(),
        })
    }
}

impl Hub {
    pub(crate) fn downgrade(&self) -> WeakHub {
        WeakHub {
            tx: self.tx.downgrade(),
            shared: self.shared.clone(),
        }
    }

    /// Starts configuring a node of hub `hub_id`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use hub_net::{examples::Counter, Hub};
    /// let hub = Hub::builder("my-hub")
    ///     .node_id("a")
    ///     .listen("127.0.0.1:7000")
    ///     .seed("127.0.0.1:7001")
    ///     .cookie("secret")
    ///     .register::<Counter>("counter")
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(hub_id: impl Into<String>) -> HubBuilder {
        HubBuilder::new(hub_id)
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.shared.node_id
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.addr
    }

    /// The address the management endpoint listens on, if it has one
    /// ([`HubBuilder::management`]).
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.shared.management
    }

    /// This node's metrics in Prometheus' text exposition format (what
    /// the management endpoint's `GET /metrics` serves; names in the
    /// README), for an HTTP server of your own.
    pub async fn metrics_text(&self) -> Result<String, HubError> {
        let status = self.status().await?;
        let mut snapshot = self.query(crate::metrics::snapshot).await?;
        snapshot.connections = status.connections as i64;
        Ok(self.shared.metrics.render(&snapshot))
    }

    async fn command(&self, cmd: Command) -> Result<Reply, HubError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Api::Command(cmd, tx))
            .await
            .map_err(|_| HubError::Closed)?;
        rx.await.map_err(|_| HubError::Closed)
    }

    pub(crate) async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, HubError> {
        let (tx, rx) = oneshot::channel();
        let q: driver::Query = Box::new(move |n| {
            let _ = tx.send(f(n));
        });
        self.tx
            .send(Api::Query(q))
            .await
            .map_err(|_| HubError::Closed)?;
        rx.await.map_err(|_| HubError::Closed)
    }

    /// Starts children. With `opts.await_result` the outcome lists every
    /// child's placement; if any child did not start (or the ack level was
    /// not reached) the result is [`HubError::StartFailed`], whose outcome
    /// ([`HubError::start_outcome`]) says which started and why the others
    /// did not. Without `await_result` it is an empty outcome once
    /// dispatched.
    pub async fn start_children(
        &self,
        specs: Vec<ChildSpec>,
        opts: StartOptions,
    ) -> Result<StartOutcome, HubError> {
        match self.command(Command::StartChildren { specs, opts }).await? {
            Reply::Started(o) if !o.is_ok() => Err(HubError::StartFailed(Box::new(o))),
            Reply::Started(o) => Ok(o),
            Reply::StartInitiated => Ok(StartOutcome::default()),
            Reply::Error(e) => Err(HubError::Command(e)),
            other => Err(HubError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Starts one child.
    pub async fn start_child(
        &self,
        spec: ChildSpec,
        opts: StartOptions,
    ) -> Result<StartOutcome, HubError> {
        self.start_children(vec![spec], opts).await
    }

    /// Stops children wherever they run.
    pub async fn stop_children(
        &self,
        ids: Vec<ChildId>,
        opts: StopOptions,
    ) -> Result<StopOutcome, HubError> {
        match self.command(Command::StopChildren { ids, opts }).await? {
            Reply::Stopped(o) if !o.is_ok() => Err(HubError::StopFailed(Box::new(o))),
            Reply::Stopped(o) => Ok(o),
            Reply::StopInitiated => Ok(StopOutcome::default()),
            Reply::Error(e) => Err(HubError::Command(e)),
            other => Err(HubError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Stops one child.
    pub async fn stop_child(
        &self,
        id: impl Into<ChildId>,
        opts: StopOptions,
    ) -> Result<StopOutcome, HubError> {
        self.stop_children(vec![id.into()], opts).await
    }

    /// Where `id` runs: the nodes this node's registry says run it, with
    /// their handles, in node order (empty if none).
    ///
    /// Answered from the caller's own task, from a lookup index the node
    /// task keeps up to date with its registry, so it never waits behind
    /// the node's other work. `Err(HubError::Closed)` once the node has
    /// stopped.
    pub fn child_lookup(&self, id: impl AsRef<str>) -> Result<Vec<(NodeId, Handle)>, HubError> {
        if self.tx.is_closed() {
            return Err(HubError::Closed);
        }
        Ok(self.shared.lookup.get(id.as_ref()))
    }

    /// Children per node, of every node (`global`) or only this one.
    pub async fn which_children(
        &self,
        global: bool,
    ) -> Result<BTreeMap<NodeId, Vec<(ChildId, Handle)>>, HubError> {
        self.query(move |n| n.which_children(global)).await
    }

    /// Children registered in the hub.
    pub async fn count_children(&self) -> Result<usize, HubError> {
        self.query(|n| n.count_children()).await
    }

    /// The whole registry: child id -> holders.
    pub async fn registry_dump(
        &self,
    ) -> Result<BTreeMap<ChildId, Vec<(NodeId, Handle)>>, HubError> {
        self.query(|n| n.registry().view()).await
    }

    /// Every registered child's spec, as this node's registry holds it
    /// (with the nodes a placement strategy stamped into it, if any).
    pub async fn registry_specs(&self) -> Result<BTreeMap<ChildId, ChildSpec>, HubError> {
        self.query(|n| {
            n.registry()
                .iter()
                .filter_map(|(id, _)| {
                    let spec = n.registry().spec(id.as_str())?;
                    Some((id.clone(), ChildSpec::clone(spec)))
                })
                .collect()
        })
        .await
    }

    /// Where this node's strategies place every registered child now
    /// (its first owner): what a settled cluster must agree on and run.
    pub async fn placements(&self) -> Result<BTreeMap<ChildId, NodeId>, HubError> {
        self.query(|n| {
            n.registry()
                .iter()
                .filter_map(|(id, _)| {
                    let spec = n.registry().spec(id.as_str())?;
                    let owner = n.placement(spec).into_iter().next()?;
                    Some((id.clone(), owner))
                })
                .collect()
        })
        .await
    }

    /// Children whose metadata has `key == value`.
    pub async fn match_metadata(&self, key: &str, value: &str) -> Result<Vec<ChildId>, HubError> {
        let (k, v) = (key.to_string(), value.to_string());
        self.query(move |n| n.match_metadata(&k, &v)).await
    }

    /// Nodes in the ring (self included).
    pub async fn nodes(&self) -> Result<Vec<NodeId>, HubError> {
        self.query(|n| n.nodes()).await
    }

    /// The node's status report.
    pub async fn status(&self) -> Result<Status, HubError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Api::Status(tx))
            .await
            .map_err(|_| HubError::Closed)?;
        rx.await.map_err(|_| HubError::Closed)
    }

    /// The node's status with its running totals: what a control client
    /// gets for [`crate::control::CtlRequest::Report`].
    pub async fn report(&self) -> Result<crate::control::Report, HubError> {
        let status = self.status().await?;
        let (counters, strict) = self
            .query(|n| (n.counters(), n.config().strict.is_some()))
            .await?;
        Ok(crate::control::Report {
            status,
            strict,
            totals: self.shared.metrics.totals(&counters),
        })
    }

    /// What this node knows of local child `id`, if it runs here: what a
    /// control client gets for [`crate::control::CtlRequest::ChildReport`].
    pub async fn child_report(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<Option<crate::control::ChildReport>, HubError> {
        let id = id.into();
        let metrics = self.shared.metrics.clone();
        self.query(move |n| driver::child_report(n, &metrics, id.as_str()))
            .await
    }

    /// False once the node has left or shut down.
    pub async fn is_alive(&self) -> bool {
        self.query(|n| n.is_alive()).await.unwrap_or(false)
    }

    /// Whether the node is redistributing.
    pub async fn is_locked(&self) -> Result<bool, HubError> {
        self.query(|n| n.is_locked()).await
    }

    /// Whether the node lost quorum.
    pub async fn is_partitioned(&self) -> Result<bool, HubError> {
        self.query(|n| n.is_partitioned()).await
    }

    /// The node whose replica of `id` is active: with ActivePassive
    /// redundancy, the first node of the child's placement that runs it
    /// (a pure function of the ring and the registry, so every node that
    /// has converged answers the same), else any holder; `None` when the
    /// child is not registered. Calls go there.
    pub async fn active_replica(&self, id: impl Into<ChildId>) -> Result<Option<NodeId>, HubError> {
        let id = id.into();
        self.query(move |n| n.active_holder(id.as_str())).await
    }

    /// The role of this node's replica of `id`, if it runs one under a
    /// redundancy strategy that assigns roles.
    pub async fn local_role(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<Option<hub_core::Role>, HubError> {
        let id = id.into();
        self.query(move |n| n.local_role(id.as_str())).await
    }

    /// The crash-recovery snapshot this node keeps for `id` (a child its
    /// ring predecessor runs): the node it came from and its sequence
    /// number, the point `id` restarts from if that node dies.
    pub async fn stored_snapshot(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<Option<(NodeId, u64)>, HubError> {
        let id = id.into();
        self.query(move |n| n.stored_snapshot(id.as_str())).await
    }

    /// A stream of this node's events. A receiver that falls more than
    /// 4,096 events behind skips ahead and is told how many it missed
    /// (`RecvError::Lagged(n)`); for delivery in order with priorities,
    /// use [`Hub::register_hook`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Runs `run` for every event of `kind` on this node, after the hooks
    /// of higher priority (ties: in registration order), on the node's
    /// hook task. `id` names it for [`Hub::cancel_hook`]; an id already
    /// registered for `kind` is [`HookError::Duplicate`]. Events wait for
    /// hooks in a queue of [`crate::HOOK_QUEUE`]; if hooks fall that far
    /// behind, further events are not queued for them, and are counted
    /// ([`Hub::hook_overflows`]) and warned about, never dropped silently.
    /// A hook that panics is logged and the others still run.
    ///
    /// ```no_run
    /// # fn f(hub: &hub_net::Hub) -> Result<(), hub_net::HookError> {
    /// use hub_core::{Event, EventKind};
    /// hub.register_hook(EventKind::ChildFailed, "alert", 10, |e: &Event| {
    ///     eprintln!("{e:?}");
    /// })?;
    /// hub.cancel_hook(EventKind::ChildFailed, "alert")?;
    /// # Ok(()) }
    /// ```
    pub fn register_hook(
        &self,
        kind: EventKind,
        id: impl Into<String>,
        priority: i32,
        run: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<(), HookError> {
        self.shared
            .events
            .register(kind, id.into(), priority, Arc::new(run))
    }

    /// Removes hook `id` of `kind`; it runs for no event after this
    /// returns, except the one it may be running now.
    pub fn cancel_hook(&self, kind: EventKind, id: &str) -> Result<(), HookError> {
        self.shared.events.cancel(kind, id)
    }

    /// Events that could not be queued for hooks because they were too
    /// far behind (see [`Hub::register_hook`]).
    pub fn hook_overflows(&self) -> u64 {
        self.shared.events.overflowed()
    }

    /// Leaves gracefully: announces it, hands children to their new owners
    /// per the migration strategy, then closes every connection.
    pub async fn shutdown(&self) -> Result<(), HubError> {
        let r = self.command(Command::Leave).await;
        // The node task closes its connections right after leaving; if it
        // is gone already, close them here rather than wait.
        if tokio::time::timeout(Duration::from_secs(5), self.shared.cancel.cancelled())
            .await
            .is_err()
        {
            self.shared.cancel.cancel();
        }
        match r {
            Ok(Reply::Left) | Err(HubError::Closed) => Ok(()),
            Ok(Reply::Error(e)) => Err(HubError::Command(e)),
            Ok(other) => Err(HubError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(e),
        }
    }

    /// Drains `node` on purpose: it hands its children over per the
    /// migration strategy and leaves, and having left (not failed) it no
    /// longer counts towards any quorum, so scaling down one node at a time
    /// or many at once never puts the survivors in partition mode. Returns
    /// once this node has seen it leave. Naming this node itself is
    /// [`Hub::shutdown`].
    ///
    /// ```no_run
    /// # async fn f(hub: hub_net::Hub) -> Result<(), hub_net::HubError> {
    /// hub.decommission("n3".into()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decommission(&self, node: NodeId) -> Result<(), HubError> {
        if node == self.shared.node_id {
            return self.shutdown().await;
        }
        match self.command(Command::Decommission(node)).await? {
            Reply::Decommissioned(_) => Ok(()),
            Reply::Error(e) => Err(HubError::Command(e)),
            other => Err(HubError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Resolves once the node has stopped: it left (on [`Hub::shutdown`],
    /// or because a peer decommissioned it), was aborted, or was refused
    /// by the cluster ([`Hub::stop_reason`]).
    pub async fn closed(&self) {
        self.shared.cancel.cancelled().await;
    }

    /// Why the node stopped without leaving, if it did: the cluster refused
    /// it for a reason retrying cannot cure (its node id belongs to a live
    /// member, or the strict cluster is full). `None` while it runs and
    /// after a graceful leave.
    pub fn stop_reason(&self) -> Option<String> {
        self.shared
            .stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the node at once without a goodbye (what a crash looks like to
    /// its peers). For tests and emergencies.
    pub fn abort(&self) {
        self.shared.cancel.cancel();
    }
}
