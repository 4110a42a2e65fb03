//! Building blocks shared by the scenario files: a formed cluster, the
//! seed's randomness, a load phase, and the final check.

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions};
use rand::Rng;

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
    log_if_asked();
    let c = SimCluster::new(opts);
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.settle(Duration::from_secs(20))
        .await
        .expect("cluster formed");
    c
}

/// With `HUB_SIM_LOG` set (a `tracing` filter such as
/// `hub_core=debug`), every node's log goes to stderr, stamped with
/// simulated time and machine: what to read when a replayed seed fails.
fn log_if_asked() {
    let Ok(filter) = std::env::var("HUB_SIM_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The scenario's randomness, drawn from the simulation's seed. (Not
/// `rand::rng()`: that thread-local generator outlives one seed's run, so a
/// failure seen in a sweep would not reproduce with its seed alone.)
pub fn seeded_rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::from_os_rng()
}

/// Starts counters `{prefix}0..{prefix}{n}` through node 0 (awaited);
/// panics unless every one started. Returns their ids.
pub async fn start_counters(c: &SimCluster, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let specs = ids
        .iter()
        .map(|id| ChildSpec::new(id.as_str(), "counter"))
        .collect();
    let hub = c.hub(0).expect("node 0 runs");
    if let Err(e) = hub.start_children(specs, StartOptions::awaited()).await {
        panic!("starting {n} counters: {e}");
    }
    ids
}

/// Strict mode: waits until node 0 can start a child of `kind` (new
/// nodes grant nothing for the takeover delay); panics after 10 s.
pub async fn wait_granting(c: &SimCluster, kind: &str) {
    let opts = StartOptions {
        timeout: Duration::from_secs(3),
        ..StartOptions::awaited()
    };
    for _ in 0..40 {
        let probe = ChildSpec::new("probe", kind);
        if c.hub(0)
            .expect("node 0 runs")
            .start_child(probe, opts)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("node 0 never got a quorum of grants");
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

/// Rounds of `steps` workload operations, each followed by a random kill,
/// restart, join (up to `max_nodes`), graceful leave or wait.
pub async fn churn(
    c: &mut SimCluster,
    w: &mut Workload,
    rounds: usize,
    steps: usize,
    max_nodes: usize,
) {
    let mut rng = seeded_rng();
    for _ in 0..rounds {
        load(c, w, steps).await;
        let alive = c.alive();
        match rng.random_range(0..5) {
            0 if alive.len() > 2 => {
                // A kill may take starts that no registry had heard of yet.
                c.kill(alive[rng.random_range(0..alive.len())]);
                w.forget_unknown(c).await;
            }
            1 => {
                let dead: Vec<usize> = (0..c.len()).filter(|i| !alive.contains(i)).collect();
                if let Some(&i) = dead.first() {
                    c.restart(i);
                }
            }
            2 if c.len() < max_nodes => {
                c.add_node();
            }
            3 if alive.len() > 2 => {
                // A graceful leave loses nothing: nothing is forgotten.
                let i = alive[rng.random_range(1..alive.len())];
                let _ = c.shutdown(i).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(rng.random_range(10..2000))).await,
        }
    }
}
