//! Partition tolerance: with StaticQuorum(3), a node that sees fewer than
//! three members stops its children and refuses starts until quorum returns.
//!
//! `cargo run -p hub-net --example partition`

mod common;

use hub_core::{ChildSpec, StartOptions};
use hub_strategies::StaticQuorum;

#[tokio::main]
async fn main() {
    let strategies = || {
        let mut s = hub_strategies::defaults();
        s.partition = Box::new(StaticQuorum::new(3));
        s
    };
    let hubs = common::cluster(3, strategies).await;
    let specs = (0..30)
        .map(|i| ChildSpec::new(format!("q{i}"), "counter"))
        .collect();
    hubs[0]
        .start_children(specs, StartOptions::awaited())
        .await
        .expect("start");
    println!("3 nodes, 30 children");
    hubs[2].abort();
    println!("n2 killed");
    common::until(|| async { hubs[0].is_partitioned().await.unwrap_or(false) }).await;
    let s = hubs[0].status().await.expect("status");
    println!(
        "n0 partitioned: {} (local children {})",
        s.partitioned, s.local_children
    );
    let r = hubs[0]
        .start_children(
            vec![ChildSpec::new("x", "counter")],
            StartOptions::awaited(),
        )
        .await;
    println!("a start now: {:?}", r.err());
    let n2 = common::node("n2", Some(&hubs[0]), strategies()).await;
    common::until(|| async { !hubs[0].is_partitioned().await.unwrap_or(true) }).await;
    common::settled(&[&hubs[0], &hubs[1], &n2], 30).await;
    println!("n2 is back: quorum restored, 30 children placed again");
    for h in [&hubs[0], &hubs[1], &n2] {
        h.shutdown().await.expect("shutdown");
    }
}
