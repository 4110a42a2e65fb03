//! Core micro-benchmarks, each beside its floor in the same run:
//! `cargo bench -p benches --bench core`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use benches::{child_ids, registry, ring};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use hub_core::protocol::{decode, encode, Message, DEFAULT_MAX_FRAME};
use hub_core::registry::{SliceDelta, Stamped, Version};
use hub_core::{ChildSpec, NodeId, Ring};
use xxhash_rust::xxh3::xxh3_64_with_seed;

fn ring_lookup(c: &mut Criterion) {
    let r = ring(100, 128);
    let ids = child_ids(4096, 1);
    // Floor: a bare xxh3 and binary search over the same number of points.
    let mut points: Vec<u64> = (0..12_800u64)
        .map(|i| xxh3_64_with_seed(&i.to_le_bytes(), 7))
        .collect();
    points.sort_unstable();
    let mut g = c.benchmark_group("ring_owner_100x128");
    let mut i = 0;
    g.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(r.owner(&ids[i]))
        })
    });
    let mut j = 0;
    g.bench_function("floor_xxh3_binary_search", |b| {
        b.iter(|| {
            j = (j + 1) & 4095;
            let h = xxh3_64_with_seed(ids[j].as_bytes(), 7);
            black_box(points.partition_point(|&p| p < h))
        })
    });
    g.finish();
}

fn ring_join(c: &mut Criterion) {
    let base = ring(100, 128);
    c.bench_function("ring_join_100_to_101", |b| {
        b.iter_batched(
            || base.clone(),
            |mut r| {
                r.insert(NodeId::new("joiner"));
                r
            },
            BatchSize::SmallInput,
        )
    });
}

fn registry_lookup(c: &mut Criterion) {
    for n in [100_000usize, 1_000_000] {
        let ids = child_ids(n, 2);
        let r = ring(10, 128);
        let reg = registry(&ids, &r);
        // Floor: a bare HashMap<String, _> of the same keys.
        let bare: HashMap<String, (NodeId, u64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), (NodeId::new("n"), i as u64)))
            .collect();
        let mut g = c.benchmark_group(format!("registry_lookup_{n}"));
        let mut i = 0;
        g.bench_function("ours", |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(reg.lookup_ref(&ids[i]).len())
            })
        });
        let mut j = 0;
        g.bench_function("floor_std_hashmap", |b| {
            b.iter(|| {
                j = (j + 7919) % n;
                black_box(bare.get(&ids[j]).map(|v| v.1))
            })
        });
        g.finish();
    }
}

fn delta_1000() -> (SliceDelta, Vec<(String, String, u64)>) {
    let ids = child_ids(1000, 3);
    let rows: Vec<(hub_core::ChildId, Stamped)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let spec = ChildSpec::new(id.as_str(), "counter");
            let row = hub_core::registry::Row {
                spec: spec.into(),
                handle: hub_core::Handle(i as u64),
                moving_to: None,
            };
            let version = Version {
                incarnation: 1,
                seq: i as u64 + 1,
            };
            (
                id.as_str().into(),
                Stamped {
                    version,
                    row: Some(row),
                },
            )
        })
        .collect();
    let delta = SliceDelta {
        node: NodeId::new("node-1"),
        since: Version::default(),
        clock: Version {
            incarnation: 1,
            seq: 1000,
        },
        rows,
    };
    // Floor: bare tuples with the same strings and numbers.
    let bare = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), "counter".to_string(), i as u64))
        .collect();
    (delta, bare)
}

/// The floor with our shape: the same fields and nesting as an encoded
/// `Message::Delta` (version prefix, enum tag, rows with versions, spec,
/// handle, move target), as plain owned structs without `Arc`s, checks or
/// custom types.
mod plain {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Version(pub u64, pub u64);

    #[derive(Serialize, Deserialize)]
    pub enum Restart {
        Permanent,
        Transient,
        Temporary,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Spec {
        pub id: String,
        pub kind: String,
        pub args: Vec<u8>,
        pub restart: Restart,
        pub metadata: BTreeMap<String, String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Row {
        pub spec: Spec,
        pub handle: u64,
        pub moving_to: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Stamped {
        pub version: Version,
        pub row: Option<Row>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Delta {
        pub node: String,
        pub since: Version,
        pub clock: Version,
        pub rows: Vec<(String, Stamped)>,
    }

    #[derive(Serialize, Deserialize)]
    pub enum Message {
        Delta(Delta),
    }

    #[derive(Serialize, Deserialize)]
    pub struct Envelope {
        pub version: u16,
        pub message: Message,
    }

    pub fn delta(ids: &[String]) -> Envelope {
        let rows = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let row = Row {
                    spec: Spec {
                        id: id.clone(),
                        kind: "counter".into(),
                        args: Vec::new(),
                        restart: Restart::Permanent,
                        metadata: BTreeMap::new(),
                    },
                    handle: i as u64,
                    moving_to: None,
                };
                let version = Version(1, i as u64 + 1);
                (
                    id.clone(),
                    Stamped {
                        version,
                        row: Some(row),
                    },
                )
            })
            .collect();
        Envelope {
            version: 2,
            message: Message::Delta(Delta {
                node: "node-1".into(),
                since: Version(0, 0),
                clock: Version(1, ids.len() as u64),
                rows,
            }),
        }
    }
}

fn codec(c: &mut Criterion) {
    let (delta, bare) = delta_1000();
    let same_shape = plain::delta(&child_ids(1000, 3));
    let msg = Message::Delta(delta);
    if let Ok(ours) = encode(&msg, DEFAULT_MAX_FRAME) {
        let floor = postcard::to_stdvec(&same_shape).unwrap_or_default();
        println!(
            "codec_delta_1000: ours {} bytes, same-shape floor {} bytes",
            ours.len(),
            floor.len()
        );
    }
    let mut g = c.benchmark_group("codec_delta_1000");
    g.bench_function("ours_encode_decode", |b| {
        b.iter(|| {
            let bytes = encode(black_box(&msg), DEFAULT_MAX_FRAME).unwrap_or_default();
            black_box(decode(&bytes, DEFAULT_MAX_FRAME).is_ok())
        })
    });
    g.bench_function("floor_bare_postcard", |b| {
        b.iter(|| {
            let bytes = postcard::to_stdvec(black_box(&bare)).unwrap_or_default();
            black_box(postcard::from_bytes::<Vec<(String, String, u64)>>(&bytes).is_ok())
        })
    });
    g.bench_function("floor_same_shape_plain_structs", |b| {
        b.iter(|| {
            let bytes = postcard::to_stdvec(black_box(&same_shape)).unwrap_or_default();
            black_box(postcard::from_bytes::<plain::Envelope>(&bytes).is_ok())
        })
    });
    g.finish();
}

/// What a node runs when a member joins: the hello, the membership change
/// and its redistribution over every local child (ColdSwap stops for the
/// joiner's share), on a lone node running 1 M children. Floor: the least
/// any node must do, the joined ring's owner of each child, collecting the
/// joiner's.
fn node_join_1m(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("node_join_1m_children");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("ours_node_redistributes", |b| {
        b.iter_batched(
            || benches::node_running(N),
            |mut node| {
                let stops = benches::join(&mut node);
                assert!(stops > N / 4, "a join moves about half: {stops}");
                node
            },
            BatchSize::PerIteration,
        )
    });
    let ids = child_ids(N, 9);
    let mut joined = Ring::new(hub_core::ring::DEFAULT_VNODES, [NodeId::new("a")]);
    joined.insert(NodeId::new("b"));
    let b_id = NodeId::new("b");
    g.bench_function("floor_ring_owner_per_child", |b| {
        b.iter(|| {
            let moving: Vec<&String> = ids
                .iter()
                .filter(|id| joined.owner(id.as_str()) == Some(&b_id))
                .collect();
            black_box(moving.len())
        })
    });
    g.finish();
}

fn delta_apply(c: &mut Criterion) {
    let big_ids = child_ids(1_000_000, 5);
    let r = ring(10, 128);
    let base = registry(&big_ids, &r);
    let extra = child_ids(100_000, 6);
    let source = registry(&extra, &ring(1, 128));
    let deltas: Vec<SliceDelta> = source
        .slice_nodes()
        .map(|n| source.delta_since(n, Version::default()))
        .collect();
    let mut g = c.benchmark_group("registry_delta_100k_into_1m");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("ours_apply", |b| {
        b.iter_batched(
            || base.clone(),
            |mut reg| {
                for d in &deltas {
                    reg.apply(d);
                }
                reg
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("reference_build_100k_from_scratch", |b| {
        b.iter(|| black_box(registry(&extra, &ring(1, 128)).len()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = ring_lookup, ring_join, registry_lookup, codec, node_join_1m, delta_apply
}
criterion_main!(benches);
