//! A node's settings, resolved from its three sources: a flag beats its
//! environment variable (clap reads both), which beats the `--config`
//! file, which beats the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hub_strategies::{DistributionConfig, MigrationConfig, PartitionConfig, StrategyConfig};
use serde::Deserialize;

use crate::args::{Auth, NodeArgs};
use crate::flags::parse_tag;
use crate::AnyError;

/// The `--config` file: every `node` option, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeFile {
    hub_id: Option<String>,
    cookie_file: Option<PathBuf>,
    node_id: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    #[serde(default)]
    seeds: Vec<String>,
    discovery: Option<String>,
    discovery_interval: Option<u64>,
    join_timeout: Option<u64>,
    /// Seconds, as the flags.
    heartbeat_interval: Option<f64>,
    suspect_after: Option<f64>,
    down_after: Option<f64>,
    /// A strategies file, as `--strategies`.
    strategies_file: Option<PathBuf>,
    /// The strategies inline, as in a strategies file.
    strategies: Option<StrategyConfig>,
    partition: Option<String>,
    migration: Option<String>,
    distribution: Option<String>,
    /// `key=value` strings or a table.
    tags: Option<Tags>,
    strict_quorum: Option<usize>,
    management: Option<String>,
    management_token_file: Option<PathBuf>,
    min_members: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Tags {
    List(Vec<String>),
    Table(BTreeMap<String, String>),
}

impl NodeFile {
    /// Reads `path`; the files it names by a relative path are relative
    /// to its own directory, wherever the command runs from.
    pub(crate) fn load(path: &Path) -> Result<Self, AnyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut file: NodeFile = toml::from_str(&text)
            .map_err(|e| format!("bad config file {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for named in [
            &mut file.cookie_file,
            &mut file.strategies_file,
            &mut file.management_token_file,
        ]
        .into_iter()
        .flatten()
        {
            if named.is_relative() {
                *named = dir.join(&*named);
            }
        }
        Ok(file)
    }

    /// What `status` and `ctl` take from a node's file: its hub id, its
    /// cookie file and where to reach it (the advertised address, else the
    /// listen address, an unspecified IP read as loopback: the tool runs
    /// beside the node, as `kubectl exec` does).
    pub(crate) fn for_tools(self) -> (Option<String>, Option<PathBuf>, Option<String>) {
        let addr = self.advertise.or_else(|| {
            self.listen
                .map(|l| match l.parse::<std::net::SocketAddr>() {
                    Ok(a) if a.ip().is_unspecified() => {
                        let ip: std::net::IpAddr = if a.is_ipv4() {
                            std::net::Ipv4Addr::LOCALHOST.into()
                        } else {
                            std::net::Ipv6Addr::LOCALHOST.into()
                        };
                        std::net::SocketAddr::new(ip, a.port()).to_string()
                    }
                    _ => l,
                })
        });
        (self.hub_id, self.cookie_file, addr)
    }
}

/// Everything `node` needs, each value from the strongest source that
/// gave one.
#[derive(Debug)]
pub(crate) struct NodeSettings {
    pub(crate) auth: Auth,
    pub(crate) node_id: String,
    pub(crate) listen: String,
    pub(crate) advertise: Option<String>,
    pub(crate) seeds: Vec<String>,
    pub(crate) discovery: Option<hub_net::DnsDiscovery>,
    pub(crate) join_timeout: Option<Duration>,
    pub(crate) detection: Detection,
    pub(crate) strategies: hub_core::Strategies,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) strict_quorum: Option<usize>,
    pub(crate) management: Option<String>,
    pub(crate) management_token_file: Option<PathBuf>,
    pub(crate) min_members: usize,
    pub(crate) example_kinds: bool,
}

/// Failure-detection timings: each given one, the others derived from
/// them in the defaults' ratios (heartbeat : suspect : down = 1 : 3 : 6),
/// else the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Detection {
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) suspect_after: Option<Duration>,
    pub(crate) down_after: Option<Duration>,
}

impl Detection {
    /// `(heartbeat, suspect, down)` in effect, starting from `defaults`;
    /// out of order, an error naming the flags and the values in effect.
    pub(crate) fn resolve(
        &self,
        defaults: (Duration, Duration, Duration),
    ) -> Result<(Duration, Duration, Duration), String> {
        let (mut heartbeat, mut suspect, mut down) = defaults;
        match (self.heartbeat_interval, self.suspect_after, self.down_after) {
            (h, s, Some(d)) => {
                down = d;
                suspect = s.unwrap_or(d / 2);
                heartbeat = h.unwrap_or(suspect / 3);
            }
            (h, Some(s), None) => {
                suspect = s;
                down = s * 2;
                heartbeat = h.unwrap_or(s / 3);
            }
            (Some(h), None, None) => {
                heartbeat = h;
                suspect = h * 3;
                down = h * 6;
            }
            (None, None, None) => {}
        }
        if heartbeat > suspect || suspect > down {
            return Err(format!(
                "failure detection needs --heartbeat-interval <= --suspect-after <= --down-after; \
                 in effect: {:.3} s, {:.3} s, {:.3} s (a value not given follows the given ones \
                 as 1 : 3 : 6)",
                heartbeat.as_secs_f64(),
                suspect.as_secs_f64(),
                down.as_secs_f64()
            ));
        }
        Ok((heartbeat, suspect, down))
    }
}

fn file_secs(v: Option<f64>, key: &str) -> Result<Option<Duration>, AnyError> {
    v.map(|s| {
        crate::args::parse_secs(&s.to_string())
            .map_err(|e| format!("config file: {key}: {e}").into())
    })
    .transpose()
}

fn choice<T: std::str::FromStr>(
    flag: Option<T>,
    file: Option<String>,
    key: &str,
) -> Result<Option<T>, AnyError>
where
    T::Err: std::fmt::Display,
{
    match (flag, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(s)) => s
            .parse()
            .map(Some)
            .map_err(|e| format!("config file: {key} = {s:?}: {e}").into()),
        (None, None) => Ok(None),
    }
}

impl NodeSettings {
    /// Resolves the flags (and environment) over the config file they
    /// name, if any.
    pub(crate) fn resolve(args: NodeArgs) -> Result<Self, AnyError> {
        let file = match &args.config {
            Some(p) => NodeFile::load(p)?,
            None => NodeFile::default(),
        };
        Self::merge(args, file)
    }

    fn merge(args: NodeArgs, file: NodeFile) -> Result<Self, AnyError> {
        let required = |v: Option<String>, flag: &str, env: &str, key: &str| {
            v.ok_or_else(|| -> AnyError {
                format!("--{flag} is required (or ${env}, or {key} in the --config file)").into()
            })
        };
        let partition = choice(args.partition, file.partition, "partition")?;
        let interval = args.discovery_interval.or(file.discovery_interval);
        let discovery =
            choice(args.discovery, file.discovery, "discovery")?.map(|d| match interval {
                Some(secs) => d.every(Duration::from_secs(secs)),
                None => d,
            });
        let migration = choice(args.migration, file.migration, "migration")?;
        let distribution = choice(args.distribution, file.distribution, "distribution")?;
        let base = match args.strategies.as_ref().or(file.strategies_file.as_ref()) {
            Some(path) => strategies_file(path)?,
            None => file.strategies.unwrap_or_default(),
        };
        let tags = match (args.tag.is_empty(), file.tags) {
            (false, _) | (true, None) => args.tag,
            (true, Some(Tags::List(l))) => l
                .iter()
                .map(|t| parse_tag(t).map_err(|e| format!("config file: tags: {e}")))
                .collect::<Result<_, _>>()?,
            (true, Some(Tags::Table(t))) => t.into_iter().collect(),
        };
        Ok(NodeSettings {
            auth: Auth {
                hub_id: args.auth.hub_id.or(file.hub_id),
                cookie_file: args.auth.cookie_file.or(file.cookie_file),
            },
            node_id: required(
                args.node_id.or(file.node_id),
                "node-id",
                "HUB_NODE_ID",
                "node_id",
            )?,
            listen: required(
                args.listen.or(file.listen),
                "listen",
                "HUB_LISTEN",
                "listen",
            )?,
            advertise: args.advertise.or(file.advertise),
            // "a:1, b:2" in a variable means what it says.
            seeds: if args.seed.is_empty() {
                file.seeds
            } else {
                args.seed
            }
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
            discovery,
            join_timeout: args
                .join_timeout
                .or(file.join_timeout)
                .map(Duration::from_secs),
            detection: Detection {
                heartbeat_interval: args.heartbeat_interval.map_or_else(
                    || file_secs(file.heartbeat_interval, "heartbeat_interval"),
                    |d| Ok(Some(d)),
                )?,
                suspect_after: args.suspect_after.map_or_else(
                    || file_secs(file.suspect_after, "suspect_after"),
                    |d| Ok(Some(d)),
                )?,
                down_after: args
                    .down_after
                    .map_or_else(|| file_secs(file.down_after, "down_after"), |d| Ok(Some(d)))?,
            },
            strategies: strategies(base, partition, migration, distribution)?,
            tags,
            strict_quorum: args.strict_quorum.or(file.strict_quorum),
            management: args.management.or(file.management),
            management_token_file: args.management_token_file.or(file.management_token_file),
            min_members: args.min_members.or(file.min_members).unwrap_or(1),
            example_kinds: args.example_kinds,
        })
    }
}

pub(crate) fn strategies_file(path: &Path) -> Result<StrategyConfig, AnyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str::<StrategyConfig>(&text)
        .map_err(|e| format!("bad strategies file {}: {e}", path.display()).into())
}

/// The strategies of `hub node`: the file's (or the config's table), then
/// the per-family choices.
pub(crate) fn strategies(
    mut cfg: StrategyConfig,
    partition: Option<PartitionConfig>,
    migration: Option<MigrationConfig>,
    distribution: Option<DistributionConfig>,
) -> Result<hub_core::Strategies, AnyError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> NodeArgs {
        let mut full = vec!["hub", "node"];
        full.extend(argv);
        match crate::args::Args::try_parse_from(full).unwrap().cmd {
            crate::args::Cmd::Node(a) => *a,
            _ => unreachable!("a node command"),
        }
    }

    fn file(text: &str) -> NodeFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let f = file(
            r#"
            hub_id = "H"
            node_id = "from-file"
            listen = "127.0.0.1:7000"
            seeds = ["127.0.0.1:7001", "127.0.0.1:7002"]
            tags = { zone = "a" }
            migration = "hot-handover"
            min_members = 3
            "#,
        );
        let s =
            NodeSettings::merge(args(&["--node-id", "from-flag", "--tag", "zone=b"]), f).unwrap();
        assert_eq!(s.node_id, "from-flag");
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.auth.hub_id(), "H");
        assert_eq!(s.seeds, ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(s.tags, [("zone".to_string(), "b".to_string())]);
        assert_eq!(s.strategies.migration.name(), "hot_swap");
        assert_eq!(s.min_members, 3);
        assert_eq!(s.join_timeout, None);

        let s = NodeSettings::merge(
            args(&[
                "--listen",
                "127.0.0.1:1",
                "--seed",
                "a:1, b:2",
                "--migration",
                "cold",
            ]),
            file("node_id = \"n\"\ntags = [\"zone=c\", \"rack=4\"]\nmigration = \"hot\""),
        )
        .unwrap();
        assert_eq!(s.seeds, ["a:1", "b:2"], "a comma-separated flag");
        assert_eq!(s.strategies.migration.name(), "cold_swap");
        assert_eq!(s.tags.len(), 2);
        assert_eq!(s.auth.hub_id(), "hub");
        assert_eq!(s.min_members, 1);
    }

    #[test]
    fn the_example_strategies_file_loads_and_flags_override_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/strategies.toml");
        let s = NodeSettings::merge(
            args(&["--node-id", "n", "--listen", "x:1", "--strategies", path]),
            NodeFile::default(),
        )
        .unwrap();
        assert_eq!(s.strategies.migration.name(), "hot_swap");
        assert_eq!(s.strategies.partition.name(), "majority_quorum");
        let s = NodeSettings::merge(
            args(&[
                "--node-id",
                "n",
                "--listen",
                "x:1",
                "--strategies",
                path,
                "--migration",
                "cold",
            ]),
            NodeFile::default(),
        )
        .unwrap();
        assert_eq!(s.strategies.migration.name(), "cold_swap");
        let err = strategies_file(Path::new("/nonexistent/strategies.toml")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn files_the_config_names_are_relative_to_its_directory() {
        let dir = std::env::temp_dir().join(format!("hub-cli-rel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hub.toml");
        std::fs::write(
            &path,
            "cookie_file = \"cookie\"\nmanagement_token_file = \"/abs/token\"\n",
        )
        .unwrap();
        let f = NodeFile::load(&path).unwrap();
        assert_eq!(f.cookie_file, Some(dir.join("cookie")));
        assert_eq!(f.management_token_file, Some(PathBuf::from("/abs/token")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tools_read_the_address_a_node_listens_on_as_loopback_when_unspecified() {
        let f = |t: &str| file(t).for_tools().2;
        assert_eq!(
            f("listen = \"0.0.0.0:7000\""),
            Some("127.0.0.1:7000".into())
        );
        assert_eq!(f("listen = \"[::]:7000\""), Some("[::1]:7000".into()));
        assert_eq!(
            f("listen = \"10.0.0.5:7000\""),
            Some("10.0.0.5:7000".into())
        );
        assert_eq!(
            f("listen = \"0.0.0.0:7000\"\nadvertise = \"hub-0.hub:7000\""),
            Some("hub-0.hub:7000".into())
        );
        assert_eq!(f("node_id = \"a\""), None);
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        let err = NodeSettings::merge(args(&[]), NodeFile::default()).unwrap_err();
        assert!(err.to_string().contains("--node-id is required"), "{err}");
        let err = NodeSettings::merge(
            args(&[]),
            file("node_id = \"n\"\nlisten = \"x:1\"\npartition = \"quorum\""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("config file: partition"), "{err}");
        let typo = toml::from_str::<NodeFile>("node_idd = \"n\"").unwrap_err();
        assert!(typo.to_string().contains("node_idd"), "{typo}");
        let inline = file(
            "node_id = \"n\"\nlisten = \"x:1\"\n\
             [strategies.partition]\nkind = \"majority_quorum\"\ninitial_cluster_size = 3",
        );
        let s = NodeSettings::merge(args(&[]), inline).unwrap();
        assert_eq!(s.strategies.partition.name(), "majority_quorum");
    }
}

#[cfg(test)]
mod detection_tests {
    use super::Detection;
    use std::time::Duration;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    const DEFAULTS: (u64, u64, u64) = (500, 1500, 3000);

    fn resolve(h: Option<u64>, s: Option<u64>, d: Option<u64>) -> Result<[u64; 3], String> {
        let det = Detection {
            heartbeat_interval: h.map(ms),
            suspect_after: s.map(ms),
            down_after: d.map(ms),
        };
        let (dh, ds, dd) = DEFAULTS;
        det.resolve((ms(dh), ms(ds), ms(dd)))
            .map(|(h, s, d)| [h, s, d].map(|v| v.as_millis() as u64))
    }

    /// (heartbeat, suspect, down) given -> in effect, in milliseconds.
    #[test]
    fn timings_not_given_follow_the_given_ones_as_one_three_six() {
        type Row = ([Option<u64>; 3], [u64; 3]);
        let table: [Row; 8] = [
            ([None, None, None], [500, 1500, 3000]),
            ([None, None, Some(1000)], [166, 500, 1000]),
            ([None, None, Some(10_000)], [1666, 5000, 10_000]),
            ([None, Some(300), None], [100, 300, 600]),
            ([Some(5000), None, None], [5000, 15_000, 30_000]),
            ([Some(200), None, Some(1000)], [200, 500, 1000]),
            ([Some(3000), None, Some(10_000)], [3000, 5000, 10_000]),
            ([Some(100), Some(400), Some(800)], [100, 400, 800]),
        ];
        for ([h, s, d], want) in table {
            assert_eq!(resolve(h, s, d), Ok(want), "given {h:?} {s:?} {d:?}");
        }
    }

    #[test]
    fn timings_out_of_order_name_the_flags_and_the_values_in_effect() {
        let err = resolve(Some(2000), None, Some(1000)).unwrap_err();
        assert!(
            err.contains("--heartbeat-interval <= --suspect-after <= --down-after")
                && err.contains("2.000 s, 0.500 s, 1.000 s"),
            "{err}"
        );
    }
}
