//! `bank-node`: your own node binary. It is the whole `hub` command line
//! (node, status, ctl, demo) with your own process kinds.

mod account;

use account::Account;
use hub_net::SnapshotPolicy;

fn main() -> std::process::ExitCode {
    hub_cli::NodeCli::new("bank-node")
        .about("bank accounts on a processhub-rs cluster")
        // Snapshots every 10 operations: a killed node loses at most 9.
        .register_with_snapshots::<Account>("account", SnapshotPolicy::every(10))
        .run()
}
