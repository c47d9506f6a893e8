//! The `dwcs` backend: sch_dwcs, the DWCS qdisc of kmod-dwcs, as the device's
//! root qdisc, one class per stream with the stream's period and loss window,
//! best-effort traffic in the qdisc's own FIFO.
//!
//! Layout (`tc class show`):
//!
//! ```text
//! qdisc dwcs 7173: root rate LINK limit L resolution N
//! class dwcs 7173:N parent 7173: period T oln X old Y flags F   (one per stream, N >= 1)
//! ```
//!
//! A socket is put in its class through `SO_PRIORITY` = `7173:N`. Per-packet
//! deadlines, drop flags and frame starts travel in one `SCM_TXTIME` value
//! (see `tc` and the module's uapi header), which needs no privilege;
//! `IP_RECVERR` makes the kernel's refusal of a non-droppable packet reach the
//! sender as `ENOBUFS`, and `recv_err` keeps the ICMP errors it would also
//! turn into failed sends from failing any send a plain socket would make.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use netlink_packet_route::tc::{TcAttribute, TcHandle};
use parking_lot::Mutex;
use socket2::{Domain, Socket, Type};

use super::kernel::{speed_unknown, KernelScheduler, OurRoot};
use super::owner::{ClassClaim, DeviceRecords};
use super::{
    add_owned_class, classify_into_new_class, generic_class_stats, is_ours, kernel_stream_report,
    prune_unheld, recv_err, set_priority, Attachment, DeviceReport, Frame, PrunedStream,
};
use crate::error::{Error, ErrorKind, Result};
use crate::info::{DropCounts, QueueDelay, SchedulerStats};
use crate::params::{
    InitParams, QosParams, Rate, SchedulerName, StreamKind, StreamParams, WindowConstraint,
};
use crate::sch_dwcs::{
    TC_DWCS_CLASS_F_APERIODIC, TC_DWCS_CLASS_F_DROPPABLE, TC_DWCS_CLASS_F_WORK_CONSERVING,
};
use crate::sys;
use crate::tc::class::{self, ClassInfo, ClassVerb};
use crate::tc::link::{self, Link};
use crate::tc::qdisc::{self, RootQdisc};
use crate::tc::{handle_to_u32, Netlink, QSOCK_MAJOR};
use tc::{
    txtime_value, DwcsClassOptions, DwcsQdiscOptions, TcDwcsQdiscXstats, TcDwcsXstats, UapiField,
    KIND,
};

/// sch_dwcs's netlink options, xstats and per-packet value.
pub(crate) mod tc;

/// The first minor a stream may get (classes hang off the qdisc directly).
pub(crate) const FIRST_STREAM_MINOR: u16 = 1;
/// The last minor a stream may get; `ffff` is left alone, as `tc` reserves
/// the all-ones minor in places.
pub(crate) const LAST_STREAM_MINOR: u16 = 0xfffe;
/// Where the kernel lists the module once loaded.
const MODULE_PATH: &str = "/sys/module/sch_dwcs";

/// The `dwcs` backend.
#[derive(Debug)]
pub(crate) struct Dwcs;

/// The qdisc's own handle, `7173:`: every class's parent.
pub(crate) fn qdisc_handle() -> TcHandle {
    TcHandle {
        major: QSOCK_MAJOR,
        minor: 0,
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The kernel's answer when the kind is unknown, turned into what to do.
/// Anything else is passed on unchanged.
fn module_missing(err: Error) -> Error {
    let errno = err.errno();
    let text = err.message().to_ascii_lowercase();
    let not_listed = text.contains(MODULE_PATH);
    // qdisc_create answers ENOENT ("Specified qdisc kind is unknown"); some
    // paths answer EINVAL or EOPNOTSUPP with an extack naming the kind unknown.
    let unknown = not_listed
        || errno == libc::ENOENT
        || (matches!(errno, libc::EINVAL | libc::EOPNOTSUPP) && text.contains("unknown"));
    if !unknown {
        return err;
    }
    Error::new(
        ErrorKind::NotSupported,
        format!(
            "the kernel does not know the dwcs qdisc ({err}): the sch_dwcs module is not loaded. \
             Load it with `modprobe sch_dwcs`, or build and install it from kmod-dwcs/ with DKMS \
             first; the htb scheduler (CAP_NET_ADMIN) and the user scheduler (no privilege) work \
             without it"
        ),
    )
}

/// The options `init` asks of the qdisc, for a fresh install.
fn fresh_options(init: &InitParams, rate: Rate) -> DwcsQdiscOptions {
    DwcsQdiscOptions {
        rate: Some(rate.bytes_per_second()),
        limit: init.limit,
        // Sent even when not given, so that qsock's default governs rather
        // than whatever the module defaults to.
        resolution_ns: Some(nanos(init.deadline_resolution())),
    }
}

/// The options to change on a qdisc that has `current`: those `init` names
/// and that differ. `None` when nothing changes.
fn changed_options(init: &InitParams, current: &DwcsQdiscOptions) -> Option<DwcsQdiscOptions> {
    let differs =
        |wanted: Option<u64>, current: Option<u64>| wanted.filter(|w| Some(*w) != current);
    let change = DwcsQdiscOptions {
        rate: differs(init.link_rate.map(Rate::bytes_per_second), current.rate),
        limit: init.limit.filter(|l| Some(*l) != current.limit),
        resolution_ns: differs(init.deadline_resolution.map(nanos), current.resolution_ns),
    };
    (change != DwcsQdiscOptions::default()).then_some(change)
}

fn describe_options(options: &DwcsQdiscOptions) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = options.rate {
        parts.push(format!(
            "rate {}",
            Rate::from_bits_per_second(rate.saturating_mul(8))
        ));
    }
    if let Some(limit) = options.limit {
        parts.push(format!("limit {limit}"));
    }
    if let Some(ns) = options.resolution_ns {
        parts.push(format!("resolution {:?}", Duration::from_nanos(ns)));
    }
    parts.join(" ")
}

/// The class a stream needs, or `None` for best-effort streams, which go to
/// the qdisc's FIFO.
pub(crate) fn class_options(stream: &StreamParams) -> Option<DwcsClassOptions> {
    let mut flags = 0;
    if stream.droppable {
        flags |= TC_DWCS_CLASS_F_DROPPABLE;
    }
    if stream.work_conserving {
        flags |= TC_DWCS_CLASS_F_WORK_CONSERVING;
    }
    let period_ns = match stream.kind {
        StreamKind::BestEffort => return None,
        StreamKind::Periodic => Some(nanos(stream.ipg)),
        StreamKind::Aperiodic => {
            flags |= TC_DWCS_CLASS_F_APERIODIC;
            // A change keeps an old period; APERIODIC makes the kernel ignore it.
            None
        }
    };
    Some(DwcsClassOptions {
        period_ns,
        oln: Some(stream.window.oln),
        old: Some(stream.window.old),
        flags: Some(flags),
    })
}

fn not_installed(device: &str) -> Error {
    Error::new(
        ErrorKind::NotSupported,
        format!(
            "the dwcs scheduler is not installed on {device}: call qsockinit first (`qsockctl \
             init --dev {device} --scheduler dwcs --rate RATE`)"
        ),
    )
}

/// Checks that qsock's dwcs is the device's root.
pub(crate) fn installed(nl: &Netlink, device: &str) -> Result<(Link, RootQdisc)> {
    let link = link::lookup(nl, device)?;
    let records = DeviceRecords::of(&link)?;
    match qdisc::root(nl, &link)? {
        Some(root) if root.kind == KIND && is_ours(&records, &root)? => Ok((link, root)),
        _ => Err(not_installed(device)),
    }
}

/// The link rate an installed sch_dwcs was given (its `rate` option).
pub(crate) fn qdisc_link_rate(root: &RootQdisc) -> Option<Rate> {
    DwcsQdiscOptions::parse(&root.options)
        .rate
        .filter(|&rate| rate > 0)
        .map(|rate| Rate::from_bits_per_second(rate.saturating_mul(8)))
}

/// A class's figures: the dwcs xstats where the kernel sent them, else the
/// generic counters every class has.
pub(crate) fn stats_of(info: &ClassInfo) -> SchedulerStats {
    match info.xstats.as_deref().and_then(TcDwcsXstats::parse) {
        Some(x) => class_stats(&x),
        None => generic_class_stats(info),
    }
}

fn class_stats(x: &TcDwcsXstats) -> SchedulerStats {
    let counters = &x.counters;
    let mean = x
        .queue_delay_sum_ns
        .checked_div(counters.sent_packets)
        .unwrap_or(0);
    SchedulerStats {
        sent_packets: counters.sent_packets,
        sent_bytes: counters.sent_bytes,
        dropped: DropCounts {
            late: counters.drops_late,
            window: counters.drops_window,
            frame: counters.drops_frame,
            queue_full: counters.drops_queue_full,
        },
        deadline_misses: counters.deadline_misses,
        window_violations: counters.window_violations,
        queue_delay: Some(QueueDelay {
            mean: Duration::from_nanos(mean),
            max: Duration::from_nanos(x.queue_delay_max_ns),
        }),
        backlog_packets: x.backlog_packets,
        backlog_bytes: x.backlog_bytes,
        current_window: Some(WindowConstraint::new(x.x, x.y)),
    }
}

/// Best effort's share of the qdisc's xstats.
fn best_effort_stats(q: &TcDwcsQdiscXstats) -> SchedulerStats {
    SchedulerStats {
        sent_packets: q.be_sent_packets,
        sent_bytes: q.be_sent_bytes,
        dropped: DropCounts {
            queue_full: q.be_drops_queue_full,
            ..DropCounts::default()
        },
        backlog_packets: q.be_backlog_packets,
        ..SchedulerStats::default()
    }
}

/// Is `info` one of the stream classes of qsock's dwcs?
pub(crate) fn is_stream_class(info: &ClassInfo) -> bool {
    info.handle.major == QSOCK_MAJOR && info.handle.minor != 0 && info.kind == KIND
}

/// Creates a class for `options` at a free minor, held by this process,
/// once the streams whose owners are gone are removed.
fn create_stream_class(
    nl: &Netlink,
    link: &Link,
    records: &DeviceRecords,
    options: &DwcsClassOptions,
) -> Result<(TcHandle, ClassClaim)> {
    add_owned_class(
        nl,
        link,
        records,
        qdisc_handle(),
        FIRST_STREAM_MINOR..=LAST_STREAM_MINOR,
        KIND,
        &options.attribute(),
        is_stream_class,
        |_| Ok(()),
    )
}

/// What `classify` changed on a socket besides its priority, to undo it.
#[derive(Debug, Clone, Copy, Default)]
struct SocketState {
    /// The socket is UDP: per-packet values travel in SCM_TXTIME.
    datagram: bool,
    /// `IP_RECVERR` before attach, where qsock set it.
    recv_err_v4: Option<bool>,
    /// `IPV6_RECVERR` before attach, where qsock set it.
    recv_err_v6: Option<bool>,
}

impl SocketState {
    /// Whether qsock turned on the flag that the socket's own traffic reads
    /// (`IPV6_RECVERR` for an IPv6 socket): then the ICMP errors it queues
    /// are qsock's to keep from failing sends. Where the application had it
    /// on, they are the application's, as the kernel reports them.
    fn hides_icmp_errors(&self) -> bool {
        match (self.recv_err_v6, self.recv_err_v4) {
            (Some(before), _) => !before,
            (None, Some(before)) => !before,
            (None, None) => false,
        }
    }

    /// Puts `IP_RECVERR`/`IPV6_RECVERR` back as they were, and empties the
    /// error queue of what was queued while qsock had them on.
    fn restore(&self, socket: &Socket) {
        // Best effort: a failure leaves a flag on that only makes refusals visible.
        if let Some(on) = self.recv_err_v4 {
            let _ = sys::set_recv_err(socket.as_fd(), false, on);
        }
        if let Some(on) = self.recv_err_v6 {
            let _ = sys::set_recv_err(socket.as_fd(), true, on);
        }
        if self.hides_icmp_errors() {
            recv_err::discard_queued(socket);
        }
    }
}

/// Turns `IP_RECVERR` (or `IPV6_RECVERR`) on, remembering what it was.
fn enable_recv_err(socket: &Socket, ipv6: bool) -> Result<Option<bool>> {
    let before = sys::recv_err(socket.as_fd(), ipv6)
        .map_err(|err| Error::os("getsockopt(IP_RECVERR) failed", err))?;
    sys::set_recv_err(socket.as_fd(), ipv6, true)
        .map_err(|err| Error::os("setsockopt(IP_RECVERR) failed", err))?;
    Ok(Some(before))
}

/// Puts the socket in class `handle` and prepares it for per-packet values:
/// `SO_PRIORITY`, and for UDP `SO_TXTIME` on CLOCK_MONOTONIC and
/// `IP_RECVERR`. On failure, undoes what it did.
fn classify(socket: &Socket, handle: TcHandle, device: &str) -> Result<SocketState> {
    let mut state = SocketState {
        datagram: socket.r#type().is_ok_and(|t| t == Type::DGRAM),
        ..SocketState::default()
    };
    set_priority(socket, handle_to_u32(handle), device)?;
    let prepared = (|| -> Result<()> {
        if !state.datagram {
            // TCP's departure-time stamps are not deadlines; the qdisc
            // schedules the connection by its class alone.
            return Ok(());
        }
        sys::enable_txtime_monotonic(socket.as_fd())
            .map_err(|err| Error::os("setsockopt(SO_TXTIME, CLOCK_MONOTONIC) failed", err))?;
        if socket.domain().is_ok_and(|d| d == Domain::IPV6) {
            state.recv_err_v6 = enable_recv_err(socket, true)?;
            // IPv4-mapped traffic of a dual-stack socket takes the IPv4 path,
            // which reads IP_RECVERR; a v6-only socket may refuse it.
            state.recv_err_v4 = enable_recv_err(socket, false).unwrap_or(None);
        } else {
            state.recv_err_v4 = enable_recv_err(socket, false)?;
        }
        Ok(())
    })();
    if let Err(err) = prepared {
        state.restore(socket);
        let _ = set_priority(socket, 0, device);
        return Err(err);
    }
    Ok(state)
}

impl KernelScheduler for Dwcs {
    const NAME: SchedulerName = SchedulerName::Dwcs;
    const KIND: &'static str = KIND;
    const LABEL: &'static str = "dwcs";
    const CAPS_BEST_EFFORT: bool = false;

    /// `tc qdisc change` of the options `init` names that differ.
    fn update(&self, root: OurRoot<'_>, init: &InitParams) -> Result<Option<String>> {
        let current = DwcsQdiscOptions::parse(&root.qdisc.options);
        let Some(change) = changed_options(init, &current) else {
            return Ok(None);
        };
        qdisc::change_root(root.nl, root.link, KIND, change.attribute())?;
        Ok(Some(format!("now {}", describe_options(&change))))
    }

    fn no_link_rate(&self, device: &str) -> Error {
        // Without the module, that is the first thing to mend (and `auto`
        // must pass over dwcs, not stop at the rate); the kernel cannot be
        // asked without a rate. sch_dwcs is built out of tree, so loaded it
        // is always listed in /sys/module.
        if Path::new(MODULE_PATH).exists() {
            return speed_unknown(device);
        }
        module_missing(Error::new(
            ErrorKind::Os,
            format!(
                "{MODULE_PATH} is missing; {device} also needs a link rate, as it does not report \
                 its speed"
            ),
        ))
    }

    fn root_options(&self, init: &InitParams, rate: Rate) -> (TcAttribute, String) {
        let options = fresh_options(init, rate);
        (
            options.attribute(),
            format!("with {}", describe_options(&options)),
        )
    }

    fn root_refused(&self, err: Error) -> Error {
        module_missing(err)
    }

    /// `tc class add dev DEV parent 7173: classid 7173:N dwcs period T oln X
    /// old Y flags F`, then `SO_PRIORITY` = 7173:N, `SO_TXTIME` and `IP_RECVERR`.
    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>> {
        params.validate()?;
        let nl = Netlink::open()?;
        let (link, _) = installed(&nl, &params.device)?;
        let records = DeviceRecords::of(&link)?;
        let (class, claim, state) = match class_options(&params.stream) {
            Some(options) => {
                let created = create_stream_class(&nl, &link, &records, &options)?;
                let (handle, claim, state) =
                    classify_into_new_class(&nl, &link, created, |handle| {
                        classify(socket, handle, &link.name)
                    })?;
                (Some(handle), Some(claim), state)
            }
            None => (None, None, SocketState::default()),
        };
        Ok(Box::new(DwcsStream {
            netlink: Mutex::new(nl),
            link,
            class,
            records,
            claim,
            state,
            stream: params.stream,
        }))
    }

    /// `tc -s -d qdisc show` and `tc -s -d class show dev DEV`.
    fn fill_report(&self, root: OurRoot<'_>, report: &mut DeviceReport) -> Result<()> {
        report.link_rate = qdisc_link_rate(root.qdisc);
        report.best_effort = root
            .qdisc
            .xstats
            .as_deref()
            .and_then(TcDwcsQdiscXstats::parse)
            .map(|q| best_effort_stats(&q));
        let records = DeviceRecords::of(root.link)?;
        for info in class::list(root.nl, root.link)? {
            if is_stream_class(&info) {
                report
                    .streams
                    .push(kernel_stream_report(&records, &info, stats_of(&info)));
            }
        }
        Ok(())
    }

    /// `tc class del` of every stream class no live process holds.
    fn prune(&self, device: &str) -> Result<Vec<PrunedStream>> {
        let nl = Netlink::open()?;
        let (link, _) = installed(&nl, device)?;
        prune_unheld(&nl, &link, is_stream_class)
    }
}

/// One socket's stream: its class, or none for best-effort streams.
#[derive(Debug)]
struct DwcsStream {
    /// The stream's own rtnetlink connection, opened at attach: a netlink
    /// socket stays in the network namespace it was opened in, so later calls
    /// reach the right device from any thread.
    netlink: Mutex<Netlink>,
    link: Link,
    class: Option<TcHandle>,
    /// The device's records, in the namespace of the attach.
    records: DeviceRecords,
    /// This process's hold on the class.
    claim: Option<ClassClaim>,
    /// What attach changed on the socket.
    state: SocketState,
    stream: StreamParams,
}

impl DwcsStream {
    /// Takes the socket out of its class and deletes the class once drained:
    /// non-droppable packets must not be dropped with it.
    fn remove_class(&self, nl: &Netlink, socket: &Socket, handle: TcHandle) -> Result<()> {
        set_priority(socket, 0, &self.link.name)?;
        self.state.restore(socket);
        class::drain_and_delete(nl, &self.link, handle, |info| {
            stats_of(info).backlog_packets.max(info.stats.qlen)
        })
    }
}

/// Sends one frame on a socket of a dwcs stream: with each packet's
/// deadline and drop flag in `SCM_TXTIME` when the stream is `scheduled` (a
/// datagram socket in a class of its own), as they are otherwise.
/// `hides_icmp_errors`: qsock turned on the socket's `IP_RECVERR`, so the
/// ICMP errors it queues are qsock's to keep from failing sends.
pub(crate) fn send_scheduled(
    socket: &Socket,
    frame: &Frame<'_>,
    scheduled: bool,
    hides_icmp_errors: bool,
    device: &str,
) -> Result<usize> {
    let send_error = |err: std::io::Error| match err.raw_os_error() {
        Some(libc::ENOBUFS) => Error::new(
            ErrorKind::QueueFull,
            format!(
                "the dwcs queue on {device} is full and refused a non-droppable packet (ENOBUFS): \
                 nothing was dropped; send it again later"
            ),
        ),
        _ => Error::os("sendmmsg failed", err),
    };
    if !scheduled {
        return frame
            .send_without_values(
                socket,
                "dwcs-best-effort-flags",
                "per-packet deadlines and drop flags are ignored for best-effort streams (and \
                 stream sockets) on the dwcs scheduler: give the stream a period, or make it \
                 aperiodic, for its packets to be scheduled by deadline",
            )
            .map_err(send_error);
    }
    let Frame {
        packets,
        destination,
        flags,
    } = *frame;
    let txtimes: Vec<u64> = (0..packets.len())
        .map(|i| txtime_value(flags, i == 0 && flags.frame_start))
        .collect();
    let mut retried = false;
    let mut resend = |err: &std::io::Error| {
        hides_icmp_errors && recv_err::resend_after(socket, err, &mut retried)
    };
    let sent = if txtimes.iter().all(|&value| value == 0) {
        sys::send_datagrams_or_resend(socket.as_fd(), packets, destination, 0, &mut resend)
    } else {
        sys::send_datagrams_with_txtime(
            socket.as_fd(),
            packets,
            destination,
            &txtimes,
            0,
            &mut resend,
        )
    };
    sent.map_err(send_error)
}

impl Attachment for DwcsStream {
    /// `tc class change` with the new options; a class is created or deleted
    /// when the stream leaves or joins best effort.
    fn change(&mut self, socket: &Socket, stream: &StreamParams) -> Result<()> {
        stream.validate()?;
        let wanted = class_options(stream);
        let nl = self.netlink.lock();
        let link = &self.link;
        let (class, state) = match (self.class, wanted) {
            (Some(handle), Some(options)) => {
                let options = options.attribute();
                class::send(
                    &nl,
                    link,
                    ClassVerb::Change,
                    qdisc_handle(),
                    handle,
                    KIND,
                    options,
                )?;
                (Some(handle), self.state)
            }
            (None, Some(options)) => {
                let created = create_stream_class(&nl, link, &self.records, &options)?;
                let (handle, claim, state) =
                    classify_into_new_class(&nl, link, created, |handle| {
                        classify(socket, handle, &link.name)
                    })?;
                self.claim = Some(claim);
                (Some(handle), state)
            }
            (Some(handle), None) => {
                self.remove_class(&nl, socket, handle)?;
                if let Some(claim) = self.claim.take() {
                    claim.release();
                }
                (None, SocketState::default())
            }
            (None, None) => (None, self.state),
        };
        drop(nl);
        self.class = class;
        self.state = state;
        self.stream = *stream;
        Ok(())
    }

    /// `sendmmsg(2)` with one `SCM_TXTIME` cmsg per packet that has something
    /// to say: the deadline and drop flag on every packet, frame start on the
    /// first only.
    fn send_frame(&self, socket: &Socket, frame: &Frame<'_>) -> Result<usize> {
        let scheduled = self.class.is_some() && self.state.datagram;
        send_scheduled(
            socket,
            frame,
            scheduled,
            self.state.hides_icmp_errors(),
            &self.link.name,
        )
    }

    /// The class's xstats; a best-effort stream reports the qdisc's FIFO.
    fn stats(&self) -> Result<SchedulerStats> {
        let link = &self.link;
        let nl = self.netlink.lock();
        let Some(handle) = self.class else {
            let root = qdisc::root(&nl, link)?
                .filter(|root| root.is_qsock(KIND))
                .ok_or_else(|| not_installed(&link.name))?;
            return Ok(root
                .xstats
                .as_deref()
                .and_then(TcDwcsQdiscXstats::parse)
                .map(|q| best_effort_stats(&q))
                .unwrap_or_default());
        };
        let info = class::get_attached(&nl, link, handle)?;
        Ok(stats_of(&info))
    }

    /// The root qdisc's rate option.
    fn link_rate(&self) -> Result<Option<Rate>> {
        let nl = self.netlink.lock();
        Ok(qdisc::root(&nl, &self.link)?
            .filter(|root| root.is_qsock(KIND))
            .and_then(|root| qdisc_link_rate(&root)))
    }

    /// Moves the socket back to best effort, lets the class's queue drain,
    /// then `tc class del`.
    fn detach(self: Box<Self>, socket: &Socket) -> Result<()> {
        let Some(handle) = self.class else {
            return Ok(());
        };
        let nl = self.netlink.lock();
        self.remove_class(&nl, socket, handle)?;
        if let Some(claim) = self.claim {
            claim.release();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
