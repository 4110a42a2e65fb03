//! `node`: run one node until a signal, a decommission or a refusal.

use std::time::Duration;

use hub_net::Hub;

use crate::args::NodeArgs;
use crate::flags::{cookie, secret_file};
use crate::settings::NodeSettings;
use crate::stdout::outln;
use crate::{AnyError, NodeCli};

/// Runs `hub node`.
pub(crate) async fn run(cli: &NodeCli, args: NodeArgs) -> Result<(), AnyError> {
    let n = NodeSettings::resolve(args)?;
    let mut b = Hub::builder(n.auth.hub_id())
        .strategies(n.strategies)
        .node_id(n.node_id)
        .listen(n.listen)
        .cookie(cookie(&n.auth)?);
    let defaults = hub_core::Config::new("", hub_core::NodeId::new("-"));
    let (heartbeat, suspect, down) = n.detection.resolve((
        defaults.heartbeat_interval,
        defaults.suspect_after,
        defaults.down_after,
    ))?;
    b = b.configure(|c| {
        c.heartbeat_interval = heartbeat;
        c.suspect_after = suspect;
        c.down_after = down;
    });
    for s in n.seeds {
        b = b.seed(s);
    }
    if let Some(d) = n.discovery {
        b = b.discovery(d);
    }
    if let Some(a) = n.advertise {
        b = b.advertise(a);
    }
    for (k, v) in n.tags {
        b = b.tag(k, v);
    }
    if let Some(q) = n.strict_quorum {
        b = b.strict(hub_core::Strict::new(q));
    }
    match (n.management, &n.management_token_file) {
        (Some(addr), token) => {
            b = b.management(addr).min_members(n.min_members);
            if let Some(f) = token {
                b = b.management_token(secret_file(f, "management token")?);
            }
        }
        (None, Some(_)) => return Err("a management token needs --management".into()),
        (None, None) => {}
    }
    let join_timeout = n.join_timeout;
    let hub = cli.apply(b, n.example_kinds).start().await?;
    outln!(
        "node {} listening on {}",
        hub.node_id(),
        hub.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    if let Some(m) = hub.management_addr() {
        outln!("management endpoint on http://{m}");
    }
    let joined = async {
        let Some(within) = join_timeout else {
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
            None => eprintln!("drained: children handed over, left the cluster"),
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
