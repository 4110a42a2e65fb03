//! The node task's peers: connections up and down, frames in and out,
//! dialing seeds and discovered addresses with backoff, refusals.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use hub_core::membership::Status as MemberState;
use hub_core::{NodeId, NodeInfo};

use crate::admission::Admission;
use crate::conn::{self, FramedTcp, NetEvent};
use crate::error::CallError;
use crate::handshake::{self, Role, MAX_HANDSHAKE_FRAME};
use crate::supervisor::Envelope;
use crate::wire::Wire;

use super::{Driver, NetSettings};

/// Connections accepted whose handshake has not finished yet, at most.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Messages queued for a peer while it is being dialed.
const PENDING_PER_PEER: usize = 4096;
/// The first retry's mean delay; each later one doubles it, up to the cap.
/// Short, because a peer that is not listening yet usually is a moment
/// later (pods and processes started together), and formation waits for it.
const BACKOFF_BASE: Duration = Duration::from_millis(10);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

impl Driver {
    /// A peer refused this node for a reason retrying cannot cure: stop.
    pub(super) fn fatal(&mut self, peer: &NodeId, refusal: &handshake::Refusal) {
        let why = format!("refused by {peer}: {refusal}");
        error!(%peer, %refusal, "refused by the cluster; stopping");
        *self.stop_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Refuses a peer after its handshake when its node id belongs to a
    /// live member run by another process, or when it would take a strict
    /// cluster past `2q - 1` nodes. The peer is told why.
    pub(super) fn refusal_for(&self, peer: &handshake::Hello) -> Option<handshake::Refusal> {
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

    pub(super) fn on_net(&mut self, ev: NetEvent) {
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
                    }
                    // Calls sent over it: their answers would come back
                    // over it, so they cannot come any more, even if a
                    // newer connection to that node replaced this one.
                    // Whether the child handled them is unknown: sending
                    // them again could apply them twice.
                    let lost: Vec<u64> = self
                        .calls
                        .iter()
                        .filter(|(_, (c, _))| *c == conn)
                        .map(|(req, _)| *req)
                        .collect();
                    for req in lost {
                        if let Some((_, s)) = self.calls.remove(&req) {
                            let _ = s.send(Err(CallError::Unanswered(peer.to_string())));
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

    pub(super) fn on_up(&mut self, peer: handshake::Hello, framed: FramedTcp, initiator: bool) {
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

    pub(super) fn send(&mut self, to: NodeId, w: Wire) {
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
        if self.net.frame_loss > 0.0 && self.jitter.random_bool(self.net.frame_loss) {
            debug!(%to, "fault injection: frame dropped");
            return;
        }
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

    pub(super) fn dial(&mut self, to: NodeId) {
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
        // The first dial of a member goes out at once: a new member is
        // most likely listening already, and formation waits on this dial.
        // A simultaneous dial from the other side is resolved like any
        // duplicate connection.
        let delay = match self.attempts.get(&to).copied().unwrap_or(0) {
            0 => Duration::ZERO,
            failed => backoff(failed - 1, &mut self.jitter),
        };
        let net = self.net.clone();
        let events = self.net_tx.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            select! {
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
    pub(super) fn spawn_seed(&mut self, addr: String, cancel: CancellationToken) {
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
                select! {
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
    pub(super) fn on_discovered(&mut self, addrs: Vec<String>) {
        let now: std::collections::BTreeSet<String> = addrs.into_iter().collect();
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
}

/// Capped exponential backoff with jitter in [0.5, 1.5) so that peers do
/// not retry in lockstep. The jitter RNG is seeded from the node's seed, not
/// the OS: it needs no secrecy, and this keeps simulations replayable.
pub(crate) fn backoff(attempt: u32, rng: &mut StdRng) -> Duration {
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
