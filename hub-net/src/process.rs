//! User processes: the [`Process`] trait and the kind registry.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use hub_core::Role;

use crate::context::{Context, Seed};
use crate::snapshot::SnapshotPolicy;

/// Why a process instance is being terminated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminate {
    /// Stopped by request, by a migration or by shutdown.
    Stopped,
    /// Another instance of the same id won (after a partition heal).
    Conflict,
}

/// A stateful process (actor) run under a child id.
///
/// Errors returned from a handler are crashes: the supervisor restarts the
/// process per its restart policy (and so is a panic). A crash restart
/// calls `init` again with the spec's arguments and no state (OTP
/// semantics), unless the kind was registered with a snapshot policy that
/// opts in to [`SnapshotPolicy::restarting_from_last`].
///
/// `init` gets the instance's [`Context`]: its id, role, the hub, timers
/// and [`Context::stop`].
///
/// ```
/// use hub_net::{Context, Process};
/// use serde::{Deserialize, Serialize};
///
/// struct Counter { n: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// enum Msg { Add(u64), Get }
///
/// impl Process for Counter {
///     type Args = u64;
///     type Message = Msg;
///     type Reply = u64;
///     type State = u64;
///     async fn init(_ctx: Context<Self>, start: u64, restored: Option<u64>) -> Result<Self, String> {
///         Ok(Counter { n: restored.unwrap_or(start) })
///     }
///     async fn handle_cast(&mut self, msg: Msg) -> Result<(), String> {
///         if let Msg::Add(k) = msg { self.n += k }
///         Ok(())
///     }
///     async fn handle_call(&mut self, msg: Msg) -> Result<u64, String> {
///         self.handle_cast(msg).await?;
///         Ok(self.n)
///     }
///     fn snapshot_state(&self) -> Option<u64> { Some(self.n) }
/// }
/// ```
pub trait Process: Sized + Send + 'static {
    /// Start arguments (the spec's `args`, postcard-encoded).
    type Args: Serialize + DeserializeOwned + Send;
    /// What casts and calls carry.
    type Message: Serialize + DeserializeOwned + Send;
    /// What calls answer.
    type Reply: Serialize + DeserializeOwned + Send;
    /// State handed over on migration.
    type State: Serialize + DeserializeOwned + Send;

    /// Creates the instance, from handed-over state when there is one.
    fn init(
        ctx: Context<Self>,
        args: Self::Args,
        restored: Option<Self::State>,
    ) -> impl Future<Output = Result<Self, String>> + Send;

    /// Handles a one-way message.
    fn handle_cast(
        &mut self,
        msg: Self::Message,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Handles a request and answers it.
    fn handle_call(
        &mut self,
        msg: Self::Message,
    ) -> impl Future<Output = Result<Self::Reply, String>> + Send;

    /// The state to hand over, if the kind supports handover.
    fn snapshot_state(&self) -> Option<Self::State> {
        None
    }

    /// Its replica role changed (only with a redundancy strategy that
    /// signals roles). An error is a crash.
    fn role_changed(&mut self, _role: Role) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Called once before the instance goes away (not after a crash).
    fn terminate(&mut self, _reason: Terminate) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Asked after every message it handled: `true` ends it normally (its
    /// work is done), as [`Context::stop`] does. Then, per the spec's restart policy, a `Permanent`
    /// child is restarted (from its init arguments) and a `Transient` or
    /// `Temporary` one is removed cluster-wide (`ExitReason::Normal`).
    fn finished(&self) -> bool {
        false
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running instance with its types erased to bytes.
pub(crate) trait Instance: Send {
    fn cast(&mut self, payload: Bytes) -> BoxFuture<'_, Result<(), String>>;
    /// A message from this child to itself ([`Context::send_after`]),
    /// dropped when an earlier instance of the child sent it.
    fn timer(&mut self, instance: u64, payload: Bytes) -> BoxFuture<'_, Result<(), String>>;
    fn call(&mut self, payload: Bytes) -> BoxFuture<'_, Result<Result<Bytes, String>, String>>;
    fn snapshot(&self) -> Option<Bytes>;
    fn role_changed(&mut self, role: Role) -> BoxFuture<'_, Result<(), String>>;
    fn terminate(&mut self, reason: Terminate) -> BoxFuture<'_, ()>;
    fn finished(&self) -> bool;
}

struct Typed<P> {
    process: P,
    /// Set by [`Context::stop`].
    stop: Arc<AtomicBool>,
    seed: Seed,
}

impl<P: Process> Instance for Typed<P> {
    fn cast(&mut self, payload: Bytes) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match postcard::from_bytes::<P::Message>(&payload) {
                Ok(msg) => self.process.handle_cast(msg).await,
                Err(e) => {
                    // A malformed message is the sender's fault, not a crash.
                    tracing::warn!(error = %e, "dropping undecodable cast");
                    Ok(())
                }
            }
        })
    }

    /// Outer error: the process crashed. Inner error: a bad message.
    fn call(&mut self, payload: Bytes) -> BoxFuture<'_, Result<Result<Bytes, String>, String>> {
        Box::pin(async move {
            let msg = match postcard::from_bytes::<P::Message>(&payload) {
                Ok(m) => m,
                Err(e) => return Ok(Err(format!("cannot decode message: {e}"))),
            };
            let reply = self.process.handle_call(msg).await?;
            Ok(postcard::to_stdvec(&reply)
                .map(Bytes::from)
                .map_err(|e| format!("cannot encode reply: {e}")))
        })
    }

    fn timer(&mut self, instance: u64, payload: Bytes) -> BoxFuture<'_, Result<(), String>> {
        if instance != self.seed.instance {
            return Box::pin(async { Ok(()) });
        }
        self.cast(payload)
    }

    fn snapshot(&self) -> Option<Bytes> {
        let state = self.process.snapshot_state()?;
        postcard::to_stdvec(&state).ok().map(Bytes::from)
    }

    fn role_changed(&mut self, role: Role) -> BoxFuture<'_, Result<(), String>> {
        *self.seed.role.lock().unwrap_or_else(|e| e.into_inner()) = Some(role);
        Box::pin(self.process.role_changed(role))
    }

    fn terminate(&mut self, reason: Terminate) -> BoxFuture<'_, ()> {
        Box::pin(self.process.terminate(reason))
    }

    fn finished(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.process.finished()
    }
}

pub(crate) type Factory = dyn Fn(Seed, Bytes, Option<Bytes>) -> BoxFuture<'static, Result<Box<dyn Instance>, String>>
    + Send
    + Sync;

/// Process kinds by name: how to build an instance from a child spec.
#[derive(Clone, Default)]
pub struct Kinds {
    map: BTreeMap<String, Arc<Factory>>,
    snapshots: BTreeMap<String, SnapshotPolicy>,
    /// Kinds started on demand, with how to build their start arguments.
    on_demand: crate::activation::OnDemand,
    /// The name each process type was last registered under.
    types: BTreeMap<std::any::TypeId, String>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Kinds {
    /// Registers `P` under `name` (replacing an earlier one).
    pub fn register<P: Process>(&mut self, name: impl Into<String>) {
        let factory: Arc<Factory> = Arc::new(|seed: Seed, args: Bytes, restore: Option<Bytes>| {
            Box::pin(async move {
                let args: P::Args = if args.is_empty() {
                    // Empty args mean "default" for kinds whose Args allow it.
                    postcard::from_bytes(&[0]).map_err(|e| format!("missing args: {e}"))?
                } else {
                    postcard::from_bytes(&args).map_err(|e| format!("bad args: {e}"))?
                };
                let restored = match restore {
                    Some(b) => {
                        Some(postcard::from_bytes(&b).map_err(|e| format!("bad state: {e}"))?)
                    }
                    None => None,
                };
                let stop = Arc::new(AtomicBool::new(false));
                let ctx = Context::new(seed.clone(), stop.clone());
                let process = P::init(ctx, args, restored).await?;
                Ok(Box::new(Typed {
                    process,
                    stop,
                    seed,
                }) as Box<dyn Instance>)
            })
        });
        let name = name.into();
        self.snapshots.remove(&name);
        self.on_demand.0.remove(&name);
        self.types.insert(std::any::TypeId::of::<P>(), name.clone());
        self.map.insert(name, factory);
    }

    /// The kind name of every registered process type.
    pub(crate) fn names_by_type(&self) -> BTreeMap<std::any::TypeId, String> {
        self.types.clone()
    }

    /// Registers `P` under `name` with crash-recovery snapshots taken per
    /// `policy` (see [`SnapshotPolicy`]). `P` must return a state from
    /// [`Process::snapshot_state`], else nothing is replicated.
    pub fn register_with_snapshots<P: Process>(
        &mut self,
        name: impl Into<String>,
        policy: SnapshotPolicy,
    ) {
        let name = name.into();
        self.register::<P>(name.clone());
        self.snapshots.insert(name, policy);
    }

    /// Registers `P` under `name`, started on demand: the first typed call
    /// or cast to an id that runs nowhere starts it on its owner with
    /// `args(id)` (see [`crate::HubBuilder::register_on_demand`]).
    pub fn register_on_demand<P: Process>(
        &mut self,
        name: impl Into<String>,
        args: impl Fn(&hub_core::ChildId) -> P::Args + Send + Sync + 'static,
    ) {
        let name = name.into();
        self.register::<P>(name.clone());
        let build: Arc<crate::activation::ArgsFn> = Arc::new(move |id| {
            postcard::to_stdvec(&args(id))
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        });
        self.on_demand.0.insert(name, build);
    }

    /// The kinds started on demand, with their argument builders.
    pub(crate) fn on_demand(&self) -> crate::activation::OnDemand {
        self.on_demand.clone()
    }

    /// The snapshot policy of kind `name`, if it has one.
    pub fn snapshot_policy(&self, name: &str) -> Option<SnapshotPolicy> {
        self.snapshots.get(name).copied()
    }

    /// Checks every snapshot policy: the first bad one's kind and why.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        for (kind, p) in &self.snapshots {
            p.validate().map_err(|why| (kind.clone(), why))?;
        }
        Ok(())
    }

    /// Whether a kind of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Factory>> {
        self.map.get(name).cloned()
    }
}
