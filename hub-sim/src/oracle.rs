//! Where a child belongs, computed from the ring's documented definition
//! (the `hub_core::ring` module docs) without hub-core's ring code, so
//! that the placement check does not share the code it checks: a wrong
//! placement every node agrees on still fails.
//!
//! Definition: XXH3-64 with the ring seed; node `n` contributes the points
//! `xxh3(n || 0xFF || v as u32 little-endian)` for `v` in `0..vnodes`,
//! ordered by `(point, node id)`; a child id hashes to `xxh3(id)`, and its
//! owner is the first node met walking clockwise from there (the first
//! point at or after it, wrapping). A child with required tags may only
//! run on nodes holding them all; among those, nodes holding its
//! preferred tags come first; the walk order decides the rest.

use std::collections::BTreeMap;

use hub_core::NodeId;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The ring's hash seed, as documented ("prochub!").
const SEED: u64 = 0x7072_6f63_6875_6221;

/// Tags as `key=value` pairs.
pub type Tags = Vec<(String, String)>;

/// The placement function of one membership.
#[derive(Clone, Debug)]
pub struct Placement {
    points: Vec<(u64, NodeId)>,
    tags: BTreeMap<NodeId, Tags>,
}

fn has_all(tags: Option<&Tags>, wanted: &[(String, String)]) -> bool {
    wanted
        .iter()
        .all(|w| tags.is_some_and(|t| t.iter().any(|have| have == w)))
}

impl Placement {
    /// The placement over `members` with `vnodes` points each and the
    /// given node tags.
    pub fn new(members: &[NodeId], vnodes: u32, tags: BTreeMap<NodeId, Tags>) -> Self {
        let mut points = Vec::with_capacity(members.len() * vnodes as usize);
        for node in members {
            for v in 0..vnodes {
                let mut key = node.as_str().as_bytes().to_vec();
                key.push(0xFF);
                key.extend_from_slice(&v.to_le_bytes());
                points.push((xxh3_64_with_seed(&key, SEED), node.clone()));
            }
        }
        points.sort();
        points.dedup();
        Placement { points, tags }
    }

    /// The distinct nodes met walking clockwise from `id`'s point.
    fn walk(&self, id: &str) -> Vec<&NodeId> {
        let h = xxh3_64_with_seed(id.as_bytes(), SEED);
        let start = self.points.iter().position(|(p, _)| *p >= h).unwrap_or(0);
        let mut seen: Vec<&NodeId> = Vec::new();
        for k in 0..self.points.len() {
            let node = &self.points[(start + k) % self.points.len()].1;
            if !seen.contains(&node) {
                seen.push(node);
            }
        }
        seen
    }

    /// The owner of child `id` with these constraints; `None` when no
    /// member holds the required tags (the child then stays wherever a
    /// node keeps it).
    pub fn owner(
        &self,
        id: &str,
        require: &[(String, String)],
        prefer: &[(String, String)],
    ) -> Option<&NodeId> {
        let allowed: Vec<&NodeId> = self
            .walk(id)
            .into_iter()
            .filter(|n| has_all(self.tags.get(*n), require))
            .collect();
        allowed
            .iter()
            .find(|n| has_all(self.tags.get(**n), prefer))
            .or(allowed.first())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n)).collect()
    }

    /// The oracle and hub-core agree where they must: if they did not, one
    /// of them departs from the documented definition.
    #[test]
    fn agrees_with_the_ring_on_unconstrained_children() {
        let members = ids(&["n0", "n1", "n2", "n3", "n4"]);
        let oracle = Placement::new(&members, 128, BTreeMap::new());
        let ring = hub_core::Ring::new(128, members.clone());
        for i in 0..2_000 {
            let id = format!("c{i}");
            assert_eq!(oracle.owner(&id, &[], &[]), ring.owner(&id), "{id}");
        }
    }

    #[test]
    fn required_tags_filter_and_preferred_tags_come_first() {
        let members = ids(&["a", "b", "c"]);
        let zone = |z: &str| vec![("zone".to_string(), z.to_string())];
        let tags = BTreeMap::from([
            (NodeId::new("a"), zone("x")),
            (NodeId::new("b"), zone("y")),
            (NodeId::new("c"), zone("y")),
        ]);
        let p = Placement::new(&members, 16, tags);
        let y = zone("y");
        for i in 0..200 {
            let id = format!("c{i}");
            let req = p.owner(&id, &zone("x"), &[]).unwrap();
            assert_eq!(req.as_str(), "a");
            let pref = p.owner(&id, &[], &y).unwrap();
            assert_ne!(pref.as_str(), "a", "{id} prefers zone y");
        }
        assert_eq!(p.owner("c1", &zone("z"), &[]), None);
    }
}
