//! Acknowledged starts, and strict single-instance mode against
//! divergence mode: three hubs in this process.

use super::*;

/// Strict single-instance mode against the default: awaited starts (one
/// child per start, and batches of 1,000) from one hub of three, then the
/// time from killing a hub until all 1,000 children run on the others.
pub(super) async fn strict_rows() -> Result<(), AnyError> {
    for strict in [false, true] {
        let label = if strict {
            "strict (quorum 2)"
        } else {
            "divergence"
        };
        let hubs = formed_hubs(3, |b| {
            let b = b.register::<Counter>("counter");
            if strict {
                b.strict(hub_core::Strict::new(2))
            } else {
                b
            }
        })
        .await?;
        // Strict nodes grant nothing for the takeover delay after starting.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = hubs[0]
                .start_child(ChildSpec::new("probe", "counter"), StartOptions::awaited())
                .await;
            match probe {
                Ok(out) if out.is_ok() => break,
                // Not granted yet: a failed start is an error since the
                // API stopped reporting failures as `Ok`.
                Ok(_) | Err(hub_net::HubError::StartFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() > deadline {
                return Err("no quorum of grants".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rounds = 2_000;
        let mut lat = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let spec = ChildSpec::new(format!("one-{i}"), "counter");
            let t = Instant::now();
            let out = hubs[0].start_child(spec, StartOptions::awaited()).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if !out.is_ok() {
                return Err(format!("start failed: {out:?}").into());
            }
        }
        lat.sort_by(f64::total_cmp);
        let t = Instant::now();
        for k in 0..10 {
            let specs: Vec<ChildSpec> = (0..1_000)
                .map(|i| ChildSpec::new(format!("b{k}-{i}"), "counter"))
                .collect();
            let out = hubs[0]
                .start_children(specs, StartOptions::awaited())
                .await?;
            if !out.is_ok() {
                return Err("batch start failed".into());
            }
        }
        let rate = 10_000.0 / t.elapsed().as_secs_f64();
        let total = rounds + 10_001;
        let t = Instant::now();
        hubs[2].abort();
        loop {
            let on = hubs[0].which_children(true).await?;
            let alive: usize = on
                .iter()
                .filter(|(n, _)| n.as_str() != "h2")
                .map(|(_, v)| v.len())
                .sum();
            if alive == total && !on.contains_key("h2") {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err("the killed hub's children did not come back".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = t.elapsed();
        println!(
            "{label}: 1 child per start p50 {:.0} µs, p99 {:.0} µs; batches of 1,000: {rate:.0} children/s; kill -> all {total} running again {:.2} s",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            back.as_secs_f64()
        );
        for h in &hubs[..2] {
            h.shutdown().await?;
        }
    }
    Ok(())
}

/// Awaited starts from one hub of three, one child per start, and batches
/// of 1,000, at each ack level.
pub(super) async fn ack_rows() -> Result<(), AnyError> {
    let hubs = formed_hubs(3, |b| b.register::<Counter>("counter")).await?;
    let rounds = 2_000;
    for (name, ack) in [
        ("Local", Ack::Local),
        ("Quorum", Ack::Quorum),
        ("All", Ack::All),
    ] {
        let mut lat = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let spec = ChildSpec::new(format!("{name}-{i}"), "counter");
            let t = Instant::now();
            let out = hubs[0].start_child(spec, StartOptions::acked(ack)).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if !out.is_ok() {
                return Err(format!("acked start failed: {out:?}").into());
            }
        }
        lat.sort_by(f64::total_cmp);
        let t = Instant::now();
        let batches = 10;
        for k in 0..batches {
            let specs: Vec<ChildSpec> = (0..1_000)
                .map(|i| ChildSpec::new(format!("{name}-b{k}-{i}"), "counter"))
                .collect();
            let out = hubs[0]
                .start_children(specs, StartOptions::acked(ack))
                .await?;
            if !out.is_ok() {
                return Err("acked batch failed".into());
            }
        }
        let rate = (batches * 1_000) as f64 / t.elapsed().as_secs_f64();
        println!(
            "ack {name}: 1 child per start p50 {:.0} µs, p99 {:.0} µs; batches of 1,000: {rate:.0} children/s",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    for h in &hubs {
        h.shutdown().await?;
    }
    Ok(())
}
