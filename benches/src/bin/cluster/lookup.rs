//! `Hub::child_lookup` through the public API, from 1 and 64 tasks, beside
//! a bare `HashMap` holding the same rows read the same way: two hubs in
//! this process, 100 k children.

use std::collections::HashMap;

use hub_core::{Handle, NodeId};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::*;

/// Lookups each reader does per timed round, cycling over shuffled ids.
const PER_TASK: usize = 200_000;

pub(super) async fn lookup_rows(children: usize) -> Result<(), AnyError> {
    let mut hubs = formed_hubs(2, |b| b.register::<Counter>("counter")).await?;
    let (b, a) = (hubs.pop().ok_or("no hub")?, hubs.pop().ok_or("no hub")?);
    for from in (0..children).step_by(1_000) {
        let specs = (from..(from + 1_000).min(children))
            .map(|k| ChildSpec::new(format!("counter-{k}"), "counter"))
            .collect();
        a.start_children(specs, StartOptions::awaited()).await?;
    }
    let mut ids: Vec<String> = (0..children).map(|k| format!("counter-{k}")).collect();
    ids.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    // The floor holds exactly what a's lookups return.
    let mut bare: HashMap<String, Vec<(NodeId, Handle)>> = HashMap::with_capacity(children);
    for id in &ids {
        let at = a.child_lookup(id)?;
        if at.is_empty() {
            return Err(format!("{id} not in a's lookup after its awaited start").into());
        }
        bare.insert(id.clone(), at);
    }
    let ids = Arc::new(ids);
    let bare = Arc::new(bare);
    let a = Arc::new(a);
    for tasks in [1usize, 64] {
        let ours = rate(tasks, &ids, {
            let a = a.clone();
            move |id: &str| a.child_lookup(id).map_or(0, |v| v.len())
        })
        .await?;
        let floor = rate(tasks, &ids, {
            let bare = bare.clone();
            move |id: &str| bare.get(id).map_or(0, |v| v.to_vec().len())
        })
        .await?;
        println!(
            "child_lookup, {tasks} task(s), {children} entries: {:.2} M/s ({:.0} ns each per task); bare HashMap {:.2} M/s; {:.2} of the floor; {:.1} × ProcessHub's 0.5 M/s",
            ours / 1e6,
            tasks as f64 * 1e9 / ours,
            floor / 1e6,
            ours / floor,
            ours / 0.5e6
        );
    }
    Arc::try_unwrap(a)
        .map_err(|_| "hub still shared")?
        .shutdown()
        .await?;
    b.shutdown().await?;
    Ok(())
}

/// Lookups per second over `tasks` tokio tasks, each doing [`PER_TASK`]
/// lookups of the shuffled ids from its own offset.
async fn rate(
    tasks: usize,
    ids: &Arc<Vec<String>>,
    look: impl Fn(&str) -> usize + Send + Sync + Clone + 'static,
) -> Result<f64, AnyError> {
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (ids, look) = (ids.clone(), look.clone());
        handles.push(tokio::spawn(async move {
            let mut found = 0usize;
            for k in 0..PER_TASK {
                found += look(&ids[(t * 7919 + k) % ids.len()]);
                if k % 4096 == 0 {
                    // Share the two cores the way real callers would.
                    tokio::task::yield_now().await;
                }
            }
            found
        }));
    }
    let mut found = 0;
    for h in handles {
        found += h.await?;
    }
    if found < tasks * PER_TASK {
        return Err(format!("{found} holders found for {} lookups", tasks * PER_TASK).into());
    }
    Ok((tasks * PER_TASK) as f64 / t0.elapsed().as_secs_f64())
}
