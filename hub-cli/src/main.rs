//! The `hub` command: run a node, inspect and control a running hub, or
//! watch a local demo cluster. Its nodes run the example kinds `counter`,
//! `echo` and `role-probe`; for your own kinds, build your own binary with
//! [`hub_cli::NodeCli`].

fn main() -> std::process::ExitCode {
    hub_cli::NodeCli::new("hub").with_example_kinds().run()
}
