//! Building blocks shared by the scenario files: a formed cluster, the
//! seed's randomness, a load phase, and the final check.

use std::time::Duration;

use crate::{SimCluster, SimOptions, Workload};

/// How long a scenario waits for quiet after its faults.
pub const QUIET: Duration = Duration::from_secs(60);

/// A cluster of `n` default nodes that has formed.
pub async fn formed(n: usize) -> SimCluster {
    formed_with(SimOptions::new(n)).await
}

/// A cluster built from `opts` that has formed (every node sees the ring,
/// the invariants hold); panics if it does not within 20 s.
pub async fn formed_with(opts: SimOptions) -> SimCluster {
    let c = SimCluster::new(opts);
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.settle(Duration::from_secs(20))
        .await
        .expect("cluster formed");
    c
}

/// The scenario's randomness, drawn from the simulation's seed. (Not
/// `rand::rng()`: that thread-local generator outlives one seed's run, so a
/// failure seen in a sweep would not reproduce with its seed alone.)
pub fn seeded_rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::from_os_rng()
}

/// `steps` random workload steps.
pub async fn load(c: &SimCluster, w: &mut Workload, steps: usize) {
    let mut rng = seeded_rng();
    for _ in 0..steps {
        w.step(c, &mut rng).await;
    }
}

/// Prints the trace lines that name child `id`, to explain a failure.
pub fn dump_trace(c: &SimCluster, id: &str) {
    let needle = format!("\"{id}\"");
    for l in c.trace().iter().filter(|l| l.contains(&needle)) {
        eprintln!("TRACE {l}");
    }
}

/// After the faults: heal, wait for quiet, check that no acknowledged
/// child was lost; panics with the reason (and the lost child's trace).
pub async fn verify(c: &SimCluster, w: &mut Workload) {
    c.heal();
    if let Err(e) = c.settle(QUIET).await {
        for i in c.alive() {
            if let Some(h) = c.hub(i) {
                if let Ok(s) = h.status().await {
                    eprintln!("{} members {:?}", s.node_id, s.members);
                }
            }
        }
        panic!("quiet invariants: {e}");
    }
    if let Err(e) = w.check_none_lost(c).await {
        if let Some(id) = e.split('"').nth(1) {
            dump_trace(c, id);
        }
        panic!("no acknowledged child lost: {e}");
    }
}

/// Heals every link and restarts every machine that is down.
pub fn heal_and_restart_all(c: &mut SimCluster) {
    c.heal();
    for i in 0..c.len() {
        if !c.alive().contains(&i) {
            c.restart(i);
        }
    }
}
