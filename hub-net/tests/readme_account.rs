//! The README's `Account` example, as written there, through the moves a
//! user makes: a join, a graceful shutdown and a decommission, with the
//! default strategies (ColdSwap) and with HotSwap + handover. No balance
//! may change.

mod common;

use std::time::Duration;

use common::*;
use hub_core::{ChildSpec, StartOptions, Strategies};
use hub_net::{Context, Hub, Process};
use serde::{Deserialize, Serialize};

// ---- as in README.md ----
struct Account {
    balance: i64,
}

#[derive(Serialize, Deserialize)]
enum Op {
    Deposit(i64),
    Balance,
}

impl Process for Account {
    type Args = i64; // opening balance
    type Message = Op;
    type Reply = i64;
    type State = i64; // handed over when the account moves
    async fn init(_ctx: Context<Self>, open: i64, restored: Option<i64>) -> Result<Self, String> {
        Ok(Account {
            balance: restored.unwrap_or(open),
        })
    }
    async fn handle_cast(&mut self, op: Op) -> Result<(), String> {
        if let Op::Deposit(n) = op {
            self.balance += n
        }
        Ok(())
    }
    async fn handle_call(&mut self, op: Op) -> Result<i64, String> {
        self.handle_cast(op).await?;
        Ok(self.balance)
    }
    fn snapshot_state(&self) -> Option<i64> {
        Some(self.balance)
    }
}
// ---- end of the README's code ----

const ACCOUNTS: usize = 1000;

/// A bank node; with `snapshots`, accounts also keep crash snapshots
/// after every message (`register_with_snapshots`).
async fn bank(
    id: &str,
    seed: Option<&Hub>,
    strategies: fn() -> Strategies,
    snapshots: bool,
) -> Hub {
    node_built(id, seed, |b| {
        let b = b.strategies(strategies());
        if snapshots {
            b.register_with_snapshots::<Account>("account", hub_net::SnapshotPolicy::every(1))
        } else {
            b.register::<Account>("account")
        }
    })
    .await
}

fn acct(i: usize) -> String {
    format!("acct-{i}")
}

/// Panics, naming a few, if any balance asked through `hub` is wrong.
async fn assert_balances(hub: &Hub, when: &str) {
    let wrong = wrong_balances(hub).await;
    let few = &wrong[..wrong.len().min(5)];
    assert!(wrong.is_empty(), "{when}, {} wrong: {few:?}", wrong.len());
}

/// Every account's balance, asked through `hub`; the wrong ones listed.
async fn wrong_balances(hub: &Hub) -> Vec<String> {
    let mut wrong = Vec::new();
    for i in 0..ACCOUNTS {
        let want = 100 + (i % 7) as i64 + 1;
        let got = hub
            .call::<Account>(acct(i).as_str(), &Op::Balance, Duration::from_secs(5))
            .await;
        if got.as_ref().ok() != Some(&want) {
            wrong.push(format!("{}: {got:?} (want {want})", acct(i)));
        }
    }
    wrong
}

async fn balances_survive_moves(strategies: fn() -> Strategies, snapshots: bool) {
    let a = bank("a", None, strategies, snapshots).await;
    let b = bank("b", Some(&a), strategies, snapshots).await;
    let c = bank("c", Some(&a), strategies, snapshots).await;
    wait_formed(&[&a, &b, &c], 3).await;
    let specs: Vec<ChildSpec> = (0..ACCOUNTS)
        .map(|i| {
            ChildSpec::new(acct(i), "account").with_args(postcard::to_stdvec(&100i64).unwrap())
        })
        .collect();
    let out = a
        .start_children(specs, StartOptions::awaited())
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    for i in 0..ACCOUNTS {
        let n = (i % 7) as i64 + 1;
        let r = a
            .call::<Account>(acct(i).as_str(), &Op::Deposit(n), Duration::from_secs(5))
            .await;
        assert_eq!(r.unwrap(), 100 + n);
    }
    assert_eq!(wrong_balances(&a).await, Vec::<String>::new());

    let d = bank("d", Some(&a), strategies, snapshots).await;
    wait_formed(&[&a, &b, &c, &d], 4).await;
    assert!(
        wait_settled(&[&a, &b, &c, &d], ACCOUNTS).await,
        "join settled"
    );
    assert_balances(&a, "after a join").await;

    b.shutdown().await.unwrap();
    wait_formed(&[&a, &c, &d], 3).await;
    assert!(wait_settled(&[&a, &c, &d], ACCOUNTS).await, "leave settled");
    assert_balances(&a, "after a graceful leave").await;

    a.decommission(c.node_id().clone()).await.unwrap();
    wait_formed(&[&a, &d], 2).await;
    assert!(
        wait_settled(&[&a, &d], ACCOUNTS).await,
        "decommission settled"
    );
    assert_balances(&d, "after a decommission").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_strategies_keep_every_balance_through_join_leave_and_decommission() {
    balances_survive_moves(hub_strategies::defaults, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_swap_with_crash_snapshots_keeps_every_balance_through_join_leave_and_decommission() {
    balances_survive_moves(hub_strategies::defaults, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_handover_keeps_every_balance_through_join_leave_and_decommission() {
    fn hot() -> Strategies {
        let mut s = hub_strategies::defaults();
        s.migration = hub_strategies::HotSwap::default()
            .with_handover(true)
            .into();
        s
    }
    balances_survive_moves(hot, false).await;
}

/// The README's typed entity: start with typed args, call and cast with
/// typed messages; a message of another kind's type is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_entities_start_call_cast_and_refuse_other_kinds() {
    let a = node_built("ta", None, |b| {
        b.register::<Account>("account")
            .register::<hub_net::examples::Echo>("echo")
    })
    .await;
    let acct = a.entity::<Account>("acct-42").unwrap();
    assert_eq!(acct.kind(), "account");
    acct.start(&100, StartOptions::awaited()).await.unwrap();
    // As the README finds it: at once, without awaiting the node.
    let at = a.child_lookup("acct-42").unwrap();
    assert_eq!(at.len(), 1, "{at:?}");
    assert_eq!(at[0].0, *a.node_id());
    let again = acct.start(&100, StartOptions::awaited()).await;
    assert!(again.is_err(), "a second start is an error: {again:?}");
    assert_eq!(
        acct.call(&Op::Deposit(5), Duration::from_secs(1))
            .await
            .unwrap(),
        105
    );
    acct.cast(&Op::Deposit(1)).await.unwrap();
    assert_eq!(
        acct.call(&Op::Balance, Duration::from_secs(1))
            .await
            .unwrap(),
        106
    );

    let echo = ChildSpec::new("e1", "echo").with_args(postcard::to_stdvec(&()).unwrap());
    a.start_child(echo, StartOptions::awaited()).await.unwrap();
    let wrong = a
        .call::<Account>("e1", &Op::Balance, Duration::from_secs(1))
        .await;
    assert_eq!(
        wrong,
        Err(hub_net::CallError::WrongKind {
            expected: "account".into(),
            actual: "echo".into()
        })
    );
    let wrong = a
        .entity::<Account>("e1")
        .unwrap()
        .cast(&Op::Deposit(1))
        .await;
    assert!(
        matches!(wrong, Err(hub_net::CallError::WrongKind { .. })),
        "{wrong:?}"
    );

    struct NotRegistered;
    impl Process for NotRegistered {
        type Args = ();
        type Message = ();
        type Reply = ();
        type State = ();
        async fn init(_: hub_net::Context<Self>, _: (), _: Option<()>) -> Result<Self, String> {
            Ok(NotRegistered)
        }
        async fn handle_cast(&mut self, _: ()) -> Result<(), String> {
            Ok(())
        }
        async fn handle_call(&mut self, _: ()) -> Result<(), String> {
            Ok(())
        }
    }
    assert!(matches!(
        a.entity::<NotRegistered>("x"),
        Err(hub_net::HubError::UnregisteredType(_))
    ));
    a.shutdown().await.unwrap();
}

/// The README's on-demand accounts: registered with `register_on_demand`,
/// opened by their first message from either node, one instance each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_accounts_open_at_their_first_message() {
    let on_demand = |b: hub_net::HubBuilder| b.register_on_demand::<Account>("account", |_id| 0);
    let a = node_built("oa", None, on_demand).await;
    let b = node_built("ob", Some(&a), on_demand).await;
    wait_formed(&[&a, &b], 2).await;
    let acct = a.entity::<Account>("acct-77").unwrap();
    let balance = acct
        .call(&Op::Deposit(5), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(balance, 5);
    let again = b
        .call::<Account>("acct-77", &Op::Deposit(5), Duration::from_secs(5))
        .await;
    assert_eq!(again, Ok(10), "the second message reaches the same account");
    assert!(wait_settled(&[&a, &b], 1).await);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
