//! proptest generators: ids, specs, protocol messages, membership changes
//! and cluster operation sequences.

use std::time::Duration;

use bytes::Bytes;
use hub_core::protocol::{Beat, Echo, Grants, Handoff, Message, NodeInfo, OpRef, Term};
use hub_core::registry::{Row, SliceDelta, Stamped, Version};
use hub_core::{
    ChildId, ChildSpec, ExitReason, Handle, NodeId, RestartPolicy, StartError, StartOptions,
    StopError, StopOptions,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::Cluster;

/// Child ids: short lowercase names, so that batches collide sometimes.
pub fn child_id() -> impl Strategy<Value = ChildId> {
    "[a-z]{1,6}[0-9]{0,3}".prop_map(ChildId::from)
}

/// Node ids.
pub fn node_id() -> impl Strategy<Value = NodeId> {
    "n[0-9]{1,2}".prop_map(NodeId::from)
}

/// Valid child specs of the testkit's kinds.
pub fn child_spec() -> impl Strategy<Value = ChildSpec> {
    (
        child_id(),
        prop_oneof![Just("counter"), Just("echo")],
        vec(any::<u8>(), 0..16),
        prop_oneof![
            Just(RestartPolicy::Permanent),
            Just(RestartPolicy::Transient),
            Just(RestartPolicy::Temporary)
        ],
        btree_map("[a-z]{1,4}", "[a-z0-9]{0,4}", 0..3),
    )
        .prop_map(|(id, kind, args, restart, metadata)| ChildSpec {
            id,
            kind: kind.into(),
            args: Bytes::from(args),
            restart,
            metadata,
        })
}

fn node_info() -> impl Strategy<Value = NodeInfo> {
    (
        node_id(),
        "[a-z0-9.:]{0,20}",
        any::<u64>(),
        btree_map("[a-z]{1,4}", "[a-z0-9]{0,4}", 0..3),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(id, addr, incarnation, tags, strict_quorum)| NodeInfo {
            id,
            addr,
            incarnation,
            tags,
            strict_quorum,
        })
}

fn op_ref() -> impl Strategy<Value = OpRef> {
    (node_id(), any::<u64>()).prop_map(|(origin, seq)| OpRef { origin, seq })
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), any::<u64>()).prop_map(|(incarnation, seq)| Version { incarnation, seq })
}

fn start_error() -> impl Strategy<Value = StartError> {
    prop_oneof![
        (node_id(), any::<u64>()).prop_map(|(node, h)| StartError::AlreadyStarted {
            node,
            handle: Handle(h)
        }),
        ".{0,10}".prop_map(StartError::UnknownKind),
        ".{0,10}".prop_map(StartError::InitFailed),
        Just(StartError::Timeout),
        Just(StartError::Partitioned),
        vec(node_id(), 0..4).prop_map(StartError::HopLimit),
        node_id().prop_map(StartError::OwnerDown),
        Just(StartError::RolledBack),
        (any::<usize>(), any::<usize>())
            .prop_map(|(granted, quorum)| StartError::NotGranted { granted, quorum }),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    (any::<u64>(), any::<u64>()).prop_map(|(incarnation, revoked)| Term {
        incarnation,
        revoked,
    })
}

fn beat() -> impl Strategy<Value = Beat> {
    (
        any::<u64>(),
        proptest::option::of((any::<u64>(), any::<u64>(), term()).prop_map(
            |(at, incarnation, term)| Echo {
                at,
                incarnation,
                term,
            },
        )),
    )
        .prop_map(|(at, echo)| Beat { at, echo })
}

fn stop_error() -> impl Strategy<Value = StopError> {
    prop_oneof![
        Just(StopError::NotFound),
        Just(StopError::Timeout),
        Just(StopError::Partitioned),
        node_id().prop_map(StopError::HostDown),
    ]
}

fn slice_delta() -> impl Strategy<Value = SliceDelta> {
    let cell = (
        child_id(),
        version(),
        proptest::option::of((child_spec(), any::<u64>(), proptest::option::of(node_id()))),
    )
        .prop_map(|(id, version, row)| {
            let row = row.map(|(spec, h, moving_to)| Row {
                spec: spec.into(),
                handle: Handle(h),
                moving_to,
            });
            (id, Stamped { version, row })
        });
    (node_id(), version(), version(), vec(cell, 0..4)).prop_map(|(node, since, clock, rows)| {
        SliceDelta {
            node,
            since,
            clock,
            rows,
        }
    })
}

/// Every protocol message variant with arbitrary contents.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (node_info(), vec(node_info(), 0..4)).prop_map(|(info, members)| Message::Hello {
            info,
            members,
            losses: Vec::new(),
        }),
        (node_info(), vec((node_id(), any::<u64>()), 0..4)).prop_map(|(info, losses)| {
            Message::Hello {
                info,
                members: Vec::new(),
                losses,
            }
        }),
        (
            any::<u64>(),
            proptest::option::of(beat()),
            any::<(u64, u64)>()
        )
            .prop_map(|(incarnation, lease, (i, seq))| Message::Heartbeat {
                incarnation,
                lease,
                clock: hub_core::registry::Version {
                    incarnation: i,
                    seq,
                },
            }),
        Just(Message::Leaving),
        Just(Message::Left),
        slice_delta().prop_map(Message::Delta),
        vec((node_id(), version()), 0..4).prop_map(Message::Digest),
        (
            op_ref(),
            vec(child_spec(), 0..3),
            any::<bool>(),
            vec(node_id(), 0..4)
        )
            .prop_map(|(op, specs, check_existing, path)| Message::StartRequest {
                op,
                specs,
                check_existing,
                path
            }),
        (
            op_ref(),
            vec(
                (
                    child_id(),
                    prop_oneof![
                        any::<u64>().prop_map(|h| Ok(Handle(h))),
                        start_error().prop_map(Err)
                    ]
                ),
                0..4
            )
        )
            .prop_map(|(op, results)| Message::StartResult { op, results }),
        (op_ref(), vec(child_id(), 0..4)).prop_map(|(op, ids)| Message::StopRequest { op, ids }),
        (
            op_ref(),
            vec(
                (
                    child_id(),
                    prop_oneof![Just(Ok(())), stop_error().prop_map(Err)]
                ),
                0..4
            )
        )
            .prop_map(|(op, results)| Message::StopResult { op, results }),
        (
            vec(
                (
                    child_spec(),
                    proptest::option::of(vec(any::<u8>(), 0..8)),
                    any::<bool>(),
                    proptest::option::of(any::<u64>()),
                    any::<u64>()
                )
                    .prop_map(|(spec, state, repair, recovered, lineage)| {
                        Handoff {
                            spec,
                            state: state.map(Bytes::from),
                            repair,
                            recovered,
                            lineage,
                        }
                    }),
                0..3
            ),
            any::<bool>()
        )
            .prop_map(|(children, leaving)| Message::Handoff { children, leaving }),
        vec(child_id(), 0..4).prop_map(Message::HandoffAck),
        vec((child_id(), "[a-z ]{0,20}"), 0..4).prop_map(Message::HandoffRefused),
        any::<u32>().prop_map(Message::Load),
        vec((node_id(), any::<u32>()), 0..4).prop_map(Message::Scoreboard),
        Just(Message::Decommission),
        (any::<u64>(), vec(child_id(), 0..4))
            .prop_map(|(seq, ids)| Message::HoldQuery { seq, ids }),
        (any::<u64>(), any::<bool>()).prop_map(|(seq, all)| Message::Holds { seq, all }),
        (child_id(), any::<u64>(), vec(any::<u8>(), 0..16)).prop_map(|(id, seq, state)| {
            Message::Snapshot {
                id,
                seq,
                state: Bytes::from(state),
            }
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            vec(child_id(), 0..4)
        )
            .prop_map(|(seq, at, incarnation, ids)| Message::Claim {
                seq,
                at,
                incarnation,
                ids
            }),
        (
            (any::<u64>(), any::<u64>(), any::<u64>()),
            term(),
            vec(child_id(), 0..4),
            vec(child_id(), 0..4)
        )
            .prop_map(
                |((seq, at, incarnation), term, granted, refused)| Message::Grants(Grants {
                    seq,
                    at,
                    incarnation,
                    term,
                    granted,
                    refused
                })
            ),
        vec(child_id(), 0..4).prop_map(Message::Release),
        vec(child_id(), 0..4).prop_map(Message::Promised),
    ]
}

/// One step of a cluster scenario. Node numbers are taken modulo the
/// cluster size when applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterOp {
    /// Start children `c{k}` for each k, from a node (awaited).
    Start {
        /// Issuing node.
        node: usize,
        /// Child numbers.
        ids: Vec<u16>,
    },
    /// Stop children, from a node (awaited).
    Stop {
        /// Issuing node.
        node: usize,
        /// Child numbers.
        ids: Vec<u16>,
    },
    /// A child exits for good on whichever node runs it.
    ChildExit(u16),
    /// Kill a node.
    Crash(usize),
    /// Restart a crashed node.
    Restart(usize),
    /// Add a node.
    Join,
    /// A node leaves gracefully.
    Leave(usize),
    /// Split the nodes in two by this mask.
    Partition(Vec<bool>),
    /// Restore all links.
    Heal,
    /// Let virtual time pass (milliseconds).
    Advance(u32),
}

/// Membership changes and faults only.
pub fn membership_change() -> impl Strategy<Value = ClusterOp> {
    prop_oneof![
        (0usize..8).prop_map(ClusterOp::Crash),
        (0usize..8).prop_map(ClusterOp::Restart),
        Just(ClusterOp::Join),
        (0usize..8).prop_map(ClusterOp::Leave),
        vec(any::<bool>(), 8).prop_map(ClusterOp::Partition),
        Just(ClusterOp::Heal),
    ]
}

/// Any operation: mostly starts, stops and time passing, with faults.
pub fn operation() -> impl Strategy<Value = ClusterOp> {
    prop_oneof![
        4 => ((0usize..8), vec(0u16..64, 1..6)).prop_map(|(node, ids)| ClusterOp::Start { node, ids }),
        2 => ((0usize..8), vec(0u16..64, 1..4)).prop_map(|(node, ids)| ClusterOp::Stop { node, ids }),
        1 => (0u16..64).prop_map(ClusterOp::ChildExit),
        3 => (1u32..5_000).prop_map(ClusterOp::Advance),
        2 => membership_change(),
    ]
}

/// A sequence of operations.
pub fn operations(max_len: usize) -> impl Strategy<Value = Vec<ClusterOp>> {
    vec(operation(), 1..max_len)
}

/// Applies one operation to a cluster. Starts and stops are awaited with a
/// short timeout; their outcome is returned as the ids that were
/// acknowledged started (for loss checks).
pub fn apply(c: &mut Cluster, op: &ClusterOp) -> Vec<ChildId> {
    let alive = c.alive();
    let pick = |n: usize| alive.get(n % alive.len().max(1)).copied();
    let timeout = StartOptions {
        timeout: Duration::from_secs(5),
        ..StartOptions::awaited()
    };
    match op {
        ClusterOp::Start { node, ids } => {
            let Some(i) = pick(*node) else {
                return Vec::new();
            };
            let specs = ids
                .iter()
                .map(|k| ChildSpec::new(format!("c{k}"), "counter"))
                .collect();
            match c.start(i, specs, timeout) {
                Ok(o) => o.started.into_keys().collect(),
                Err(_) => Vec::new(),
            }
        }
        ClusterOp::Stop { node, ids } => {
            if let Some(i) = pick(*node) {
                let ids = ids.iter().map(|k| ChildId::from(format!("c{k}"))).collect();
                let opts = StopOptions {
                    timeout: Duration::from_secs(5),
                    ..StopOptions::awaited()
                };
                let _ = c.stop(i, ids, opts);
            }
            Vec::new()
        }
        ClusterOp::ChildExit(k) => {
            let id = ChildId::from(format!("c{k}"));
            if let Some(i) = alive
                .iter()
                .copied()
                .find(|&i| c.runtime(i).is_running(id.as_str()))
            {
                c.exit_child(i, &id, ExitReason::Failed("test".into()));
            }
            Vec::new()
        }
        ClusterOp::Crash(n) => {
            if alive.len() > 1 {
                if let Some(i) = pick(*n) {
                    c.crash(i);
                }
            }
            Vec::new()
        }
        ClusterOp::Restart(n) => {
            let dead: Vec<usize> = (0..c.len()).filter(|&i| c.node(i).is_none()).collect();
            if let Some(&i) = dead.get(n % dead.len().max(1)) {
                c.restart(i);
            }
            Vec::new()
        }
        ClusterOp::Join => {
            if c.len() < 8 {
                c.add_node();
            }
            Vec::new()
        }
        ClusterOp::Leave(n) => {
            if alive.len() > 1 {
                if let Some(i) = pick(*n) {
                    let _ = c.leave(i);
                }
            }
            Vec::new()
        }
        ClusterOp::Partition(mask) => {
            let (a, b): (Vec<usize>, Vec<usize>) =
                (0..c.len()).partition(|&i| mask.get(i).copied().unwrap_or(false));
            c.partition(&[&a, &b]);
            Vec::new()
        }
        ClusterOp::Heal => {
            c.heal();
            Vec::new()
        }
        ClusterOp::Advance(ms) => {
            let _ = c.run_for(Duration::from_millis(u64::from(*ms)));
            Vec::new()
        }
    }
}
