//! The floors of the cluster rows, measured in the same run: bare tokio
//! actors (a task and a mailbox each, one request and reply) for the start
//! and the memory per child, bare TCP handshakes for the formation, and
//! the CPU and bytes a node process spends while nothing changes.

use tokio::sync::{mpsc, oneshot};

use super::*;

/// Mailbox slots of a bare actor: the supervisor's own capacity.
const MAILBOX: usize = 1024;

/// Spawns `n` bare actors, sends each one request and awaits every reply;
/// prints the time and the resident bytes each actor holds while idle.
/// Run in its own process (`cluster floor`), so nothing else shares its
/// heap.
pub(super) async fn actor_floor(n: usize) -> Result<(), AnyError> {
    let before = rss_kib(std::process::id());
    let t0 = Instant::now();
    let mut mailboxes = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<u64>>(MAILBOX);
        tokio::spawn(async move {
            let mut served = 0;
            while let Some(reply) = rx.recv().await {
                served += 1;
                let _ = reply.send(served);
            }
        });
        mailboxes.push(tx);
    }
    let mut replies = Vec::with_capacity(n);
    for tx in &mailboxes {
        let (reply, rx) = oneshot::channel();
        tx.send(reply).await?;
        replies.push(rx);
    }
    for rx in replies {
        rx.await?;
    }
    let took = t0.elapsed();
    let with_actors = rss_kib(std::process::id());
    let held = (with_actors - before) * 1024.0 / n as f64;
    // The registry's floor: a bare map of the same number of ids, each to
    // a node name and a handle.
    let map: std::collections::HashMap<String, (String, u64)> = (0..n)
        .map(|k| (format!("counter-{k}"), ("n1".to_string(), k as u64)))
        .collect();
    let entry = (rss_kib(std::process::id()) - with_actors) * 1024.0 / n as f64;
    println!("{} {held:.0} {entry:.0}", took.as_secs_f64());
    drop((mailboxes, map));
    Ok(())
}

/// What [`actor_floor`] measured.
pub(super) struct ActorFloor {
    /// Seconds to spawn the actors and have each answer one request.
    pub(super) secs: f64,
    /// Resident bytes per idle actor (task and mailbox).
    pub(super) actor_bytes: f64,
    /// Resident bytes per entry of a bare `HashMap<String, (String, u64)>`.
    pub(super) entry_bytes: f64,
}

/// Runs [`actor_floor`] for `n` actors in a fresh process.
pub(super) fn actor_floor_process(n: usize) -> Result<ActorFloor, AnyError> {
    let out = OsCommand::new(std::env::current_exe()?)
        .args(["floor", "--actors", &n.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(secs)), Some(Ok(actor_bytes)), Some(Ok(entry_bytes))) if out.status.success() => {
            Ok(ActorFloor {
                secs,
                actor_bytes,
                entry_bytes,
            })
        }
        _ => Err(format!("the floor process said {text:?} ({})", out.status).into()),
    }
}

/// Three listeners on loopback and a connection between each pair, each
/// carrying one 64-byte frame each way: what forming three nodes needs at
/// the least.
pub(super) async fn handshake_floor() -> Result<Duration, AnyError> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let addrs: Vec<_> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let accepts = listeners.into_iter().enumerate().map(|(i, l)| {
        tokio::spawn(async move {
            // Node i is dialled by every node before it.
            for _ in 0..i {
                let (mut s, _) = l.accept().await?;
                let mut buf = [0u8; 64];
                s.read_exact(&mut buf).await?;
                s.write_all(&buf).await?;
            }
            Ok::<(), std::io::Error>(())
        })
    });
    let accepts: Vec<_> = accepts.collect();
    let mut dials = Vec::new();
    for i in 0..3 {
        for &to in &addrs[i + 1..] {
            dials.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(to).await?;
                s.write_all(&[i as u8; 64]).await?;
                let mut buf = [0u8; 64];
                s.read_exact(&mut buf).await?;
                Ok::<(), std::io::Error>(())
            }));
        }
    }
    for t in dials.into_iter().chain(accepts) {
        t.await??;
    }
    Ok(t0.elapsed())
}

/// CPU seconds (user + system) and bytes read and written by a process.
pub(super) fn cpu_and_io(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them, in clock ticks (100 per second
    // on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11..13).map_or(0.0, |t| {
        t.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let bytes = io
        .lines()
        .filter(|l| l.starts_with("rchar:") || l.starts_with("wchar:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    (ticks / 100.0, bytes)
}

/// A process's resident set in KiB (NaN if it cannot be read).
pub(super) fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
