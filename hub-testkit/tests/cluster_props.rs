//! Random operation sequences with faults: once healed and quiet, the
//! invariants hold and no acknowledged child is lost.

use std::collections::BTreeSet;

use hub_core::ChildId;
use hub_strategies::{
    DistributionConfig, HotSwap, MigrationConfig, RedundancyConfig, RedundancySignal,
    ReplicationModel, StrategyConfig, SyncConfig,
};
use hub_testkit::gen::{self, ClusterOp};
use hub_testkit::{invariants, Cluster, ClusterOptions, NetConfig};
use proptest::prelude::*;

fn known_by_survivors(c: &Cluster, id: &ChildId) -> bool {
    c.alive().into_iter().any(|i| {
        c.runtime(i).is_running(id.as_str())
            || c.node(i)
                .is_some_and(|n| !n.registry().lookup_ref(id.as_str()).is_empty())
    })
}

/// Any strategy combination the fuzzer explores, with short intervals so
/// that rounds, reports and timeouts happen within a case.
fn strategy_config() -> impl Strategy<Value = StrategyConfig> {
    let distribution = prop_oneof![
        Just(DistributionConfig::default()),
        Just(DistributionConfig::CentralizedLoadBalancer {
            push_interval: 700,
            max_history_size: 5,
            weight_decay_factor: 0.9,
        }),
    ];
    let redundancy = prop_oneof![
        Just(RedundancyConfig::Singularity),
        (1usize..4, any::<bool>()).prop_map(|(k, ap)| RedundancyConfig::Replication {
            replication_factor: k,
            replication_model: if ap {
                ReplicationModel::ActivePassive
            } else {
                ReplicationModel::ActiveActive
            },
            redundancy_signal: RedundancySignal::All,
        }),
    ];
    let migration = prop_oneof![
        Just(MigrationConfig::ColdSwap),
        any::<bool>().prop_map(|handover| MigrationConfig::HotSwap {
            handover,
            retention: 300,
            handover_data_wait: 200,
            child_migration_timeout: 400,
        }),
    ];
    let sync = prop_oneof![
        Just(SyncConfig::PubSub {
            sync_interval: 3000
        }),
        any::<bool>().prop_map(|restricted_init| SyncConfig::Gossip {
            sync_interval: 3000,
            recipients: 2,
            restricted_init,
        }),
    ];
    (distribution, redundancy, migration, sync).prop_map(
        |(distribution, redundancy, migration, sync)| StrategyConfig {
            distribution,
            redundancy,
            migration,
            sync,
            ..StrategyConfig::default()
        },
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn run(
    seed: u64,
    nodes: usize,
    ops: &[ClusterOp],
    net: NetConfig,
    latency_ms: u64,
) -> Result<(), TestCaseError> {
    run_with(seed, ops, options(seed, nodes, net, latency_ms))
}

fn options(seed: u64, nodes: usize, net: NetConfig, latency_ms: u64) -> ClusterOptions {
    // A static member list: a joiner whose every seed died cannot join.
    ClusterOptions::new(nodes)
        .seed(seed)
        .net(net)
        .seeds(usize::MAX)
        .process_latency(std::time::Duration::from_millis(latency_ms))
}

/// HotSwap with or without handover, short timeouts so that abandoned and
/// retried moves happen often.
fn hot_swap(handover: bool) -> impl Fn() -> hub_core::Strategies {
    move || {
        let mut s = hub_strategies::defaults();
        s.migration = HotSwap {
            handover,
            retention: std::time::Duration::from_millis(300),
            handover_data_wait: std::time::Duration::from_millis(200),
            child_migration_timeout: std::time::Duration::from_millis(400),
        }
        .into();
        s
    }
}

fn run_with(seed: u64, ops: &[ClusterOp], opts: ClusterOptions) -> Result<(), TestCaseError> {
    run_checked(seed, ops, opts, false)
}

fn run_checked(
    seed: u64,
    ops: &[ClusterOp],
    opts: ClusterOptions,
    one_active: bool,
) -> Result<(), TestCaseError> {
    let mut c = Cluster::new(opts);
    prop_assert!(c.settle(), "cluster did not form");
    let mut acked: BTreeSet<ChildId> = BTreeSet::new();
    for op in ops {
        let started = gen::apply(&mut c, op);
        match op {
            ClusterOp::Stop { ids, .. } => {
                for k in ids {
                    acked.remove(&ChildId::from(format!("c{k}")));
                }
            }
            ClusterOp::ChildExit(k) => {
                acked.remove(&ChildId::from(format!("c{k}")));
            }
            // DESIGN: a child is protected while a node that held it lives.
            // One that only the departed node knew may go with it.
            ClusterOp::Crash(_) | ClusterOp::Leave(_) => {
                acked.retain(|id| known_by_survivors(&c, id));
            }
            _ => {}
        }
        acked.extend(started);
    }
    c.heal();
    c.set_net(NetConfig::default());
    prop_assert!(
        c.settle(),
        "did not settle after healing ({:?}); seed {seed}, ops {ops:?}",
        c.unquiet_reason()
    );
    let check = invariants::check_all(&c)
        .and_then(|_| invariants::none_lost(&c, &acked))
        .and_then(|_| {
            if one_active {
                invariants::one_active(&c)
            } else {
                Ok(())
            }
        });
    prop_assert!(
        check.is_ok(),
        "{}; seed {seed}, ops {ops:?}",
        check.unwrap_err()
    );
    prop_assert!(c.errors().is_empty());
    Ok(())
}

proptest! {
    // 48 cases in CI; PROPTEST_CASES=20000 for a long local run.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_operations_and_faults_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 1usize..5,
        ops in gen::operations(25),
    ) {
        run(seed, nodes, &ops, NetConfig::default(), 0)?;
    }

    #[test]
    fn random_operations_on_a_lossy_network_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 2usize..5,
        ops in gen::operations(15),
    ) {
        let net = NetConfig {
            min_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(30),
            drop_rate: 0.02,
            duplicate_rate: 0.02,
        };
        run(seed, nodes, &ops, net, 0)?;
    }

    #[test]
    fn random_operations_with_slow_processes_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 2usize..5,
        ops in gen::operations(20),
        latency_ms in 1u64..100,
    ) {
        run(seed, nodes, &ops, NetConfig::default(), latency_ms)?;
    }

    #[test]
    fn random_operations_with_hot_swap_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 2usize..5,
        ops in gen::operations(20),
        latency_ms in 0u64..60,
        handover in any::<bool>(),
    ) {
        let opts = options(seed, nodes, NetConfig::default(), latency_ms)
            .strategies(hot_swap(handover));
        run_with(seed, &ops, opts)?;
    }

    #[test]
    fn random_operations_with_gossip_on_a_lossy_network_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 2usize..7,
        ops in gen::operations(15),
        restricted_init in any::<bool>(),
    ) {
        let net = NetConfig {
            min_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(30),
            drop_rate: 0.02,
            duplicate_rate: 0.02,
        };
        let opts = options(seed, nodes, net, 0).strategies(move || {
            let mut s = hub_strategies::defaults();
            s.sync = Box::new(hub_strategies::Gossip {
                sync_interval: std::time::Duration::from_secs(3),
                recipients: 2,
                restricted_init,
            });
            s
        });
        run_with(seed, &ops, opts)?;
    }

    #[test]
    fn random_operations_with_replication_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 1usize..6,
        ops in gen::operations(20),
        factor in 1usize..4,
        active_passive in any::<bool>(),
        latency_ms in 0u64..40,
    ) {
        use hub_strategies::{RedundancySignal, Replication, ReplicationModel};
        let model = if active_passive {
            ReplicationModel::ActivePassive
        } else {
            ReplicationModel::ActiveActive
        };
        let opts = options(seed, nodes, NetConfig::default(), latency_ms).strategies(move || {
            let mut s = hub_strategies::defaults();
            s.redundancy = Box::new(Replication {
                replication_factor: factor,
                model,
                signal: RedundancySignal::All,
            });
            s
        });
        run_checked(seed, &ops, opts, active_passive)?;
    }

    #[test]
    fn random_operations_with_the_load_balancer_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 1usize..5,
        ops in gen::operations(20),
    ) {
        let opts = options(seed, nodes, NetConfig::default(), 0).strategies(|| {
            let mut s = hub_strategies::defaults();
            s.distribution = Box::new(hub_strategies::CentralizedLoadBalancer::new(
                std::time::Duration::from_millis(700),
                5,
                0.9,
            ));
            s
        });
        run_with(seed, &ops, opts)?;
    }

    /// Strategy fuzzing: any combination of distribution, redundancy,
    /// migration and sync (partition stays Divergence: the quiet-time
    /// invariants assume one connected cluster may act) under random
    /// operations and faults.
    #[test]
    fn random_strategy_configurations_keep_the_invariants(
        seed in any::<u64>(),
        nodes in 1usize..5,
        ops in gen::operations(20),
        cfg in strategy_config(),
        latency_ms in 0u64..40,
    ) {
        let active_passive = matches!(
            cfg.redundancy,
            RedundancyConfig::Replication {
                replication_model: ReplicationModel::ActivePassive,
                ..
            }
        );
        prop_assert!(cfg.build().is_ok());
        let opts = options(seed, nodes, NetConfig::default(), latency_ms)
            .strategies(move || cfg.build().expect("checked above"));
        run_checked(seed, &ops, opts, active_passive)?;
    }
}

/// Found by the hot-swap property: a node whose old copy was retiring
/// acknowledged a handoff of the same child back to it, and the child was
/// lost when that copy stopped.
#[test]
fn a_handoff_back_to_a_retiring_copy_is_not_lost() {
    use ClusterOp::*;
    let ops = vec![
        Advance(4220),
        Start {
            node: 0,
            ids: vec![4, 17],
        },
        Start {
            node: 4,
            ids: vec![2, 59, 16],
        },
        Start {
            node: 2,
            ids: vec![41],
        },
        Stop {
            node: 1,
            ids: vec![16],
        },
        Crash(0),
        Advance(2448),
        Start {
            node: 0,
            ids: vec![24, 5],
        },
        Advance(3052),
        Join,
        Leave(1),
    ];
    let seed = 7489331702908972849;
    let opts = options(seed, 3, NetConfig::default(), 56).strategies(hot_swap(false));
    run_with(seed, &ops, opts).unwrap();
}

/// Found by the lossy-network property (and present since session one): a
/// node whose handoff target left turned the child into an orphan, then
/// dropped it because a stale registry row (a lost delta) said another node
/// held it, while that node had handed it to this one.
#[test]
fn a_stale_row_does_not_make_a_node_drop_its_last_copy() {
    use ClusterOp::*;
    let ops = vec![
        Partition(vec![false, true, true, false, false, false, false, false]),
        Advance(945),
        Start {
            node: 2,
            ids: vec![36, 59],
        },
        Crash(3),
        Join,
        Leave(3),
    ];
    let net = NetConfig {
        min_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(30),
        drop_rate: 0.02,
        duplicate_rate: 0.02,
    };
    run(225769757433728511, 3, &ops, net, 0).unwrap();
}
