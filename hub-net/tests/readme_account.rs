//! The README's `Account` example, as written there, through the moves a
//! user makes: a join, a graceful shutdown and a decommission, with the
//! default strategies (ColdSwap) and with HotSwap + handover. No balance
//! may change.

mod common;

use std::time::Duration;

use common::*;
use hub_core::{ChildSpec, StartOptions, Strategies};
use hub_net::{Hub, Process};
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
    async fn init(
        _id: hub_core::ChildId,
        open: i64,
        restored: Option<i64>,
    ) -> Result<Self, String> {
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

async fn bank(id: &str, seed: Option<&Hub>, strategies: fn() -> Strategies) -> Hub {
    node_built(id, seed, |b| {
        b.strategies(strategies()).register::<Account>("account")
    })
    .await
}

fn acct(i: usize) -> String {
    format!("acct-{i}")
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

async fn balances_survive_moves(strategies: fn() -> Strategies) {
    let a = bank("a", None, strategies).await;
    let b = bank("b", Some(&a), strategies).await;
    let c = bank("c", Some(&a), strategies).await;
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

    let d = bank("d", Some(&a), strategies).await;
    wait_formed(&[&a, &b, &c, &d], 4).await;
    assert!(
        wait_settled(&[&a, &b, &c, &d], ACCOUNTS).await,
        "join settled"
    );
    let wrong = wrong_balances(&a).await;
    assert!(
        wrong.is_empty(),
        "after a join, {} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    b.shutdown().await.unwrap();
    wait_formed(&[&a, &c, &d], 3).await;
    assert!(wait_settled(&[&a, &c, &d], ACCOUNTS).await, "leave settled");
    let wrong = wrong_balances(&a).await;
    assert!(
        wrong.is_empty(),
        "after a graceful leave, {} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    a.decommission(c.node_id().clone()).await.unwrap();
    wait_formed(&[&a, &d], 2).await;
    assert!(
        wait_settled(&[&a, &d], ACCOUNTS).await,
        "decommission settled"
    );
    let wrong = wrong_balances(&d).await;
    assert!(
        wrong.is_empty(),
        "after a decommission, {} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_strategies_keep_every_balance_through_join_leave_and_decommission() {
    balances_survive_moves(hub_strategies::defaults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_handover_keeps_every_balance_through_join_leave_and_decommission() {
    fn hot() -> Strategies {
        let mut s = hub_strategies::defaults();
        s.migration = Box::new(hub_strategies::HotSwap::default().with_handover(true));
        s
    }
    balances_survive_moves(hot).await;
}
