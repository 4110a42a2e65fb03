//! # hub-net
//!
//! The processhub-rs runtime: the `hub_core` state machine driven over TCP,
//! with real processes.
//!
//! - **Transport**: one TCP connection per peer pair, length-delimited
//!   postcard frames (8 MiB limit by default), batched writes, reconnects
//!   with capped exponential backoff and jitter, and a [`handshake`] with
//!   protocol version, hub id and mutual HMAC-SHA-256 authentication over
//!   both sides' nonces with a shared cookie. A bad handshake, frame or
//!   message closes that connection with a logged reason; the node serves
//!   everyone else.
//! - **Processes**: implement [`Process`], register it under a kind name;
//!   a local supervisor runs each child as a task and restarts it within
//!   `max_restarts` in `max_seconds`.
//! - **API**: [`Hub`] — start/stop children, queries, `send`/`call` to a
//!   child wherever it runs, events, graceful `shutdown`.
//!
//! Runs on tokio, or on madsim's simulated tokio when built with
//! `--cfg madsim`.
//!
//! ```no_run
//! use std::time::Duration;
//! use hub_core::{ChildSpec, StartOptions};
//! use hub_net::examples::{Counter, CounterMsg};
//! use hub_net::Hub;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let a = Hub::builder("demo").node_id("a").listen("127.0.0.1:0").cookie("s3cret")
//!     .register::<Counter>("counter").start().await?;
//! let b = Hub::builder("demo").node_id("b").listen("127.0.0.1:0").cookie("s3cret")
//!     .register::<Counter>("counter")
//!     .seed(a.local_addr().unwrap().to_string()).start().await?;
//! let spec = ChildSpec::new("c1", "counter");
//! b.start_child(spec, StartOptions::awaited()).await?;
//! let n = a.call::<Counter>("c1", &CounterMsg::Add(5), Duration::from_secs(1)).await?;
//! assert_eq!(n, 5);
//! b.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[macro_use]
mod select;
mod activation;
mod admission;
mod builder;
mod calls;
pub mod client;
mod conn;
mod context;
pub mod control;
#[cfg(feature = "management")]
mod dashboard;
#[cfg(feature = "dns")]
mod discovery;
mod driver;
pub mod error;
pub mod examples;
pub mod handshake;
mod hooks;
mod hub;
mod lookup;
#[cfg(feature = "management")]
mod management;
mod metrics;
pub mod process;
mod snapshot;
mod supervisor;
pub mod wire;

pub use builder::{HubBuilder, STATIC_JOIN_WAIT};
pub use calls::Entity;
pub use client::{Client, ClientError};
pub use context::{Context, Timer};
#[cfg(feature = "dns")]
pub use discovery::{DiscoveryError, DnsDiscovery};
pub use error::{CallError, HandshakeError, HubError, StartupError};
pub use hooks::{HookError, HookFn, HOOK_QUEUE};
pub use hub::Hub;
pub use process::{Kinds, Process, Terminate};
pub use snapshot::SnapshotPolicy;
pub use supervisor::Limits;
