//! The README's `Account` kind.

use hub_net::{Context, Process};
use serde::{Deserialize, Serialize};

/// One account's balance.
pub struct Account {
    balance: i64,
}

/// What an account understands: `{"Deposit":5}` or `"Balance"` in JSON.
#[derive(Serialize, Deserialize)]
pub enum Op {
    /// Add to the balance (negative withdraws).
    Deposit(i64),
    /// Read it.
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
