//! Distribution strategies: consistent hashing places children by id;
//! Guided lets the caller name the node.
//!
//! `cargo run -p hub-net --example distribution`

mod common;

use hub_core::{ChildSpec, StartOptions};
use hub_strategies::Guided;

#[tokio::main]
async fn main() {
    let hubs = common::cluster(3, hub_strategies::defaults).await;
    let specs = (0..9)
        .map(|i| ChildSpec::new(format!("hashed-{i}"), "echo"))
        .collect();
    let out = hubs[0]
        .start_children(specs, StartOptions::awaited())
        .await
        .expect("start");
    println!("consistent hashing:");
    for (id, at) in &out.started {
        println!("  {id} -> {}", at[0].0);
    }
    for h in &hubs {
        h.shutdown().await.expect("shutdown");
    }

    let guided = || {
        let mut s = hub_strategies::defaults();
        s.distribution = Box::new(Guided);
        s
    };
    let hubs = common::cluster(3, guided).await;
    let specs = vec![
        ChildSpec::new("on-n2", "echo").with_nodes(["n2"]),
        ChildSpec::new("on-n1", "echo").with_nodes(["n1"]),
        ChildSpec::new("nowhere", "echo").with_nodes(["n9"]),
    ];
    // "nowhere" names no member: the start is an error that still says
    // where the others went.
    let out = hubs[0]
        .start_children(specs, StartOptions::awaited())
        .await
        .or_else(hub_net::HubError::into_start_outcome)
        .expect("start");
    println!("guided:");
    for (id, at) in &out.started {
        println!("  {id} -> {}", at[0].0);
    }
    for f in &out.failed {
        println!("  {} refused: {}", f.id, f.error);
    }
    for h in &hubs {
        h.shutdown().await.expect("shutdown");
    }
}
