use hub_core::RedundancyStrategy;

/// One instance per child id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Singularity;

impl RedundancyStrategy for Singularity {
    fn name(&self) -> &'static str {
        "singularity"
    }

    fn replicas(&self, _cluster_size: usize) -> usize {
        1
    }
}
