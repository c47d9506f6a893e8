//! QSockets: attach a socket to a packet scheduler, tell the scheduler per
//! packet what may be dropped and by when it must leave, and read back how the
//! scheduler is doing.
//!
//! The API follows the QSockets paper: [`qsockinit`] installs a scheduler on a
//! device, [`QSocket::new`] (`qsocket`) and [`QSocket::attach`] (`qattach`)
//! put a socket's traffic in a stream of that scheduler, [`QSocket::change`]
//! (`qchange`) changes the stream, [`QSocket::send`] / [`QSocket::send_to`]
//! (`qsend`/`qsendto`) and [`QSocket::send_frame`] pass [`PacketFlags`],
//! [`QSocket::info`] (`qinfo`) returns a [`QInfo`], and [`QSocket::close`]
//! (`qclose`) ends it. The same calls exist in C: the qsock-capi crate's
//! `include/qsock.h`.
#![deny(missing_docs)]

mod backend;
pub mod daemon;
mod error;
mod flags;
mod info;
pub mod link;
pub mod model;
mod notice;
mod params;
mod route;
pub mod sch_dwcs;
mod socket;
mod sys;
mod tc;

pub use backend::{
    prune, qsockinit, report, reset, DeviceReport, InitReport, PrunedStream, ResetReport,
    StreamOwner, StreamReport,
};
pub use error::{Error, ErrorKind, Result};
pub use flags::{Deadline, DropFlag, PacketFlags};
pub use info::{DropCounts, QInfo, QueueDelay, SchedulerStats};
pub use params::{
    validate_device, InitParams, QosParams, Rate, SchedulerName, StreamKind, StreamParams,
    WindowConstraint, MAX_DEVICE_NAME,
};
pub use route::{device_mtu, egress_device};
pub use socket::{AttachError, QSocket};

/// Whether this thread holds CAP_NET_ADMIN in its effective set: whether
/// it installs schedulers and classes itself, or goes through qsockd.
pub fn has_net_admin() -> bool {
    sys::has_net_admin()
}

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock of every [`Deadline`].
pub fn monotonic_now() -> u64 {
    sys::monotonic_nanos()
}

/// The README's Rust example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
