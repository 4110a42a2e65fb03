//! Shared inputs for the benchmarks: ids, rings and registries of a given
//! size, built the same way for our code and for its floor.
#![deny(missing_docs)]

use hub_core::{ChildSpec, Handle, NodeId, Registry, Ring};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` node ids.
pub fn nodes(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| NodeId::new(format!("node-{i}"))).collect()
}

/// `n` child ids in a seeded random order.
pub fn child_ids(n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| format!("child-{:016x}", rng.random::<u64>()))
        .collect()
}

/// A ring of `n` nodes with `vnodes` each.
pub fn ring(n: usize, vnodes: u32) -> Ring {
    Ring::new(vnodes, nodes(n))
}

/// A registry with `ids` spread over the ring's nodes' slices.
pub fn registry(ids: &[String], ring: &Ring) -> Registry {
    let mut r = Registry::new();
    for (i, id) in ids.iter().enumerate() {
        let owner = ring.owner(id).cloned().unwrap_or_else(|| NodeId::new("x"));
        r.local_insert(
            &owner,
            1,
            ChildSpec::new(id.as_str(), "counter"),
            Handle(i as u64),
        );
    }
    r
}

/// A lone node `a` (default strategies) running `n` children, with every
/// output of their starts performed.
pub fn node_running(n: usize) -> hub_core::Node {
    use hub_core::{Command, Config, LocalReport, Node, Output, RequestId, StartOptions, Time};
    let mut node = Node::new(
        Config::new("bench", NodeId::new("a")),
        hub_strategies::defaults(),
        Time::ZERO,
    )
    .expect("a valid config");
    let specs = child_ids(n, 9)
        .into_iter()
        .map(|id| ChildSpec::new(id, "counter"))
        .collect();
    let cmd = Command::StartChildren {
        specs,
        opts: StartOptions::default(),
    };
    node.handle_command(Time::ZERO, RequestId(1), cmd);
    let mut started = Vec::with_capacity(n);
    while let Some(out) = node.poll_output() {
        if let Output::Spawn { spec, .. } = out {
            let handle = Handle(started.len() as u64);
            started.push(LocalReport::Started {
                id: spec.id.clone(),
                handle,
            });
        }
    }
    node.handle_locals(Time::ZERO, started);
    while node.poll_output().is_some() {}
    node
}

/// What a node does when `b` joins its cluster: the hello that makes `b` a
/// member, then every output of the redistribution it starts (returned:
/// the number of children it stops to hand to `b`).
pub fn join(node: &mut hub_core::Node) -> usize {
    use hub_core::protocol::Message;
    use hub_core::{Config, Output, Time};
    let info = Config::new("bench", NodeId::new("b")).info();
    let now = Time::from_millis(1);
    node.add_peer(now, info.clone());
    let from = info.id.clone();
    node.handle_message(
        now,
        &from,
        Message::Hello {
            info,
            members: Vec::new(),
            losses: Vec::new(),
        },
    );
    let mut stops = 0;
    while let Some(out) = node.poll_output() {
        if matches!(out, Output::Stop { .. }) {
            stops += 1;
        }
    }
    stops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_moves_about_half_of_a_lone_nodes_children() {
        let mut node = node_running(2_000);
        assert_eq!(node.local_children().len(), 2_000);
        let stops = join(&mut node);
        assert!((600..1_400).contains(&stops), "{stops} of 2000 move");
    }
}
