//! The `hub` binary as separate OS processes on loopback, driven by
//! `hub ctl` / `hub status`; kill -9 of one node process.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HUB: &str = env!("CARGO_BIN_EXE_hub");

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

fn cookie_file() -> PathBuf {
    let p = std::env::temp_dir().join(format!("hub-cli-test-{}", std::process::id()));
    std::fs::write(&p, "cli-test-cookie\n").unwrap();
    p
}

fn node(id: &str, addr: &str, seed: Option<&str>, cookie: &PathBuf) -> Child {
    let mut c = Command::new(HUB);
    c.args(["node", "--hub-id", "cli", "--node-id", id, "--listen", addr])
        .arg("--cookie-file")
        .arg(cookie)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = seed {
        c.args(["--seed", s]);
    }
    c.spawn().unwrap()
}

fn hub(args: &[&str], cookie: &PathBuf) -> Output {
    // `hub <sub> --hub-id .. --cookie-file .. <rest>`
    Command::new(HUB)
        .arg(args[0])
        .args(["--hub-id", "cli", "--cookie-file"])
        .arg(cookie)
        .args(&args[1..])
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "hub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn status(addr: &str, cookie: &PathBuf) -> Option<serde_json::Value> {
    let out = hub(&["status", "--node", addr, "--json"], cookie);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[test]
fn three_node_processes_survive_a_kill_9() {
    let cookie = cookie_file();
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let mut procs = Procs(vec![node("p0", &addrs[0], None, &cookie)]);
    for (i, a) in addrs.iter().enumerate().skip(1) {
        procs
            .0
            .push(node(&format!("p{i}"), a, Some(&addrs[0]), &cookie));
    }
    for a in &addrs {
        let formed = eventually(Duration::from_secs(20), || {
            status(a, &cookie).is_some_and(|s| s["ring"].as_array().map(Vec::len) == Some(3))
        });
        assert!(formed, "node at {a} did not see 3 nodes");
    }

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

    let which = json(&hub(
        &["ctl", "--node", &addrs[0], "--json", "which"],
        &cookie,
    ));
    let on_p2 = which["p2"].as_array().map_or(0, Vec::len);
    assert!(on_p2 > 0, "{which}");

    // kill -9 p2.
    let mut p2 = procs.0.remove(2);
    p2.kill().unwrap();
    p2.wait().unwrap();
    let t0 = Instant::now();
    let recovered = eventually(Duration::from_secs(20), || {
        let views: Vec<_> = addrs[..2]
            .iter()
            .map(|a| json(&hub(&["ctl", "--node", a, "--json", "which"], &cookie)))
            .collect();
        let total: usize = views[0]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum();
        views[0] == views[1] && total == 60 && views[0].get("p2").is_none()
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
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(st) = p1.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "p1 did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let all_on_p0 = eventually(Duration::from_secs(10), || {
        let w = json(&hub(
            &["ctl", "--node", &addrs[0], "--json", "which"],
            &cookie,
        ));
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
