//! Finding peers by DNS (feature `dns`): a name re-resolved periodically,
//! its A/AAAA records (e.g. a Kubernetes headless Service) or its SRV
//! records, each answer handed to the node task as seeds to dial.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::conn::NetEvent;

/// What to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lookup {
    /// A/AAAA records of `name`; every address on `port`.
    Host { name: String, port: u16 },
    /// SRV records of `name`: each target's addresses on its port.
    Srv { name: String },
}

/// Peer discovery by DNS ([`crate::HubBuilder::discovery`]). Written
/// `dns:NAME:PORT` (A/AAAA records, every address on PORT) or
/// `dns-srv:NAME` (SRV records), optionally followed by `@IP:PORT` to ask
/// that name server instead of the system's.
///
/// ```
/// use hub_net::DnsDiscovery;
/// let d: DnsDiscovery = "dns:hub-headless.ns.svc.cluster.local:7000".parse().unwrap();
/// let s: DnsDiscovery = "dns-srv:_hub._tcp.hub.test@127.0.0.1:5353".parse().unwrap();
/// assert!("dns:no-port".parse::<DnsDiscovery>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsDiscovery {
    lookup: Lookup,
    nameserver: Option<SocketAddr>,
    interval: Duration,
}

/// A discovery spec that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("bad discovery {spec:?}: {reason}")]
pub struct DiscoveryError {
    spec: String,
    reason: &'static str,
}

impl FromStr for DnsDiscovery {
    type Err = DiscoveryError;

    fn from_str(spec: &str) -> Result<Self, DiscoveryError> {
        let bad = |reason| DiscoveryError {
            spec: spec.to_string(),
            reason,
        };
        let (query, nameserver) = match spec.split_once('@') {
            Some((q, ns)) => (
                q,
                Some(
                    ns.parse::<SocketAddr>()
                        .map_err(|_| bad("the name server after @ must be IP:PORT"))?,
                ),
            ),
            None => (spec, None),
        };
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        let lookup = if let Some(rest) = query.strip_prefix("dns-srv:") {
            if !name_ok(rest) {
                return Err(bad("dns-srv: needs a DNS name"));
            }
            Lookup::Srv {
                name: rest.to_string(),
            }
        } else if let Some(rest) = query.strip_prefix("dns:") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("dns: needs NAME:PORT"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
            if !name_ok(name) {
                return Err(bad("dns: needs a DNS name"));
            }
            Lookup::Host {
                name: name.to_string(),
                port,
            }
        } else {
            return Err(bad("expected dns:NAME:PORT or dns-srv:NAME"));
        };
        Ok(DnsDiscovery {
            lookup,
            nameserver,
            interval: Duration::from_secs(5),
        })
    }
}

impl DnsDiscovery {
    /// How often the name is resolved again (default 5 s).
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(100));
        self
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        let builder = match self.nameserver {
            Some(ns) => {
                let mut server = NameServerConfig::udp(ns.ip());
                for c in &mut server.connections {
                    c.port = ns.port();
                }
                let config = ResolverConfig::from_parts(None, vec![], vec![server]);
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            }
            None => TokioResolver::builder_tokio().map_err(|e| e.to_string())?,
        };
        let mut builder = builder;
        // Every round must see the answer as it is now.
        builder.options_mut().cache_size = 0;
        builder.build().map_err(|e| e.to_string())
    }

    async fn resolve(&self, r: &TokioResolver) -> Result<Vec<String>, String> {
        let fqdn = |n: &str| {
            if n.ends_with('.') {
                n.to_string()
            } else {
                format!("{n}.")
            }
        };
        let mut out = Vec::new();
        match &self.lookup {
            Lookup::Host { name, port } => {
                let ips = r.lookup_ip(fqdn(name)).await.map_err(|e| e.to_string())?;
                out.extend(ips.iter().map(|ip| SocketAddr::new(ip, *port).to_string()));
            }
            Lookup::Srv { name } => {
                let srv = r.srv_lookup(fqdn(name)).await.map_err(|e| e.to_string())?;
                for record in srv.answers() {
                    let RData::SRV(s) = &record.data else {
                        continue;
                    };
                    match r.lookup_ip(s.target.clone()).await {
                        Ok(ips) => {
                            out.extend(ips.iter().map(|ip| SocketAddr::new(ip, s.port).to_string()))
                        }
                        Err(e) => {
                            debug!(target = %s.target, error = %e, "SRV target does not resolve")
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Resolves every `interval` until `cancel`, telling the node task
    /// each answer (an empty one too: every earlier address vanished).
    pub(crate) async fn run(self, events: mpsc::Sender<NetEvent>, cancel: CancellationToken) {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "DNS discovery cannot start");
                return;
            }
        };
        let mut failures = 0u64;
        loop {
            match self.resolve(&resolver).await {
                Ok(addrs) => {
                    failures = 0;
                    if events.send(NetEvent::Discovered(addrs)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Loud at first and then every tenth failure.
                    if failures.is_multiple_of(10) {
                        warn!(lookup = ?self.lookup, error = %e, "DNS discovery failed");
                    }
                    failures += 1;
                }
            }
            select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
