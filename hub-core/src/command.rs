//! Commands a driver gives a node, and the replies it gets back.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{CommandError, StartError, StopError};
use crate::id::{ChildId, Handle, NodeId};
use crate::spec::ChildSpec;

/// What to do with the children that started when others of the batch
/// failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Keep them.
    #[default]
    Continue,
    /// Stop them too.
    Rollback,
}

/// How many registries must hold a started child before an awaited start
/// returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ack {
    /// The calling node's (read-your-writes): owners send it the new rows
    /// before their results, so this costs nothing extra.
    #[default]
    Local,
    /// A majority of the ring members the calling node sees, itself
    /// included: any other majority of those members includes a node
    /// whose lookup finds the child.
    Quorum,
    /// Every ring member the calling node sees (members found down leave
    /// the ring and stop counting).
    All,
}

/// Options of a start (SPEC defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartOptions {
    /// Wait for every child's result (default false: reply
    /// [`Reply::StartInitiated`] at once).
    pub await_result: bool,
    /// How long to wait for results (default 10 s).
    pub timeout: Duration,
    /// Refuse ids that are already registered (default true).
    pub check_existing: bool,
    /// Rollback policy (default `Continue`).
    pub on_failure: OnFailure,
    /// With `await_result`: how many registries must hold the started
    /// children before the reply (default [`Ack::Local`]). Ignored for a
    /// start that is not awaited.
    pub ack: Ack,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            await_result: false,
            timeout: Duration::from_secs(10),
            check_existing: true,
            on_failure: OnFailure::Continue,
            ack: Ack::Local,
        }
    }
}

impl StartOptions {
    /// Default options with `await_result` set.
    pub fn awaited() -> Self {
        StartOptions {
            await_result: true,
            ..Self::default()
        }
    }

    /// Awaited options that also wait for `ack`.
    ///
    /// ```
    /// use hub_core::{Ack, StartOptions};
    /// let opts = StartOptions::acked(Ack::Quorum);
    /// assert!(opts.await_result);
    /// assert_eq!(opts.ack, Ack::Quorum);
    /// ```
    pub fn acked(ack: Ack) -> Self {
        StartOptions {
            ack,
            ..Self::awaited()
        }
    }
}

/// Options of a stop (SPEC defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopOptions {
    /// Wait for every child's result (default false).
    pub await_result: bool,
    /// How long to wait (default 10 s).
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            await_result: false,
            timeout: Duration::from_secs(10),
        }
    }
}

impl StopOptions {
    /// Default options with `await_result` set.
    pub fn awaited() -> Self {
        StopOptions {
            await_result: true,
            ..Self::default()
        }
    }
}

/// A local API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start children wherever the strategies place them.
    StartChildren {
        /// The specs (at least one).
        specs: Vec<ChildSpec>,
        /// Options.
        opts: StartOptions,
    },
    /// Stop children wherever they run.
    StopChildren {
        /// The ids (at least one).
        ids: Vec<ChildId>,
        /// Options.
        opts: StopOptions,
    },
    /// Leave the cluster gracefully: hand children over, then go.
    Leave,
    /// Drain another node on purpose: it leaves gracefully as if it had
    /// been given [`Command::Leave`] (children move with handover per the
    /// migration strategy), and, having left rather than failed, it drops
    /// out of quorum expectations everywhere. The reply
    /// ([`Reply::Decommissioned`]) comes once this node sees it gone.
    /// Naming this node itself is a [`Command::Leave`].
    Decommission(NodeId),
}

impl Command {
    /// How long the caller is willing to wait for this command.
    pub fn timeout(&self) -> Duration {
        match self {
            Command::StartChildren { opts, .. } => opts.timeout,
            Command::StopChildren { opts, .. } => opts.timeout,
            Command::Leave | Command::Decommission(_) => Duration::MAX,
        }
    }
}

/// One child that did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartFailure {
    /// The child.
    pub id: ChildId,
    /// The node that reported it, if any did.
    pub node: Option<NodeId>,
    /// Why.
    pub error: StartError,
}

/// Result of an awaited start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOutcome {
    /// Started children: where and with which handle.
    pub started: BTreeMap<ChildId, Vec<(NodeId, Handle)>>,
    /// Failures, per child and node.
    pub failed: Vec<StartFailure>,
    /// Whether a rollback stopped the children that had started.
    pub rolled_back: bool,
    /// Nodes whose registries were confirmed to hold every started child
    /// when the reply was sent, sorted (filled for [`Ack::Quorum`] and
    /// [`Ack::All`]; empty for [`Ack::Local`]).
    pub acknowledged: Vec<NodeId>,
    /// The requested [`Ack`] level was not reached within the timeout: the
    /// children run, but fewer registries than asked were confirmed.
    pub ack_timed_out: bool,
}

impl StartOutcome {
    /// True when every child started (and, with an ack level, enough
    /// registries were confirmed to hold them).
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty() && !self.ack_timed_out
    }
}

/// Result of an awaited stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopOutcome {
    /// Stopped children and the nodes they ran on.
    pub stopped: BTreeMap<ChildId, Vec<NodeId>>,
    /// Failures: child, node (if one answered), why.
    pub failed: Vec<(ChildId, Option<NodeId>, StopError)>,
}

impl StopOutcome {
    /// True when every child stopped.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A non-awaited start was dispatched.
    StartInitiated,
    /// An awaited start finished.
    Started(StartOutcome),
    /// A non-awaited stop was dispatched.
    StopInitiated,
    /// An awaited stop finished.
    Stopped(StopOutcome),
    /// The node has left the cluster; the driver may close everything.
    Left,
    /// The decommissioned node has handed its children over and left.
    Decommissioned(NodeId),
    /// The command was refused as a whole.
    Error(CommandError),
}
