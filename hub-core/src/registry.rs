//! The replicated registry: child id -> the nodes running it.
//!
//! Stored as one **slice per node**. Only node `n` writes slice `n` (rows for
//! the children it runs, tombstones for those it stopped); everyone else
//! merges copies. Every row carries a [`Version`] `(incarnation, seq)` from
//! its writer, so merging is a per-row maximum — commutative, associative
//! and idempotent — and a node that restarts (higher incarnation) replaces
//! its old slice wholesale. Each slice keeps a *contiguous clock*: all of
//! the writer's changes up to it are present. Digests list clocks; a peer
//! answers a digest with a [`SliceDelta`] of the rows newer than that clock,
//! so sync sends only what changed.
//!
//! ```
//! use hub_core::{registry::Registry, ChildSpec, Handle, NodeId};
//! let (a, b) = (NodeId::new("a"), NodeId::new("b"));
//! let mut ra = Registry::new();
//! ra.local_insert(&a, 1, ChildSpec::new("c1", "echo"), Handle(7));
//! let mut rb = Registry::new();
//! rb.apply(&ra.delta_since(&a, rb.clock(&a)));
//! assert_eq!(rb.lookup("c1"), vec![(a, Handle(7))]);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::{ChildId, Handle, Incarnation, NodeId};
use crate::spec::ChildSpec;

/// Version of a row or a slice: the writer's incarnation, then its counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Incarnation of the writing node.
    pub incarnation: Incarnation,
    /// Change counter within the incarnation.
    pub seq: u64,
}

/// A live registry row: a child running on the slice's node, or handed
/// over by it and not yet acknowledged by the new owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The child's spec (shared, rows are copied often).
    pub spec: Arc<ChildSpec>,
    /// The local handle on the slice's node.
    pub handle: Handle,
    /// Set while the child is stopped here and handed to that node. Such a
    /// row does not count as running (lookups skip it), but if its node dies
    /// the child is restarted from it: a child in transit is never only in
    /// one node's memory.
    pub moving_to: Option<NodeId>,
}

impl Row {
    /// The handle, if the child runs on the row's node.
    pub fn running(&self) -> Option<Handle> {
        self.moving_to.is_none().then_some(self.handle)
    }
}

/// One versioned cell of a slice: a live row or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// Writer's version of this change.
    pub version: Version,
    /// The row, or `None` once removed.
    pub row: Option<Row>,
}

/// The changes of one node's slice after `since`, up to `clock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceDelta {
    /// Writer of the slice.
    pub node: NodeId,
    /// The receiver's clock this delta continues from.
    pub since: Version,
    /// The writer's clock after these rows.
    pub clock: Version,
    /// Changed cells.
    pub rows: Vec<(ChildId, Stamped)>,
}

/// A change to the live view produced by a write or merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryChange {
    /// `node` now runs `id` with `handle` (new or changed handle).
    Inserted {
        /// Child.
        id: ChildId,
        /// Node whose slice changed.
        node: NodeId,
        /// New handle.
        handle: Handle,
    },
    /// `node` no longer runs `id`.
    Removed {
        /// Child.
        id: ChildId,
        /// Node whose slice changed.
        node: NodeId,
    },
}

/// Most out-of-order deltas remembered per slice while waiting for the gap
/// before them to fill; older ones are left to digest repair.
pub const MAX_PENDING_RANGES: usize = 256;

#[derive(Clone, Debug, Default)]
struct Slice {
    clock: Version,
    rows: HashMap<ChildId, Stamped>,
    /// version -> id, to find rows newer than a clock without a scan.
    log: BTreeMap<Version, ChildId>,
    /// Deltas applied ahead of a gap: `since -> clock`. When the clock
    /// reaches a `since`, it jumps to that `clock` (like TCP reassembly).
    pending: BTreeMap<Version, Version>,
    /// Derived: running rows per kind, kept as rows change so that a
    /// view of the cluster costs O(kinds), not a pass over every row.
    running: BTreeMap<String, usize>,
}

impl PartialEq for Slice {
    fn eq(&self, other: &Self) -> bool {
        // `log` and `running` are derived; `pending` is receive
        // bookkeeping, not state.
        self.clock == other.clock && self.rows == other.rows
    }
}

impl Eq for Slice {}

impl Slice {
    /// Keeps [`Slice::running`] in step with one row's change.
    fn count(&mut self, was: Option<&str>, now: Option<&str>) {
        if was == now {
            return;
        }
        if let Some(kind) = was {
            if let Some(n) = self.running.get_mut(kind) {
                *n -= 1;
                if *n == 0 {
                    self.running.remove(kind);
                }
            }
        }
        if let Some(kind) = now {
            match self.running.get_mut(kind) {
                Some(n) => *n += 1,
                None => {
                    self.running.insert(kind.to_string(), 1);
                }
            }
        }
    }

    fn advance(&mut self) {
        while let Some((&since, &clock)) = self.pending.first_key_value() {
            if since > self.clock {
                break;
            }
            self.pending.pop_first();
            self.clock = self.clock.max(clock);
        }
        let clock = self.clock;
        self.pending.retain(|_, c| *c > clock);
    }
}

/// A replica of the registry (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    slices: BTreeMap<NodeId, Slice>,
    /// Derived: live holders of each child, sorted by node id.
    index: HashMap<ChildId, Vec<(NodeId, Handle)>>,
}

impl PartialEq for Registry {
    fn eq(&self, other: &Self) -> bool {
        // `index` is derived from `slices`.
        self.slices == other.slices
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The contiguous clock of `node`'s slice (default if unknown).
    pub fn clock(&self, node: &NodeId) -> Version {
        self.slices.get(node).map(|s| s.clock).unwrap_or_default()
    }

    /// Clocks of every slice held: what this replica has.
    pub fn digest(&self) -> Vec<(NodeId, Version)> {
        self.slices
            .iter()
            .map(|(n, s)| (n.clone(), s.clock))
            .collect()
    }

    /// Writes a live row into `me`'s own slice and returns the delta that
    /// carries it to peers.
    pub fn local_insert(
        &mut self,
        me: &NodeId,
        incarnation: Incarnation,
        spec: impl Into<Arc<ChildSpec>>,
        handle: Handle,
    ) -> (SliceDelta, Vec<RegistryChange>) {
        let spec = spec.into();
        let id = spec.id.clone();
        let row = Row {
            spec,
            handle,
            moving_to: None,
        };
        self.local_write(me, incarnation, id, Some(row))
    }

    /// Marks `me`'s row for `id` as handed to `to` (see [`Row::moving_to`]).
    pub fn local_mark_moving(
        &mut self,
        me: &NodeId,
        incarnation: Incarnation,
        id: &ChildId,
        to: NodeId,
    ) -> Option<(SliceDelta, Vec<RegistryChange>)> {
        let row = self.slices.get(me)?.rows.get(id)?.row.clone()?;
        let moving = Row {
            moving_to: Some(to),
            ..row
        };
        Some(self.local_write(me, incarnation, id.clone(), Some(moving)))
    }

    /// Tombstones `id` in `me`'s own slice, if present.
    pub fn local_remove(
        &mut self,
        me: &NodeId,
        incarnation: Incarnation,
        id: &ChildId,
    ) -> Option<(SliceDelta, Vec<RegistryChange>)> {
        let live = self
            .slices
            .get(me)
            .and_then(|s| s.rows.get(id))
            .is_some_and(|r| r.row.is_some());
        live.then(|| self.local_write(me, incarnation, id.clone(), None))
    }

    fn local_write(
        &mut self,
        me: &NodeId,
        incarnation: Incarnation,
        id: ChildId,
        row: Option<Row>,
    ) -> (SliceDelta, Vec<RegistryChange>) {
        let since = self.clock(me);
        let version = if since.incarnation == incarnation {
            Version {
                incarnation,
                seq: since.seq + 1,
            }
        } else {
            Version {
                incarnation,
                seq: 1,
            }
        };
        let delta = SliceDelta {
            node: me.clone(),
            since,
            clock: version,
            rows: vec![(id, Stamped { version, row })],
        };
        let changes = self.apply(&delta);
        (delta, changes)
    }

    /// Merges a delta; returns the changes to the live view. A delta from
    /// an older incarnation is ignored; one from a newer incarnation first
    /// drops the old slice. The clock advances only when the delta continues
    /// from this replica's clock, so a gap is filled by the next digest.
    pub fn apply(&mut self, delta: &SliceDelta) -> Vec<RegistryChange> {
        let mut changes = Vec::new();
        let node = &delta.node;
        let cur = self.clock(node);
        if delta.clock.incarnation < cur.incarnation {
            return changes;
        }
        if delta.clock.incarnation > cur.incarnation && self.slices.contains_key(node) {
            changes.extend(self.remove_slice(node).into_iter().map(|(id, _)| {
                RegistryChange::Removed {
                    id,
                    node: node.clone(),
                }
            }));
        }
        let slice = self.slices.entry(node.clone()).or_default();
        if slice.clock.incarnation < delta.clock.incarnation {
            slice.clock = Version {
                incarnation: delta.clock.incarnation,
                seq: 0,
            };
        }
        for (id, cell) in &delta.rows {
            if cell.version.incarnation != delta.clock.incarnation {
                continue; // malformed or stale cell: never mix incarnations
            }
            let old = slice.rows.get(id);
            if old.is_some_and(|o| o.version >= cell.version) {
                continue;
            }
            let was_row = old.and_then(|o| o.row.as_ref());
            let was_live = was_row.and_then(Row::running);
            // The spec is shared: holding it past the row's replacement
            // costs a reference count, not a copy.
            let was_spec = was_row
                .filter(|r| r.running().is_some())
                .map(|r| r.spec.clone());
            if let Some(o) = old {
                slice.log.remove(&o.version);
            }
            slice.log.insert(cell.version, id.clone());
            slice.rows.insert(id.clone(), cell.clone());
            let now_kind = cell
                .row
                .as_ref()
                .filter(|r| r.running().is_some())
                .map(|r| r.spec.kind.as_str());
            slice.count(was_spec.as_ref().map(|s| s.kind.as_str()), now_kind);
            match (cell.row.as_ref().and_then(Row::running), was_live) {
                (Some(h), prev) if prev != Some(h) => {
                    index_insert(&mut self.index, id, node, h);
                    changes.push(RegistryChange::Inserted {
                        id: id.clone(),
                        node: node.clone(),
                        handle: h,
                    });
                }
                (None, Some(_)) => {
                    index_remove(&mut self.index, id, node);
                    changes.push(RegistryChange::Removed {
                        id: id.clone(),
                        node: node.clone(),
                    });
                }
                _ => {}
            }
        }
        if delta.since <= slice.clock {
            slice.clock = slice.clock.max(delta.clock);
        } else if delta.clock > slice.clock {
            let e = slice.pending.entry(delta.since).or_insert(delta.clock);
            *e = (*e).max(delta.clock);
            if slice.pending.len() > MAX_PENDING_RANGES {
                slice.pending.pop_last();
            }
        }
        slice.advance();
        changes
    }

    /// Slices with deltas applied ahead of a gap: `(node, contiguous
    /// clock)`, to ask the writer for what is missing.
    pub fn gaps(&self) -> Vec<(NodeId, Version)> {
        self.slices
            .iter()
            .filter(|(_, s)| !s.pending.is_empty())
            .map(|(n, s)| (n.clone(), s.clock))
            .collect()
    }

    /// Full-state merge of another replica (what repeated delta exchange
    /// converges to).
    pub fn merge(&mut self, other: &Registry) -> Vec<RegistryChange> {
        let mut changes = Vec::new();
        for (node, slice) in &other.slices {
            let mut rows: Vec<(ChildId, Stamped)> = slice
                .rows
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            rows.sort_by_key(|r| r.1.version);
            changes.extend(self.apply(&SliceDelta {
                node: node.clone(),
                since: Version::default(),
                clock: slice.clock,
                rows,
            }));
            // Ranges the other replica holds ahead of its gaps are knowledge
            // too; a set union keeps merge commutative and associative.
            if let Some(mine) = self.slices.get_mut(node) {
                if mine.clock.incarnation == slice.clock.incarnation {
                    for (&since, &clock) in &slice.pending {
                        let e = mine.pending.entry(since).or_insert(clock);
                        *e = (*e).max(clock);
                    }
                    mine.advance();
                }
            }
        }
        changes
    }

    /// The cells of `node`'s slice newer than `since` (all of them when
    /// `since` is from an older incarnation).
    pub fn delta_since(&self, node: &NodeId, since: Version) -> SliceDelta {
        let Some(slice) = self.slices.get(node) else {
            return SliceDelta {
                node: node.clone(),
                since,
                clock: since,
                rows: Vec::new(),
            };
        };
        let from = if since.incarnation < slice.clock.incarnation {
            Version::default()
        } else {
            since
        };
        let rows = slice
            .log
            .range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
            .filter_map(|(_, id)| slice.rows.get(id).map(|c| (id.clone(), c.clone())))
            .collect();
        SliceDelta {
            node: node.clone(),
            since: from,
            clock: slice.clock,
            rows,
        }
    }

    /// Drops a slice (its node is down or restarted) and returns its live
    /// rows, moving ones included, so the caller can restart those children
    /// elsewhere.
    pub fn remove_slice(&mut self, node: &NodeId) -> Vec<(ChildId, Row)> {
        let Some(slice) = self.slices.remove(node) else {
            return Vec::new();
        };
        let mut live: Vec<(ChildId, Row)> = slice
            .rows
            .into_iter()
            .filter_map(|(id, c)| c.row.map(|r| (id, r)))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, _) in &live {
            index_remove(&mut self.index, id, node);
        }
        live
    }

    /// Nodes whose slice is held.
    pub fn slice_nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.slices.keys()
    }

    /// Live rows (running or moving) of one node's slice.
    pub fn slice_rows<'a>(&'a self, node: &NodeId) -> impl Iterator<Item = (&'a ChildId, &'a Row)> {
        self.slices.get(node).into_iter().flat_map(|s| {
            s.rows
                .iter()
                .filter_map(|(id, c)| c.row.as_ref().map(|r| (id, r)))
        })
    }

    /// Running children per node and kind, in node then kind order: what
    /// a view of the cluster needs, kept up to date as rows change, so it
    /// costs O(nodes × kinds) however many children there are. A child
    /// held by several nodes (replicas, or both copies of a hot move)
    /// counts on each.
    pub fn running_by_kind(&self) -> impl Iterator<Item = (&NodeId, &str, usize)> {
        self.slices.iter().flat_map(|(node, s)| {
            s.running
                .iter()
                .map(move |(kind, n)| (node, kind.as_str(), *n))
        })
    }

    /// `node`'s live row for `id`, running or moving.
    pub fn row(&self, node: &NodeId, id: &str) -> Option<&Row> {
        self.slices.get(node)?.rows.get(id)?.row.as_ref()
    }

    /// True when some node's row for `id` is handed to another node and
    /// no copy runs yet (a caller should retry shortly). O(nodes).
    pub fn is_moving(&self, id: &str) -> bool {
        self.lookup_ref(id).is_empty() && self.moving_row(id).is_some()
    }

    /// A row of `id` handed over by its node and not yet replaced by the
    /// new owner's: `(node, row)`, whether or not a copy runs elsewhere
    /// (the first in node order; see [`Registry::moving_rows`]).
    pub fn moving_row(&self, id: &str) -> Option<(&NodeId, &Row)> {
        self.slices.iter().find_map(|(node, s)| {
            s.rows
                .get(id)
                .and_then(|c| c.row.as_ref())
                .filter(|r| r.moving_to.is_some())
                .map(|r| (node, r))
        })
    }

    /// Every row of `id` handed over by its node and not yet replaced, in
    /// node order. There can be more than one: a node's own stale row may
    /// sit beside the row of the node that really hands the child over, so
    /// a question about one node's move must look at them all.
    pub fn moving_rows<'a>(&'a self, id: &'a str) -> impl Iterator<Item = (&'a NodeId, &'a Row)> {
        self.slices.iter().filter_map(move |(node, s)| {
            s.rows
                .get(id)
                .and_then(|c| c.row.as_ref())
                .filter(|r| r.moving_to.is_some())
                .map(|r| (node, r))
        })
    }

    /// True when `id` runs on `node` (a moving row does not count).
    pub fn holds(&self, node: &NodeId, id: &str) -> bool {
        self.lookup_ref(id).iter().any(|(n, _)| n == node)
    }

    /// Where `id` runs: `(node, handle)` pairs sorted by node id. O(1).
    pub fn lookup(&self, id: &str) -> Vec<(NodeId, Handle)> {
        self.lookup_ref(id).to_vec()
    }

    /// Borrowing form of [`Registry::lookup`].
    pub fn lookup_ref(&self, id: &str) -> &[(NodeId, Handle)] {
        self.index.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The spec of a running child.
    pub fn spec(&self, id: &str) -> Option<&Arc<ChildSpec>> {
        let (node, _) = self.lookup_ref(id).first()?;
        let slice = self.slices.get(node)?;
        slice.rows.get(id)?.row.as_ref().map(|r| &r.spec)
    }

    /// Number of distinct live children.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no child is registered.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every live child with its holders, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ChildId, &[(NodeId, Handle)])> {
        self.index.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// The live view, sorted: what "equal registries" compares.
    pub fn view(&self) -> BTreeMap<ChildId, Vec<(NodeId, Handle)>> {
        self.index
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Children whose metadata has `key == value`, sorted by id.
    pub fn match_metadata(&self, key: &str, value: &str) -> Vec<ChildId> {
        let mut out: Vec<ChildId> = self
            .index
            .keys()
            .filter(|id| {
                self.spec(id.as_str())
                    .is_some_and(|s| s.metadata.get(key).is_some_and(|v| v == value))
            })
            .cloned()
            .collect();
        out.sort();
        out
    }
}

fn index_insert(
    index: &mut HashMap<ChildId, Vec<(NodeId, Handle)>>,
    id: &ChildId,
    node: &NodeId,
    handle: Handle,
) {
    let holders = index.entry(id.clone()).or_default();
    match holders.binary_search_by(|(n, _)| n.cmp(node)) {
        Ok(i) => holders[i].1 = handle,
        Err(i) => holders.insert(i, (node.clone(), handle)),
    }
}

fn index_remove(index: &mut HashMap<ChildId, Vec<(NodeId, Handle)>>, id: &ChildId, node: &NodeId) {
    if let Some(holders) = index.get_mut(id) {
        holders.retain(|(n, _)| n != node);
        if holders.is_empty() {
            index.remove(id);
        }
    }
}
