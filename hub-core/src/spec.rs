//! What a child is: its spec, restart policy and metadata.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::id::{ChildId, NodeId};

/// Longest accepted child id, kind name or metadata key/value, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Metadata tag holding the nodes a Guided child must run on.
pub const NODES_TAG: &str = "hub.nodes";
/// Metadata tag holding the node tags a child requires, `k=v,k2=v2`.
pub const REQUIRE_TAG: &str = "hub.require";
/// Metadata tag holding the node tags a child prefers, `k=v,k2=v2`.
pub const PREFER_TAG: &str = "hub.prefer";
/// Most metadata entries a spec may carry (metadata is meant for tags).
pub const MAX_METADATA_ENTRIES: usize = 64;

/// When a child that exited is started again (OTP semantics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit; a normal exit removes it
    /// cluster-wide.
    Transient,
    /// Never restarted; any exit removes it cluster-wide.
    Temporary,
}

/// Everything needed to start a child on any node.
///
/// ```
/// use hub_core::ChildSpec;
/// let spec = ChildSpec::new("counter-1", "counter").with_metadata("tier", "gold");
/// assert!(spec.validate().is_ok());
/// assert!(ChildSpec::new("", "counter").validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Unique id in the hub.
    pub id: ChildId,
    /// Name of a process kind registered on every node.
    pub kind: String,
    /// Serialized start arguments, opaque to the core.
    pub args: Bytes,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Small key/value tags, stored in the registry and queryable.
    pub metadata: BTreeMap<String, String>,
}

impl ChildSpec {
    /// A spec with empty args, `Permanent` restart and no metadata. hub-net
    /// starts a child with empty args from its `Args` type's zero value
    /// (the postcard decoding of a single `0` byte: 0, an empty string or
    /// list, `None`, the first enum variant); a type without one fails to
    /// start with a clear error.
    pub fn new(id: impl Into<ChildId>, kind: impl Into<String>) -> Self {
        ChildSpec {
            id: id.into(),
            kind: kind.into(),
            args: Bytes::new(),
            restart: RestartPolicy::Permanent,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the start arguments.
    pub fn with_args(mut self, args: impl Into<Bytes>) -> Self {
        self.args = args.into();
        self
    }

    /// Sets the restart policy.
    pub fn with_restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    /// Adds one metadata tag.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Names the nodes that must run it, primary first, for the Guided
    /// distribution strategy (stored as the metadata tag [`NODES_TAG`],
    /// comma-separated).
    ///
    /// ```
    /// use hub_core::ChildSpec;
    /// let spec = ChildSpec::new("job-1", "worker").with_nodes(["n2"]);
    /// assert_eq!(spec.nodes(), Some(vec!["n2".into()]));
    /// ```
    pub fn with_nodes<N: Into<String>>(self, nodes: impl IntoIterator<Item = N>) -> Self {
        let list: Vec<String> = nodes.into_iter().map(Into::into).collect();
        self.with_metadata(NODES_TAG, list.join(","))
    }

    /// Requires a node tag: the child runs only on nodes tagged `key=value`
    /// (see [`crate::Ring::owners_for`]); with no such node it waits.
    /// Stored in the metadata tag [`REQUIRE_TAG`].
    ///
    /// ```
    /// use hub_core::ChildSpec;
    /// let spec = ChildSpec::new("db-1", "db").with_requirement("zone", "a");
    /// assert_eq!(spec.requirements(), vec![("zone".into(), "a".into())]);
    /// ```
    pub fn with_requirement(self, key: &str, value: &str) -> Self {
        self.with_constraint(REQUIRE_TAG, key, value)
    }

    /// Prefers a node tag: nodes tagged `key=value` come first, others
    /// take the child when none is left. Stored in [`PREFER_TAG`].
    pub fn with_preference(self, key: &str, value: &str) -> Self {
        self.with_constraint(PREFER_TAG, key, value)
    }

    fn with_constraint(mut self, tag: &str, key: &str, value: &str) -> Self {
        let entry = format!("{key}={value}");
        let list = match self.metadata.get(tag) {
            Some(old) if !old.is_empty() => format!("{old},{entry}"),
            _ => entry,
        };
        self.metadata.insert(tag.to_owned(), list);
        self
    }

    /// The node tags this child requires, `(key, value)` pairs.
    pub fn requirements(&self) -> Vec<(String, String)> {
        constraints(self.metadata.get(REQUIRE_TAG))
    }

    /// The node tags this child prefers.
    pub fn preferences(&self) -> Vec<(String, String)> {
        constraints(self.metadata.get(PREFER_TAG))
    }

    /// Whether the spec carries placement constraints.
    pub fn is_constrained(&self) -> bool {
        self.metadata.contains_key(REQUIRE_TAG) || self.metadata.contains_key(PREFER_TAG)
    }

    /// The nodes named with [`ChildSpec::with_nodes`], if any.
    pub fn nodes(&self) -> Option<Vec<NodeId>> {
        let list = self.metadata.get(NODES_TAG)?;
        Some(list.split(',').map(|n| NodeId::new(n.trim())).collect())
    }

    /// Checks sizes and emptiness; the core refuses invalid specs.
    pub fn validate(&self) -> Result<(), SpecError> {
        let id = self.id.as_str();
        if id.is_empty() {
            return Err(SpecError::EmptyId);
        }
        if id.len() > MAX_NAME_LEN {
            return Err(SpecError::TooLong { field: "id".into() });
        }
        if self.kind.is_empty() {
            return Err(SpecError::EmptyKind);
        }
        if self.kind.len() > MAX_NAME_LEN {
            return Err(SpecError::TooLong {
                field: "kind".into(),
            });
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(SpecError::TooManyTags(self.metadata.len()));
        }
        if self
            .metadata
            .iter()
            .any(|(k, v)| k.len() > MAX_NAME_LEN || v.len() > MAX_NAME_LEN)
        {
            return Err(SpecError::TooLong {
                field: "metadata".into(),
            });
        }
        for tag in [REQUIRE_TAG, PREFER_TAG] {
            if let Some(list) = self.metadata.get(tag) {
                let bad = list.split(',').any(|e| match e.split_once('=') {
                    Some((k, _)) => k.trim().is_empty(),
                    None => true,
                });
                if bad {
                    return Err(SpecError::BadConstraint(list.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Parses `k=v,k2=v2`; malformed entries (refused by
/// [`ChildSpec::validate`]) are skipped.
fn constraints(list: Option<&String>) -> Vec<(String, String)> {
    list.map(|l| {
        l.split(',')
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(k, _)| !k.is_empty())
            .collect()
    })
    .unwrap_or_default()
}
