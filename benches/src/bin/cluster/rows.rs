//! Cluster start, RSS per node and a 4th node's join, with node
//! processes.

use super::floors::{actor_floor_process, cpu_and_io, handshake_floor};
use super::*;

/// Seconds of rest over which the idle cost is taken.
const IDLE_SECS: u64 = 5;

pub(super) async fn cluster_rows(cli: &Cli, hot: bool) -> Result<(), AnyError> {
    let n = cli.children;
    let floor = actor_floor_process(n)?;
    println!(
        "floor: {n} bare tokio actors spawned and each asked once in {:.3}s ({:.2} µs each); {:.0} B per idle actor; {:.0} B per bare map entry",
        floor.secs,
        floor.secs * 1e6 / n as f64,
        floor.actor_bytes,
        floor.entry_bytes
    );
    let mut procs = Procs::new()?;
    let seed = procs.spawn("n0", None, hot)?;
    procs.spawn("n1", Some(&seed), hot)?;
    procs.spawn("n2", Some(&seed), hot)?;
    // Formation is timed from when the last node accepts connections.
    for a in procs.addrs() {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&a).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("{a} never listened").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let listening = Instant::now();
    let mut watch = Vec::new();
    for a in procs.addrs() {
        watch.push(connect(&a).await?);
    }
    // Before the load, the nodes can be asked every millisecond.
    until(
        "formation",
        Duration::from_secs(30),
        Duration::from_millis(1),
        &mut watch,
        |s| s.iter().all(|s| s.ring.len() == 3 && !s.locked),
    )
    .await?;
    let formed = listening.elapsed();
    let handshakes = handshake_floor().await?;
    println!(
        "formation: all 3 see a 3-node ring {:.1} ms after the last listens; floor (3 bare TCP handshakes with a frame each way) {:.2} ms",
        formed.as_secs_f64() * 1e3,
        handshakes.as_secs_f64() * 1e3
    );
    let rss_empty = procs.rss_mib();

    // Start: `in_flight` request streams, spread over the nodes, each
    // taking the next batch of ids.
    let next = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let addrs = procs.addrs();
    for i in 0..cli.in_flight {
        let mut c = connect(&addrs[i % addrs.len()]).await?;
        let (next, started, batch) = (next.clone(), started.clone(), cli.batch as u64);
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= n as u64 {
                    return Ok::<(), AnyError>(());
                }
                let to = (from + batch).min(n as u64);
                let specs = (from..to)
                    .map(|k| ChildSpec::new(format!("counter-{k}"), "counter"))
                    .collect();
                match c
                    .request(CtlRequest::Start { specs }, Duration::from_secs(60))
                    .await?
                {
                    CtlReply::Started { failed, .. } if failed.is_empty() => {
                        started.fetch_add(to - from, Ordering::Relaxed);
                    }
                    CtlReply::Started { failed, .. } => {
                        return Err(
                            format!("{} starts failed: {:?}", failed.len(), failed[0]).into()
                        )
                    }
                    other => return Err(format!("unexpected reply {other:?}").into()),
                }
            }
        }));
    }
    let progress = {
        let started = started.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprintln!("   ... {} started", started.load(Ordering::Relaxed));
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    progress.abort();
    let acked = t0.elapsed();
    let all = until(
        "registries to hold all",
        Duration::from_secs(60),
        POLL,
        &mut watch,
        |s| s.iter().all(|s| s.children == n),
    )
    .await?;
    let total = acked + all;
    println!(
        "cluster start: {n} children acknowledged in {:.3}s, in every registry after {:.3}s: {:.0} children/s; floor {:.3}s ({:.1} × the floor)",
        acked.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        floor.secs,
        total.as_secs_f64() / floor.secs
    );
    until("settled", Duration::from_secs(60), POLL, &mut watch, |s| {
        converged(s, 3, n)
    })
    .await?;
    let rss = procs.rss_mib();
    let s = statuses(&mut watch).await?;
    for (((id, before), (_, after)), st) in rss_empty.iter().zip(&rss).zip(&s) {
        // The floor: the empty process, a bare actor per local child and a
        // bare map entry per registered child.
        let floor_mib = before
            + (st.local_children as f64 * floor.actor_bytes + n as f64 * floor.entry_bytes)
                / (1024.0 * 1024.0);
        println!(
            "RSS {id}: {after:.1} MiB with {n} children, {} local (empty: {before:.1} MiB); floor {floor_mib:.1} MiB ({:.1} × the floor)",
            st.local_children,
            after / floor_mib
        );
    }
    idle_cost(&procs).await;

    // Join: a 4th process; converged = every node has the 4-node ring, no
    // lock, nothing in flight, all rows, and exactly one copy of each.
    let t0 = Instant::now();
    let a = procs.spawn("n3", Some(&seed), hot)?;
    watch.push(connect(&a).await?);
    let took = until(
        "join convergence",
        Duration::from_secs(120),
        POLL,
        &mut watch,
        |s| converged(s, 4, n),
    )
    .await
    .map(|_| t0.elapsed())?;
    let s = statuses(&mut watch).await?;
    let joiner = s.last().map_or(0, |s| s.local_children);
    println!(
        "join convergence ({}): {:.3}s after spawning n3 ({joiner} children moved to it)",
        if hot { "HotSwap+handover" } else { "ColdSwap" },
        took.as_secs_f64()
    );
    Ok(())
}

/// CPU and bytes through read/write calls per node process over
/// [`IDLE_SECS`] of rest: nothing is started, stopped or asked meanwhile.
async fn idle_cost(procs: &Procs) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Vec<_> = procs
        .pids()
        .into_iter()
        .map(|(id, p)| (id, p, cpu_and_io(p)))
        .collect();
    tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
    for (id, pid, (cpu0, io0)) in before {
        let (cpu1, io1) = cpu_and_io(pid);
        println!(
            "idle {id}: {:.2} % of one core, {:.0} B/s read + written over {IDLE_SECS} s at rest",
            (cpu1 - cpu0) * 100.0 / IDLE_SECS as f64,
            io1.saturating_sub(io0) as f64 / IDLE_SECS as f64
        );
    }
}
