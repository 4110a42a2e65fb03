//! The registry's lookup index, shared by every handle on a node, so that
//! [`crate::Hub::child_lookup`] reads it from the caller's own task instead
//! of queueing behind everything the node task has to do.
//!
//! The node task keeps it: for each registry event it copies the registry's
//! holders of that one id, after the change and before any reply the same
//! input produced goes out. So a caller whose awaited start has returned
//! finds its children (read-your-writes), and a lookup never waits for the
//! node task however busy it is.

use std::sync::Arc;

use dashmap::DashMap;
use hub_core::{ChildId, Handle, NodeId, Registry};

/// Holders by child id, as the node's registry holds them. Child ids come
/// from users and peers, so the hasher is randomly keyed (ahash), not a
/// fixed fast hash.
#[derive(Clone, Debug, Default)]
pub(crate) struct LookupView(Arc<DashMap<ChildId, Holders, Keys>>);

/// ahash keys its first hasher from the OS generator, once per process,
/// and every later one from a process-wide counter. Under madsim that
/// first draw came out of the first simulation's random stream, so a seed
/// run first in its process took another course than the same seed run
/// after others. std's hasher is keyed per thread, and madsim keys it from
/// the seed.
#[cfg(not(madsim))]
type Keys = ahash::RandomState;
#[cfg(madsim)]
type Keys = std::collections::hash_map::RandomState;

/// One child's holders: boxed, since most children have one.
type Holders = Box<[(NodeId, Handle)]>;

impl LookupView {
    /// The nodes running `id` and their handles, in node order.
    pub(crate) fn get(&self, id: &str) -> Vec<(NodeId, Handle)> {
        self.0.get(id).map(|h| h.to_vec()).unwrap_or_default()
    }

    /// Copies the registry's holders of `id`, after a change to them.
    pub(crate) fn refresh(&self, registry: &Registry, id: &ChildId) {
        let holders = registry.lookup_ref(id.as_str());
        if holders.is_empty() {
            self.0.remove(id.as_str());
        } else {
            self.0.insert(id.clone(), holders.into());
        }
    }
}
