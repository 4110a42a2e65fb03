//! Membership changes made to real `hub node` processes the way operators
//! make them: several nodes leaving at once.

mod procs;

use std::process::Command;
use std::time::Duration;

use procs::*;

/// Five node processes with `n` counters started through p0.
fn five_with_counters(test: &str, n: usize) -> (Procs, Vec<String>, std::path::PathBuf) {
    let cookie = cookie_file(test);
    let (procs, addrs) = processes(5, &cookie);
    start_ids(&addrs[0], &cookie, "m", n);
    (procs, addrs, cookie)
}

/// p0..p2 agree that they run all `n` children between them.
fn survivors_run_all(addrs: &[String], cookie: &std::path::PathBuf, n: usize) -> bool {
    survivors_run(&addrs[..3], cookie, n, "p3")
        && which(&addrs[0], cookie).get("p4").is_none()
        && addrs[..3].iter().all(|a| {
            status(a, cookie).is_some_and(|s| {
                s["children"] == n
                    && s["settled"] == true
                    && s["ring"].as_array().map(Vec::len) == Some(3)
            })
        })
}

/// p3 and p4 exit 0 after their leave, and p0..p2 then run all `n`.
fn leavers_exit_and_survivors_run_all(
    procs: &mut Procs,
    addrs: &[String],
    cookie: &std::path::PathBuf,
    n: usize,
) {
    for p in &mut procs.0[3..] {
        let exit = exits(p, Duration::from_secs(30));
        assert!(exit.success(), "a node that left exits 0: {exit:?}");
    }
    let all = eventually(Duration::from_secs(20), || {
        survivors_run_all(addrs, cookie, n)
    });
    assert!(all, "children lost: {}", which(&addrs[0], cookie));
}

#[test]
fn two_node_processes_terminated_together_hand_over_every_child() {
    let (mut procs, addrs, cookie) = five_with_counters("sigterm2", 500);
    for p in &procs.0[3..] {
        let term = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }
    leavers_exit_and_survivors_run_all(&mut procs, &addrs, &cookie, 500);
}

#[test]
fn two_node_processes_decommissioned_together_hand_over_every_child() {
    let (mut procs, addrs, cookie) = five_with_counters("decommission2", 500);
    let ask = |by: &str, target: &str| {
        Command::new(HUB)
            .args(["ctl", "--hub-id", "cli", "--cookie-file"])
            .arg(&cookie)
            .args(["--node", by, "--json", "decommission", target])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| ask(&addrs[0], "p3"));
        let b = s.spawn(|| ask(&addrs[1], "p4"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(json(&a)["decommissioned"], "p3");
    assert_eq!(json(&b)["decommissioned"], "p4");
    leavers_exit_and_survivors_run_all(&mut procs, &addrs, &cookie, 500);
}

/// Strict mode, three node processes with quorum 2: SIGTERM to one hands
/// its children over and the process exits within seconds (not after the
/// 60 s shutdown timeout); the two others run every child.
#[test]
fn a_strict_node_process_terminated_hands_over_promptly() {
    let cookie = cookie_file("strict-term");
    let (mut procs, addrs) = strict_processes(3, 2, &cookie);
    start_ids(&addrs[0], &cookie, "s", 200);
    let on_p2 = which(&addrs[0], &cookie)["p2"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(on_p2 > 0, "nothing to hand over on p2");

    let t0 = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &procs.0[2].id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = exits(&mut procs.0[2], Duration::from_secs(30));
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the strict leave took {took:?}"
    );
    let all = eventually(Duration::from_secs(20), || {
        survivors_run(&addrs[..2], &cookie, 201, "p2")
            && addrs[..2]
                .iter()
                .all(|a| status(a, &cookie).is_some_and(|s| s["settled"] == true))
    });
    assert!(all, "children lost: {}", which(&addrs[0], &cookie));
}

/// `--distribution balanced`: children started right after formation
/// (before the first load report) do not move when a node joins.
#[test]
fn balanced_children_started_at_once_stay_put_when_a_node_joins() {
    let cookie = cookie_file("balanced");
    let addrs: Vec<String> = (0..4).map(|_| free_addr()).collect();
    let balanced = ["--distribution=balanced".to_string()];
    let mut procs = Procs(vec![node_with_args(
        "p0", &addrs[0], None, &cookie, &balanced,
    )]);
    for (i, a) in addrs.iter().enumerate().take(3).skip(1) {
        procs.0.push(node_with_args(
            &format!("p{i}"),
            a,
            Some(&addrs[0]),
            &cookie,
            &balanced,
        ));
    }
    wait_ring(&addrs[..3], &cookie, 3);
    let ids: Vec<String> = (0..300).map(|i| format!("b{i}")).collect();
    let mut args = vec!["ctl", "--node", &addrs[0], "--json", "start"];
    args.extend(ids.iter().map(String::as_str));
    json(&hub(&args, &cookie));
    let before = which(&addrs[0], &cookie);
    procs.0.push(node_with_args(
        "p3",
        &addrs[3],
        Some(&addrs[0]),
        &cookie,
        &balanced,
    ));
    wait_ring(&addrs, &cookie, 4);
    let settled = eventually(Duration::from_secs(20), || {
        addrs.iter().all(|a| {
            status(a, &cookie).is_some_and(|s| s["settled"] == true && s["children"] == 300)
        })
    });
    assert!(settled, "the join did not settle");
    let after = which(&addrs[0], &cookie);
    assert_eq!(after, before, "children moved on a join");
}

/// The whole cluster gets SIGTERM at once (`kubectl delete`): with no node
/// left to take the children, every process still exits 0 well inside a
/// Kubernetes grace period (it waited out the 60 s shutdown timeout).
#[test]
fn a_whole_cluster_terminated_together_exits_promptly() {
    let cookie = cookie_file("sigterm-all");
    let (mut procs, addrs) = processes(3, &cookie);
    start_ids(&addrs[0], &cookie, "w", 60);
    let began = std::time::Instant::now();
    for p in &procs.0 {
        let term = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }
    for p in &mut procs.0 {
        let exit = exits(p, Duration::from_secs(30));
        assert!(exit.success(), "{exit:?}");
    }
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the cluster took {took:?} to stop"
    );
}
