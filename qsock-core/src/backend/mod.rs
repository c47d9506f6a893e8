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

mod dwcs;
pub(crate) mod htb;
mod recv_err;
mod user;

use crate::error::{Error, ErrorKind};
use crate::tc::link::{self, Link};
use crate::tc::qdisc::{self, RootQdisc};
use crate::tc::Netlink;

/// The refusal for a root qdisc someone installed on purpose (also another
/// qsock scheduler: the caller asked for a different one).
pub(crate) fn busy(device: &str, root: &RootQdisc) -> Error {
    Error::new(
        ErrorKind::Busy,
        format!(
            "{device} already has a root qdisc that was installed on purpose ({}): qsock will not \
             replace it. Remove it first with `qsockctl reset --dev {device}` or `tc qdisc del dev \
             {device} root`, then call qsockinit again",
            root.describe()
        ),
    )
}

/// Puts the socket's packets in class `priority` (`setsockopt(SO_PRIORITY)`),
/// which classful qdiscs match before any filter; values above 6 need
/// CAP_NET_ADMIN.
pub(crate) fn set_priority(socket: &Socket, priority: u32, device: &str) -> Result<()> {
    socket
        .set_priority(priority)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::EPERM) => {
                Error::needs_net_admin("setting SO_PRIORITY to a class handle", device)
            }
            _ => Error::os("setsockopt(SO_PRIORITY) failed", err),
        })
}

/// Starts the report of `device` for the kernel backend whose root qdisc is
/// `kind`: the root as the kernel names it and, when it is qsock's `kind`,
/// `scheduler`. Returns that root with the report, for the backend to fill
/// in its link rate and streams; `None` when another scheduler (or none)
/// runs the device, and the report is then complete.
pub(crate) fn begin_kernel_report(
    nl: &Netlink,
    link: &Link,
    kind: &str,
    scheduler: SchedulerName,
) -> Result<(DeviceReport, Option<RootQdisc>)> {
    let root = qdisc::root(nl, link)?;
    let root_qdisc = root
        .as_ref()
        .map_or_else(|| "none".to_owned(), RootQdisc::describe);
    let ours = root.filter(|root| root.is_qsock(kind));
    let report = DeviceReport {
        device: link.name.clone(),
        scheduler: ours.is_some().then_some(scheduler),
        root_qdisc,
        link_rate: None,
        streams: Vec::new(),
        best_effort: None,
    };
    Ok((report, ours))
}

/// `tc qdisc del dev DEV root`, when the root is qsock's qdisc of `kind`;
/// anyone else's root is left alone.
pub(crate) fn reset_kernel_root(device: &str, kind: &str) -> Result<()> {
    let nl = Netlink::open()?;
    let link = link::lookup(&nl, device)?;
    if qdisc::root(&nl, &link)?.is_some_and(|root| root.is_qsock(kind)) {
        qdisc::delete_root(&nl, &link)?;
    }
    Ok(())
}

/// The backends `auto` tries, in order.
fn registry() -> [&'static dyn Backend; 3] {
    [&dwcs::Dwcs, &htb::Htb, &user::User]
}

/// The backend registered under `name` (`Auto` has none of its own).
pub(crate) fn by_name(name: SchedulerName) -> Option<&'static dyn Backend> {
    registry()
        .into_iter()
        .find(|backend| backend.name() == name)
}

/// The backend registered under `name`, or why there is none.
fn registered(name: SchedulerName) -> Result<&'static dyn Backend> {
    by_name(name).ok_or_else(|| {
        Error::new(
            ErrorKind::NotSupported,
            format!("the {name} scheduler is not part of this build of qsock"),
        )
    })
}

/// Fails with `NoDevice` unless the device exists in this network namespace.
pub(crate) fn require_device(device: &str) -> Result<()> {
    crate::params::validate_device(device)?;
    nix::net::if_::if_nametoindex(device)
        .map(|_| ())
        .map_err(|_| {
            Error::new(
                ErrorKind::NoDevice,
                format!(
                    "no network device {device:?} here: `ip link` lists the devices of this \
                     network namespace"
                ),
            )
        })
}

/// `qsockinit`: installs the scheduler on the device. For `auto`, tries each
/// backend in order and says why each one before the chosen was passed over.
pub fn qsockinit(init: &InitParams) -> Result<InitReport> {
    init.validate()?;
    require_device(&init.device)?;
    if init.scheduler != SchedulerName::Auto {
        return registered(init.scheduler)?.install(init);
    }
    let mut passed_over = Vec::new();
    for backend in registry() {
        let attempt = InitParams {
            scheduler: backend.name(),
            ..init.clone()
        };
        match backend.install(&attempt) {
            Ok(mut report) => {
                if !passed_over.is_empty() {
                    report.reason = format!("{} ({})", report.reason, passed_over.join("; "));
                }
                return Ok(report);
            }
            Err(err) if err.kind() == ErrorKind::InvalidInput => return Err(err),
            Err(err) => passed_over.push(format!("{} passed over: {err}", backend.name())),
        }
    }
    Err(Error::new(
        ErrorKind::NotSupported,
        format!(
            "no scheduler could be installed: {}",
            passed_over.join("; ")
        ),
    ))
}

/// The backend a new socket on `device` goes to: the one named, which must be
/// installed there; for `auto`, the kernel scheduler installed on the device,
/// else the `user` scheduler of this process.
pub(crate) fn resolve(device: &str, name: SchedulerName) -> Result<&'static dyn Backend> {
    require_device(device)?;
    if name != SchedulerName::Auto {
        let backend = registered(name)?;
        if backend.is_installed(device)? {
            return Ok(backend);
        }
        return Err(Error::new(
            ErrorKind::NotSupported,
            format!(
                "the {name} scheduler is not installed on {device}: call qsockinit first \
                 (`qsockctl init --dev {device} --scheduler {name}`)"
            ),
        ));
    }
    for backend in registry() {
        if backend.is_installed(device)? {
            return Ok(backend);
        }
    }
    Err(Error::new(
        ErrorKind::NotSupported,
        format!("no qsock scheduler is installed on {device}: call qsockinit first"),
    ))
}

/// `qsockctl show`: what scheduler the device has and its streams.
pub fn report(device: &str) -> Result<DeviceReport> {
    require_device(device)?;
    for backend in registry() {
        if backend.is_installed(device)? {
            return backend.report(device);
        }
    }
    Err(Error::new(
        ErrorKind::NotSupported,
        format!("no qsock scheduler is installed on {device}"),
    ))
}

/// `qsockctl reset`: removes whichever qsock scheduler the device has.
pub fn reset(device: &str) -> Result<()> {
    require_device(device)?;
    for backend in registry() {
        if backend.is_installed(device)? {
            backend.reset(device)?;
        }
    }
    Ok(())
}
