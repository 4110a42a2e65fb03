//! The `hub` command: run a node, inspect and control a running hub, or
//! watch a local demo cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command as OsCommand, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hub_core::{ChildId, ChildSpec, NodeId};
use hub_net::control::{CtlReply, CtlRequest, Status};
use hub_net::examples::{Counter, CounterMsg, Echo};
use hub_net::{Client, Hub};
use hub_strategies::{DistributionConfig, MigrationConfig, PartitionConfig, StrategyConfig};

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "processhub-rs: distributed processes over a consistent-hash ring"
)]
struct Cli {
    /// Log lines as `text` (colours only on a terminal) or `json` (one
    /// object per line); filtered by RUST_LOG (default `warn`).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Auth {
    /// Hub id.
    #[arg(long, default_value = "hub")]
    hub_id: String,
    /// File holding the shared cookie (else $HUB_COOKIE, else a development
    /// default, with a warning).
    #[arg(long)]
    cookie_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node until Ctrl-C or SIGTERM (then leave gracefully).
    Node {
        #[command(flatten)]
        auth: Auth,
        /// Node id (unique in the hub).
        #[arg(long)]
        node_id: String,
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// Address peers reach this node at (`HOST:PORT`); required when
        /// listening on 0.0.0.0 or [::].
        #[arg(long)]
        advertise: Option<String>,
        /// Seed address to join through, `HOST:PORT` (repeatable).
        #[arg(long)]
        seed: Vec<String>,
        /// Exit 1 if no peer has joined this node within this many seconds
        /// (a wrong cookie or hub id, an unreachable seed).
        #[arg(long, value_name = "SECS")]
        join_timeout: Option<u64>,
        /// Strategies from a TOML file (see hub-net/examples/strategies.toml);
        /// the flags below override it.
        #[arg(long)]
        strategies: Option<PathBuf>,
        /// Partition tolerance: `divergence` (default), `static:N`,
        /// `majority:N` (initial cluster size) or `dynamic:P[:SECONDS]`
        /// (percent, threshold time).
        #[arg(long, value_parser = parse_partition)]
        partition: Option<PartitionConfig>,
        /// Migration: `cold` (default), `hot` or `hot-handover`.
        #[arg(long, value_parser = parse_migration)]
        migration: Option<MigrationConfig>,
        /// Distribution: `hashing` (default), `guided` or `balanced`
        /// (centralized load balancer).
        #[arg(long, value_parser = parse_distribution)]
        distribution: Option<DistributionConfig>,
        /// Node tag `key=value` for placement constraints (repeatable),
        /// e.g. `--tag zone=a`.
        #[arg(long, value_parser = parse_tag)]
        tag: Vec<(String, String)>,
        /// Strict single-instance mode: a child runs only with this many
        /// nodes' grants (a majority of the largest cluster), never on two
        /// nodes at once. Every node must pass the same value.
        #[arg(long)]
        strict_quorum: Option<usize>,
    },
    /// Start a local cluster of separate processes and show what it does.
    Demo {
        /// Nodes to start.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Children to start.
        #[arg(long, default_value_t = 10_000)]
        children: usize,
    },
    /// Show a node's view of the hub.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Control a running hub through one of its nodes.
    Ctl {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        op: CtlOp,
    },
}

/// Which running node to talk to, and how to print.
#[derive(Args, Clone)]
struct Target {
    #[command(flatten)]
    auth: Auth,
    /// The node's address.
    #[arg(long)]
    node: String,
    /// Print JSON (see README for the format).
    #[arg(long)]
    json: bool,
}

impl Target {
    async fn connect(&self) -> Result<Client, AnyError> {
        Ok(Client::connect(&self.node, &self.auth.hub_id, cookie(&self.auth)?).await?)
    }
}

#[derive(Subcommand)]
enum CtlOp {
    /// Start children (awaited).
    Start {
        /// Child ids.
        ids: Vec<String>,
        /// Process kind: counter or echo.
        #[arg(long, default_value = "counter")]
        kind: String,
        /// Run only on nodes tagged `key=value` (repeatable).
        #[arg(long, value_parser = parse_tag)]
        require: Vec<(String, String)>,
        /// Prefer nodes tagged `key=value` (repeatable).
        #[arg(long, value_parser = parse_tag)]
        prefer: Vec<(String, String)>,
        /// Run on these nodes, primary first (comma-separated; what
        /// `--distribution guided` places by).
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
    /// Stop children (awaited).
    Stop {
        /// Child ids.
        ids: Vec<String>,
    },
    /// Where a child runs.
    Lookup {
        /// Child id.
        id: String,
    },
    /// Children per node.
    Which {
        /// Only this node's.
        #[arg(long)]
        local: bool,
        /// Instead, the children this node knows of that run nowhere yet
        /// (waiting for a node with the tags they require, for a quorum,
        /// for strict-mode grants): `{"waiting": [id]}`.
        #[arg(long, conflicts_with = "local")]
        waiting: bool,
    },
    /// Drain a node on purpose: it hands its children over and leaves, and
    /// no longer counts towards quorum. Returns once it has left.
    Decommission {
        /// The node's id.
        node: String,
    },
    /// Call a child with a JSON message of its kind, e.g. '{"Add":5}' or
    /// '"Get"' for counter, '"hello"' for echo.
    Call {
        /// Child id.
        id: String,
        /// The message, as JSON.
        message: String,
        /// The kind you expect it to be (counter or echo): the call is
        /// refused if the child is of another kind. By default the
        /// child's registered kind.
        #[arg(long)]
        kind: Option<String>,
    },
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn parse_partition(s: &str) -> Result<PartitionConfig, String> {
    let mut parts = s.split(':');
    let kind = parts.next().unwrap_or_default();
    let mut num = |what: &str| -> Result<u64, String> {
        parts
            .next()
            .ok_or(format!("{kind} needs {what}, e.g. {kind}:3"))
            .and_then(|raw| {
                raw.parse::<u64>()
                    .map_err(|e| format!("{kind} needs {what} as a number, not {raw:?} ({e})"))
            })
    };
    let choice = match kind {
        "divergence" => PartitionConfig::Divergence,
        "static" => PartitionConfig::StaticQuorum {
            quorum_size: num("a quorum size")? as usize,
            startup_confirm: false,
        },
        "majority" => PartitionConfig::MajorityQuorum {
            initial_cluster_size: num("an initial cluster size")? as usize,
        },
        "dynamic" => {
            let pct = num("a percent")?;
            if !(1..=100).contains(&pct) {
                return Err("dynamic quorum percent must be 1..=100".into());
            }
            let secs = num("a threshold in seconds").unwrap_or(30);
            PartitionConfig::DynamicQuorum {
                quorum_size: pct as u8,
                threshold_time: secs * 1000,
            }
        }
        other => return Err(format!("unknown partition strategy {other:?}")),
    };
    Ok(choice)
}

fn parse_migration(s: &str) -> Result<MigrationConfig, String> {
    let hot = |handover| MigrationConfig::HotSwap {
        handover,
        retention: 5000,
        handover_data_wait: 3000,
        child_migration_timeout: 10_000,
    };
    match s {
        "cold" => Ok(MigrationConfig::ColdSwap),
        "hot" => Ok(hot(false)),
        "hot-handover" => Ok(hot(true)),
        other => Err(format!(
            "unknown migration {other:?} (cold, hot or hot-handover)"
        )),
    }
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !k.contains(',') && !v.contains(',') => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("tag {s:?}: want key=value (no commas)")),
    }
}

fn parse_distribution(s: &str) -> Result<DistributionConfig, String> {
    match s {
        "hashing" => Ok(DistributionConfig::default()),
        "guided" => Ok(DistributionConfig::Guided),
        "balanced" => Ok(DistributionConfig::CentralizedLoadBalancer {
            push_interval: 10_000,
            max_history_size: 30,
            weight_decay_factor: 0.9,
        }),
        other => Err(format!(
            "unknown distribution {other:?} (hashing, guided or balanced)"
        )),
    }
}

/// The strategies of `hub node`: the file's, then the flags'.
fn node_strategies(
    file: Option<&PathBuf>,
    partition: Option<PartitionConfig>,
    migration: Option<MigrationConfig>,
    distribution: Option<DistributionConfig>,
) -> Result<hub_core::Strategies, AnyError> {
    let mut cfg = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            toml::from_str::<StrategyConfig>(&text)
                .map_err(|e| format!("bad strategies file {}: {e}", f.display()))?
        }
        None => StrategyConfig::default(),
    };
    if let Some(p) = partition {
        cfg.partition = p;
    }
    if let Some(m) = migration {
        cfg.migration = m;
    }
    if let Some(d) = distribution {
        cfg.distribution = d;
    }
    Ok(cfg.build()?)
}

fn cookie(auth: &Auth) -> Result<Bytes, AnyError> {
    if let Some(f) = &auth.cookie_file {
        let s =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return Ok(Bytes::from(s.trim().to_string()));
    }
    if let Ok(s) = std::env::var("HUB_COOKIE") {
        return Ok(Bytes::from(s));
    }
    tracing::warn!("no --cookie-file or HUB_COOKIE: using the development cookie");
    Ok(Bytes::from_static(b"processhub-dev-cookie"))
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cli.log_format == "json" {
        logs.json().try_init()
    } else {
        use std::io::IsTerminal;
        logs.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("hub: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.cmd {
        Cmd::Node {
            auth,
            node_id,
            listen,
            advertise,
            seed,
            join_timeout,
            strategies,
            partition,
            migration,
            distribution,
            tag,
            strict_quorum,
        } => {
            let s = node_strategies(strategies.as_ref(), partition, migration, distribution)?;
            let node = NodeOpts {
                node_id,
                listen,
                advertise,
                seeds: seed,
                join_timeout: join_timeout.map(Duration::from_secs),
                tags: tag,
                strict: strict_quorum.map(hub_core::Strict::new),
            };
            run_node(auth, node, s).await
        }
        Cmd::Demo { nodes, children } => demo(nodes, children).await,
        Cmd::Status { target } => {
            let mut c = target.connect().await?;
            match c
                .request(CtlRequest::Status, Duration::from_secs(5))
                .await?
            {
                CtlReply::Status(s) if target.json => {
                    println!("{}", serde_json::to_string_pretty(&s)?)
                }
                CtlReply::Status(s) => print_status(&s),
                other => return Err(format!("unexpected reply {other:?}").into()),
            }
            Ok(())
        }
        Cmd::Ctl { target, op } => {
            let mut c = target.connect().await?;
            ctl(&mut c, op, target.json).await
        }
    }
}

/// What `hub node` was told about the node itself.
struct NodeOpts {
    node_id: String,
    listen: String,
    advertise: Option<String>,
    seeds: Vec<String>,
    join_timeout: Option<Duration>,
    tags: Vec<(String, String)>,
    strict: Option<hub_core::Strict>,
}

async fn run_node(
    auth: Auth,
    node: NodeOpts,
    strategies: hub_core::Strategies,
) -> Result<(), AnyError> {
    let mut b = Hub::builder(auth.hub_id.clone())
        .strategies(strategies)
        .node_id(node.node_id)
        .listen(node.listen)
        .cookie(cookie(&auth)?)
        .register::<Counter>("counter")
        .register::<Echo>("echo");
    for s in node.seeds {
        b = b.seed(s);
    }
    if let Some(a) = node.advertise {
        b = b.advertise(a);
    }
    for (k, v) in node.tags {
        b = b.tag(k, v);
    }
    if let Some(strict) = node.strict {
        b = b.strict(strict);
    }
    let hub = b.start().await?;
    println!(
        "node {} listening on {}",
        hub.node_id(),
        hub.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    let joined = async {
        let Some(within) = node.join_timeout else {
            return std::future::pending::<String>().await;
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if hub.nodes().await.is_ok_and(|n| n.len() > 1) {
                return std::future::pending::<String>().await;
            }
            if tokio::time::Instant::now() >= deadline {
                return format!(
                    "joined no peer within {within:?} (--join-timeout); see the warnings above"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        why = joined => return Err(why.into()),
        _ = wait_for_signal() => {
            eprintln!("shutting down: handing children over");
            hub.shutdown().await?;
        }
        _ = hub.closed() => match hub.stop_reason() {
            Some(why) => return Err(why.into()),
            None => eprintln!("decommissioned: children handed over, left the cluster"),
        },
    }
    Ok(())
}

#[cfg(all(unix, not(madsim)))]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(any(not(unix), madsim))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn print_status(s: &Status) {
    println!("hub {}  node {}", s.hub_id, s.node_id);
    println!(
        "ring       {}",
        s.ring
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "children   {} in the hub, {} here",
        s.children, s.local_children
    );
    if s.waiting > 0 {
        println!("waiting    {} (known here, running nowhere yet)", s.waiting);
    }
    println!("locked     {}   partitioned {}", s.locked, s.partitioned);
    for m in &s.members {
        println!("  {:<12} {:<22} {}", m.id, m.addr, m.status);
    }
}

fn encode_message(kind: &str, json: &str) -> Result<Bytes, AnyError> {
    let bytes = match kind {
        "counter" => postcard::to_stdvec(&serde_json::from_str::<CounterMsg>(json)?)?,
        "echo" => postcard::to_stdvec(&serde_json::from_str::<String>(json)?)?,
        other => return Err(format!("unknown kind {other:?} (counter or echo)").into()),
    };
    Ok(Bytes::from(bytes))
}

fn decode_reply(kind: &str, bytes: &[u8]) -> Result<serde_json::Value, AnyError> {
    Ok(match kind {
        "counter" => serde_json::to_value(postcard::from_bytes::<i64>(bytes)?)?,
        "echo" => serde_json::to_value(postcard::from_bytes::<String>(bytes)?)?,
        other => return Err(format!("cannot decode replies of kind {other:?}").into()),
    })
}

async fn ctl(c: &mut Client, op: CtlOp, json: bool) -> Result<(), AnyError> {
    let t = Duration::from_secs(30);
    // Children a start or stop could not handle: the JSON is printed
    // anyway, and the command then fails naming them.
    let mut failures: Vec<String> = Vec::new();
    let mut asked = 0;
    let out: serde_json::Value = match op {
        CtlOp::Start {
            ids,
            kind,
            require,
            prefer,
            nodes,
        } => {
            let specs = ids
                .iter()
                .map(|id| {
                    let mut spec = ChildSpec::new(id.as_str(), kind.as_str());
                    for (k, v) in &require {
                        spec = spec.with_requirement(k, v);
                    }
                    for (k, v) in &prefer {
                        spec = spec.with_preference(k, v);
                    }
                    if !nodes.is_empty() {
                        spec = spec.with_nodes(nodes.iter().map(String::as_str));
                    }
                    spec
                })
                .collect();
            asked = ids.len();
            match c.request(CtlRequest::Start { specs }, t).await? {
                CtlReply::Started { started, failed } => {
                    failures = failed.iter().map(|(id, e)| format!("{id}: {e}")).collect();
                    serde_json::json!({
                    "started": started.iter().map(|(id, at)| (id.to_string(), at.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
                    "failed": failed.iter().map(|(id, e)| (id.to_string(), e.clone())).collect::<BTreeMap<_, _>>(),
                    })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Stop { ids } => {
            asked = ids.len();
            let ids = ids.into_iter().map(ChildId::from).collect();
            match c.request(CtlRequest::Stop { ids }, t).await? {
                CtlReply::Stopped { stopped, failed } => {
                    failures = failed.iter().map(|(id, e)| format!("{id}: {e}")).collect();
                    serde_json::json!({
                    "stopped": stopped.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    "failed": failed.iter().map(|(id, e)| (id.to_string(), e.clone())).collect::<BTreeMap<_, _>>(),
                    })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Lookup { id } => match c
            .request(
                CtlRequest::Lookup {
                    id: id.as_str().into(),
                },
                t,
            )
            .await?
        {
            CtlReply::Lookup(at, waiting) => serde_json::json!({
                "id": id,
                "nodes": at.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
                "waiting": waiting,
            }),
            other => return Err(reply_error(other)),
        },
        CtlOp::Which { waiting: true, .. } => match c.request(CtlRequest::Waiting, t).await? {
            CtlReply::Waiting(ids) => serde_json::json!({
                "waiting": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            }),
            other => return Err(reply_error(other)),
        },
        CtlOp::Which { local, .. } => {
            match c.request(CtlRequest::Which { global: !local }, t).await? {
                CtlReply::Which(m) => serde_json::to_value(
                    m.iter()
                        .map(|(n, ids)| {
                            (
                                n.to_string(),
                                ids.iter().map(|(i, _)| i.to_string()).collect::<Vec<_>>(),
                            )
                        })
                        .collect::<BTreeMap<_, _>>(),
                )?,
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Decommission { node } => {
            let req = CtlRequest::Decommission {
                node: node.as_str().into(),
            };
            // The drain may take up to the node's shutdown timeout.
            match c.request(req, Duration::from_secs(120)).await? {
                CtlReply::Decommissioned(n) => {
                    serde_json::json!({ "decommissioned": n.to_string() })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Call { id, message, kind } => {
            let registered = match c
                .request(
                    CtlRequest::Kind {
                        id: id.as_str().into(),
                    },
                    t,
                )
                .await?
            {
                CtlReply::Kind(Some(k)) => k,
                CtlReply::Kind(None) => return Err(format!("no child {id:?} is registered").into()),
                other => return Err(reply_error(other)),
            };
            if let Some(k) = kind.filter(|k| *k != registered) {
                return Err(format!("{id} is a {registered:?} child, not {k:?}").into());
            }
            let kind = registered;
            let payload = encode_message(&kind, &message)?;
            let req = CtlRequest::Call {
                id: id.as_str().into(),
                payload,
                timeout_ms: 5_000,
            };
            match c.request(req, t).await? {
                CtlReply::Called(Ok(b)) => {
                    serde_json::json!({ "id": id, "reply": decode_reply(&kind, &b)? })
                }
                CtlReply::Called(Err(e)) => return Err(format!("call failed: {e}").into()),
                other => return Err(reply_error(other)),
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{out}");
    }
    if !failures.is_empty() {
        let n = failures.len();
        let mut named = failures.into_iter().take(3).collect::<Vec<_>>().join("; ");
        if n > 3 {
            named.push_str(&format!("; and {} more", n - 3));
        }
        return Err(format!("{n} of {asked} children failed: {named}").into());
    }
    Ok(())
}

fn reply_error(r: CtlReply) -> AnyError {
    match r {
        CtlReply::Error(e) => e.into(),
        other => format!("unexpected reply {other:?}").into(),
    }
}

// ----- demo -------------------------------------------------------------

struct Cluster {
    procs: BTreeMap<String, (Child, String)>,
    cookie_file: PathBuf,
    exe: PathBuf,
}

impl Cluster {
    fn spawn(&mut self, id: &str, seed: Option<&str>) -> Result<String, AnyError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = OsCommand::new(&self.exe);
        cmd.args([
            "node",
            "--hub-id",
            "demo",
            "--node-id",
            id,
            "--listen",
            &addr,
        ])
        .arg("--cookie-file")
        .arg(&self.cookie_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        let child = cmd.spawn()?;
        self.procs.insert(id.to_string(), (child, addr.clone()));
        Ok(addr)
    }

    fn kill(&mut self, id: &str) {
        if let Some((mut c, _)) = self.procs.remove(id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, (c, _)) in self.procs.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.cookie_file);
    }
}

async fn client(addr: &str) -> Result<Client, AnyError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(addr, "demo", "demo-cookie").await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn status(c: &mut Client) -> Result<Status, AnyError> {
    match c
        .request(CtlRequest::Status, Duration::from_secs(5))
        .await?
    {
        CtlReply::Status(s) => Ok(s),
        other => Err(reply_error(other)),
    }
}

async fn placement(c: &mut Client) -> Result<BTreeMap<NodeId, Vec<ChildId>>, AnyError> {
    match c
        .request(CtlRequest::Which { global: true }, Duration::from_secs(10))
        .await?
    {
        CtlReply::Which(m) => Ok(m
            .into_iter()
            .map(|(n, v)| (n, v.into_iter().map(|(i, _)| i).collect()))
            .collect()),
        other => Err(reply_error(other)),
    }
}

async fn wait(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, AnyError>,
) -> Result<(), AnyError> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

fn show(p: &BTreeMap<NodeId, Vec<ChildId>>, total: usize) {
    for (n, ids) in p {
        let share = 100.0 * ids.len() as f64 / total.max(1) as f64;
        println!(
            "  {:<4} {:>7} children {:>5.1}%  {}",
            n,
            ids.len(),
            share,
            "#".repeat((share / 2.0) as usize)
        );
    }
}

async fn demo(nodes: usize, children: usize) -> Result<(), AnyError> {
    let t0 = Instant::now();
    let cookie_file = std::env::temp_dir().join(format!("hub-demo-cookie-{}", std::process::id()));
    std::fs::write(&cookie_file, "demo-cookie")?;
    let mut cl = Cluster {
        procs: BTreeMap::new(),
        cookie_file,
        exe: std::env::current_exe()?,
    };
    println!("== starting {nodes} nodes (separate processes on 127.0.0.1)");
    let seed = cl.spawn("n0", None)?;
    for i in 1..nodes {
        cl.spawn(&format!("n{i}"), Some(&seed))?;
    }
    let mut c = client(&seed).await?;
    wait("the cluster to form", Duration::from_secs(20), async || {
        Ok(status(&mut c).await?.ring.len() == nodes)
    })
    .await?;
    println!("   formed in {:?}", t0.elapsed());

    println!("== starting {children} counters");
    let bar = indicatif::ProgressBar::new(children as u64);
    let started_at = Instant::now();
    let mut failed = 0;
    for chunk in (0..children).collect::<Vec<_>>().chunks(1000) {
        let specs = chunk
            .iter()
            .map(|i| ChildSpec::new(format!("counter-{i}"), "counter"))
            .collect();
        match c
            .request(CtlRequest::Start { specs }, Duration::from_secs(60))
            .await?
        {
            CtlReply::Started { failed: f, .. } => failed += f.len(),
            other => return Err(reply_error(other)),
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let start_secs = started_at.elapsed().as_secs_f64();
    println!(
        "   started {} ({} failed) in {:.2}s",
        children - failed,
        failed,
        start_secs
    );
    let before = placement(&mut c).await?;
    println!("== where they landed");
    show(&before, children);

    let joiner = format!("n{nodes}");
    println!("== adding node {joiner}");
    cl.spawn(&joiner, Some(&seed))?;
    let join_at = Instant::now();
    wait("the join to settle", Duration::from_secs(60), async || {
        let s = status(&mut c).await?;
        Ok(s.ring.len() == nodes + 1
            && !s.locked
            && placement(&mut c)
                .await?
                .get(joiner.as_str())
                .map_or(0, Vec::len)
                > 0
            && s.children == children)
    })
    .await?;
    // Moves finish when the joiner's share stops growing.
    let mut last = 0;
    wait(
        "migrations to finish",
        Duration::from_secs(60),
        async || {
            let n = placement(&mut c)
                .await?
                .get(joiner.as_str())
                .map_or(0, Vec::len);
            let done = n == last;
            last = n;
            Ok(done)
        },
    )
    .await?;
    let after = placement(&mut c).await?;
    let moved = after.get(joiner.as_str()).map_or(0, Vec::len);
    println!(
        "   {moved} children moved to {joiner} ({:.1}%, ideal {:.1}%) in {:?}",
        100.0 * moved as f64 / children as f64,
        100.0 / (nodes + 1) as f64,
        join_at.elapsed()
    );
    show(&after, children);

    let victim = "n1".to_string();
    let lost = after.get(victim.as_str()).map_or(0, Vec::len);
    println!("== killing {victim} (kill -9) with {lost} children");
    cl.kill(&victim);
    let kill_at = Instant::now();
    wait("the restart", Duration::from_secs(60), async || {
        let s = status(&mut c).await?;
        let p = placement(&mut c).await?;
        Ok(s.ring.len() == nodes
            && !p.contains_key(victim.as_str())
            && p.values().map(Vec::len).sum::<usize>() == children)
    })
    .await?;
    let restart_secs = kill_at.elapsed().as_secs_f64();
    let final_p = placement(&mut c).await?;
    println!("   all {lost} restarted on their new owners in {restart_secs:.2}s (failure detection included)");
    show(&final_p, children);

    let sample = c
        .request(
            CtlRequest::Call {
                id: "counter-1".into(),
                payload: encode_message("counter", r#"{"Add":1}"#)?,
                timeout_ms: 2000,
            },
            Duration::from_secs(5),
        )
        .await?;
    let called = matches!(sample, CtlReply::Called(Ok(_)));

    println!("== summary");
    println!("  {:<36} {}", "nodes (after join and kill)", final_p.len());
    println!(
        "  {:<36} {}",
        "children running",
        final_p.values().map(Vec::len).sum::<usize>()
    );
    println!(
        "  {:<36} {:.0}/s",
        "start rate",
        children as f64 / start_secs.max(1e-9)
    );
    println!("  {:<36} {moved}", "moved on join");
    println!(
        "  {:<36} {lost} in {restart_secs:.2}s",
        "restarted after kill -9"
    );
    println!(
        "  {:<36} {}",
        "call to counter-1",
        if called { "ok" } else { "failed" }
    );
    println!("  {:<36} {:.1}s", "total", t0.elapsed().as_secs_f64());
    if !called {
        return Err("the sample call failed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{node_strategies, parse_migration, parse_partition};
    use hub_strategies::{MigrationConfig, PartitionConfig};

    #[test]
    fn partition_flags_parse_or_explain() {
        assert_eq!(
            parse_partition("divergence"),
            Ok(PartitionConfig::Divergence)
        );
        assert_eq!(
            parse_partition("static:3"),
            Ok(PartitionConfig::StaticQuorum {
                quorum_size: 3,
                startup_confirm: false
            })
        );
        assert_eq!(
            parse_partition("majority:5"),
            Ok(PartitionConfig::MajorityQuorum {
                initial_cluster_size: 5
            })
        );
        let dynamic = |quorum_size, threshold_time| PartitionConfig::DynamicQuorum {
            quorum_size,
            threshold_time,
        };
        assert_eq!(parse_partition("dynamic:60"), Ok(dynamic(60, 30_000)));
        assert_eq!(parse_partition("dynamic:60:10"), Ok(dynamic(60, 10_000)));
        assert!(parse_partition("static").unwrap_err().contains("needs"));
        assert!(parse_partition("dynamic:0").is_err());
        assert!(parse_partition("quorum:2").unwrap_err().contains("unknown"));
    }

    #[test]
    fn the_example_file_loads_and_flags_override_it() {
        let file = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/strategies.toml"
        ));
        let s = node_strategies(Some(&file), None, None, None).unwrap();
        assert_eq!(s.migration.name(), "hot_swap");
        assert_eq!(s.partition.name(), "majority_quorum");
        let cold = parse_migration("cold").ok();
        assert_eq!(cold, Some(MigrationConfig::ColdSwap));
        let s = node_strategies(Some(&file), None, cold, None).unwrap();
        assert_eq!(s.migration.name(), "cold_swap");
        assert!(parse_migration("warm").is_err());
        let missing = std::path::PathBuf::from("/nonexistent/strategies.toml");
        let err = node_strategies(Some(&missing), None, None, None).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
