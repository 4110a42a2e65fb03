//! Invariants over the views the runtime reports (registries, placement,
//! what runs where), shared by simulation scenarios and loopback tests.

use std::collections::BTreeMap;

use hub_core::{ChildId, DistributionStrategy, Handle, NodeId, Ring};

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
}

/// Equal rings and registries on every node, each child registered exactly
/// on its ring owner and running there and nowhere else.
pub fn quiet_invariants(
    views: &[NodeView],
    distribution: &dyn DistributionStrategy,
) -> Result<(), String> {
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
    let ring = Ring::new(distribution.vnodes(), first.ring.iter().cloned());
    let mut running: BTreeMap<&ChildId, &NodeId> = BTreeMap::new();
    for v in views {
        for id in &v.local {
            if let Some(other) = running.insert(id, &v.id) {
                return Err(format!("{id} runs on both {other} and {}", v.id));
            }
        }
    }
    for (id, holders) in &first.registry {
        // The nodes' own answer when they gave one (constraints need the
        // spec and the node tags); else the bare ring's.
        let owner = first.owners.get(id).or_else(|| ring.owner(id.as_str()));
        let at: Vec<&NodeId> = holders.iter().map(|(n, _)| n).collect();
        if at.len() != 1 || Some(at[0]) != owner {
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
