//! Placement figures that are counts, not times: moved fraction on a join
//! and a leave, and balance. `cargo run --release -p benches --bin placement_report`

use std::collections::BTreeMap;

use benches::{child_ids, ring};
use hub_core::NodeId;

fn main() {
    let ids = child_ids(1_000_000, 9);
    for vnodes in [128u32, 256, 512] {
        let ten = ring(10, vnodes);
        let mut eleven = ten.clone();
        eleven.insert(NodeId::new("node-10"));
        let moved_join = ids
            .iter()
            .filter(|id| ten.owner(id) != eleven.owner(id))
            .count();
        let mut nine = ten.clone();
        nine.remove(&NodeId::new("node-3"));
        let moved_leave = ids
            .iter()
            .filter(|id| ten.owner(id) != nine.owner(id))
            .count();
        let mut load: BTreeMap<&NodeId, usize> = BTreeMap::new();
        for id in &ids {
            if let Some(o) = ten.owner(id) {
                *load.entry(o).or_default() += 1;
            }
        }
        let max = load.values().copied().max().unwrap_or(0) as f64;
        let mean = ids.len() as f64 / 10.0;
        let ideal_join = ids.len() as f64 / 11.0;
        let ideal_leave = ids.len() as f64 / 10.0;
        println!(
            "vnodes {vnodes:>3}: join 10->11 moved {:.4} of ids ({:.3} x ideal 1/11); leave 10->9 moved {:.4} ({:.3} x ideal 1/10); balance max/mean {:.3}",
            moved_join as f64 / ids.len() as f64,
            moved_join as f64 / ideal_join,
            moved_leave as f64 / ids.len() as f64,
            moved_leave as f64 / ideal_leave,
            max / mean
        );
    }
}
