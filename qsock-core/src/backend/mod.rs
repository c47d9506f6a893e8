//! Scheduler backends (the paper's "scheduler modules"): one trait, one
//! registry, selected by [`SchedulerName`].

use socket2::{SockAddr, Socket};

use crate::error::Result;
use crate::flags::PacketFlags;
use crate::info::SchedulerStats;
use crate::params::{InitParams, QosParams, Rate, SchedulerName, StreamParams};

/// What `qsockinit` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitReport {
    /// The backend now scheduling the device.
    pub scheduler: SchedulerName,
    /// The device.
    pub device: String,
    /// False when the same scheduler was already installed and nothing changed
    /// but, perhaps, its rate.
    pub installed_now: bool,
    /// Why this backend, in words (for `auto`: what was tried and why it was passed over).
    pub reason: String,
}

/// One stream of a device's scheduler, as `qsockctl show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamReport {
    /// The backend's own name for the stream: a class handle such as `7173:2`.
    pub id: String,
    /// The stream's rate where the backend has one (HTB classes).
    pub rate: Option<Rate>,
    /// The scheduler's figures for it.
    pub stats: SchedulerStats,
}

/// A device's scheduler, its streams and its best-effort traffic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    /// The device.
    pub device: String,
    /// The backend scheduling it, if any qsock scheduler is installed.
    pub scheduler: Option<SchedulerName>,
    /// What the device's root qdisc is, as the kernel names it (e.g. `htb 7173:`).
    pub root_qdisc: String,
    /// The link rate the scheduler was given.
    pub link_rate: Option<Rate>,
    /// One entry per stream.
    pub streams: Vec<StreamReport>,
    /// Traffic of no stream.
    pub best_effort: Option<SchedulerStats>,
}

/// A scheduler backend. Each method says which `tc` operation it stands for.
pub(crate) trait Backend: Send + Sync {
    /// The name it is selected by.
    fn name(&self) -> SchedulerName;

    /// `qsockinit`: make this scheduler the device's root qdisc (`tc qdisc
    /// replace dev DEV root ...`). Idempotent for the same scheduler; refuses
    /// with `Busy` a different qdisc that someone installed on purpose.
    fn install(&self, init: &InitParams) -> Result<InitReport>;

    /// Is this scheduler installed on the device right now?
    fn is_installed(&self, device: &str) -> Result<bool>;

    /// `qsocket`/`qattach`: create the socket's stream (`tc class add`) and
    /// classify the socket into it.
    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>>;

    /// `qsockctl show`.
    fn report(&self, device: &str) -> Result<DeviceReport>;

    /// `qsockctl reset`: remove the scheduler and every stream (`tc qdisc del dev DEV root`).
    fn reset(&self, device: &str) -> Result<()>;
}

/// One socket's stream in a backend.
pub(crate) trait Attachment: Send + Sync + std::fmt::Debug {
    /// `qchange` (`tc class change`).
    fn change(&mut self, socket: &Socket, stream: &StreamParams) -> Result<()>;

    /// Sends one frame: every packet of it, with the same flags (the first
    /// packet may start the frame). Returns how many packets were accepted;
    /// fewer than given only when the rest would block or the queue is full.
    fn send_frame(
        &self,
        socket: &Socket,
        packets: &[&[u8]],
        destination: Option<&SockAddr>,
        flags: &PacketFlags,
    ) -> Result<usize>;

    /// The scheduler's figures for this stream.
    fn stats(&self) -> Result<SchedulerStats>;

    /// `qclose` (`tc class del`): the stream is removed once its queued
    /// packets have left; nothing non-droppable is discarded.
    fn detach(self: Box<Self>, socket: &Socket) -> Result<()>;
}
