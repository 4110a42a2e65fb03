//! Cluster start, RSS per node and a 4th node's join, with node
//! processes.

use super::*;

pub(super) async fn cluster_rows(cli: &Cli, hot: bool) -> Result<(), AnyError> {
    let mut procs = Procs::new()?;
    let seed = procs.spawn("n0", None, hot)?;
    procs.spawn("n1", Some(&seed), hot)?;
    procs.spawn("n2", Some(&seed), hot)?;
    let mut watch = Vec::new();
    for a in procs.addrs() {
        watch.push(connect(&a).await?);
    }
    until("formation", Duration::from_secs(30), &mut watch, |s| {
        s.iter().all(|s| s.ring.len() == 3 && !s.locked)
    })
    .await?;
    let rss_empty = procs.rss_mib();

    // Start: `in_flight` request streams, spread over the nodes, each
    // taking the next batch of ids.
    let n = cli.children;
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
        &mut watch,
        |s| s.iter().all(|s| s.children == n),
    )
    .await?;
    let total = acked + all;
    println!(
        "cluster start: {n} children acknowledged in {:.3}s, in every registry after {:.3}s: {:.0} children/s",
        acked.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    let rss = procs.rss_mib();
    for ((id, before), (_, after)) in rss_empty.iter().zip(&rss) {
        println!("RSS {id}: {after:.1} MiB with {n} children (empty: {before:.1} MiB)");
    }

    // Join: a 4th process; converged = every node has the 4-node ring, no
    // lock, nothing in flight, all rows, and exactly one copy of each.
    let t0 = Instant::now();
    let a = procs.spawn("n3", Some(&seed), hot)?;
    watch.push(connect(&a).await?);
    let took = until(
        "join convergence",
        Duration::from_secs(120),
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
