//! Strict mode's rules as pure functions of the facts a node gathers: the
//! grant (rule 1), the takeover of a silent holder (rule 3) and the lease
//! (rule 4). The granter and holder code only gathers facts and applies
//! the verdicts, so each rule is tested alone, by table, below.

use std::time::Duration;

use crate::id::NodeId;
use crate::time::Time;

/// What a granter knows of another node when it decides whether promises
/// to it still bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Heard from within the takeover delay, same run: its promises bind.
    Alive,
    /// Unknown, left, or restarted since the promise: they no longer bind.
    Gone,
    /// Silent for the takeover delay: they no longer bind, and the
    /// granter's term for it must move on (rule 3).
    Silent,
}

impl Standing {
    fn binds(self) -> bool {
        self == Standing::Alive
    }
}

/// Rule 3's input for one node: what the membership says of it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Heard {
    /// The node is this granter itself.
    pub(super) is_me: bool,
    /// Strict mode is on (off: nothing binds).
    pub(super) strict: bool,
    /// Its membership entry: its incarnation, whether it left, when it
    /// was last heard. `None`: not a member.
    pub(super) member: Option<(u64, bool, Time)>,
    /// The incarnation a promise to it was made under, if any.
    pub(super) promised_to: Option<u64>,
    pub(super) now: Time,
    pub(super) takeover_after: Duration,
}

/// Rule 3: whether promises to a node still bind.
pub(super) fn standing(h: Heard) -> Standing {
    if h.is_me {
        return Standing::Alive;
    }
    let Some((incarnation, left, last_heard)) = h.member.filter(|_| h.strict) else {
        return Standing::Gone;
    };
    if left || h.promised_to.is_some_and(|p| incarnation > p) {
        return Standing::Gone;
    }
    if h.now.since(last_heard) < h.takeover_after {
        Standing::Alive
    } else {
        Standing::Silent
    }
}

/// Rule 1's input: what a granter knows when `claimant` claims a child.
#[derive(Clone, Debug)]
pub(super) struct ClaimFacts {
    /// The claimant is this granter itself.
    pub(super) claimant_is_me: bool,
    /// The claim's incarnation of the claimant.
    pub(super) incarnation: u64,
    /// The cluster holds 2 x quorum nodes or more.
    pub(super) oversize: bool,
    /// This granter started less than the takeover delay ago.
    pub(super) young: bool,
    /// This granter runs the child, or hands it to a node other than the
    /// claimant.
    pub(super) held_here: bool,
    /// This granter's promise of the child: to the claimant (with the
    /// incarnation it was made under) or to another node (with that
    /// node's standing, and whether the registry shows it running it).
    pub(super) promise: Option<Promise>,
    /// Other nodes with a registry row for the child that is not marked
    /// as moving, in registry order, with their standing.
    pub(super) holders: Vec<(NodeId, Standing)>,
    /// The promise table is full and holds no entry for this child.
    pub(super) full: bool,
}

/// A promise a granter already made of the claimed child.
#[derive(Clone, Debug)]
pub(super) enum Promise {
    /// To the claimant, under this incarnation.
    ToClaimant(u64),
    /// To another node.
    ToOther {
        /// The node.
        holder: NodeId,
        /// Its standing.
        standing: Standing,
        /// The node is this granter.
        is_me: bool,
        /// The registry shows it running the child.
        runs_it: bool,
    },
}

/// What rule 1 decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// The claim is granted (and the promise recorded).
    pub(super) granted: bool,
    /// Ask this holder whether it still claims the child: its release may
    /// have been lost.
    pub(super) ask: Option<NodeId>,
    /// Silent nodes whose lapse the verdict relied on: the granter's term
    /// for each moves on (rule 3), in this order.
    pub(super) revoke: Vec<NodeId>,
}

/// Rule 1: may the claimant run the child, per this granter?
pub(super) fn grant(f: &ClaimFacts) -> Verdict {
    let mut v = Verdict::default();
    if f.oversize || f.young || (!f.claimant_is_me && f.held_here) {
        return v;
    }
    match &f.promise {
        Some(Promise::ToClaimant(made_under)) if f.incarnation < *made_under => {
            // A late claim of the claimant's earlier run.
            return v;
        }
        Some(Promise::ToOther {
            holder,
            standing,
            is_me,
            runs_it,
        }) => {
            if standing.binds() {
                if !is_me && !runs_it {
                    v.ask = Some(holder.clone());
                }
                return v;
            }
            if *standing == Standing::Silent {
                v.revoke.push(holder.clone());
            }
        }
        _ => {}
    }
    for (holder, standing) in &f.holders {
        if standing.binds() {
            return v;
        }
        if *standing == Standing::Silent {
            v.revoke.push(holder.clone());
        }
    }
    v.granted = !f.full;
    v
}

/// Rule 4: when a holder's lease of a child runs out, from the times (ms)
/// of its granters' latest echoes that carry their grant's term: the
/// `need`-th newest plus the lease. `need` is the quorum less the holder's
/// own grant; with none needed the lease never runs out, and with fewer
/// echoes than needed it has run out already.
pub(super) fn lease_expiry(need: usize, mut echoes: Vec<u64>, lease: Duration) -> Time {
    if need == 0 {
        return Time::from_millis(u64::MAX);
    }
    if echoes.len() < need {
        return Time::ZERO;
    }
    echoes.sort_unstable_by(|a, b| b.cmp(a));
    Time::from_millis(echoes[need - 1]) + lease
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Duration = Duration::from_secs(6);

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn standing_golden_table() {
        use Standing::*;
        // (case, is_me, strict, member (incarnation, left, last heard ms),
        //  promised under, now ms, expected)
        type Row = (
            &'static str,
            bool,
            bool,
            Option<(u64, bool, u64)>,
            Option<u64>,
            u64,
            Standing,
        );
        let rows: [Row; 9] = [
            ("self always binds", true, true, None, None, 0, Alive),
            (
                "strict off: nothing binds",
                false,
                false,
                Some((1, false, 0)),
                None,
                0,
                Gone,
            ),
            ("not a member", false, true, None, None, 0, Gone),
            (
                "left",
                false,
                true,
                Some((1, true, 9_000)),
                None,
                9_000,
                Gone,
            ),
            (
                "restarted since the promise",
                false,
                true,
                Some((2, false, 9_000)),
                Some(1),
                9_000,
                Gone,
            ),
            (
                "same run, heard just now",
                false,
                true,
                Some((1, false, 9_000)),
                Some(1),
                9_000,
                Alive,
            ),
            (
                "heard V - 1 ms ago",
                false,
                true,
                Some((1, false, 3_001)),
                None,
                9_000,
                Alive,
            ),
            (
                "silent exactly V",
                false,
                true,
                Some((1, false, 3_000)),
                None,
                9_000,
                Silent,
            ),
            (
                "older promise, same node silent",
                false,
                true,
                Some((1, false, 0)),
                Some(1),
                9_000,
                Silent,
            ),
        ];
        for (case, is_me, strict, member, promised_to, now, want) in rows {
            let got = standing(Heard {
                is_me,
                strict,
                member: member.map(|(i, l, h)| (i, l, at(h))),
                promised_to,
                now: at(now),
                takeover_after: V,
            });
            assert_eq!(got, want, "{case}");
        }
    }

    fn facts() -> ClaimFacts {
        ClaimFacts {
            claimant_is_me: false,
            incarnation: 5,
            oversize: false,
            young: false,
            held_here: false,
            promise: None,
            holders: Vec::new(),
            full: false,
        }
    }

    fn other(standing: Standing, runs_it: bool) -> Option<Promise> {
        Some(Promise::ToOther {
            holder: NodeId::new("h"),
            standing,
            is_me: false,
            runs_it,
        })
    }

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    #[test]
    fn grant_golden_table() {
        use Standing::*;
        let granted = |revoke: &[&str]| Verdict {
            granted: true,
            ask: None,
            revoke: revoke.iter().map(|s| n(s)).collect(),
        };
        let refused = || Verdict::default();
        let rows: Vec<(&str, ClaimFacts, Verdict)> = vec![
            ("a fresh claim", facts(), granted(&[])),
            (
                "too many nodes",
                ClaimFacts {
                    oversize: true,
                    ..facts()
                },
                refused(),
            ),
            (
                "a granter that just started",
                ClaimFacts {
                    young: true,
                    ..facts()
                },
                refused(),
            ),
            (
                "the granter runs it",
                ClaimFacts {
                    held_here: true,
                    ..facts()
                },
                refused(),
            ),
            (
                "the granter's own claim of a child it holds",
                ClaimFacts {
                    claimant_is_me: true,
                    held_here: true,
                    ..facts()
                },
                granted(&[]),
            ),
            (
                "renewed by the same run",
                ClaimFacts {
                    promise: Some(Promise::ToClaimant(5)),
                    ..facts()
                },
                granted(&[]),
            ),
            (
                "a late claim of an earlier run",
                ClaimFacts {
                    promise: Some(Promise::ToClaimant(6)),
                    ..facts()
                },
                refused(),
            ),
            (
                "promised to a live node that runs it",
                ClaimFacts {
                    promise: other(Alive, true),
                    ..facts()
                },
                refused(),
            ),
            (
                "promised to a live node with no row: ask it",
                ClaimFacts {
                    promise: other(Alive, false),
                    ..facts()
                },
                Verdict {
                    ask: Some(n("h")),
                    ..refused()
                },
            ),
            (
                "promised to a gone node",
                ClaimFacts {
                    promise: other(Gone, true),
                    ..facts()
                },
                granted(&[]),
            ),
            (
                "promised to a silent node: its term moves on",
                ClaimFacts {
                    promise: other(Silent, true),
                    ..facts()
                },
                granted(&["h"]),
            ),
            (
                "a live holder in the registry",
                ClaimFacts {
                    holders: vec![(n("x"), Gone), (n("y"), Alive)],
                    ..facts()
                },
                refused(),
            ),
            (
                "only gone and silent holders",
                ClaimFacts {
                    holders: vec![(n("x"), Silent), (n("y"), Gone), (n("z"), Silent)],
                    ..facts()
                },
                granted(&["x", "z"]),
            ),
            (
                "a silent promise, then a live holder: refused, the silence still counted",
                ClaimFacts {
                    promise: other(Silent, true),
                    holders: vec![(n("y"), Alive)],
                    ..facts()
                },
                Verdict {
                    revoke: vec![n("h")],
                    ..refused()
                },
            ),
            (
                "the promise table is full",
                ClaimFacts {
                    full: true,
                    ..facts()
                },
                refused(),
            ),
        ];
        for (case, f, want) in rows {
            assert_eq!(grant(&f), want, "{case}");
        }
    }

    #[test]
    fn lease_golden_table() {
        let lease = Duration::from_secs(3);
        // (case, need, echo times ms, expiry ms)
        let rows: [(&str, usize, Vec<u64>, u64); 5] = [
            ("no grant needed: never expires", 0, vec![], u64::MAX),
            ("too few echoes: expired", 2, vec![1_000], 0),
            (
                "one needed: the newest echo",
                1,
                vec![1_000, 4_000, 2_000],
                7_000,
            ),
            (
                "two needed: the second newest",
                2,
                vec![1_000, 4_000, 2_000],
                5_000,
            ),
            (
                "all needed: the oldest",
                3,
                vec![1_000, 4_000, 2_000],
                4_000,
            ),
        ];
        for (case, need, echoes, want) in rows {
            let got = lease_expiry(need, echoes, lease);
            let want = if want == u64::MAX {
                Time::from_millis(u64::MAX)
            } else {
                at(want)
            };
            assert_eq!(got, want, "{case}");
        }
    }
}
