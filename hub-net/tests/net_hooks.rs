//! Hooks as a user meets them: registered at start and at run time under
//! unique ids, run in descending priority, cancelled, a panicking one
//! isolated, overflow counted rather than silent; and static children
//! started as part of start-up.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hub_core::{ChildSpec, Event, EventKind, StartOptions};
use hub_net::examples::Counter;
use hub_net::{HookError, Hub, StartupError};

type Log = Arc<Mutex<Vec<String>>>;

fn logger(log: &Log, name: &'static str) -> impl Fn(&Event) + Send + Sync + 'static {
    let log = log.clone();
    move |e: &Event| {
        if let Event::ChildStarted { id, .. } = e {
            log.lock().unwrap().push(format!("{name}:{id}"));
        }
    }
}

fn solo() -> hub_net::HubBuilder {
    Hub::builder("hooks-test")
        .node_id("solo")
        .register::<Counter>("counter")
}

async fn start(hub: &Hub, id: &str) {
    hub.start_child(ChildSpec::new(id, "counter"), StartOptions::awaited())
        .await
        .unwrap();
}

async fn logged(log: &Log, n: usize) -> bool {
    eventually(Duration::from_secs(5), || async {
        log.lock().unwrap().len() >= n
    })
    .await
}

#[tokio::test]
async fn hooks_run_in_descending_priority_and_stop_when_cancelled() {
    let log: Log = Arc::default();
    let hub = solo()
        .hook(EventKind::ChildStarted, "low", -5, logger(&log, "low"))
        .hook(EventKind::ChildStarted, "high", 10, logger(&log, "high"))
        .start()
        .await
        .unwrap();
    // At run time, between the two, and a tie with "high" that runs after it.
    hub.register_hook(EventKind::ChildStarted, "mid", 0, logger(&log, "mid"))
        .unwrap();
    hub.register_hook(
        EventKind::ChildStarted,
        "high-too",
        10,
        logger(&log, "high-too"),
    )
    .unwrap();
    hub.register_hook(EventKind::ChildStarted, "boom", 5, |_: &Event| {
        panic!("a hook that panics")
    })
    .unwrap();
    start(&hub, "c1").await;
    assert!(logged(&log, 4).await);
    assert_eq!(
        *log.lock().unwrap(),
        ["high:c1", "high-too:c1", "mid:c1", "low:c1"],
        "descending priority, ties in registration order, past a panicking hook"
    );

    let dup = hub.register_hook(EventKind::ChildStarted, "mid", 3, |_: &Event| {});
    assert_eq!(
        dup,
        Err(HookError::Duplicate {
            kind: EventKind::ChildStarted,
            id: "mid".into()
        })
    );
    // The same id for another kind is another hook.
    hub.register_hook(EventKind::ChildFailed, "mid", 3, |_: &Event| {})
        .unwrap();

    hub.cancel_hook(EventKind::ChildStarted, "mid").unwrap();
    hub.cancel_hook(EventKind::ChildStarted, "high-too")
        .unwrap();
    assert!(matches!(
        hub.cancel_hook(EventKind::ChildStarted, "mid"),
        Err(HookError::NotFound { .. })
    ));
    log.lock().unwrap().clear();
    start(&hub, "c2").await;
    assert!(logged(&log, 2).await);
    assert_eq!(*log.lock().unwrap(), ["high:c2", "low:c2"]);
    assert_eq!(hub.hook_overflows(), 0);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_hook_id_at_start_fails_start_up() {
    let r = solo()
        .hook(EventKind::ClusterJoin, "same", 1, |_: &Event| {})
        .hook(EventKind::ClusterJoin, "same", 2, |_: &Event| {})
        .start()
        .await;
    assert!(
        matches!(r, Err(StartupError::Hook(HookError::Duplicate { .. }))),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_slow_hook_cannot_take_are_counted_not_lost_silently() {
    let seen = Arc::new(Mutex::new(0usize));
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let counter = seen.clone();
    let hub = solo()
        .hook_queue(4)
        .hook(EventKind::ChildStarted, "slow", 0, move |_: &Event| {
            // Blocks its first event until the test opens the gate.
            let _ = gate.lock().unwrap().recv();
            *counter.lock().unwrap() += 1;
        })
        .start()
        .await
        .unwrap();
    const STARTS: usize = 40;
    for k in 0..STARTS {
        start(&hub, &format!("c{k}")).await;
    }
    for _ in 0..STARTS {
        let _ = open.send(());
    }
    let all = eventually(Duration::from_secs(5), || async {
        *seen.lock().unwrap() + hub.hook_overflows() as usize == STARTS
    })
    .await;
    let ran = *seen.lock().unwrap();
    assert!(
        all,
        "every event either ran the hook or was counted: ran {ran}, overflowed {}",
        hub.hook_overflows()
    );
    assert!(hub.hook_overflows() > 0, "a queue of 4 overflowed");
    assert!(ran >= 4, "the queued events ran: {ran}");
    hub.shutdown().await.unwrap();
}

fn static_node(id: &str, seed: Option<&Hub>, specs: Vec<ChildSpec>) -> hub_net::HubBuilder {
    let mut b = Hub::builder("static-test")
        .node_id(id)
        .listen("127.0.0.1:0")
        .cookie("c")
        .register::<Counter>("counter")
        .child_specs(specs);
    if let Some(s) = seed {
        b = b.seed(s.local_addr().unwrap().to_string());
    }
    b
}

#[tokio::test]
async fn static_children_start_with_the_hub_once_however_many_nodes_list_them() {
    let specs: Vec<ChildSpec> = (0..20)
        .map(|k| ChildSpec::new(format!("s{k}"), "counter"))
        .collect();
    let a = static_node("a", None, specs.clone()).start().await.unwrap();
    assert_eq!(
        a.count_children().await.unwrap(),
        20,
        "started before start() returned"
    );
    let b = static_node("b", Some(&a), specs.clone())
        .start()
        .await
        .unwrap();
    let c = static_node("c", Some(&a), specs).start().await.unwrap();
    wait_formed(&[&a, &b, &c], 3).await;
    assert!(wait_settled(&[&a, &b, &c], 20).await, "one copy of each");
    for h in [&a, &b, &c] {
        let dump = h.registry_dump().await.unwrap();
        assert_eq!(dump.len(), 20);
        assert!(dump.values().all(|holders| holders.len() == 1), "{dump:?}");
    }
    for h in [c, b, a] {
        h.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_static_child_that_cannot_start_fails_start_up_naming_it() {
    let specs = vec![
        ChildSpec::new("good", "counter"),
        ChildSpec::new("bad", "no-such-kind"),
    ];
    let r = static_node("a", None, specs).start().await;
    match r {
        Err(StartupError::StaticChildren(why)) => {
            assert!(why.contains("bad"), "{why}");
            assert!(!why.contains("good"), "{why}");
        }
        other => panic!("expected StaticChildren, got {other:?}"),
    }
}
