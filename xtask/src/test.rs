//! `cargo xtask test`: every test suite in one command.
//!
//! 1. `cargo test --workspace` (unit, property, doc, in-memory cluster,
//!    loopback TCP and OS-process tests);
//! 2. the simulation suite, `cargo test -p hub-sim` built with
//!    `RUSTFLAGS="--cfg madsim"` in its own target dir (`target/sim`), over
//!    `HUB_SIM_SEEDS` seeds (default 100) from `HUB_SIM_SEED` (default
//!    20261123) per scenario. A failure prints the seed; rerun the same
//!    command to reproduce it exactly.

use std::process::Command;

const DEFAULT_SEEDS: &str = "100";
const DEFAULT_BASE_SEED: &str = "20261123";

fn run(what: &str, cmd: &mut Command) -> bool {
    eprintln!("xtask: {what}");
    match cmd.status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("xtask: {what} failed ({s})");
            false
        }
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            false
        }
    }
}

pub(crate) fn test() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = run(
        "workspace tests",
        Command::new(&cargo)
            .args(["test", "--workspace"])
            .env_remove("RUSTFLAGS"),
    );
    if !workspace {
        return false;
    }
    let seeds = std::env::var("HUB_SIM_SEEDS").unwrap_or_else(|_| DEFAULT_SEEDS.into());
    let base = std::env::var("HUB_SIM_SEED").unwrap_or_else(|_| DEFAULT_BASE_SEED.into());
    eprintln!(
        "xtask: simulation: {seeds} seeds per scenario from {base} (HUB_SIM_SEEDS / HUB_SIM_SEED)"
    );
    let ok = run(
        "simulation tests (madsim)",
        Command::new(&cargo)
            .args(["test", "-p", "hub-sim"])
            .env("RUSTFLAGS", "--cfg madsim")
            .env("CARGO_TARGET_DIR", "target/sim")
            .env("MADSIM_TEST_NUM", &seeds)
            .env("MADSIM_TEST_SEED", &base),
    );
    if !ok {
        eprintln!(
            "xtask: to replay this sweep exactly: HUB_SIM_SEED={base} HUB_SIM_SEEDS={seeds} cargo xtask test\n\
             xtask: to replay one failing scenario at the seed madsim printed above:\n\
             RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim MADSIM_TEST_SEED=<seed> \
             MADSIM_TEST_NUM=1 cargo test -p hub-sim --test sim_scenarios <scenario>"
        );
    }
    ok
}
