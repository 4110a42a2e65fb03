//! `node`: run one node until a signal, a decommission or a refusal.

use std::time::Duration;

use hub_net::Hub;

use crate::args::{Auth, NodeArgs};
use crate::flags::{cookie, node_strategies};
use crate::{AnyError, NodeCli};

/// Runs `hub node`.
pub(crate) async fn run(cli: &NodeCli, args: NodeArgs) -> Result<(), AnyError> {
    let s = node_strategies(
        args.strategies.as_ref(),
        args.partition,
        args.migration,
        args.distribution,
    )?;
    let node = NodeOpts {
        node_id: args.node_id,
        listen: args.listen,
        advertise: args.advertise,
        seeds: args.seed,
        join_timeout: args.join_timeout.map(Duration::from_secs),
        tags: args.tag,
        strict: args.strict_quorum.map(hub_core::Strict::new),
    };
    run_node(cli, args.auth, node, s, args.example_kinds).await
}

/// What `node` was told about the node itself.
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
    cli: &NodeCli,
    auth: Auth,
    node: NodeOpts,
    strategies: hub_core::Strategies,
    example_kinds: bool,
) -> Result<(), AnyError> {
    let mut b = Hub::builder(auth.hub_id.clone())
        .strategies(strategies)
        .node_id(node.node_id)
        .listen(node.listen)
        .cookie(cookie(&auth)?);
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
    let hub = cli.apply(b, example_kinds).start().await?;
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
