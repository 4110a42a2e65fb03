//! The `hub` binary as separate OS processes on loopback, driven by
//! `hub ctl` / `hub status`; kill -9 of one node process.

mod procs;

use std::process::Command;
use std::time::{Duration, Instant};

use procs::*;

#[test]
fn three_node_processes_survive_a_kill_9() {
    let cookie = cookie_file("kill");
    let (mut procs, addrs) = processes(3, &cookie);

    let ids: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let mut args = vec!["ctl", "--node", &addrs[1], "--json", "start"];
    args.extend(ids.iter().map(String::as_str));
    let started = json(&hub(&args, &cookie));
    assert_eq!(
        started["started"].as_object().unwrap().len(),
        60,
        "{started}"
    );
    assert!(started["failed"].as_object().unwrap().is_empty());

    let call = json(&hub(
        &[
            "ctl",
            "--node",
            &addrs[2],
            "--json",
            "call",
            "k5",
            r#"{"Add":7}"#,
        ],
        &cookie,
    ));
    assert_eq!(call["reply"], 7);

    let w = which(&addrs[0], &cookie);
    let on_p2 = w["p2"].as_array().map_or(0, Vec::len);
    assert!(on_p2 > 0, "{w}");

    // kill -9 p2.
    let mut p2 = procs.0.remove(2);
    p2.kill().unwrap();
    p2.wait().unwrap();
    let t0 = Instant::now();
    // A call right after the kill (once p0 saw the connection close, so
    // that the call is not in flight on it) waits within its timeout for
    // the child to run on its new owner, as `Hub::call` does.
    let closed = eventually(Duration::from_secs(5), || {
        status(&addrs[0], &cookie).is_some_and(|s| s["connections"] == 1)
    });
    assert!(closed, "p0 saw its connection to p2 close");
    let orphan = w["p2"][0].as_str().unwrap().to_string();
    let out = hub(
        &[
            "ctl",
            "--node",
            &addrs[0],
            "--json",
            "call",
            &orphan,
            r#"{"Add":1}"#,
            "--timeout",
            "15",
        ],
        &cookie,
    );
    assert!(
        out.status.success(),
        "a call to {orphan} after its node died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json(&out)["reply"].is_i64(), "{out:?}");
    let recovered = eventually(Duration::from_secs(20), || {
        survivors_run(&addrs[..2], &cookie, 60, "p2")
    });
    assert!(
        recovered,
        "children of the killed node were not restarted on the survivors"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "recovery took {:?}",
        t0.elapsed()
    );
    let look = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "lookup", "k5"],
        &cookie,
    ));
    assert_ne!(look["nodes"][0], "p2");

    // SIGTERM to p1: it leaves gracefully, hands its children to p0 and
    // exits 0; nothing acknowledged is lost.
    let mut p1 = procs.0.remove(1);
    let term = Command::new("kill")
        .args(["-TERM", &p1.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = exits(&mut p1, Duration::from_secs(20));
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let all_on_p0 = eventually(Duration::from_secs(10), || {
        let w = which(&addrs[0], &cookie);
        w.as_object().unwrap().len() == 1 && w["p0"].as_array().map(Vec::len) == Some(60)
    });
    assert!(all_on_p0, "children were not handed to p0");
    let count = json(&hub(
        &[
            "ctl", "--node", &addrs[0], "--json", "call", "k5", r#""Get""#,
        ],
        &cookie,
    ));
    assert!(count["reply"].is_i64());

    // A wrong cookie is refused with a clear error.
    let bad = std::env::temp_dir().join(format!("hub-cli-bad-{}", std::process::id()));
    std::fs::write(&bad, "nope").unwrap();
    let out = hub(&["status", "--node", &addrs[0]], &bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("handshake"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(bad);
    let _ = std::fs::remove_file(cookie);
}

/// `hub ctl decommission` asked of one node drains another: the target
/// hands its children over, leaves and its process exits 0; the survivors
/// run every child and stay out of partition mode.
#[test]
fn ctl_decommission_drains_a_node_process_which_then_exits() {
    let cookie = cookie_file("decommission");
    let (mut procs, addrs) = processes(3, &cookie);
    let ids: Vec<String> = (0..30).map(|i| format!("d{i}")).collect();
    let mut args = vec!["ctl", "--node", &addrs[0], "--json", "start"];
    args.extend(ids.iter().map(String::as_str));
    let started = json(&hub(&args, &cookie));
    assert_eq!(started["started"].as_object().unwrap().len(), 30);
    let on_p2 = which(&addrs[0], &cookie)["p2"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(on_p2 > 0, "nothing to drain on p2");

    let out = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "decommission", "p2"],
        &cookie,
    ));
    assert_eq!(out["decommissioned"], "p2");
    let exit = exits(&mut procs.0[2], Duration::from_secs(20));
    assert!(exit.success(), "a decommissioned node exits 0: {exit:?}");
    let drained = eventually(Duration::from_secs(10), || {
        survivors_run(&addrs[..2], &cookie, 30, "p2")
    });
    assert!(drained, "p2's children were not handed to the survivors");
    for a in &addrs[..2] {
        let s = status(a, &cookie).unwrap();
        assert_eq!(s["partitioned"], false);
        assert_eq!(s["ring"].as_array().map(Vec::len), Some(2));
    }
    // An unknown node is refused with a clear error.
    let bad = hub(
        &["ctl", "--node", &addrs[0], "decommission", "nobody"],
        &cookie,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a live member"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// `hub node --tag` and `hub ctl start --require`: required children land
/// only on the tagged node process.
#[test]
fn ctl_start_with_a_requirement_places_children_on_tagged_nodes() {
    let cookie = cookie_file("tags");
    let addrs: Vec<String> = (0..2).map(|_| free_addr()).collect();
    let _procs = Procs(vec![
        tagged_node("p0", &addrs[0], None, &cookie, &["zone=a"]),
        tagged_node("p1", &addrs[1], Some(&addrs[0]), &cookie, &["zone=b"]),
    ]);
    wait_ring(&addrs, &cookie, 2);
    let ids: Vec<String> = (0..12).map(|i| format!("z{i}")).collect();
    let mut args = vec!["ctl", "--node", &addrs[0], "--json", "start"];
    args.extend(ids.iter().map(String::as_str));
    args.extend(["--require", "zone=b"]);
    let started = json(&hub(&args, &cookie));
    let placed = started["started"].as_object().unwrap();
    assert_eq!(placed.len(), 12, "{started}");
    for (id, at) in placed {
        assert_eq!(at[0], "p1", "{id} runs outside zone b: {started}");
    }
    let bad = hub(
        &[
            "ctl",
            "--node",
            &addrs[0],
            "start",
            "q",
            "--require",
            "zone",
        ],
        &cookie,
    );
    assert!(!bad.status.success(), "a malformed tag is refused");

    // With the only zone-b node gone, the children wait, and say so.
    let out = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "decommission", "p1"],
        &cookie,
    ));
    assert_eq!(out["decommissioned"], "p1");
    let look = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "lookup", "z3"],
        &cookie,
    ));
    assert_eq!(look["nodes"].as_array().map(Vec::len), Some(0), "{look}");
    assert_eq!(look["waiting"], true, "{look}");
    let waiting = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "which", "--waiting"],
        &cookie,
    ));
    assert_eq!(
        waiting["waiting"].as_array().map(Vec::len),
        Some(12),
        "{waiting}"
    );
    assert_eq!(status(&addrs[0], &cookie).unwrap()["waiting"], 12);

    // A zone-b node joins: they run there.
    let b2 = free_addr();
    let _b2 = Procs(vec![tagged_node(
        "p2",
        &b2,
        Some(&addrs[0]),
        &cookie,
        &["zone=b"],
    )]);
    let placed = eventually(Duration::from_secs(20), || {
        which(&addrs[0], &cookie)["p2"].as_array().map(Vec::len) == Some(12)
    });
    assert!(
        placed,
        "the waiting children did not start on the new zone-b node"
    );
}

#[test]
fn strict_node_processes_start_children_only_with_a_quorum() {
    let cookie = cookie_file("strict");
    let addrs: Vec<String> = (0..2).map(|_| free_addr()).collect();
    let strict = ["--strict-quorum=2".to_string()];
    let mut procs = Procs(vec![node_with_args(
        "p0", &addrs[0], None, &cookie, &strict,
    )]);
    wait_ring(&addrs[..1], &cookie, 1);
    // A refused start exits non-zero and still prints its JSON.
    let start = |id: &str| {
        let out = hub(
            &["ctl", "--node", &addrs[0], "--json", "start", id],
            &cookie,
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let failed = !v["failed"].as_object().unwrap().is_empty();
        assert_eq!(out.status.success(), !failed, "{v}");
        v
    };
    let alone = start("lonely");
    assert!(alone["started"].as_object().unwrap().is_empty(), "{alone}");
    let why = alone["failed"]["lonely"].to_string();
    assert!(why.contains("of 2 grants"), "{alone}");
    procs.0.push(node_with_args(
        "p1",
        &addrs[1],
        Some(&addrs[0]),
        &cookie,
        &strict,
    ));
    wait_ring(&addrs, &cookie, 2);
    // New nodes grant nothing for the takeover delay (4.6 s by default).
    let granted = eventually(Duration::from_secs(20), || {
        start("granted")["started"]
            .as_object()
            .is_some_and(|m| m.len() == 1)
    });
    assert!(granted, "two strict nodes never granted a child");
    // The start refused while alone never runs later.
    for a in &addrs {
        let look = json(&hub(
            &["ctl", "--node", a, "--json", "lookup", "lonely"],
            &cookie,
        ));
        assert_eq!(look["nodes"].as_array().map(Vec::len), Some(0), "{look}");
        assert_eq!(look["waiting"], false, "{look}");
    }
}

/// Every failure exits non-zero, still printing its JSON: a start of an
/// unknown kind, a start with an invalid id (the valid children of the
/// batch still start), a start of a child already running, a stop of an unknown
/// child; a node decommissioned through itself says so and exits 0.
#[test]
fn ctl_failures_exit_non_zero_with_their_json() {
    let cookie = cookie_file("failures");
    let (mut procs, addrs) = processes(2, &cookie);
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--node", &addrs[0], "--json"];
        all.extend(args);
        hub(&all, &cookie)
    };
    let printed = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let unknown = ctl(&["start", "k9", "--kind", "nosuchkind"]);
    assert!(!unknown.status.success(), "an unknown kind exits non-zero");
    assert!(printed(&unknown)["failed"]["k9"]
        .as_str()
        .unwrap()
        .contains("nosuchkind"));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("1 of 1 children failed"));

    // An invalid id fails alone: the valid child beside it starts.
    let long = "x".repeat(1100);
    let mixed = ctl(&["start", &long, "ok1"]);
    assert!(!mixed.status.success(), "an invalid id exits non-zero");
    let mixed = printed(&mixed);
    assert!(
        mixed["failed"][&long]
            .as_str()
            .unwrap()
            .contains("invalid spec"),
        "{mixed}"
    );
    assert_eq!(
        mixed["started"]["ok1"].as_array().map(Vec::len),
        Some(1),
        "{mixed}"
    );

    assert!(ctl(&["start", "k1"]).status.success());
    let again = ctl(&["start", "k1"]);
    assert!(
        !again.status.success(),
        "a second start of k1 exits non-zero"
    );
    assert!(printed(&again)["failed"]["k1"].is_string());

    // `ctl call` speaks the child's registered kind; naming another fails.
    assert!(ctl(&["start", "e1", "--kind", "echo"]).status.success());
    let echoed = ctl(&["call", "e1", r#""hello""#]);
    assert!(echoed.status.success(), "{echoed:?}");
    assert_eq!(printed(&echoed)["reply"], "e1: hello");
    let wrong = ctl(&["call", "e1", r#"{"Add":3}"#, "--kind", "counter"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("is of kind \"echo\", not \"counter\""),
        "{wrong:?}"
    );

    // Naming nodes under the default (consistent hashing) distribution is
    // refused, not silently ignored.
    let named = ctl(&["start", "n1", "--nodes", "p1"]);
    assert!(!named.status.success());
    assert!(printed(&named)["failed"]["n1"]
        .as_str()
        .unwrap()
        .contains("Guided"));

    let stop = ctl(&["stop", "nobody"]);
    assert!(
        !stop.status.success(),
        "a stop of an unknown child exits non-zero"
    );
    assert!(printed(&stop)["failed"]["nobody"].is_string());

    let out = json(&hub(
        &["ctl", "--node", &addrs[1], "--json", "decommission", "p1"],
        &cookie,
    ));
    assert_eq!(out["decommissioned"], "p1");
    let exit = exits(&mut procs.0[1], Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}

/// `--distribution guided` with `hub ctl start --nodes`: the child runs
/// where it was told; without `--nodes` the start fails naming the flag.
#[test]
fn guided_node_processes_place_children_where_ctl_start_names() {
    let cookie = cookie_file("guided");
    let addrs: Vec<String> = (0..2).map(|_| free_addr()).collect();
    let guided = ["--distribution=guided".to_string()];
    let _procs = Procs(vec![
        node_with_args("p0", &addrs[0], None, &cookie, &guided),
        node_with_args("p1", &addrs[1], Some(&addrs[0]), &cookie, &guided),
    ]);
    wait_ring(&addrs, &cookie, 2);
    let placed = json(&hub(
        &[
            "ctl", "--node", &addrs[0], "--json", "start", "g1", "g2", "--nodes", "p1",
        ],
        &cookie,
    ));
    assert_eq!(placed["started"]["g1"][0], "p1", "{placed}");
    assert_eq!(placed["started"]["g2"][0], "p1", "{placed}");
    let unnamed = hub(
        &["ctl", "--node", &addrs[0], "--json", "start", "g3"],
        &cookie,
    );
    assert!(!unnamed.status.success());
    let v: serde_json::Value = serde_json::from_slice(&unnamed.stdout).unwrap();
    assert!(
        v["failed"]["g3"].as_str().unwrap().contains("--nodes"),
        "{v}"
    );
}

/// The README's first command, smaller: the demo runs its story to the end
/// (form, start, join, kill -9, restart, a call) and exits 0.
#[test]
fn the_demo_runs_its_story_and_exits_zero() {
    let out = std::process::Command::new(HUB)
        .args(["demo", "--nodes", "3", "--children", "300"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "formed in",
        "started 300 (0 failed)",
        "children moved to n3",
        "restarted on their new owners",
        "call to counter-1                    ok",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
