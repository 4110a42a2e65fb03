//! One configuration, three sources: a `--config` file, environment
//! variables and flags, with a flag beating its variable and the variable
//! beating the file, as a Kubernetes pod would set them.

mod procs;

use std::process::{Command, Stdio};
use std::time::Duration;

use procs::*;

/// Starts `hub node` with `env` and `args`, waits until it answers and
/// returns its id as `hub status` reports it.
fn node_id_of(
    addr: &str,
    cookie: &std::path::PathBuf,
    env: &[(&str, &str)],
    args: &[&str],
) -> String {
    let mut c = Command::new(HUB);
    c.arg("node")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let _p = Procs(vec![c.spawn().unwrap()]);
    let mut id = None;
    let answered = eventually(Duration::from_secs(10), || {
        id = status(addr, cookie).and_then(|s| s["node_id"].as_str().map(str::to_string));
        id.is_some()
    });
    assert!(answered, "the node at {addr} never answered");
    id.unwrap()
}

#[test]
fn a_flag_beats_its_environment_variable_which_beats_the_config_file() {
    let cookie = cookie_file("config");
    let dir = std::env::temp_dir();
    let write_config = |addr: &str| {
        let path = dir.join(format!(
            "hub-cli-config-{}-{}.toml",
            std::process::id(),
            addr.replace([':', '.'], "-")
        ));
        std::fs::write(
            &path,
            format!(
                "hub_id = \"cli\"\nnode_id = \"from-file\"\nlisten = \"{addr}\"\ncookie_file = \"{}\"\nmigration = \"hot-handover\"\n",
                cookie.display()
            ),
        )
        .unwrap();
        path
    };

    let addr = free_addr();
    let cfg = write_config(&addr);
    let cfg = cfg.to_str().unwrap();
    assert_eq!(
        node_id_of(&addr, &cookie, &[], &["--config", cfg]),
        "from-file"
    );

    let addr = free_addr();
    let cfg = write_config(&addr);
    let cfg = cfg.to_str().unwrap();
    let env = [("HUB_CONFIG", cfg), ("HUB_NODE_ID", "from-env")];
    assert_eq!(node_id_of(&addr, &cookie, &env, &[]), "from-env");

    let addr = free_addr();
    let cfg = write_config(&addr);
    let cfg = cfg.to_str().unwrap();
    let env = [("HUB_NODE_ID", "from-env")];
    assert_eq!(
        node_id_of(
            &addr,
            &cookie,
            &env,
            &["--config", cfg, "--node-id", "from-flag"]
        ),
        "from-flag"
    );

    // A typo in the file is refused, naming the key.
    let bad = dir.join(format!("hub-cli-config-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "node_idd = \"x\"\n").unwrap();
    let out = Command::new(HUB)
        .args(["node", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("node_idd"),
        "{out:?}"
    );
}

#[test]
fn status_and_ctl_find_the_node_hub_id_and_cookie_in_its_config_file() {
    let cookie = cookie_file("config-tools");
    let addr = free_addr();
    let path =
        std::env::temp_dir().join(format!("hub-cli-config-tools-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "hub_id = \"tools\"\nnode_id = \"t0\"\nlisten = \"{addr}\"\ncookie_file = \"{}\"\n",
            cookie.display()
        ),
    )
    .unwrap();
    let _p = Procs(vec![Command::new(HUB)
        .args(["node", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);
    // As in a pod: HUB_CONFIG set, no other flag.
    let tool = |args: &[&str]| {
        Command::new(HUB)
            .args(args)
            .env("HUB_CONFIG", &path)
            .env_remove("HUB_COOKIE")
            .output()
            .unwrap()
    };
    let mut last = None;
    let up = eventually(Duration::from_secs(10), || {
        let out = tool(&["status", "--json"]);
        let ok = out.status.success();
        last = Some(out);
        ok
    });
    let out = last.unwrap();
    assert!(up, "{out:?}");
    assert_eq!(json(&out)["node_id"], "t0");
    let out = tool(&["ctl", "start", "c1"]);
    assert!(out.status.success(), "{out:?}");
    let out = tool(&["ctl", "--json", "lookup", "c1"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("t0"),
        "{out:?}"
    );
    // A flag still wins over the file: the wrong hub id is refused.
    let out = tool(&["status", "--hub-id", "other"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// The failure detector's timings reach the node: out of order they stop
/// it at start, naming the rule, and a value that is not a time is a
/// usage error. (How fast a crash is detected is a benchmark's business:
/// `hub demo --down-after SECS`, figures in the README.)
#[test]
fn failure_detection_timings_are_checked_at_start() {
    let cookie = cookie_file("detection");
    let addr = free_addr();
    let out = Command::new(HUB)
        .args(["node", "--node-id", "d1", "--listen", &addr])
        .args(["--heartbeat-interval", "2", "--down-after", "1"])
        .arg("--cookie-file")
        .arg(&cookie)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--heartbeat-interval <= --suspect-after <= --down-after"),
        "{out:?}"
    );
    for bad in ["0", "-1", "soon", "7200"] {
        let out = Command::new(HUB)
            .args([
                "node",
                "--node-id",
                "d1",
                "--listen",
                &addr,
                "--down-after",
                bad,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--down-after {bad}: {out:?}");
    }
}
