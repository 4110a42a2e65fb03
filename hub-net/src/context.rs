//! What a running process knows about itself and can do: its id and role,
//! the hub it runs in, timers, and ending itself.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use hub_core::{ChildId, NodeId, Role};

use crate::calls::encode;
use crate::error::CallError;
use crate::hub::{Hub, WeakHub};
use crate::process::Process;
use crate::supervisor::Envelope;

/// The per-child parts every instance of a child shares, and the instance
/// number that tells a timer of a crashed instance from one of the current.
#[derive(Clone)]
pub(crate) struct Seed {
    pub(crate) id: ChildId,
    pub(crate) node: NodeId,
    pub(crate) role: Arc<Mutex<Option<Role>>>,
    pub(crate) mailbox: flume::WeakSender<Envelope>,
    pub(crate) hub: WeakHub,
    pub(crate) instance: u64,
}

/// A process instance's handle on itself, given to [`Process::init`]; keep
/// it (it is cheap to clone) to use it from handlers.
///
/// - [`Context::id`], [`Context::node`], [`Context::role`]: who and where;
/// - [`Context::hub`]: the hub, to start, stop or call other children (a
///   child must not `call` itself: it would wait for its own answer until
///   the call's timeout);
/// - [`Context::cast_self`], [`Context::send_after`]: messages to itself,
///   now or after a delay, handled like any cast;
/// - [`Context::stop`]: end normally once the current message is handled,
///   like [`Process::finished`].
///
/// A timer belongs to the instance that set it: it is not delivered after
/// that instance crashed and was restarted, nor to the child's next owner
/// after a migration (set it again in `init`).
pub struct Context<P: Process> {
    seed: Seed,
    stop: Arc<AtomicBool>,
    _kind: PhantomData<fn() -> P>,
}

impl<P: Process> Clone for Context<P> {
    fn clone(&self) -> Self {
        Context {
            seed: self.seed.clone(),
            stop: self.stop.clone(),
            _kind: PhantomData,
        }
    }
}

impl<P: Process> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.seed.id)
            .field("node", &self.seed.node)
            .field("instance", &self.seed.instance)
            .finish_non_exhaustive()
    }
}

/// A message scheduled with [`Context::send_after`]. Dropping it does not
/// cancel it; [`Timer::cancel`] does.
#[derive(Debug)]
pub struct Timer {
    cancel: CancellationToken,
}

impl Timer {
    /// Cancels the message if it has not been delivered yet.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl<P: Process> Context<P> {
    pub(crate) fn new(seed: Seed, stop: Arc<AtomicBool>) -> Self {
        Context {
            seed,
            stop,
            _kind: PhantomData,
        }
    }

    /// The child's id.
    pub fn id(&self) -> &ChildId {
        &self.seed.id
    }

    /// The node it runs on.
    pub fn node(&self) -> &NodeId {
        &self.seed.node
    }

    /// Its replica role here, once a redundancy strategy that signals
    /// roles has told it (`None` before, and without such a strategy).
    pub fn role(&self) -> Option<Role> {
        *self.seed.role.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hub it runs in; `None` once that node has stopped.
    pub fn hub(&self) -> Option<Hub> {
        self.seed.hub.upgrade()
    }

    /// Ends this instance normally after the message it is handling (or,
    /// called from elsewhere, after the messages already queued): then,
    /// per the spec's restart policy, a `Permanent` child is restarted
    /// from its init arguments and a `Transient` or `Temporary` one is
    /// removed cluster-wide.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes a child that is waiting for messages, so it sees the flag.
        if let Some(tx) = self.seed.mailbox.upgrade() {
            let _ = tx.try_send(Envelope::Wake);
        }
    }

    /// Queues `msg` for this child, as a cast. Fails with
    /// [`CallError::Timeout`] when its mailbox is full, [`CallError::Closed`]
    /// when the child has ended.
    pub fn cast_self(&self, msg: &P::Message) -> Result<(), CallError> {
        let env = Envelope::Timer(self.seed.instance, encode(msg)?);
        let tx = self.seed.mailbox.upgrade().ok_or(CallError::Closed)?;
        tx.try_send(env).map_err(|e| match e {
            flume::TrySendError::Full(_) => CallError::Timeout,
            flume::TrySendError::Disconnected(_) => CallError::Closed,
        })
    }

    /// Delivers `msg` to this instance as a cast after `delay`, unless
    /// cancelled, the instance ended, or its mailbox is full then (the
    /// timer is dropped with a warning).
    pub fn send_after(&self, delay: Duration, msg: &P::Message) -> Result<Timer, CallError> {
        let env = Envelope::Timer(self.seed.instance, encode(msg)?);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let mailbox = self.seed.mailbox.clone();
        let id = self.seed.id.clone();
        tokio::spawn(async move {
            select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(delay) => {
                    if let Some(tx) = mailbox.upgrade() {
                        if tx.try_send(env).is_err() {
                            tracing::warn!(child = %id, "timer dropped: mailbox full or closed");
                        }
                    }
                }
            }
        });
        Ok(Timer { cancel })
    }
}
