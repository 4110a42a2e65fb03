//! The simulated network: seeded delay, loss, duplication, reordering and
//! blocked links.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use hub_core::{Message, NodeId, Time};
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// Network behaviour. Delays are uniform in `[min_delay, max_delay]`, so
/// messages between two nodes may overtake each other (reordering).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// Shortest delivery delay.
    pub min_delay: Duration,
    /// Longest delivery delay.
    pub max_delay: Duration,
    /// Probability a message is lost.
    pub drop_rate: f64,
    /// Probability a message is delivered twice.
    pub duplicate_rate: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            drop_rate: 0.0,
            duplicate_rate: 0.0,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct InFlight {
    pub(crate) at: Time,
    pub(crate) seq: u64,
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Network {
    pub(crate) cfg: NetConfig,
    queue: BinaryHeap<Reverse<InFlight>>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    seq: u64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < p
}

impl Network {
    pub(crate) fn new(cfg: NetConfig) -> Self {
        Network {
            cfg,
            queue: BinaryHeap::new(),
            blocked: BTreeSet::new(),
            seq: 0,
            sent: 0,
            dropped: 0,
        }
    }

    pub(crate) fn send(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Time,
        from: &NodeId,
        to: &NodeId,
        msg: &Message,
    ) -> Result<(), String> {
        let bytes = hub_core::protocol::encode(msg, hub_core::protocol::DEFAULT_MAX_FRAME)
            .map_err(|e| format!("{from} -> {to}: cannot encode {msg:?}: {e}"))?;
        self.sent += 1;
        if self.blocked.contains(&(from.clone(), to.clone())) || chance(rng, self.cfg.drop_rate) {
            self.dropped += 1;
            return Ok(());
        }
        let copies = if chance(rng, self.cfg.duplicate_rate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let span = self
                .cfg
                .max_delay
                .saturating_sub(self.cfg.min_delay)
                .as_millis() as u64;
            let jitter = if span == 0 {
                0
            } else {
                rng.next_u64() % (span + 1)
            };
            let at = now + self.cfg.min_delay + Duration::from_millis(jitter);
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at,
                seq: self.seq,
                from: from.clone(),
                to: to.clone(),
                bytes: bytes.clone(),
            }));
        }
        Ok(())
    }

    pub(crate) fn next_at(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse(m)| m.at)
    }

    pub(crate) fn pop_due(&mut self, now: Time) -> Option<InFlight> {
        if self.next_at()? <= now {
            self.queue.pop().map(|Reverse(m)| m)
        } else {
            None
        }
    }

    pub(crate) fn block(&mut self, from: &NodeId, to: &NodeId) {
        self.blocked.insert((from.clone(), to.clone()));
    }

    pub(crate) fn unblock_all(&mut self) {
        self.blocked.clear();
    }

    pub(crate) fn is_blocked(&self, from: &NodeId, to: &NodeId) -> bool {
        self.blocked.contains(&(from.clone(), to.clone()))
    }

    /// `from -> to: Variant` of up to `max` messages in flight.
    pub(crate) fn describe(&self, max: usize) -> Vec<String> {
        self.queue
            .iter()
            .take(max)
            .map(|Reverse(m)| {
                let kind = hub_core::protocol::decode(&m.bytes, usize::MAX)
                    .map(|msg| format!("{msg:?}").chars().take(60).collect::<String>())
                    .unwrap_or_else(|e| e.to_string());
                format!("{} -> {} @{}: {kind}", m.from, m.to, m.at.as_millis())
            })
            .collect()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
