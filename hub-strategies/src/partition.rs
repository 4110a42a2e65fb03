use hub_core::{PartitionStrategy, QuorumView};

/// Each side of a partition keeps running and restarts the other side's
/// children; on heal the ring decides and extra instances stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Divergence;

impl PartitionStrategy for Divergence {
    fn name(&self) -> &'static str {
        "divergence"
    }

    fn is_partitioned(&mut self, _view: &QuorumView<'_>) -> bool {
        false
    }
}
