//! The short text forms of strategy choices, as `hub node` flags take
//! them: `--partition majority:5`, `--migration hot-handover`,
//! `--distribution balanced`.
//!
//! ```
//! use hub_strategies::{MigrationConfig, PartitionConfig};
//! let p: PartitionConfig = "majority:5".parse().unwrap();
//! assert_eq!(p, PartitionConfig::MajorityQuorum { initial_cluster_size: 5 });
//! assert!("warm".parse::<MigrationConfig>().is_err());
//! ```

use std::str::FromStr;

use thiserror::Error;

use crate::config::{DistributionConfig, MigrationConfig, PartitionConfig};

/// A strategy choice that is not one of the known short forms: what was
/// wrong and what would be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ChoiceError(String);

impl FromStr for PartitionConfig {
    type Err = ChoiceError;

    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        parse_partition(s).map_err(ChoiceError)
    }
}

fn parse_partition(s: &str) -> Result<PartitionConfig, String> {
    let mut parts = s.split(':');
    let kind = parts.next().unwrap_or_default();
    let mut num = |what: &str| -> Result<u64, String> {
        parts
            .next()
            .ok_or(format!("{kind} needs {what}, e.g. {kind}:3"))
            .and_then(|raw| {
                raw.parse::<u64>()
                    .map_err(|e| format!("{kind} needs {what} as a number, not {raw:?} ({e})"))
            })
    };
    let choice = match kind {
        "divergence" => PartitionConfig::Divergence,
        "static" => PartitionConfig::StaticQuorum {
            quorum_size: num("a quorum size")? as usize,
            startup_confirm: false,
        },
        "majority" => PartitionConfig::MajorityQuorum {
            initial_cluster_size: num("an initial cluster size")? as usize,
        },
        "dynamic" => {
            let pct = num("a percent")?;
            if !(1..=100).contains(&pct) {
                return Err("dynamic quorum percent must be 1..=100".into());
            }
            let secs = num("a threshold in seconds").unwrap_or(30);
            PartitionConfig::DynamicQuorum {
                quorum_size: pct as u8,
                threshold_time: secs * 1000,
            }
        }
        other => return Err(format!("unknown partition strategy {other:?}")),
    };
    Ok(choice)
}

impl FromStr for MigrationConfig {
    type Err = ChoiceError;

    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        parse_migration(s).map_err(ChoiceError)
    }
}

fn parse_migration(s: &str) -> Result<MigrationConfig, String> {
    let hot = |handover| MigrationConfig::HotSwap {
        handover,
        retention: 5000,
        handover_data_wait: 3000,
        child_migration_timeout: 10_000,
    };
    match s {
        "cold" => Ok(MigrationConfig::ColdSwap),
        "hot" => Ok(hot(false)),
        "hot-handover" => Ok(hot(true)),
        other => Err(format!(
            "unknown migration {other:?} (cold, hot or hot-handover)"
        )),
    }
}

impl FromStr for DistributionConfig {
    type Err = ChoiceError;

    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        parse_distribution(s).map_err(ChoiceError)
    }
}

fn parse_distribution(s: &str) -> Result<DistributionConfig, String> {
    match s {
        "hashing" => Ok(DistributionConfig::default()),
        "guided" => Ok(DistributionConfig::Guided),
        "balanced" => Ok(DistributionConfig::CentralizedLoadBalancer {
            push_interval: 10_000,
            max_history_size: 30,
            weight_decay_factor: 0.9,
        }),
        other => Err(format!(
            "unknown distribution {other:?} (hashing, guided or balanced)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_flags_parse_or_explain() {
        let p = |s: &str| s.parse::<PartitionConfig>().map_err(|e| e.to_string());
        assert_eq!(p("divergence"), Ok(PartitionConfig::Divergence));
        assert_eq!(
            p("static:3"),
            Ok(PartitionConfig::StaticQuorum {
                quorum_size: 3,
                startup_confirm: false
            })
        );
        assert_eq!(
            p("majority:5"),
            Ok(PartitionConfig::MajorityQuorum {
                initial_cluster_size: 5
            })
        );
        let dynamic = |quorum_size, threshold_time| PartitionConfig::DynamicQuorum {
            quorum_size,
            threshold_time,
        };
        assert_eq!(p("dynamic:60"), Ok(dynamic(60, 30_000)));
        assert_eq!(p("dynamic:60:10"), Ok(dynamic(60, 10_000)));
        assert!(p("static").unwrap_err().contains("needs"));
        assert!(p("dynamic:0").is_err());
        assert!(p("quorum:2").unwrap_err().contains("unknown"));
    }

    #[test]
    fn migration_and_distribution_flags_parse_or_explain() {
        let m = |s: &str| s.parse::<MigrationConfig>();
        assert_eq!(m("cold"), Ok(MigrationConfig::ColdSwap));
        assert!(matches!(
            m("hot"),
            Ok(MigrationConfig::HotSwap {
                handover: false,
                ..
            })
        ));
        assert!(matches!(
            m("hot-handover"),
            Ok(MigrationConfig::HotSwap { handover: true, .. })
        ));
        assert!(m("warm")
            .unwrap_err()
            .to_string()
            .contains("cold, hot or hot-handover"));
        let d = |s: &str| s.parse::<DistributionConfig>();
        assert_eq!(d("hashing"), Ok(DistributionConfig::default()));
        assert_eq!(d("guided"), Ok(DistributionConfig::Guided));
        assert!(matches!(
            d("balanced"),
            Ok(DistributionConfig::CentralizedLoadBalancer { .. })
        ));
        assert!(d("random").is_err());
    }
}
