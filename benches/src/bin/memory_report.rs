//! Memory per registry entry, beside the floor of a bare
//! `HashMap<String, (String, u64)>` holding the same ids, kinds and handles:
//! `cargo run --release -p benches --bin memory_report`.
//!
//! Measured as growth of this process's resident set (`VmRSS`), so the
//! figure includes allocator overhead: what a node really pays. Each
//! structure is built while the previous one is still alive, so no freed
//! memory is reused by the next.

use std::collections::HashMap;

use benches::{child_ids, registry, ring};

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib * 1024.0)
}

fn main() {
    for n in [100_000usize, 1_000_000] {
        let ids = child_ids(n, 11);
        let r = ring(10, 128);

        let before = rss_bytes();
        let reg = registry(&ids, &r);
        let ours = (rss_bytes() - before) / n as f64;

        let before = rss_bytes();
        let bare: HashMap<String, (String, u64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), ("counter".to_string(), i as u64)))
            .collect();
        let floor = (rss_bytes() - before) / n as f64;

        println!(
            "registry of {n} entries ({} live): {ours:.0} B/entry; bare HashMap<String, (String, u64)>: {floor:.0} B/entry; ratio {:.2}",
            reg.len(),
            ours / floor
        );
        drop(bare);
        drop(reg);
    }
}
