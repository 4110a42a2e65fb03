//! Your own node binary as a user runs it: `bank-node node` processes run
//! the `account` kind, and `bank-node ctl` starts accounts and calls them
//! with JSON messages of the kind's own types, through any node.

#[path = "../../../hub-cli/tests/procs/mod.rs"]
mod procs;

use procs::*;

#[test]
fn own_binary_runs_nodes_of_its_kinds_and_ctl_speaks_their_json() {
    let cookie = cookie_file("bank-node");
    let (_procs, addrs) = processes(2, &cookie);
    let ids: Vec<String> = (0..10).map(|k| format!("acct-{k}")).collect();
    let mut start = vec![
        "ctl", "--node", &addrs[0], "--json", "start", "--kind", "account",
    ];
    start.extend(ids.iter().map(String::as_str));
    let started = json(&hub(&start, &cookie));
    assert_eq!(
        started["started"].as_object().map(|m| m.len()),
        Some(10),
        "{started}"
    );

    // Deposits through one node, the balance read through the other.
    for (addr, msg, want) in [
        (&addrs[0], r#"{"Deposit":5}"#, 5),
        (&addrs[1], r#"{"Deposit":7}"#, 12),
        (&addrs[1], r#""Balance""#, 12),
    ] {
        let out = json(&hub(
            &["ctl", "--node", addr, "--json", "call", "acct-3", msg],
            &cookie,
        ));
        assert_eq!(out["reply"], want, "{msg} via {addr}: {out}");
    }

    // A message that is not an account's is refused, naming the kind.
    let bad = hub(
        &["ctl", "--node", &addrs[0], "call", "acct-3", r#"{"Add":1}"#],
        &cookie,
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad \"account\" message"), "{err}");

    // A kind this binary does not register cannot be started.
    let unknown = hub(
        &[
            "ctl", "--node", &addrs[0], "start", "x1", "--kind", "counter",
        ],
        &cookie,
    );
    assert_eq!(
        unknown.status.code(),
        Some(1),
        "nodes of bank-node run no counters"
    );

    // Opening balances as JSON of the kind's Args; without --kind, the
    // binary's first kind.
    let opened = json(&hub(
        &[
            "ctl", "--node", &addrs[1], "--json", "start", "rich", "--args", "100",
        ],
        &cookie,
    ));
    assert_eq!(
        opened["started"].as_object().map(|m| m.len()),
        Some(1),
        "{opened}"
    );
    let out = json(&hub(
        &[
            "ctl",
            "--node",
            &addrs[0],
            "--json",
            "call",
            "rich",
            r#""Balance""#,
        ],
        &cookie,
    ));
    assert_eq!(out["reply"], 100, "{out}");
    let bad = hub(
        &[
            "ctl",
            "--node",
            &addrs[0],
            "start",
            "poor",
            "--args",
            r#""lots""#,
        ],
        &cookie,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad \"account\" arguments"),
        "{bad:?}"
    );

    let help = std::process::Command::new(HUB)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("bank-node") && text.contains("bank accounts"),
        "{text}"
    );
}

#[test]
fn the_readme_shows_this_main_rs_as_it_is() {
    let main = include_str!("../src/main.rs");
    let code: String = main
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .skip_while(|l| l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&code),
        "README.md's bank-node main.rs differs from src/main.rs:\n{code}"
    );
}
