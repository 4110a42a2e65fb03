//! Children on demand: a kind registered with
//! [`crate::HubBuilder::register_on_demand`] is started by the first typed
//! call or cast to an id that runs nowhere, on that id's owner, and the
//! message is then delivered.
//!
//! The node that sends the message first makes sure its registry has
//! caught up with its peers' (a node that just joined has not: a child
//! missing from its registry may run elsewhere), asks again, and only
//! then asks for an awaited start, like any start: it goes to the ring
//! owner, which decides, so first messages sent at once from several
//! nodes create one instance (the others' starts answer `AlreadyStarted`,
//! which counts as done here).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use hub_core::{ChildId, ChildSpec, StartError, StartOptions};

use crate::error::{CallError, HubError};
use crate::hub::Hub;

/// Builds a child's start arguments from its id, encoded.
pub(crate) type ArgsFn = dyn Fn(&ChildId) -> Result<Bytes, String> + Send + Sync;

/// The kinds started on demand, by name, with their argument builders.
#[derive(Clone, Default)]
pub(crate) struct OnDemand(pub(crate) BTreeMap<String, Arc<ArgsFn>>);

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// How long a message waits, after its child was started on demand, for
/// this node's registry to learn where the child runs (one registry delta
/// from the owner; a cast has no timeout of its own).
pub(crate) const ACTIVATION_WAIT: Duration = Duration::from_secs(5);

impl Hub {
    /// The start-argument builder of `kind`, if it starts on demand.
    pub(crate) fn on_demand(&self, kind: Option<&str>) -> Option<Arc<ArgsFn>> {
        self.shared.on_demand.0.get(kind?).cloned()
    }

    /// Waits, until `deadline`, for this node's registry to have caught up
    /// with every peer's rows ([`hub_core::Node::registry_caught_up`]):
    /// before, a child missing here may be running elsewhere (this node
    /// just joined or restarted), and starting it would make a second,
    /// empty copy that could replace the real one's state.
    pub(crate) async fn caught_up(&self, deadline: tokio::time::Instant) -> Result<(), CallError> {
        let mut pause = Duration::from_millis(2);
        loop {
            match self.query(|n| n.registry_caught_up()).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => return Err(CallError::Closed),
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(CallError::NotActivated(
                    "this node's registry has not caught up with its peers' yet".into(),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Starts `id` of `kind` on its owner with `args(id)`; a child that
    /// already runs (another node's first message won) is fine.
    pub(crate) async fn activate(
        &self,
        id: &ChildId,
        kind: &str,
        args: &ArgsFn,
    ) -> Result<(), CallError> {
        let args = args(id).map_err(|e| CallError::NotActivated(format!("bad args: {e}")))?;
        let spec = ChildSpec::new(id.clone(), kind).with_args(args);
        tracing::debug!(child = %id, kind, "starting on demand");
        match self.start_child(spec, StartOptions::awaited()).await {
            Ok(_) => Ok(()),
            Err(HubError::StartFailed(outcome))
                if outcome
                    .failed
                    .iter()
                    .all(|f| matches!(f.error, StartError::AlreadyStarted { .. })) =>
            {
                Ok(())
            }
            Err(e) => Err(CallError::NotActivated(e.to_string())),
        }
    }
}
