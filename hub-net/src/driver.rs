//! The node task: owns the `hub_core::Node` and drives it from TCP frames,
//! API calls, supervisor reports and its timer, performing its outputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use hub_core::membership::Status as MemberState;
use hub_core::{
    ChildId, Command, Event, LocalReport, Node, NodeId, NodeInfo, Output, Reply, RequestId,
    StopReason, Time,
};

use crate::admission::Admission;
use crate::conn::{self, Conn, FramedTcp, NetEvent};
use crate::control::{CtlReply, CtlRequest, MemberStatus, Status};
use crate::error::CallError;
use crate::handshake::{self, Role, MAX_HANDSHAKE_FRAME};
use crate::hooks::Events;
use crate::metrics::Metrics;
use crate::process::Terminate;
use crate::supervisor::{Envelope, Supervisor};
use crate::wire::Wire;

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
    pub(crate) metrics: Arc<Metrics>,
}

/// Connections accepted whose handshake has not finished yet, at most.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Messages queued for a peer while it is being dialed.
const PENDING_PER_PEER: usize = 4096;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

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
    /// Calls sent to a peer, by request number: the peer and the caller.
    calls: BTreeMap<u64, (NodeId, oneshot::Sender<Result<Bytes, CallError>>)>,
    next_call: u64,
    next_conn: u64,
    jitter: StdRng,
    /// Why the node stopped without leaving (a fatal refusal), for
    /// [`crate::Hub::stop_reason`].
    stop_reason: Arc<std::sync::Mutex<Option<String>>>,
    /// The node's own API, for control calls that retry through failover
    /// as [`crate::Hub::call`] does; weak, so it does not keep the node up.
    api: mpsc::WeakSender<Api>,
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
    ) -> Self {
        Driver {
            stop_reason,
            api,
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
            tokio::select! {
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

    /// A peer refused this node for a reason retrying cannot cure: stop.
    fn fatal(&mut self, peer: &NodeId, refusal: &handshake::Refusal) {
        let why = format!("refused by {peer}: {refusal}");
        error!(%peer, %refusal, "refused by the cluster; stopping");
        *self.stop_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Refuses a peer after its handshake when its node id belongs to a
    /// live member run by another process, or when it would take a strict
    /// cluster past `2q - 1` nodes. The peer is told why.
    fn refusal_for(&self, peer: &handshake::Hello) -> Option<handshake::Refusal> {
        let id = NodeId::new(&peer.node_id);
        let member = self.node.members().find(|m| m.info.id == id);
        let live =
            member.is_some_and(|m| matches!(m.status, MemberState::Up | MemberState::Suspect));
        let connected_other_run = self
            .conns
            .get(&id)
            .is_some_and(|c| c.incarnation != peer.incarnation && c.incarnation != 0);
        if live && connected_other_run {
            return Some(handshake::Refusal::DuplicateNodeId(peer.node_id.clone()));
        }
        let quorum = self.node.config().strict_quorum()?;
        let known = member.is_some_and(|m| m.status != MemberState::Left);
        if !known && self.node.ring().len() as u32 + 1 > 2 * quorum - 1 {
            return Some(handshake::Refusal::ClusterFull { quorum });
        }
        None
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
        match self.send_to(&node, &Wire::Call { req, id, payload }) {
            Ok(()) => {
                self.calls.insert(req, (node, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn on_net(&mut self, ev: NetEvent) {
        let now = self.now();
        match ev {
            NetEvent::Up {
                peer,
                framed,
                initiator,
            } => self.on_up(peer, *framed, initiator),
            NetEvent::DialFailed { to } => {
                self.dialing.remove(&to);
                *self.attempts.entry(to).or_default() += 1;
            }
            #[cfg(feature = "dns")]
            NetEvent::Discovered(addrs) => self.on_discovered(addrs),
            NetEvent::Down { conn } => {
                if let Some((Some(peer), _)) = self.conn_peer.remove(&conn) {
                    if self.conns.get(&peer).is_some_and(|c| c.id == conn) {
                        debug!(%peer, "connection lost");
                        self.conns.remove(&peer);
                        // Their answers cannot come any more, and whether
                        // the child handled them is unknown: sending them
                        // again could apply them twice.
                        let lost: Vec<u64> = self
                            .calls
                            .iter()
                            .filter(|(_, (n, _))| *n == peer)
                            .map(|(req, _)| *req)
                            .collect();
                        for req in lost {
                            if let Some((_, s)) = self.calls.remove(&req) {
                                let _ = s.send(Err(CallError::Unanswered(peer.to_string())));
                            }
                        }
                    }
                }
            }
            NetEvent::Frame { conn, wire } => {
                let Some((peer, c)) = self.conn_peer.get(&conn).cloned() else {
                    return;
                };
                match (peer, wire) {
                    (Some(p), Wire::Core(msg)) => self.node.handle_message(now, &p, msg),
                    (Some(_), Wire::Cast { id, payload }) => {
                        if let Err((e, _)) = self.sup.deliver(&id, Envelope::Cast(payload)) {
                            debug!(child = %id, error = %e, "cast dropped");
                        }
                    }
                    (Some(_), Wire::Call { req, id, payload }) => {
                        let (tx, rx) = oneshot::channel();
                        if let Err((e, _)) = self.sup.deliver(&id, Envelope::Call(payload, tx)) {
                            c.send(&Wire::CallReply {
                                req,
                                result: Err(e),
                            });
                        } else {
                            tokio::spawn(async move {
                                let result = rx
                                    .await
                                    .unwrap_or(Err(CallError::Crashed("stopped".into())));
                                c.send(&Wire::CallReply { req, result });
                            });
                        }
                    }
                    (Some(_), Wire::CallReply { req, result }) => {
                        if let Some((_, s)) = self.calls.remove(&req) {
                            let _ = s.send(result);
                        }
                    }
                    (None, Wire::Ctl { req, request }) => self.on_ctl(conn, req, request),
                    (Some(p), Wire::Refused(r)) => {
                        c.close();
                        if r.is_fatal() {
                            self.fatal(&p, &r);
                        } else {
                            warn!(peer = %p, reason = %r, "refused by a peer");
                        }
                    }
                    (peer, other) => {
                        warn!(?peer, frame = ?std::mem::discriminant(&other), "unexpected frame; closing");
                        c.close();
                    }
                }
            }
        }
    }

    fn on_up(&mut self, peer: handshake::Hello, framed: FramedTcp, initiator: bool) {
        let me = self.node.id().clone();
        if peer.role == Role::Client {
            self.next_conn += 1;
            let c = conn::start(
                self.next_conn,
                framed,
                NodeId::new(&peer.node_id),
                0,
                self.net_tx.clone(),
                &self.cancel,
                self.net.metrics.clone(),
            );
            self.conn_peer.insert(c.id, (None, c));
            return;
        }
        let id = NodeId::new(&peer.node_id);
        debug!(peer = %id, incarnation = peer.incarnation, initiator, "connection up");
        let refusal = if id == me && peer.incarnation == self.node.config().incarnation {
            // Ourselves, e.g. through a seed list that names this node.
            debug!("dropping a connection to ourselves");
            return;
        } else if id == me {
            Some(handshake::Refusal::DuplicateNodeId(peer.node_id.clone()))
        } else {
            self.refusal_for(&peer)
        };
        if let Some(r) = refusal {
            self.net.metrics.refused(r.reason());
            warn!(peer = %id, addr = %peer.addr, reason = %r, "refusing a node");
            if let Ok(bytes) = crate::wire::encode(&Wire::Refused(r)) {
                let mut framed = framed;
                tokio::spawn(async move {
                    let _ = futures_util::SinkExt::send(&mut framed, bytes).await;
                    // Close only once the peer has read it and closed: a
                    // close with its frames unread would reset the
                    // connection, and the reset can discard the refusal.
                    let drain = async {
                        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut framed).await {}
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                });
            }
            return;
        }
        let dialer = if initiator { me.clone() } else { id.clone() };
        // Simultaneous connects: both sides keep the connection dialed by
        // the smaller node id (a newer one from that side replaces a stale
        // one).
        let winner = me.clone().min(id.clone());
        if let Some(existing) = self.conns.get(&id) {
            let same_run = existing.incarnation >= peer.incarnation;
            if same_run && dialer != winner && existing.dialer == winner {
                debug!(peer = %id, "duplicate connection dropped");
                return;
            }
            existing.close();
        }
        self.next_conn += 1;
        let c = conn::start(
            self.next_conn,
            framed,
            dialer,
            peer.incarnation,
            self.net_tx.clone(),
            &self.cancel,
            self.net.metrics.clone(),
        );
        for b in self.pending.remove(&id).unwrap_or_default() {
            let _ = c.tx.try_send(b);
        }
        self.conn_peer.insert(c.id, (Some(id.clone()), c.clone()));
        self.conns.insert(id.clone(), c);
        self.dialing.remove(&id);
        self.attempts.remove(&id);
        let now = self.now();
        self.node.add_peer(
            now,
            NodeInfo {
                id,
                addr: peer.addr,
                incarnation: peer.incarnation,
                // Its tags and mode arrive with its first hello.
                tags: Default::default(),
                strict_quorum: None,
            },
        );
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
                    let moving = matches!(reason, StopReason::Migrated { .. });
                    self.sup.stop(&id, t, moving);
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

    fn send(&mut self, to: NodeId, w: Wire) {
        let bytes = match crate::wire::encode(&w) {
            Ok(b) if b.len() <= self.net.max_frame => b,
            Ok(b) => {
                warn!(%to, size = b.len(), "message exceeds the frame limit; dropped");
                return;
            }
            Err(e) => {
                warn!(%to, error = %e, "cannot encode message");
                return;
            }
        };
        if let Some(c) = self.conns.get(&to) {
            if c.tx.try_send(bytes).is_err() {
                debug!(%to, "connection backlog full; message dropped");
            }
            return;
        }
        let q = self.pending.entry(to.clone()).or_default();
        if q.len() == PENDING_PER_PEER {
            q.pop_front();
        }
        q.push_back(bytes);
        self.dial(to);
    }

    fn dial(&mut self, to: NodeId) {
        if self.dialing.contains(&to) {
            return;
        }
        let Some(addr) = self
            .node
            .members()
            .find(|m| m.info.id == to && m.status != MemberState::Left)
            .map(|m| m.info.addr.clone())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        self.dialing.insert(to.clone());
        let attempt = self.attempts.get(&to).copied().unwrap_or(0);
        let delay = backoff(attempt, &mut self.jitter);
        let net = self.net.clone();
        let events = self.net_tx.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let ev = match connect(&addr, &net).await {
                Ok((peer, framed)) if peer.node_id == to.as_str() => NetEvent::Up {
                    peer,
                    framed: Box::new(framed),
                    initiator: true,
                },
                Ok((peer, _)) => {
                    warn!(%to, found = %peer.node_id, %addr, "address answered with another node id");
                    NetEvent::DialFailed { to }
                }
                Err(e) => {
                    debug!(%to, %addr, error = %e, "dial failed");
                    NetEvent::DialFailed { to }
                }
            };
            let _ = events.send(ev).await;
        });
    }

    /// Dials a seed until it answers once.
    fn spawn_seed(&mut self, addr: String, cancel: CancellationToken) {
        let mut rng = StdRng::seed_from_u64(self.jitter.random());
        let net = self.net.clone();
        let events = self.net_tx.clone();
        tokio::spawn(async move {
            let mut attempt = 0;
            loop {
                match connect(&addr, &net).await {
                    Ok((peer, framed)) => {
                        let _ = events
                            .send(NetEvent::Up {
                                peer,
                                framed: Box::new(framed),
                                initiator: true,
                            })
                            .await;
                        return;
                    }
                    // Loud at first and then every tenth try: a mistyped
                    // seed, another hub or another cookie must be seen.
                    Err(e) if attempt % 10 == 0 => {
                        warn!(%addr, error = %e, attempt, "cannot join through seed");
                    }
                    Err(e) => debug!(%addr, error = %e, "seed not reachable yet"),
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff(attempt, &mut rng)) => {}
                }
                attempt += 1;
            }
        });
    }

    /// Dials every newly discovered address until it answers once, and
    /// stops dialing those that vanished from the answer.
    #[cfg(feature = "dns")]
    fn on_discovered(&mut self, addrs: Vec<String>) {
        let now: BTreeSet<String> = addrs.into_iter().collect();
        self.discovered.retain(|addr, dial| {
            let keep = now.contains(addr);
            if !keep {
                debug!(%addr, "no longer in the discovery answer");
                dial.cancel();
            }
            keep
        });
        for addr in now {
            if !self.discovered.contains_key(&addr) {
                debug!(%addr, "discovered");
                let dial = self.cancel.child_token();
                self.discovered.insert(addr.clone(), dial.clone());
                self.spawn_seed(addr, dial);
            }
        }
    }

    fn ctl_reply(&mut self, conn: u64, req: u64, reply: CtlReply) {
        if let Some((_, c)) = self.conn_peer.get(&conn) {
            c.send(&Wire::CtlReply { req, reply });
        }
    }

    /// Runs a command for a control client; its reply is relayed when the
    /// node answers (see `perform`).
    fn ctl_command(&mut self, conn: u64, req: u64, command: Command) {
        let r = self.request_id();
        self.ctl_waiting.insert(r, (conn, req));
        let now = self.now();
        self.node.handle_command(now, r, command);
    }

    fn on_ctl(&mut self, conn: u64, req: u64, request: CtlRequest) {
        let reply = match request {
            CtlRequest::Status => CtlReply::Status(status(&self.node, self.conns.len())),
            CtlRequest::Lookup { id } => {
                let waiting = self.node.is_waiting(id.as_str());
                CtlReply::Lookup(self.node.child_lookup(id.as_str()), waiting)
            }
            CtlRequest::Waiting => CtlReply::Waiting(self.node.waiting_children()),
            CtlRequest::Kind { id } => CtlReply::Kind(
                self.node
                    .registry()
                    .spec(id.as_str())
                    .map(|s| s.kind.clone()),
            ),
            CtlRequest::Which { global } => CtlReply::Which(self.node.which_children(global)),
            CtlRequest::Start { specs } => {
                let opts = hub_core::StartOptions::awaited();
                return self.ctl_command(conn, req, Command::StartChildren { specs, opts });
            }
            CtlRequest::Stop { ids } => {
                let opts = hub_core::StopOptions::awaited();
                return self.ctl_command(conn, req, Command::StopChildren { ids, opts });
            }
            CtlRequest::Decommission { node } => {
                return self.ctl_command(conn, req, Command::Decommission(node));
            }
            CtlRequest::Call {
                id,
                payload,
                timeout_ms,
            } => {
                let api = self.api.clone();
                let metrics = self.net.metrics.clone();
                let c = self.conn_peer.get(&conn).map(|(_, c)| c.clone());
                tokio::spawn(async move {
                    let t = Duration::from_millis(timeout_ms);
                    let result = match api.upgrade() {
                        Some(api) => {
                            crate::calls::call_retrying(&api, &metrics, id, payload, None, t).await
                        }
                        None => Err(CallError::Closed),
                    };
                    if let Some(c) = c {
                        c.send(&Wire::CtlReply {
                            req,
                            reply: CtlReply::Called(result),
                        });
                    }
                });
                return;
            }
        };
        self.ctl_reply(conn, req, reply);
    }
}

/// The node's status report.
pub(crate) fn status(node: &Node, connections: usize) -> Status {
    let unsettled = node.unsettled();
    Status {
        hub_id: node.config().hub_id.clone(),
        node_id: node.id().clone(),
        ring: node.nodes(),
        members: node
            .members()
            .map(|m| MemberStatus {
                id: m.info.id.clone(),
                addr: m.info.addr.clone(),
                status: format!("{:?}", m.status).to_lowercase(),
            })
            .collect(),
        connections,
        children: node.count_children(),
        local_children: node.local_children().len(),
        waiting: node.waiting_children().len(),
        locked: node.is_locked(),
        partitioned: node.is_partitioned(),
        settled: unsettled.is_none(),
        unsettled,
    }
}

/// `me`: a node decommissioned through itself answers `Left`.
fn ctl_reply_of(reply: Reply, me: NodeId) -> CtlReply {
    match reply {
        Reply::Started(o) => CtlReply::Started {
            started: o.started,
            failed: o
                .failed
                .into_iter()
                .map(|f| (f.id, f.error.to_string()))
                .collect(),
        },
        Reply::Stopped(o) => CtlReply::Stopped {
            stopped: o.stopped.into_keys().collect(),
            failed: o
                .failed
                .into_iter()
                .map(|(id, _, e)| (id, e.to_string()))
                .collect(),
        },
        Reply::Decommissioned(n) => CtlReply::Decommissioned(n),
        Reply::Left => CtlReply::Decommissioned(me),
        Reply::Error(e) => CtlReply::Error(e.to_string()),
        other => CtlReply::Error(format!("unexpected reply {other:?}")),
    }
}

/// Capped exponential backoff with jitter in [0.5, 1.5) so that peers do
/// not retry in lockstep. The jitter RNG is seeded from the node's seed, not
/// the OS: it needs no secrecy, and this keeps simulations replayable.
fn backoff(attempt: u32, rng: &mut StdRng) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(BACKOFF_CAP);
    capped.mul_f64(rng.random_range(0.5..1.5))
}

/// Connects and authenticates as a node.
pub(crate) async fn connect(
    addr: &str,
    net: &NetSettings,
) -> Result<(handshake::Hello, FramedTcp), String> {
    let stream = tokio::time::timeout(net.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    let peer = handshake::initiate(&mut framed, &net.local)
        .await
        .map_err(|e| e.to_string())?;
    framed.codec_mut().set_max_frame_length(net.max_frame);
    Ok((peer, framed))
}

pub(crate) fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec()
}

/// Accepts connections until cancelled; each runs its handshake on its own
/// task, so a slow or hostile client delays nobody.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    net: Arc<NetSettings>,
    events: mpsc::Sender<NetEvent>,
    cancel: CancellationToken,
) {
    // Handshakes in progress are bounded: connections that never finish
    // one (each has the handshake timeout) cannot keep peers out.
    let mut admission = Admission::new(listener, MAX_PENDING_HANDSHAKES, "cluster");
    while let Some((stream, from, permit)) = admission.next(&cancel).await {
        let net = net.clone();
        let events = events.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
            match handshake::accept(&mut framed, &net.local).await {
                Ok(peer) => {
                    framed.codec_mut().set_max_frame_length(net.max_frame);
                    let _ = events
                        .send(NetEvent::Up {
                            peer,
                            framed: Box::new(framed),
                            initiator: false,
                        })
                        .await;
                }
                Err(e) => {
                    net.metrics.refused(e.reason());
                    warn!(%from, reason = %e, "refused connection");
                }
            }
        });
    }
}
