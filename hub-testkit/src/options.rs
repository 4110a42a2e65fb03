//! How a test cluster is built: node count, seeds, network, strategies
//! and config.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use hub_core::{Config, Strategies};

use crate::network::NetConfig;

/// Builds the strategies of each node (called once per node start).
pub type StrategyFactory = Rc<dyn Fn() -> Strategies>;
pub(crate) type Configure = Rc<dyn Fn(&mut Config)>;

/// How to build a [`Cluster`].
#[derive(Clone)]
pub struct ClusterOptions {
    pub(crate) nodes: usize,
    pub(crate) seed: u64,
    pub(crate) net: NetConfig,
    pub(crate) kinds: Vec<String>,
    pub(crate) strategies: StrategyFactory,
    pub(crate) configure: Option<Configure>,
    pub(crate) seeds: usize,
    pub(crate) process_latency: Duration,
}

impl fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("nodes", &self.nodes)
            .field("seed", &self.seed)
            .field("net", &self.net)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl ClusterOptions {
    /// `nodes` nodes with default strategies, seed 0, a 1–5 ms lossless
    /// network and the kinds `counter` and `echo`.
    pub fn new(nodes: usize) -> Self {
        ClusterOptions {
            nodes,
            seed: 0,
            net: NetConfig::default(),
            kinds: vec!["counter".into(), "echo".into()],
            strategies: Rc::new(hub_strategies::defaults),
            configure: None,
            seeds: 2,
            process_latency: Duration::ZERO,
        }
    }

    /// How long the fake runtime takes to start or stop a process (default
    /// zero: reports come back within the same step).
    pub fn process_latency(mut self, latency: Duration) -> Self {
        self.process_latency = latency;
        self
    }

    /// How many live nodes a starting node is given as seeds (default 2);
    /// it learns the others from them.
    pub fn seeds(mut self, seeds: usize) -> Self {
        self.seeds = seeds;
        self
    }

    /// Seed of the network and of every node's RNG.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Network behaviour.
    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// Strategies of every node.
    pub fn strategies(mut self, f: impl Fn() -> Strategies + 'static) -> Self {
        self.strategies = Rc::new(f);
        self
    }

    /// Adjusts every node's config.
    pub fn configure(mut self, f: impl Fn(&mut Config) + 'static) -> Self {
        self.configure = Some(Rc::new(f));
        self
    }
}
