//! # hub-strategies
//!
//! The default implementations of hub-core's strategy traits. All are pure:
//! no I/O, no clock, randomness only from the RNG the node passes in.
//!
//! | family | default here |
//! |---|---|
//! | distribution | [`ConsistentHashing`]; also [`Guided`], [`CentralizedLoadBalancer`] |
//! | redundancy | [`Singularity`]; also [`Replication`] |
//! | migration | [`ColdSwap`]; also [`HotSwap`] |
//! | synchronization | [`PubSub`]; also [`Gossip`] |
//! | partition tolerance | [`Divergence`]; also [`StaticQuorum`], [`MajorityQuorum`], [`DynamicQuorum`] |
//!
//! ```
//! let strategies = hub_strategies::defaults();
//! assert_eq!(strategies.distribution.name(), "consistent_hashing");
//! ```
#![deny(missing_docs)]

mod config;
mod distribution;
mod migration;
mod partition;
mod quorum;
mod redundancy;
mod short_form;
mod sync;

pub use config::{
    DistributionConfig, MigrationConfig, PartitionConfig, RedundancyConfig, StrategyConfig,
    StrategyConfigError, SyncConfig,
};
pub use distribution::{CentralizedLoadBalancer, ConsistentHashing, Guided};
pub use migration::{ColdSwap, HotSwap};
pub use partition::Divergence;
pub use quorum::{DynamicQuorum, MajorityQuorum, StaticQuorum};
pub use redundancy::{RedundancySignal, Replication, ReplicationModel, Singularity};
pub use short_form::ChoiceError;
pub use sync::{Gossip, PubSub};

use hub_core::Strategies;

/// The SPEC's defaults: ConsistentHashing, Singularity, ColdSwap, PubSub,
/// Divergence.
pub fn defaults() -> Strategies {
    Strategies {
        distribution: Box::new(ConsistentHashing::default()),
        redundancy: Box::new(Singularity),
        migration: ColdSwap.into(),
        sync: Box::new(PubSub::default()),
        partition: Box::new(Divergence),
    }
}
