//! # hub-sim
//!
//! Runs the unmodified hub-net runtime — tokio tasks, TCP, timers — inside
//! madsim's deterministic simulator, where the network, the clock and
//! randomness are simulated and driven by one seed. Build and test it with
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p hub-sim`;
//! in a normal build this crate only holds the checks shared with it.
//!
//! A scenario is plain Rust: a [`SimCluster`] of N nodes, a workload, a
//! schedule of faults (partitions, clogged links, kills and restarts), a
//! quiet period, then the invariants of [`check`].
#![deny(missing_docs)]

pub mod check;
#[cfg(madsim)]
mod clients;
#[cfg(madsim)]
mod cluster;
pub mod history;
pub mod oracle;
#[cfg(madsim)]
pub mod scenario;
#[cfg(madsim)]
mod tally;
#[cfg(madsim)]
mod witness;
#[cfg(madsim)]
mod workload;
#[cfg(madsim)]
pub use clients::{Clients, CounterKind};
#[cfg(madsim)]
pub use cluster::{SimCluster, SimOptions, Trace};
#[cfg(madsim)]
pub use tally::{now_micros, Tally, TallyMsg};
#[cfg(madsim)]
pub use witness::Witness;
#[cfg(madsim)]
pub use workload::Workload;
