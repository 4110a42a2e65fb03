//! Event hooks: handlers registered per event kind under a unique id, run
//! in descending priority on a task of their own, cancellable; and the
//! broadcast stream of [`crate::Hub::subscribe`].

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use hub_core::{Event, EventKind};

use crate::metrics::Metrics;

/// A hook's handler. It runs on the node's hook task, one event at a
/// time: keep it short, or hand the work to a task of your own.
pub type HookFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// Events waiting for the hook task by default
/// ([`crate::HubBuilder::hook_queue`]); past this, events are counted as
/// overflowed ([`crate::Hub::hook_overflows`]) and warned about.
pub const HOOK_QUEUE: usize = 65_536;

/// Why a hook could not be registered or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HookError {
    /// A hook of that id is already registered for that kind.
    #[error("a hook with id {id:?} is already registered for {kind:?}")]
    Duplicate {
        /// Event kind.
        kind: EventKind,
        /// The id.
        id: String,
    },
    /// No hook of that id is registered for that kind.
    #[error("no hook with id {id:?} is registered for {kind:?}")]
    NotFound {
        /// Event kind.
        kind: EventKind,
        /// The id.
        id: String,
    },
}

struct Hook {
    id: String,
    priority: i32,
    run: HookFn,
}

type Table = BTreeMap<EventKind, Vec<Hook>>;

/// Where the node's events go: every subscriber's stream and the hooks.
#[derive(Clone)]
pub(crate) struct Events {
    stream: broadcast::Sender<Event>,
    table: Arc<Mutex<Table>>,
    /// Bit `k` set while a hook of `EventKind` number `k` is registered:
    /// only those events are queued.
    wanted: Arc<AtomicU32>,
    queue: mpsc::Sender<Event>,
    overflowed: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("wanted", &self.wanted.load(Ordering::Relaxed))
            .field("overflowed", &self.overflowed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The sink and the hook task to spawn, which ends with `cancel` once
    /// it has run the events already queued.
    pub(crate) fn new(
        cancel: CancellationToken,
        queue_len: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (stream, _) = broadcast::channel(4096);
        let (queue, rx) = mpsc::channel(queue_len.max(1));
        let table = Arc::new(Mutex::new(Table::new()));
        let events = Events {
            stream,
            table: table.clone(),
            wanted: Arc::new(AtomicU32::new(0)),
            queue,
            overflowed: Arc::new(AtomicU64::new(0)),
            metrics,
        };
        (events, run(table, rx, cancel))
    }

    /// Hands an event to the subscribers and the hooks; never blocks.
    pub(crate) fn emit(&self, event: Event) {
        self.metrics.event(&event);
        if self.wanted.load(Ordering::Acquire) & bit(event.kind()) != 0 {
            if let Err(mpsc::error::TrySendError::Full(e)) = self.queue.try_send(event.clone()) {
                let n = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    warn!(
                        kind = ?e.kind(),
                        overflowed = n,
                        "hooks are too slow: events dropped for them"
                    );
                }
            }
        }
        let _ = self.stream.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.stream.subscribe()
    }

    pub(crate) fn register(
        &self,
        kind: EventKind,
        id: String,
        priority: i32,
        run: HookFn,
    ) -> Result<(), HookError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let hooks = table.entry(kind).or_default();
        if hooks.iter().any(|h| h.id == id) {
            return Err(HookError::Duplicate { kind, id });
        }
        // After every hook of a higher or equal priority: ties run in the
        // order they were registered.
        let at = hooks.partition_point(|h| h.priority >= priority);
        hooks.insert(at, Hook { id, priority, run });
        self.wanted.fetch_or(bit(kind), Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn cancel(&self, kind: EventKind, id: &str) -> Result<(), HookError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let not_found = || HookError::NotFound {
            kind,
            id: id.to_string(),
        };
        let hooks = table.get_mut(&kind).ok_or_else(not_found)?;
        let at = hooks
            .iter()
            .position(|h| h.id == id)
            .ok_or_else(not_found)?;
        hooks.remove(at);
        if hooks.is_empty() {
            self.wanted.fetch_and(!bit(kind), Ordering::AcqRel);
        }
        Ok(())
    }

    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

fn bit(kind: EventKind) -> u32 {
    1 << (kind as u32)
}

/// The hook task: runs each event's hooks in order until `cancel`, then
/// the events still queued.
async fn run(table: Arc<Mutex<Table>>, mut rx: mpsc::Receiver<Event>, cancel: CancellationToken) {
    loop {
        let event = select! {
            e = rx.recv() => e,
            _ = cancel.cancelled() => break,
        };
        let Some(event) = event else { return };
        dispatch(&table, &event);
    }
    while let Ok(event) = rx.try_recv() {
        dispatch(&table, &event);
    }
}

fn dispatch(table: &Mutex<Table>, event: &Event) {
    // Handlers run outside the lock, so one may register or cancel hooks.
    let hooks: Vec<(String, HookFn)> = {
        let table = table.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&event.kind()) {
            Some(hooks) => hooks
                .iter()
                .map(|h| (h.id.clone(), h.run.clone()))
                .collect(),
            None => return,
        }
    };
    for (id, run) in hooks {
        if std::panic::catch_unwind(AssertUnwindSafe(|| run(event))).is_err() {
            error!(hook = %id, kind = ?event.kind(), "hook panicked");
        }
    }
}
