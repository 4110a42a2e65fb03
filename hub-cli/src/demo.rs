//! `demo`: start a local cluster of node processes, start counters, add a
//! node, kill one, and show what happened.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command as OsCommand, Stdio};
use std::time::{Duration, Instant};

use hub_core::{ChildId, ChildSpec, NodeId};
use hub_net::control::{CtlReply, CtlRequest, Status};
use hub_net::examples::Counter;
use hub_net::Client;

use crate::ctl::reply_error;
use crate::stdout::outln;
use crate::{encode_json, AnyError};

struct Cluster {
    procs: BTreeMap<String, (Child, String)>,
    cookie_file: PathBuf,
    exe: PathBuf,
    outputs: Vec<BufReader<ChildStdout>>,
    /// Extra flags for every node (`--down-after`).
    node_args: Vec<String>,
}

impl Cluster {
    /// Starts node `id` on a port the system picks, and reads the address
    /// it bound from its first line of output (choosing a free port here
    /// and passing it on would race with other sockets for it).
    fn spawn(&mut self, id: &str, seed: Option<&str>) -> Result<String, AnyError> {
        let mut cmd = OsCommand::new(&self.exe);
        cmd.args([
            "node",
            "--hub-id",
            "demo",
            "--node-id",
            id,
            "--listen",
            "127.0.0.1:0",
            "--example-kinds",
        ])
        .arg("--cookie-file")
        .arg(&self.cookie_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        cmd.args(&self.node_args);
        let mut child = cmd.spawn()?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        // "node n0 listening on 127.0.0.1:PORT"
        let Some(addr) = line.trim().rsplit(' ').next().filter(|a| a.contains(':')) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("node {id} did not start: {line:?}").into());
        };
        let addr = addr.to_string();
        // Kept open: a node writing to a closed pipe would fail.
        self.outputs.push(out);
        self.procs.insert(id.to_string(), (child, addr.clone()));
        Ok(addr)
    }

    fn kill(&mut self, id: &str) {
        if let Some((mut c, _)) = self.procs.remove(id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, (c, _)) in self.procs.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.cookie_file);
    }
}

async fn client(addr: &str) -> Result<Client, AnyError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(addr, "demo", "demo-cookie").await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn status(c: &mut Client) -> Result<Status, AnyError> {
    match c
        .request(CtlRequest::Status, Duration::from_secs(5))
        .await?
    {
        CtlReply::Status(s) => Ok(s),
        other => Err(reply_error(other)),
    }
}

async fn placement(c: &mut Client) -> Result<BTreeMap<NodeId, Vec<ChildId>>, AnyError> {
    match c
        .request(CtlRequest::Which { global: true }, Duration::from_secs(10))
        .await?
    {
        CtlReply::Which(m) => Ok(m
            .into_iter()
            .map(|(n, v)| (n, v.into_iter().map(|(i, _)| i).collect()))
            .collect()),
        other => Err(reply_error(other)),
    }
}

async fn wait(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, AnyError>,
) -> Result<(), AnyError> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

fn show(p: &BTreeMap<NodeId, Vec<ChildId>>, total: usize) {
    for (n, ids) in p {
        let share = 100.0 * ids.len() as f64 / total.max(1) as f64;
        outln!(
            "  {:<4} {:>7} children {:>5.1}%  {}",
            n,
            ids.len(),
            share,
            "#".repeat((share / 2.0) as usize)
        );
    }
}

/// Runs `demo`: a local cluster of this binary's own node processes.
pub(crate) async fn run(
    nodes: usize,
    children: usize,
    down_after: Option<Duration>,
) -> Result<(), AnyError> {
    let t0 = Instant::now();
    let cookie_file = std::env::temp_dir().join(format!("hub-demo-cookie-{}", std::process::id()));
    std::fs::write(&cookie_file, "demo-cookie")?;
    let mut cl = Cluster {
        procs: BTreeMap::new(),
        cookie_file,
        exe: std::env::current_exe()?,
        outputs: Vec::new(),
        node_args: down_after
            .map(|d| vec!["--down-after".to_string(), d.as_secs_f64().to_string()])
            .unwrap_or_default(),
    };
    outln!("== starting {nodes} nodes (separate processes on 127.0.0.1)");
    let seed = cl.spawn("n0", None)?;
    for i in 1..nodes {
        cl.spawn(&format!("n{i}"), Some(&seed))?;
    }
    let mut c = client(&seed).await?;
    wait("the cluster to form", Duration::from_secs(20), async || {
        Ok(status(&mut c).await?.ring.len() == nodes)
    })
    .await?;
    outln!("   formed in {:.0?}", t0.elapsed());

    outln!("== starting {children} counters");
    let bar = indicatif::ProgressBar::new(children as u64);
    let started_at = Instant::now();
    let mut failed = 0;
    for chunk in (0..children).collect::<Vec<_>>().chunks(1000) {
        let specs = chunk
            .iter()
            .map(|i| ChildSpec::new(format!("counter-{i}"), "counter"))
            .collect();
        match c
            .request(CtlRequest::Start { specs }, Duration::from_secs(60))
            .await?
        {
            CtlReply::Started { failed: f, .. } => failed += f.len(),
            other => return Err(reply_error(other)),
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let start_secs = started_at.elapsed().as_secs_f64();
    outln!(
        "   started {} ({} failed) in {:.2}s",
        children - failed,
        failed,
        start_secs
    );
    let before = placement(&mut c).await?;
    outln!("== where they landed");
    show(&before, children);

    let joiner = format!("n{nodes}");
    outln!("== adding node {joiner}");
    cl.spawn(&joiner, Some(&seed))?;
    let join_at = Instant::now();
    wait("the join to settle", Duration::from_secs(60), async || {
        let s = status(&mut c).await?;
        Ok(s.ring.len() == nodes + 1
            && !s.locked
            && placement(&mut c)
                .await?
                .get(joiner.as_str())
                .map_or(0, Vec::len)
                > 0
            && s.children == children)
    })
    .await?;
    // Moves finish when the joiner's share stops growing.
    let mut last = 0;
    wait(
        "migrations to finish",
        Duration::from_secs(60),
        async || {
            let n = placement(&mut c)
                .await?
                .get(joiner.as_str())
                .map_or(0, Vec::len);
            let done = n == last;
            last = n;
            Ok(done)
        },
    )
    .await?;
    let after = placement(&mut c).await?;
    let moved = after.get(joiner.as_str()).map_or(0, Vec::len);
    outln!(
        "   {moved} children moved to {joiner} ({:.1}%, ideal {:.1}%) in {:.0?}",
        100.0 * moved as f64 / children as f64,
        100.0 / (nodes + 1) as f64,
        join_at.elapsed()
    );
    show(&after, children);

    let victim = "n1".to_string();
    let lost = after.get(victim.as_str()).map_or(0, Vec::len);
    outln!("== killing {victim} (kill -9) with {lost} children");
    cl.kill(&victim);
    let kill_at = Instant::now();
    wait("the restart", Duration::from_secs(60), async || {
        let s = status(&mut c).await?;
        let p = placement(&mut c).await?;
        Ok(s.ring.len() == nodes
            && !p.contains_key(victim.as_str())
            && p.values().map(Vec::len).sum::<usize>() == children)
    })
    .await?;
    let restart_secs = kill_at.elapsed().as_secs_f64();
    let final_p = placement(&mut c).await?;
    outln!("   all {lost} restarted on their new owners in {restart_secs:.2}s (failure detection included)");
    show(&final_p, children);

    let sample = c
        .request(
            CtlRequest::Call {
                id: "counter-1".into(),
                payload: encode_json::<Counter>(r#"{"Add":1}"#)?,
                timeout_ms: 2000,
            },
            Duration::from_secs(5),
        )
        .await?;
    let called = matches!(sample, CtlReply::Called(Ok(_)));

    outln!("== summary");
    outln!("  {:<36} {}", "nodes (after join and kill)", final_p.len());
    outln!(
        "  {:<36} {}",
        "children running",
        final_p.values().map(Vec::len).sum::<usize>()
    );
    outln!(
        "  {:<36} {:.0}/s",
        "start rate",
        children as f64 / start_secs.max(1e-9)
    );
    outln!("  {:<36} {moved}", "moved on join");
    outln!(
        "  {:<36} {lost} in {restart_secs:.2}s",
        "restarted after kill -9"
    );
    outln!(
        "  {:<36} {}",
        "call to counter-1",
        if called { "ok" } else { "failed" }
    );
    outln!("  {:<36} {:.1}s", "total", t0.elapsed().as_secs_f64());
    if !called {
        return Err("the sample call failed".into());
    }
    Ok(())
}
