//! The command line: subcommands and their flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hub_net::Client;
use hub_strategies::{DistributionConfig, MigrationConfig, PartitionConfig};

use crate::flags::{cookie, parse_tag};
use crate::settings::NodeFile;
use crate::AnyError;

#[derive(Parser)]
#[command(
    version,
    about = "processhub-rs: distributed processes over a consistent-hash ring"
)]
pub(crate) struct Args {
    /// Log lines as `text` (colours only on a terminal) or `json` (one
    /// object per line); filtered by RUST_LOG (default `warn`).
    #[arg(long, global = true, env = "HUB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Auth {
    /// Hub id (default `hub`).
    #[arg(long, env = "HUB_ID")]
    pub(crate) hub_id: Option<String>,
    /// File holding the shared cookie (else $HUB_COOKIE, else a development
    /// default, with a warning).
    #[arg(long, env = "HUB_COOKIE_FILE")]
    pub(crate) cookie_file: Option<PathBuf>,
}

impl Auth {
    /// The hub id, `hub` unless told.
    pub(crate) fn hub_id(&self) -> &str {
        self.hub_id.as_deref().unwrap_or("hub")
    }
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run one node until Ctrl-C or SIGTERM (then leave gracefully).
    Node(Box<NodeArgs>),
    /// Start a local cluster of separate processes and show what it does.
    Demo {
        /// Nodes to start.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Children to start.
        #[arg(long, default_value_t = 10_000)]
        children: usize,
        /// The nodes' `--down-after` (see `hub node --help`): how soon the
        /// killed node's children run again.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        down_after: Option<Duration>,
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

/// `node`: what the node is told about itself. Each option is also an
/// environment variable and a key of the `--config` file; a flag beats
/// the variable, which beats the file, which beats the default.
#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// A TOML file with any of these options (keys as the flags' long
    /// names with `_` for `-`, but `seeds` for --seed, `strategies_file`
    /// for --strategies, and no `log_format`; `seeds` and `tags` as lists;
    /// a `[strategies]` table as in a --strategies file; relative paths
    /// from the file's directory).
    #[arg(long, env = "HUB_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) auth: Auth,
    /// Node id (unique in the hub; required).
    #[arg(long, env = "HUB_NODE_ID")]
    pub(crate) node_id: Option<String>,
    /// Address to listen on (required).
    #[arg(long, env = "HUB_LISTEN")]
    pub(crate) listen: Option<String>,
    /// Address peers reach this node at (`HOST:PORT`); required when
    /// listening on 0.0.0.0 or [::].
    #[arg(long, env = "HUB_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// Seed address to join through, `HOST:PORT` (repeatable, or
    /// comma-separated).
    #[arg(long, env = "HUB_SEEDS", value_delimiter = ',')]
    pub(crate) seed: Vec<String>,
    /// Find peers by DNS, re-resolved periodically: `dns:NAME:PORT`
    /// (A/AAAA records, e.g. a Kubernetes headless Service) or
    /// `dns-srv:NAME` (SRV records), optionally `@IP:PORT` of the name
    /// server to ask.
    #[arg(long, env = "HUB_DISCOVERY", value_name = "SPEC")]
    pub(crate) discovery: Option<hub_net::DnsDiscovery>,
    /// Seconds between discovery lookups (default 5).
    #[arg(long, env = "HUB_DISCOVERY_INTERVAL", value_name = "SECS")]
    pub(crate) discovery_interval: Option<u64>,
    /// Exit 1 if no peer has joined this node within this many seconds
    /// (a wrong cookie or hub id, an unreachable seed).
    #[arg(long, env = "HUB_JOIN_TIMEOUT", value_name = "SECS")]
    pub(crate) join_timeout: Option<u64>,
    /// Failure detection: seconds between heartbeats (default 0.5; without
    /// it, a third of the suspect time in effect).
    #[arg(long, env = "HUB_HEARTBEAT_INTERVAL", value_name = "SECS", value_parser = parse_secs)]
    pub(crate) heartbeat_interval: Option<Duration>,
    /// Failure detection: seconds of silence before a peer is suspect
    /// (default 1.5; without it, half the down time, or three heartbeats
    /// when only those are given).
    #[arg(long, env = "HUB_SUSPECT_AFTER", value_name = "SECS", value_parser = parse_secs)]
    pub(crate) suspect_after: Option<Duration>,
    /// Failure detection: seconds of silence before a peer is down and its
    /// children restart elsewhere (default 3). Lower recovers sooner after a
    /// crash; but a node that stalls that long (CPU starvation, swapping, a
    /// paused VM) is declared down while alive, and its children run twice
    /// until the duplicates are resolved. Keep it well above your worst
    /// stalls.
    #[arg(long, env = "HUB_DOWN_AFTER", value_name = "SECS", value_parser = parse_secs)]
    pub(crate) down_after: Option<Duration>,
    /// Strategies from a TOML file (see hub-cli/examples/strategies.toml);
    /// the flags below override it.
    #[arg(long, env = "HUB_STRATEGIES")]
    pub(crate) strategies: Option<PathBuf>,
    /// Partition tolerance: `divergence` (default), `static:N`,
    /// `majority:N` (initial cluster size) or `dynamic:P[:SECONDS]`
    /// (percent, threshold time).
    #[arg(long, env = "HUB_PARTITION")]
    pub(crate) partition: Option<PartitionConfig>,
    /// Migration: `cold` (default), `hot` or `hot-handover`.
    #[arg(long, env = "HUB_MIGRATION")]
    pub(crate) migration: Option<MigrationConfig>,
    /// Distribution: `hashing` (default), `guided` or `balanced`
    /// (centralized load balancer).
    #[arg(long, env = "HUB_DISTRIBUTION")]
    pub(crate) distribution: Option<DistributionConfig>,
    /// Node tag `key=value` for placement constraints (repeatable, or
    /// comma-separated), e.g. `--tag zone=a`.
    #[arg(long, env = "HUB_TAGS", value_delimiter = ',', value_parser = parse_tag)]
    pub(crate) tag: Vec<(String, String)>,
    /// Strict single-instance mode: a child runs only with this many
    /// nodes' grants (a majority of the largest cluster), never on two
    /// nodes at once. Every node must pass the same value.
    #[arg(long, env = "HUB_STRICT_QUORUM")]
    pub(crate) strict_quorum: Option<usize>,
    /// Serve the management endpoint (the live dashboard at `/`, HTTP
    /// probes, cluster view, Prometheus metrics) on this address, e.g.
    /// `0.0.0.0:8558`.
    #[arg(long, env = "HUB_MANAGEMENT", value_name = "ADDR")]
    pub(crate) management: Option<String>,
    /// File holding the bearer token that `POST /drain` and the
    /// dashboard's decommission need; without it the management endpoint
    /// is read-only.
    #[arg(long, env = "HUB_MANAGEMENT_TOKEN_FILE", value_name = "FILE")]
    pub(crate) management_token_file: Option<PathBuf>,
    /// `/ready` answers 503 while the ring has fewer members than this
    /// (self included; default 1).
    #[arg(long, env = "HUB_MIN_MEMBERS")]
    pub(crate) min_members: Option<usize>,
    /// Also run the example kinds (counter, echo, role-probe): what
    /// `demo` starts its nodes with.
    #[arg(long, hide = true)]
    pub(crate) example_kinds: bool,
}

/// Which running node to talk to, and how to print.
#[derive(clap::Args, Clone)]
pub(crate) struct Target {
    #[command(flatten)]
    pub(crate) auth: Auth,
    /// The node's address (default: the address in `--config`).
    #[arg(long)]
    pub(crate) node: Option<String>,
    /// A node's config file: its hub id, cookie file and address, unless
    /// given as flags.
    #[arg(long, env = "HUB_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print JSON (see README for the format).
    #[arg(long)]
    pub(crate) json: bool,
}

impl Target {
    pub(crate) async fn connect(&self) -> Result<Client, AnyError> {
        let (mut auth, mut node) = (self.auth.clone(), self.node.clone());
        if let Some(path) = &self.config {
            let (hub_id, cookie_file, addr) = NodeFile::load(path)?.for_tools();
            auth.hub_id = auth.hub_id.or(hub_id);
            auth.cookie_file = auth.cookie_file.or(cookie_file);
            node = node.or(addr);
        }
        let node = node.ok_or_else(|| {
            crate::UsageError("no --node given, and no address in a --config file".into())
        })?;
        let client = Client::connect(&node, auth.hub_id(), cookie(&auth)?)
            .await
            .map_err(|e| format!("{node}: {e}"))?;
        Ok(client)
    }
}

#[derive(Subcommand)]
pub(crate) enum CtlOp {
    /// Start children (awaited).
    Start {
        /// Child ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Process kind (default: the first kind this binary registers,
        /// `counter` for `hub`).
        #[arg(long)]
        kind: Option<String>,
        /// Start arguments as JSON of the kind's `Args` type (e.g. `100`);
        /// without them a kind starts from its `Args`' zero value.
        #[arg(long, value_name = "JSON")]
        args: Option<String>,
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
        #[arg(required = true)]
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
    /// Call a child with a JSON message of its kind (serde's JSON form of
    /// the kind's message type), e.g. '{"Add":5}' or '"Get"' for counter,
    /// '"hello"' for echo.
    Call {
        /// Child id.
        id: String,
        /// The message, as JSON.
        message: String,
        /// The kind you expect it to be: the call is
        /// refused if the child is of another kind. By default the
        /// child's registered kind.
        #[arg(long)]
        kind: Option<String>,
        /// How long to wait for the answer, through moves and failovers
        /// (a child whose node died is called again on its new owner).
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        timeout: u64,
    },
}

/// Seconds as a decimal number, between 1 ms and an hour.
pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.001..=3600.0).contains(&secs) {
        return Err(format!("{s} s is outside 0.001..=3600 s"));
    }
    Ok(Duration::from_secs_f64(secs))
}
