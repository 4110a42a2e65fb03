//! Strategy choice as plain data, for config files (TOML, JSON...) and
//! command-line flags. Durations are in milliseconds, as in ProcessHub.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use hub_core::Strategies;

use crate::{
    CentralizedLoadBalancer, ColdSwap, ConsistentHashing, Divergence, DynamicQuorum, Gossip,
    Guided, HotSwap, MajorityQuorum, PubSub, RedundancySignal, Replication, ReplicationModel,
    Singularity, StaticQuorum,
};

/// Every strategy family; a missing family takes the SPEC default.
///
/// ```
/// use hub_strategies::StrategyConfig;
/// let cfg: StrategyConfig = serde_json::from_str(
///     r#"{"migration": {"kind": "hot_swap", "handover": true},
///         "partition": {"kind": "static_quorum", "quorum_size": 2}}"#,
/// ).unwrap();
/// let s = cfg.build().unwrap();
/// assert_eq!(s.migration.name(), "hot_swap");
/// assert_eq!(s.partition.name(), "static_quorum");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategyConfig {
    /// Placement.
    pub distribution: DistributionConfig,
    /// Copies per child.
    pub redundancy: RedundancyConfig,
    /// How children move.
    pub migration: MigrationConfig,
    /// Registry synchronization.
    pub sync: SyncConfig,
    /// Partition tolerance.
    pub partition: PartitionConfig,
}

/// See [`ConsistentHashing`], [`Guided`] and [`CentralizedLoadBalancer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DistributionConfig {
    /// [`ConsistentHashing`].
    ConsistentHashing {
        /// Virtual nodes per member (default 128).
        #[serde(default = "default_vnodes")]
        vnodes: u32,
    },
    /// [`Guided`].
    Guided,
    /// [`CentralizedLoadBalancer`].
    CentralizedLoadBalancer {
        /// Default 10000.
        #[serde(default = "default_push_interval")]
        push_interval: u64,
        /// Default 30.
        #[serde(default = "default_max_history_size")]
        max_history_size: usize,
        /// Default 0.9.
        #[serde(default = "default_weight_decay_factor")]
        weight_decay_factor: f64,
    },
}

fn default_push_interval() -> u64 {
    10_000
}
fn default_max_history_size() -> usize {
    30
}
fn default_weight_decay_factor() -> f64 {
    0.9
}

impl Default for DistributionConfig {
    fn default() -> Self {
        DistributionConfig::ConsistentHashing {
            vnodes: default_vnodes(),
        }
    }
}

fn default_vnodes() -> u32 {
    hub_core::ring::DEFAULT_VNODES
}

/// See [`Singularity`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RedundancyConfig {
    /// [`Singularity`].
    #[default]
    Singularity,
    /// [`Replication`].
    Replication {
        /// Copies per child.
        replication_factor: usize,
        /// Default active_active.
        #[serde(default)]
        replication_model: ReplicationModel,
        /// Default none.
        #[serde(default)]
        redundancy_signal: RedundancySignal,
    },
}

/// See [`ColdSwap`] and [`HotSwap`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MigrationConfig {
    /// [`ColdSwap`].
    #[default]
    ColdSwap,
    /// [`HotSwap`].
    HotSwap {
        /// Carry state over (default false).
        #[serde(default)]
        handover: bool,
        /// Default 5000.
        #[serde(default = "default_retention")]
        retention: u64,
        /// Default 3000.
        #[serde(default = "default_handover_data_wait")]
        handover_data_wait: u64,
        /// Default 10000.
        #[serde(default = "default_child_migration_timeout")]
        child_migration_timeout: u64,
    },
}

fn default_retention() -> u64 {
    5000
}
fn default_handover_data_wait() -> u64 {
    3000
}
fn default_child_migration_timeout() -> u64 {
    10_000
}

/// See [`PubSub`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncConfig {
    /// [`PubSub`].
    #[serde(rename = "pubsub")]
    PubSub {
        /// Default 15000.
        #[serde(default = "default_sync_interval")]
        sync_interval: u64,
    },
    /// [`Gossip`].
    Gossip {
        /// Default 15000.
        #[serde(default = "default_sync_interval")]
        sync_interval: u64,
        /// Default 3.
        #[serde(default = "default_recipients")]
        recipients: usize,
        /// Default true.
        #[serde(default = "default_true")]
        restricted_init: bool,
    },
}

fn default_recipients() -> usize {
    3
}
fn default_true() -> bool {
    true
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig::PubSub {
            sync_interval: default_sync_interval(),
        }
    }
}

fn default_sync_interval() -> u64 {
    15_000
}

/// See [`Divergence`], [`StaticQuorum`], [`MajorityQuorum`],
/// [`DynamicQuorum`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PartitionConfig {
    /// [`Divergence`].
    #[default]
    Divergence,
    /// [`StaticQuorum`].
    StaticQuorum {
        /// Nodes needed, self included.
        quorum_size: usize,
        /// Check at start too (default false).
        #[serde(default)]
        startup_confirm: bool,
    },
    /// [`MajorityQuorum`].
    MajorityQuorum {
        /// Expected size of the cluster at start.
        initial_cluster_size: usize,
    },
    /// [`DynamicQuorum`].
    DynamicQuorum {
        /// Percent of the recent cluster needed (1..=100).
        quorum_size: u8,
        /// Window of remembered losses (default 30000).
        #[serde(default = "default_threshold_time")]
        threshold_time: u64,
    },
}

fn default_threshold_time() -> u64 {
    30_000
}

/// A strategy option out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid strategy option {option}: {reason}")]
pub struct StrategyConfigError {
    /// The option, e.g. `partition.quorum_size`.
    pub option: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

fn check(ok: bool, option: &'static str, reason: &'static str) -> Result<(), StrategyConfigError> {
    if ok {
        Ok(())
    } else {
        Err(StrategyConfigError { option, reason })
    }
}

impl StrategyConfig {
    /// The strategies this describes, after checking every option.
    pub fn build(&self) -> Result<Strategies, StrategyConfigError> {
        let ms = Duration::from_millis;
        let distribution: Box<dyn hub_core::DistributionStrategy> = match self.distribution {
            DistributionConfig::ConsistentHashing { vnodes } => {
                check(vnodes > 0, "distribution.vnodes", "must be positive")?;
                Box::new(ConsistentHashing { vnodes })
            }
            DistributionConfig::Guided => Box::new(Guided),
            DistributionConfig::CentralizedLoadBalancer {
                push_interval,
                max_history_size,
                weight_decay_factor,
            } => {
                check(
                    push_interval > 0,
                    "distribution.push_interval",
                    "must be positive",
                )?;
                check(
                    max_history_size > 0,
                    "distribution.max_history_size",
                    "must be positive",
                )?;
                check(
                    weight_decay_factor > 0.0 && weight_decay_factor <= 1.0,
                    "distribution.weight_decay_factor",
                    "must be in (0, 1]",
                )?;
                Box::new(CentralizedLoadBalancer::new(
                    ms(push_interval),
                    max_history_size,
                    weight_decay_factor,
                ))
            }
        };
        let migration: hub_core::MigrationMode = match self.migration {
            MigrationConfig::ColdSwap => ColdSwap.into(),
            MigrationConfig::HotSwap {
                handover,
                retention,
                handover_data_wait,
                child_migration_timeout,
            } => {
                check(
                    child_migration_timeout > 0,
                    "migration.child_migration_timeout",
                    "must be positive",
                )?;
                HotSwap {
                    handover,
                    retention: ms(retention),
                    handover_data_wait: ms(handover_data_wait),
                    child_migration_timeout: ms(child_migration_timeout),
                }
                .into()
            }
        };
        let sync: Box<dyn hub_core::SyncStrategy> = match self.sync {
            SyncConfig::PubSub { sync_interval } => {
                check(sync_interval > 0, "sync.sync_interval", "must be positive")?;
                Box::new(PubSub {
                    sync_interval: ms(sync_interval),
                })
            }
            SyncConfig::Gossip {
                sync_interval,
                recipients,
                restricted_init,
            } => {
                check(sync_interval > 0, "sync.sync_interval", "must be positive")?;
                check(recipients > 0, "sync.recipients", "must be positive")?;
                Box::new(Gossip {
                    sync_interval: ms(sync_interval),
                    recipients,
                    restricted_init,
                })
            }
        };
        let partition: Box<dyn hub_core::PartitionStrategy> = match self.partition {
            PartitionConfig::Divergence => Box::new(Divergence),
            PartitionConfig::StaticQuorum {
                quorum_size,
                startup_confirm,
            } => {
                check(quorum_size > 0, "partition.quorum_size", "must be positive")?;
                Box::new(StaticQuorum {
                    quorum_size,
                    startup_confirm,
                })
            }
            PartitionConfig::MajorityQuorum {
                initial_cluster_size,
            } => {
                check(
                    initial_cluster_size > 0,
                    "partition.initial_cluster_size",
                    "must be positive",
                )?;
                Box::new(MajorityQuorum::new(initial_cluster_size))
            }
            PartitionConfig::DynamicQuorum {
                quorum_size,
                threshold_time,
            } => {
                check(
                    (1..=100).contains(&quorum_size),
                    "partition.quorum_size",
                    "must be a percent in 1..=100",
                )?;
                Box::new(DynamicQuorum {
                    quorum_size,
                    threshold_time: ms(threshold_time),
                })
            }
        };
        let redundancy: Box<dyn hub_core::RedundancyStrategy> = match self.redundancy {
            RedundancyConfig::Singularity => Box::new(Singularity),
            RedundancyConfig::Replication {
                replication_factor,
                replication_model,
                redundancy_signal,
            } => {
                check(
                    replication_factor > 0,
                    "redundancy.replication_factor",
                    "must be positive",
                )?;
                Box::new(Replication {
                    replication_factor,
                    model: replication_model,
                    signal: redundancy_signal,
                })
            }
        };
        Ok(Strategies {
            distribution,
            redundancy,
            migration,
            sync,
            partition,
        })
    }
}
