use hub_core::{MigrationMode, MigrationStrategy};

/// Stop the old instance (its removal is synced), then start a fresh one on
/// the new owner: never two copies at once, state is not carried over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColdSwap;

impl MigrationStrategy for ColdSwap {
    fn name(&self) -> &'static str {
        "cold_swap"
    }

    fn mode(&self) -> MigrationMode {
        MigrationMode::StopThenStart
    }
}
