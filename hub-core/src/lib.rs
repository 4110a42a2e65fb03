//! # hub-core
//!
//! The deterministic heart of processhub-rs: a sans-IO state machine that
//! places stateful processes ("children") on a cluster of nodes with a
//! consistent-hash [`Ring`], keeps a replicated [`Registry`] of where they
//! run, detects failures, and moves children when membership changes.
//!
//! It performs no I/O, spawns no task, reads no clock and uses no global
//! randomness: a driver feeds it inputs (`handle_*`, each with `now`) and
//! performs its [`Output`]s. `hub-net` drives it over TCP, `hub-testkit`
//! drives many nodes in memory with virtual time.
//!
//! Modules: [`ring`], [`registry`], [`membership`], [`protocol`],
//! [`strategy`] (traits; implementations in `hub-strategies`).
//!
//! ## Driving a node with your own transport
//!
//! ```
//! use std::collections::VecDeque;
//! use hub_core::*;
//! # fn strategies() -> Strategies { hub_strategies::defaults() }
//!
//! // Your transport: here a queue of (to, from, message).
//! let mut wire: VecDeque<(NodeId, NodeId, protocol::Message)> = VecDeque::new();
//! let mut now = Time::ZERO;
//! let mut node = Node::new(Config::new("hub", NodeId::new("a")), strategies(), now).unwrap();
//!
//! // A local API call.
//! let spec = ChildSpec::new("worker-1", "echo");
//! let cmd = Command::StartChildren { specs: vec![spec], opts: StartOptions::awaited() };
//! node.handle_command(now, RequestId(1), cmd);
//!
//! // The driver loop: perform every output, feed results back.
//! let mut replies = Vec::new();
//! for _ in 0..10 {
//!     while let Some(out) = node.poll_output() {
//!         match out {
//!             Output::Send { to, message } => wire.push_back((to, node.id().clone(), message)),
//!             Output::Spawn { spec, .. } => {
//!                 // Start the process, then report it (your supervisor does this).
//!                 node.handle_local(now, LocalReport::Started { id: spec.id.clone(), handle: Handle(1) });
//!             }
//!             Output::Stop { id, .. } => {
//!                 node.handle_local(now, LocalReport::Exited { id, reason: ExitReason::Stopped, state: None });
//!             }
//!             Output::Reply { request, reply } => replies.push((request, reply)),
//!             // Only HotSwap with handover snapshots and resumes processes;
//!             // only a redundancy strategy that signals sends roles.
//!             Output::RequestState { .. } | Output::Resume { .. } | Output::Role { .. } => {}
//!             Output::Event(_) => {}
//!         }
//!     }
//!     // Messages from peers: node.handle_message(now, &from, message).
//!     // Timers: sleep until poll_timeout(), then handle_timeout(now).
//!     now = node.poll_timeout().unwrap_or(now);
//!     node.handle_timeout(now);
//! }
//! assert!(matches!(&replies[0].1, Reply::Started(o) if o.is_ok()));
//! assert_eq!(node.child_lookup("worker-1"), vec![(NodeId::new("a"), Handle(1))]);
//! ```
#![deny(missing_docs)]

pub mod command;
pub mod config;
pub mod error;
pub mod event;
pub mod id;
pub mod membership;
mod node;
pub mod output;
pub mod protocol;
pub mod registry;
pub mod ring;
pub mod spec;
pub mod strategy;
pub mod strict;
pub mod time;

pub use command::{
    Ack, Command, OnFailure, Reply, StartFailure, StartOptions, StartOutcome, StopOptions,
    StopOutcome,
};
pub use config::Config;
pub use error::{
    CommandError, ConfigError, DecodeError, EncodeError, SpecError, StartError, StopError,
};
pub use event::{Direction, Event, EventKind};
pub use id::{ChildId, Handle, Incarnation, NodeId, RequestId};
pub use node::{Counters, Node, Unsettled};
pub use output::{ExitReason, LocalReport, Output, StopReason};
pub use protocol::{Message, NodeInfo};
pub use registry::Registry;
pub use ring::Ring;
pub use spec::{ChildSpec, RestartPolicy};
pub use strategy::{
    DistributionStrategy, LoadReports, MigrationMode, PartitionStrategy, QuorumView,
    RedundancyStrategy, Role, Strategies, SyncStrategy,
};
pub use strict::Strict;
pub use time::Time;
