//! `select!` for the hub's own loops: tokio's, except that under madsim
//! its branches are polled in the order written.
//!
//! Tokio picks the first branch to poll from a thread-local generator
//! seeded by a process-wide counter (one more per thread that ever used
//! it). madsim runs every seed on a fresh thread, so the same seed took a
//! different course depending on how many simulations the process had
//! run before it: a seed found failing in a sweep's chunk passed when
//! replayed alone. In production the random start keeps a busy branch
//! from starving the others; in a simulation, madsim's own scheduler
//! already varies the order in which tasks run, from the seed.

#[cfg(madsim)]
macro_rules! select {
    ($($body:tt)*) => { tokio::select! { biased; $($body)* } };
}

#[cfg(not(madsim))]
macro_rules! select {
    ($($body:tt)*) => { tokio::select! { $($body)* } };
}
