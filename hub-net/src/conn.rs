//! Established connections: a reader task that decodes frames (a decode
//! error closes the connection) and a writer task that batches whatever is
//! queued into one flush.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use hub_core::NodeId;

use crate::handshake::Hello;
use crate::metrics::Metrics;
use crate::wire::{self, Wire};

/// Frames a connection may have queued for writing; beyond, sends fail
/// and the core's retries (it tolerates loss) take over.
pub(crate) const OUTBOX: usize = 8192;

pub(crate) type FramedTcp = Framed<TcpStream, LengthDelimitedCodec>;

/// What connection tasks tell the node task.
pub(crate) enum NetEvent {
    /// A handshake succeeded.
    Up {
        peer: Hello,
        /// Boxed: the stream is large (madsim's especially).
        framed: Box<FramedTcp>,
        /// We dialed (else we accepted).
        initiator: bool,
    },
    /// A dial (or its handshake) failed.
    DialFailed { to: NodeId },
    /// A frame arrived.
    Frame { conn: u64, wire: Wire },
    /// The connection closed.
    Down { conn: u64 },
    /// Discovery's latest answer: the addresses to dial as seeds now.
    #[cfg(feature = "dns")]
    Discovered(Vec<String>),
}

/// The node task's handle on a connection.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Bytes>,
    /// Node id of the side that dialed (for simultaneous-connect dedup).
    pub(crate) dialer: NodeId,
    /// The peer's incarnation: a connection from a newer run always wins.
    pub(crate) incarnation: u64,
    cancel: CancellationToken,
}

impl Conn {
    pub(crate) fn close(&self) {
        self.cancel.cancel();
    }

    pub(crate) fn send(&self, w: &Wire) -> bool {
        match wire::encode(w) {
            Ok(b) => self.tx.try_send(b).is_ok(),
            Err(e) => {
                warn!(error = %e, "cannot encode frame");
                false
            }
        }
    }
}

/// Starts the reader and writer of an authenticated connection.
pub(crate) fn start(
    id: u64,
    framed: FramedTcp,
    dialer: NodeId,
    incarnation: u64,
    events: mpsc::Sender<NetEvent>,
    parent: &CancellationToken,
    metrics: Arc<Metrics>,
) -> Conn {
    let cancel = parent.child_token();
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUTBOX);
    let (mut sink, mut stream) = framed.split();
    let c = cancel.clone();
    let out = metrics.clone();
    tokio::spawn(async move {
        loop {
            select! {
                _ = c.cancelled() => break,
                first = rx.recv() => {
                    let Some(first) = first else { break };
                    out.frame_out(first.len());
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    // Batch: everything already queued shares one flush.
                    let mut failed = false;
                    while let Ok(more) = rx.try_recv() {
                        out.frame_out(more.len());
                        if sink.feed(more).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || sink.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        c.cancel();
    });
    let c = cancel.clone();
    tokio::spawn(async move {
        loop {
            let frame = select! {
                _ = c.cancelled() => break,
                f = stream.next() => f,
            };
            match frame {
                None => break,
                // An oversized or malformed length prefix is the peer's
                // fault; a reset or EOF mid-frame is a peer going away.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    warn!(conn = id, error = %e, "closing connection: bad frame");
                    break;
                }
                Some(Err(e)) => {
                    debug!(conn = id, error = %e, "connection read failed");
                    break;
                }
                Some(Ok(bytes)) => {
                    metrics.frame_in(bytes.len());
                    match wire::decode(&bytes) {
                        Ok(w) => {
                            if events
                                .send(NetEvent::Frame { conn: id, wire: w })
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(e) => {
                            warn!(conn = id, error = %e, "closing connection: undecodable frame");
                            break;
                        }
                    }
                }
            }
        }
        debug!(conn = id, "connection closed");
        c.cancel();
        let _ = events.send(NetEvent::Down { conn: id }).await;
    });
    Conn {
        id,
        tx,
        dialer,
        incarnation,
        cancel,
    }
}
