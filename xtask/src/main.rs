//! Project tasks:
//!
//! - `cargo xtask test`: every test suite (see `test.rs`);
//! - `cargo xtask sweep`: a long simulation sweep over many seeds, in
//!   parallel processes, resumable (see `sweep.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod sweep;
mod test;

#[derive(Parser)]
#[command(about = "processhub-rs project tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Every test suite: the workspace tests, then the simulation suite
    /// (HUB_SIM_SEEDS seeds per scenario from HUB_SIM_SEED).
    Test,
    /// Many seeds of the simulation scenarios, in parallel processes.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    let ok = match Args::parse().task {
        Task::Test => test::test(),
        Task::Sweep(args) => sweep::sweep(&args),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
