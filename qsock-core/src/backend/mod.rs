//! Scheduler backends (the paper's "scheduler modules"): one trait, one
//! registry, selected by [`SchedulerName`].

use netlink_packet_route::tc::TcHandle;
use socket2::Socket;

use crate::error::Result;
use crate::info::{DropCounts, SchedulerStats};
use crate::params::{InitParams, QosParams, Rate, SchedulerName, StreamParams};
pub(crate) use frame::Frame;
use htb::tc::HtbClassInfo;

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
    /// The process that attached the stream, as recorded when it did; `None`
    /// when there is no record (a class made by hand).
    pub owner: Option<StreamOwner>,
    /// No live process holds the stream any more: its owner ended without
    /// closing it (e.g. `kill -9`), or it never had one. Its class still
    /// reserves its rate until `qsockctl prune` or the next qsocket on the
    /// device removes it.
    pub stale: bool,
}

/// The process a stream belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamOwner {
    /// Its process id.
    pub pid: u32,
    /// Its real user id.
    pub uid: u32,
    /// Its command line.
    pub command: String,
    /// When it attached the stream, in seconds since the Unix epoch.
    pub since_unix_seconds: u64,
}

/// What `reset` found and removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResetReport {
    /// The device.
    pub device: String,
    /// The qsock scheduler removed; `None` when the device had none.
    pub removed: Option<SchedulerName>,
    /// The device's root qdisc before the reset, as the kernel names it.
    pub root_qdisc: String,
}

/// A class removed because no live process held it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrunedStream {
    /// The class handle, e.g. `7173:2`.
    pub id: String,
    /// The rate it reserved, where the backend has one.
    pub rate: Option<Rate>,
    /// Who had attached it, where recorded.
    pub owner: Option<StreamOwner>,
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
    /// The most traffic of no stream may send, where the scheduler classes
    /// it apart from the streams (`htb`: best effort's ceiling, the link
    /// rate unless capped).
    pub best_effort_rate: Option<Rate>,
}

/// A scheduler backend. Each method says which `tc` operation it stands for.
pub(crate) trait Backend: Send + Sync {
    /// The name it is selected by.
    fn name(&self) -> SchedulerName;

    /// `qsockinit`: make this scheduler the device's root qdisc (`tc qdisc
    /// replace dev DEV root ...`). Idempotent for the same scheduler; refuses
    /// with `Busy` a different qdisc that someone installed on purpose.
    fn install(&self, init: &InitParams) -> Result<InitReport>;

    /// The kind of the root qdisc it installs, for the kernel schedulers.
    fn kernel_kind(&self) -> Option<&'static str>;

    /// Is this scheduler installed on the device right now?
    fn is_installed(&self, device: &str) -> Result<bool>;

    /// `qsocket`/`qattach`: create the socket's stream (`tc class add`) and
    /// classify the socket into it.
    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>>;

    /// `qsockctl show`.
    fn report(&self, device: &str) -> Result<DeviceReport>;

    /// `qsockctl reset`: remove the scheduler and every stream (`tc qdisc del dev DEV root`).
    fn reset(&self, device: &str) -> Result<()>;

    /// `qsockctl prune`: remove the streams no live process holds.
    fn prune(&self, device: &str) -> Result<Vec<PrunedStream>>;
}

/// One socket's stream in a backend.
pub(crate) trait Attachment: Send + Sync + std::fmt::Debug {
    /// `qchange` (`tc class change`).
    fn change(&mut self, socket: &Socket, stream: &StreamParams) -> Result<()>;

    /// Sends one frame: every packet of it, with the same flags (the first
    /// packet may start the frame). Returns how many packets were accepted;
    /// fewer than given only when the rest would block or the queue is full.
    fn send_frame(&self, socket: &Socket, frame: &Frame<'_>) -> Result<usize>;

    /// The scheduler's figures for this stream.
    fn stats(&self) -> Result<SchedulerStats>;

    /// The bytes the stream's class had sent when it was attached, from
    /// which `qinfo` measures the first delivered rate.
    fn sent_bytes_at_attach(&self) -> Result<u64> {
        self.stats().map(|stats| stats.sent_bytes)
    }

    /// The link rate the device's scheduler was given, if it has one.
    fn link_rate(&self) -> Result<Option<Rate>>;

    /// `qclose` (`tc class del`): the stream is removed once its queued
    /// packets have left; nothing non-droppable is discarded.
    fn detach(self: Box<Self>, socket: &Socket) -> Result<()>;
}

mod delegated;
pub(crate) mod dwcs;
mod frame;
pub(crate) mod htb;
mod kernel;
pub(crate) mod owner;
mod recv_err;
mod user;

use crate::error::{Error, ErrorKind};
use crate::tc::class::{self, ClassInfo};
use crate::tc::link::{self, Link};
use crate::tc::qdisc::{self, RootQdisc};
use crate::tc::{handle_to_string, Netlink, QSOCK_MAJOR};
use owner::{ClassClaim, DeviceRecords};

/// The refusal for a root qdisc someone installed on purpose; `ours` names
/// the qsock scheduler it is, when it is one of qsock's (the caller asked
/// for `wanted`, a different one).
pub(crate) fn busy(
    device: &str,
    root: &RootQdisc,
    ours: Option<SchedulerName>,
    wanted: SchedulerName,
) -> Error {
    let message = match ours {
        Some(installed) => format!(
            "{device} already has qsock's {installed} scheduler ({}). To switch to {wanted}, \
             remove it with `qsockctl reset --dev {device}` (its streams fall back to best \
             effort), then run `qsockctl init --dev {device} --scheduler {wanted}`",
            root.describe()
        ),
        None => format!(
            "{device} already has a root qdisc that was installed on purpose ({}): qsock will \
             not replace it. If nobody needs it, remove it with `tc qdisc del dev {device} root`, \
             then call qsockinit again",
            root.describe()
        ),
    };
    Error::new(ErrorKind::Busy, message)
}

/// Is `root` a qdisc qsock installed on the device? `Ok(false)` for a root
/// without qsock's handle; an error for one that has qsock's handle but that
/// qsock did not install: no record of installing it, or not the layout
/// qsock installs.
pub(crate) fn is_ours(records: &DeviceRecords, root: &RootQdisc) -> Result<bool> {
    if root.handle.major != QSOCK_MAJOR {
        return Ok(false);
    }
    let device = records.device();
    let described = root.describe();
    match records.recorded_root() {
        None => {
            return Err(owner::not_ours(
                device,
                &described,
                "qsock keeps no record of installing it",
            ))
        }
        Some(kind) if kind != root.kind => {
            return Err(owner::not_ours(
                device,
                &described,
                &format!("qsock recorded installing {kind} there, not {}", root.kind),
            ))
        }
        Some(_) => {}
    }
    if root.kind == htb::tc::KIND {
        let default = htb::tc::default_class(&root.options);
        if default != Some(u32::from(htb::BEST_EFFORT_MINOR)) {
            let found = default.map_or_else(|| "none".to_owned(), |minor| format!("{minor:x}"));
            return Err(owner::not_ours(
                device,
                &described,
                &format!("its default class is {found}, qsock's is fffe"),
            ));
        }
    }
    Ok(true)
}

/// The qsock scheduler whose root qdisc `root` is, if qsock installed it.
pub(crate) fn installed_scheduler(
    records: &DeviceRecords,
    root: &RootQdisc,
) -> Option<SchedulerName> {
    if !matches!(is_ours(records, root), Ok(true)) {
        return None;
    }
    registry()
        .into_iter()
        .find(|backend| backend.kernel_kind() == Some(root.kind.as_str()))
        .map(|backend| backend.name())
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
    let records = DeviceRecords::of(link)?;
    let ours = root.filter(|root| root.kind == kind && matches!(is_ours(&records, root), Ok(true)));
    let report = DeviceReport {
        device: link.name.clone(),
        scheduler: ours.is_some().then_some(scheduler),
        root_qdisc,
        link_rate: None,
        streams: Vec::new(),
        best_effort: None,
        best_effort_rate: None,
    };
    Ok((report, ours))
}

/// A stream's report entry for class `info`, with who holds it.
pub(crate) fn kernel_stream_report(
    records: &DeviceRecords,
    info: &ClassInfo,
    stats: SchedulerStats,
) -> StreamReport {
    let ownership = records.ownership(info.handle.minor);
    StreamReport {
        id: handle_to_string(info.handle),
        rate: info.rate(),
        stats,
        owner: ownership.owner().cloned(),
        stale: ownership.is_gone(),
    }
}

/// A class's figures from the counters every class has (`tc -s class
/// show`): no queueing delay or window, which only some schedulers measure.
pub(crate) fn generic_class_stats(info: &ClassInfo) -> SchedulerStats {
    SchedulerStats {
        sent_packets: info.stats.packets,
        sent_bytes: info.stats.bytes,
        dropped: DropCounts {
            queue_full: info.stats.drops,
            ..DropCounts::default()
        },
        backlog_packets: info.stats.qlen,
        backlog_bytes: info.stats.backlog,
        ..SchedulerStats::default()
    }
}

/// `tc qdisc del dev DEV root`, when the root is qsock's qdisc of `kind`;
/// anyone else's root is left alone.
pub(crate) fn reset_kernel_root(device: &str, kind: &str) -> Result<()> {
    let nl = Netlink::open()?;
    let link = link::lookup(&nl, device)?;
    let records = DeviceRecords::of(&link)?;
    let _lock = records.lock()?;
    if let Some(root) = qdisc::root(&nl, &link)? {
        if root.kind == kind && is_ours(&records, &root)? {
            qdisc::delete_root(&nl, &link)?;
            records.forget_all();
        }
    }
    Ok(())
}

/// Removes the stream classes of qsock's `kind` qdisc on the device that no
/// live process holds (`tc class del` each). Call with the device locked.
pub(crate) fn prune_classes(
    nl: &Netlink,
    link: &Link,
    records: &DeviceRecords,
    is_stream: impl Fn(&ClassInfo) -> bool,
) -> Result<Vec<PrunedStream>> {
    let mut pruned = Vec::new();
    for info in class::list(nl, link)? {
        if info.handle.major != QSOCK_MAJOR || !is_stream(&info) {
            continue;
        }
        let Some((orphan, owner)) = records.orphan(info.handle.minor) else {
            continue;
        };
        match class::delete(nl, link, info.handle) {
            Ok(()) => {}
            Err(err) if err.errno() == libc::ENOENT => {}
            Err(err) => return Err(err),
        }
        orphan.forget();
        pruned.push(PrunedStream {
            id: handle_to_string(info.handle),
            rate: info.rate(),
            owner,
        });
    }
    if !pruned.is_empty() {
        let ids: Vec<&str> = pruned.iter().map(|stream| stream.id.as_str()).collect();
        log::info!(
            "{}: removed stream class(es) {} whose owner is gone",
            link.name,
            ids.join(", ")
        );
    }
    Ok(pruned)
}

/// `qsockctl prune` of a kernel scheduler installed on `link`: takes the
/// device's lock, then [`prune_classes`].
pub(crate) fn prune_unheld(
    nl: &Netlink,
    link: &Link,
    is_stream: impl Fn(&ClassInfo) -> bool,
) -> Result<Vec<PrunedStream>> {
    let records = DeviceRecords::of(link)?;
    let _lock = records.lock()?;
    prune_classes(nl, link, &records, is_stream)
}

/// Creates a stream class at a free minor, held by this process (see
/// [`owner`]), after removing the classes whose owners are gone. `admit`
/// sees the live classes before anything is created and may refuse.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_owned_class(
    nl: &Netlink,
    link: &Link,
    records: &DeviceRecords,
    parent: TcHandle,
    minors: std::ops::RangeInclusive<u16>,
    kind: &str,
    options: &netlink_packet_route::tc::TcAttribute,
    is_stream: impl Fn(&ClassInfo) -> bool,
    admit: impl FnOnce(&[ClassInfo]) -> Result<()>,
) -> Result<(TcHandle, ClassClaim)> {
    let _lock = records.lock()?;
    prune_classes(nl, link, records, &is_stream)?;
    let live: Vec<ClassInfo> = class::list(nl, link)?
        .into_iter()
        .filter(|info| info.handle.major == QSOCK_MAJOR && is_stream(info))
        .collect();
    admit(&live)?;
    class::add_at_free_minor(
        nl,
        link,
        parent,
        minors,
        kind,
        options,
        |minor| records.claim(minor),
        ClassClaim::release,
    )
}

/// Puts the socket in the stream class `created` has just made, through
/// `classify`; when that fails, the class is deleted and its hold released,
/// so that a failed attach or change leaves nothing behind.
pub(crate) fn classify_into_new_class<T>(
    nl: &Netlink,
    link: &Link,
    (handle, claim): (TcHandle, ClassClaim),
    classify: impl FnOnce(TcHandle) -> Result<T>,
) -> Result<(TcHandle, ClassClaim, T)> {
    match classify(handle) {
        Ok(classified) => Ok((handle, claim, classified)),
        Err(err) => {
            let _ = class::delete(nl, link, handle);
            claim.release();
            Err(err)
        }
    }
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
///
/// A caller without CAP_NET_ADMIN installs nothing: for a kernel scheduler
/// (or `auto`) it is told whether the device already runs it, by qsockd or
/// the root qdisc (see [`delegated::init`]).
pub fn qsockinit(init: &InitParams) -> Result<InitReport> {
    init.validate()?;
    require_device(&init.device)?;
    if init.scheduler != SchedulerName::User && !owner::has_net_admin() {
        if let Some(report) = delegated::init(init)? {
            return Ok(report);
        }
    }
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

/// `qsocket`/`qattach`: the socket's stream and the scheduler it runs
/// under. A caller without CAP_NET_ADMIN has its kernel scheduler's stream
/// set up by qsockd when qsockd's socket exists; `auto` then prefers
/// qsockd's kernel scheduler, and falls back to a `user` scheduler this
/// process runs for the device, saying why once.
pub(crate) fn attach(
    socket: &Socket,
    params: &QosParams,
) -> Result<(Box<dyn Attachment>, SchedulerName)> {
    let wanted = params.scheduler;
    if wanted != SchedulerName::User {
        if let Some(path) = crate::daemon::client::route() {
            require_device(&params.device)?;
            match delegated::attach(&path, socket, params) {
                Ok(attached) => return Ok(attached),
                Err(err)
                    if wanted == SchedulerName::Auto
                        && user::User.is_installed(&params.device)? =>
                {
                    crate::notice::once(
                        "auto-without-qsockd",
                        &format!(
                            "scheduler auto on {}: qsockd did not schedule the stream ({err}); it \
                             uses the user scheduler, which cannot hold back other processes' \
                             traffic",
                            params.device
                        ),
                    );
                    let user = QosParams {
                        scheduler: SchedulerName::User,
                        ..params.clone()
                    };
                    return Ok((user::User.attach(socket, &user)?, SchedulerName::User));
                }
                Err(err) => return Err(err),
            }
        }
    }
    let backend = resolve(&params.device, wanted)?;
    let resolved = QosParams {
        scheduler: backend.name(),
        ..params.clone()
    };
    Ok((backend.attach(socket, &resolved)?, backend.name()))
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

/// The device's root qdisc, as the kernel names it, and an error if it has
/// qsock's handle without being qsock's.
fn describe_root(device: &str) -> Result<String> {
    let nl = Netlink::open()?;
    let link = link::lookup(&nl, device)?;
    let Some(root) = qdisc::root(&nl, &link)? else {
        return Ok("none".to_owned());
    };
    is_ours(&DeviceRecords::of(&link)?, &root)?;
    Ok(root.describe())
}

/// `qsockctl show`: what scheduler the device has and its streams.
pub fn report(device: &str) -> Result<DeviceReport> {
    require_device(device)?;
    for backend in registry() {
        if backend.is_installed(device)? {
            return backend.report(device);
        }
    }
    let root = describe_root(device)?;
    Err(Error::new(
        ErrorKind::NotSupported,
        format!(
            "no qsock scheduler is installed on {device} (its root qdisc is {root}): install one \
             with `qsockctl init --dev {device}`"
        ),
    ))
}

/// `qsockctl reset`: removes whichever qsock scheduler the device has, and
/// says which it was; a device without one is left as it is. Refuses a root
/// qdisc with qsock's handle that qsock did not install.
pub fn reset(device: &str) -> Result<ResetReport> {
    require_device(device)?;
    let root_qdisc = describe_root(device)?;
    let mut removed = None;
    for backend in registry() {
        if backend.is_installed(device)? {
            backend.reset(device)?;
            removed = removed.or(Some(backend.name()));
        }
    }
    Ok(ResetReport {
        device: device.to_owned(),
        removed,
        root_qdisc,
    })
}

/// `qsockctl prune`: removes the device's streams that no live process
/// holds (their owner ended without closing them), and returns them.
pub fn prune(device: &str) -> Result<Vec<PrunedStream>> {
    require_device(device)?;
    for backend in registry() {
        if backend.is_installed(device)? {
            return backend.prune(device);
        }
    }
    let root = describe_root(device)?;
    Err(Error::new(
        ErrorKind::NotSupported,
        format!("no qsock scheduler is installed on {device} (its root qdisc is {root})"),
    ))
}
