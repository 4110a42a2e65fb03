//! Random operation sequences with faults: once healed and quiet, the
//! invariants hold and no acknowledged child is lost.

use std::collections::BTreeSet;

use hub_core::ChildId;
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

fn run(
    seed: u64,
    nodes: usize,
    ops: &[ClusterOp],
    net: NetConfig,
    latency_ms: u64,
) -> Result<(), TestCaseError> {
    // A static member list: a joiner whose every seed died cannot join.
    let opts = ClusterOptions::new(nodes)
        .seed(seed)
        .net(net)
        .seeds(usize::MAX)
        .process_latency(std::time::Duration::from_millis(latency_ms));
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
    let check = invariants::check_all(&c).and_then(|_| invariants::none_lost(&c, &acked));
    prop_assert!(
        check.is_ok(),
        "{}; seed {seed}, ops {ops:?}",
        check.unwrap_err()
    );
    prop_assert!(c.errors().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

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
}
