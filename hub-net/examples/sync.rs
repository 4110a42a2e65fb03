//! Synchronization: with Gossip, changes spread by relays and push-pull
//! rounds; eight nodes converge on the same registry.
//!
//! `cargo run -p hub-net --example sync`

mod common;

use std::time::{Duration, Instant};

use hub_core::{ChildSpec, StartOptions};
use hub_strategies::Gossip;

#[tokio::main]
async fn main() {
    let strategies = || {
        let mut s = hub_strategies::defaults();
        s.sync = Box::new(Gossip {
            sync_interval: Duration::from_millis(500),
            ..Gossip::default()
        });
        s
    };
    let hubs = common::cluster(8, strategies).await;
    let began = Instant::now();
    for (i, h) in hubs.iter().enumerate() {
        let specs = (0..50)
            .map(|k| ChildSpec::new(format!("n{i}-{k}"), "echo"))
            .collect();
        h.start_children(specs, StartOptions::awaited())
            .await
            .expect("start");
    }
    let refs: Vec<_> = hubs.iter().collect();
    common::settled(&refs, 400).await;
    println!(
        "8 nodes agree on 400 children, {:?} after the first start",
        began.elapsed()
    );
    for h in &hubs {
        h.shutdown().await.expect("shutdown");
    }
}
