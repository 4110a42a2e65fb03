//! hub-net's errors.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use hub_core::{CommandError, ConfigError, StartOutcome, StopOutcome};

/// Why a connection's handshake failed (the connection is closed).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
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
    /// The other side refused us, and said why.
    #[error("refused: {0}")]
    Refused(crate::handshake::Refusal),
}

impl HandshakeError {
    /// A one-word label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Version { .. } => "version",
            HandshakeError::HubId(_) => "hub_id",
            HandshakeError::BadCookie => "authentication",
            HandshakeError::Malformed(_) => "malformed",
            HandshakeError::Timeout => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::Io(_) => "io",
            HandshakeError::Refused(r) => r.reason(),
        }
    }
}

/// Why a hub could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
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
    /// A seed or advertised address is not `host:port`.
    #[error("bad address {addr:?}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node listens on an unspecified address and was not told which
    /// one to advertise: peers could not reach it.
    #[error("listening on {0} (any address) needs an advertised address (HubBuilder::advertise, hub node --advertise HOST:PORT) that peers can reach")]
    Advertise(String),
    /// Static children did not start: each with why.
    #[error("static children failed to start: {0}")]
    StaticChildren(String),
    /// A hook given to the builder could not be registered.
    #[error("bad hook: {0}")]
    Hook(#[from] crate::hooks::HookError),
}

/// Why a call to a hub failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
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
    /// An awaited start in which some child did not start (or the
    /// requested ack level was not reached): the outcome tells which
    /// started, where, and why the others did not.
    #[error("{}", start_summary(.0))]
    StartFailed(Box<StartOutcome>),
    /// [`crate::Hub::entity`] of a process type not registered on this
    /// node.
    #[error("process type {0} is not registered on this node")]
    UnregisteredType(&'static str),
    /// Arguments that cannot be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// An awaited stop in which some child did not stop.
    #[error("{}", stop_summary(.0))]
    StopFailed(Box<StopOutcome>),
}

impl HubError {
    /// The outcome of a start that failed in part.
    pub fn start_outcome(&self) -> Option<&StartOutcome> {
        match self {
            HubError::StartFailed(o) => Some(o),
            _ => None,
        }
    }

    /// For callers that handle partial starts themselves:
    /// `hub.start_children(..).await.or_else(HubError::into_start_outcome)`
    /// gives the outcome whether or not every child started; any other
    /// error stays an error.
    pub fn into_start_outcome(self) -> Result<StartOutcome, HubError> {
        match self {
            HubError::StartFailed(o) => Ok(*o),
            e => Err(e),
        }
    }

    /// The outcome of a stop that failed in part.
    pub fn stop_outcome(&self) -> Option<&StopOutcome> {
        match self {
            HubError::StopFailed(o) => Some(o),
            _ => None,
        }
    }
}

/// How many failures a summary names before "and N more".
const NAMED: usize = 3;

fn start_summary(o: &StartOutcome) -> String {
    let total = o.started.len() + o.failed.len();
    let mut s = if o.failed.is_empty() {
        format!(
            "{} children started but the ack level was not reached",
            o.started.len()
        )
    } else {
        format!("{} of {total} children did not start: ", o.failed.len())
    };
    let named: Vec<String> = o
        .failed
        .iter()
        .take(NAMED)
        .map(|f| match &f.node {
            Some(n) => format!("{} on {n}: {}", f.id, f.error),
            None => format!("{}: {}", f.id, f.error),
        })
        .collect();
    s.push_str(&named.join("; "));
    if o.failed.len() > NAMED {
        s.push_str(&format!("; and {} more", o.failed.len() - NAMED));
    }
    if o.rolled_back {
        s.push_str(" (the others were rolled back)");
    }
    s
}

fn stop_summary(o: &StopOutcome) -> String {
    let total = o.stopped.len() + o.failed.len();
    let named: Vec<String> = o
        .failed
        .iter()
        .take(NAMED)
        .map(|(id, node, e)| match node {
            Some(n) => format!("{id} on {n}: {e}"),
            None => format!("{id}: {e}"),
        })
        .collect();
    let mut s = format!(
        "{} of {total} children did not stop: {}",
        o.failed.len(),
        named.join("; ")
    );
    if o.failed.len() > NAMED {
        s.push_str(&format!("; and {} more", o.failed.len() - NAMED));
    }
    s
}

/// Why a `send` or `call` to a child failed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The connection to the child's node closed after the call was sent:
    /// it may or may not have been handled, so it is not sent again (a
    /// retry could apply it twice). Ask again if the message is
    /// idempotent.
    #[error("no answer from node {0}: the connection closed after the call was sent, so it may have been handled")]
    Unanswered(String),
    /// A typed message for a child of another kind.
    #[error("the child is of kind {actual:?}, not {expected:?}")]
    WrongKind {
        /// The kind the message's type is registered as.
        expected: String,
        /// The child's registered kind.
        actual: String,
    },
    /// The child runs nowhere and starting it on demand failed (its kind
    /// is registered with `HubBuilder::register_on_demand`): why.
    #[error("not running, and starting it on demand failed: {0}")]
    NotActivated(String),
}
