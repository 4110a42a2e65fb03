//! A fake local process runtime: what a supervisor would do, instantly.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hub_core::{ChildId, ChildSpec, ExitReason, Handle, LocalReport, StartError};

/// One fake process: its handle, spec and state (a counter).
#[derive(Clone, Debug)]
struct Proc {
    handle: Handle,
    /// The process's whole state: bumped by [`FakeRuntime::bump`], handed
    /// over as 8 little-endian bytes, restored from them.
    counter: u64,
    /// Snapshotted for a handover: it takes no more work until resumed.
    paused: bool,
}

/// Runs "processes" as map entries. Kinds it knows start; the kind
/// `"failing"` (or args `b"fail"`), and ids marked with
/// [`FakeRuntime::refuse`], fail their init; any other kind is unknown.
/// Each process holds a counter as its state.
#[derive(Clone, Debug)]
pub struct FakeRuntime {
    kinds: BTreeSet<String>,
    running: BTreeMap<ChildId, Proc>,
    refused: BTreeSet<ChildId>,
    next_handle: u64,
}

impl FakeRuntime {
    /// A runtime that knows `kinds` (plus `"failing"`).
    pub fn new(kinds: impl IntoIterator<Item = String>) -> Self {
        FakeRuntime {
            kinds: kinds.into_iter().collect(),
            running: BTreeMap::new(),
            refused: BTreeSet::new(),
            next_handle: 1,
        }
    }

    /// Starts a process (from a handed-over counter, if any) and reports
    /// the result.
    pub fn spawn(&mut self, spec: &ChildSpec, restore: Option<&Bytes>) -> LocalReport {
        let id = spec.id.clone();
        if spec.kind == "failing" || &spec.args[..] == b"fail" || self.refused.contains(&id) {
            return LocalReport::StartFailed {
                id,
                error: StartError::InitFailed("init refused".into()),
            };
        }
        if !self.kinds.contains(&spec.kind) {
            return LocalReport::StartFailed {
                id,
                error: StartError::UnknownKind(spec.kind.clone()),
            };
        }
        if let Some(p) = self.running.get(&id) {
            // A supervisor refuses a second instance under one id.
            return LocalReport::Started {
                id,
                handle: p.handle,
            };
        }
        let counter = match restore.map(|b| <[u8; 8]>::try_from(&b[..])) {
            Some(Ok(bytes)) => u64::from_le_bytes(bytes),
            Some(Err(_)) => {
                return LocalReport::StartFailed {
                    id,
                    error: StartError::InitFailed("bad state".into()),
                }
            }
            None => 0,
        };
        let handle = Handle(self.next_handle);
        self.next_handle += 1;
        self.running.insert(
            id.clone(),
            Proc {
                handle,
                counter,
                paused: false,
            },
        );
        LocalReport::Started { id, handle }
    }

    /// Stops a process and reports its exit, with its final counter when
    /// the stop is a move (`final_state`), as a real supervisor does.
    pub fn stop(&mut self, id: &ChildId, final_state: bool) -> LocalReport {
        let p = self.running.remove(id);
        LocalReport::Exited {
            id: id.clone(),
            reason: ExitReason::Stopped,
            state: p
                .filter(|_| final_state)
                .map(|p| Bytes::copy_from_slice(&p.counter.to_le_bytes())),
        }
    }

    /// Snapshots a process for a handover and pauses it.
    pub fn snapshot(&mut self, id: &ChildId) -> LocalReport {
        let state = self.running.get_mut(id).map(|p| {
            p.paused = true;
            Bytes::copy_from_slice(&p.counter.to_le_bytes())
        });
        LocalReport::State {
            id: id.clone(),
            state,
        }
    }

    /// A crash-recovery snapshot of a running process (it keeps working):
    /// its counter and the report for the node.
    pub fn checkpoint(&self, id: &ChildId) -> Option<(u64, LocalReport)> {
        let p = self.running.get(id)?;
        let state = Bytes::copy_from_slice(&p.counter.to_le_bytes());
        let report = LocalReport::Snapshot {
            id: id.clone(),
            state,
        };
        Some((p.counter, report))
    }

    /// Lets a paused process work again.
    pub fn resume(&mut self, id: &ChildId) {
        if let Some(p) = self.running.get_mut(id) {
            p.paused = false;
        }
    }

    /// One unit of work for `id`: its counter goes up and the new value is
    /// returned; `None` if it does not run here or is paused (a real
    /// caller would get a retryable error).
    pub fn bump(&mut self, id: &str) -> Option<u64> {
        let p = self.running.get_mut(id).filter(|p| !p.paused)?;
        p.counter += 1;
        Some(p.counter)
    }

    /// The counter of `id`, if it runs here.
    pub fn counter(&self, id: &str) -> Option<u64> {
        self.running.get(id).map(|p| p.counter)
    }

    /// Makes every later start of `id` here fail (e.g. a node that cannot
    /// take it over).
    pub fn refuse(&mut self, id: impl Into<ChildId>) {
        self.refused.insert(id.into());
    }

    /// Makes a process exit on its own (e.g. a crash past its restart
    /// intensity); the caller reports it to the node.
    pub fn exit(&mut self, id: &ChildId, reason: ExitReason) -> Option<LocalReport> {
        self.running.remove(id).map(|_| LocalReport::Exited {
            id: id.clone(),
            reason,
            state: None,
        })
    }

    /// Ids of running processes, sorted.
    pub fn running(&self) -> impl Iterator<Item = (&ChildId, Handle)> {
        self.running.iter().map(|(id, p)| (id, p.handle))
    }

    /// Whether `id` runs here.
    pub fn is_running(&self, id: &str) -> bool {
        self.running.contains_key(id)
    }

    /// Kills everything (the node crashed).
    pub fn kill_all(&mut self) {
        self.running.clear();
    }
}
