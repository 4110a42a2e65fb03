//! A counter kind that records its instances' lives (start and end in
//! simulated time, and the machine) and says which machine answered each
//! call: what the history checkers of [`crate::history`] read.

use std::cell::RefCell;

use hub_net::{Context, Process};
use serde::{Deserialize, Serialize};

use crate::history::{Lifetime, Micros};

thread_local! {
    // madsim runs a whole simulation on one thread; a thread-local keeps
    // tests that run in parallel threads apart.
    static LIVES: RefCell<Vec<Lifetime>> = const { RefCell::new(Vec::new()) };
    static EPOCH: RefCell<Option<tokio::time::Instant>> = const { RefCell::new(None) };
}

/// Simulated time since [`Tally::reset`], in microseconds.
pub fn now_micros() -> Micros {
    let now = tokio::time::Instant::now();
    let epoch = EPOCH.with(|e| *e.borrow_mut().get_or_insert(now));
    now.duration_since(epoch).as_micros() as Micros
}

/// A counter that remembers where it lived.
#[derive(Debug)]
pub struct Tally {
    n: i64,
    life: usize,
    machine: String,
}

/// What a [`Tally`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TallyMsg {
    /// Add to the count; answered with the count after it.
    Add(i64),
    /// Read the count.
    Get,
}

impl Tally {
    /// Forgets every life recorded and restarts the clock (call at the
    /// start of a scenario).
    pub fn reset() {
        LIVES.with(|l| l.borrow_mut().clear());
        EPOCH.with(|e| *e.borrow_mut() = Some(tokio::time::Instant::now()));
    }

    /// Every instance's life so far.
    pub fn lives() -> Vec<Lifetime> {
        LIVES.with(|l| l.borrow().clone())
    }
}

impl Process for Tally {
    type Args = i64;
    type Message = TallyMsg;
    type Reply = (i64, String);
    type State = i64;

    async fn init(ctx: Context<Self>, start: i64, restored: Option<i64>) -> Result<Self, String> {
        let machine = madsim::plugin::node().to_string();
        let life = LIVES.with(|l| {
            let mut l = l.borrow_mut();
            l.push(Lifetime {
                id: ctx.id().to_string(),
                machine: machine.clone(),
                start: now_micros(),
                end: None,
            });
            l.len() - 1
        });
        Ok(Tally {
            n: restored.unwrap_or(start),
            life,
            machine,
        })
    }

    async fn handle_cast(&mut self, msg: TallyMsg) -> Result<(), String> {
        if let TallyMsg::Add(k) = msg {
            self.n = self.n.saturating_add(k);
        }
        Ok(())
    }

    async fn handle_call(&mut self, msg: TallyMsg) -> Result<(i64, String), String> {
        self.handle_cast(msg).await?;
        Ok((self.n, self.machine.clone()))
    }

    fn snapshot_state(&self) -> Option<i64> {
        Some(self.n)
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let end = now_micros();
        LIVES.with(|l| {
            if let Some(life) = l.borrow_mut().get_mut(self.life) {
                life.end = Some(end);
            }
        });
    }
}
