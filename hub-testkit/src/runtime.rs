//! A fake local process runtime: what a supervisor would do, instantly.

use std::collections::{BTreeMap, BTreeSet};

use hub_core::{ChildId, ChildSpec, ExitReason, Handle, LocalReport, StartError};

/// Runs "processes" as map entries. Kinds it knows start; the kind
/// `"failing"` (or args `b"fail"`) fails its init; any other kind is
/// unknown. Each process holds a counter as its state.
#[derive(Clone, Debug)]
pub struct FakeRuntime {
    kinds: BTreeSet<String>,
    running: BTreeMap<ChildId, (Handle, ChildSpec)>,
    next_handle: u64,
}

impl FakeRuntime {
    /// A runtime that knows `kinds` (plus `"failing"`).
    pub fn new(kinds: impl IntoIterator<Item = String>) -> Self {
        FakeRuntime {
            kinds: kinds.into_iter().collect(),
            running: BTreeMap::new(),
            next_handle: 1,
        }
    }

    /// Starts a process and reports the result.
    pub fn spawn(&mut self, spec: &ChildSpec) -> LocalReport {
        let id = spec.id.clone();
        if spec.kind == "failing" || &spec.args[..] == b"fail" {
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
        if let Some((h, _)) = self.running.get(&id) {
            // A supervisor refuses a second instance under one id.
            return LocalReport::Started { id, handle: *h };
        }
        let handle = Handle(self.next_handle);
        self.next_handle += 1;
        self.running.insert(id.clone(), (handle, spec.clone()));
        LocalReport::Started { id, handle }
    }

    /// Stops a process and reports its exit.
    pub fn stop(&mut self, id: &ChildId) -> LocalReport {
        self.running.remove(id);
        LocalReport::Exited {
            id: id.clone(),
            reason: ExitReason::Stopped,
        }
    }

    /// Makes a process exit on its own (e.g. a crash past its restart
    /// intensity); the caller reports it to the node.
    pub fn exit(&mut self, id: &ChildId, reason: ExitReason) -> Option<LocalReport> {
        self.running.remove(id).map(|_| LocalReport::Exited {
            id: id.clone(),
            reason,
        })
    }

    /// Ids of running processes, sorted.
    pub fn running(&self) -> impl Iterator<Item = (&ChildId, Handle)> {
        self.running.iter().map(|(id, (h, _))| (id, *h))
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
