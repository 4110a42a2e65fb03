//! `cargo xtask sweep`: many seeds of the simulation scenarios.
//!
//! Builds the simulation tests once, then runs each scenario over its
//! seeds in chunks, each chunk in a fresh test process (`--jobs` at once):
//! a process runs at most `--chunk` seeds, so memory stays bounded however
//! many seeds the sweep covers. A failing seed is written with its replay
//! command to `target/sweep/failures.txt`, and the rest of its chunk runs
//! on. Finished chunks are logged in `target/sweep/`, so the same command
//! run again resumes where it stopped (`--fresh` starts over).

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// `cargo xtask sweep` options.
#[derive(clap::Args, Debug)]
pub(crate) struct SweepArgs {
    /// Seeds per scenario.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Only scenarios whose name (or test file) contains this.
    #[arg(long)]
    scenario: Option<String>,
    /// Test processes at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Seeds per test process.
    #[arg(long, default_value_t = 100)]
    chunk: u64,
    /// A chunk still running after this many seconds is killed and
    /// reported (a hang is a failure too).
    #[arg(long, default_value_t = 900)]
    chunk_timeout: u64,
    /// Ignore the log of finished chunks and start over.
    #[arg(long)]
    fresh: bool,
}

/// One test process: `seeds` seeds of `test` in test binary `bin`, from
/// `start`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Chunk {
    bin: String,
    test: String,
    start: u64,
    seeds: u64,
}

impl Chunk {
    fn key(&self) -> String {
        format!("{} {} {} {}", self.bin, self.test, self.start, self.seeds)
    }

    fn replay(&self, seed: u64) -> String {
        format!(
            "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim MADSIM_TEST_SEED={seed} \
             MADSIM_TEST_NUM=1 cargo test -p hub-sim --test {} -- --exact {}",
            self.bin, self.test
        )
    }
}

/// What a sweep has found so far.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    peak_rss_kib: u64,
}

fn sim_command(cargo: &str) -> Command {
    let mut c = Command::new(cargo);
    c.env("RUSTFLAGS", "--cfg madsim")
        .env("CARGO_TARGET_DIR", "target/sim");
    c
}

/// Builds the simulation tests; returns each test binary's name and path.
fn build(cargo: &str) -> Result<Vec<(String, PathBuf)>, String> {
    eprintln!("xtask: building the simulation tests (target/sim)");
    let out = sim_command(cargo)
        .args([
            "test",
            "-p",
            "hub-sim",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("the build failed ({})", out.status));
    }
    let mut bins = Vec::new();
    for line in out.stdout.lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            bins.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(bins)
}

/// The tests a binary holds.
fn list(exe: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("cannot list {}: {e}", exe.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect())
}

/// The seed madsim names when a run fails.
fn failing_seed(stderr: &str) -> Option<u64> {
    let at = stderr.rfind("MADSIM_TEST_SEED=")? + "MADSIM_TEST_SEED=".len();
    let digits: String = stderr[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The panic message of a failed test, for the failures file.
fn panic_line(output: &str) -> String {
    output
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .nth(1)
        .unwrap_or("(no panic message)")
        .trim()
        .chars()
        .take(300)
        .collect()
}

/// How one chunk's process ended.
enum Ran {
    Passed,
    Failed { seed: Option<u64>, message: String },
    TimedOut,
}

/// Runs one chunk in its own process, under `/usr/bin/time` when present
/// (for its peak memory).
fn run_chunk(exe: &Path, c: &Chunk, timeout: Duration, rss: &mut u64) -> Result<Ran, String> {
    let time = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!(
        "xtask-sweep-rss-{}-{}-{}",
        std::process::id(),
        c.start,
        c.test.replace("::", "-")
    ));
    let mut cmd = if time.exists() {
        let mut t = Command::new(time);
        t.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(exe);
        t
    } else {
        Command::new(exe)
    };
    let mut child = cmd
        .args([c.test.as_str(), "--exact", "--test-threads", "1"])
        .env("MADSIM_TEST_SEED", c.start.to_string())
        .env("MADSIM_TEST_NUM", c.seeds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    // Drained on threads, so a chatty test never blocks on a full pipe.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if began.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if let Ok(text) = std::fs::read_to_string(&rss_file) {
        if let Some(kib) = text.lines().last().and_then(|l| l.trim().parse().ok()) {
            *rss = (*rss).max(kib);
        }
        let _ = std::fs::remove_file(&rss_file);
    }
    Ok(match status {
        None => Ran::TimedOut,
        Some(s) if s.success() => Ran::Passed,
        Some(_) => Ran::Failed {
            seed: failing_seed(&output),
            message: panic_line(&output),
        },
    })
}

/// Runs the sweep; `true` when every seed passed.
pub(crate) fn sweep(args: &SweepArgs) -> bool {
    match run(args) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("xtask: sweep: {e}");
            false
        }
    }
}

fn run(args: &SweepArgs) -> Result<bool, String> {
    if args.seeds == 0 || args.chunk == 0 || args.jobs == 0 {
        return Err("--seeds, --chunk and --jobs must be positive".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let bins = build(&cargo)?;
    let dir = PathBuf::from("target/sweep");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let done_log = dir.join(format!(
        "done-{}-{}-{}.log",
        args.from, args.seeds, args.chunk
    ));
    let done: BTreeSet<String> = if args.fresh {
        BTreeSet::new()
    } else {
        std::fs::read_to_string(&done_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut queue = VecDeque::new();
    let mut exes = std::collections::BTreeMap::new();
    let mut scenarios = 0;
    for (bin, exe) in &bins {
        for test in list(exe)? {
            let wanted = args
                .scenario
                .as_deref()
                .is_none_or(|s| test.contains(s) || bin.contains(s));
            if !wanted {
                continue;
            }
            scenarios += 1;
            let mut start = args.from;
            while start < args.from + args.seeds {
                let seeds = args.chunk.min(args.from + args.seeds - start);
                let c = Chunk {
                    bin: bin.clone(),
                    test: test.clone(),
                    start,
                    seeds,
                };
                if !done.contains(&c.key()) {
                    queue.push_back(c);
                }
                start += seeds;
            }
        }
        exes.insert(bin.clone(), exe.clone());
    }
    if scenarios == 0 {
        return Err("no scenario matches".into());
    }
    let total = scenarios as u64 * args.seeds;
    let left: u64 = queue.iter().map(|c| c.seeds).sum();
    eprintln!(
        "xtask: sweep: {scenarios} scenarios x {} seeds from {}, {} processes at once, \
         {} seeds per process; {} seeds done before",
        args.seeds,
        args.from,
        args.jobs,
        args.chunk,
        total - left
    );
    let bar = ProgressBar::new(total);
    bar.set_position(total - left);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {per_sec}, ETA {eta} {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let failures_path = dir.join("failures.txt");
    let queue = Arc::new(Mutex::new(queue));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&done_log)
            .map_err(|e| format!("{}: {e}", done_log.display()))?,
    ));
    let failures = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&failures_path)
            .map_err(|e| format!("{}: {e}", failures_path.display()))?,
    ));
    let timeout = Duration::from_secs(args.chunk_timeout);
    let began = Instant::now();
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Without a terminal the bar is hidden: a line every 30 s instead.
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let (bar, tally, finished) = (&bar, &tally, &finished);
            s.spawn(move || {
                let mut last = Instant::now();
                while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= Duration::from_secs(30) {
                        last = Instant::now();
                        let failed = tally.lock().map_or(0, |t| t.failures.len());
                        eprintln!(
                            "xtask: sweep: {}/{} seeds, {:.0} seeds/s, {failed} failed, ETA {:.0?}",
                            bar.position(),
                            total,
                            bar.per_sec(),
                            bar.eta()
                        );
                    }
                }
            });
        }
        let mut workers = Vec::new();
        for _ in 0..args.jobs {
            let (queue, tally, log, failures, bar, exes) =
                (&queue, &tally, &log, &failures, &bar, &exes);
            workers.push(s.spawn(move || loop {
                let Some(c) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                let Some(exe) = exes.get(&c.bin) else { return };
                let mut rss = 0;
                let ran = run_chunk(exe, &c, timeout, &mut rss);
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.peak_rss_kib = t.peak_rss_kib.max(rss);
                let mut record = |line: String| {
                    // Printed even when the bar is hidden (not a terminal).
                    bar.suspend(|| eprintln!("xtask: sweep: {line}"));
                    if let Ok(mut f) = failures.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                    t.failures.push(line);
                    bar.set_message(format!("{} failed", t.failures.len()));
                };
                let ran_seeds = match ran {
                    Ok(Ran::Passed) => c.seeds,
                    Ok(Ran::Failed {
                        seed: Some(seed),
                        message,
                    }) if (c.start..c.start + c.seeds).contains(&seed) => {
                        record(format!(
                            "{}::{} seed {seed} failed: {message}\n  replay: {}",
                            c.bin,
                            c.test,
                            c.replay(seed)
                        ));
                        // The rest of the chunk still runs.
                        let rest = c.start + c.seeds - seed - 1;
                        if rest > 0 {
                            if let Ok(mut q) = queue.lock() {
                                q.push_front(Chunk {
                                    start: seed + 1,
                                    seeds: rest,
                                    ..c.clone()
                                });
                            }
                        }
                        seed - c.start + 1
                    }
                    Ok(Ran::Failed { message, .. }) => {
                        record(format!(
                            "{}::{} seeds {}..{} failed, no seed named: {message}\n  replay: {}",
                            c.bin,
                            c.test,
                            c.start,
                            c.start + c.seeds,
                            c.replay(c.start)
                        ));
                        c.seeds
                    }
                    Ok(Ran::TimedOut) => {
                        record(format!(
                            "{}::{} seeds {}..{} still running after {}s: killed",
                            c.bin,
                            c.test,
                            c.start,
                            c.start + c.seeds,
                            timeout.as_secs()
                        ));
                        c.seeds
                    }
                    Err(e) => {
                        record(format!("{}::{}: {e}", c.bin, c.test));
                        c.seeds
                    }
                };
                drop(t);
                if let Ok(mut f) = log.lock() {
                    let _ = writeln!(f, "{}", c.key());
                }
                bar.inc(ran_seeds);
            }));
        }
        for w in workers {
            let _ = w.join();
        }
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    bar.finish();
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "xtask: sweep: {} seeds in {:.0?}, {} failures (listed in {}), peak memory of one test \
         process {} MiB",
        left,
        began.elapsed(),
        t.failures.len(),
        failures_path.display(),
        t.peak_rss_kib / 1024
    );
    Ok(t.failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_seed_is_read_from_madsims_note() {
        let err = "thread panicked\nnote: run with `MADSIM_TEST_SEED=4242017` environment \
                   variable to reproduce this error\n";
        assert_eq!(failing_seed(err), Some(4242017));
        assert_eq!(failing_seed("no note"), None);
    }

    #[test]
    fn a_panic_message_is_the_line_after_panicked_at() {
        let out = "running 1 test\nthread 'x' panicked at a.rs:1:2:\nno acked child lost\nnote";
        assert_eq!(panic_line(out), "no acked child lost");
    }
}
