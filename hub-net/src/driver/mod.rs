//! The node task: owns the `hub_core::Node` and drives it from TCP frames,
//! API calls, supervisor reports and its timer, performing its outputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use hub_core::{
    ChildId, Command, Event, LocalReport, Node, NodeId, Output, Reply, RequestId, StopReason, Time,
};

use crate::conn::{Conn, NetEvent};
use crate::control::Status;
use crate::error::CallError;
use crate::handshake::{self};
use crate::hooks::Events;
use crate::lookup::LookupView;
use crate::metrics::Metrics;
use crate::process::Terminate;
use crate::supervisor::{Envelope, Supervisor};
use crate::wire::Wire;

mod ctl;
mod peers;

use ctl::ctl_reply_of;
pub(crate) use ctl::{child_report, status};
pub(crate) use peers::{accept_loop, codec};

/// A query answered from the node's state.
pub(crate) type Query = Box<dyn FnOnce(&Node) + Send>;

/// What `Hub` handles ask the node task.
pub(crate) enum Api {
    Command(Command, oneshot::Sender<Reply>),
    Query(Query),
    Status(oneshot::Sender<Status>),
    /// To a child; with `Some(kind)`, refused unless the child is of it.
    Cast(
        ChildId,
        Bytes,
        Option<String>,
        oneshot::Sender<Result<(), CallError>>,
    ),
    Call(
        ChildId,
        Bytes,
        Option<String>,
        oneshot::Sender<Result<Bytes, CallError>>,
    ),
}

/// Transport settings.
#[derive(Clone, Debug)]
pub(crate) struct NetSettings {
    pub(crate) local: handshake::Local,
    pub(crate) max_frame: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) seeds: Vec<String>,
    /// Node clock speed against real time (fault injection; 1.0 normally).
    pub(crate) clock_rate: f64,
    /// Share of outgoing peer frames dropped (fault injection; 0 normally).
    pub(crate) frame_loss: f64,
    pub(crate) metrics: Arc<Metrics>,
}

pub(crate) struct Driver {
    pub(crate) node: Node,
    pub(crate) epoch: Instant,
    pub(crate) net: NetSettings,
    pub(crate) sup: Supervisor,
    pub(crate) events: Events,
    pub(crate) cancel: CancellationToken,
    pub(crate) net_tx: mpsc::Sender<NetEvent>,
    pub(crate) local_tx: mpsc::UnboundedSender<LocalReport>,
    conns: BTreeMap<NodeId, Conn>,
    /// conn id -> peer node (None: a control client).
    conn_peer: BTreeMap<u64, (Option<NodeId>, Conn)>,
    pending: BTreeMap<NodeId, VecDeque<Bytes>>,
    dialing: BTreeSet<NodeId>,
    attempts: BTreeMap<NodeId, u32>,
    replies: BTreeMap<RequestId, oneshot::Sender<Reply>>,
    ctl_waiting: BTreeMap<RequestId, (u64, u64)>,
    next_request: u64,
    /// Calls sent to a peer, by request number: the connection they went
    /// out on (their answers come back over it) and the caller.
    calls: BTreeMap<u64, (u64, oneshot::Sender<Result<Bytes, CallError>>)>,
    next_call: u64,
    next_conn: u64,
    jitter: StdRng,
    /// Why the node stopped without leaving (a fatal refusal), for
    /// [`crate::Hub::stop_reason`].
    stop_reason: Arc<std::sync::Mutex<Option<String>>>,
    /// The node's own API, for control calls that retry through failover
    /// as [`crate::Hub::call`] does; weak, so it does not keep the node up.
    api: mpsc::WeakSender<Api>,
    /// The lookup index every handle on this node reads.
    lookup: LookupView,
    /// Addresses discovery answered with, each with its dial loop.
    #[cfg(feature = "dns")]
    discovered: BTreeMap<String, CancellationToken>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node: Node,
        epoch: Instant,
        net: NetSettings,
        sup: Supervisor,
        events: Events,
        cancel: CancellationToken,
        net_tx: mpsc::Sender<NetEvent>,
        local_tx: mpsc::UnboundedSender<LocalReport>,
        stop_reason: Arc<std::sync::Mutex<Option<String>>>,
        api: mpsc::WeakSender<Api>,
        lookup: LookupView,
    ) -> Self {
        Driver {
            stop_reason,
            api,
            lookup,
            #[cfg(feature = "dns")]
            discovered: BTreeMap::new(),
            epoch,
            net,
            sup,
            events,
            cancel,
            net_tx,
            local_tx,
            conns: BTreeMap::new(),
            conn_peer: BTreeMap::new(),
            pending: BTreeMap::new(),
            dialing: BTreeSet::new(),
            attempts: BTreeMap::new(),
            replies: BTreeMap::new(),
            ctl_waiting: BTreeMap::new(),
            next_request: 0,
            calls: BTreeMap::new(),
            next_call: 0,
            next_conn: 0,
            jitter: StdRng::seed_from_u64(node.config().rng_seed ^ 0x6a17),
            node,
        }
    }

    fn now(&self) -> Time {
        let elapsed = self.epoch.elapsed().as_secs_f64() * self.net.clock_rate;
        Time::from_millis((elapsed * 1000.0) as u64)
    }

    fn instant(&self, t: Time) -> Instant {
        let real = t.as_millis() as f64 / self.net.clock_rate;
        self.epoch + Duration::from_micros((real * 1000.0) as u64)
    }

    /// Runs until the node has left (graceful shutdown) or is cancelled.
    pub(crate) async fn run(
        mut self,
        mut api_rx: mpsc::Receiver<Api>,
        mut net_rx: mpsc::Receiver<NetEvent>,
        mut local_rx: mpsc::UnboundedReceiver<LocalReport>,
    ) {
        for seed in self.net.seeds.clone() {
            let cancel = self.cancel.clone();
            self.spawn_seed(seed, cancel);
        }
        loop {
            let deadline = self
                .node
                .poll_timeout()
                .map(|t| self.instant(t))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            select! {
                _ = self.cancel.cancelled() => break,
                Some(r) = local_rx.recv() => {
                    let mut batch = vec![r];
                    while let Ok(r) = local_rx.try_recv() {
                        batch.push(r);
                    }
                    for r in &batch {
                        if let LocalReport::Exited { id, .. } | LocalReport::StartFailed { id, .. } = r {
                            self.sup.forget(id);
                        }
                    }
                    let now = self.now();
                    self.node.handle_locals(now, batch);
                }
                Some(ev) = net_rx.recv() => self.on_net(ev),
                api = api_rx.recv() => match api {
                    Some(a) => self.on_api(a),
                    None => {
                        // Every handle dropped: leave as if shut down.
                        let r = self.request_id();
                        let now = self.now();
                        self.node.handle_command(now, r, Command::Leave);
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
            }
            self.perform();
            if !self.node.is_alive() || self.stopped() {
                break;
            }
        }
        info!(node = %self.node.id(), "node task stopped");
        self.sup.stop_all();
        // Let the final `Left` frames reach the wire before closing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.cancel.cancel();
    }

    fn stopped(&self) -> bool {
        self.stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn on_api(&mut self, api: Api) {
        let now = self.now();
        match api {
            Api::Command(cmd, reply) => {
                let r = self.request_id();
                self.replies.insert(r, reply);
                self.node.handle_command(now, r, cmd);
            }
            Api::Query(q) => q(&self.node),
            Api::Status(reply) => {
                let _ = reply.send(status(&self.node, self.conns.len()));
            }
            Api::Cast(id, payload, kind, reply) => {
                let r = match self.check_kind(&id, kind).and_then(|()| self.holder(&id)) {
                    Ok(n) if n == *self.node.id() => self
                        .sup
                        .deliver(&id, Envelope::Cast(payload))
                        .map_err(|(e, _)| e),
                    Ok(n) => self.send_to(&n, &Wire::Cast { id, payload }),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Api::Call(id, payload, kind, reply) => match self.check_kind(&id, kind) {
                Ok(()) => self.call(id, payload, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    /// A typed message for `id` must match the kind it is registered with.
    fn check_kind(&self, id: &ChildId, expected: Option<String>) -> Result<(), CallError> {
        let Some(expected) = expected else {
            return Ok(());
        };
        match self.node.registry().spec(id.as_str()) {
            Some(spec) if spec.kind != expected => Err(CallError::WrongKind {
                expected,
                actual: spec.kind.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The node a message for `id` goes to: its first registered holder.
    fn holder(&self, id: &ChildId) -> Result<NodeId, CallError> {
        match self.node.active_holder(id.as_str()) {
            Some(n) => Ok(n),
            // In transit: handed over, or known here as waiting to be
            // restarted (its node died); the caller retries.
            None if self.node.registry().is_moving(id.as_str())
                || self.node.is_waiting(id.as_str()) =>
            {
                Err(CallError::Moving)
            }
            None => Err(CallError::NotFound),
        }
    }

    fn send_to(&self, node: &NodeId, w: &Wire) -> Result<(), CallError> {
        match self.conns.get(node) {
            Some(c) if c.send(w) => Ok(()),
            _ => Err(CallError::NotConnected(node.to_string())),
        }
    }

    fn call(
        &mut self,
        id: ChildId,
        payload: Bytes,
        reply: oneshot::Sender<Result<Bytes, CallError>>,
    ) {
        let node = match self.holder(&id) {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if node == *self.node.id() {
            if let Err((e, Envelope::Call(_, reply))) =
                self.sup.deliver(&id, Envelope::Call(payload, reply))
            {
                let _ = reply.send(Err(e));
            }
            return;
        }
        if self.calls.len() > 1024 {
            self.calls.retain(|_, (_, s)| !s.is_closed()); // callers that gave up
        }
        self.next_call += 1;
        let req = self.next_call;
        // The answer comes back over the connection the call goes out on:
        // if that connection closes first, even when a newer one to the
        // same node replaces it, the answer is lost (see `NetEvent::Down`).
        let Some(conn) = self.conns.get(&node).map(|c| c.id) else {
            let _ = reply.send(Err(CallError::NotConnected(node.to_string())));
            return;
        };
        match self.send_to(&node, &Wire::Call { req, id, payload }) {
            Ok(()) => {
                self.calls.insert(req, (conn, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Performs everything the node asked for.
    fn perform(&mut self) {
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Send { to, message } => self.send(to, Wire::Core(message)),
                Output::Spawn { spec, restore } => self.sup.spawn(spec, restore),
                Output::Stop { id, reason } => {
                    let t = match reason {
                        StopReason::Conflict => Terminate::Conflict,
                        _ => Terminate::Stopped,
                    };
                    self.sup.stop(&id, t, reason.keeps_state());
                }
                Output::Role { id, role } => {
                    if self.sup.deliver(&id, Envelope::Role(role)).is_err() {
                        debug!(child = %id, "no such child to tell its role");
                    }
                }
                Output::Resume { id } => {
                    if self.sup.deliver(&id, Envelope::Resume).is_err() {
                        debug!(child = %id, "no such child to resume");
                    }
                }
                Output::RequestState { id } => {
                    let (tx, rx) = oneshot::channel();
                    let reports = self.local_tx.clone();
                    if self.sup.deliver(&id, Envelope::Handover(tx)).is_err() {
                        debug!(child = %id, "no such child to snapshot");
                    }
                    tokio::spawn(async move {
                        let state = rx.await.ok().flatten();
                        let _ = reports.send(LocalReport::State { id, state });
                    });
                }
                Output::Reply { request, reply } => {
                    if let Some((conn, req)) = self.ctl_waiting.remove(&request) {
                        let me = self.node.id().clone();
                        self.ctl_reply(conn, req, ctl_reply_of(reply, me));
                    } else if let Some(tx) = self.replies.remove(&request) {
                        let _ = tx.send(reply);
                    }
                }
                Output::Event(e) => {
                    if let Event::RegistryInserted { id, .. } | Event::RegistryRemoved { id, .. } =
                        &e
                    {
                        self.lookup.refresh(self.node.registry(), id);
                    }
                    if let Event::ClusterLeave(n) = &e {
                        // A node that failed may come back as a new run:
                        // dial afresh then rather than trust a connection
                        // that may be dead. A node that is leaving keeps
                        // its connection: its drain (handoffs, releases,
                        // acks) travels on it, and closing it would drop
                        // what it had not read yet.
                        let leaving = self.node.members().any(|m| {
                            m.info.id == *n && m.status == hub_core::membership::Status::Leaving
                        });
                        if !leaving {
                            if let Some(c) = self.conns.remove(n) {
                                c.close();
                            }
                        }
                    }
                    self.events.emit(e);
                }
            }
        }
    }
}
