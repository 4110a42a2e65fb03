//! Several hub nodes in one process over loopback TCP.

mod common;

use std::time::Duration;

use hub_core::{ChildId, ChildSpec, StartOptions, StopOptions};
use hub_net::examples::{Counter, CounterMsg, Echo};
use hub_net::Hub;

use common::{eventually, node_with, wait_formed, COOKIE, HUB};

async fn node(id: &str, seed: Option<&Hub>) -> Hub {
    node_with(id, seed, hub_strategies::defaults()).await
}

/// A child the start placed on `node`.
fn started_on(out: &hub_core::StartOutcome, node: &str) -> ChildId {
    out.started
        .iter()
        .find(|(_, at)| at[0].0.as_str() == node)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no child on {node}: {out:?}"))
}

async fn cluster(n: usize) -> Vec<Hub> {
    let first = node("n0", None).await;
    let mut hubs = vec![first];
    for i in 1..n {
        let h = node(&format!("n{i}"), Some(&hubs[0])).await;
        hubs.push(h);
    }
    wait_formed(&hubs.iter().collect::<Vec<_>>(), n).await;
    hubs
}

fn counters(n: usize) -> Vec<ChildSpec> {
    (0..n)
        .map(|i| ChildSpec::new(format!("c{i}"), "counter"))
        .collect()
}

async fn registries_agree(hubs: &[&Hub], count: usize) -> bool {
    let mut first = None;
    for h in hubs {
        let Ok(d) = h.registry_dump().await else {
            return false;
        };
        if d.len() != count {
            return false;
        }
        match &first {
            None => first = Some(d),
            Some(f) if *f != d => return false,
            Some(_) => {}
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_start_call_crash_and_leave() {
    let hubs = cluster(3).await;
    let out = hubs[0]
        .start_children(counters(300), StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed.first());
    let all: Vec<&Hub> = hubs.iter().collect();
    assert!(eventually(Duration::from_secs(10), || registries_agree(&all, 300)).await);
    // Every node got a share.
    for h in &hubs {
        let mine = h.which_children(false).await.unwrap();
        assert!(
            mine.values().map(Vec::len).sum::<usize>() > 30,
            "{} runs too few",
            h.node_id()
        );
    }

    // A call from any node reaches the child wherever it runs.
    for (i, h) in hubs.iter().enumerate() {
        let n = h
            .call::<Counter>("c7", &CounterMsg::Add(1), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(n, i as i64 + 1);
    }
    let e = hubs[2]
        .start_child(ChildSpec::new("e1", "echo"), StartOptions::awaited())
        .await
        .unwrap();
    assert!(e.is_ok());
    // Other nodes learn of it through registry sync (eventually).
    let seen = eventually(Duration::from_secs(5), || async {
        !hubs[1].child_lookup("e1").unwrap().is_empty()
    })
    .await;
    assert!(seen);
    let reply = hubs[1]
        .call::<Echo>("e1", &"hi".to_string(), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reply, "e1: hi");
    assert_eq!(
        hubs[1]
            .call::<Echo>("nope", &"x".to_string(), Duration::from_secs(1))
            .await,
        Err(hub_net::CallError::NotFound)
    );

    // Crash n2 (no goodbye): its children restart on n0 and n1.
    let victims = hubs[2].which_children(false).await.unwrap();
    let victims: Vec<ChildId> = victims.into_values().flatten().map(|(id, _)| id).collect();
    assert!(!victims.is_empty());
    hubs[2].abort();
    let survivors = [&hubs[0], &hubs[1]];
    let recovered = eventually(Duration::from_secs(15), || async {
        for h in survivors {
            if h.nodes().await.map(|n| n.len()) != Ok(2) {
                return false;
            }
        }
        registries_agree(&survivors, 301).await
    })
    .await;
    assert!(recovered, "children of the crashed node were not restarted");
    for id in &victims {
        let at = hubs[0].child_lookup(id.clone()).unwrap();
        assert_eq!(at.len(), 1);
        assert_ne!(at[0].0.as_str(), "n2");
    }

    // Graceful shutdown of n1: everything ends up on n0, nothing lost.
    hubs[1].shutdown().await.unwrap();
    let moved = eventually(Duration::from_secs(15), || async {
        let mine = hubs[0].which_children(false).await.unwrap();
        mine.values().map(Vec::len).sum::<usize>() == 301
            && hubs[0].nodes().await.unwrap().len() == 1
    })
    .await;
    assert!(moved, "children were not handed over on shutdown");
    let stopped = hubs[0]
        .stop_child("c7", StopOptions::awaited())
        .await
        .unwrap();
    assert!(stopped.is_ok());
    assert_eq!(hubs[0].count_children().await.unwrap(), 300);
    hubs[0].shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_leave_one_connection_per_pair() {
    // Two nodes that seed each other dial at the same moment.
    let a_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let build = |id: &str, listen: std::net::SocketAddr, seed: std::net::SocketAddr| {
        Hub::builder(HUB)
            .node_id(id)
            .listen(listen.to_string())
            .seed(seed.to_string())
            .cookie(COOKIE)
            .register::<Counter>("counter")
    };
    let (a, b) = tokio::join!(
        build("a", a_addr, b_addr).start(),
        build("b", b_addr, a_addr).start()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for h in [&a, &b] {
        let one = eventually(Duration::from_secs(10), || async {
            let s = h.status().await.unwrap();
            s.ring.len() == 2 && s.connections == 1
        })
        .await;
        assert!(one, "{:?}", h.status().await);
    }
    // And it is a working connection: a child started anywhere is callable
    // from both.
    let out = a
        .start_children(counters(20), StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok());
    let both = [&a, &b];
    assert!(eventually(Duration::from_secs(5), || registries_agree(&both, 20)).await);
    for i in 0..20 {
        let id = format!("c{i}");
        assert_eq!(
            b.call::<Counter>(id.as_str(), &CounterMsg::Add(2), Duration::from_secs(2))
                .await,
            Ok(2)
        );
        assert_eq!(
            a.call::<Counter>(id.as_str(), &CounterMsg::Get, Duration::from_secs(2))
                .await,
            Ok(2)
        );
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A call to a child whose node was just killed waits for the child to run
/// again on its new owner and succeeds, within its timeout; it neither
/// hangs on the dead connection nor fails with `NotConnected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_failover_waits_for_the_new_owner() {
    let hubs = cluster(3).await;
    let out = hubs[0]
        .start_children(counters(30), StartOptions::awaited())
        .await
        .unwrap();
    // A child on n2, the node that dies.
    let id = &started_on(&out, "n2");
    hubs[2].abort();
    // Once n0's connection to n2 has closed, a call is not in flight on
    // it (such a call would be `Unanswered`, never sent twice).
    let closed = common::eventually(Duration::from_secs(5), || async {
        hubs[0].status().await.is_ok_and(|s| s.connections == 1)
    })
    .await;
    assert!(closed, "n0 saw its connection to n2 close");
    let t0 = std::time::Instant::now();
    let timeout = Duration::from_secs(10);
    let r = hubs[0]
        .call::<Counter>(id.clone(), &CounterMsg::Get, timeout)
        .await;
    let took = t0.elapsed();
    assert!(r.is_ok(), "{id}: {r:?} after {took:?}");
    assert!(took < timeout, "took {took:?}");
    let at = hubs[0].child_lookup(id.clone()).unwrap();
    assert_ne!(at[0].0.as_str(), "n2");
}

/// Calls the `slow` kind handled: each counts itself here and answers
/// only after a while, so a test can kill the node while one is in flight.
static SLOW_HANDLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Slow;

impl hub_net::Process for Slow {
    type Args = ();
    type Message = ();
    type Reply = ();
    type State = ();
    async fn init(_ctx: hub_net::Context<Self>, _: (), _: Option<()>) -> Result<Self, String> {
        Ok(Slow)
    }
    async fn handle_cast(&mut self, _: ()) -> Result<(), String> {
        Ok(())
    }
    async fn handle_call(&mut self, _: ()) -> Result<(), String> {
        SLOW_HANDLED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

/// A call its child's node received, but that node died before answering,
/// fails with `CallError::Unanswered` naming that node: it is not sent
/// again to the child's new owner, where it would be applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_its_node_dies_is_unanswered_and_never_applied_twice() {
    use std::sync::atomic::Ordering;
    let kinds = |b: hub_net::HubBuilder| b.register::<Slow>("slow");
    let n0 = common::node_built("n0", None, kinds).await;
    let n1 = common::node_built("n1", Some(&n0), kinds).await;
    let n2 = common::node_built("n2", Some(&n0), kinds).await;
    wait_formed(&[&n0, &n1, &n2], 3).await;
    let specs: Vec<ChildSpec> = (0..30)
        .map(|i| ChildSpec::new(format!("s{i}"), "slow"))
        .collect();
    let out = n0
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    let id = started_on(&out, "n2");
    let caller = n0.clone();
    let call_id = id.clone();
    let call = tokio::spawn(async move {
        caller
            .call::<Slow>(call_id, &(), Duration::from_secs(20))
            .await
    });
    let handled = eventually(Duration::from_secs(5), || async {
        SLOW_HANDLED.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(handled, "the call reached the child on n2");
    n2.abort();
    let r = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends when n2's connection closes, not at its timeout")
        .unwrap();
    assert_eq!(r, Err(hub_net::CallError::Unanswered("n2".into())));
    // The child runs again elsewhere, and the call was never sent to it.
    let moved = eventually(Duration::from_secs(10), || async {
        n0.child_lookup(id.clone())
            .is_ok_and(|at| at.first().is_some_and(|(n, _)| n.as_str() != "n2"))
    })
    .await;
    assert!(moved, "{id} restarted on a live node");
    assert_eq!(SLOW_HANDLED.load(Ordering::SeqCst), 1, "applied once");
    n0.shutdown().await.unwrap();
    n1.shutdown().await.unwrap();
}

/// Every hub's `child_lookup` (read from its shared index, from any
/// thread) matches its registry through starts, stops, a join and a kill,
/// and an awaited start's children are found at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_lookup_follows_the_registry_from_any_thread() {
    let mut hubs = cluster(3).await;
    let specs = counters(300);
    let out = hubs[1]
        .start_children(specs.clone(), StartOptions::awaited())
        .await
        .unwrap();
    assert_eq!(out.started.len(), 300, "{out:?}");
    for (id, at) in &out.started {
        assert_eq!(
            hubs[1].child_lookup(id).unwrap(),
            *at,
            "{id} right after the start"
        );
    }
    let stopped: Vec<ChildId> = specs[..40].iter().map(|s| s.id.clone()).collect();
    // Through the starting hub: the others may not have the rows yet.
    hubs[1]
        .stop_children(stopped.clone(), StopOptions::awaited())
        .await
        .unwrap();
    hubs.push(node("n3", Some(&hubs[0])).await);
    wait_formed(&hubs.iter().collect::<Vec<_>>(), 4).await;
    hubs.remove(2).abort();
    let live: Vec<&Hub> = hubs.iter().collect();
    assert!(
        eventually(Duration::from_secs(20), || registries_agree(&live, 260)).await,
        "the survivors agree on 260 children"
    );
    for h in &hubs {
        let dump = h.registry_dump().await.unwrap();
        let (h2, ids) = (
            h.clone(),
            specs.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        );
        // A plain thread, outside the runtime: the lookup needs no task.
        let seen = std::thread::spawn(move || {
            ids.iter()
                .map(|id| (id.clone(), h2.child_lookup(id).unwrap()))
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        for (id, at) in seen {
            let want = dump.get(&id).cloned().unwrap_or_default();
            assert_eq!(at, want, "{}: {id}", h.node_id());
            assert_eq!(
                at.is_empty(),
                stopped.contains(&id),
                "{}: {id}",
                h.node_id()
            );
        }
    }
    let gone = hubs.pop().unwrap();
    gone.shutdown().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            gone.child_lookup("c100").is_err()
        })
        .await
    );
}
