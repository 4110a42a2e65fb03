use std::time::Duration;

use hub_core::MigrationMode;

/// Stop the old instance (its removal is synced), then start a fresh one on
/// the new owner: never two copies at once, state is not carried over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColdSwap;

impl From<ColdSwap> for MigrationMode {
    fn from(_: ColdSwap) -> Self {
        MigrationMode::StopThenStart
    }
}

/// Start the new instance first; the old one stops once the new owner runs
/// it. With `handover`, the old instance's state is snapshotted (the
/// instance pauses from then on, so nothing it acknowledged is missing) and
/// restored into the new one.
///
/// - `child_migration_timeout`: a move the new owner has not acknowledged
///   by then is abandoned; the old copy resumes (a `ChildFailed` event says
///   why) and the next reconcile tries again. A refusal (the new owner
///   cannot start it) also keeps the old copy.
/// - `handover_data_wait`: longest wait for a snapshot; then the child
///   moves without state (logged).
/// - `retention`: on graceful shutdown, how long the leaving node keeps an
///   old copy waiting for the acknowledgement before it stops it anyway
///   (the handoff, state included, is re-sent until acknowledged).
///
/// ```
/// use hub_strategies::HotSwap;
/// let hot = HotSwap::default().with_handover(true);
/// assert!(hot.handover);
/// assert_eq!(hot.retention.as_millis(), 5000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotSwap {
    /// Carry the state over (default false).
    pub handover: bool,
    /// Default 5 s.
    pub retention: Duration,
    /// Default 3 s.
    pub handover_data_wait: Duration,
    /// Default 10 s.
    pub child_migration_timeout: Duration,
}

impl Default for HotSwap {
    fn default() -> Self {
        HotSwap {
            handover: false,
            retention: Duration::from_millis(5000),
            handover_data_wait: Duration::from_millis(3000),
            child_migration_timeout: Duration::from_millis(10_000),
        }
    }
}

impl HotSwap {
    /// Sets `handover`.
    pub fn with_handover(mut self, handover: bool) -> Self {
        self.handover = handover;
        self
    }
}

impl From<HotSwap> for MigrationMode {
    fn from(h: HotSwap) -> Self {
        MigrationMode::StartThenStop {
            handover: h.handover,
            retention: h.retention,
            handover_data_wait: h.handover_data_wait,
            child_migration_timeout: h.child_migration_timeout,
        }
    }
}
