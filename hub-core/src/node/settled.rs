//! Whether a node is at rest, and if not, why: one computation, so the
//! answer and its reasons never disagree.

use std::fmt;

use super::{LocalState, Node};

/// What keeps a node from being settled ([`Node::unsettled`]); a count of
/// zero (or `false`) is not a reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unsettled {
    /// Children of departed holders this node owns and has not restarted
    /// (not counted while partitioned: it must not act on them then).
    pub orphans: usize,
    /// Children handed to another node, not yet acknowledged.
    pub outbound: usize,
    /// Start-then-stop moves in progress.
    pub handing: usize,
    /// Local children starting, stopping or paused for a handover.
    pub busy: usize,
    /// Local children this node does not own under the agreed specs and
    /// the current ring (not counted while partitioned).
    pub misplaced: usize,
    /// Local children whose owners do not all hold a replica yet.
    pub replicas_missing: usize,
    /// The redistribution lock is held.
    pub locked: bool,
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reasons = Vec::new();
        for (what, n) in [
            ("orphans", self.orphans),
            ("outbound", self.outbound),
            ("handing", self.handing),
            ("busy", self.busy),
            ("misplaced", self.misplaced),
            ("replicas missing", self.replicas_missing),
        ] {
            if n > 0 {
                reasons.push(format!("{what} {n}"));
            }
        }
        if self.locked {
            reasons.push("locked".into());
        }
        f.write_str(&reasons.join(", "))
    }
}

impl Node {
    /// Whether this node is at rest: no migration, handoff or orphan
    /// restart in flight, every local child one it owns, and (with
    /// redundancy) every replica in place. A test waits for every node to
    /// be settled. Exactly when [`Node::unsettled`] is `None`.
    pub fn is_settled(&self) -> bool {
        self.unsettled().is_none()
    }

    /// Why this node is not settled, or `None` when it is.
    pub fn unsettled(&self) -> Option<Unsettled> {
        let placed = |id, l: &super::Local| self.owners(&self.ring, self.agreed_spec(id, &l.spec));
        let mut u = Unsettled {
            orphans: if self.partitioned {
                0
            } else {
                self.children.orphans.len()
            },
            outbound: self.children.outbound.len(),
            handing: self.children.handing.len(),
            locked: self.lock.is_some(),
            ..Unsettled::default()
        };
        let redundant = self.redundant();
        for (id, l) in &self.children.local {
            if !matches!(l.state, LocalState::Running(_)) {
                u.busy += 1;
            }
            if self.partitioned {
                continue;
            }
            let owners = placed(id, l);
            if !owners.contains(&self.me) {
                u.misplaced += 1;
            }
            if redundant && !owners.iter().all(|o| self.registry.holds(o, id.as_str())) {
                u.replicas_missing += 1;
            }
        }
        (u != Unsettled::default()).then_some(u)
    }
}

#[cfg(test)]
mod tests {
    use super::Unsettled;

    #[test]
    fn reasons_print_only_what_is_not_at_rest() {
        let cases = [
            (Unsettled::default(), ""),
            (
                Unsettled {
                    outbound: 3,
                    locked: true,
                    ..Unsettled::default()
                },
                "outbound 3, locked",
            ),
            (
                Unsettled {
                    orphans: 1,
                    busy: 2,
                    misplaced: 4,
                    replicas_missing: 5,
                    handing: 6,
                    ..Unsettled::default()
                },
                "orphans 1, handing 6, busy 2, misplaced 4, replicas missing 5",
            ),
        ];
        for (u, want) in cases {
            assert_eq!(u.to_string(), want);
        }
    }
}
