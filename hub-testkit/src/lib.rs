//! # hub-testkit
//!
//! What every processhub-rs test needs:
//! - [`Cluster`]: a deterministic in-memory cluster of `hub_core::Node`s
//!   with virtual time, a seeded network that delays, drops, duplicates and
//!   reorders messages, partitions and heals, crashes and restarts, and a
//!   fake local process runtime ([`FakeRuntime`]);
//! - [`invariants`]: the DESIGN.md invariants as checkers;
//! - [`gen`]: proptest generators for ids, specs, messages, membership
//!   changes and operation sequences.
//!
//! Every message crosses the real codec (`protocol::encode`/`decode`), so a
//! test also proves the message is serializable within the frame limit.
//!
//! ```
//! use hub_testkit::{Cluster, ClusterOptions};
//! use hub_core::{ChildSpec, StartOptions};
//!
//! let mut c = Cluster::new(ClusterOptions::new(3).seed(7));
//! c.settle();
//! let specs = (0..100).map(|i| ChildSpec::new(format!("c{i}"), "counter")).collect();
//! let outcome = c.start(0, specs, StartOptions::awaited()).unwrap();
//! assert!(outcome.is_ok());
//! c.settle();
//! hub_testkit::invariants::check_all(&c).unwrap();
//! ```
#![deny(missing_docs)]

mod cluster;
mod failure;
pub mod gen;
pub mod invariants;
mod network;
mod options;
mod runtime;

pub use cluster::Cluster;
pub use failure::Failure;
pub use network::NetConfig;
pub use options::{ClusterOptions, StrategyFactory};
pub use runtime::FakeRuntime;

/// `n` specs `child-0`, `child-1`... of kind `counter`.
pub fn specs(n: usize) -> Vec<hub_core::ChildSpec> {
    (0..n)
        .map(|i| hub_core::ChildSpec::new(format!("child-{i}"), "counter"))
        .collect()
}
