//! Why a test cluster's operation failed.

use hub_core::{CommandError, Reply};

/// Why a cluster operation did not give the expected answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The node refused the command.
    #[error("the node refused the command: {0:?}")]
    Refused(CommandError),
    /// No reply within the time allowed.
    #[error("no reply within the time allowed")]
    NoReply,
    /// The node is crashed.
    #[error("node {0} is crashed")]
    NodeDown(usize),
    /// A reply of another kind than expected.
    #[error("an unexpected reply: {0:?}")]
    Unexpected(Reply),
    /// A message could not cross the codec.
    #[error("a message could not cross the codec: {0}")]
    Codec(String),
    /// The step limit was hit: something loops without time advancing.
    #[error("livelock: the step limit was hit without time advancing")]
    Livelock,
    /// The cluster did not become quiet in time; why.
    #[error("the cluster did not become quiet: {0}")]
    NotQuiet(String),
}
