//! Typed errors. Each says what happened to the node's state: unless stated
//! otherwise, an error means **nothing changed**.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::id::{ChildId, Handle, NodeId};

/// Why a [`crate::ChildSpec`] was refused (nothing was started).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SpecError {
    /// The child id is empty.
    #[error("child id is empty")]
    EmptyId,
    /// The kind name is empty.
    #[error("process kind is empty")]
    EmptyKind,
    /// A field is longer than [`crate::spec::MAX_NAME_LEN`].
    #[error("{field} is longer than {} bytes", crate::spec::MAX_NAME_LEN)]
    TooLong {
        /// Which field.
        field: String,
    },
    /// More than [`crate::spec::MAX_METADATA_ENTRIES`] metadata entries.
    #[error("{0} metadata entries, at most {max} allowed", max = crate::spec::MAX_METADATA_ENTRIES)]
    TooManyTags(usize),
    /// A placement constraint is not a list of `key=value` pairs.
    #[error("malformed placement constraint {0:?} (want key=value,key2=value2)")]
    BadConstraint(String),
}

/// Why one child did not start (reported per child; other children of the
/// same batch are unaffected unless the batch asked for rollback).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StartError {
    /// The id is already registered (with `check_existing`); nothing restarted.
    #[error("already started on {node} as {handle}")]
    AlreadyStarted {
        /// Where it runs.
        node: NodeId,
        /// Its handle there.
        handle: Handle,
    },
    /// No process kind of that name is registered on the owner.
    #[error("unknown process kind {0:?}")]
    UnknownKind(String),
    /// The process's init failed.
    #[error("init failed: {0}")]
    InitFailed(String),
    /// No answer before the start timeout.
    #[error("timed out waiting for the start result")]
    Timeout,
    /// The owner is in partition mode.
    #[error("hub partitioned")]
    Partitioned,
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(SpecError),
    /// The node was asked to start a child it does not own and could not
    /// forward it any further.
    #[error("forwarding limit reached between nodes that disagree on membership: {0:?}")]
    HopLimit(Vec<NodeId>),
    /// The owner went down before answering.
    #[error("owner {0} went down")]
    OwnerDown(NodeId),
    /// The distribution strategy cannot place it (e.g. Guided without a
    /// node mapping, or naming a node that is not a member).
    #[error("cannot place it: {0}")]
    Placement(String),
    /// The node's `max_children` cap is reached.
    #[error("max_children reached on {0}")]
    MaxChildren(NodeId),
    /// Started, then stopped again because another child of the batch failed
    /// and the batch asked for `Rollback`.
    #[error("rolled back")]
    RolledBack,
    /// The node is shutting down.
    #[error("node shutting down")]
    ShuttingDown,
    /// Strict mode: fewer than `quorum` nodes granted the child (another
    /// node may hold it, or a quorum is out of reach). Nothing started.
    #[error("strict mode: {granted} of {quorum} grants")]
    NotGranted {
        /// Grants received, this node's included.
        granted: usize,
        /// Grants needed.
        quorum: usize,
    },
}

/// Why one child was not stopped.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopError {
    /// No such child in the registry.
    #[error("child not found")]
    NotFound,
    /// No answer before the stop timeout.
    #[error("timed out waiting for the stop result")]
    Timeout,
    /// The node is in partition mode.
    #[error("hub partitioned")]
    Partitioned,
    /// The host went down before answering.
    #[error("host {0} went down")]
    HostDown(NodeId),
}

/// A command refused as a whole (nothing was done).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// An empty batch.
    #[error("no children given")]
    NoChildren,
    /// A spec in the batch is invalid.
    #[error("invalid spec for {id:?}: {error}")]
    InvalidSpec {
        /// Offending child (may be empty).
        id: ChildId,
        /// Why.
        error: SpecError,
    },
    /// The node is in partition mode.
    #[error("hub partitioned")]
    Partitioned,
    /// The node is leaving the cluster.
    #[error("node shutting down")]
    ShuttingDown,
    /// The command waited in the redistribution queue past its timeout.
    #[error("timed out waiting for the redistribution lock")]
    LockTimeout,
    /// No such member, or it is not in the ring (down, or never joined).
    #[error("node {0} is not a live member of the cluster")]
    UnknownNode(NodeId),
    /// The node being decommissioned failed (went down or restarted)
    /// before it finished leaving; its children are restarted as after any
    /// crash.
    #[error("node {0} failed before it finished leaving")]
    NodeFailed(NodeId),
    /// The node being decommissioned did not finish leaving within its
    /// shutdown timeout plus failure detection.
    #[error("node {0} did not finish leaving in time")]
    DecommissionTimeout(NodeId),
}

/// A [`crate::Config`] the node cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `hub_id` is empty.
    #[error("hub id is empty")]
    EmptyHubId,
    /// `node_id` is empty.
    #[error("node id is empty")]
    EmptyNodeId,
    /// A timing option is inconsistent.
    #[error("invalid timing: {0}")]
    Timing(&'static str),
    /// Strict single-instance mode is misconfigured or combined with a
    /// strategy that would run two copies.
    #[error("strict mode: {0}")]
    Strict(&'static str),
}

/// A message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame would exceed the maximum frame size.
    #[error("frame of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// Serialization failed.
    #[error("serialization failed: {0}")]
    Serialize(String),
}

/// A frame could not be decoded. The transport must close the connection.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame exceeds the maximum frame size.
    #[error("frame of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Frame size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The peer speaks a protocol version we do not.
    #[error("unsupported protocol version {got} (supported: {supported})")]
    UnsupportedVersion {
        /// Version in the frame.
        got: u16,
        /// Our version.
        supported: u16,
    },
    /// The bytes are not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Bytes left over after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}
