//! Children on demand: the first message to an id that runs nowhere
//! (which starts it on its owner) against a call to a running child,
//! from a to ids whose owner is b, and against an explicit awaited start
//! followed by a call: two hubs in this process.

use super::*;

/// Ids whose ring owner is `b` (for a two-node ring of `a` and `b`).
async fn ids_owned_by(b: &Hub, n: usize, prefix: &str) -> Result<Vec<String>, AnyError> {
    let ring = hub_core::Ring::new(hub_core::ring::DEFAULT_VNODES, b.nodes().await?);
    Ok((0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| ring.owner(id) == Some(b.node_id()))
        .take(n)
        .collect())
}

pub(super) async fn on_demand_rows() -> Result<(), AnyError> {
    let mut hubs = formed_hubs(2, |b| b.register_on_demand::<Counter>("counter", |_id| 0)).await?;
    let (b, a) = (hubs.pop().ok_or("no hub")?, hubs.pop().ok_or("no hub")?);
    let timeout = Duration::from_secs(5);
    let rounds = 2_000;
    let cold_ids = ids_owned_by(&b, rounds, "cold-").await?;
    let mut cold = Vec::with_capacity(rounds);
    for id in &cold_ids {
        let t = Instant::now();
        a.call::<Counter>(id.as_str(), &CounterMsg::Add(1), timeout)
            .await?;
        cold.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut warm = Vec::with_capacity(rounds);
    for id in &cold_ids {
        let t = Instant::now();
        a.call::<Counter>(id.as_str(), &CounterMsg::Add(1), timeout)
            .await?;
        warm.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // The floor: what a user does without on demand, an awaited start
    // and then the call.
    let explicit_ids = ids_owned_by(&b, rounds, "explicit-").await?;
    let mut explicit = Vec::with_capacity(rounds);
    for id in &explicit_ids {
        let t = Instant::now();
        let spec = ChildSpec::new(id.as_str(), "counter");
        a.start_child(spec, StartOptions::awaited()).await?;
        a.call::<Counter>(id.as_str(), &CounterMsg::Add(1), timeout)
            .await?;
        explicit.push(t.elapsed().as_secs_f64() * 1e6);
    }
    for v in [&mut cold, &mut warm, &mut explicit] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "first message (starts the child on b): p50 {:.0} µs, p99 {:.0} µs; \
         awaited start + call: p50 {:.0} µs, p99 {:.0} µs; \
         warm call: p50 {:.1} µs, p99 {:.1} µs",
        pct(&cold, 0.5),
        pct(&cold, 0.99),
        pct(&explicit, 0.5),
        pct(&explicit, 0.99),
        pct(&warm, 0.5),
        pct(&warm, 0.99),
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}
