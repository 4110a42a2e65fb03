//! The dashboard's event log: the serving node's events worth a line
//! (joins, leaves, moves, duplicates resolved, refusals, failures,
//! quorum), the last [`LOG_CAPACITY`] of them, each numbered so a page
//! asks only for what it has not seen. Per-child starts and registry
//! rows are left out: at 100 k children they would drown the rest and
//! are counted in the plots instead.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hub_core::Event;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::hub::WeakHub;

/// Lines kept; older ones are dropped.
pub(crate) const LOG_CAPACITY: usize = 1000;

/// One line.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Line {
    pub(crate) seq: u64,
    pub(crate) at_ms: u64,
    /// `membership`, `moves`, `children`, `conflicts`, `refusals` or
    /// `quorum`: what the page filters on.
    pub(crate) category: &'static str,
    pub(crate) text: String,
}

/// The log, shared by the collector and the page's requests.
#[derive(Debug, Default)]
pub(crate) struct Log {
    lines: Mutex<(u64, VecDeque<Line>)>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The log line for `e`, if it gets one.
pub(crate) fn describe(e: &Event) -> Option<(&'static str, String)> {
    let ids = |v: &[hub_core::ChildId]| {
        let shown: Vec<&str> = v.iter().take(5).map(|c| c.as_str()).collect();
        let more = v.len().saturating_sub(shown.len());
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    Some(match e {
        Event::ClusterJoin(n) => ("membership", format!("{n} joined")),
        Event::ClusterLeave(n) => ("membership", format!("{n} left the ring")),
        Event::ChildMigrated { to, children } => {
            let what = match children.len() {
                1 => "1 child".to_string(),
                n => format!("{n} children"),
            };
            ("moves", format!("{what} moved to {to}: {}", ids(children)))
        }
        Event::PreRedistribution { direction, node } => (
            "moves",
            format!("redistribution for {node} ({direction:?}) began"),
        ),
        Event::PostRedistribution { direction, node } => (
            "moves",
            format!("redistribution for {node} ({direction:?}) ended"),
        ),
        Event::DuplicateResolved { id, kept_on } => (
            "conflicts",
            format!("duplicate of {id} stopped here; kept on {kept_on:?}"),
        ),
        Event::PeerRefused { node, theirs, ours } => (
            "refusals",
            format!("{node} refused: strict quorum {theirs:?}, ours {ours:?}"),
        ),
        Event::ForwardingLimit { id, path, .. } => (
            "refusals",
            format!("start of {id} hit the forwarding limit via {path:?}"),
        ),
        Event::PlacementFallback { id, named } => (
            "children",
            format!("{id} placed elsewhere: {named:?} unavailable"),
        ),
        Event::Recovered { id, seq } => ("children", format!("{id} recovered from snapshot {seq}")),
        Event::ChildFailed { id, reason } => ("children", format!("{id} failed: {reason}")),
        Event::ChildRestarted { id, .. } => ("children", format!("{id} restarted")),
        Event::Partitioned => ("quorum", "quorum lost: children stopped".into()),
        Event::QuorumRestored => ("quorum", "quorum restored".into()),
        Event::Shutdown { reason } => ("membership", format!("this node left: {reason}")),
        _ => return None,
    })
}

impl Log {
    pub(crate) fn push(&self, category: &'static str, text: String) {
        let Ok(mut g) = self.lines.lock() else {
            return;
        };
        let (seq, lines) = &mut *g;
        *seq += 1;
        if lines.len() == LOG_CAPACITY {
            lines.pop_front();
        }
        lines.push_back(Line {
            seq: *seq,
            at_ms: now_ms(),
            category,
            text,
        });
    }

    /// Lines after `seq`, oldest first.
    pub(crate) fn since(&self, seq: u64) -> Vec<Line> {
        self.lines.lock().map_or_else(
            |_| Vec::new(),
            |g| g.1.iter().filter(|l| l.seq > seq).cloned().collect(),
        )
    }

    /// Collects the hub's events until `cancel` or the hub stops.
    pub(crate) async fn collect(&self, hub: WeakHub, cancel: CancellationToken) {
        let Some(mut rx) = hub.upgrade().map(|h| h.subscribe()) else {
            return;
        };
        loop {
            let got = select! {
                _ = cancel.cancelled() => return,
                got = rx.recv() => got,
            };
            match got {
                Ok(e) => {
                    if let Some((category, text)) = describe(&e) {
                        self.push(category, text);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let text = format!(
                        "{n} events not logged: they came faster than the log could take them"
                    );
                    self.push("moves", text);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::NodeId;

    #[test]
    fn the_log_keeps_the_last_lines_and_answers_what_a_page_has_not_seen() {
        let log = Log::default();
        for i in 0..LOG_CAPACITY + 5 {
            log.push("membership", format!("line {i}"));
        }
        let all = log.since(0);
        assert_eq!(all.len(), LOG_CAPACITY);
        assert_eq!(all[0].seq, 6);
        let last = all.last().map(|l| l.seq).unwrap_or(0);
        assert!(log.since(last).is_empty());
        assert_eq!(log.since(last - 2).len(), 2);
    }

    #[test]
    fn per_child_starts_get_no_line_and_moves_name_a_few_children() {
        let start = Event::ChildStarted {
            id: "c".into(),
            handle: hub_core::Handle(1),
        };
        assert!(describe(&start).is_none());
        let moved = Event::ChildMigrated {
            to: NodeId::new("n2"),
            children: (0..8).map(|i| format!("c{i}").into()).collect(),
        };
        let (cat, text) = describe(&moved).unwrap();
        assert_eq!(cat, "moves");
        assert_eq!(
            text,
            "8 children moved to n2: c0, c1, c2, c3, c4 and 3 more"
        );
    }
}
