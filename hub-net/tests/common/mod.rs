//! Helpers shared by the loopback tests: hubs with fast failure detection
//! and condition polling with a deadline (never a fixed sleep).

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use hub_core::Strategies;
use hub_net::examples::{Counter, Echo, RoleProbe};
use hub_net::{Hub, HubBuilder};

pub const HUB: &str = "net-test";
pub const COOKIE: &str = "test-cookie";

/// Polls `f` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A hub node on 127.0.0.1 with the example kinds, fast heartbeats and the
/// given strategies, joined through `seed` if any.
pub async fn node_with(id: &str, seed: Option<&Hub>, strategies: Strategies) -> Hub {
    node_built(id, seed, |b| {
        b.strategies(strategies)
            .register::<Counter>("counter")
            .register::<Echo>("echo")
            .register::<RoleProbe>("role-probe")
    })
    .await
}

/// A hub node on 127.0.0.1 with fast heartbeats, its kinds and options set
/// by `f`, joined through `seed` if any.
pub async fn node_built(
    id: &str,
    seed: Option<&Hub>,
    f: impl FnOnce(HubBuilder) -> HubBuilder,
) -> Hub {
    let b = Hub::builder(HUB)
        .node_id(id)
        .listen("127.0.0.1:0")
        .cookie(COOKIE);
    let mut b = f(b).configure(|c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.suspect_after = Duration::from_millis(400);
        c.down_after = Duration::from_millis(800);
    });
    if let Some(s) = seed {
        b = b.seed(s.local_addr().unwrap().to_string());
    }
    b.start().await.unwrap()
}

/// Waits until every hub sees `n` nodes in its ring.
pub async fn wait_formed(hubs: &[&Hub], n: usize) {
    for h in hubs {
        let ok = eventually(Duration::from_secs(10), || async {
            h.nodes().await.is_ok_and(|v| v.len() == n)
        })
        .await;
        assert!(ok, "{} sees {:?}", h.node_id(), h.nodes().await);
    }
}

/// Waits until every hub is settled and registers `count` children.
pub async fn wait_settled(hubs: &[&Hub], count: usize) -> bool {
    eventually(Duration::from_secs(20), || async {
        for h in hubs {
            match h.status().await {
                Ok(s) if s.settled && s.children == count => {}
                _ => return false,
            }
        }
        true
    })
    .await
}
