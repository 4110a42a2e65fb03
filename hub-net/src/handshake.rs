//! The handshake that precedes every hub frame.
//!
//! Both sides send a [`Hello`] (protocol version, hub id, node id, advertised
//! address, incarnation, a fresh 32-byte nonce), check the other's version
//! and hub id, then each proves it knows the cookie with
//! `HMAC-SHA-256(cookie, "processhub-rs/1" | role | hub | initiator id |
//! acceptor id | initiator nonce | acceptor nonce)`. The role tag differs for
//! the two proofs so one cannot be reflected as the other, and both nonces
//! are in it so a recorded proof is useless for a new connection. Any
//! failure, or a handshake slower than the timeout, closes the connection.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::error::HandshakeError;
use hub_core::protocol::PROTOCOL_VERSION;

/// Largest handshake frame.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// Who opens a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A hub node.
    Node,
    /// A control client (`hub ctl`, `hub status`).
    Client,
}

/// First handshake message of each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// Hub id.
    pub hub_id: String,
    /// Node id (a client's is informative only).
    pub node_id: String,
    /// Advertised listen address.
    pub addr: String,
    /// Incarnation of the node's run.
    pub incarnation: u64,
    /// Node or client.
    pub role: Role,
    /// Fresh random nonce.
    pub nonce: [u8; 32],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Step {
    Hello(Hello),
    Proof([u8; 32]),
    /// The side that checked the other says why it will not talk to it,
    /// then closes: the refused side learns the reason instead of seeing
    /// a closed connection.
    Refused(Refusal),
}

/// Why a node refused a connection; the refused side gets it as
/// [`HandshakeError::Refused`] (also over an established connection, for
/// the checks the node task makes after the handshake).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// Another protocol version.
    #[error("protocol version mismatch (the refusing node speaks {ours})")]
    Version {
        /// The refusing side's version.
        ours: u16,
    },
    /// Another hub id.
    #[error("hub id mismatch (the refusing node belongs to hub {ours:?})")]
    HubId {
        /// The refusing side's hub id.
        ours: String,
    },
    /// The proof did not match: another cookie.
    #[error("authentication failed (the cookies differ)")]
    Authentication,
    /// A live node of the cluster already has this node id.
    #[error("node id {0:?} is taken by a live member of the cluster")]
    DuplicateNodeId(String),
    /// A strict-mode cluster is at its size limit (`2q - 1` nodes).
    #[error("the strict-mode cluster is full: quorum {quorum} allows at most {} nodes", 2 * quorum - 1)]
    ClusterFull {
        /// The cluster's strict quorum.
        quorum: u32,
    },
}

impl Refusal {
    /// A one-word label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Version { .. } => "version",
            Refusal::HubId { .. } => "hub_id",
            Refusal::Authentication => "authentication",
            Refusal::DuplicateNodeId(_) => "duplicate_node_id",
            Refusal::ClusterFull { .. } => "cluster_full",
        }
    }

    /// Whether the refused node should stop rather than retry: its
    /// configuration, not the network, is wrong.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Refusal::DuplicateNodeId(_) | Refusal::ClusterFull { .. }
        )
    }
}

/// What one side needs to run a handshake.
#[derive(Clone, Debug)]
pub struct Local {
    /// Our hello (the nonce is filled in per connection).
    pub hello: Hello,
    /// Shared secret.
    pub cookie: Bytes,
    /// Longest the whole handshake may take.
    pub timeout: Duration,
}

/// The keyed MAC over everything both sides said, before finalizing.
fn keyed(cookie: &[u8], tag: &[u8], hub: &str, init: &Hello, acc: &Hello) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(cookie).ok()?;
    m.update(b"processhub-rs/1");
    m.update(tag);
    for part in [
        hub.as_bytes(),
        init.node_id.as_bytes(),
        acc.node_id.as_bytes(),
    ] {
        m.update(&(part.len() as u32).to_le_bytes());
        m.update(part);
    }
    m.update(&init.nonce);
    m.update(&acc.nonce);
    Some(m)
}

fn mac(cookie: &[u8], tag: &[u8], hub: &str, init: &Hello, acc: &Hello) -> [u8; 32] {
    // HMAC takes keys of any length, so `keyed` cannot fail here.
    keyed(cookie, tag, hub, init, acc).map_or([0; 32], |m| m.finalize().into_bytes().into())
}

fn verify(
    cookie: &[u8],
    tag: &[u8],
    hub: &str,
    init: &Hello,
    acc: &Hello,
    proof: &[u8; 32],
) -> bool {
    // Constant-time comparison.
    keyed(cookie, tag, hub, init, acc).is_some_and(|m| m.verify_slice(proof).is_ok())
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S, LengthDelimitedCodec>,
    step: &Step,
) -> Result<(), HandshakeError> {
    let bytes = postcard::to_stdvec(step).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    f.send(Bytes::from(bytes))
        .await
        .map_err(|e| HandshakeError::Io(e.to_string()))
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S, LengthDelimitedCodec>,
) -> Result<Step, HandshakeError> {
    let frame = f
        .next()
        .await
        .ok_or(HandshakeError::Closed)?
        .map_err(|e| HandshakeError::Io(e.to_string()))?;
    let (step, rest) = postcard::take_from_bytes::<Step>(&frame)
        .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(HandshakeError::Malformed("trailing bytes".into()));
    }
    Ok(step)
}

/// Checks the peer's hello; on a mismatch the peer is told why.
async fn check<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S, LengthDelimitedCodec>,
    local: &Local,
    peer: &Hello,
) -> Result<(), HandshakeError> {
    if peer.version != PROTOCOL_VERSION {
        let ours = PROTOCOL_VERSION;
        let _ = send(f, &Step::Refused(Refusal::Version { ours })).await;
        return Err(HandshakeError::Version {
            got: peer.version,
            ours,
        });
    }
    if peer.hub_id != local.hello.hub_id {
        let ours = local.hello.hub_id.clone();
        let _ = send(f, &Step::Refused(Refusal::HubId { ours })).await;
        return Err(HandshakeError::HubId(peer.hub_id.clone()));
    }
    if peer.node_id.is_empty() || peer.node_id.len() > hub_core::spec::MAX_NAME_LEN {
        return Err(HandshakeError::Malformed("bad node id".into()));
    }
    Ok(())
}

fn fresh(local: &Local) -> Result<Hello, HandshakeError> {
    let mut hello = local.hello.clone();
    // The thread generator (seeded once from the OS): drawing from the OS
    // per call made simulated runs of one seed diverge.
    rand::rng().fill_bytes(&mut hello.nonce);
    Ok(hello)
}

/// Runs the handshake as the side that connected. Returns the peer's hello.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S, LengthDelimitedCodec>,
    local: &Local,
) -> Result<Hello, HandshakeError> {
    tokio::time::timeout(local.timeout, async {
        let me = fresh(local)?;
        send(f, &Step::Hello(me.clone())).await?;
        let peer = match recv(f).await? {
            Step::Hello(peer) => peer,
            Step::Refused(r) => return Err(HandshakeError::Refused(r)),
            Step::Proof(_) => return Err(HandshakeError::Malformed("expected hello".into())),
        };
        check(f, local, &peer).await?;
        let hub = &local.hello.hub_id;
        send(
            f,
            &Step::Proof(mac(&local.cookie, b"initiator", hub, &me, &peer)),
        )
        .await?;
        let p = match recv(f).await? {
            Step::Proof(p) => p,
            Step::Refused(r) => return Err(HandshakeError::Refused(r)),
            Step::Hello(_) => return Err(HandshakeError::Malformed("expected proof".into())),
        };
        if !verify(&local.cookie, b"acceptor", hub, &me, &peer, &p) {
            return Err(HandshakeError::BadCookie);
        }
        Ok(peer)
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

/// Runs the handshake as the side that accepted. Returns the peer's hello.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S, LengthDelimitedCodec>,
    local: &Local,
) -> Result<Hello, HandshakeError> {
    tokio::time::timeout(local.timeout, async {
        let Step::Hello(peer) = recv(f).await? else {
            return Err(HandshakeError::Malformed("expected hello".into()));
        };
        check(f, local, &peer).await?;
        let me = fresh(local)?;
        send(f, &Step::Hello(me.clone())).await?;
        let hub = &local.hello.hub_id;
        let p = match recv(f).await? {
            Step::Proof(p) => p,
            Step::Refused(r) => return Err(HandshakeError::Refused(r)),
            Step::Hello(_) => return Err(HandshakeError::Malformed("expected proof".into())),
        };
        if !verify(&local.cookie, b"initiator", hub, &peer, &me, &p) {
            let _ = send(f, &Step::Refused(Refusal::Authentication)).await;
            return Err(HandshakeError::BadCookie);
        }
        send(
            f,
            &Step::Proof(mac(&local.cookie, b"acceptor", hub, &peer, &me)),
        )
        .await?;
        Ok(peer)
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}
