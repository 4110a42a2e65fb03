//! The DESIGN.md invariants as checkers over a [`Cluster`]. Each returns
//! the first violation found, described well enough to debug from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hub_core::{ChildId, NodeId, Role};

use crate::Cluster;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

fn fail<T>(msg: String) -> Result<T, Violation> {
    Err(Violation(msg))
}

/// Within every connected group, every node's registry view is equal.
pub fn registries_equal(c: &Cluster) -> Result<(), Violation> {
    for group in c.components() {
        let mut views = group
            .iter()
            .filter_map(|&i| c.node(i).map(|n| (i, n.registry().view())));
        let Some((first, reference)) = views.next() else {
            continue;
        };
        for (i, view) in views {
            if view != reference {
                let diff: Vec<_> = view
                    .iter()
                    .filter(|(k, v)| reference.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .chain(reference.keys().filter(|k| !view.contains_key(*k)).cloned())
                    .take(5)
                    .collect();
                return fail(format!(
                    "registry of {} differs from {} ({} vs {} children), e.g. {diff:?}",
                    c.id(i),
                    c.id(first),
                    view.len(),
                    reference.len()
                ));
            }
        }
    }
    Ok(())
}

/// Within every connected group, each registered child runs exactly on the
/// nodes its strategies assign (no duplicates, no orphans), and each node's
/// processes are exactly its registry rows.
pub fn placement(c: &Cluster) -> Result<(), Violation> {
    for group in c.components() {
        let Some(&first) = group.first() else {
            continue;
        };
        let Some(node) = c.node(first) else { continue };
        let members: BTreeSet<NodeId> = group.iter().map(|&i| c.id(i)).collect();
        for (id, holders) in node.registry().iter() {
            let Some(spec) = node.registry().spec(id.as_str()) else {
                continue;
            };
            let mut want = node.placement(spec);
            want.sort();
            let have: Vec<NodeId> = holders.iter().map(|(n, _)| n.clone()).collect();
            if have != want {
                return fail(format!("{id} runs on {have:?}, placement says {want:?}"));
            }
            if let Some(stranger) = have.iter().find(|n| !members.contains(*n)) {
                return fail(format!("{id} registered on {stranger}, outside the group"));
            }
        }
        for &i in &group {
            let n_id = c.id(i);
            let running: BTreeSet<&ChildId> = c.runtime(i).running().map(|(id, _)| id).collect();
            let rows: BTreeSet<&ChildId> = node
                .registry()
                .iter()
                .filter(|(_, h)| h.iter().any(|(n, _)| *n == n_id))
                .map(|(id, _)| id)
                .collect();
            if running != rows {
                let extra: Vec<_> = running.difference(&rows).take(5).collect();
                let missing: Vec<_> = rows.difference(&running).take(5).collect();
                return fail(format!(
                    "{n_id} runs unregistered {extra:?} / registry names missing {missing:?}"
                ));
            }
        }
    }
    Ok(())
}

/// No child id runs on two nodes (checked across the whole cluster).
pub fn single_instance(c: &Cluster) -> Result<(), Violation> {
    let mut copies: BTreeMap<&ChildId, Vec<usize>> = BTreeMap::new();
    for i in c.alive() {
        for (id, _) in c.runtime(i).running() {
            copies.entry(id).or_default().push(i);
        }
    }
    let Some(view) = c.alive().into_iter().find_map(|i| c.node(i)) else {
        return Ok(());
    };
    for (id, nodes) in copies {
        // As many copies as the redundancy strategy places (one by default).
        let allowed = view
            .registry()
            .spec(id.as_str())
            .map_or(1, |spec| view.placement(spec).len().max(1));
        if nodes.len() > allowed {
            let on: Vec<NodeId> = nodes.iter().map(|&i| c.id(i)).collect();
            return fail(format!("{id} runs on {on:?}, {allowed} allowed"));
        }
    }
    Ok(())
}

/// With active/passive replication: every registered child has exactly one
/// active replica among the live nodes.
pub fn one_active(c: &Cluster) -> Result<(), Violation> {
    let Some(view) = c.alive().into_iter().find_map(|i| c.node(i)) else {
        return Ok(());
    };
    for (id, _) in view.registry().iter() {
        let active: Vec<NodeId> = c
            .alive()
            .into_iter()
            .filter(|&i| c.node(i).and_then(|n| n.local_role(id.as_str())) == Some(Role::Active))
            .map(|i| c.id(i))
            .collect();
        if active.len() != 1 {
            return fail(format!("{id} is active on {active:?}"));
        }
    }
    Ok(())
}

/// Every id in `acknowledged` is registered on every live node.
pub fn none_lost<'a>(
    c: &Cluster,
    acknowledged: impl IntoIterator<Item = &'a ChildId>,
) -> Result<(), Violation> {
    let ids: Vec<&ChildId> = acknowledged.into_iter().collect();
    for i in c.alive() {
        let Some(n) = c.node(i) else { continue };
        let lost: Vec<_> = ids
            .iter()
            .filter(|id| n.registry().lookup_ref(id.as_str()).is_empty())
            .take(5)
            .collect();
        if !lost.is_empty() {
            return fail(format!(
                "{} lost acknowledged children, e.g. {lost:?}",
                c.id(i)
            ));
        }
    }
    Ok(())
}

/// The quiet-time invariants: equal registries, exact placement, single
/// instances (valid for single-copy redundancy in a connected cluster).
pub fn check_all(c: &Cluster) -> Result<(), Violation> {
    registries_equal(c)?;
    placement(c)?;
    single_instance(c)
}
