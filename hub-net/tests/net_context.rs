//! A process's context as a user meets it: its id and node, timers it
//! sets for itself, calls to other children through its hub handle,
//! stopping itself, and crash restarts from init arguments or (opted in)
//! from the last snapshot.

mod common;

use std::time::Duration;

use common::*;
use hub_core::{ChildSpec, RestartPolicy, StartOptions};
use hub_net::examples::{Counter, CounterMsg};
use hub_net::{Context, Hub, Process, SnapshotPolicy};
use serde::{Deserialize, Serialize};

/// A child that uses every part of its context.
struct Worker {
    ctx: Context<Self>,
    /// Bumped by casts and timers; crash restarts keep it only when the
    /// kind opts in to restarting from its last snapshot.
    count: u64,
    /// A timer it set and cancelled.
    cancelled_fired: bool,
    /// Set by a timer from [`Job::MarkLater`].
    marked: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Job {
    /// Who am I and where?
    Whoami,
    Count,
    Bump,
    /// Set `n` timers 10 ms apart, each bumping the count.
    Ticks(u32),
    /// Set a timer, cancel it, then set a later one to prove time passed.
    CancelOne,
    CancelledFired,
    /// Crash now, after setting a timer for 50 ms from now.
    CrashAfterTimer,
    /// Add `by` to counter `id`, wherever it runs, through the hub.
    AddTo {
        id: String,
        by: i64,
    },
    /// End normally.
    Done,
    /// A timer that must never arrive.
    Cancelled,
    /// Set a timer, 100 ms from now, that sets the mark.
    MarkLater,
    Mark,
    IsMarked,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Answer {
    Me { id: String, node: String },
    Count(u64),
    Flag(bool),
    Counter(i64),
    Ok,
}

impl Process for Worker {
    type Args = u64;
    type Message = Job;
    type Reply = Answer;
    type State = u64;

    async fn init(ctx: Context<Self>, start: u64, restored: Option<u64>) -> Result<Self, String> {
        Ok(Worker {
            ctx,
            count: restored.unwrap_or(start),
            cancelled_fired: false,
            marked: false,
        })
    }

    async fn handle_cast(&mut self, job: Job) -> Result<(), String> {
        self.handle_call(job).await.map(|_| ())
    }

    async fn handle_call(&mut self, job: Job) -> Result<Answer, String> {
        let err = |e: hub_net::CallError| e.to_string();
        Ok(match job {
            Job::Whoami => Answer::Me {
                id: self.ctx.id().to_string(),
                node: self.ctx.node().to_string(),
            },
            Job::Count => Answer::Count(self.count),
            Job::Bump => {
                self.count += 1;
                Answer::Ok
            }
            Job::Ticks(n) => {
                for k in 1..=n {
                    self.ctx
                        .send_after(Duration::from_millis(10 * u64::from(k)), &Job::Bump)
                        .map_err(err)?;
                }
                Answer::Ok
            }
            Job::CancelOne => {
                let t = self
                    .ctx
                    .send_after(Duration::from_millis(20), &Job::Cancelled)
                    .map_err(err)?;
                t.cancel();
                self.ctx
                    .send_after(Duration::from_millis(60), &Job::Bump)
                    .map_err(err)?;
                Answer::Ok
            }
            Job::Cancelled => {
                self.cancelled_fired = true;
                Answer::Ok
            }
            Job::CancelledFired => Answer::Flag(self.cancelled_fired),
            Job::MarkLater => {
                self.ctx
                    .send_after(Duration::from_millis(100), &Job::Mark)
                    .map_err(err)?;
                Answer::Ok
            }
            Job::Mark => {
                self.marked = true;
                Answer::Ok
            }
            Job::IsMarked => Answer::Flag(self.marked),
            Job::CrashAfterTimer => {
                self.ctx
                    .send_after(Duration::from_millis(50), &Job::Bump)
                    .map_err(err)?;
                return Err("asked to crash".into());
            }
            Job::AddTo { id, by } => {
                let hub = self.ctx.hub().ok_or("the hub has stopped")?;
                let n = hub
                    .call::<Counter>(id, &CounterMsg::Add(by), Duration::from_secs(5))
                    .await
                    .map_err(err)?;
                Answer::Counter(n)
            }
            Job::Done => {
                self.ctx.stop();
                Answer::Ok
            }
        })
    }

    fn snapshot_state(&self) -> Option<u64> {
        Some(self.count)
    }
}

async fn pair(policy: Option<SnapshotPolicy>) -> (Hub, Hub) {
    let build = |id: &str, seed: Option<String>| {
        let mut b = Hub::builder("ctx-test")
            .node_id(id)
            .listen("127.0.0.1:0")
            .cookie("c")
            .register::<Counter>("counter");
        b = match policy {
            Some(p) => b.register_with_snapshots::<Worker>("worker", p),
            None => b.register::<Worker>("worker"),
        };
        if let Some(s) = seed {
            b = b.seed(s);
        }
        b
    };
    let a = build("a", None).start().await.unwrap();
    let b = build("b", Some(a.local_addr().unwrap().to_string()))
        .start()
        .await
        .unwrap();
    wait_formed(&[&a, &b], 2).await;
    (a, b)
}

async fn call(hub: &Hub, id: &str, job: Job) -> Answer {
    hub.call::<Worker>(id, &job, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{job:?} to {id}: {e}"))
}

async fn start(hub: &Hub, spec: ChildSpec) {
    hub.start_child(spec, StartOptions::awaited())
        .await
        .unwrap();
}

fn worker(id: &str, start: u64) -> ChildSpec {
    ChildSpec::new(id, "worker").with_args(postcard::to_stdvec(&start).unwrap())
}

async fn count_reaches(hub: &Hub, id: &str, want: u64) -> bool {
    eventually(Duration::from_secs(5), || async {
        call(hub, id, Job::Count).await == Answer::Count(want)
    })
    .await
}

#[tokio::test]
async fn a_child_knows_its_id_and_node_and_its_timers_fire() {
    let (a, b) = pair(None).await;
    start(&a, worker("w1", 0)).await;
    let Answer::Me { id, node } = call(&b, "w1", Job::Whoami).await else {
        panic!("not an identity");
    };
    assert_eq!(id, "w1");
    let holder = a.child_lookup("w1").unwrap();
    assert_eq!(holder.len(), 1);
    assert_eq!(node, holder[0].0.to_string(), "the node it says it runs on");

    call(&b, "w1", Job::Ticks(3)).await;
    assert!(count_reaches(&a, "w1", 3).await, "three timers fired");

    call(&a, "w1", Job::CancelOne).await;
    assert!(count_reaches(&a, "w1", 4).await, "the later timer fired");
    assert_eq!(
        call(&a, "w1", Job::CancelledFired).await,
        Answer::Flag(false),
        "a cancelled timer never arrives"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_child_calls_another_child_on_another_node_through_its_hub_handle() {
    let (a, b) = pair(None).await;
    let mut ids = Vec::new();
    for k in 0..16 {
        let id = format!("c{k}");
        start(&a, ChildSpec::new(id.as_str(), "counter")).await;
        ids.push(id);
    }
    start(&a, worker("w1", 0)).await;
    let here = a.child_lookup("w1").unwrap()[0].0.clone();
    // A counter on the other node, so the call crosses the network.
    let mut remote = None;
    for id in &ids {
        if a.child_lookup(id.as_str()).unwrap()[0].0 != here {
            remote = Some(id.clone());
            break;
        }
    }
    let remote = remote.expect("16 counters all on one of two nodes");
    let add = |by| Job::AddTo {
        id: remote.clone(),
        by,
    };
    assert_eq!(call(&b, "w1", add(5)).await, Answer::Counter(5));
    assert_eq!(call(&a, "w1", add(2)).await, Answer::Counter(7));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_transient_child_that_stops_itself_is_removed_cluster_wide() {
    let (a, b) = pair(None).await;
    start(&a, worker("t1", 0).with_restart(RestartPolicy::Transient)).await;
    start(&a, worker("p1", 0)).await;
    call(&b, "t1", Job::Done).await;
    let gone = eventually(Duration::from_secs(5), || async {
        a.child_lookup("t1").unwrap().is_empty() && b.child_lookup("t1").unwrap().is_empty()
    })
    .await;
    assert!(
        gone,
        "a transient child that stopped itself left every registry"
    );

    // A permanent one is restarted from its init arguments instead.
    call(&b, "p1", Job::Bump).await;
    let before = a.child_lookup("p1").unwrap();
    call(&b, "p1", Job::Done).await;
    let restarted = eventually(Duration::from_secs(5), || async {
        let now = a.child_lookup("p1").unwrap();
        now.len() == 1 && now != before
    })
    .await;
    assert!(
        restarted,
        "a permanent child that stopped itself got a new handle"
    );
    assert_eq!(call(&a, "p1", Job::Count).await, Answer::Count(0));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_crash_restarts_from_init_args_and_drops_the_crashed_instances_timers() {
    let (a, b) = pair(Some(SnapshotPolicy::every(1))).await;
    start(&a, worker("w1", 7)).await;
    call(&a, "w1", Job::Bump).await;
    assert_eq!(call(&a, "w1", Job::Count).await, Answer::Count(8));
    let crashed = b
        .call::<Worker>("w1", &Job::CrashAfterTimer, Duration::from_secs(5))
        .await;
    assert!(crashed.is_err(), "the call that crashed it fails");
    // The restarted instance starts from its init arguments (7), and the
    // crashed one's 50 ms timer must not reach it: a 100 ms timer the new
    // instance sets after the crash fires later than that one would have.
    assert_eq!(call(&a, "w1", Job::Count).await, Answer::Count(7));
    call(&a, "w1", Job::MarkLater).await;
    let marked = eventually(Duration::from_secs(5), || async {
        call(&a, "w1", Job::IsMarked).await == Answer::Flag(true)
    })
    .await;
    assert!(marked, "the new instance's own timer fired");
    assert_eq!(call(&a, "w1", Job::Count).await, Answer::Count(7));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_kind_that_opts_in_restarts_from_its_last_snapshot() {
    let (a, b) = pair(Some(SnapshotPolicy::every(1).restarting_from_last())).await;
    start(&a, worker("w1", 7)).await;
    for _ in 0..3 {
        call(&b, "w1", Job::Bump).await;
    }
    assert_eq!(call(&a, "w1", Job::Count).await, Answer::Count(10));
    let crashed = b
        .call::<Worker>("w1", &Job::CrashAfterTimer, Duration::from_secs(5))
        .await;
    assert!(crashed.is_err(), "the call that crashed it fails");
    assert_eq!(
        call(&a, "w1", Job::Count).await,
        Answer::Count(10),
        "restarted from the last snapshot, not from 7"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
