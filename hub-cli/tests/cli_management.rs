//! The management endpoint as an operator meets it: real HTTP requests to
//! `hub node` processes started with `--management`: probes, the cluster
//! view, Prometheus metrics whose counts match what was done, bad requests
//! refused while the node keeps serving, readiness through a partition,
//! and a drain behind the token.

mod procs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use procs::*;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Status and body of `GET http://addr/path`.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut r = agent()
        .get(&format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
    let body = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), body)
}

fn post(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent().post(&format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send_empty().unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), body)
}

/// The sum over nodes of a metric's samples matching `labels`.
fn metric(mgmt: &[String], name: &str, labels: &[(&str, &str)]) -> f64 {
    mgmt.iter()
        .map(|m| {
            let (status, text) = get(m, "/metrics");
            assert_eq!(status, 200, "{text}");
            let lines = text.lines().map(|l| Ok(l.to_string()));
            let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .sum::<f64>()
        })
        .sum()
}

/// Writes `bytes` on a raw connection and returns what came back.
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before reading everything: a refusal.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn probes_cluster_view_metrics_bad_requests_and_drain() {
    let cookie = cookie_file("mgmt");
    let token = std::env::temp_dir().join(format!("hub-cli-mgmt-token-{}", std::process::id()));
    std::fs::write(&token, "op-secret\n").unwrap();
    let (mut procs, addrs, mgmt) = managed(3, &cookie, &[], Some(&token));

    for m in &mgmt {
        assert_eq!(get(m, "/alive"), (200, r#"{"alive":true}"#.into()));
        let ready = eventually(Duration::from_secs(10), || get(m, "/ready").0 == 200);
        assert!(ready, "{:?}", get(m, "/ready"));
    }
    let (status, body) = get(&mgmt[1], "/cluster");
    assert_eq!(status, 200);
    let cluster: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cluster["node_id"], "p1");
    assert_eq!(
        cluster["ring"].as_array().map(Vec::len),
        Some(3),
        "{cluster}"
    );

    const N: usize = 1000;
    let ids = start_ids(&addrs[0], &cookie, "m", N);
    assert_eq!(ids.len(), N);
    assert_eq!(
        metric(&mgmt, "hub_children_started_total", &[]),
        N as f64,
        "every start counted once, on the node that ran it"
    );
    let synced = eventually(Duration::from_secs(10), || {
        metric(&mgmt, "hub_registry_children", &[("kind", "counter")]) == (3 * N) as f64
    });
    assert!(synced, "each registry lists all {N}");
    assert_eq!(
        metric(&mgmt, "hub_local_children", &[("kind", "counter")]),
        N as f64
    );
    assert!(metric(&mgmt, "hub_frames_total", &[("direction", "in")]) > 0.0);

    // Bad requests are refused; the endpoint keeps serving.
    let garbage = raw(&mgmt[0], b"NOT HTTP AT ALL\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    // Headers of 64 KiB or more are refused, however the bytes arrive.
    for size in [64 * 1024, 1 << 20] {
        let huge = format!(
            "GET /alive HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let refused = raw(&mgmt[0], huge.as_bytes());
        assert!(
            refused.is_empty()
                || refused.starts_with("HTTP/1.1 431")
                || refused.starts_with("HTTP/1.1 400"),
            "{size} bytes of header: {refused}"
        );
    }
    assert_eq!(get(&mgmt[0], "/nowhere").0, 404);
    assert_eq!(get(&mgmt[0], "/alive").0, 200, "still serving");

    // Clients that connect and never finish a request are shed (at most
    // 64 connections, 5 s to send the headers): the node's own protocol is
    // untouched and the endpoint serves again once they are dropped.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&mgmt[0]).unwrap();
            let _ = s.write_all(b"GET /alive HTTP/1.1\r\n");
            s
        })
        .collect();
    assert!(
        procs::status(&addrs[0], &cookie).is_some(),
        "the cluster port still answers"
    );
    let back = eventually(Duration::from_secs(15), || {
        agent()
            .get(&format!("http://{}/alive", mgmt[0]))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(
        back,
        "the endpoint serves again while the idle clients hang on"
    );
    // And an unfinished request is closed by the server, not held.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = first.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the server closed the idle connection: {closed:?}"
    );

    // Drain: only with the token.
    assert_eq!(post(&mgmt[2], "/drain", None).0, 401);
    assert_eq!(post(&mgmt[2], "/drain", Some("guess")).0, 401);
    assert_eq!(post(&mgmt[2], "/drain", Some("op-secret")).0, 202);
    let st = exits(&mut procs.0[2], Duration::from_secs(30));
    assert!(st.success(), "a drained node exits 0: {st:?}");
    let handed = eventually(Duration::from_secs(20), || {
        survivors_run(&addrs[..2], &cookie, N, "p2")
    });
    assert!(handed, "the drained node's children run on the others");
}

#[test]
fn readiness_follows_quorum_and_a_read_only_endpoint_refuses_drain() {
    let cookie = cookie_file("mgmt-ready");
    let (procs, _addrs, mgmt) = managed(3, &cookie, &["--partition", "majority:3"], None);
    assert!(eventually(Duration::from_secs(10), || get(
        &mgmt[0], "/ready"
    )
    .0 == 200));
    assert_eq!(
        post(&mgmt[0], "/drain", Some("anything")).0,
        403,
        "read-only"
    );

    let signal = |sig: &str, i: usize| {
        let ok = Command::new("kill")
            .args([sig, &procs.0[i].id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP", 1);
    signal("-STOP", 2);
    let lost = eventually(Duration::from_secs(20), || {
        let (status, body) = get(&mgmt[0], "/ready");
        status == 503 && body.contains("partitioned")
    });
    signal("-CONT", 1);
    signal("-CONT", 2);
    assert!(
        lost,
        "not ready while partitioned: {:?}",
        get(&mgmt[0], "/ready")
    );
    assert_eq!(get(&mgmt[0], "/alive").0, 200, "alive though not ready");
    let back = eventually(Duration::from_secs(30), || get(&mgmt[0], "/ready").0 == 200);
    assert!(
        back,
        "ready again once healed: {:?}",
        get(&mgmt[0], "/ready")
    );
    assert!(metric(&mgmt[..1], "hub_partitions_total", &[]) >= 1.0);
}

#[test]
fn a_join_under_hot_swap_counts_its_handovers_and_its_redistribution() {
    let cookie = cookie_file("mgmt-hot");
    let (mut procs, addrs, mut mgmt) = managed(3, &cookie, &["--migration", "hot-handover"], None);
    const N: usize = 300;
    assert_eq!(start_ids(&addrs[0], &cookie, "h", N).len(), N);

    let joiner = free_addr();
    let joiner_mgmt = free_addr();
    let args: Vec<String> = ["--management", &joiner_mgmt, "--migration", "hot-handover"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    procs.0.push(node_with_args(
        "p3",
        &joiner,
        Some(&addrs[0]),
        &cookie,
        &args,
    ));
    let mut all = addrs.clone();
    all.push(joiner);
    wait_ring(&all, &cookie, 4);
    let moved = eventually(Duration::from_secs(20), || {
        let here = metric(
            std::slice::from_ref(&joiner_mgmt),
            "hub_local_children",
            &[],
        );
        here > 0.0 && metric(&mgmt, "hub_handovers_total", &[]) == here
    });
    let here = metric(
        std::slice::from_ref(&joiner_mgmt),
        "hub_local_children",
        &[],
    );
    assert!(
        moved,
        "every child the joiner runs came by an acknowledged handover: {} handovers, {here} on the joiner",
        metric(&mgmt, "hub_handovers_total", &[])
    );
    assert_eq!(metric(&mgmt, "hub_handovers_abandoned_total", &[]), 0.0);
    assert!(metric(&mgmt, "hub_handover_seconds_total", &[]) > 0.0);
    mgmt.push(joiner_mgmt);
    // Each old node redistributed for the join, and said how long it took.
    let timed = eventually(Duration::from_secs(10), || {
        mgmt[..3].iter().all(|m| {
            metric(
                std::slice::from_ref(m),
                "hub_redistribution_seconds_count",
                &[],
            ) >= 1.0
        })
    });
    assert!(timed, "a redistribution histogram sample on every old node");
    assert_eq!(
        metric(&mgmt, "hub_registry_slices_behind", &[]),
        0.0,
        "no sync lag once quiet"
    );
}

#[test]
fn the_dashboard_serves_its_page_a_small_view_and_refuses_bad_requests() {
    let cookie = cookie_file("mgmt-dash");
    let token = std::env::temp_dir().join(format!("hub-dash-http-{}", std::process::id()));
    std::fs::write(&token, "dash-secret\n").unwrap();
    let (mut procs, addrs, mgmt) = managed(2, &cookie, &[], Some(&token));
    start_ids(&addrs[0], &cookie, "d", 200);

    let (status, page) = get(&mgmt[1], "/");
    assert_eq!(status, 200);
    assert!(page.contains("/dashboard/app.js"), "{page}");
    for asset in ["/dashboard/app.js", "/dashboard/app.css"] {
        let (status, body) = get(&mgmt[1], asset);
        assert!(status == 200 && body.len() > 1000, "{asset}: {status}");
    }

    // The view: both nodes with their own reports, the children counted,
    // and no per-child data however many children there are.
    let view = eventually(Duration::from_secs(10), || {
        let (status, body) = get(&mgmt[1], "/dashboard/view");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        status == 200
            && v["children"] == 200
            && v["nodes"].as_array().is_some_and(|n| {
                n.len() == 2 && n.iter().all(|n| n["report"]["status"]["settled"] == true)
            })
    });
    assert!(view, "{}", get(&mgmt[1], "/dashboard/view").1);
    let (_, body) = get(&mgmt[1], "/dashboard/view");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let held: u64 = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["children"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 200);
    assert_eq!(v["kinds"][0]["kind"], "counter");
    assert!(!body.contains("\"d17\""), "the view lists no children");

    let (status, body) = get(&mgmt[1], "/dashboard/child?id=d17");
    let c: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, &c["kind"]),
        (200, &serde_json::json!("counter")),
        "{body}"
    );
    assert_eq!(c["copies"][0]["restarts"], 0, "{body}");
    assert_eq!(get(&mgmt[1], "/dashboard/child?id=nobody").0, 404);
    assert_eq!(get(&mgmt[1], "/dashboard/child?id=").0, 400);
    let (status, body) = get(&mgmt[1], "/dashboard/child");
    assert!(
        status == 400 && body.contains("give one child id"),
        "{body}"
    );
    let long = format!("/dashboard/child?id={}", "x".repeat(1100));
    assert_eq!(get(&mgmt[1], &long).0, 400);

    let path = "/dashboard/decommission?node=p1";
    assert_eq!(post(&mgmt[0], path, None).0, 401);
    assert_eq!(post(&mgmt[0], path, Some("guess")).0, 401);
    let unknown = "/dashboard/decommission?node=p9";
    assert_eq!(post(&mgmt[0], unknown, Some("dash-secret")).0, 404);
    assert_eq!(
        post(&mgmt[0], "/dashboard/decommission", Some("dash-secret")).0,
        400
    );
    let (status, body) = post(
        &mgmt[0],
        "/dashboard/decommission?node=",
        Some("dash-secret"),
    );
    assert!(status == 400 && body.contains("give one node id"), "{body}");
    assert_eq!(get(&mgmt[0], "/alive").0, 200, "still serving");

    // Decommissioned through p0, p1 leaves; asked again, p0 says so.
    let (status, body) = post(&mgmt[0], path, Some("dash-secret"));
    assert_eq!(
        (status, body.as_str()),
        (202, r#"{"decommissioning":"p1"}"#)
    );
    let st = exits(&mut procs.0[1], Duration::from_secs(30));
    assert!(st.success(), "the decommissioned node exits 0: {st:?}");
    let (status, body) = post(&mgmt[0], path, Some("dash-secret"));
    assert!(
        status == 409 && body.contains("already left"),
        "{status} {body}"
    );
}
