//! The management endpoint (feature `management`): the live dashboard at
//! `/`, liveness and readiness probes, the cluster view, Prometheus
//! metrics, and drain and decommission actions behind a token. Read-only
//! unless a token is configured.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use bytes::Bytes;

use crate::admission::Admission;
use crate::builder::Management;
use crate::dashboard::{self, Dashboard};
use crate::hub::WeakHub;

/// Connections served at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request's headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any connection is kept.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// hyper's read-buffer limit. hyper checks it between reads, and one read
/// may take a buffer past it, so the request line and headers a client can
/// send stay under 64 KiB only with the limit at half that (measured: about
/// 49 KiB get through; `cli_management` checks that 64 KiB are refused).
const MAX_HEADER_BYTES: usize = 32 * 1024;

#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) hub: WeakHub,
    settings: Arc<Management>,
    expect_peers: bool,
    pub(crate) dashboard: Arc<Dashboard>,
}

/// Serves on `listener` until `cancel`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    hub: WeakHub,
    settings: Management,
    expect_peers: bool,
    (hub_id, cookie): (String, Bytes),
    cancel: CancellationToken,
) {
    let dashboard = Dashboard::start(hub.clone(), hub_id, cookie, cancel.clone());
    let ctx = Ctx {
        hub,
        settings: Arc::new(settings),
        expect_peers,
        dashboard,
    };
    let app = Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/view", get(dashboard::view))
        .route("/dashboard/stream", get(dashboard::stream))
        .route("/dashboard/child", get(dashboard::child))
        .route("/dashboard/decommission", post(dashboard::decommission))
        .route("/alive", get(alive))
        .route("/ready", get(ready))
        .route("/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .route("/drain", post(drain))
        // No route takes a body.
        .layer(DefaultBodyLimit::max(1024))
        .with_state(ctx);
    let mut admission = Admission::new(listener, MAX_CONNECTIONS, "management");
    while let Some((stream, _, permit)) = admission.next(&cancel).await {
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            // A probe's connection is short; none outlives this.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

fn stopped() -> Response {
    unavailable(vec!["the node has stopped".into()])
}

fn unavailable(reasons: Vec<String>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reasons": reasons })),
    )
        .into_response()
}

async fn alive(State(ctx): State<Ctx>) -> Response {
    match ctx.hub.upgrade() {
        Some(h) if h.is_alive().await => Json(json!({ "alive": true })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "alive": false })),
        )
            .into_response(),
    }
}

/// Ready to serve: running, joined (when it has peers to join), quorum
/// held, not draining, and at least `min_members` members.
async fn ready(State(ctx): State<Ctx>) -> Response {
    let Some(h) = ctx.hub.upgrade() else {
        return stopped();
    };
    let Ok((ring, partitioned, leaving, alive)) = h
        .query(|n| {
            (
                n.ring().len(),
                n.is_partitioned(),
                n.is_leaving(),
                n.is_alive(),
            )
        })
        .await
    else {
        return stopped();
    };
    let mut reasons = Vec::new();
    if !alive {
        reasons.push("the node has left the cluster".to_string());
    }
    if leaving {
        reasons.push("draining: handing children over".into());
    }
    if partitioned {
        reasons.push("partitioned: quorum lost".into());
    }
    if ctx.expect_peers && ring < 2 {
        reasons.push("no other member in the ring".into());
    }
    if ring < ctx.settings.min_members {
        reasons.push(format!(
            "{ring} of the {} members --min-members asks for",
            ctx.settings.min_members
        ));
    }
    if reasons.is_empty() {
        Json(json!({ "ready": true, "members": ring })).into_response()
    } else {
        unavailable(reasons)
    }
}

async fn cluster(State(ctx): State<Ctx>) -> Response {
    let Some(h) = ctx.hub.upgrade() else {
        return stopped();
    };
    match h.status().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => unavailable(vec![e.to_string()]),
    }
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let Some(h) = ctx.hub.upgrade() else {
        return stopped();
    };
    match h.metrics_text().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => stopped(),
    }
}

/// The refusal to send unless `headers` carry the management token (403
/// when no token is configured, 401 otherwise); `None` when they do.
pub(crate) fn refusal(ctx: &Ctx, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = ctx.settings.token.as_deref() else {
        return Some(
            (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "read-only: no management token is configured" })),
            )
                .into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Compared in constant time: the time taken says nothing about how
    // much of the token matched.
    let matches = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())));
    if !matches {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "a valid Authorization: Bearer token is required" })),
            )
                .into_response(),
        );
    }
    None
}

/// `POST /drain` with `Authorization: Bearer <token>`: the node hands its
/// children over and leaves, as on SIGTERM.
async fn drain(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&ctx, &headers) {
        return refused;
    }
    let Some(h) = ctx.hub.upgrade() else {
        return stopped();
    };
    info!("drain requested through the management endpoint");
    tokio::spawn(async move {
        match h.shutdown().await {
            Ok(()) => {}
            // A second drain while the first goes on: nothing failed.
            Err(crate::HubError::Command(hub_core::CommandError::ShuttingDown)) => {
                debug!("drain requested again while draining");
            }
            Err(e) => warn!(error = %e, "drain failed"),
        }
    });
    (StatusCode::ACCEPTED, Json(json!({ "draining": true }))).into_response()
}
