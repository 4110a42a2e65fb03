//! What every strategy example shares: loopback nodes with fast failure
//! detection, and waiting for a condition with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use hub_core::Strategies;
use hub_net::examples::{Counter, Echo, RoleProbe};
use hub_net::Hub;

/// A node on 127.0.0.1 running the example kinds, joined through `seed`.
pub async fn node(id: &str, seed: Option<&Hub>, strategies: Strategies) -> Hub {
    let mut b = Hub::builder("examples")
        .node_id(id)
        .listen("127.0.0.1:0")
        .cookie("example-cookie")
        .strategies(strategies)
        .register::<Counter>("counter")
        .register::<Echo>("echo")
        .register::<RoleProbe>("role-probe")
        .configure(|c| {
            c.heartbeat_interval = Duration::from_millis(100);
            c.suspect_after = Duration::from_millis(400);
            c.down_after = Duration::from_millis(800);
        });
    if let Some(s) = seed {
        b = b.seed(s.local_addr().expect("listening").to_string());
    }
    b.start().await.expect("node starts")
}

/// `n` nodes `n0..`, each seeded with the first, once all see each other.
pub async fn cluster(n: usize, strategies: impl Fn() -> Strategies) -> Vec<Hub> {
    let mut hubs = vec![node("n0", None, strategies()).await];
    for i in 1..n {
        let h = node(&format!("n{i}"), Some(&hubs[0]), strategies()).await;
        hubs.push(h);
    }
    for h in &hubs {
        until(|| async { h.nodes().await.is_ok_and(|v| v.len() == n) }).await;
    }
    hubs
}

/// Polls `f` every 20 ms for up to 20 s; panics with a message if it never
/// holds.
pub async fn until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 20 s");
}

/// Waits until every hub is settled and registers `count` children.
pub async fn settled(hubs: &[&Hub], count: usize) {
    until(|| async {
        for h in hubs {
            match h.status().await {
                Ok(s) if s.settled && s.children == count => {}
                _ => return false,
            }
        }
        true
    })
    .await;
}
