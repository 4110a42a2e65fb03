//! Consistent-hash ring with virtual nodes.
//!
//! The hash is **XXH3-64 with seed [`RING_SEED`]** (`xxhash-rust`), whose
//! output is specified byte-for-byte and does not depend on platform,
//! endianness, process or crate version. A node contributes `vnodes` points:
//! `xxh3(node_id || 0xFF || vnode_index as u32 little-endian)`. A child id
//! maps to `xxh3(child_id)`; its owners are the distinct nodes met walking
//! clockwise from that point. Points are kept sorted by `(hash, node id)`, so
//! the same membership gives the same owners whatever the insertion order.

use std::collections::{BTreeMap, BTreeSet};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::id::NodeId;
use crate::spec::ChildSpec;

/// Fixed seed of the ring hash; changing it would move every child.
pub const RING_SEED: u64 = 0x7072_6f63_6875_6221; // "prochub!"
/// Virtual nodes per member unless configured otherwise.
pub const DEFAULT_VNODES: u32 = 128;

/// Hash of a child id on the ring.
pub fn child_point(id: &str) -> u64 {
    xxh3_64_with_seed(id.as_bytes(), RING_SEED)
}

fn vnode_point(node: &str, index: u32) -> u64 {
    let mut buf = Vec::with_capacity(node.len() + 5);
    buf.extend_from_slice(node.as_bytes());
    buf.push(0xFF); // cannot occur in UTF-8, so "a"+"1" never equals "a1"+""
    buf.extend_from_slice(&index.to_le_bytes());
    xxh3_64_with_seed(&buf, RING_SEED)
}

/// The ring: sorted virtual points, each naming a member by index.
///
/// ```
/// use hub_core::{NodeId, Ring};
/// let ring = Ring::new(128, ["a", "b", "c"].map(NodeId::new));
/// let owner = ring.owner("child-1").unwrap();
/// let two = ring.owners("child-1", 2);
/// assert_eq!(&two[0], owner);
/// assert_eq!(two.len(), 2);
/// assert_ne!(two[0], two[1]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    vnodes: u32,
    nodes: Vec<NodeId>,
    /// (point, index into `nodes`), sorted.
    points: Vec<(u64, u32)>,
    /// Node tags (e.g. `zone=a`) for placement constraints; a member
    /// without an entry has none.
    tags: BTreeMap<NodeId, Tags>,
}

/// A node's tags: key to value.
pub type Tags = BTreeMap<String, String>;

impl Ring {
    /// A ring over `members` (duplicates ignored) with `vnodes` points each
    /// (at least 1).
    pub fn new(vnodes: u32, members: impl IntoIterator<Item = NodeId>) -> Self {
        let set: BTreeSet<NodeId> = members.into_iter().collect();
        let mut ring = Ring {
            vnodes: vnodes.max(1),
            nodes: set.into_iter().collect(),
            points: Vec::new(),
            tags: BTreeMap::new(),
        };
        ring.rebuild();
        ring
    }

    fn rebuild(&mut self) {
        let mut points = Vec::with_capacity(self.nodes.len() * self.vnodes as usize);
        for (i, node) in self.nodes.iter().enumerate() {
            let idx = i as u32;
            points.extend((0..self.vnodes).map(|v| (vnode_point(node.as_str(), v), idx)));
        }
        // `nodes` is sorted, so ties on the hash break by node id everywhere.
        points.sort_unstable();
        self.points = points;
    }

    /// Virtual points per member.
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Members, sorted by id.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The ring's arcs clockwise: `(after, through, node)` for each
    /// virtual point, where `node` owns the ids hashing into
    /// `(after, through]` (the first arc wraps around from the last
    /// point). A ring of one point is one whole-circle arc. For views of
    /// the ring, e.g. each node's share; placement asks [`Ring::owners`].
    pub fn arcs(&self) -> impl Iterator<Item = (u64, u64, &NodeId)> + '_ {
        let last = self.points.last().map_or(0, |(p, _)| *p);
        let mut prev = last;
        self.points.iter().map(move |(p, idx)| {
            let arc = (prev, *p, &self.nodes[*idx as usize]);
            prev = *p;
            arc
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True when `node` is a member.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.nodes.binary_search(node).is_ok()
    }

    /// Adds a member; returns false if it was already there. O(points):
    /// the joiner's points are merged in, nothing is re-sorted.
    pub fn insert(&mut self, node: NodeId) -> bool {
        let Err(pos) = self.nodes.binary_search(&node) else {
            return false;
        };
        let idx = pos as u32;
        let mut fresh: Vec<(u64, u32)> = (0..self.vnodes)
            .map(|v| (vnode_point(node.as_str(), v), idx))
            .collect();
        fresh.sort_unstable();
        self.nodes.insert(pos, node);
        // Indices at or after the joiner shift by one; the shift is monotone,
        // so the old points stay sorted by (hash, index).
        let old = std::mem::take(&mut self.points);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for (h, i) in old {
            let p = (h, if i >= idx { i + 1 } else { i });
            while let Some(&f) = fresh.peek() {
                if f < p {
                    merged.push(f);
                    fresh.next();
                } else {
                    break;
                }
            }
            merged.push(p);
        }
        merged.extend(fresh);
        self.points = merged;
        true
    }

    /// Sets a member's tags; returns true if they changed.
    pub fn set_tags(&mut self, node: &NodeId, tags: Tags) -> bool {
        if !self.contains(node) {
            return false;
        }
        if tags.is_empty() {
            return self.tags.remove(node).is_some();
        }
        self.tags.insert(node.clone(), tags.clone()) != Some(tags)
    }

    /// A member's tags (empty if it has none).
    pub fn tags(&self, node: &NodeId) -> Option<&Tags> {
        self.tags.get(node)
    }

    /// Removes a member; returns false if it was not there. O(points).
    pub fn remove(&mut self, node: &NodeId) -> bool {
        let Ok(pos) = self.nodes.binary_search(node) else {
            return false;
        };
        self.tags.remove(node);
        self.nodes.remove(pos);
        let idx = pos as u32;
        self.points.retain(|&(_, i)| i != idx);
        for p in &mut self.points {
            if p.1 > idx {
                p.1 -= 1;
            }
        }
        true
    }

    fn start_index(&self, h: u64) -> usize {
        let i = self.points.partition_point(|&(p, _)| p < h);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// The first owner of `id`, or `None` on an empty ring.
    pub fn owner(&self, id: &str) -> Option<&NodeId> {
        if self.points.is_empty() {
            return None;
        }
        let (_, idx) = self.points[self.start_index(child_point(id))];
        self.nodes.get(idx as usize)
    }

    /// The first `n` distinct owners of `id` clockwise (all members if there
    /// are fewer). The answer for `n` is a prefix of the answer for `n + 1`.
    pub fn owners(&self, id: &str, n: usize) -> Vec<NodeId> {
        self.owners_at(child_point(id), n)
    }

    /// The first `n` distinct owners clockwise from ring position `point`
    /// (what [`Ring::owners`] answers for an id hashing to `point`).
    pub fn owners_at(&self, point: u64, n: usize) -> Vec<NodeId> {
        let want = n.min(self.nodes.len());
        let mut out: Vec<NodeId> = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        let start = self.start_index(point);
        let len = self.points.len();
        for step in 0..len {
            let (_, idx) = self.points[(start + step) % len];
            let node = &self.nodes[idx as usize];
            if !out.contains(node) {
                out.push(node.clone());
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// The first `n` owners of `spec` honouring its placement constraints
    /// ([`ChildSpec::with_requirement`], [`ChildSpec::with_preference`]):
    /// the ring walk from the child's point keeps only members whose tags
    /// hold every requirement, and puts those that also hold every
    /// preference first (each group in walk order). Without constraints
    /// this is [`Ring::owners`]. When a tagged member leaves, the walk
    /// moves on to the next matching one (failover); when none matches a
    /// requirement, the answer is empty and the child waits.
    ///
    /// ```
    /// use hub_core::{ChildSpec, NodeId, Ring};
    /// let mut ring = Ring::new(64, ["a", "b", "c"].map(NodeId::new));
    /// ring.set_tags(&NodeId::new("b"), [("zone".into(), "x".into())].into());
    /// let spec = ChildSpec::new("job", "k").with_requirement("zone", "x");
    /// assert_eq!(ring.owners_for(&spec, 2), vec![NodeId::new("b")]);
    /// let soft = ChildSpec::new("job", "k").with_preference("zone", "x");
    /// assert_eq!(ring.owners_for(&soft, 2)[0], NodeId::new("b"));
    /// ```
    pub fn owners_for(&self, spec: &ChildSpec, n: usize) -> Vec<NodeId> {
        if !spec.is_constrained() {
            return self.owners(spec.id.as_str(), n);
        }
        let require = spec.requirements();
        let prefer = spec.preferences();
        let holds = |node: &NodeId, wanted: &[(String, String)]| {
            let tags = self.tags.get(node);
            wanted
                .iter()
                .all(|(k, v)| tags.and_then(|t| t.get(k)) == Some(v))
        };
        let walk = self.owners(spec.id.as_str(), self.nodes.len());
        let (preferred, rest): (Vec<NodeId>, Vec<NodeId>) = walk
            .into_iter()
            .filter(|node| holds(node, &require))
            .partition(|node| holds(node, &prefer));
        preferred.into_iter().chain(rest).take(n).collect()
    }
}
