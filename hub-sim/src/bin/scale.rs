//! Scale in nodes, simulated: formation, background traffic at rest, a
//! join and a kill, for clusters larger than one machine can run as
//! processes. Figures are in simulated time; each node runs the real
//! hub-net stack over madsim's TCP.
//!
//! ```sh
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim \
//!   cargo run --release -p hub-sim --bin scale -- 10 30 100
//! ```
//!
//! `MADSIM_TEST_SEED` picks the seed (default 1).

#[cfg(not(madsim))]
fn main() {
    eprintln!(
        "the scale report runs under the simulator: build it with RUSTFLAGS=\"--cfg madsim\""
    );
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() {
    let seed: u64 = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| match a.parse() {
            Ok(n) if n >= 2 => n,
            _ => {
                eprintln!("usage: scale [NODES ...] (each at least 2); got {a:?}");
                std::process::exit(2);
            }
        })
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 30, 100]
    } else {
        sizes
    };
    println!(
        "| nodes | formation | frames/s per node at rest (mean, max) | bytes/s per node at rest (mean, max) | cluster frames/s | join converged | kill converged | wall time to simulate |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        // A fresh simulated world per size: machines, addresses and time.
        let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        // Outside the runtime, the clock is the machine's.
        let wall = std::time::Instant::now();
        match rt.block_on(report::one(n)) {
            Ok(row) => println!("{row} {:.1} s |", wall.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("{n} nodes: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(madsim)]
mod report {
    use std::time::Duration;

    use hub_net::Hub;
    use hub_sim::scenario::start_counters;
    use hub_sim::{SimCluster, SimOptions};
    use tokio::time::Instant;

    /// The default failure detection's heartbeat period.
    const HEARTBEAT: Duration = Duration::from_millis(500);
    /// Simulated seconds over which background traffic is counted.
    const REST: Duration = Duration::from_secs(10);
    /// Children the cluster holds while it rests, joins and loses a node.
    const CHILDREN: usize = 1_000;

    pub(super) async fn one(n: usize) -> Result<String, String> {
        let mut opts = SimOptions::new(n);
        opts.heartbeat = HEARTBEAT;
        let mut c = SimCluster::new(opts);
        let t0 = Instant::now();
        rings_of(&c, n, Duration::from_secs(60)).await?;
        let formation = t0.elapsed();
        eprintln!("{n} nodes: formed in {formation:?} (simulated)");
        start_counters(&c, "c", CHILDREN).await;
        c.settle(Duration::from_secs(120)).await?;
        let before = traffic(&c).await?;
        tokio::time::sleep(REST).await;
        let after = traffic(&c).await?;
        let secs = REST.as_secs_f64();
        let per_node: Vec<(f64, f64)> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| ((a.0 - b.0) as f64 / secs, (a.1 - b.1) as f64 / secs))
            .collect();
        let mean = |f: fn(&(f64, f64)) -> f64| per_node.iter().map(f).sum::<f64>() / n as f64;
        let max = |f: fn(&(f64, f64)) -> f64| per_node.iter().map(f).fold(0.0, f64::max);
        eprintln!("{n} nodes: traffic at rest counted");
        let t0 = Instant::now();
        c.add_node();
        rings_of(&c, n + 1, Duration::from_secs(60)).await?;
        c.settle(Duration::from_secs(120)).await?;
        let join = t0.elapsed();
        eprintln!("{n} nodes: join converged in {join:?}");
        let t0 = Instant::now();
        c.kill(1);
        c.settle(Duration::from_secs(120)).await?;
        let kill = t0.elapsed();
        eprintln!("{n} nodes: kill converged in {kill:?}");
        Ok(format!(
            "| {n} | {:.0} ms | {:.1}, {:.1} | {:.0}, {:.0} | {:.0} | {:.2} s | {:.2} s |",
            formation.as_secs_f64() * 1e3,
            mean(|p| p.0),
            max(|p| p.0),
            mean(|p| p.1),
            max(|p| p.1),
            mean(|p| p.0) * n as f64,
            join.as_secs_f64(),
            kill.as_secs_f64(),
        ))
    }

    /// Waits until every live node's ring has `n` members.
    async fn rings_of(c: &SimCluster, n: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let mut full = true;
            for i in c.alive() {
                let ring = match c.hub(i) {
                    Some(h) => h.nodes().await.map(|r| r.len()).unwrap_or(0),
                    None => 0,
                };
                if ring != n {
                    full = false;
                    break;
                }
            }
            if full {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the rings did not reach {n} nodes within {within:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Frames and bytes each live node has sent so far.
    async fn traffic(c: &SimCluster) -> Result<Vec<(u64, u64)>, String> {
        let mut out = Vec::new();
        for i in c.alive() {
            let hub: Hub = c.hub(i).ok_or(format!("node {i} not running"))?;
            let text = hub.metrics_text().await.map_err(|e| e.to_string())?;
            out.push((
                sent(&text, "hub_frames_total"),
                sent(&text, "hub_frame_bytes_total"),
            ));
        }
        Ok(out)
    }

    /// The outbound sample of counter `name` in a Prometheus text page.
    fn sent(text: &str, name: &str) -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("direction=\"out\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}
