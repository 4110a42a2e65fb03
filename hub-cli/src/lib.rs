//! # hub-cli
//!
//! The whole `hub` command line (`node`, `status`, `ctl`, `demo`) as a
//! library, so that your own binary runs nodes with your own process
//! kinds. The `hub` binary is this with the example kinds.
//!
//! ```no_run
//! use hub_net::examples::Counter;
//!
//! fn main() -> std::process::ExitCode {
//!     hub_cli::NodeCli::new("my-node")
//!         .register::<Counter>("counter")
//!         .run()
//! }
//! ```
//!
//! `my-node node --node-id a --listen 127.0.0.1:7000` then runs a node
//! that knows kind `counter`, and `my-node ctl --node 127.0.0.1:7000 call
//! c1 '{"Add":5}'` decodes the reply by the child's kind. Exit codes: 0
//! success, 1 anything failed (the reason on stderr), 2 bad usage.
#![deny(missing_docs)]

mod args;
mod ctl;
mod demo;
mod flags;
mod node;
mod settings;
mod stdout;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::{CommandFactory, FromArgMatches};
use hub_net::examples::{Counter, Echo, RoleProbe};
use hub_net::{HubBuilder, Process, SnapshotPolicy};

use crate::args::{Args, Cmd};

/// Errors the commands report: printed on stderr, exit code 1.
pub(crate) type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A command line that parses but misses what the command needs (e.g. no
/// node to ask): exit code 2, like a command line that does not parse.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// How `ctl call` turns JSON into a kind's message and its reply back.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    pub(crate) encode_args: fn(&str) -> Result<Bytes, AnyError>,
    pub(crate) encode: fn(&str) -> Result<Bytes, AnyError>,
    pub(crate) decode: fn(&[u8]) -> Result<serde_json::Value, AnyError>,
}

fn encode_args<P: Process>(json: &str) -> Result<Bytes, AnyError> {
    let args: P::Args = serde_json::from_str(json)?;
    Ok(Bytes::from(postcard::to_stdvec(&args)?))
}

fn encode_json<P: Process>(json: &str) -> Result<Bytes, AnyError> {
    let msg: P::Message = serde_json::from_str(json)?;
    Ok(Bytes::from(postcard::to_stdvec(&msg)?))
}

fn decode_json<P: Process>(bytes: &[u8]) -> Result<serde_json::Value, AnyError>
where
    P::Reply: serde::Serialize,
{
    let reply: P::Reply = postcard::from_bytes(bytes)?;
    Ok(serde_json::to_value(reply)?)
}

type Register = Arc<dyn Fn(HubBuilder) -> HubBuilder + Send + Sync>;

/// A command line for nodes of your own process kinds. See the crate docs.
#[derive(Clone)]
pub struct NodeCli {
    name: String,
    about: Option<String>,
    kinds: Vec<(String, Register)>,
    codecs: BTreeMap<String, Codec>,
    configure: Option<Register>,
}

impl std::fmt::Debug for NodeCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCli")
            .field("name", &self.name)
            .field("kinds", &self.codecs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NodeCli {
    /// A command line named `name` (shown in `--help`), with no kinds yet.
    pub fn new(name: impl Into<String>) -> Self {
        NodeCli {
            name: name.into(),
            about: None,
            kinds: Vec::new(),
            codecs: BTreeMap::new(),
            configure: None,
        }
    }

    /// The one-line description `--help` shows.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    /// Nodes run kind `P` under `name`; `ctl call` and `ctl start` know it.
    pub fn register<P: Process>(self, name: impl Into<String>) -> Self
    where
        P::Reply: serde::Serialize,
    {
        let name = name.into();
        let kind = name.clone();
        self.kind::<P>(name, Arc::new(move |b| b.register::<P>(kind.clone())))
    }

    /// [`NodeCli::register`] with crash-recovery snapshots (see
    /// [`HubBuilder::register_with_snapshots`]).
    pub fn register_with_snapshots<P: Process>(
        self,
        name: impl Into<String>,
        policy: SnapshotPolicy,
    ) -> Self
    where
        P::Reply: serde::Serialize,
    {
        let name = name.into();
        let kind = name.clone();
        self.kind::<P>(
            name,
            Arc::new(move |b| b.register_with_snapshots::<P>(kind.clone(), policy)),
        )
    }

    fn kind<P: Process>(mut self, name: String, register: Register) -> Self
    where
        P::Reply: serde::Serialize,
    {
        self.codecs.insert(
            name.clone(),
            Codec {
                encode_args: encode_args::<P>,
                encode: encode_json::<P>,
                decode: decode_json::<P>,
            },
        );
        self.kinds.retain(|(k, _)| *k != name);
        self.kinds.push((name, register));
        self
    }

    /// Adjusts every node's builder after the flags are applied: hooks,
    /// static children, limits, core configuration.
    pub fn configure(
        mut self,
        f: impl Fn(HubBuilder) -> HubBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(f));
        self
    }

    /// The example kinds `counter`, `echo` and `role-probe` (what the
    /// `hub` binary runs, and what `demo` starts its nodes with).
    pub fn with_example_kinds(self) -> Self {
        self.register::<Counter>("counter")
            .register::<Echo>("echo")
            .register::<RoleProbe>("role-probe")
    }

    /// Parses the process's arguments, runs the command and returns its
    /// exit code; logs go to stderr per `--log-format` and `RUST_LOG`.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// [`NodeCli::run`] with the given arguments (the first is the
    /// program name).
    pub fn run_from<I, T>(self, argv: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Args::command().name(self.name.clone());
        if let Some(about) = &self.about {
            command = command.about(about.clone());
        }
        let parsed = command
            .try_get_matches_from(argv)
            .and_then(|m| Args::from_arg_matches(&m));
        let args = match parsed {
            Ok(a) => a,
            // --help and --version print and exit 0; bad usage exits 2.
            Err(e) => e.exit(),
        };
        init_logs(&args.log_format);
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{}: cannot start the runtime: {e}", self.name);
                return ExitCode::FAILURE;
            }
        };
        match rt.block_on(self.dispatch(args.cmd)) {
            Ok(()) if stdout::failed() => {
                eprintln!("{}: cannot write to stdout", self.name);
                ExitCode::FAILURE
            }
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.is::<UsageError>() => {
                eprintln!("{}: {e}", self.name);
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("{}: {e}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    async fn dispatch(&self, cmd: Cmd) -> Result<(), AnyError> {
        match cmd {
            Cmd::Node(args) => node::run(self, *args).await,
            Cmd::Demo {
                nodes,
                children,
                down_after,
            } => demo::run(nodes, children, down_after).await,
            Cmd::Status { target } => ctl::status(&target).await,
            Cmd::Ctl { target, op } => {
                let mut c = target.connect().await?;
                let kinds = ctl::Kinds {
                    codecs: &self.codecs,
                    default: self.kinds.first().map(|(k, _)| k.as_str()),
                };
                ctl::run(&mut c, op, target.json, kinds).await
            }
        }
    }

    /// The builder with every registered kind (and, for `demo` nodes, the
    /// examples underneath them), then the user's adjustments.
    pub(crate) fn apply(&self, mut b: HubBuilder, example_kinds: bool) -> HubBuilder {
        if example_kinds {
            b = b
                .register::<Counter>("counter")
                .register::<Echo>("echo")
                .register::<RoleProbe>("role-probe");
        }
        for (_, register) in &self.kinds {
            b = register(b);
        }
        match &self.configure {
            Some(f) => f(b),
            None => b,
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        logs.json().try_init()
    } else {
        use std::io::IsTerminal;
        logs.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}
