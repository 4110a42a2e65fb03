//! Shared by the OS-process tests: node processes of the `hub` binary (or,
//! in the `bank-node` example's tests, of that binary) on loopback, the
//! control client, and waiting with deadlines.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `hub`, or `bank-node` in that crate's tests.
pub const HUB: &str = match (
    option_env!("CARGO_BIN_EXE_hub"),
    option_env!("CARGO_BIN_EXE_bank-node"),
) {
    (Some(hub), _) => hub,
    (None, Some(bank)) => bank,
    (None, None) => panic!("no node binary in this crate"),
};

pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port a node process can bind a moment later. Taken below the
/// kernel's ephemeral range (32768 and up), which outgoing connections
/// draw from: a port the system chose and released could be taken by one
/// of the many client connections before the node binds it. Each test
/// process walks its own block of ports.
pub fn free_addr() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let block = 20_000 + (std::process::id() % 48) * 250;
    for _ in 0..250 {
        let port = block + NEXT.fetch_add(1, Ordering::Relaxed) % 250;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port in 20000..32000 for this test process");
}

/// A cookie file per test: tests run in parallel threads of one process.
pub fn cookie_file(test: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hub-cli-{test}-{}", std::process::id()));
    std::fs::write(&p, "cli-test-cookie\n").unwrap();
    p
}

pub fn node(id: &str, addr: &str, seed: Option<&str>, cookie: &PathBuf) -> Child {
    tagged_node(id, addr, seed, cookie, &[])
}

pub fn tagged_node(
    id: &str,
    addr: &str,
    seed: Option<&str>,
    cookie: &PathBuf,
    tags: &[&str],
) -> Child {
    let args: Vec<String> = tags.iter().map(|t| format!("--tag={t}")).collect();
    node_with_args(id, addr, seed, cookie, &args)
}

pub fn node_with_args(
    id: &str,
    addr: &str,
    seed: Option<&str>,
    cookie: &PathBuf,
    extra: &[String],
) -> Child {
    let mut c = Command::new(HUB);
    c.args(["node", "--hub-id", "cli", "--node-id", id, "--listen", addr])
        .arg("--cookie-file")
        .arg(cookie)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = seed {
        c.args(["--seed", s]);
    }
    c.args(extra);
    c.spawn().unwrap()
}

pub fn hub(args: &[&str], cookie: &PathBuf) -> Output {
    // `hub <sub> --hub-id .. --cookie-file .. <rest>`
    Command::new(HUB)
        .arg(args[0])
        .args(["--hub-id", "cli", "--cookie-file"])
        .arg(cookie)
        .args(&args[1..])
        .output()
        .unwrap()
}

pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "hub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn status(addr: &str, cookie: &PathBuf) -> Option<serde_json::Value> {
    let out = hub(&["status", "--node", addr, "--json"], cookie);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Node processes p0..p{n-1}, all seeded with p0, once each sees all.
pub fn processes(n: usize, cookie: &PathBuf) -> (Procs, Vec<String>) {
    processes_with(n, cookie, &[])
}

/// [`processes`] with `extra` flags for every node.
pub fn processes_with(n: usize, cookie: &PathBuf, extra: &[String]) -> (Procs, Vec<String>) {
    let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mut procs = Procs(vec![node_with_args("p0", &addrs[0], None, cookie, extra)]);
    for (i, a) in addrs.iter().enumerate().skip(1) {
        let id = format!("p{i}");
        procs
            .0
            .push(node_with_args(&id, a, Some(&addrs[0]), cookie, extra));
    }
    wait_ring(&addrs, cookie, n);
    (procs, addrs)
}

/// Strict-mode node processes with quorum `q`, once they grant (new nodes
/// grant nothing for the takeover delay, 4.6 s by default).
pub fn strict_processes(n: usize, q: u32, cookie: &PathBuf) -> (Procs, Vec<String>) {
    let (procs, addrs) = processes_with(n, cookie, &[format!("--strict-quorum={q}")]);
    let granted = eventually(Duration::from_secs(20), || {
        hub(&["ctl", "--node", &addrs[0], "start", "probe"], cookie)
            .status
            .success()
    });
    assert!(granted, "the strict nodes never granted a child");
    (procs, addrs)
}

/// Starts `{prefix}0..{prefix}{n}` through `addr`; panics unless all start.
pub fn start_ids(addr: &str, cookie: &PathBuf, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let mut args = vec!["ctl", "--node", addr, "--json", "start"];
    args.extend(ids.iter().map(String::as_str));
    let started = json(&hub(&args, cookie));
    assert_eq!(
        started["started"].as_object().map(|m| m.len()),
        Some(n),
        "{started}"
    );
    ids
}

/// Waits until every node at `addrs` has `n` nodes in its ring.
pub fn wait_ring(addrs: &[String], cookie: &PathBuf, n: usize) {
    for a in addrs {
        let formed = eventually(Duration::from_secs(20), || {
            status(a, cookie).is_some_and(|s| s["ring"].as_array().map(Vec::len) == Some(n))
        });
        assert!(formed, "node at {a} did not see {n} nodes");
    }
}

/// Waits for a node process to exit.
pub fn exits(p: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = p.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "the node process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Children per node, as `node`'s `hub ctl which` reports them.
pub fn which(addr: &str, cookie: &PathBuf) -> serde_json::Value {
    json(&hub(&["ctl", "--node", addr, "--json", "which"], cookie))
}

/// The nodes at `addrs` agree on where children run, `total` of them, and
/// none on `gone`.
pub fn survivors_run(addrs: &[String], cookie: &PathBuf, total: usize, gone: &str) -> bool {
    let views: Vec<_> = addrs.iter().map(|a| which(a, cookie)).collect();
    let count: usize = views[0]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    views.windows(2).all(|w| w[0] == w[1]) && count == total && views[0].get(gone).is_none()
}

/// Node processes p0..p{n-1} with a management endpoint each (and the
/// token file, if given); returns the node and management addresses.
pub fn managed(
    n: usize,
    cookie: &PathBuf,
    extra: &[&str],
    token: Option<&std::path::Path>,
) -> (Procs, Vec<String>, Vec<String>) {
    let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mgmt: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mut procs = Procs(Vec::new());
    for i in 0..n {
        let mut args: Vec<String> = vec!["--management".into(), mgmt[i].clone()];
        if let Some(t) = token {
            args.push("--management-token-file".into());
            args.push(t.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let seed = (i > 0).then(|| addrs[0].as_str());
        procs.0.push(node_with_args(
            &format!("p{i}"),
            &addrs[i],
            seed,
            cookie,
            &args,
        ));
    }
    wait_ring(&addrs, cookie, n);
    (procs, addrs, mgmt)
}
