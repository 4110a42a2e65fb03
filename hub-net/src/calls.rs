//! Messages to children wherever they run: untyped casts and calls by id,
//! and typed entity handles that check the child's kind.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use hub_core::{ChildId, ChildSpec, StartOptions, StartOutcome};

use crate::activation::ACTIVATION_WAIT;
use crate::driver::Api;
use crate::error::{CallError, HubError};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::process::Process;

/// Encodes a message the way every child decodes it.
pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Bytes, CallError> {
    postcard::to_stdvec(v)
        .map(Bytes::from)
        .map_err(|e| CallError::BadMessage(e.to_string()))
}

impl Hub {
    /// The kind `P` is registered under on this node, if it is.
    fn kind_of<P: Process>(&self) -> Option<String> {
        self.shared
            .kind_names
            .get(&std::any::TypeId::of::<P>())
            .cloned()
    }

    /// Sends `msg` to child `id` wherever it runs (fire and forget once
    /// handed to the transport). If `P` is registered here, a child of
    /// another kind is refused with [`CallError::WrongKind`].
    pub async fn send<P: Process>(
        &self,
        id: impl Into<ChildId>,
        msg: &P::Message,
    ) -> Result<(), CallError> {
        self.cast_raw(id.into(), encode(msg)?, self.kind_of::<P>())
            .await
    }

    async fn cast_raw(
        &self,
        id: ChildId,
        payload: Bytes,
        kind: Option<String>,
    ) -> Result<(), CallError> {
        let first = self.cast_once(&id, &payload, &kind).await;
        let (Err(CallError::NotFound), Some(args)) = (&first, self.on_demand(kind.as_deref()))
        else {
            return first;
        };
        let deadline = tokio::time::Instant::now() + ACTIVATION_WAIT;
        self.caught_up(deadline).await?;
        // Asked again: the rows that arrived meanwhile may name a holder.
        let again = self.cast_once(&id, &payload, &kind).await;
        if !matches!(again, Err(CallError::NotFound)) {
            return again;
        }
        self.activate(&id, kind.as_deref().unwrap_or_default(), &*args)
            .await?;
        // Started; this node's registry learns where a moment later.
        let mut pause = Duration::from_millis(2);
        loop {
            let r = self.cast_once(&id, &payload, &kind).await;
            if !matches!(r, Err(CallError::NotFound | CallError::Moving))
                || tokio::time::Instant::now() + pause > deadline
            {
                return r;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn cast_once(
        &self,
        id: &ChildId,
        payload: &Bytes,
        kind: &Option<String>,
    ) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Api::Cast(id.clone(), payload.clone(), kind.clone(), tx))
            .await
            .map_err(|_| CallError::Closed)?;
        rx.await.map_err(|_| CallError::Closed)?
    }

    /// Calls child `id` wherever it runs and waits up to `timeout`. If `P`
    /// is registered here, a child of another kind is refused with
    /// [`CallError::WrongKind`].
    pub async fn call<P: Process>(
        &self,
        id: impl Into<ChildId>,
        msg: &P::Message,
        timeout: Duration,
    ) -> Result<P::Reply, CallError> {
        let bytes = self
            .call_kind(id.into(), encode(msg)?, self.kind_of::<P>(), timeout)
            .await?;
        postcard::from_bytes(&bytes).map_err(|e| CallError::BadMessage(e.to_string()))
    }

    /// [`Hub::call`] with an already encoded message and reply (no kind
    /// check).
    pub async fn call_raw(
        &self,
        id: ChildId,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        self.call_kind(id, payload, None, timeout).await
    }

    async fn call_kind(
        &self,
        id: ChildId,
        payload: Bytes,
        kind: Option<String>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let began = tokio::time::Instant::now();
        let metrics = &self.shared.metrics;
        let first = retry_until(&self.tx, &id, &payload, &kind, timeout, false).await;
        let r = match (&first, self.on_demand(kind.as_deref())) {
            (Err(CallError::NotFound), Some(args)) => {
                let activated = async {
                    self.caught_up(began + timeout).await?;
                    // Asked again: the rows that arrived meanwhile may
                    // name a holder.
                    let left = timeout.saturating_sub(began.elapsed());
                    let again = retry_until(&self.tx, &id, &payload, &kind, left, false).await;
                    if !matches!(again, Err(CallError::NotFound)) {
                        return again;
                    }
                    self.activate(&id, kind.as_deref().unwrap_or_default(), &*args)
                        .await?;
                    // Started; this node's registry learns where a moment
                    // later, so "not found" is asked again meanwhile.
                    let left = timeout.saturating_sub(began.elapsed());
                    retry_until(&self.tx, &id, &payload, &kind, left, true).await
                };
                activated.await
            }
            _ => first,
        };
        metrics.call(kind.as_deref(), began.elapsed());
        r
    }

    /// A typed handle on child `id` of process type `P`: start it with
    /// typed arguments, call and cast it with typed messages; every message
    /// is checked against the child's registered kind. `P` must be
    /// registered on this node (`HubBuilder::register`), else
    /// [`HubError::UnregisteredType`].
    ///
    /// ```no_run
    /// # use hub_net::examples::{Counter, CounterMsg};
    /// # async fn f(hub: hub_net::Hub) -> Result<(), Box<dyn std::error::Error>> {
    /// let c = hub.entity::<Counter>("c-1")?;
    /// c.start(&0, hub_core::StartOptions::awaited()).await?;
    /// let n = c.call(&CounterMsg::Add(5), std::time::Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn entity<P: Process>(&self, id: impl Into<ChildId>) -> Result<Entity<P>, HubError> {
        let kind = self
            .kind_of::<P>()
            .ok_or_else(|| HubError::UnregisteredType(std::any::type_name::<P>()))?;
        Ok(Entity {
            hub: self.clone(),
            id: id.into(),
            kind,
            process: PhantomData,
        })
    }
}

/// A typed handle on one child (see [`Hub::entity`]).
#[derive(Debug)]
pub struct Entity<P> {
    hub: Hub,
    id: ChildId,
    kind: String,
    process: PhantomData<fn() -> P>,
}

impl<P> Clone for Entity<P> {
    fn clone(&self) -> Self {
        Entity {
            hub: self.hub.clone(),
            id: self.id.clone(),
            kind: self.kind.clone(),
            process: PhantomData,
        }
    }
}

impl<P: Process> Entity<P> {
    /// The child's id.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// The kind it runs as.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Starts it with `args` (see [`Hub::start_child`]: an awaited start
    /// that did not happen is an error).
    pub async fn start(
        &self,
        args: &P::Args,
        opts: StartOptions,
    ) -> Result<StartOutcome, HubError> {
        let args = postcard::to_stdvec(args).map_err(|e| HubError::Encode(e.to_string()))?;
        let spec = ChildSpec::new(self.id.clone(), self.kind.as_str()).with_args(args);
        self.hub.start_child(spec, opts).await
    }

    /// Calls it (see [`Hub::call`]).
    pub async fn call(&self, msg: &P::Message, timeout: Duration) -> Result<P::Reply, CallError> {
        self.hub.call::<P>(self.id.clone(), msg, timeout).await
    }

    /// Casts to it (see [`Hub::send`]).
    pub async fn cast(&self, msg: &P::Message) -> Result<(), CallError> {
        self.hub.send::<P>(self.id.clone(), msg).await
    }
}

/// A call through the node task `api`, asked again while the child is
/// moving or its node unreachable (it is restarted elsewhere once that
/// node is found dead), until `timeout`: what [`Hub::call`] and the
/// control protocol's calls do. Only calls that were not handed to a
/// connection are asked again; one whose connection closed after it was
/// sent is [`CallError::Unanswered`], never sent twice.
pub(crate) async fn call_retrying(
    api: &mpsc::Sender<Api>,
    metrics: &Metrics,
    id: ChildId,
    payload: Bytes,
    kind: Option<String>,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let began = tokio::time::Instant::now();
    let r = retry_until(api, &id, &payload, &kind, timeout, false).await;
    metrics.call(kind.as_deref(), began.elapsed());
    r
}

/// Asks until an answer that is not worth asking again, or `timeout`;
/// with `not_found`, a child not in the registry yet is asked again too.
async fn retry_until(
    api: &mpsc::Sender<Api>,
    id: &ChildId,
    payload: &Bytes,
    kind: &Option<String>,
    timeout: Duration,
    not_found: bool,
) -> Result<Bytes, CallError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let (tx, rx) = oneshot::channel();
        api.send(Api::Call(id.clone(), payload.clone(), kind.clone(), tx))
            .await
            .map_err(|_| CallError::Closed)?;
        // (madsim's tokio has no `timeout_at`.)
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let r = match tokio::time::timeout(left, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => Err(CallError::Timeout),
        };
        let retry = matches!(r, Err(CallError::Moving | CallError::NotConnected(_)))
            || (not_found && matches!(r, Err(CallError::NotFound)));
        if !retry || tokio::time::Instant::now() + pause > deadline {
            return r;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
