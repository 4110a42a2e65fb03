//! Process pauses, under each partition strategy: real `hub node`
//! processes stopped with SIGSTOP until their peers see them down (a pause
//! looks like a crash or a partition) and resumed with SIGCONT. Once quiet, the invariants the simulation checks hold: every
//! node's registry agrees, every child runs exactly once, none is lost,
//! and every node sees the whole ring again.

mod procs;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use procs::*;

const CHILDREN: usize = 60;

fn signal(procs: &Procs, i: usize, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &procs.0[i].id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} node {i}");
}

/// Where each child runs as `addr` reports it, or why that is not one
/// settled, duplicate-free placement of all `CHILDREN`.
fn placement(addr: &str, cookie: &std::path::PathBuf) -> Result<BTreeMap<String, String>, String> {
    let out = hub(&["ctl", "--node", addr, "--json", "which"], cookie);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut at = BTreeMap::new();
    for (node, ids) in v.as_object().ok_or("not an object")? {
        for id in ids.as_array().ok_or("not a list")? {
            let id = id.as_str().unwrap_or_default().to_string();
            if let Some(other) = at.insert(id.clone(), node.clone()) {
                return Err(format!("{id} runs on {other} and {node}"));
            }
        }
    }
    if at.len() != CHILDREN {
        return Err(format!("{} of {CHILDREN} children run", at.len()));
    }
    Ok(at)
}

/// Every node sees 3 members, is settled, and reports the same placement
/// of every child, each once.
fn quiet(addrs: &[String], cookie: &std::path::PathBuf) -> Result<(), String> {
    let mut first: Option<BTreeMap<String, String>> = None;
    for a in addrs {
        let s = status(a, cookie).ok_or(format!("{a}: no status"))?;
        if s["ring"].as_array().map(Vec::len) != Some(3) || s["settled"] != true {
            return Err(format!("{a}: ring {} settled {}", s["ring"], s["settled"]));
        }
        let p = placement(a, cookie).map_err(|e| format!("{a}: {e}"))?;
        match &first {
            None => first = Some(p),
            Some(f) if *f != p => return Err(format!("{a} disagrees on placement")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Keeps nodes `paused` stopped until the node at `observer` sees them
/// down: the pause outlasts the failure detector, whatever its timing.
fn pause_until_down(procs: &Procs, paused: &[usize], observer: &str, cookie: &std::path::PathBuf) {
    for &i in paused {
        signal(procs, i, "-STOP");
    }
    let seen = eventually(Duration::from_secs(30), || {
        status(observer, cookie).is_some_and(|s| {
            paused.iter().all(|i| {
                s["members"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["id"] == format!("p{i}") && m["status"] == "down")
                })
            })
        })
    });
    for &i in paused {
        signal(procs, i, "-CONT");
    }
    assert!(seen, "{observer} never saw nodes {paused:?} down");
}

fn wait_quiet(addrs: &[String], cookie: &std::path::PathBuf, after: &str) {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(60), || match quiet(addrs, cookie) {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(ok, "not quiet {after}: {last}");
}

/// Three nodes under `partition`, `CHILDREN` children; one node paused
/// past `down_after` and resumed, then two of them.
fn pauses_under(partition: &str) {
    let cookie = cookie_file(&format!("pause-{}", partition.replace(':', "-")));
    let (procs, addrs) = processes_with(3, &cookie, &[format!("--partition={partition}")]);
    // Quorum strategies may hold starts until every member is seen.
    let ids: Vec<String> = (0..CHILDREN).map(|i| format!("z{i}")).collect();
    let started = eventually(Duration::from_secs(20), || {
        let mut args = vec!["ctl", "--node", &addrs[0], "start"];
        args.extend(ids.iter().map(String::as_str));
        hub(&args, &cookie).status.success()
    });
    assert!(started, "the children never all started under {partition}");
    wait_quiet(
        &addrs,
        &cookie,
        &format!("after the start under {partition}"),
    );

    pause_until_down(&procs, &[2], &addrs[0], &cookie);
    wait_quiet(
        &addrs,
        &cookie,
        &format!("after pausing one node under {partition}"),
    );

    pause_until_down(&procs, &[1, 2], &addrs[0], &cookie);
    wait_quiet(
        &addrs,
        &cookie,
        &format!("after pausing two nodes under {partition}"),
    );
}

#[test]
fn pauses_under_divergence_leave_every_child_once() {
    pauses_under("divergence");
}

#[test]
fn pauses_under_a_static_quorum_leave_every_child_once() {
    pauses_under("static:2");
}

#[test]
fn pauses_under_a_majority_quorum_leave_every_child_once() {
    pauses_under("majority:3");
}

#[test]
fn pauses_under_a_dynamic_quorum_leave_every_child_once() {
    pauses_under("dynamic:50");
}
