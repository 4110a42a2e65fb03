//! Children on demand over loopback TCP: a kind registered with
//! `register_on_demand` comes to life on its owner at the first typed
//! call or cast to its id, from any node; first messages sent at once
//! from every node start one instance and are all delivered; a start
//! that cannot happen is an error, never a silent drop.

mod common;

use std::time::Duration;

use common::*;
use hub_net::examples::{Counter, CounterMsg, Echo};
use hub_net::{CallError, Hub, Limits};

const T: Duration = Duration::from_secs(10);

async fn on_demand_node(id: &str, seed: Option<&Hub>) -> Hub {
    node_built(id, seed, |b| {
        b.register_on_demand::<Counter>("counter", |_id| 0)
            .register::<Echo>("echo")
    })
    .await
}

async fn three() -> (Hub, Hub, Hub) {
    let a = on_demand_node("a", None).await;
    let b = on_demand_node("b", Some(&a)).await;
    let c = on_demand_node("c", Some(&a)).await;
    wait_formed(&[&a, &b, &c], 3).await;
    (a, b, c)
}

#[tokio::test]
async fn the_first_call_starts_the_child_on_its_owner_and_is_delivered() {
    let (a, b, c) = three().await;
    let n = a
        .entity::<Counter>("acct-1")
        .unwrap()
        .call(&CounterMsg::Add(5), T)
        .await
        .unwrap();
    assert_eq!(n, 5, "the first message is delivered to the new instance");
    let owner = a.placements().await.unwrap()["acct-1"].clone();
    let holders = a.child_lookup("acct-1").unwrap();
    assert_eq!(
        holders.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        vec![owner]
    );
    // Later messages, from any node, reach the same instance.
    let n = c
        .call::<Counter>("acct-1", &CounterMsg::Add(1), T)
        .await
        .unwrap();
    assert_eq!(n, 6);
    // A cast brings a child to life too.
    b.send::<Counter>("acct-2", &CounterMsg::Add(3))
        .await
        .unwrap();
    let got = b
        .call::<Counter>("acct-2", &CounterMsg::Get, T)
        .await
        .unwrap();
    assert_eq!(got, 3);
    assert!(wait_settled(&[&a, &b, &c], 2).await);
}

#[tokio::test]
async fn first_messages_from_every_node_at_once_start_one_instance() {
    let (a, b, c) = three().await;
    let ids: Vec<String> = (0..8).map(|i| format!("hot-{i}")).collect();
    let mut calls = Vec::new();
    for id in &ids {
        for hub in [&a, &b, &c] {
            for _ in 0..3 {
                let e = hub.entity::<Counter>(id.as_str()).unwrap();
                calls.push(async move { e.call(&CounterMsg::Add(1), T).await });
            }
        }
    }
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert!(wait_settled(&[&a, &b, &c], ids.len()).await);
    for id in &ids {
        for hub in [&a, &b, &c] {
            let holders = hub.child_lookup(id.as_str()).unwrap();
            assert_eq!(holders.len(), 1, "{id} on {holders:?}");
        }
        let total = a.call::<Counter>(id.as_str(), &CounterMsg::Get, T).await;
        assert_eq!(
            total,
            Ok(9),
            "every first message of {id} reached one instance"
        );
    }
}

#[tokio::test]
async fn kinds_not_on_demand_and_untyped_calls_start_nothing() {
    let (a, _b, _c) = three().await;
    let echo = a.call::<Echo>("nobody", &"hi".to_string(), T).await;
    assert_eq!(echo, Err(CallError::NotFound));
    let raw = a.call_raw("acct-9".into(), bytes::Bytes::new(), T).await;
    assert_eq!(raw, Err(CallError::NotFound));
    assert_eq!(a.count_children().await.unwrap(), 0);
}

#[tokio::test]
async fn a_start_on_demand_that_cannot_happen_is_an_error() {
    let full = Limits {
        max_children: Some(0),
        ..Limits::default()
    };
    let a = node_built("a", None, |b| {
        b.register_on_demand::<Counter>("counter", |_id| 0)
            .limits(full)
    })
    .await;
    let r = a.call::<Counter>("acct-1", &CounterMsg::Add(1), T).await;
    assert!(
        matches!(&r, Err(CallError::NotActivated(why)) if why.contains("max_children")),
        "{r:?}"
    );
    let r = a.send::<Counter>("acct-1", &CounterMsg::Add(1)).await;
    assert!(matches!(r, Err(CallError::NotActivated(_))), "{r:?}");
}
