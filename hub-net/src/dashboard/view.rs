//! What the dashboard shows of the cluster, aggregated on the serving
//! node: the ring's arcs, each member with its share and children, the
//! children per kind and node, and how many children are not yet where
//! the ring places them. Never the registry itself: a page with 100 k
//! children receives a few kilobytes.

use std::collections::BTreeMap;

use hub_core::ring::Tags;
use hub_core::{Node, NodeId};
use serde::Serialize;

use crate::control::Report;

/// The cluster as the serving node sees it, with each member's report.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct View {
    /// Milliseconds since the Unix epoch when this view was taken.
    pub(crate) at_ms: u64,
    /// Moves still to do after a membership change, summed over the
    /// members' own reports: local copies not on an owner, handoffs and
    /// hot moves not yet acknowledged, orphans not yet restarted.
    pub(crate) misplaced: usize,
    /// Read from the serving node, each member's report filled in.
    #[serde(flatten)]
    pub(crate) part: NodePart,
}

/// One member.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeView {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    /// `up`, `suspect`, `down`, `joining`, `leaving` or `left`, as the
    /// serving node sees it.
    pub(crate) status: String,
    pub(crate) tags: Tags,
    /// Fraction of the ring it owns (0 when out of the ring).
    pub(crate) share: f64,
    /// Children the registry says run there.
    pub(crate) children: usize,
    /// Its own report, when it answered in time.
    pub(crate) report: Option<Report>,
    /// Why there is no report.
    pub(crate) unreachable: Option<String>,
}

/// Children of one kind.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct KindView {
    pub(crate) kind: String,
    /// Running copies: a child with replicas, or in the middle of a hot
    /// move, counts once per copy.
    pub(crate) total: usize,
    pub(crate) per_node: BTreeMap<NodeId, usize>,
}

/// An arc of the ring: `[from, to)` as fractions of the circle.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ArcView {
    pub(crate) node: NodeId,
    pub(crate) from: f64,
    pub(crate) to: f64,
}

/// The part of a [`View`] read from the node, in its task.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodePart {
    pub(crate) hub_id: String,
    /// The node serving the page.
    pub(crate) served_by: NodeId,
    /// Children in the registry.
    pub(crate) children: usize,
    /// Children the serving node knows of that run nowhere yet.
    pub(crate) waiting: usize,
    /// Members, self first.
    pub(crate) nodes: Vec<NodeView>,
    pub(crate) kinds: Vec<KindView>,
    /// The ring clockwise from 12 o'clock, adjacent arcs of one node
    /// merged.
    pub(crate) ring: Vec<ArcView>,
}

/// A point of the ring as a fraction of the circle.
fn fraction(point: u64) -> f64 {
    point as f64 / (u64::MAX as f64 + 1.0)
}

/// Reads the node's part of the view: one pass over the registry.
pub(crate) fn node_part(n: &Node) -> NodePart {
    let ring = n.ring();
    let mut arcs: Vec<ArcView> = Vec::new();
    let mut share: BTreeMap<NodeId, f64> = BTreeMap::new();
    for (after, through, node) in ring.arcs() {
        let (from, to) = (fraction(after), fraction(through));
        // The wrapping arc (or a ring of one point) crosses 0.
        let pieces: &[(f64, f64)] = if after >= through {
            &[(from, 1.0), (0.0, to)]
        } else {
            &[(from, to)]
        };
        for &(from, to) in pieces {
            if to <= from {
                continue;
            }
            *share.entry(node.clone()).or_default() += to - from;
            match arcs.last_mut() {
                Some(last) if last.node == *node && last.to == from => last.to = to,
                _ => arcs.push(ArcView {
                    node: node.clone(),
                    from,
                    to,
                }),
            }
        }
    }
    arcs.sort_by(|a, b| a.from.total_cmp(&b.from));

    // The registry keeps these counts as rows change: a pass over every
    // row instead took 80–127 ms against 100 k children (measured).
    let mut held: BTreeMap<&NodeId, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, (usize, BTreeMap<&NodeId, usize>)> = BTreeMap::new();
    for (node, kind, count) in n.registry().running_by_kind() {
        let (total, per_node) = by_kind.entry(kind).or_default();
        *total += count;
        *per_node.entry(node).or_default() += count;
        *held.entry(node).or_default() += count;
    }
    let kinds: Vec<KindView> = by_kind
        .into_iter()
        .map(|(kind, (total, per_node))| KindView {
            kind: kind.to_string(),
            total,
            per_node: per_node.into_iter().map(|(n, c)| (n.clone(), c)).collect(),
        })
        .collect();

    let me = n.id().clone();
    let own_status = if n.is_leaving() { "leaving" } else { "up" };
    let view = |id: &NodeId, addr: &str, status: String, tags: &Tags| NodeView {
        id: id.clone(),
        addr: addr.to_string(),
        status,
        tags: tags.clone(),
        share: share.get(id).copied().unwrap_or(0.0),
        children: held.get(id).copied().unwrap_or(0),
        report: None,
        unreachable: None,
    };
    let own_tags = &n.config().tags;
    let mut nodes = vec![view(
        &me,
        &n.config().addr,
        own_status.to_string(),
        own_tags,
    )];
    let mut others: Vec<NodeView> = n
        .members()
        .map(|m| {
            let status = format!("{:?}", m.status).to_lowercase();
            view(&m.info.id, &m.info.addr, status, &m.info.tags)
        })
        .collect();
    others.sort_by(|a, b| a.id.cmp(&b.id));
    nodes.extend(others);

    NodePart {
        hub_id: n.config().hub_id.clone(),
        served_by: me,
        children: n.count_children(),
        waiting: n.waiting_children().len(),
        nodes,
        kinds,
        ring: arcs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{Config, Time};

    #[test]
    fn a_lone_node_owns_the_whole_ring() {
        let cfg = Config::new("h", NodeId::new("n1"));
        let node = Node::new(cfg, hub_strategies::defaults(), Time::ZERO).unwrap();
        let part = node_part(&node);
        assert_eq!(part.nodes.len(), 1);
        assert!((part.nodes[0].share - 1.0).abs() < 1e-9, "{part:?}");
        let covered: f64 = part.ring.iter().map(|a| a.to - a.from).sum();
        assert!((covered - 1.0).abs() < 1e-9);
        // Adjacent arcs of one node merge: a lone node is at most two
        // pieces (either side of 0).
        assert!(part.ring.len() <= 2, "{:?}", part.ring);
    }
}
