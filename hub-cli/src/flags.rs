//! Flag values: strategy choices, tags, the strategies file, the cookie.

use std::path::PathBuf;

use bytes::Bytes;
use hub_strategies::{DistributionConfig, MigrationConfig, PartitionConfig, StrategyConfig};

use crate::args::Auth;
use crate::AnyError;

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains(',') && !v.contains(',') => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("tag {s:?}: want key=value (no commas)")),
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
        let secret = s.trim();
        if secret.is_empty() {
            return Err(format!("the cookie file {} is empty", f.display()).into());
        }
        return Ok(Bytes::from(secret.to_string()));
    }
    if let Ok(s) = std::env::var("HUB_COOKIE") {
        if s.trim().is_empty() {
            return Err("HUB_COOKIE is empty".into());
        }
        return Ok(Bytes::from(s));
    }
    tracing::warn!("no --cookie-file or HUB_COOKIE: using the development cookie");
    Ok(Bytes::from_static(b"processhub-dev-cookie"))
}

#[cfg(test)]
mod tests {
    use super::node_strategies;
    use hub_strategies::MigrationConfig;

    #[test]
    fn the_example_file_loads_and_flags_override_it() {
        let file = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/strategies.toml"
        ));
        let s = node_strategies(Some(&file), None, None, None).unwrap();
        assert_eq!(s.migration.name(), "hot_swap");
        assert_eq!(s.partition.name(), "majority_quorum");
        let cold = "cold".parse::<MigrationConfig>().ok();
        assert_eq!(cold, Some(MigrationConfig::ColdSwap));
        let s = node_strategies(Some(&file), None, cold, None).unwrap();
        assert_eq!(s.migration.name(), "cold_swap");
        assert!("warm".parse::<MigrationConfig>().is_err());
        let missing = std::path::PathBuf::from("/nonexistent/strategies.toml");
        let err = node_strategies(Some(&missing), None, None, None).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
