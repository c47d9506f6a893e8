//! Every system call of the crate, and all of its unsafe code, behind small
//! functions with stated contracts.

use nix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC` (`clock_gettime(2)`).
pub fn monotonic_nanos() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; a zero would only delay deadlines.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|ts| ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
        .unwrap_or(0)
}
