//! A random workload with a seeded RNG that remembers which children were
//! acknowledged, so that losses can be checked.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;

use hub_core::{ChildId, ChildSpec, StartOptions, StopOptions};
use hub_net::examples::{Counter, CounterMsg};

use crate::cluster::{SimCluster, API_TIMEOUT};

/// Children started and stopped so far.
#[derive(Debug, Default)]
pub struct Workload {
    next: u64,
    /// Acknowledged started and not stopped since.
    pub acked: BTreeSet<ChildId>,
}

impl Workload {
    /// One random operation from a random live node: mostly starts of a
    /// few counters, some stops, some calls.
    pub async fn step(&mut self, c: &SimCluster, rng: &mut impl Rng) {
        let alive = c.alive();
        if alive.is_empty() {
            return;
        }
        let Some(hub) = c.hub(alive[rng.random_range(0..alive.len())]) else {
            return;
        };
        let opts = StartOptions {
            timeout: Duration::from_secs(3),
            ..StartOptions::awaited()
        };
        match rng.random_range(0..10) {
            0..=5 => {
                let n = rng.random_range(1..6);
                let specs: Vec<ChildSpec> = (0..n)
                    .map(|_| {
                        self.next += 1;
                        ChildSpec::new(format!("w{}", self.next), "counter")
                    })
                    .collect();
                let started =
                    tokio::time::timeout(API_TIMEOUT, hub.start_children(specs, opts)).await;
                // A partial start is an error that still lists what started.
                if let Ok(Ok(out)) =
                    started.map(|r| r.or_else(hub_net::HubError::into_start_outcome))
                {
                    self.acked.extend(out.started.into_keys());
                }
            }
            6..=7 => {
                let Some(id) = self.pick(rng) else { return };
                let stop = StopOptions {
                    timeout: Duration::from_secs(3),
                    ..StopOptions::awaited()
                };
                // Stopped or not, it is no longer owed to anyone.
                self.acked.remove(&id);
                let _ = tokio::time::timeout(API_TIMEOUT, hub.stop_child(id, stop)).await;
            }
            _ => {
                if let Some(id) = self.pick(rng) {
                    let call = hub.call::<Counter>(id, &CounterMsg::Add(1), Duration::from_secs(1));
                    let _ = tokio::time::timeout(API_TIMEOUT, call).await;
                }
            }
        }
    }

    fn pick(&self, rng: &mut impl Rng) -> Option<ChildId> {
        if self.acked.is_empty() {
            return None;
        }
        self.acked
            .iter()
            .nth(rng.random_range(0..self.acked.len()))
            .cloned()
    }

    /// Forgets children no live node knows of (their only holder died
    /// before anyone else heard of them: the invariants allow that loss).
    pub async fn forget_unknown(&mut self, c: &SimCluster) {
        let views = c.views().await;
        self.acked.retain(|id| {
            views
                .iter()
                .any(|v| v.registry.contains_key(id) || v.local.contains(id))
        });
    }

    /// Every acknowledged child is registered on every live node.
    pub async fn check_none_lost(&self, c: &SimCluster) -> Result<(), String> {
        for v in c.views().await {
            let lost: Vec<&ChildId> = self
                .acked
                .iter()
                .filter(|id| !v.registry.contains_key(*id))
                .take(5)
                .collect();
            if !lost.is_empty() {
                return Err(format!(
                    "{} lost acknowledged children, e.g. {lost:?}",
                    v.id
                ));
            }
        }
        Ok(())
    }
}
