//! Strict mode, the granter's side: rules 1 and 3 (grants, promises and
//! terms) and the beats it echoes for leases.

use tracing::{debug, info, warn};

use super::rules::{self, ClaimFacts, Heard, Promise, Standing};
use super::MAX_EXTRA_PROMISES;
use crate::id::{ChildId, Incarnation, NodeId};
use crate::membership::Status;
use crate::node::Node;
use crate::protocol::{Beat, Echo, Grants, Message, Term};
use crate::time::Time;

impl Node {
    /// This node's term for `holder`.
    pub(super) fn term_for(&self, holder: &NodeId) -> Term {
        let revoked = self
            .strict
            .as_ref()
            .and_then(|s| s.revoked.get(holder))
            .map_or(0, |r| r.0);
        Term {
            incarnation: self.cfg.incarnation,
            revoked,
        }
    }

    /// Rule 3's facts about `holder`, for a promise made while it ran
    /// `incarnation`.
    fn standing(&self, holder: &NodeId, incarnation: Option<Incarnation>) -> Standing {
        rules::standing(Heard {
            is_me: *holder == self.me,
            strict: self.strict.is_some(),
            member: self
                .membership
                .get(holder)
                .map(|m| (m.info.incarnation, m.status == Status::Left, m.last_heard)),
            promised_to: incarnation,
            now: self.now,
            takeover_after: self
                .strict_cfg()
                .map_or(std::time::Duration::ZERO, |s| s.takeover_after()),
        })
    }

    /// A silent node's promises lapsed: this granter's term for it moves
    /// on (once per silence), so its old grants stop counting.
    fn revoke(&mut self, holder: &NodeId) {
        let Some(heard) = self.membership.get(holder).map(|m| m.last_heard) else {
            return;
        };
        if let Some(s) = self.strict.as_mut() {
            let r = s.revoked.entry(holder.clone()).or_insert((0, Time::ZERO));
            if r.1 != heard || r.0 == 0 {
                r.0 += 1;
                r.1 = heard;
                info!(%holder, revoked = r.0, "strict: promises of a silent node lapse");
            }
        }
    }

    /// Whether the cluster is too large for the configured quorum.
    pub(super) fn oversize(&mut self) -> bool {
        let Some(cfg) = self.strict_cfg() else {
            return false;
        };
        let over = self.ring.len() >= 2 * cfg.quorum;
        if let Some(s) = self.strict.as_mut() {
            if over && !s.warned_oversize {
                warn!(
                    nodes = self.ring.len(),
                    quorum = cfg.quorum,
                    "strict: the cluster holds 2 x quorum nodes or more; no grants"
                );
            }
            s.warned_oversize = over;
        }
        over
    }

    /// Whether this node started less than `takeover_after` ago: it grants
    /// nothing yet and does not count itself as a granter.
    pub(super) fn is_young(&self) -> bool {
        self.strict
            .as_ref()
            .is_some_and(|s| self.now < s.young_until)
    }

    /// Grants a node counts for itself: one, once it is no longer young.
    pub(super) fn own_grant(&self) -> usize {
        usize::from(!self.is_young())
    }

    /// Rule 1: may `claimant` run `id`, per this node? Records the promise.
    pub(super) fn grant(
        &mut self,
        claimant: &NodeId,
        incarnation: Incarnation,
        id: &ChildId,
    ) -> bool {
        let granted = self.decide_grant(claimant, incarnation, id);
        if granted {
            self.counters.strict_grants += 1;
        } else {
            self.counters.strict_refusals += 1;
        }
        granted
    }

    /// Gathers rule 1's facts, asks the rule, and applies its verdict.
    pub(super) fn decide_grant(
        &mut self,
        claimant: &NodeId,
        incarnation: Incarnation,
        id: &ChildId,
    ) -> bool {
        let oversize = self.oversize();
        let young = self.is_young();
        let handed_elsewhere = self
            .children
            .outbound
            .get(id)
            .is_some_and(|o| o.to != *claimant);
        let promise = self
            .strict
            .as_ref()
            .and_then(|s| s.promises.get(id).cloned())
            .map(|(holder, inc)| {
                if holder == *claimant {
                    Promise::ToClaimant(inc)
                } else {
                    Promise::ToOther {
                        standing: self.standing(&holder, Some(inc)),
                        is_me: holder == self.me,
                        runs_it: self.runs_here(&holder, id),
                        holder,
                    }
                }
            });
        let holders = self
            .registry
            .lookup_ref(id.as_str())
            .iter()
            .map(|(n, _)| n)
            .filter(|n| *n != claimant)
            .filter(|n| {
                self.registry
                    .row(n, id.as_str())
                    .is_none_or(|r| r.moving_to.is_none())
            })
            .map(|n| (n.clone(), self.standing(n, None)))
            .collect();
        let cap = self.registry.len() + MAX_EXTRA_PROMISES;
        let full = self
            .strict
            .as_ref()
            .is_none_or(|s| !s.promises.contains_key(id) && s.promises.len() >= cap);
        let verdict = rules::grant(&ClaimFacts {
            claimant_is_me: *claimant == self.me,
            incarnation,
            oversize,
            young,
            held_here: self.children.local.contains_key(id) || handed_elsewhere,
            promise,
            holders,
            full,
        });
        for holder in &verdict.revoke {
            self.revoke(holder);
        }
        if let (Some(holder), Some(s)) = (verdict.ask, self.strict.as_mut()) {
            s.ask.entry(holder).or_default().push(id.clone());
        }
        if verdict.granted {
            if let Some(s) = self.strict.as_mut() {
                s.promises
                    .insert(id.clone(), (claimant.clone(), incarnation));
            }
        }
        verdict.granted
    }

    pub(in crate::node) fn on_claim(
        &mut self,
        from: &NodeId,
        seq: u64,
        at: u64,
        incarnation: Incarnation,
        ids: Vec<ChildId>,
    ) {
        if self.strict.is_none() {
            return;
        }
        self.record_beat(from, incarnation, at);
        let mut granted = Vec::new();
        let mut refused = Vec::new();
        for id in ids {
            if self.grant(from, incarnation, &id) {
                granted.push(id);
            } else {
                refused.push(id);
            }
        }
        let term = self.term_for(from);
        let grants = Grants {
            seq,
            at,
            incarnation,
            term,
            granted,
            refused,
        };
        self.send(from.clone(), Message::Grants(grants));
    }

    pub(in crate::node) fn on_release(&mut self, from: &NodeId, ids: Vec<ChildId>) {
        let Some(s) = self.strict.as_mut() else {
            return;
        };
        for id in ids {
            if s.promises.get(&id).is_some_and(|(n, _)| n == from) {
                s.promises.remove(&id);
            }
        }
    }

    pub(super) fn record_beat(&mut self, from: &NodeId, inc: Incarnation, at: u64) {
        if let Some(s) = self.strict.as_mut() {
            let b = s.beats.entry(from.clone()).or_insert((inc, at));
            if b.0 == inc {
                b.1 = b.1.max(at);
            } else {
                *b = (inc, at);
            }
        }
    }

    /// The lease part of a heartbeat to `to`.
    pub(in crate::node) fn beat_for(&self, to: &NodeId) -> Option<Beat> {
        let s = self.strict.as_ref()?;
        Some(Beat {
            at: self.now.as_millis(),
            echo: s.beats.get(to).map(|&(incarnation, at)| Echo {
                at,
                incarnation,
                term: self.term_for(to),
            }),
        })
    }

    pub(in crate::node) fn on_beat(&mut self, from: &NodeId, incarnation: Incarnation, beat: Beat) {
        self.record_beat(from, incarnation, beat.at);
        if let Some(echo) = beat.echo {
            self.record_echo(from, echo);
        }
    }

    /// Keeps the newest echo of `from`; a new term voids its grants at
    /// once, so leases are checked now.
    pub(super) fn record_echo(&mut self, from: &NodeId, echo: Echo) {
        if echo.incarnation != self.cfg.incarnation {
            return;
        }
        let now = self.now;
        let Some(s) = self.strict.as_mut() else {
            return;
        };
        match s.echoes.get_mut(from) {
            Some(e) if e.term == echo.term => e.at = e.at.max(echo.at),
            Some(e) => {
                debug!(peer = %from, "strict: granter's term changed");
                *e = echo;
                s.fence_at = Some(now);
            }
            None => {
                s.echoes.insert(from.clone(), echo);
            }
        }
    }
}
