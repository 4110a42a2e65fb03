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
//! again), and the first message to a child on demand against a warm
//! call and an awaited start plus a call.
//! `--only cluster|calls|lookup|acks|strict|ondemand|snapshots` runs one
//! group.

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

mod calls;
mod floors;
mod lookup;
mod on_demand;
mod procs;
mod rows;
mod strict;

use calls::{call_rows, pct, snapshot_rows};
use lookup::lookup_rows;
use on_demand::on_demand_rows;
use procs::Procs;
use rows::cluster_rows;
use strict::{ack_rows, strict_rows};

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
    /// Run only this group of rows: cluster, calls, lookup, acks, strict,
    /// ondemand or snapshots.
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
    /// Measures the bare-actor and bare-map floors alone in this process
    /// (used by the benchmark itself).
    Floor {
        #[arg(long)]
        actors: usize,
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
        Some(Cmd::Floor { actors }) => rt.block_on(floors::actor_floor(actors)),
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

/// How often [`until`] asks while a measured phase runs: often enough to
/// resolve it, rarely enough not to load the nodes it measures (a status
/// walks every local child).
const POLL: Duration = Duration::from_millis(10);

/// Polls every `poll` until `done` holds or `within` passes.
async fn until(
    what: &str,
    within: Duration,
    poll: Duration,
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
        tokio::time::sleep(poll).await;
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
    if run("lookup") {
        println!(
            "== child_lookup through the public API (2 hubs in this process) vs a bare HashMap"
        );
        lookup_rows(cli.children).await?;
    }
    if run("acks") {
        println!("== acknowledged starts (3 hubs in this process)");
        ack_rows().await?;
    }
    if run("strict") {
        println!("== strict single-instance mode vs divergence (3 hubs in this process)");
        strict_rows().await?;
    }
    if run("ondemand") {
        println!("== children on demand (2 hubs in this process)");
        on_demand_rows().await?;
    }
    if run("snapshots") {
        println!("== calls with crash snapshots (2 hubs in this process)");
        for policy in [None, Some(100), Some(1)] {
            snapshot_rows(policy, cli.seconds).await?;
        }
    }
    Ok(())
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
