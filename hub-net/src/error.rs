//! hub-net's errors.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use hub_core::{CommandError, ConfigError};

/// Why a connection's handshake failed (the connection is closed).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {got} (ours: {ours})")]
    Version {
        /// Theirs.
        got: u16,
        /// Ours.
        ours: u16,
    },
    /// The peer belongs to another hub.
    #[error("wrong hub id {0:?}")]
    HubId(String),
    /// The peer's proof does not match the cookie.
    #[error("authentication failed (wrong cookie)")]
    BadCookie,
    /// The peer sent something that is not a handshake step.
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed during the handshake.
    #[error("connection closed during handshake")]
    Closed,
    /// An I/O error (includes an oversized frame).
    #[error("i/o: {0}")]
    Io(String),
}

/// Why a hub could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    /// The core refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A process kind's snapshot policy is unusable.
    #[error("snapshot policy of kind {kind:?}: {reason}")]
    SnapshotPolicy {
        /// The kind.
        kind: String,
        /// Why.
        reason: &'static str,
    },
    /// A static child failed to start.
    #[error("static children failed to start: {0}")]
    StaticChildren(String),
}

/// Why a call to a hub failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HubError {
    /// The hub has shut down.
    #[error("hub is shut down")]
    Closed,
    /// The command was refused.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The node replied with something unexpected (a bug).
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// Why a `send` or `call` to a child failed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CallError {
    /// No such child in the registry.
    #[error("child not found")]
    NotFound,
    /// The child's node is not reachable now.
    #[error("node {0} not connected")]
    NotConnected(String),
    /// No reply in time.
    #[error("call timed out")]
    Timeout,
    /// The message or reply could not be (de)serialized for this kind.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// The child crashed handling it.
    #[error("child crashed: {0}")]
    Crashed(String),
    /// The hub is shut down.
    #[error("hub is shut down")]
    Closed,
    /// The child is being handed to another node; [`crate::Hub::call`]
    /// retries this until its timeout.
    #[error("child is moving to another node")]
    Moving,
}
