//! Local supervision: each child runs as a tokio task that restarts its
//! process per the restart policy, within `max_restarts` in `max_seconds`
//! (OTP intensity), and reports to the node task.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info_span, warn, Instrument};

use hub_core::{
    ChildId, ChildSpec, ExitReason, Handle, LocalReport, NodeId, RestartPolicy, StartError,
};

use crate::context::Seed;
use crate::error::CallError;
use crate::hub::WeakHub;
use crate::process::{Instance, Kinds, Terminate};
use crate::snapshot::SnapshotPolicy;

/// Restart intensity and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Restarts allowed within `max_seconds` (default 3).
    pub max_restarts: usize,
    /// The intensity window (default 5 s).
    pub max_seconds: Duration,
    /// Children per node (default unlimited).
    pub max_children: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            max_children: None,
        }
    }
}

/// A request to a running child.
pub(crate) enum Envelope {
    Cast(Bytes),
    /// A message the child sent itself, from its instance number `.0`.
    Timer(u64, Bytes),
    /// Look at the stop flag ([`crate::Context::stop`]).
    Wake,
    Call(Bytes, oneshot::Sender<Result<Bytes, CallError>>),
    /// Snapshot for a handover, then pause until `Resume` or `Stop`.
    Handover(oneshot::Sender<Option<Bytes>>),
    Resume,
    Role(hub_core::Role),
    /// Stop; with `true`, report the final state (the child moves and its
    /// new owner starts from it).
    Stop(Terminate, bool),
}

const MAILBOX: usize = 1024;

/// The node's children.
pub(crate) struct Supervisor {
    kinds: Kinds,
    limits: Limits,
    children: BTreeMap<ChildId, flume::Sender<Envelope>>,
    reports: mpsc::UnboundedSender<LocalReport>,
    next_handle: Arc<std::sync::atomic::AtomicU64>,
    node: NodeId,
    /// Given to every child's [`crate::Context`]; weak, so children do not
    /// keep the node alive.
    hub: WeakHub,
}

impl Supervisor {
    pub(crate) fn new(
        kinds: Kinds,
        limits: Limits,
        reports: mpsc::UnboundedSender<LocalReport>,
        node: NodeId,
        hub: WeakHub,
    ) -> Self {
        Supervisor {
            kinds,
            limits,
            children: BTreeMap::new(),
            reports,
            next_handle: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            node,
            hub,
        }
    }

    /// Starts a child; the result comes as a report.
    pub(crate) fn spawn(&mut self, spec: Arc<ChildSpec>, restore: Option<Bytes>) {
        let id = spec.id.clone();
        let fail = |error| LocalReport::StartFailed {
            id: id.clone(),
            error,
        };
        let Some(factory) = self.kinds.get(&spec.kind) else {
            let _ = self
                .reports
                .send(fail(StartError::UnknownKind(spec.kind.clone())));
            return;
        };
        if self.children.contains_key(&id) {
            warn!(child = %id, "spawn of a child that already runs here");
            return;
        }
        if self
            .limits
            .max_children
            .is_some_and(|m| self.children.len() >= m)
        {
            let _ = self
                .reports
                .send(fail(StartError::MaxChildren(self.node.as_str().into())));
            return;
        }
        let (tx, rx) = flume::bounded(MAILBOX);
        let seed = Seed {
            id: id.clone(),
            node: self.node.clone(),
            role: Arc::new(std::sync::Mutex::new(None)),
            mailbox: tx.downgrade(),
            hub: self.hub.clone(),
            instance: 0,
        };
        self.children.insert(id.clone(), tx);
        let run = ChildRun {
            seed,
            spec: spec.clone(),
            snapshots: self.kinds.snapshot_policy(&spec.kind),
            factory,
            limits: self.limits,
            reports: self.reports.clone(),
            handles: self.next_handle.clone(),
        };
        let span = info_span!("child", node = %self.node, id = %id);
        tokio::spawn(run.run(rx, restore).instrument(span));
    }

    /// The child task reported its final exit: forget its mailbox.
    pub(crate) fn forget(&mut self, id: &ChildId) {
        self.children.remove(id);
    }

    /// Asks a child to stop; it reports `Exited` when done, with its final
    /// state if `final_state`.
    pub(crate) fn stop(&mut self, id: &ChildId, reason: Terminate, final_state: bool) {
        match self.children.get(id) {
            Some(tx) => {
                if tx.try_send(Envelope::Stop(reason, final_state)).is_err() {
                    // Mailbox full or task gone: the task ends on its own.
                    warn!(child = %id, "stop could not be queued");
                }
            }
            None => {
                let _ = self.reports.send(LocalReport::Exited {
                    id: id.clone(),
                    reason: ExitReason::Stopped,
                    state: None,
                });
            }
        }
    }

    /// Queues `env` for a local child; on failure the envelope comes back
    /// so a waiting caller can be told why.
    pub(crate) fn deliver(&self, id: &ChildId, env: Envelope) -> Result<(), (CallError, Envelope)> {
        let Some(tx) = self.children.get(id) else {
            return Err((CallError::NotFound, env));
        };
        tx.try_send(env).map_err(|e| match e {
            flume::TrySendError::Full(env) => (CallError::Timeout, env),
            flume::TrySendError::Disconnected(env) => (CallError::NotFound, env),
        })
    }

    /// Asks every child to stop (node shutdown); does not wait.
    pub(crate) fn stop_all(&mut self) {
        for tx in self.children.values() {
            let _ = tx.try_send(Envelope::Stop(Terminate::Stopped, false));
        }
    }
}

struct ChildRun {
    seed: Seed,
    spec: Arc<ChildSpec>,
    snapshots: Option<SnapshotPolicy>,
    factory: Arc<crate::process::Factory>,
    limits: Limits,
    reports: mpsc::UnboundedSender<LocalReport>,
    handles: Arc<std::sync::atomic::AtomicU64>,
}

/// How an instance ended. Processes end only by a stop or a crash; a
/// closed mailbox means the node itself is going away.
enum Exit {
    /// With the final state, when the stop asked for it.
    Stopped(Option<Bytes>),
    /// It said its work is done ([`crate::Process::finished`]).
    Normal,
    Crashed(String),
}

impl ChildRun {
    fn report(&self, r: LocalReport) {
        let _ = self.reports.send(r);
    }

    async fn run(mut self, mut rx: flume::Receiver<Envelope>, restore: Option<Bytes>) {
        let id = self.spec.id.clone();
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut first = true;
        // The state a crash restart begins from, when the kind opts in.
        let mut last = restore;
        let from_last = self.snapshots.is_some_and(|p| p.restart_from_snapshot);
        // A normal end restarts clean, whatever the policy.
        let mut crashed = false;
        loop {
            self.seed.instance += 1;
            let restore = if first || (from_last && crashed) {
                last.clone()
            } else {
                None
            };
            let restored = restore.is_some();
            let init = (self.factory)(self.seed.clone(), self.spec.args.clone(), restore);
            let instance = match AssertUnwindSafe(init).catch_unwind().await {
                Ok(Ok(i)) => Some(i),
                Ok(Err(e)) if first => {
                    return self.report(LocalReport::StartFailed {
                        id,
                        error: StartError::InitFailed(e),
                    });
                }
                Err(_) if first => {
                    return self.report(LocalReport::StartFailed {
                        id,
                        error: StartError::InitFailed("init panicked".into()),
                    });
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "restart init failed");
                    None
                }
                Err(_) => None,
            };
            let exit = match instance {
                Some(mut inst) => {
                    let handle = Handle(
                        self.handles
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    );
                    self.report(if first {
                        LocalReport::Started {
                            id: id.clone(),
                            handle,
                        }
                    } else {
                        LocalReport::Restarted {
                            id: id.clone(),
                            handle,
                        }
                    });
                    first = false;
                    self.serve(inst.as_mut(), &mut rx, &mut last, restored)
                        .await
                }
                None => Exit::Crashed("init failed on restart".into()),
            };
            let mut state = None;
            crashed = matches!(exit, Exit::Crashed(_));
            let reason = match exit {
                Exit::Stopped(last) => {
                    state = last;
                    ExitReason::Stopped
                }
                Exit::Normal if self.spec.restart != RestartPolicy::Permanent => {
                    debug!("finished");
                    ExitReason::Normal
                }
                Exit::Crashed(r) if self.spec.restart == RestartPolicy::Temporary => {
                    ExitReason::Crashed(r)
                }
                Exit::Crashed(_) | Exit::Normal => {
                    let now = Instant::now();
                    restarts.push_back(now);
                    while restarts
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > self.limits.max_seconds)
                    {
                        restarts.pop_front();
                    }
                    if restarts.len() > self.limits.max_restarts {
                        ExitReason::Failed(format!(
                            "more than {} restarts in {:?}",
                            self.limits.max_restarts, self.limits.max_seconds
                        ))
                    } else {
                        debug!("restarting");
                        continue;
                    }
                }
            };
            return self.report(LocalReport::Exited { id, reason, state });
        }
    }
}

impl ChildRun {
    /// Runs one instance until it stops or crashes, snapshotting it for
    /// crash recovery per its kind's policy.
    async fn serve(
        &self,
        inst: &mut dyn Instance,
        rx: &mut flume::Receiver<Envelope>,
        last: &mut Option<Bytes>,
        restored: bool,
    ) -> Exit {
        let Some(policy) = self.snapshots else {
            while let Ok(env) = rx.recv_async().await {
                if let Some(exit) = handle(inst, env, rx).await {
                    return exit;
                }
            }
            return Exit::Stopped(None);
        };
        // Started from a handed-over state or a snapshot: until its first
        // message no survivor may hold that state (the old holder forgot
        // its copy with the move), so its successor gets it now.
        if restored {
            self.take_snapshot(inst, last);
        }
        // Messages handled since the last snapshot.
        let mut since: u32 = 0;
        let period = policy.interval.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            select! {
                env = rx.recv_async() => {
                    let Ok(env) = env else { return Exit::Stopped(None) };
                    let counts = matches!(env, Envelope::Cast(_) | Envelope::Call(..) | Envelope::Timer(..));
                    if let Some(exit) = handle(inst, env, rx).await {
                        return exit;
                    }
                    if counts {
                        since = since.saturating_add(1);
                        if policy.every_messages.is_some_and(|n| since >= n) {
                            self.take_snapshot(inst, last);
                            since = 0;
                        }
                    }
                }
                _ = tick.tick(), if policy.interval.is_some() => {
                    if since > 0 {
                        self.take_snapshot(inst, last);
                        since = 0;
                    }
                }
            }
        }
    }

    fn take_snapshot(&self, inst: &mut dyn Instance, last: &mut Option<Bytes>) {
        match inst.snapshot() {
            Some(state) => {
                *last = Some(state.clone());
                self.report(LocalReport::Snapshot {
                    id: self.spec.id.clone(),
                    state,
                })
            }
            None => debug!("kind has a snapshot policy but returned no state"),
        }
    }
}

/// Handles one envelope; `Some` when the instance ended.
async fn handle(
    inst: &mut dyn Instance,
    env: Envelope,
    rx: &mut flume::Receiver<Envelope>,
) -> Option<Exit> {
    match env {
        Envelope::Cast(b) => match AssertUnwindSafe(inst.cast(b)).catch_unwind().await {
            Ok(Ok(())) => inst.finished().then_some(Exit::Normal),
            Ok(Err(e)) => Some(Exit::Crashed(e)),
            Err(_) => Some(Exit::Crashed("panicked in handle_cast".into())),
        },
        Envelope::Call(b, reply) => match AssertUnwindSafe(inst.call(b)).catch_unwind().await {
            Ok(Ok(r)) => {
                let _ = reply.send(r.map_err(CallError::BadMessage));
                inst.finished().then_some(Exit::Normal)
            }
            Ok(Err(e)) => {
                let _ = reply.send(Err(CallError::Crashed(e.clone())));
                Some(Exit::Crashed(e))
            }
            Err(_) => {
                let _ = reply.send(Err(CallError::Crashed("panic".into())));
                Some(Exit::Crashed("panicked in handle_call".into()))
            }
        },
        Envelope::Timer(instance, b) => {
            match AssertUnwindSafe(inst.timer(instance, b))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => inst.finished().then_some(Exit::Normal),
                Ok(Err(e)) => Some(Exit::Crashed(e)),
                Err(_) => Some(Exit::Crashed("panicked in handle_cast".into())),
            }
        }
        Envelope::Wake => inst.finished().then_some(Exit::Normal),
        Envelope::Handover(reply) => {
            let _ = reply.send(inst.snapshot());
            paused(inst, rx).await
        }
        Envelope::Resume => None,
        Envelope::Role(role) => match AssertUnwindSafe(inst.role_changed(role))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Exit::Crashed(e)),
            Err(_) => Some(Exit::Crashed("panicked in role_changed".into())),
        },
        Envelope::Stop(reason, final_state) => Some(stop(inst, reason, final_state).await),
    }
}

/// Ends an instance: its final state first (when asked: it moves, and
/// nothing it handled may be missing), then its `terminate`.
async fn stop(inst: &mut dyn Instance, reason: Terminate, final_state: bool) -> Exit {
    let state = if final_state { inst.snapshot() } else { None };
    inst.terminate(reason).await;
    Exit::Stopped(state)
}

/// After a handover snapshot: hold messages (nothing may change the state
/// that was handed over) until the move is abandoned (`Resume`: handle
/// them) or done (`Stop`: callers are told to retry at the new owner).
async fn paused(inst: &mut dyn Instance, rx: &mut flume::Receiver<Envelope>) -> Option<Exit> {
    let mut held = Vec::new();
    loop {
        match rx.recv_async().await.ok() {
            None => return Some(Exit::Stopped(None)),
            Some(Envelope::Resume) => break,
            Some(Envelope::Stop(reason, final_state)) => {
                for env in held {
                    if let Envelope::Call(_, reply) = env {
                        let _ = reply.send(Err(CallError::Moving));
                    }
                }
                return Some(stop(inst, reason, final_state).await);
            }
            Some(Envelope::Handover(reply)) => {
                let _ = reply.send(inst.snapshot());
            }
            Some(
                env @ (Envelope::Cast(_)
                | Envelope::Timer(..)
                | Envelope::Wake
                | Envelope::Call(..)
                | Envelope::Role(_)),
            ) => {
                if held.len() < MAILBOX {
                    held.push(env);
                } else if let Envelope::Call(_, reply) = env {
                    let _ = reply.send(Err(CallError::Moving));
                }
            }
        }
    }
    for env in held {
        if let Some(exit) = Box::pin(handle(inst, env, rx)).await {
            return Some(exit);
        }
    }
    None
}
