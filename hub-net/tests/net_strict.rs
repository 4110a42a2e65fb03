//! Strict single-instance mode over loopback TCP: a killed node's children
//! come back only after the takeover delay, a lone node starts nothing,
//! and options that would run two copies are refused at start.

mod common;

use std::time::{Duration, Instant};

use hub_core::{ChildSpec, ConfigError, Event, StartError, StartOptions, Strict};
use hub_net::examples::{Counter, CounterMsg};
use hub_net::{Hub, StartupError};

use common::{eventually, node_built, wait_formed, wait_settled};

fn strict() -> Strict {
    Strict {
        lease: Duration::from_secs(2),
        margin: Duration::from_millis(500),
        ..Strict::new(2)
    }
}

async fn node(id: &str, seed: Option<&Hub>) -> Hub {
    node_built(id, seed, |b| {
        b.strict(strict()).register::<Counter>("counter")
    })
    .await
}

/// Waits until `hub` can start a child: new nodes grant nothing for the
/// takeover delay.
async fn wait_granting(hub: &Hub, probe: &str) {
    let ok = eventually(Duration::from_secs(20), || async {
        hub.start_child(ChildSpec::new(probe, "counter"), StartOptions::awaited())
            .await
            .is_ok()
    })
    .await;
    assert!(ok, "{} never got a quorum of grants", hub.node_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_children_restart_once_and_only_after_the_takeover_delay() {
    let n0 = node("n0", None).await;
    let n1 = node("n1", Some(&n0)).await;
    let n2 = node("n2", Some(&n0)).await;
    let hubs = [n0, n1, n2];
    wait_formed(&hubs.iter().collect::<Vec<_>>(), 3).await;
    wait_granting(&hubs[0], "probe").await;
    let specs: Vec<ChildSpec> = (0..30)
        .map(|i| ChildSpec::new(format!("s{i}"), "counter"))
        .collect();
    let out = hubs[0]
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{:?}", out.failed);
    let victims: Vec<String> = out
        .started
        .iter()
        .filter(|(_, at)| at[0].0.as_str() == "n2")
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(!victims.is_empty());
    let mut events = [hubs[0].subscribe(), hubs[1].subscribe()];
    let killed = Instant::now();
    hubs[2].abort();
    for id in &victims {
        let back = eventually(Duration::from_secs(20), || async {
            hubs[0]
                .call::<Counter>(id.as_str(), &CounterMsg::Get, Duration::from_millis(300))
                .await
                .is_ok()
        })
        .await;
        assert!(back, "{id} did not come back");
    }
    // The survivors restarted them, and none before the lease of the dead
    // node provably ran out (counted from the last heartbeat heard, up to
    // one 100 ms period before the kill).
    let mut first = None;
    for rx in &mut events {
        while let Ok(e) = rx.try_recv() {
            if let Event::ChildStarted { id, .. } = e {
                if victims.contains(&id.to_string()) && first.is_none() {
                    first = Some(killed.elapsed());
                }
            }
        }
    }
    let first = first.expect("a survivor reported a restart");
    assert!(
        first >= strict().takeover_after() - Duration::from_millis(100),
        "restarted {first:?} after the kill, before {:?}",
        strict().takeover_after()
    );
    let survivors = [&hubs[0], &hubs[1]];
    assert!(wait_settled(&survivors, 31).await);
    for h in survivors {
        for id in &victims {
            let at = h.child_lookup(id.as_str()).unwrap();
            assert_eq!(at.len(), 1, "{id} on {at:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_quorum_starts_nothing() {
    let alone = node("solo", None).await;
    let out = alone
        .start_child(ChildSpec::new("c", "counter"), StartOptions::awaited())
        .await
        .expect_err("a start without a quorum of grants is an error")
        .into_start_outcome()
        .unwrap();
    assert!(out.started.is_empty());
    assert!(
        out.failed
            .iter()
            .all(|f| matches!(f.error, StartError::NotGranted { quorum: 2, .. })),
        "{:?}",
        out.failed
    );
    // Once a second node joins, a quorum grants it.
    let other = node("other", Some(&alone)).await;
    wait_formed(&[&alone, &other], 2).await;
    wait_granting(&alone, "c").await;
}

#[tokio::test]
async fn options_that_would_run_two_copies_are_refused_at_start() {
    let hot = hub_core::Strategies {
        migration: hub_strategies::HotSwap::default().into(),
        ..hub_strategies::defaults()
    };
    let r = Hub::builder("h")
        .cookie("c")
        .strict(Strict::new(2))
        .strategies(hot)
        .register::<Counter>("counter")
        .start()
        .await;
    assert!(matches!(
        r,
        Err(StartupError::Config(ConfigError::Strict(_)))
    ));
    let r = Hub::builder("h")
        .cookie("c")
        .strict(Strict::new(0))
        .register::<Counter>("counter")
        .start()
        .await;
    assert!(matches!(
        r,
        Err(StartupError::Config(ConfigError::Strict(_)))
    ));
}
