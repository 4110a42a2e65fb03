//! The node task's control requests (`hub status`, `hub ctl`): answered
//! from the node's state or run as commands.

use std::time::Duration;

use hub_core::{Command, Node, NodeId, Reply};

use crate::control::{ChildReport, CtlReply, CtlRequest, MemberStatus, Report, Status};
use crate::error::CallError;
use crate::metrics::Metrics;
use crate::wire::Wire;

use super::Driver;

impl Driver {
    pub(super) fn ctl_reply(&mut self, conn: u64, req: u64, reply: CtlReply) {
        if let Some((_, c)) = self.conn_peer.get(&conn) {
            c.send(&Wire::CtlReply { req, reply });
        }
    }

    /// Runs a command for a control client; its reply is relayed when the
    /// node answers (see `perform`).
    pub(super) fn ctl_command(&mut self, conn: u64, req: u64, command: Command) {
        let r = self.request_id();
        self.ctl_waiting.insert(r, (conn, req));
        let now = self.now();
        self.node.handle_command(now, r, command);
    }

    pub(super) fn on_ctl(&mut self, conn: u64, req: u64, request: CtlRequest) {
        let reply = match request {
            CtlRequest::Status => CtlReply::Status(status(&self.node, self.conns.len())),
            CtlRequest::Report => CtlReply::Report(Box::new(Report {
                status: status(&self.node, self.conns.len()),
                strict: self.node.config().strict.is_some(),
                totals: self.net.metrics.totals(&self.node.counters()),
            })),
            CtlRequest::ChildReport { id } => {
                CtlReply::ChildReport(child_report(&self.node, &self.net.metrics, id.as_str()))
            }
            CtlRequest::Lookup { id } => {
                let waiting = self.node.is_waiting(id.as_str());
                CtlReply::Lookup(self.node.child_lookup(id.as_str()), waiting)
            }
            CtlRequest::Waiting => CtlReply::Waiting(self.node.waiting_children()),
            CtlRequest::Kind { id } => CtlReply::Kind(
                self.node
                    .registry()
                    .spec(id.as_str())
                    .map(|s| s.kind.clone()),
            ),
            CtlRequest::Which { global } => CtlReply::Which(self.node.which_children(global)),
            CtlRequest::Start { specs } => {
                let opts = hub_core::StartOptions::awaited();
                return self.ctl_command(conn, req, Command::StartChildren { specs, opts });
            }
            CtlRequest::Stop { ids } => {
                let opts = hub_core::StopOptions::awaited();
                return self.ctl_command(conn, req, Command::StopChildren { ids, opts });
            }
            CtlRequest::Decommission { node } => {
                return self.ctl_command(conn, req, Command::Decommission(node));
            }
            CtlRequest::Call {
                id,
                payload,
                timeout_ms,
            } => {
                let api = self.api.clone();
                let metrics = self.net.metrics.clone();
                let c = self.conn_peer.get(&conn).map(|(_, c)| c.clone());
                tokio::spawn(async move {
                    let t = Duration::from_millis(timeout_ms);
                    let result = match api.upgrade() {
                        Some(api) => {
                            crate::calls::call_retrying(&api, &metrics, id, payload, None, t).await
                        }
                        None => Err(CallError::Closed),
                    };
                    if let Some(c) = c {
                        c.send(&Wire::CtlReply {
                            req,
                            reply: CtlReply::Called(result),
                        });
                    }
                });
                return;
            }
        };
        self.ctl_reply(conn, req, reply);
    }
}

/// What the node knows of local child `id`, if it runs here.
pub(crate) fn child_report(node: &Node, metrics: &Metrics, id: &str) -> Option<ChildReport> {
    node.registry().holds(node.id(), id).then(|| ChildReport {
        role: node.local_role(id).map(|r| format!("{r:?}").to_lowercase()),
        restarts: metrics.restarts(id),
    })
}

/// The node's status report.
pub(crate) fn status(node: &Node, connections: usize) -> Status {
    let unsettled = node.unsettled();
    Status {
        hub_id: node.config().hub_id.clone(),
        node_id: node.id().clone(),
        ring: node.nodes(),
        members: node
            .members()
            .map(|m| MemberStatus {
                id: m.info.id.clone(),
                addr: m.info.addr.clone(),
                status: format!("{:?}", m.status).to_lowercase(),
            })
            .collect(),
        connections,
        children: node.count_children(),
        local_children: node.local_children().len(),
        waiting: node.waiting_children().len(),
        locked: node.is_locked(),
        partitioned: node.is_partitioned(),
        settled: unsettled.is_none(),
        unsettled,
    }
}

/// `me`: a node decommissioned through itself answers `Left`.
pub(crate) fn ctl_reply_of(reply: Reply, me: NodeId) -> CtlReply {
    match reply {
        Reply::Started(o) => CtlReply::Started {
            started: o.started,
            failed: o
                .failed
                .into_iter()
                .map(|f| (f.id, f.error.to_string()))
                .collect(),
        },
        Reply::Stopped(o) => CtlReply::Stopped {
            stopped: o.stopped.into_keys().collect(),
            failed: o
                .failed
                .into_iter()
                .map(|(id, _, e)| (id, e.to_string()))
                .collect(),
        },
        Reply::Decommissioned(n) => CtlReply::Decommissioned(n),
        Reply::Left => CtlReply::Decommissioned(me),
        Reply::Error(e) => CtlReply::Error(e.to_string()),
        other => CtlReply::Error(format!("unexpected reply {other:?}")),
    }
}
