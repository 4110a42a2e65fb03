//! Local supervision: restarts within the intensity, failure past it,
//! max_children, and the event stream.

use std::time::Duration;

use hub_core::{ChildSpec, Event, StartError, StartOptions};
use hub_net::{Hub, Limits, Process};

/// Crashes on `true`, answers `false` with its generation.
struct Fragile {
    generation: u32,
}

static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Process for Fragile {
    type Args = ();
    type Message = bool;
    type Reply = u32;
    type State = ();

    async fn init(_: hub_net::Context<Self>, _: (), _: Option<()>) -> Result<Self, String> {
        let generation = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Fragile { generation })
    }

    async fn handle_cast(&mut self, crash: bool) -> Result<(), String> {
        if crash {
            return Err("asked to crash".into());
        }
        Ok(())
    }

    async fn handle_call(&mut self, crash: bool) -> Result<u32, String> {
        if crash {
            panic!("asked to panic");
        }
        Ok(self.generation)
    }
}

async fn single(limits: Limits) -> Hub {
    Hub::builder("sup-test")
        .node_id("solo")
        .register::<Fragile>("fragile")
        .limits(limits)
        .start()
        .await
        .unwrap()
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("event did not come")
}

#[tokio::test]
async fn crashes_restart_within_the_intensity_then_the_child_fails_and_is_removed() {
    let hub = single(Limits {
        max_restarts: 2,
        max_seconds: Duration::from_secs(5),
        max_children: None,
    })
    .await;
    let mut events = hub.subscribe();
    assert!(hub
        .start_child(ChildSpec::new("f", "fragile"), StartOptions::awaited())
        .await
        .unwrap()
        .is_ok());
    let first = hub.child_lookup("f").unwrap()[0].1;
    let g0 = hub
        .call::<Fragile>("f", &false, Duration::from_secs(1))
        .await
        .unwrap();

    // A crash in a cast and a panic in a call: both restart the process.
    hub.send::<Fragile>("f", &true).await.unwrap();
    let Event::ChildRestarted { handle, .. } =
        next_event(&mut events, |e| matches!(e, Event::ChildRestarted { .. })).await
    else {
        unreachable!()
    };
    assert_ne!(handle, first);
    assert!(hub
        .call::<Fragile>("f", &true, Duration::from_secs(1))
        .await
        .is_err());
    let Event::ChildRestarted { handle: third, .. } =
        next_event(&mut events, |e| matches!(e, Event::ChildRestarted { .. })).await
    else {
        unreachable!()
    };
    assert!(
        third != handle && third != first,
        "each restart is a fresh instance"
    );
    let g2 = hub
        .call::<Fragile>("f", &false, Duration::from_secs(1))
        .await
        .unwrap();
    assert_ne!(g2, g0);
    assert_eq!(
        hub.child_lookup("f").unwrap()[0].1,
        third,
        "the registry follows restarts"
    );

    // The third crash within 5 s is one too many: failed and removed.
    hub.send::<Fragile>("f", &true).await.unwrap();
    next_event(
        &mut events,
        |e| matches!(e, Event::ChildFailed { id, .. } if id.as_str() == "f"),
    )
    .await;
    assert!(hub.child_lookup("f").unwrap().is_empty());
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_children_is_a_clear_error() {
    let hub = single(Limits {
        max_children: Some(2),
        ..Limits::default()
    })
    .await;
    let specs = (0..3)
        .map(|i| ChildSpec::new(format!("m{i}"), "fragile"))
        .collect();
    let out = hub
        .start_children(specs, StartOptions::awaited())
        .await
        .expect_err("a start past the child limit is an error")
        .into_start_outcome()
        .unwrap();
    assert_eq!(out.started.len(), 2);
    assert_eq!(out.failed.len(), 1);
    assert!(matches!(out.failed[0].error, StartError::MaxChildren(_)));
    assert_eq!(hub.count_children().await.unwrap(), 2);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_kinds_and_bind_errors_are_reported() {
    let hub = single(Limits::default()).await;
    let err = hub
        .start_child(ChildSpec::new("x", "nope"), StartOptions::awaited())
        .await
        .expect_err("an unknown kind is an error");
    assert!(err.to_string().contains("nope"), "{err}");
    let out = err.into_start_outcome().unwrap();
    assert_eq!(out.failed[0].error, StartError::UnknownKind("nope".into()));
    let taken = Hub::builder("sup-test")
        .node_id("p")
        .listen("127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = Hub::builder("sup-test")
        .node_id("q")
        .listen(addr)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, hub_net::StartupError::Bind { .. }), "{err}");
    let err = Hub::builder("").node_id("q").start().await.unwrap_err();
    assert!(matches!(err, hub_net::StartupError::Config(_)), "{err}");
    hub.shutdown().await.unwrap();
    taken.shutdown().await.unwrap();
    assert!(!hub.is_alive().await);
}

/// `start_child(..).await?` fails when the child did not start: a user
/// writing `?` after an awaited start never mistakes a refusal for success.
#[tokio::test]
async fn a_start_that_did_not_happen_is_an_error() {
    let hub = single(Limits::default()).await;
    let start =
        |id: &str, kind: &str| hub.start_child(ChildSpec::new(id, kind), StartOptions::awaited());
    start("once", "fragile").await.expect("first start");
    let again = start("once", "fragile").await.expect_err("already started");
    let out = again
        .start_outcome()
        .expect("the outcome comes with the error");
    assert!(
        matches!(out.failed[0].error, StartError::AlreadyStarted { .. }),
        "{again}"
    );
    assert!(again.to_string().contains("once"), "{again}");
    let unknown = start("other", "no-such-kind")
        .await
        .expect_err("unknown kind");
    assert!(unknown.to_string().contains("no-such-kind"), "{unknown}");
    let stop = hub
        .stop_child("nobody", hub_core::StopOptions::awaited())
        .await
        .expect_err("a stop of an unknown child");
    assert!(
        stop.stop_outcome().is_some_and(|o| o.failed.len() == 1),
        "{stop}"
    );
    hub.shutdown().await.unwrap();
}

/// Ends itself normally when told `true`.
struct Job {
    done: bool,
}

impl Process for Job {
    type Args = ();
    type Message = bool;
    type Reply = ();
    type State = ();

    async fn init(_: hub_net::Context<Self>, _: (), _: Option<()>) -> Result<Self, String> {
        Ok(Job { done: false })
    }
    async fn handle_cast(&mut self, done: bool) -> Result<(), String> {
        self.done = done;
        Ok(())
    }
    async fn handle_call(&mut self, done: bool) -> Result<(), String> {
        self.done = done;
        Ok(())
    }
    fn finished(&self) -> bool {
        self.done
    }
}

/// A process that finishes ends normally: a Transient or Temporary child
/// is then removed cluster-wide, a Permanent one restarted.
#[tokio::test]
async fn a_finished_process_ends_normally_per_its_restart_policy() {
    let hub = Hub::builder("sup-test")
        .node_id("jobs")
        .register::<Job>("job")
        .start()
        .await
        .unwrap();
    let start = |id: &str, restart: hub_core::RestartPolicy| {
        let mut spec = ChildSpec::new(id, "job");
        spec.restart = restart;
        hub.start_child(spec, StartOptions::awaited())
    };
    start("transient", hub_core::RestartPolicy::Transient)
        .await
        .unwrap();
    start("temporary", hub_core::RestartPolicy::Temporary)
        .await
        .unwrap();
    start("permanent", hub_core::RestartPolicy::Permanent)
        .await
        .unwrap();
    let t = Duration::from_secs(2);
    // Not finished yet: the call is answered and the child stays.
    hub.call::<Job>("transient", &false, t).await.unwrap();
    for id in ["transient", "temporary", "permanent"] {
        hub.call::<Job>(id, &true, t).await.unwrap();
    }
    let gone = async {
        loop {
            let t = hub.child_lookup("transient").unwrap();
            let p = hub.child_lookup("temporary").unwrap();
            if t.is_empty() && p.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("finished Transient and Temporary children are removed");
    assert_eq!(hub.child_lookup("permanent").unwrap().len(), 1);
    // The restarted permanent one answers again.
    hub.call::<Job>("permanent", &false, t).await.unwrap();
    hub.shutdown().await.unwrap();
}
