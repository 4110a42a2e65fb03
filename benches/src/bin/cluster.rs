//! End-to-end cluster benchmark over loopback TCP, each figure beside its
//! floor where it has one:
//!
//! ```sh
//! cargo run --release -p benches --bin cluster            # 100 k children
//! cargo run --release -p benches --bin cluster -- --children 10000
//! ```
//!
//! Nodes are separate processes (this binary re-run as `cluster node`).
//! Rows: cluster start (awaited starts until every registry holds all),
//! RSS per node, join convergence of a 4th node with ColdSwap and with
//! HotSwap + handover, and remote `call` latency/throughput (two hubs in
//! this process) against a bare tokio TCP ping-pong of 64-byte frames, and
//! the latency of acknowledged starts (`Ack::Local`, `Quorum`, `All`) on
//! three hubs in this process, and call latency/throughput with crash
//! snapshots (`SnapshotPolicy::every(1)`, `every(100)`) against none, and
//! strict single-instance mode against divergence mode (start latency and
//! throughput, and the time from a kill until the dead hub's children run
//! again). `--only cluster|calls|acks|strict|snapshots` runs one group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command as OsCommand, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hub_core::{Ack, ChildSpec, StartOptions};
use hub_net::control::{CtlReply, CtlRequest, Status};
use hub_net::examples::{Counter, CounterMsg};
use hub_net::{Client, Hub, SnapshotPolicy};
use hub_strategies::{MigrationConfig, StrategyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

const HUB: &str = "bench";
const COOKIE: &str = "bench-cookie";

#[derive(Parser)]
#[command(about = "End-to-end cluster benchmark (loopback, separate node processes)")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Children to start.
    #[arg(long, default_value_t = 100_000)]
    children: usize,
    /// Children per awaited start request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Start requests in flight at once (spread over the nodes).
    #[arg(long, default_value_t = 12)]
    in_flight: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Run only this group of rows: cluster, calls, acks, strict or
    /// snapshots.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one node until killed (used by the benchmark itself).
    Node {
        #[arg(long)]
        id: String,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        seed: Option<String>,
        /// Use HotSwap with handover instead of ColdSwap.
        #[arg(long)]
        hot: bool,
    },
}

fn main() -> Result<(), AnyError> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Some(Cmd::Node {
            ref id,
            ref listen,
            ref seed,
            hot,
        }) => rt.block_on(node(id, listen, seed.as_deref(), hot)),
        None => rt.block_on(bench(&cli)),
    }
}

fn strategies(hot: bool) -> Result<hub_core::Strategies, AnyError> {
    let mut cfg = StrategyConfig::default();
    if hot {
        cfg.migration = MigrationConfig::HotSwap {
            handover: true,
            retention: 5000,
            handover_data_wait: 3000,
            child_migration_timeout: 10_000,
        };
    }
    Ok(cfg.build()?)
}

async fn node(id: &str, listen: &str, seed: Option<&str>, hot: bool) -> Result<(), AnyError> {
    let mut b = Hub::builder(HUB)
        .node_id(id)
        .listen(listen)
        .cookie(COOKIE)
        .strategies(strategies(hot)?)
        .register::<Counter>("counter");
    if let Some(s) = seed {
        b = b.seed(s);
    }
    let _hub = b.start().await?;
    // Runs until the benchmark kills it.
    std::future::pending::<()>().await;
    Ok(())
}

/// Node processes, killed on drop.
struct Procs {
    exe: PathBuf,
    nodes: BTreeMap<String, (Child, String)>,
}

impl Procs {
    fn spawn(&mut self, id: &str, seed: Option<&str>, hot: bool) -> Result<String, AnyError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = OsCommand::new(&self.exe);
        cmd.args(["node", "--id", id, "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        if hot {
            cmd.arg("--hot");
        }
        let child = cmd.spawn()?;
        self.nodes.insert(id.to_string(), (child, addr.clone()));
        Ok(addr)
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.values().map(|(_, a)| a.clone()).collect()
    }

    /// Resident set sizes in MiB, by node.
    fn rss_mib(&self) -> Vec<(String, f64)> {
        self.nodes
            .iter()
            .map(|(id, (c, _))| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
                let kib: f64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (id.clone(), kib / 1024.0)
            })
            .collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (c, _) in self.nodes.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn connect(addr: &str) -> Result<Client, AnyError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(addr, HUB, COOKIE).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn status(c: &mut Client) -> Result<Status, AnyError> {
    match c
        .request(CtlRequest::Status, Duration::from_secs(10))
        .await?
    {
        CtlReply::Status(s) => Ok(s),
        other => Err(format!("unexpected reply {other:?}").into()),
    }
}

async fn statuses(clients: &mut [Client]) -> Result<Vec<Status>, AnyError> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(status(c).await?);
    }
    Ok(out)
}

/// Polls every 10 ms until `done` holds or `within` passes.
async fn until(
    what: &str,
    within: Duration,
    clients: &mut [Client],
    done: impl Fn(&[Status]) -> bool,
) -> Result<Duration, AnyError> {
    let t0 = Instant::now();
    loop {
        let s = statuses(clients).await?;
        if done(&s) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            return Err(format!("timed out waiting for {what}: {s:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn converged(s: &[Status], nodes: usize, children: usize) -> bool {
    s.iter().all(|s| {
        s.ring.len() == nodes && !s.locked && s.settled && !s.partitioned && s.children == children
    }) && s.iter().map(|s| s.local_children).sum::<usize>() == children
}

async fn bench(cli: &Cli) -> Result<(), AnyError> {
    println!(
        "machine: {} cores; children {}; batch {}; in flight {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cli.children,
        cli.batch,
        cli.in_flight
    );
    let run = |group: &str| cli.only.as_deref().is_none_or(|o| o == group);
    if run("cluster") {
        for hot in [false, true] {
            let label = if hot { "HotSwap+handover" } else { "ColdSwap" };
            println!("== {label}: 3 node processes");
            cluster_rows(cli, hot).await?;
        }
    }
    if run("calls") {
        println!("== remote call (2 hubs in this process) vs bare TCP ping-pong");
        call_rows(cli).await?;
    }
    if run("acks") {
        println!("== acknowledged starts (3 hubs in this process)");
        ack_rows().await?;
    }
    if run("strict") {
        println!("== strict single-instance mode vs divergence (3 hubs in this process)");
        strict_rows().await?;
    }
    if run("snapshots") {
        println!("== calls with crash snapshots (2 hubs in this process)");
        for policy in [None, Some(100), Some(1)] {
            snapshot_rows(policy, cli.seconds).await?;
        }
    }
    Ok(())
}

/// Two hubs whose counters are snapshotted every `every` messages (or
/// never); calls from a to counters on b: 1 caller's p50/p99, then 64
/// callers' throughput.
async fn snapshot_rows(every: Option<u32>, seconds: u64) -> Result<(), AnyError> {
    let (a, b, on_b) = two_hubs(|b| match every {
        Some(n) => b.register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(n)),
        None => b.register::<Counter>("counter"),
    })
    .await?;
    let timeout = Duration::from_secs(5);
    let mut lat = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        a.call::<Counter>(on_b[0].as_str(), &CounterMsg::Add(1), timeout)
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    let a = Arc::new(a);
    let rate = calls_per_second(&a, on_b, seconds).await?;
    let label = every.map_or("no snapshots".to_string(), |n| {
        format!("snapshot every {n}")
    });
    println!(
        "{label}: call p50 {:.1} µs, p99 {:.1} µs; 64 callers {rate:.0} calls/s",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// Hubs `a` and `b` in this process (each builder passed through
/// `kinds`), formed, with 400 counters started from `a`: returns them and
/// the ids of 64 counters that landed on `b`.
async fn two_hubs(
    kinds: impl Fn(hub_net::HubBuilder) -> hub_net::HubBuilder,
) -> Result<(Hub, Hub, Vec<String>), AnyError> {
    let mut hubs = formed_hubs(2, kinds).await?;
    let (b, a) = (hubs.pop().ok_or("no hub")?, hubs.pop().ok_or("no hub")?);
    let specs: Vec<ChildSpec> = (0..400)
        .map(|i| ChildSpec::new(format!("c{i}"), "counter"))
        .collect();
    let out = a.start_children(specs, StartOptions::awaited()).await?;
    let on_b: Vec<String> = out
        .started
        .iter()
        .filter(|(_, at)| at.iter().any(|(n, _)| n == b.node_id()))
        .map(|(id, _)| id.to_string())
        .take(64)
        .collect();
    if on_b.len() < 64 {
        return Err("fewer than 64 children landed on b".into());
    }
    Ok((a, b, on_b))
}

/// One task per id calling `Add(1)` on it through `a` for `seconds`:
/// calls per second.
async fn calls_per_second(a: &Arc<Hub>, ids: Vec<String>, seconds: u64) -> Result<f64, AnyError> {
    let timeout = Duration::from_secs(5);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for id in ids {
        let (a, stop, count) = (a.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                a.call::<Counter>(id.as_str(), &CounterMsg::Add(1), timeout)
                    .await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), hub_net::CallError>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let calls = count.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    for t in tasks {
        t.await??;
    }
    Ok(calls as f64 / secs)
}

/// `n` hubs in this process (`h0`, `h1`...), each builder passed through
/// `f` (which registers the kinds), formed.
async fn formed_hubs(
    n: usize,
    f: impl Fn(hub_net::HubBuilder) -> hub_net::HubBuilder,
) -> Result<Vec<Hub>, AnyError> {
    let mut hubs: Vec<Hub> = Vec::new();
    for i in 0..n {
        let mut b = f(Hub::builder(HUB)
            .node_id(format!("h{i}"))
            .listen("127.0.0.1:0")
            .cookie(COOKIE));
        if let Some(first) = hubs.first() {
            b = b.seed(first.local_addr().ok_or("no address")?.to_string());
        }
        hubs.push(b.start().await?);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for h in &hubs {
        while h.nodes().await?.len() < n {
            if Instant::now() > deadline {
                return Err("the hubs did not form".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(hubs)
}

/// Strict single-instance mode against the default: awaited starts (one
/// child per start, and batches of 1,000) from one hub of three, then the
/// time from killing a hub until all 1,000 children run on the others.
async fn strict_rows() -> Result<(), AnyError> {
    for strict in [false, true] {
        let label = if strict {
            "strict (quorum 2)"
        } else {
            "divergence"
        };
        let hubs = formed_hubs(3, |b| {
            let b = b.register::<Counter>("counter");
            if strict {
                b.strict(hub_core::Strict::new(2))
            } else {
                b
            }
        })
        .await?;
        // Strict nodes grant nothing for the takeover delay after starting.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = hubs[0]
                .start_child(ChildSpec::new("probe", "counter"), StartOptions::awaited())
                .await;
            match probe {
                Ok(out) if out.is_ok() => break,
                // Not granted yet: a failed start is an error since the
                // API stopped reporting failures as `Ok`.
                Ok(_) | Err(hub_net::HubError::StartFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() > deadline {
                return Err("no quorum of grants".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rounds = 2_000;
        let mut lat = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let spec = ChildSpec::new(format!("one-{i}"), "counter");
            let t = Instant::now();
            let out = hubs[0].start_child(spec, StartOptions::awaited()).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if !out.is_ok() {
                return Err(format!("start failed: {out:?}").into());
            }
        }
        lat.sort_by(f64::total_cmp);
        let t = Instant::now();
        for k in 0..10 {
            let specs: Vec<ChildSpec> = (0..1_000)
                .map(|i| ChildSpec::new(format!("b{k}-{i}"), "counter"))
                .collect();
            let out = hubs[0]
                .start_children(specs, StartOptions::awaited())
                .await?;
            if !out.is_ok() {
                return Err("batch start failed".into());
            }
        }
        let rate = 10_000.0 / t.elapsed().as_secs_f64();
        let total = rounds + 10_001;
        let t = Instant::now();
        hubs[2].abort();
        loop {
            let on = hubs[0].which_children(true).await?;
            let alive: usize = on
                .iter()
                .filter(|(n, _)| n.as_str() != "h2")
                .map(|(_, v)| v.len())
                .sum();
            if alive == total && !on.contains_key("h2") {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err("the killed hub's children did not come back".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = t.elapsed();
        println!(
            "{label}: 1 child per start p50 {:.0} µs, p99 {:.0} µs; batches of 1,000: {rate:.0} children/s; kill -> all {total} running again {:.2} s",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            back.as_secs_f64()
        );
        for h in &hubs[..2] {
            h.shutdown().await?;
        }
    }
    Ok(())
}

/// Awaited starts from one hub of three, one child per start, and batches
/// of 1,000, at each ack level.
async fn ack_rows() -> Result<(), AnyError> {
    let hubs = formed_hubs(3, |b| b.register::<Counter>("counter")).await?;
    let rounds = 2_000;
    for (name, ack) in [
        ("Local", Ack::Local),
        ("Quorum", Ack::Quorum),
        ("All", Ack::All),
    ] {
        let mut lat = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let spec = ChildSpec::new(format!("{name}-{i}"), "counter");
            let t = Instant::now();
            let out = hubs[0].start_child(spec, StartOptions::acked(ack)).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if !out.is_ok() {
                return Err(format!("acked start failed: {out:?}").into());
            }
        }
        lat.sort_by(f64::total_cmp);
        let t = Instant::now();
        let batches = 10;
        for k in 0..batches {
            let specs: Vec<ChildSpec> = (0..1_000)
                .map(|i| ChildSpec::new(format!("{name}-b{k}-{i}"), "counter"))
                .collect();
            let out = hubs[0]
                .start_children(specs, StartOptions::acked(ack))
                .await?;
            if !out.is_ok() {
                return Err("acked batch failed".into());
            }
        }
        let rate = (batches * 1_000) as f64 / t.elapsed().as_secs_f64();
        println!(
            "ack {name}: 1 child per start p50 {:.0} µs, p99 {:.0} µs; batches of 1,000: {rate:.0} children/s",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    for h in &hubs {
        h.shutdown().await?;
    }
    Ok(())
}

async fn cluster_rows(cli: &Cli, hot: bool) -> Result<(), AnyError> {
    let mut procs = Procs {
        exe: std::env::current_exe()?,
        nodes: BTreeMap::new(),
    };
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

/// Percentile of sorted microseconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn call_rows(cli: &Cli) -> Result<(), AnyError> {
    // 64 counters that run on b, called from a.
    let (a, b, on_b) = two_hubs(|b| b.register::<Counter>("counter")).await?;
    let timeout = Duration::from_secs(5);
    let rounds = 20_000;

    // 1 caller.
    let mut ours = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        a.call::<Counter>(on_b[0].as_str(), &CounterMsg::Get, timeout)
            .await?;
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ours.sort_by(f64::total_cmp);
    let floor = ping_pong_latencies(rounds).await?;
    let (p50, f50) = (pct(&ours, 0.5), pct(&floor, 0.5));
    println!(
        "call, 1 caller: p50 {p50:.1} µs, p99 {:.1} µs; bare ping-pong p50 {f50:.1} µs, p99 {:.1} µs; ratio {:.2}x",
        pct(&ours, 0.99),
        pct(&floor, 0.99),
        p50 / f50
    );

    // 64 callers, one child each.
    let a = Arc::new(a);
    let ours_rate = calls_per_second(&a, on_b, cli.seconds).await?;
    let floor_rate = ping_pong_throughput(64, cli.seconds).await?;
    println!(
        "call, 64 callers: {ours_rate:.0} calls/s; bare ping-pong 64 connections: {floor_rate:.0} round trips/s; ratio {:.2}",
        ours_rate / floor_rate
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// A bare tokio echo server of 64-byte frames; returns its address.
async fn echo_server() -> Result<String, AnyError> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn ping_pong_latencies(rounds: usize) -> Result<Vec<f64>, AnyError> {
    let addr = echo_server().await?;
    let mut s = TcpStream::connect(&addr).await?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&buf).await?;
        s.read_exact(&mut buf).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

async fn ping_pong_throughput(conns: usize, seconds: u64) -> Result<f64, AnyError> {
    let addr = echo_server().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut s = TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = [7u8; 64];
            while !stop.load(Ordering::Relaxed) {
                s.write_all(&buf).await?;
                s.read_exact(&mut buf).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / secs)
}
