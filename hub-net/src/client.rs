//! A control client for a running node (what `hub ctl` and `hub status`
//! use). It authenticates like a node, with the hub's cookie.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use hub_core::protocol::{DEFAULT_MAX_FRAME, PROTOCOL_VERSION};

use crate::conn::FramedTcp;
use crate::control::{CtlReply, CtlRequest};
use crate::driver::codec;
use crate::handshake::{self, Hello, Local, Role, MAX_HANDSHAKE_FRAME};
use crate::wire::{self, Wire};

/// Why a control request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The node refused the handshake (wrong cookie, hub id or version).
    #[error("handshake failed: {0}")]
    Handshake(#[from] crate::error::HandshakeError),
    /// The connection broke or sent garbage.
    #[error("connection: {0}")]
    Io(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// An authenticated control connection.
#[derive(Debug)]
pub struct Client {
    framed: FramedTcp,
    next: u64,
}

impl Client {
    /// Connects to a node of hub `hub_id` at `addr`.
    pub async fn connect(
        addr: &str,
        hub_id: &str,
        cookie: impl Into<Bytes>,
    ) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Connect {
                addr: addr.into(),
                reason: "timed out".into(),
            })?
            .map_err(|e| ClientError::Connect {
                addr: addr.into(),
                reason: e.to_string(),
            })?;
        let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
        let local = Local {
            hello: Hello {
                version: PROTOCOL_VERSION,
                hub_id: hub_id.into(),
                node_id: format!("ctl-{}", std::process::id()),
                addr: String::new(),
                incarnation: 0,
                role: Role::Client,
                nonce: [0; 32],
            },
            cookie: cookie.into(),
            timeout: Duration::from_secs(5),
        };
        handshake::initiate(&mut framed, &local).await?;
        framed.codec_mut().set_max_frame_length(DEFAULT_MAX_FRAME);
        Ok(Client { framed, next: 0 })
    }

    /// Sends one request and waits up to `timeout` for its answer.
    pub async fn request(
        &mut self,
        request: CtlRequest,
        timeout: Duration,
    ) -> Result<CtlReply, ClientError> {
        self.next += 1;
        let req = self.next;
        let bytes = wire::encode(&Wire::Ctl { req, request })
            .map_err(|e| ClientError::Io(e.to_string()))?;
        self.framed
            .send(bytes)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let wait = async {
            loop {
                let frame = self
                    .framed
                    .next()
                    .await
                    .ok_or_else(|| ClientError::Io("connection closed".into()))?
                    .map_err(|e| ClientError::Io(e.to_string()))?;
                match wire::decode(&frame).map_err(|e| ClientError::Io(e.to_string()))? {
                    Wire::CtlReply { req: r, reply } if r == req => return Ok(reply),
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }
}
