//! Invariants over the views the runtime reports (registries, placement,
//! what runs where), shared by simulation scenarios and loopback tests.

use std::collections::BTreeMap;

use hub_core::{ChildId, ChildSpec, Handle, NodeId};

use crate::oracle::{Placement, Tags};

/// What one live node reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Nodes in its ring.
    pub ring: Vec<NodeId>,
    /// Its registry: child -> holders.
    pub registry: BTreeMap<ChildId, Vec<(NodeId, Handle)>>,
    /// Children running on it.
    pub local: Vec<ChildId>,
    /// No migration in flight on it.
    pub settled: bool,
    /// Its placement of each registered child (first owner, by its
    /// strategies and the ring's node tags).
    pub owners: BTreeMap<ChildId, NodeId>,
    /// Its registry's spec of each child (the data placement depends on:
    /// required and preferred tags, stamped nodes).
    pub specs: BTreeMap<ChildId, ChildSpec>,
}

/// What the checker knows independently of the nodes: the ring's points
/// per node and each node's configured tags.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Points per node on the ring.
    pub vnodes: u32,
    /// Tags each node was started with.
    pub tags: BTreeMap<NodeId, Tags>,
}

/// Where `spec` belongs among `members`, by the documented placement:
/// its stamped nodes first (the first of them in the ring), else the ring
/// walk filtered by its required tags, preferred tags first.
fn expected_owner<'a>(
    placement: &'a Placement,
    members: &'a [NodeId],
    id: &str,
    spec: Option<&'a ChildSpec>,
) -> Option<&'a NodeId> {
    let Some(spec) = spec else {
        return placement.owner(id, &[], &[]);
    };
    if let Some(named) = spec.nodes() {
        // The first named node that is a member, in the spec's order.
        if let Some(n) = named.iter().find(|n| members.contains(n)) {
            return members.iter().find(|m| *m == n);
        }
    }
    placement.owner(id, &spec.requirements(), &spec.preferences())
}

/// Equal rings and registries on every node, each child registered exactly
/// on the owner the checker computes itself (not the nodes' own answer, so
/// a wrong placement that every node agrees on fails) and running there
/// and nowhere else.
pub fn quiet_invariants(views: &[NodeView], expected: &Expected) -> Result<(), String> {
    let Some(first) = views.first() else {
        return Ok(());
    };
    for v in views {
        if v.ring != first.ring {
            return Err(format!(
                "{} sees ring {:?}, {} sees {:?}",
                v.id, v.ring, first.id, first.ring
            ));
        }
        if v.owners != first.owners {
            return Err(format!(
                "{} and {} place children differently",
                v.id, first.id
            ));
        }
        if v.registry != first.registry {
            return Err(format!(
                "registries of {} ({} children) and {} ({}) differ",
                v.id,
                v.registry.len(),
                first.id,
                first.registry.len()
            ));
        }
    }
    let tags = first
        .ring
        .iter()
        .map(|n| (n.clone(), expected.tags.get(n).cloned().unwrap_or_default()))
        .collect();
    let placement = Placement::new(&first.ring, expected.vnodes, tags);
    let mut running: BTreeMap<&ChildId, &NodeId> = BTreeMap::new();
    for v in views {
        for id in &v.local {
            if let Some(other) = running.insert(id, &v.id) {
                return Err(format!("{id} runs on both {other} and {}", v.id));
            }
        }
    }
    for (id, holders) in &first.registry {
        let owner = expected_owner(&placement, &first.ring, id.as_str(), first.specs.get(id));
        let at: Vec<&NodeId> = holders.iter().map(|(n, _)| n).collect();
        // No member satisfies its constraints: it stays wherever one node
        // keeps it.
        let misplaced = match owner {
            Some(owner) => at.len() != 1 || at[0] != owner,
            None => at.len() != 1,
        };
        if misplaced {
            return Err(format!("{id} registered on {at:?}, its owner is {owner:?}"));
        }
        if running.get(id) != Some(&at[0]) {
            return Err(format!(
                "{id} registered on {} but runs on {:?}",
                at[0],
                running.get(id)
            ));
        }
    }
    if running.len() != first.registry.len() {
        return Err(format!(
            "{} children run, {} registered",
            running.len(),
            first.registry.len()
        ));
    }
    Ok(())
}
