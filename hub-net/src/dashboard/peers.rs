//! Each member's own report (status, quorum, connections, moves in
//! flight, totals), asked over the control protocol with the hub's
//! cookie, in parallel and with a short deadline, so that one slow or
//! dead member leaves only its own row empty.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::Mutex;

use hub_core::NodeId;

use crate::client::Client;
use crate::control::{ChildReport, CtlReply, CtlRequest};
use crate::hub::Hub;

use super::view::NodeView;

/// How long a member has to answer before its row says why not.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// Control connections to the members, kept between views.
pub(crate) struct Peers {
    hub_id: String,
    cookie: Bytes,
    clients: Mutex<BTreeMap<NodeId, Client>>,
}

impl Peers {
    pub(crate) fn new(hub_id: String, cookie: Bytes) -> Self {
        Peers {
            hub_id,
            cookie,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sends `request` to `node` at `addr`, reusing its connection.
    async fn ask(
        &self,
        client: Option<Client>,
        addr: &str,
        request: CtlRequest,
    ) -> (Option<Client>, Result<CtlReply, String>) {
        let attempt = async {
            let mut c = match client {
                Some(c) => c,
                None => Client::connect(addr, &self.hub_id, self.cookie.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let reply = c
                .request(request, ASK_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((c, reply))
        };
        match tokio::time::timeout(ASK_TIMEOUT, attempt).await {
            Ok(Ok((c, reply))) => (Some(c), Ok(reply)),
            Ok(Err(e)) => (None, Err(e)),
            Err(_) => (None, Err("no answer in time".into())),
        }
    }

    /// Fills each node's `report` (the first is the serving node, asked
    /// directly), or says why it has none.
    pub(crate) async fn fill(&self, hub: &Hub, nodes: &mut [NodeView]) {
        let mut clients = self.clients.lock().await;
        let mut asks = Vec::new();
        let mut idx = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate().skip(1) {
            let why = match n.status.as_str() {
                "left" => Some("left the cluster"),
                "down" => Some("down: not asked for a report"),
                _ if n.addr.is_empty() => Some("no address to ask"),
                _ => None,
            };
            if let Some(why) = why {
                clients.remove(&n.id);
                n.unreachable = Some(why.to_string());
                continue;
            }
            let client = clients.remove(&n.id);
            let addr = n.addr.clone();
            asks.push(async move { self.ask(client, &addr, CtlRequest::Report).await });
            idx.push(i);
        }
        // The serving node answers for itself while the others do.
        let (own, answers) = tokio::join!(hub.report(), join_all(asks));
        if let Some(n) = nodes.first_mut() {
            match own {
                Ok(r) => n.report = Some(r),
                Err(e) => n.unreachable = Some(e.to_string()),
            }
        }
        for (i, (client, reply)) in idx.into_iter().zip(answers) {
            let n = &mut nodes[i];
            if let Some(c) = client {
                clients.insert(n.id.clone(), c);
            }
            match reply {
                Ok(CtlReply::Report(r)) => n.report = Some(*r),
                Ok(other) => n.unreachable = Some(unexpected(&other)),
                Err(e) => n.unreachable = Some(e),
            }
        }
    }

    /// What `holder` (at `addr`) knows of its child `id`.
    pub(crate) async fn child(
        &self,
        holder: &NodeId,
        addr: &str,
        id: &str,
    ) -> Result<Option<ChildReport>, String> {
        let client = self.clients.lock().await.remove(holder);
        let request = CtlRequest::ChildReport { id: id.into() };
        let (client, reply) = self.ask(client, addr, request).await;
        if let Some(c) = client {
            self.clients.lock().await.insert(holder.clone(), c);
        }
        match reply? {
            CtlReply::ChildReport(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }
}

/// A member answered with something else: an older version, or an
/// error.
fn unexpected(reply: &CtlReply) -> String {
    match reply {
        CtlReply::Error(e) => e.clone(),
        _ => "an unexpected answer (another version?)".into(),
    }
}
