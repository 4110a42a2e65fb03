//! Concurrent clients of counters that record every call they make, with
//! its invoke and completion times in simulated time, in a [`History`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use hub_net::examples::{Counter, CounterMsg};
use hub_net::{CallError, Hub};

use crate::history::{CounterOp, History, Outcome};
use crate::tally::{now_micros, Tally, TallyMsg};
use crate::SimCluster;

/// How long a client waits for one answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Which counter kind the clients call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// `hub_net::examples::Counter`, the README's kind (its answers do not
    /// say which machine answered).
    Counter,
    /// [`Tally`], which records its lives and names the answering machine.
    Tally,
}

/// Clients of a fixed set of counters, and what they saw.
#[derive(Clone, Debug)]
pub struct Clients {
    keys: Arc<[String]>,
    kind: CounterKind,
    history: Arc<Mutex<History>>,
}

impl Clients {
    /// Clients of the counters `keys`, of `kind`.
    pub fn new(keys: Vec<String>, kind: CounterKind) -> Self {
        Clients {
            keys: keys.into(),
            kind,
            history: Arc::default(),
        }
    }

    /// The counters.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// What the clients saw so far.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `rounds` rounds of `width` calls at once, each from a random live
    /// node to a random counter, 70% adds of 1, the rest reads; each call
    /// is sent after a random delay of up to 20 ms so that their intervals
    /// overlap in every way. A round ends when all its calls have.
    pub async fn run(&self, c: &SimCluster, rng: &mut impl Rng, rounds: usize, width: usize) {
        for _ in 0..rounds {
            let alive = c.alive();
            if alive.is_empty() {
                return;
            }
            let mut calls = Vec::with_capacity(width);
            for _ in 0..width {
                let Some(hub) = c.hub(alive[rng.random_range(0..alive.len())]) else {
                    continue;
                };
                let key = self.keys[rng.random_range(0..self.keys.len())].clone();
                let op = if rng.random_bool(0.7) {
                    CounterOp::Add(1)
                } else {
                    CounterOp::Get
                };
                let delay = Duration::from_micros(rng.random_range(0..20_000));
                let me = self.clone();
                calls.push(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = me.call(&hub, &key, op).await;
                }));
            }
            for call in calls {
                // A call's task only records; it cannot fail.
                let _ = call.await;
            }
        }
    }

    /// One call through `hub`, recorded: its answer, or why there is none
    /// (then it may or may not have taken effect).
    pub async fn call(&self, hub: &Hub, key: &str, op: CounterOp) -> Result<i64, CallError> {
        let p = lock(&self.history).invoke(key, op, now_micros());
        let r = call(hub, self.kind, key, op).await;
        let outcome = match &r {
            Ok((value, by)) => Outcome::Ok {
                value: *value,
                at: now_micros(),
                by: by.clone(),
            },
            Err(_) => Outcome::Unknown,
        };
        lock(&self.history).complete(p, outcome);
        r.map(|(v, _)| v)
    }

    /// Reads every counter through `hub` (asked again while unanswered,
    /// as a read may be); the reads go into the history too.
    pub async fn read_all(&self, hub: &Hub) -> Result<BTreeMap<String, i64>, String> {
        let mut out = BTreeMap::new();
        for key in self.keys.iter() {
            let mut last = None;
            for _ in 0..5 {
                match self.call(hub, key, CounterOp::Get).await {
                    Ok(v) => {
                        out.insert(key.clone(), v);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let (false, Some(e)) = (out.contains_key(key), last) {
                return Err(format!("five reads of {key} failed, the last: {e}"));
            }
        }
        Ok(out)
    }
}

fn lock(h: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

/// One call of either kind.
async fn call(
    hub: &Hub,
    kind: CounterKind,
    key: &str,
    op: CounterOp,
) -> Result<(i64, String), CallError> {
    match kind {
        CounterKind::Counter => {
            let msg = match op {
                CounterOp::Add(k) => CounterMsg::Add(k),
                CounterOp::Get => CounterMsg::Get,
            };
            let v = hub.call::<Counter>(key, &msg, CALL_TIMEOUT).await?;
            Ok((v, String::new()))
        }
        CounterKind::Tally => {
            let msg = match op {
                CounterOp::Add(k) => TallyMsg::Add(k),
                CounterOp::Get => TallyMsg::Get,
            };
            hub.call::<Tally>(key, &msg, CALL_TIMEOUT).await
        }
    }
}
