//! A process kind that records, at every instance's start and end, on
//! which simulated machine it runs: two live instances of one child id on
//! different machines are caught the moment the second one starts, not at
//! the next poll.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hub_core::ChildId;
use hub_net::{Context, Process};

thread_local! {
    // madsim runs a whole simulation on one thread; a thread-local keeps
    // tests that run in parallel threads apart.
    static LIVE: RefCell<BTreeMap<ChildId, Vec<String>>> = const { RefCell::new(BTreeMap::new()) };
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A process that does nothing but witness where it runs.
#[derive(Debug)]
pub struct Witness {
    id: ChildId,
    machine: String,
}

impl Witness {
    /// Forgets everything witnessed (call at the start of a scenario).
    pub fn reset() {
        LIVE.with(|l| l.borrow_mut().clear());
        SEEN.with(|s| s.borrow_mut().clear());
    }

    /// Every moment so far at which one id ran on two machines.
    pub fn violations() -> Vec<String> {
        SEEN.with(|s| s.borrow().clone())
    }

    /// How many instances run now.
    pub fn live() -> usize {
        LIVE.with(|l| l.borrow().values().map(Vec::len).sum())
    }
}

impl Process for Witness {
    type Args = ();
    type Message = ();
    type Reply = String;
    type State = ();

    async fn init(ctx: Context<Self>, _args: (), _restored: Option<()>) -> Result<Self, String> {
        let id = ctx.id().clone();
        let machine = madsim::plugin::node().to_string();
        LIVE.with(|l| {
            let mut l = l.borrow_mut();
            let on = l.entry(id.clone()).or_default();
            if !on.is_empty() {
                let at = tokio::time::Instant::now();
                SEEN.with(|s| {
                    s.borrow_mut().push(format!(
                        "{id} started on machine {machine} while on {on:?} at {at:?}"
                    ))
                });
            }
            on.push(machine.clone());
        });
        Ok(Witness { id, machine })
    }

    async fn handle_cast(&mut self, _msg: ()) -> Result<(), String> {
        Ok(())
    }

    async fn handle_call(&mut self, _msg: ()) -> Result<String, String> {
        Ok(self.machine.clone())
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        LIVE.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(on) = l.get_mut(&self.id) {
                if let Some(k) = on.iter().position(|m| *m == self.machine) {
                    on.remove(k);
                }
                if on.is_empty() {
                    l.remove(&self.id);
                }
            }
        });
    }
}
