//! A 3-node in-memory hub: where 10,000 children land, what moves when a
//! fourth node joins, and what restarts when a node crashes.
//!
//! Run: `cargo run --release -p hub-testkit --example demo [children] [seed]`

use std::collections::BTreeMap;
use std::time::Instant;

use hub_core::{ChildSpec, Event, NodeId, StartOptions};
use hub_testkit::{invariants, Cluster, ClusterOptions};

fn placement(c: &Cluster) -> BTreeMap<NodeId, usize> {
    c.alive()
        .into_iter()
        .map(|i| (c.id(i), c.runtime(i).running().count()))
        .collect()
}

fn show(title: &str, c: &Cluster) {
    println!("\n{title}");
    for (node, n) in placement(c) {
        println!("  {node:>4}  {n:>6} children  {}", "#".repeat(n / 250));
    }
}

fn settle(c: &mut Cluster, what: &str) -> Result<(), String> {
    if c.settle() {
        Ok(())
    } else {
        Err(format!(
            "{what}: cluster did not settle ({:?})",
            c.unquiet_reason()
        ))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let children: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let wall = Instant::now();

    println!("processhub-rs demo: 3 in-memory nodes, {children} children, seed {seed}");
    let mut c = Cluster::new(ClusterOptions::new(3).seed(seed));
    settle(&mut c, "forming")?;
    println!(
        "[1/4] cluster formed at t={} ms (virtual)",
        c.now().as_millis()
    );

    let specs: Vec<ChildSpec> = (0..children)
        .map(|i| ChildSpec::new(format!("counter-{i}"), "counter"))
        .collect();
    let outcome = c.start(0, specs, StartOptions::awaited())?;
    settle(&mut c, "starting")?;
    println!(
        "[2/4] started {} children from n0 ({} failed)",
        outcome.started.len(),
        outcome.failed.len()
    );
    show("where the children landed:", &c);

    let before = c.events().len();
    let d = c.add_node();
    settle(&mut c, "joining")?;
    let moved: usize = c.events()[before..]
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::ChildMigrated { children, .. } => Some(children.len()),
            _ => None,
        })
        .sum();
    println!(
        "\n[3/4] {} joined: {moved} children moved ({:.1}% of all; ideal 1/4 = 25%)",
        c.id(d),
        100.0 * moved as f64 / children as f64
    );
    show("after the join:", &c);

    let victim = 1;
    let lost = c.runtime(victim).running().count();
    let before = c.events().len();
    let crashed_at = c.now();
    c.crash(victim);
    settle(&mut c, "recovering")?;
    let restarted = c.events()[before..]
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::ChildStarted { .. }))
        .count();
    println!(
        "\n[4/4] {} crashed with {lost} children: {restarted} restarted on their new owners \
         within {} ms (virtual; failure detection included)",
        c.id(victim),
        c.now().since(crashed_at).as_millis()
    );
    show("after the crash:", &c);

    invariants::check_all(&c)?;
    let (sent, _) = c.message_counts();
    println!("\nsummary");
    println!(
        "  {:<34} {}",
        "children registered on every node",
        c.node(0).map_or(0, |n| n.count_children())
    );
    println!("  {:<34} hold", "invariants (registries, placement)");
    println!("  {:<34} {sent}", "messages exchanged");
    println!("  {:<34} {} ms", "virtual time", c.now().as_millis());
    println!("  {:<34} {} ms", "wall time", wall.elapsed().as_millis());
    Ok(())
}
