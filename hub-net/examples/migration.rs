//! Migration: HotSwap with handover keeps each counter's state when a node
//! joins and when a node leaves gracefully.
//!
//! `cargo run -p hub-net --example migration`

mod common;

use std::time::Duration;

use hub_core::{ChildSpec, StartOptions};
use hub_net::examples::{Counter, CounterMsg};
use hub_strategies::HotSwap;

const T: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let strategies = || {
        let mut s = hub_strategies::defaults();
        s.migration = HotSwap::default().with_handover(true).into();
        s
    };
    let mut hubs = common::cluster(2, strategies).await;
    let specs = (0..20)
        .map(|i| ChildSpec::new(format!("counter-{i}"), "counter"))
        .collect();
    hubs[0]
        .start_children(specs, StartOptions::awaited())
        .await
        .expect("start");
    for i in 0..20 {
        let id = format!("counter-{i}");
        hubs[1]
            .call::<Counter>(id.as_str(), &CounterMsg::Add(i * 10), T)
            .await
            .expect("add");
    }
    let sum = |hub: &hub_net::Hub| {
        let hub = hub.clone();
        async move {
            let mut total = 0;
            for i in 0..20 {
                let id = format!("counter-{i}");
                total += hub
                    .call::<Counter>(id.as_str(), &CounterMsg::Get, T)
                    .await
                    .expect("get");
            }
            total
        }
    };
    println!("sum of counters on 2 nodes: {}", sum(&hubs[0]).await);

    hubs.push(common::node("n2", Some(&hubs[0]), strategies()).await);
    let refs: Vec<_> = hubs.iter().collect();
    common::settled(&refs, 20).await;
    let moved = hubs[2].status().await.expect("status").local_children;
    println!(
        "n2 joined, {moved} counters moved to it; sum: {}",
        sum(&hubs[2]).await
    );

    hubs[0].shutdown().await.expect("graceful leave");
    let refs: Vec<_> = hubs[1..].iter().collect();
    common::settled(&refs, 20).await;
    println!("n0 left gracefully; sum: {}", sum(&hubs[1]).await);
    for h in &hubs[1..] {
        h.shutdown().await.expect("shutdown");
    }
}
