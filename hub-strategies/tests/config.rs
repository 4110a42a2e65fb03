//! Strategy configuration files: every family parses, builds and refuses
//! what it does not know.

use hub_strategies::{MigrationConfig, StrategyConfig};

#[test]
fn an_empty_file_gives_the_spec_defaults() {
    let cfg: StrategyConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, StrategyConfig::default());
    let s = cfg.build().unwrap();
    let names = [
        s.distribution.name(),
        s.redundancy.name(),
        s.migration.name(),
        s.sync.name(),
        s.partition.name(),
    ];
    let defaults = hub_strategies::defaults();
    assert_eq!(
        names,
        [
            defaults.distribution.name(),
            defaults.redundancy.name(),
            defaults.migration.name(),
            defaults.sync.name(),
            defaults.partition.name(),
        ]
    );
}

#[test]
fn every_family_and_option_parses() {
    let text = r#"
        [distribution]
        kind = "guided"
        [migration]
        kind = "hot_swap"
        retention = 100
        [sync]
        kind = "pubsub"
        sync_interval = 250
        [partition]
        kind = "dynamic_quorum"
        quorum_size = 60
    "#;
    let cfg: StrategyConfig = toml::from_str(text).unwrap();
    assert_eq!(
        cfg.migration,
        MigrationConfig::HotSwap {
            handover: false,
            retention: 100,
            handover_data_wait: 3000,
            child_migration_timeout: 10_000
        }
    );
    let s = cfg.build().unwrap();
    assert_eq!(s.distribution.name(), "guided");
    assert_eq!(s.sync.sync_interval().as_millis(), 250);
    assert_eq!(s.partition.name(), "dynamic_quorum");
}

#[test]
fn unknown_kinds_fields_and_bad_values_are_clear_errors() {
    let err = toml::from_str::<StrategyConfig>("[migration]\nkind = \"warm_swap\"").unwrap_err();
    assert!(err.to_string().contains("warm_swap"), "{err}");
    let err = toml::from_str::<StrategyConfig>("[migration]\nkind = \"hot_swap\"\nhandvoer = true")
        .unwrap_err();
    assert!(err.to_string().contains("handvoer"), "{err}");
    let err = toml::from_str::<StrategyConfig>("[partitoin]\nkind = \"divergence\"").unwrap_err();
    assert!(err.to_string().contains("partitoin"), "{err}");
    let cfg: StrategyConfig =
        toml::from_str("[partition]\nkind = \"dynamic_quorum\"\nquorum_size = 0").unwrap();
    let err = cfg.build().unwrap_err();
    assert_eq!(err.option, "partition.quorum_size");
    let cfg: StrategyConfig =
        toml::from_str("[partition]\nkind = \"static_quorum\"\nquorum_size = 0").unwrap();
    assert!(cfg.build().is_err());
}
