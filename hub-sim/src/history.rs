//! Client histories recorded in simulated time, and the checkers that
//! judge them after the run: linearizability of a counter, instance
//! lifetimes that must not overlap, and the final count against every
//! acknowledged add.
//!
//! The checkers know nothing of the runtime: they read what clients saw
//! (invoke and completion times, answers) and what instances recorded of
//! their own lives, so a bug that every node agrees on still fails them.

use std::collections::{BTreeMap, HashSet};

/// Simulated time in microseconds since the scenario began.
pub type Micros = u64;

/// An operation on a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterOp {
    /// Add to the count; answered with the count after it.
    Add(i64),
    /// Read the count.
    Get,
}

/// How a call ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with the counter's value after the operation.
    Ok {
        /// The value answered.
        value: i64,
        /// When the answer arrived.
        at: Micros,
        /// The machine whose instance answered.
        by: String,
    },
    /// An error or a timeout: it may or may not have taken effect.
    Unknown,
}

/// One client call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The counter's child id.
    pub key: String,
    /// What was asked.
    pub op: CounterOp,
    /// When it was sent.
    pub invoke: Micros,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every call of a run, in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    calls: Vec<Call>,
}

/// A handle on a call in flight, to complete it.
#[derive(Clone, Copy, Debug)]
pub struct Pending(usize);

impl History {
    /// Records a call sent at `at`; its outcome is unknown until completed.
    pub fn invoke(&mut self, key: &str, op: CounterOp, at: Micros) -> Pending {
        self.calls.push(Call {
            key: key.to_string(),
            op,
            invoke: at,
            outcome: Outcome::Unknown,
        });
        Pending(self.calls.len() - 1)
    }

    /// Records the answer to a call.
    pub fn complete(&mut self, p: Pending, outcome: Outcome) {
        if let Some(c) = self.calls.get_mut(p.0) {
            c.outcome = outcome;
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Adds answered so far, per counter.
    pub fn acked_adds(&self) -> BTreeMap<&str, i64> {
        let mut out: BTreeMap<&str, i64> = BTreeMap::new();
        for c in &self.calls {
            if let (CounterOp::Add(k), Outcome::Ok { .. }) = (c.op, &c.outcome) {
                *out.entry(c.key.as_str()).or_default() += k;
            }
        }
        out
    }
}

/// Checks every counter's calls for linearizability from `initial`: some
/// order of them, consistent with real time (a call answered before
/// another was sent comes first), explains every answer. Calls without an
/// answer may have taken effect at any moment after they were sent, or
/// never. Counters are checked one at a time (linearizability composes).
pub fn check_linearizable(calls: &[Call], initial: i64) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in calls {
        by_key.entry(c.key.as_str()).or_default().push(c);
    }
    for (key, calls) in by_key {
        Search::new(&calls, initial)
            .run()
            .map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(())
}

/// Largest number of search states explored per counter before giving up.
const STATE_BUDGET: usize = 2_000_000;

/// A call that was answered.
#[derive(Clone, Debug)]
struct Known {
    op: CounterOp,
    invoke: Micros,
    done: Micros,
    value: i64,
}

/// The Wing–Gong search with memoisation (as in Lowe's and Porcupine's
/// checkers), specialised to a counter: unanswered adds of one amount are
/// interchangeable and never constrain real time (their completion is at
/// infinity), so a state counts how many of each amount were applied
/// instead of which.
struct Search {
    known: Vec<Known>,
    /// Per amount: the invoke times of its unanswered adds, sorted.
    unknown: Vec<(i64, Vec<Micros>)>,
    initial: i64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    done: Vec<u64>,
    applied: Vec<u32>,
}

impl State {
    fn has(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }
}

impl Search {
    fn new(calls: &[&Call], initial: i64) -> Self {
        let mut known = Vec::new();
        let mut unknown: BTreeMap<i64, Vec<Micros>> = BTreeMap::new();
        for c in calls {
            match (&c.outcome, c.op) {
                (Outcome::Ok { value, at, .. }, op) => known.push(Known {
                    op,
                    invoke: c.invoke,
                    done: *at,
                    value: *value,
                }),
                (Outcome::Unknown, CounterOp::Add(k)) => {
                    unknown.entry(k).or_default().push(c.invoke)
                }
                // An unanswered read changes nothing and explains nothing.
                (Outcome::Unknown, CounterOp::Get) => {}
            }
        }
        known.sort_by_key(|k| (k.invoke, k.done));
        for v in unknown.values_mut() {
            v.sort_unstable();
        }
        Search {
            known,
            unknown: unknown.into_iter().collect(),
            initial,
        }
    }

    fn value(&self, s: &State) -> i64 {
        let mut v = self.initial;
        for (i, k) in self.known.iter().enumerate() {
            if let (true, CounterOp::Add(a)) = (s.has(i), k.op) {
                v = v.saturating_add(a);
            }
        }
        for ((amount, _), n) in self.unknown.iter().zip(&s.applied) {
            v = v.saturating_add(amount.saturating_mul(i64::from(*n)));
        }
        v
    }

    fn run(&self) -> Result<(), String> {
        let start = State {
            done: vec![0; self.known.len().div_ceil(64).max(1)],
            applied: vec![0; self.unknown.len()],
        };
        let mut seen: HashSet<State> = HashSet::new();
        let mut stack = vec![start];
        // The deepest state reached, to explain a failure.
        let mut deepest: (usize, Option<State>) = (0, None);
        while let Some(s) = stack.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if seen.len() > STATE_BUDGET {
                return Err(format!(
                    "undecided after {STATE_BUDGET} states ({} answered calls)",
                    self.known.len()
                ));
            }
            let linearized = (0..self.known.len()).filter(|&i| s.has(i)).count();
            if linearized == self.known.len() {
                return Ok(());
            }
            if linearized >= deepest.0 {
                deepest = (linearized, Some(s.clone()));
            }
            let value = self.value(&s);
            // No call may go before one that was answered before it was sent.
            let frontier = (0..self.known.len())
                .filter(|&i| !s.has(i))
                .map(|i| self.known[i].done)
                .min()
                .unwrap_or(Micros::MAX);
            for (i, k) in self.known.iter().enumerate() {
                if s.has(i) || k.invoke > frontier {
                    continue;
                }
                let after = match k.op {
                    CounterOp::Add(a) => value.saturating_add(a),
                    CounterOp::Get => value,
                };
                if after == k.value {
                    let mut next = s.clone();
                    next.done[i / 64] |= 1 << (i % 64);
                    stack.push(next);
                }
            }
            for (g, (_, invokes)) in self.unknown.iter().enumerate() {
                let eligible = invokes.iter().take_while(|t| **t <= frontier).count();
                if (s.applied[g] as usize) < eligible {
                    let mut next = s.clone();
                    next.applied[g] += 1;
                    stack.push(next);
                }
            }
        }
        Err(self.explain(deepest))
    }

    fn explain(&self, (n, s): (usize, Option<State>)) -> String {
        let Some(s) = s else {
            return "no call can go first".to_string();
        };
        let value = self.value(&s);
        let stuck: Vec<String> = self
            .known
            .iter()
            .enumerate()
            .filter(|(i, _)| !s.has(*i))
            .take(4)
            .map(|(_, k)| {
                format!(
                    "{:?} sent at {} µs answered {} at {} µs",
                    k.op, k.invoke, k.value, k.done
                )
            })
            .collect();
        format!(
            "not linearizable: after {n} of {} answered calls the count is \
             {value}, and none of the next fits: {}",
            self.known.len(),
            stuck.join("; ")
        )
    }
}

/// One instance's life: from its init to its end, on one machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Its child id.
    pub id: String,
    /// Its machine.
    pub machine: String,
    /// When its init ran.
    pub start: Micros,
    /// When it ended (`None`: it still runs).
    pub end: Option<Micros>,
}

/// Every moment two instances of one id lived at once, on any machines.
pub fn overlapping_lives(lives: &[Lifetime]) -> Vec<String> {
    let mut by_id: BTreeMap<&str, Vec<&Lifetime>> = BTreeMap::new();
    for l in lives {
        by_id.entry(l.id.as_str()).or_default().push(l);
    }
    let mut out = Vec::new();
    for (id, mut lives) in by_id {
        lives.sort_by_key(|l| l.start);
        // Sorted by start, an overlap always involves the longest-lived
        // earlier instance.
        let mut longest: Option<&Lifetime> = None;
        for l in lives {
            if let Some(p) = longest {
                let p_end = p.end.unwrap_or(Micros::MAX);
                if l.start < p_end {
                    out.push(format!(
                        "{id}: started on {} at {} µs while the instance on {} (from {} µs) lived",
                        l.machine, l.start, p.machine, p.start
                    ));
                }
                if l.end.unwrap_or(Micros::MAX) > p_end {
                    longest = Some(l);
                }
            } else {
                longest = Some(l);
            }
        }
    }
    out
}

/// Checks each counter's final value against what its clients saw: at
/// most every add tried (none applied twice), and at least every add
/// answered, except the answers `forgiven` names (a documented loss
/// window, e.g. adds answered just before their machine was killed).
pub fn check_final_counts(
    calls: &[Call],
    finals: &BTreeMap<String, i64>,
    initial: i64,
    forgiven: impl Fn(&Call) -> bool,
) -> Result<(), String> {
    let mut bounds: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for c in calls {
        let CounterOp::Add(k) = c.op else { continue };
        let b = bounds.entry(c.key.as_str()).or_default();
        b.1 += k;
        if matches!(c.outcome, Outcome::Ok { .. }) && !forgiven(c) {
            b.0 += k;
        }
    }
    for (key, (least, most)) in bounds {
        let Some(v) = finals.get(key) else {
            return Err(format!("{key}: no final count"));
        };
        let v = v - initial;
        if v < least {
            return Err(format!(
                "{key}: final count {v} lost adds: {least} answered and owed"
            ));
        }
        if v > most {
            return Err(format!(
                "{key}: final count {v} exceeds the {most} adds tried"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
