//! When a process kind's state is snapshotted for crash recovery.

use std::time::Duration;

/// Snapshot policy of a process kind registered with
/// [`crate::HubBuilder::register_with_snapshots`]: the node snapshots each
/// running child (its [`crate::Process::snapshot_state`]) after every
/// `every_messages` handled messages and/or every `interval` in which it
/// handled any, and replicates the snapshot to the child's ring successor.
/// If the node dies, the successor restarts the child from the latest
/// snapshot it got and emits [`hub_core::Event::Recovered`].
///
/// The loss window is what the child did since its last snapshot: at most
/// `every_messages - 1` messages, or one `interval`, plus one network
/// delay. Snapshotting costs one `snapshot_state` call, one encode and one
/// message to one peer per snapshot.
///
/// ```
/// use std::time::Duration;
/// use hub_net::SnapshotPolicy;
/// let p = SnapshotPolicy::every(100).and_interval(Duration::from_secs(1));
/// assert_eq!(p.every_messages, Some(100));
/// assert!(SnapshotPolicy::every(0).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot after this many handled messages (casts and calls).
    pub every_messages: Option<u32>,
    /// Snapshot this often while messages arrive.
    pub interval: Option<Duration>,
    /// A crash restart on the same node begins from the latest snapshot
    /// (or the state the instance started from) instead of from the init
    /// arguments alone. Off by default: a crash may come from a bad state,
    /// and OTP restarts clean.
    pub restart_from_snapshot: bool,
}

impl SnapshotPolicy {
    /// After every `n` messages.
    pub fn every(n: u32) -> Self {
        SnapshotPolicy {
            every_messages: Some(n),
            interval: None,
            restart_from_snapshot: false,
        }
    }

    /// Every `interval` in which the child handled a message.
    pub fn interval(interval: Duration) -> Self {
        SnapshotPolicy {
            every_messages: None,
            interval: Some(interval),
            restart_from_snapshot: false,
        }
    }

    /// Adds an interval to a message-count policy.
    pub fn and_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Crash restarts begin from the latest snapshot (see
    /// [`SnapshotPolicy::restart_from_snapshot`]).
    pub fn restarting_from_last(mut self) -> Self {
        self.restart_from_snapshot = true;
        self
    }

    /// Refuses a policy that never or constantly fires.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.every_messages.is_none() && self.interval.is_none() {
            return Err("a snapshot policy needs a message count or an interval");
        }
        if self.every_messages == Some(0) {
            return Err("every_messages must be at least 1");
        }
        if self.interval.is_some_and(|i| i < Duration::from_millis(1)) {
            return Err("the snapshot interval must be at least 1 ms");
        }
        Ok(())
    }
}
