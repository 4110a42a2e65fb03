use hub_core::{RedundancyStrategy, Role};

/// One instance per child id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Singularity;

impl RedundancyStrategy for Singularity {
    fn name(&self) -> &'static str {
        "singularity"
    }

    fn replicas(&self, _cluster_size: usize) -> usize {
        1
    }
}

/// Whether every replica serves, or only the first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationModel {
    /// Every replica is active.
    #[default]
    ActiveActive,
    /// The first owner's replica is active, the others stand by; calls go
    /// to the active one.
    ActivePassive,
}

/// Which role changes a replica is told about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedundancySignal {
    /// None.
    #[default]
    None,
    /// Becoming active.
    Active,
    /// Becoming passive.
    Passive,
    /// Both.
    All,
}

/// `replication_factor` copies of every child on distinct ring successors
/// (fewer while the cluster is smaller). In ActivePassive exactly one
/// replica, the first owner's, is active; when its node goes, the next
/// owner's replica becomes active and, with a signal, is told so.
///
/// ```
/// use hub_core::{RedundancyStrategy, Role};
/// use hub_strategies::{Replication, ReplicationModel, RedundancySignal};
/// let r = Replication {
///     replication_factor: 3,
///     model: ReplicationModel::ActivePassive,
///     signal: RedundancySignal::All,
/// };
/// assert_eq!(r.replicas(2), 2);
/// assert_eq!(r.role(0), Role::Active);
/// assert_eq!(r.role(1), Role::Passive);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replication {
    /// Copies per child (default 2).
    pub replication_factor: usize,
    /// Default ActiveActive.
    pub model: ReplicationModel,
    /// Default None.
    pub signal: RedundancySignal,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replication_factor: 2,
            model: ReplicationModel::default(),
            signal: RedundancySignal::default(),
        }
    }
}

impl RedundancyStrategy for Replication {
    fn name(&self) -> &'static str {
        "replication"
    }

    fn replicas(&self, cluster_size: usize) -> usize {
        self.replication_factor.min(cluster_size).max(1)
    }

    fn role(&self, index: usize) -> Role {
        match self.model {
            ReplicationModel::ActiveActive => Role::Active,
            ReplicationModel::ActivePassive if index == 0 => Role::Active,
            ReplicationModel::ActivePassive => Role::Passive,
        }
    }

    fn signals(&self, role: Role) -> bool {
        match self.signal {
            RedundancySignal::None => false,
            RedundancySignal::All => true,
            RedundancySignal::Active => role == Role::Active,
            RedundancySignal::Passive => role == Role::Passive,
        }
    }
}
