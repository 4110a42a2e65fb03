//! The live web dashboard, served by the management endpoint at `/`:
//! the page and its assets compiled into the binary (nothing is fetched
//! from elsewhere), a view of the cluster aggregated here, pushed to the
//! page every second over server-sent events, a child search, and the
//! decommission action behind the management token.

mod log;
mod peers;
mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use hub_core::membership::Status;
use hub_core::NodeId;

use crate::hub::{Hub, WeakHub};
use crate::management::{refusal, Ctx};

pub(crate) use log::Log;
use peers::Peers;
use view::View;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// A view is rebuilt at most this often, whatever the number of pages
/// open: each rebuild is one pass over the registry in the node's task.
const VIEW_MAX_AGE: Duration = Duration::from_millis(500);
/// How often a page gets a new view.
const PUSH_EVERY: Duration = Duration::from_secs(1);
/// A stream ends before the endpoint's connection lifetime cuts it, and
/// the page reconnects at once from the last line it has.
const STREAM_LIFETIME: Duration = Duration::from_secs(25);

/// The dashboard's state: the event log, the members' connections and
/// the latest view.
pub(crate) struct Dashboard {
    /// When this process began serving (ms since the Unix epoch): log
    /// numbers start again at 1 with each process, so a page that
    /// reconnects to a restarted node must not skip the new lines.
    epoch: u64,
    log: Log,
    peers: Peers,
    latest: Mutex<Option<(Instant, Arc<String>)>>,
}

impl Dashboard {
    /// Starts collecting the hub's events into the log.
    pub(crate) fn start(
        hub: WeakHub,
        hub_id: String,
        cookie: bytes::Bytes,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let d = Arc::new(Dashboard {
            epoch: log::now_ms(),
            log: Log::default(),
            peers: Peers::new(hub_id, cookie),
            latest: Mutex::new(None),
        });
        let collector = d.clone();
        tokio::spawn(async move { collector.log.collect(hub, cancel).await });
        d
    }

    /// The current view as JSON, rebuilt when older than
    /// [`VIEW_MAX_AGE`].
    async fn view(&self, hub: &Hub) -> Result<Arc<String>, String> {
        let mut latest = self.latest.lock().await;
        if let Some((at, v)) = latest.as_ref() {
            if at.elapsed() < VIEW_MAX_AGE {
                return Ok(v.clone());
            }
        }
        let mut part = hub
            .query(view::node_part)
            .await
            .map_err(|e| e.to_string())?;
        self.peers.fill(hub, &mut part.nodes).await;
        let misplaced = part
            .nodes
            .iter()
            .filter_map(|n| n.report.as_ref()?.status.unsettled.as_ref())
            .map(|u| u.misplaced + u.outbound + u.handing + u.orphans)
            .sum();
        let v = View {
            at_ms: log::now_ms(),
            misplaced,
            part,
        };
        let text = Arc::new(serde_json::to_string(&v).map_err(|e| e.to_string())?);
        *latest = Some((Instant::now(), text.clone()));
        Ok(text)
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn bad_request(why: impl Into<String>) -> Response {
    let body = json!({ "error": why.into() });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The longest child or node id a request may name.
const MAX_ID: usize = 1024;

fn gone() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "the node has stopped" })),
    )
        .into_response()
}

/// `GET /dashboard/view`: the view once, as JSON.
pub(crate) async fn view(State(ctx): State<Ctx>) -> Response {
    let Some(h) = ctx.hub.upgrade() else {
        return gone();
    };
    match ctx.dashboard.view(&h).await {
        Ok(v) => ([(header::CONTENT_TYPE, "application/json")], (*v).clone()).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e }))).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Since {
    since: Option<u64>,
}

/// `GET /dashboard/stream`: a `view` event every second and `log`
/// events with the lines the page has not seen (from `Last-Event-ID` on
/// a reconnect, else `?since=`).
pub(crate) async fn stream(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    q: Result<Query<Since>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad_request("since must be a log line number");
    };
    let epoch = ctx.dashboard.epoch;
    // `EPOCH:SEQ`; from another process (the node restarted), start over.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(e, seq)| Some((e.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)))
        .map(|(e, seq)| if e == epoch { seq } else { 0 });
    let since = resumed.or(q.since).unwrap_or(0);
    let started = Instant::now();
    let state = (ctx, since, true);
    let s = stream::unfold(state, move |(ctx, since, first)| async move {
        if !first {
            tokio::time::sleep(PUSH_EVERY).await;
        }
        if started.elapsed() > STREAM_LIFETIME {
            return None;
        }
        let h = ctx.hub.upgrade()?;
        let mut events: Vec<Result<SseEvent, Infallible>> = Vec::new();
        let lines = ctx.dashboard.log.since(since);
        let mut last = since;
        if let Some(l) = lines.last() {
            last = l.seq;
            let data = json!({ "epoch": epoch, "lines": lines }).to_string();
            events.push(Ok(SseEvent::default()
                .event("log")
                .id(format!("{epoch}:{last}"))
                .data(data)));
        }
        match ctx.dashboard.view(&h).await {
            Ok(v) => events.push(Ok(SseEvent::default()
                .event("view")
                .retry(Duration::from_millis(200))
                .data(v.as_str()))),
            Err(e) => events.push(Ok(SseEvent::default().event("trouble").data(e))),
        }
        Some((stream::iter(events), (ctx, last, false)))
    });
    Sse::new(futures_util::StreamExt::flatten(s))
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct ChildQuery {
    id: String,
}

/// `GET /dashboard/child?id=`: where a child runs, its kind, metadata,
/// role and restarts (asked of the node that runs it).
pub(crate) async fn child(
    State(ctx): State<Ctx>,
    q: Result<Query<ChildQuery>, QueryRejection>,
) -> Response {
    let id = match q {
        Ok(Query(q)) if !q.id.trim().is_empty() && q.id.len() <= MAX_ID => q.id.trim().to_string(),
        _ => return bad_request(format!("give one child id, at most {MAX_ID} bytes: ?id=ID")),
    };
    let Some(h) = ctx.hub.upgrade() else {
        return gone();
    };
    let found = {
        let id = id.clone();
        h.query(move |n| {
            let holders = n.child_lookup(&id);
            let spec = n.registry().spec(&id).cloned();
            let active = n.active_holder(&id);
            let addrs: Vec<(NodeId, String)> = holders
                .iter()
                .map(|(node, _)| {
                    let addr = n
                        .members()
                        .find(|m| m.info.id == *node)
                        .map(|m| m.info.addr.clone())
                        .unwrap_or_default();
                    (node.clone(), addr)
                })
                .collect();
            (
                holders,
                spec,
                active,
                addrs,
                n.is_waiting(&id),
                n.id().clone(),
            )
        })
        .await
    };
    let Ok((holders, spec, active, addrs, waiting, me)) = found else {
        return gone();
    };
    let Some(spec) = spec else {
        let body = json!({ "id": id, "found": false, "waiting": waiting });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let mut copies = Vec::new();
    for (node, addr) in addrs {
        let report = if node == me {
            h.child_report(id.as_str()).await.map_err(|e| e.to_string())
        } else {
            ctx.dashboard.peers.child(&node, &addr, &id).await
        };
        let (role, restarts, error) = match report {
            Ok(Some(r)) => (r.role, Some(r.restarts), None),
            Ok(None) => (None, None, Some("not running there".to_string())),
            Err(e) => (None, None, Some(e)),
        };
        copies.push(json!({
            "node": node, "active": active.as_ref() == Some(&node),
            "role": role, "restarts": restarts, "error": error,
        }));
    }
    Json(json!({
        "id": id, "found": true, "kind": spec.kind, "metadata": spec.metadata,
        "restart": format!("{:?}", spec.restart), "holders": holders.len(),
        "copies": copies, "waiting": waiting,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct NodeQuery {
    node: String,
}

/// `POST /dashboard/decommission?node=`: drains that node and takes it
/// out of the cluster (the serving node itself included), behind the
/// management token. Answers once the drain has begun.
pub(crate) async fn decommission(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    q: Result<Query<NodeQuery>, QueryRejection>,
) -> Response {
    if let Some(refused) = refusal(&ctx, &headers) {
        return refused;
    }
    let node = match q {
        Ok(Query(q)) if !q.node.trim().is_empty() && q.node.len() <= MAX_ID => {
            NodeId::new(q.node.trim())
        }
        _ => {
            return bad_request(format!(
                "give one node id, at most {MAX_ID} bytes: ?node=ID"
            ))
        }
    };
    let Some(h) = ctx.hub.upgrade() else {
        return gone();
    };
    let status = h
        .query({
            let node = node.clone();
            move |n| {
                if *n.id() == node {
                    return Some(Status::Up);
                }
                n.members().find(|m| m.info.id == node).map(|m| m.status)
            }
        })
        .await
        .ok()
        .flatten();
    match status {
        None => {
            let body = json!({ "error": format!("{node} is not a member") });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
        Some(Status::Left) => {
            let body = json!({ "error": format!("{node} has already left the cluster") });
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        Some(Status::Down) => {
            // As `hub ctl decommission` says: there is nothing to drain;
            // its children restart on their new owners by themselves.
            let body = json!({
                "error": format!("{node} is down, not a live member: its children restart elsewhere")
            });
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        Some(_) => {}
    }
    info!(%node, "decommission requested through the dashboard");
    ctx.dashboard
        .log
        .push("membership", format!("decommission of {node} requested"));
    let target = node.clone();
    let dashboard = ctx.dashboard.clone();
    tokio::spawn(async move {
        if let Err(e) = h.decommission(target.clone()).await {
            warn!(node = %target, error = %e, "decommission failed");
            dashboard
                .log
                .push("refusals", format!("decommission of {target} failed: {e}"));
        }
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "decommissioning": node })),
    )
        .into_response()
}
