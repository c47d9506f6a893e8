//! The C ABI of qsock (`include/qsock.h`, built as `libqsock.so`), with the
//! paper's names. This file is the safe half: the C structs, their
//! conversion into the Rust types, the registry that maps a descriptor to its
//! [`QSocket`], and the per-thread error message. The exported functions,
//! which dereference the caller's pointers, are in `sys`, which calls into
//! this file and never the other way round.
//!
//! The header is written by hand; `tests::header_matches_rust` compiles it
//! against the sizes, offsets, constants and function types of this file and
//! `sys`, so the two cannot drift apart unnoticed.

#![deny(missing_docs)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Type};

use qsock::{
    Deadline, DropFlag, Error, ErrorKind, InitParams, PacketFlags, QInfo, QSocket, QosParams, Rate,
    Result, SchedulerName, StreamParams, WindowConstraint,
};
use socket2::Socket;

mod sys;

/// `IFNAMSIZ` of `<net/if.h>`: the size of every name field, NUL included.
pub(crate) const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// Never drop this packet / a lossless stream.
pub(crate) const DWCS_NON_DROPPABLE: u32 = 1;
/// May drop this packet when late / a lossy stream (the default).
pub(crate) const DWCS_DROPPABLE: u32 = 2;
/// A periodic stream may send ahead of its period when the link is idle.
pub(crate) const DWCS_WORK_CONSERVING: u32 = 4;
/// No period: every packet carries its own deadline.
pub(crate) const DWCS_APERIODIC: u32 = 8;
/// No deadlines at all: the scheduler's best-effort FIFO.
pub(crate) const DWCS_BEST_EFFORT: u32 = 16;
/// Every stream flag this version knows; any other bit is refused.
const DWCS_STREAM_FLAGS: u32 =
    DWCS_NON_DROPPABLE | DWCS_DROPPABLE | DWCS_WORK_CONSERVING | DWCS_APERIODIC | DWCS_BEST_EFFORT;

/// Declares a struct of `include/qsock.h` under its C name, `#[repr(C)]`,
/// with its field table (name, offset, size), from which
/// `tests::header_matches_rust` checks the header's layout field by field.
macro_rules! c_struct {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[allow(non_camel_case_types)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)*
        }

        impl $name {
            /// Every field: name, offset and size.
            #[cfg(test)]
            pub(crate) const FIELDS: &'static [(&'static str, usize, usize)] = &[
                $((stringify!($field), std::mem::offset_of!($name, $field), std::mem::size_of::<$ty>()),)*
            ];
        }
    };
}

c_struct! {
    /// `struct qos_params`: device, scheduler name and the attributes.
    #[derive(Debug)]
    qos_params {
        dev: [c_char; IFNAMSIZ],
        name: [c_char; IFNAMSIZ],
        attributes: *mut c_void,
    }
}

c_struct! {
    /// `struct q_dwcs_attr`: a stream's attributes (`ipg` in microseconds).
    #[derive(Debug, Clone, Copy)]
    q_dwcs_attr {
        oln: u32,
        old: u32,
        ipg: u32,
        stream_flags: u32,
    }
}

c_struct! {
    /// `struct qsock_init_attr`: what `qsockinit` takes in `attributes`.
    #[derive(Debug, Clone, Copy)]
    qsock_init_attr {
        rate: u64,
        limit: u32,
        best_effort_kbit: u32,
    }
}

c_struct! {
    /// `struct packet_flags`: exactly the paper's two fields (see the header).
    #[derive(Debug, Clone, Copy)]
    packet_flags {
        drop_flag: u32,
        deadline: u64,
    }
}

c_struct! {
    /// `struct qinfo`: [`QInfo`] in fixed-width fields.
    #[derive(Debug, Clone, Copy)]
    qinfo {
        sent_packets: u64,
        sent_bytes: u64,
        dropped_packets: u64,
        dropped_late: u64,
        dropped_window: u64,
        dropped_frame: u64,
        dropped_queue_full: u64,
        deadline_misses: u64,
        window_violations: u64,
        delivered_rate_bps: u64,
        rate_interval_ns: u64,
        queue_delay_mean_ns: u64,
        queue_delay_max_ns: u64,
        backlog_packets: u64,
        backlog_bytes: u64,
        window_oln: u32,
        window_old: u32,
        send_buffer_bytes: u64,
        unsent_bytes: u64,
        scheduler: [c_char; IFNAMSIZ],
    }
}

/// `MSG_*` flags `qsend` accepts. Both are ignored: a qsocket's send hands
/// the packet to the scheduler and never waits for it (a full queue is
/// ENOBUFS), and qsock never raises SIGPIPE on datagram sockets.
const ACCEPTED_MSG_FLAGS: c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// Frames of up to this many packets are passed to the scheduler without
/// allocating.
const FRAME_ON_STACK: usize = 64;

// ---------------------------------------------------------------------------
// Errors: errno plus a per-thread message.

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` as this thread's last error and sets errno.
fn fail(function: &str, errno: i32, message: &str) {
    // An interior NUL would cut the message short in C; it cannot be meant.
    let text = format!("{function}: {message}").replace('\0', " ");
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    nix::errno::Errno::set_raw(errno);
}

/// This thread's last error message; empty before the first failure. The
/// pointer stays valid until the thread's next failing qsock call.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// Runs one exported call: its error becomes errno and the message, and a
/// panic (a bug in qsock) becomes EIO instead of unwinding into C.
pub(crate) fn call<T>(function: &str, failed: T, body: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            fail(function, err.errno(), err.message());
            failed
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            fail(
                function,
                libc::EIO,
                &format!("internal error in qsock ({what}); please report it"),
            );
            failed
        }
    }
}

/// A null pointer where the call needs one (`EFAULT`).
pub(crate) fn null(what: &str) -> Error {
    Error::os(
        format!("{what} is NULL"),
        io::Error::from_raw_os_error(libc::EFAULT),
    )
}

fn not_a_qsocket(fd: c_int) -> Error {
    Error::new(
        ErrorKind::NotAttached,
        format!(
            "descriptor {fd} is not a qsocket: create it with qsocket() or attach it with \
             qattach() first"
        ),
    )
}

// ---------------------------------------------------------------------------
// C structs into Rust types.

/// A name field: NUL-terminated within `IFNAMSIZ`, UTF-8.
fn c_name(field: &[c_char; IFNAMSIZ], what: &str) -> Result<String> {
    // c_char is i8 or u8 depending on the target; the bits are the same.
    let bytes = field.map(|c| c as u8);
    let end = bytes.iter().position(|&b| b == 0).ok_or_else(|| {
        Error::invalid(format!(
            "{what} is not NUL-terminated within IFNAMSIZ ({IFNAMSIZ}) bytes: names have at \
             most {} characters",
            IFNAMSIZ - 1
        ))
    })?;
    String::from_utf8(bytes[..end].to_vec())
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

fn scheduler_name(params: &qos_params) -> Result<SchedulerName> {
    c_name(&params.name, "qos_params.name")?.parse()
}

fn device_name(params: &qos_params) -> Result<String> {
    c_name(&params.dev, "qos_params.dev")
}

/// `qsockinit`'s parameters; `attributes` is NULL or a `qsock_init_attr`.
pub(crate) fn init_params(
    params: &qos_params,
    attributes: Option<&qsock_init_attr>,
) -> Result<InitParams> {
    let device = device_name(params)?;
    let scheduler = scheduler_name(params)?;
    let mut init = InitParams::new(device, scheduler);
    if let Some(attributes) = attributes {
        init.link_rate =
            (attributes.rate != 0).then(|| Rate::from_bits_per_second(attributes.rate));
        init.limit = (attributes.limit != 0).then_some(attributes.limit);
        init.best_effort_rate = (attributes.best_effort_kbit != 0)
            .then(|| Rate::from_bits_per_second(u64::from(attributes.best_effort_kbit) * 1000));
    }
    init.validate()?;
    Ok(init)
}

/// A stream's attributes from `struct q_dwcs_attr`.
pub(crate) fn stream_params(attributes: &q_dwcs_attr) -> Result<StreamParams> {
    let flags = attributes.stream_flags;
    if flags & !DWCS_STREAM_FLAGS != 0 {
        return Err(Error::invalid(format!(
            "q_dwcs_attr.stream_flags has unknown bits {:#x}: use only DWCS_NON_DROPPABLE, \
             DWCS_DROPPABLE, DWCS_WORK_CONSERVING, DWCS_APERIODIC and DWCS_BEST_EFFORT",
            flags & !DWCS_STREAM_FLAGS
        )));
    }
    if flags & DWCS_NON_DROPPABLE != 0 && flags & DWCS_DROPPABLE != 0 {
        return Err(Error::invalid(
            "q_dwcs_attr.stream_flags has both DWCS_NON_DROPPABLE and DWCS_DROPPABLE: choose one \
             (neither means droppable)",
        ));
    }
    if flags & DWCS_APERIODIC != 0 && flags & DWCS_BEST_EFFORT != 0 {
        return Err(Error::invalid(
            "q_dwcs_attr.stream_flags has both DWCS_APERIODIC and DWCS_BEST_EFFORT: choose one",
        ));
    }
    let window = WindowConstraint::new(attributes.oln, attributes.old);
    let mut stream = if flags & DWCS_BEST_EFFORT != 0 {
        StreamParams::best_effort()
    } else if flags & DWCS_APERIODIC != 0 {
        // ipg is ignored: an aperiodic stream's packets carry their deadlines.
        StreamParams::aperiodic()
    } else {
        let mut periodic = StreamParams::periodic(
            Duration::from_micros(u64::from(attributes.ipg)),
            window.oln,
            window.old,
        );
        periodic.work_conserving = flags & DWCS_WORK_CONSERVING != 0;
        periodic
    };
    stream.window = window;
    stream.droppable = flags & DWCS_NON_DROPPABLE == 0;
    stream.validate()
}

/// `qsocket`/`qattach`/`qchange` parameters; `attributes` is the
/// `q_dwcs_attr` that `params.attributes` points at.
pub(crate) fn qos(params: &qos_params, attributes: Option<&q_dwcs_attr>) -> Result<QosParams> {
    let device = device_name(params)?;
    let scheduler = scheduler_name(params)?;
    let attributes = attributes.ok_or_else(|| {
        Error::invalid(
            "qos_params.attributes is NULL: point it at a struct q_dwcs_attr with the stream's \
             oln, old, ipg and stream_flags",
        )
    })?;
    let qos = QosParams::new(device, scheduler, stream_params(attributes)?);
    qos.validate()?;
    Ok(qos)
}

/// Per-packet flags; NULL means the stream's defaults.
pub(crate) fn flags(flags: Option<&packet_flags>) -> Result<PacketFlags> {
    let Some(flags) = flags else {
        return Ok(PacketFlags::new());
    };
    let drop = match flags.drop_flag {
        0 => DropFlag::StreamDefault,
        DWCS_NON_DROPPABLE => DropFlag::NonDroppable,
        DWCS_DROPPABLE => DropFlag::Droppable,
        other => {
            return Err(Error::invalid(format!(
                "packet_flags.drop_flag {other} is unknown: use 0 (the stream's default), \
                 DWCS_NON_DROPPABLE or DWCS_DROPPABLE"
            )))
        }
    };
    Ok(PacketFlags {
        drop,
        deadline: (flags.deadline != 0).then(|| Deadline::from_monotonic_nanos(flags.deadline)),
        frame_start: false,
    })
}

fn msg_flags(flags: c_int) -> Result<()> {
    if flags & !ACCEPTED_MSG_FLAGS != 0 {
        return Err(Error::invalid(format!(
            "send flags {:#x} are not supported on a qsocket: pass 0 (MSG_DONTWAIT and \
             MSG_NOSIGNAL are accepted and have no effect)",
            flags & !ACCEPTED_MSG_FLAGS
        )));
    }
    Ok(())
}

/// [`QInfo`] as `struct qinfo`.
pub(crate) fn info_to_c(info: &QInfo) -> qinfo {
    let stats = &info.stats;
    let mut scheduler = [0 as c_char; IFNAMSIZ];
    for (slot, byte) in scheduler
        .iter_mut()
        .zip(info.scheduler.as_str().bytes().take(IFNAMSIZ - 1))
    {
        *slot = byte as c_char;
    }
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
    qinfo {
        sent_packets: stats.sent_packets,
        sent_bytes: stats.sent_bytes,
        dropped_packets: stats.dropped.total(),
        dropped_late: stats.dropped.late,
        dropped_window: stats.dropped.window,
        dropped_frame: stats.dropped.frame,
        dropped_queue_full: stats.dropped.queue_full,
        deadline_misses: stats.deadline_misses,
        window_violations: stats.window_violations,
        delivered_rate_bps: info
            .delivered_rate
            .map_or(u64::MAX, |rate| rate.bits_per_second()),
        rate_interval_ns: nanos(info.interval),
        queue_delay_mean_ns: stats.queue_delay.map_or(u64::MAX, |d| nanos(d.mean)),
        queue_delay_max_ns: stats.queue_delay.map_or(u64::MAX, |d| nanos(d.max)),
        backlog_packets: stats.backlog_packets,
        backlog_bytes: stats.backlog_bytes,
        window_oln: stats.current_window.map_or(u32::MAX, |w| w.oln),
        window_old: stats.current_window.map_or(u32::MAX, |w| w.old),
        send_buffer_bytes: info.send_buffer_bytes,
        unsent_bytes: info.unsent_bytes,
        scheduler,
    }
}

// ---------------------------------------------------------------------------
// The registry: descriptor -> QSocket.

/// One registered qsocket. The socket sits behind its own lock so that sends
/// (read) run side by side, and `qchange`/`qclose` (write) wait for sends in
/// flight; the registry's lock is never held across a send.
#[derive(Debug)]
struct Slot {
    /// (st_dev, st_ino) of the socket, to tell it from a different socket
    /// that got the same number after the application closed this one with
    /// close(2) instead of qclose.
    identity: (u64, u64),
    socket: RwLock<Option<QSocket>>,
}

static REGISTRY: RwLock<BTreeMap<RawFd, Arc<Slot>>> = RwLock::new(BTreeMap::new());

/// Serialises `qattach`, so that two threads attaching the same descriptor
/// cannot both take ownership of it.
static ATTACHING: Mutex<()> = Mutex::new(());

fn identity(fd: RawFd) -> Result<(u64, u64)> {
    let stat = nix::sys::stat::fstat(fd).map_err(|errno| {
        Error::os(
            format!("descriptor {fd} is not open"),
            io::Error::from_raw_os_error(errno as i32),
        )
    })?;
    Ok((stat.st_dev, stat.st_ino))
}

fn slot(fd: RawFd) -> Result<Arc<Slot>> {
    REGISTRY
        .read()
        .get(&fd)
        .cloned()
        .ok_or_else(|| not_a_qsocket(fd))
}

/// Runs `body` with the qsocket behind `fd`, shared with other senders.
fn with_socket<T>(fd: RawFd, body: impl FnOnce(&QSocket) -> Result<T>) -> Result<T> {
    let slot = slot(fd)?;
    let guard = slot.socket.read();
    body(guard.as_ref().ok_or_else(|| not_a_qsocket(fd))?)
}

/// Forgets a stale entry: its socket was closed behind qsock's back and the
/// number now belongs to another. Nothing of it may be closed or detached
/// through the number, so its memory and its stream are leaked on purpose.
fn abandon(slot: Arc<Slot>) {
    let stale = slot.socket.write().take();
    if let Some(stale) = stale {
        std::mem::forget(stale);
    }
}

/// Adds an attached socket under its descriptor.
fn register(socket: QSocket) -> Result<RawFd> {
    let fd = socket.as_raw_fd();
    let slot = Arc::new(Slot {
        identity: identity(fd)?,
        socket: RwLock::new(Some(socket)),
    });
    let stale = REGISTRY.write().insert(fd, slot);
    if let Some(stale) = stale {
        abandon(stale);
    }
    Ok(fd)
}

/// Removes `fd`'s entry if it is stale; says whether a live one remains.
fn live_entry(fd: RawFd) -> Result<bool> {
    let Ok(existing) = slot(fd) else {
        return Ok(false);
    };
    if existing.identity == identity(fd)? {
        return Ok(true);
    }
    let mut registry = REGISTRY.write();
    if registry
        .get(&fd)
        .is_some_and(|current| Arc::ptr_eq(current, &existing))
    {
        registry.remove(&fd);
    }
    drop(registry);
    abandon(existing);
    Ok(false)
}

// ---------------------------------------------------------------------------
// The calls, once the pointers are references.

/// `qsockinit`.
pub(crate) fn qsockinit(params: &qos_params, attributes: Option<&qsock_init_attr>) -> Result<()> {
    qsock::qsockinit(&init_params(params, attributes)?).map(|_| ())
}

/// `qsocket`: a new socket, attached; its descriptor.
pub(crate) fn qsocket(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    params: &qos_params,
    attributes: Option<&q_dwcs_attr>,
) -> Result<c_int> {
    let qos = qos(params, attributes)?;
    let protocol = (protocol != 0).then(|| Protocol::from(protocol));
    let socket = QSocket::new(Domain::from(domain), Type::from(ty), protocol, &qos)?;
    register(socket)
}

/// `qattach`: attaches the caller's descriptor. On failure the descriptor
/// is left open and as it was.
/// `claim` takes ownership of the descriptor once no live entry holds it.
pub(crate) fn qattach(
    fd: c_int,
    params: &qos_params,
    attributes: Option<&q_dwcs_attr>,
    claim: impl FnOnce(RawFd) -> Result<Socket>,
) -> Result<()> {
    let qos = qos(params, attributes)?;
    if fd < 0 {
        return Err(Error::os(
            format!("descriptor {fd} is not valid"),
            io::Error::from_raw_os_error(libc::EBADF),
        ));
    }
    let _attaching = ATTACHING.lock();
    if live_entry(fd)? {
        return Err(Error::invalid(format!(
            "descriptor {fd} is already a qsocket: change its stream with qchange()"
        )));
    }
    let socket = claim(fd)?;
    match QSocket::attach(socket, &qos) {
        Ok(socket) => register(socket).map(|_| ()),
        Err(failed) => {
            // Hand the descriptor back to the application unclosed.
            let _ = failed.socket.into_raw_fd();
            Err(failed.error)
        }
    }
}

/// `qchange`.
pub(crate) fn qchange(
    fd: c_int,
    params: &qos_params,
    attributes: Option<&q_dwcs_attr>,
) -> Result<()> {
    let qos = qos(params, attributes)?;
    let slot = slot(fd)?;
    let mut guard = slot.socket.write();
    guard
        .as_mut()
        .ok_or_else(|| not_a_qsocket(fd))?
        .change(&qos)
}

/// `qsend`/`qsendto`: one datagram; its length.
pub(crate) fn qsendto(
    fd: c_int,
    packet: &[u8],
    flags: c_int,
    destination: Option<&SockAddr>,
    packet_flags: Option<&packet_flags>,
) -> Result<isize> {
    msg_flags(flags)?;
    let packet_flags = self::flags(packet_flags)?;
    with_socket(fd, |socket| {
        socket.send_to_address(packet, destination, &packet_flags)?;
        Ok(isize::try_from(packet.len()).unwrap_or(isize::MAX))
    })
}

/// `qsendframe`: the packets of one frame; how many were accepted.
/// `packet(i)` gives the i-th packet.
pub(crate) fn qsendframe<'a>(
    fd: c_int,
    count: usize,
    packet: impl Fn(usize) -> Result<&'a [u8]>,
    flags: c_int,
    destination: Option<&SockAddr>,
    packet_flags: Option<&packet_flags>,
) -> Result<isize> {
    msg_flags(flags)?;
    let first = self::flags(packet_flags)?.starting_frame();
    let rest = PacketFlags {
        frame_start: false,
        ..first
    };
    with_socket(fd, |socket| {
        let mut accepted = 0;
        let mut chunk: [&[u8]; FRAME_ON_STACK] = [&[]; FRAME_ON_STACK];
        while accepted < count {
            let len = (count - accepted).min(FRAME_ON_STACK);
            for (index, slot) in chunk[..len].iter_mut().enumerate() {
                *slot = packet(accepted + index)?;
            }
            let flags = if accepted == 0 { &first } else { &rest };
            let sent = socket.send_packets_to(&chunk[..len], destination, flags)?;
            accepted += sent;
            if sent < len {
                break;
            }
        }
        Ok(isize::try_from(accepted).unwrap_or(isize::MAX))
    })
}

/// `qinfo`.
pub(crate) fn qinfo_of(fd: c_int) -> Result<qinfo> {
    with_socket(fd, |socket| Ok(info_to_c(&socket.info()?)))
}

/// `qclose`: detaches and closes; a descriptor that is not a qsocket is left open.
pub(crate) fn qclose(fd: c_int) -> Result<()> {
    if !live_entry(fd)? {
        return Err(not_a_qsocket(fd));
    }
    let slot = REGISTRY
        .write()
        .remove(&fd)
        .ok_or_else(|| not_a_qsocket(fd))?;
    let socket = slot
        .socket
        .write()
        .take()
        .ok_or_else(|| not_a_qsocket(fd))?;
    // The descriptor is closed even when detaching fails, as close(2) does.
    socket.close()
}

#[cfg(test)]
mod tests;
