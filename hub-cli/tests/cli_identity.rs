//! Mistakes a user makes when starting node processes are refused loudly:
//! a node id already in use, a strict cluster past its size, another
//! cookie or hub id.

mod procs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::*;

/// A `hub node` process whose stderr is kept, with `extra` flags.
fn loud_node(
    id: &str,
    addr: &str,
    seed: &str,
    cookie: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    Command::new(HUB)
        .args([
            "node",
            "--hub-id",
            "cli",
            "--node-id",
            id,
            "--listen",
            addr,
            "--seed",
            seed,
        ])
        .arg("--cookie-file")
        .arg(cookie)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `p` to exit; its status and stderr.
fn finished(mut p: std::process::Child, within: Duration) -> (std::process::ExitStatus, String) {
    let status = exits(&mut p, within);
    let mut err = String::new();
    if let Some(mut s) = p.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err);
    }
    (status, err)
}

/// What node `addr` says of member `id`: its address and status.
fn member(addr: &str, cookie: &std::path::PathBuf, id: &str) -> Option<(String, String)> {
    let s = status(addr, cookie)?;
    s["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| {
            (
                m["addr"].as_str().unwrap_or_default().to_string(),
                m["status"].as_str().unwrap_or_default().to_string(),
            )
        })
}

#[test]
fn a_second_process_with_a_live_node_id_is_refused_and_exits_non_zero() {
    let cookie = cookie_file("dup-id");
    let (_procs, addrs) = processes(2, &cookie);
    let real = member(&addrs[0], &cookie, "p1").expect("p0 knows p1");
    assert_eq!(real.1, "up");

    let dup = loud_node("p1", &free_addr(), &addrs[0], &cookie, &[]);
    let (status, err) = finished(dup, Duration::from_secs(20));
    assert!(!status.success(), "the duplicate exits non-zero");
    assert!(err.contains("is taken by a live member"), "{err}");

    // The cluster's view of the real p1 never changes: checked for longer
    // than the failure detector's down_after (3 s).
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(member(&addrs[0], &cookie, "p1").as_ref(), Some(&real));
        std::thread::sleep(Duration::from_millis(250));
    }
    let s = procs::status(&addrs[0], &cookie).unwrap();
    assert_eq!(s["ring"].as_array().map(Vec::len), Some(2), "{s}");
}

#[test]
fn a_node_past_the_strict_cluster_size_is_refused_and_nothing_stops() {
    let cookie = cookie_file("strict-full");
    let (_procs, addrs) = strict_processes(3, 2, &cookie);
    start_ids(&addrs[0], &cookie, "f", 60);
    let before = which(&addrs[0], &cookie);

    let fourth = loud_node(
        "p3",
        &free_addr(),
        &addrs[0],
        &cookie,
        &["--strict-quorum=2"],
    );
    let (status, err) = finished(fourth, Duration::from_secs(20));
    assert!(!status.success(), "the fourth node exits non-zero");
    assert!(err.contains("cluster is full"), "{err}");
    for a in &addrs {
        let s = procs::status(a, &cookie).unwrap();
        assert_eq!(s["ring"].as_array().map(Vec::len), Some(3), "{s}");
        assert_eq!(s["locked"], false, "{s}");
    }
    assert_eq!(
        which(&addrs[0], &cookie),
        before,
        "nothing moved or stopped"
    );
}

#[test]
fn another_cookie_or_hub_id_is_refused_with_its_reason() {
    let cookie = cookie_file("wrong-auth");
    let (_procs, addrs) = processes(1, &cookie);
    let other = std::env::temp_dir().join(format!("hub-cli-other-{}", std::process::id()));
    std::fs::write(&other, "another cookie").unwrap();

    let out = hub(&["status", "--node", &addrs[0]], &other);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("authentication failed"), "{err}");

    let out = Command::new(HUB)
        .args(["status", "--hub-id", "another-hub", "--cookie-file"])
        .arg(&cookie)
        .args(["--node", &addrs[0]])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("hub id mismatch"), "{err}");

    // A joiner with another cookie says why at the default log level.
    let mut joiner = loud_node("px", &free_addr(), &addrs[0], &other, &[]);
    let mut err = String::new();
    let stderr = joiner.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("authentication failed"))
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = joiner.kill();
    let _ = joiner.wait();
    if let Ok(Some(line)) = reader.join() {
        err = line;
    }
    assert!(
        err.contains("authentication failed"),
        "joiner logged: {err:?}"
    );

    // With --join-timeout it gives up and exits 1; --log-format json makes
    // every log line a JSON object.
    let joiner = loud_node(
        "py",
        &free_addr(),
        &addrs[0],
        &other,
        &["--join-timeout", "2", "--log-format", "json"],
    );
    let (status, err) = finished(joiner, Duration::from_secs(20));
    assert!(!status.success(), "a node that never joins exits non-zero");
    assert!(err.contains("joined no peer within 2s"), "{err}");
    let warned = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["level"] == "WARN" && v.to_string().contains("authentication failed"));
    assert!(warned, "no JSON warning naming the reason in: {err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a log file: {err}");
    let _ = std::fs::remove_file(other);
}

/// Start-up mistakes are start-up errors that name the problem: a seed
/// that is not `host:port`, a partition option that is not a number, an
/// unspecified listen address without an advertised one.
#[test]
fn malformed_node_options_are_refused_at_start() {
    let cookie = cookie_file("bad-options");
    let run = |extra: &[&str]| {
        let mut args = vec!["node", "--hub-id", "cli", "--node-id", "x"];
        args.extend(extra);
        Command::new(HUB)
            .args(&args)
            .arg("--cookie-file")
            .arg(&cookie)
            .output()
            .unwrap()
    };
    let listen = free_addr();
    let out = run(&["--listen", &listen, "--seed", "not-an-address"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad address \"not-an-address\""),
        "{out:?}"
    );

    let out = run(&["--listen", &listen, "--partition", "majority:abc"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("majority needs an initial cluster size as a number, not \"abc\""),
        "{err}"
    );

    let out = run(&["--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--advertise"),
        "{out:?}"
    );

    // An empty secret is a mistake, not a cookie.
    let empty = std::env::temp_dir().join(format!("hub-cli-empty-{}", std::process::id()));
    std::fs::write(&empty, " \n").unwrap();
    let out = Command::new(HUB)
        .args([
            "node",
            "--node-id",
            "x",
            "--listen",
            &listen,
            "--cookie-file",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is empty"),
        "{out:?}"
    );
}

/// Nodes on distinct loopback addresses (as on distinct hosts), each
/// listening on every address and advertising its own: they form one
/// cluster through the advertised addresses.
#[test]
fn nodes_listening_on_any_address_join_through_their_advertised_ones() {
    let cookie = cookie_file("advertise");
    // Ports outside the ephemeral range, as free_addr picks them.
    let port = |_: &&str| -> u16 { free_addr().rsplit(':').next().unwrap().parse().unwrap() };
    let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let ports: Vec<u16> = hosts.iter().map(port).collect();
    let advertised: Vec<String> = hosts
        .iter()
        .zip(&ports)
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    let mut procs = Procs(Vec::new());
    for (i, (adv, p)) in advertised.iter().zip(&ports).enumerate() {
        let listen = format!("0.0.0.0:{p}");
        let mut args = vec!["--advertise".to_string(), adv.clone()];
        if i > 0 {
            args.extend(["--seed".to_string(), advertised[0].clone()]);
        }
        procs.0.push(node_with_args(
            &format!("h{i}"),
            &listen,
            None,
            &cookie,
            &args,
        ));
    }
    wait_ring(&advertised, &cookie, 3);
    let s = procs::status(&advertised[0], &cookie).unwrap();
    for m in s["members"].as_array().unwrap() {
        let addr = m["addr"].as_str().unwrap();
        assert!(
            advertised.iter().any(|a| a == addr),
            "{addr} is not an advertised address: {s}"
        );
    }
}

/// Kubernetes style: every node gets the same seed list, itself included.
/// A node reaching itself through it drops that connection quietly (it is
/// not a duplicate of itself), and the nodes form one cluster.
#[test]
fn the_same_seed_list_on_every_node_including_itself_forms_one_cluster() {
    let cookie = cookie_file("self-seed");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let mut seeds = Vec::new();
    for a in &addrs {
        seeds.extend(["--seed".to_string(), a.clone()]);
    }
    let mut procs = Procs(Vec::new());
    for (i, a) in addrs.iter().enumerate() {
        procs
            .0
            .push(node_with_args(&format!("k{i}"), a, None, &cookie, &seeds));
    }
    wait_ring(&addrs, &cookie, 3);
    for p in &mut procs.0 {
        assert!(
            p.try_wait().unwrap().is_none(),
            "a node stopped: {:?}",
            p.try_wait()
        );
    }
}
