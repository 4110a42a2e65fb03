//! Remote calls against a bare TCP ping-pong, and calls with crash
//! snapshots: two hubs in this process.

use super::*;

/// Two hubs whose counters are snapshotted every `every` messages (or
/// never); calls from a to counters on b: 1 caller's p50/p99, then 64
/// callers' throughput.
pub(super) async fn snapshot_rows(every: Option<u32>, seconds: u64) -> Result<(), AnyError> {
    let (a, b, on_b) = two_hubs(|b| match every {
        Some(n) => b.register_with_snapshots::<Counter>("counter", SnapshotPolicy::every(n)),
        None => b.register::<Counter>("counter"),
    })
    .await?;
    let timeout = Duration::from_secs(5);
    let mut lat = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t = Instant::now();
        a.call::<Counter>(on_b[0].as_str(), &CounterMsg::Add(1), timeout)
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    let a = Arc::new(a);
    let rate = calls_per_second(&a, on_b, seconds).await?;
    let label = every.map_or("no snapshots".to_string(), |n| {
        format!("snapshot every {n}")
    });
    println!(
        "{label}: call p50 {:.1} µs, p99 {:.1} µs; 64 callers {rate:.0} calls/s",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// Hubs `a` and `b` in this process (each builder passed through
/// `kinds`), formed, with 400 counters started from `a`: returns them and
/// the ids of 64 counters that landed on `b`.
pub(super) async fn two_hubs(
    kinds: impl Fn(hub_net::HubBuilder) -> hub_net::HubBuilder,
) -> Result<(Hub, Hub, Vec<String>), AnyError> {
    let mut hubs = formed_hubs(2, kinds).await?;
    let (b, a) = (hubs.pop().ok_or("no hub")?, hubs.pop().ok_or("no hub")?);
    let specs: Vec<ChildSpec> = (0..400)
        .map(|i| ChildSpec::new(format!("c{i}"), "counter"))
        .collect();
    let out = a.start_children(specs, StartOptions::awaited()).await?;
    let on_b: Vec<String> = out
        .started
        .iter()
        .filter(|(_, at)| at.iter().any(|(n, _)| n == b.node_id()))
        .map(|(id, _)| id.to_string())
        .take(64)
        .collect();
    if on_b.len() < 64 {
        return Err("fewer than 64 children landed on b".into());
    }
    Ok((a, b, on_b))
}

/// One task per id calling `Add(1)` on it through `a` for `seconds`:
/// calls per second.
pub(super) async fn calls_per_second(
    a: &Arc<Hub>,
    ids: Vec<String>,
    seconds: u64,
) -> Result<f64, AnyError> {
    let timeout = Duration::from_secs(5);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for id in ids {
        let (a, stop, count) = (a.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                a.call::<Counter>(id.as_str(), &CounterMsg::Add(1), timeout)
                    .await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), hub_net::CallError>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let calls = count.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    for t in tasks {
        t.await??;
    }
    Ok(calls as f64 / secs)
}

pub(super) async fn call_rows(cli: &Cli) -> Result<(), AnyError> {
    // 64 counters that run on b, called from a.
    let (a, b, on_b) = two_hubs(|b| b.register::<Counter>("counter")).await?;
    let timeout = Duration::from_secs(5);
    let rounds = 20_000;

    // 1 caller.
    let mut ours = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        a.call::<Counter>(on_b[0].as_str(), &CounterMsg::Get, timeout)
            .await?;
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ours.sort_by(f64::total_cmp);
    let floor = ping_pong_latencies(rounds).await?;
    let (p50, f50) = (pct(&ours, 0.5), pct(&floor, 0.5));
    println!(
        "call, 1 caller: p50 {p50:.1} µs, p99 {:.1} µs; bare ping-pong p50 {f50:.1} µs, p99 {:.1} µs; ratio {:.2}x",
        pct(&ours, 0.99),
        pct(&floor, 0.99),
        p50 / f50
    );

    // 64 callers, one child each.
    let a = Arc::new(a);
    let ours_rate = calls_per_second(&a, on_b, cli.seconds).await?;
    let floor_rate = ping_pong_throughput(64, cli.seconds).await?;
    println!(
        "call, 64 callers: {ours_rate:.0} calls/s; bare ping-pong 64 connections: {floor_rate:.0} round trips/s; ratio {:.2}",
        ours_rate / floor_rate
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// Percentile of sorted microseconds.
pub(super) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// A bare tokio echo server of 64-byte frames; returns its address.
pub(super) async fn echo_server() -> Result<String, AnyError> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

pub(super) async fn ping_pong_latencies(rounds: usize) -> Result<Vec<f64>, AnyError> {
    let addr = echo_server().await?;
    let mut s = TcpStream::connect(&addr).await?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&buf).await?;
        s.read_exact(&mut buf).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

pub(super) async fn ping_pong_throughput(conns: usize, seconds: u64) -> Result<f64, AnyError> {
    let addr = echo_server().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut s = TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = [7u8; 64];
            while !stop.load(Ordering::Relaxed) {
                s.write_all(&buf).await?;
                s.read_exact(&mut buf).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / secs)
}
