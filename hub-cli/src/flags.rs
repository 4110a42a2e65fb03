//! Flag values: strategy choices, tags, the strategies file, the cookie.

use std::path::PathBuf;

use bytes::Bytes;
use hub_strategies::{DistributionConfig, MigrationConfig, PartitionConfig, StrategyConfig};

use crate::args::Auth;
use crate::AnyError;

pub(crate) fn parse_partition(s: &str) -> Result<PartitionConfig, String> {
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

pub(crate) fn parse_migration(s: &str) -> Result<MigrationConfig, String> {
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

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains(',') && !v.contains(',') => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("tag {s:?}: want key=value (no commas)")),
    }
}

pub(crate) fn parse_distribution(s: &str) -> Result<DistributionConfig, String> {
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

/// The strategies of `hub node`: the file's, then the flags'.
pub(crate) fn node_strategies(
    file: Option<&PathBuf>,
    partition: Option<PartitionConfig>,
    migration: Option<MigrationConfig>,
    distribution: Option<DistributionConfig>,
) -> Result<hub_core::Strategies, AnyError> {
    let mut cfg = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            toml::from_str::<StrategyConfig>(&text)
                .map_err(|e| format!("bad strategies file {}: {e}", f.display()))?
        }
        None => StrategyConfig::default(),
    };
    if let Some(p) = partition {
        cfg.partition = p;
    }
    if let Some(m) = migration {
        cfg.migration = m;
    }
    if let Some(d) = distribution {
        cfg.distribution = d;
    }
    Ok(cfg.build()?)
}

pub(crate) fn cookie(auth: &Auth) -> Result<Bytes, AnyError> {
    if let Some(f) = &auth.cookie_file {
        let s =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return Ok(Bytes::from(s.trim().to_string()));
    }
    if let Ok(s) = std::env::var("HUB_COOKIE") {
        return Ok(Bytes::from(s));
    }
    tracing::warn!("no --cookie-file or HUB_COOKIE: using the development cookie");
    Ok(Bytes::from_static(b"processhub-dev-cookie"))
}

#[cfg(test)]
mod tests {
    use super::{node_strategies, parse_migration, parse_partition};
    use hub_strategies::{MigrationConfig, PartitionConfig};

    #[test]
    fn partition_flags_parse_or_explain() {
        assert_eq!(
            parse_partition("divergence"),
            Ok(PartitionConfig::Divergence)
        );
        assert_eq!(
            parse_partition("static:3"),
            Ok(PartitionConfig::StaticQuorum {
                quorum_size: 3,
                startup_confirm: false
            })
        );
        assert_eq!(
            parse_partition("majority:5"),
            Ok(PartitionConfig::MajorityQuorum {
                initial_cluster_size: 5
            })
        );
        let dynamic = |quorum_size, threshold_time| PartitionConfig::DynamicQuorum {
            quorum_size,
            threshold_time,
        };
        assert_eq!(parse_partition("dynamic:60"), Ok(dynamic(60, 30_000)));
        assert_eq!(parse_partition("dynamic:60:10"), Ok(dynamic(60, 10_000)));
        assert!(parse_partition("static").unwrap_err().contains("needs"));
        assert!(parse_partition("dynamic:0").is_err());
        assert!(parse_partition("quorum:2").unwrap_err().contains("unknown"));
    }

    #[test]
    fn the_example_file_loads_and_flags_override_it() {
        let file = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/strategies.toml"
        ));
        let s = node_strategies(Some(&file), None, None, None).unwrap();
        assert_eq!(s.migration.name(), "hot_swap");
        assert_eq!(s.partition.name(), "majority_quorum");
        let cold = parse_migration("cold").ok();
        assert_eq!(cold, Some(MigrationConfig::ColdSwap));
        let s = node_strategies(Some(&file), None, cold, None).unwrap();
        assert_eq!(s.migration.name(), "cold_swap");
        assert!(parse_migration("warm").is_err());
        let missing = std::path::PathBuf::from("/nonexistent/strategies.toml");
        let err = node_strategies(Some(&missing), None, None, None).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
