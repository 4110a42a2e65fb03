//! Redundancy: two replicas per child, one active. Calls go to the active
//! replica; when its node dies the passive one is promoted and told so.
//!
//! `cargo run -p hub-net --example redundancy`

mod common;

use std::time::Duration;

use hub_core::ring::DEFAULT_VNODES;
use hub_core::{ChildSpec, NodeId, Ring, StartOptions};
use hub_net::examples::RoleProbe;
use hub_strategies::{RedundancySignal, Replication, ReplicationModel};

#[tokio::main]
async fn main() {
    let strategies = || {
        let mut s = hub_strategies::defaults();
        s.redundancy = Box::new(Replication {
            replication_factor: 2,
            model: ReplicationModel::ActivePassive,
            signal: RedundancySignal::All,
        });
        s
    };
    let hubs = common::cluster(3, strategies).await;
    let out = hubs[0]
        .start_children(
            vec![ChildSpec::new("probe", "role-probe")],
            StartOptions::awaited(),
        )
        .await
        .expect("start");
    let holders: Vec<String> = out.started["probe"]
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    println!("probe runs on {holders:?}");
    let refs: Vec<_> = hubs.iter().collect();
    common::settled(&refs, 1).await;
    let role = hubs[0]
        .call::<RoleProbe>("probe", &(), Duration::from_secs(5))
        .await
        .expect("call");
    println!("a call reaches a replica that says: {role}");
    // The active replica is the first owner on the ring: kill its node
    // without a goodbye.
    let ring = Ring::new(DEFAULT_VNODES, ["n0", "n1", "n2"].map(NodeId::new));
    let first = ring.owner("probe").expect("an owner").clone();
    let victim = hubs
        .iter()
        .position(|h| *h.node_id() == first)
        .expect("a member");
    println!("killing {}", hubs[victim].node_id());
    hubs[victim].abort();
    let survivor = &hubs[(victim + 1) % 3];
    common::until(|| async { survivor.nodes().await.is_ok_and(|v| v.len() == 2) }).await;
    let role = survivor
        .call::<RoleProbe>("probe", &(), Duration::from_secs(5))
        .await
        .expect("call after the kill");
    println!("after the kill a call reaches a replica that says: {role}");
    for (i, h) in hubs.iter().enumerate() {
        if i != victim {
            h.shutdown().await.expect("shutdown");
        }
    }
}
