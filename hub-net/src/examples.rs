//! Example process kinds shipped with the `hub` binary: `counter` (stateful,
//! hands its count over) and `echo`.

use serde::{Deserialize, Serialize};

use hub_core::ChildId;

use crate::context::Context;
use crate::process::Process;

/// A counter that survives migrations with HotSwap handover.
#[derive(Debug)]
pub struct Counter {
    n: i64,
}

/// What a [`Counter`] understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterMsg {
    /// Add to the count (negative subtracts).
    Add(i64),
    /// Read the count.
    Get,
}

impl Process for Counter {
    type Args = i64;
    type Message = CounterMsg;
    type Reply = i64;
    type State = i64;

    async fn init(_ctx: Context<Self>, start: i64, restored: Option<i64>) -> Result<Self, String> {
        Ok(Counter {
            n: restored.unwrap_or(start),
        })
    }

    async fn handle_cast(&mut self, msg: CounterMsg) -> Result<(), String> {
        if let CounterMsg::Add(k) = msg {
            self.n = self.n.saturating_add(k);
        }
        Ok(())
    }

    async fn handle_call(&mut self, msg: CounterMsg) -> Result<i64, String> {
        self.handle_cast(msg).await?;
        Ok(self.n)
    }

    fn snapshot_state(&self) -> Option<i64> {
        Some(self.n)
    }
}

/// Answers every call with its message, prefixed by its child id.
#[derive(Debug)]
pub struct Echo {
    id: ChildId,
}

impl Process for Echo {
    type Args = ();
    type Message = String;
    type Reply = String;
    type State = ();

    async fn init(ctx: Context<Self>, _args: (), _restored: Option<()>) -> Result<Self, String> {
        Ok(Echo {
            id: ctx.id().clone(),
        })
    }

    async fn handle_cast(&mut self, _msg: String) -> Result<(), String> {
        Ok(())
    }

    async fn handle_call(&mut self, msg: String) -> Result<String, String> {
        Ok(format!("{}: {msg}", self.id))
    }
}

/// Remembers the replica role it was last told, and answers every call
/// with it (`"active"`, `"passive"` or `"unknown"` before any signal).
/// Useful to watch ActivePassive replication at work.
#[derive(Debug)]
pub struct RoleProbe {
    role: Option<hub_core::Role>,
}

impl Process for RoleProbe {
    type Args = ();
    type Message = ();
    type Reply = String;
    type State = ();

    async fn init(_ctx: Context<Self>, _args: (), _restored: Option<()>) -> Result<Self, String> {
        Ok(RoleProbe { role: None })
    }

    async fn handle_cast(&mut self, _msg: ()) -> Result<(), String> {
        Ok(())
    }

    async fn handle_call(&mut self, _msg: ()) -> Result<String, String> {
        Ok(match self.role {
            Some(hub_core::Role::Active) => "active",
            Some(hub_core::Role::Passive) => "passive",
            None => "unknown",
        }
        .into())
    }

    async fn role_changed(&mut self, role: hub_core::Role) -> Result<(), String> {
        self.role = Some(role);
        Ok(())
    }
}
