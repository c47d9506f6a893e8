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

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockAddr;

/// Bytes the socket has not yet handed to the device (`ioctl(SIOCOUTQ)`;
/// libc names it by its alias `TIOCOUTQ`).
pub fn unsent_bytes(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut value: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points at a
    // live local of that type; the fd is borrowed, so it stays open for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut value) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Sends each buffer as one datagram in a single `sendmmsg(2)` call, to
/// `destination` or to the connected peer. Returns how many were sent, which is
/// fewer than given only when the socket would block or its buffer is full
/// after at least one was sent.
pub fn send_datagrams(
    socket: BorrowedFd<'_>,
    packets: &[&[u8]],
    destination: Option<&SockAddr>,
    flags: libc::c_int,
) -> io::Result<usize> {
    send_datagrams_or_resend(socket, packets, destination, flags, &mut |_| false)
}

/// Asked of a send that failed: whether the error said nothing about the
/// datagrams being sent, so that the same call is made again (see
/// `backend::recv_err`). It may act on the socket first, e.g. clear the error.
pub type Resend<'a> = &'a mut dyn FnMut(&io::Error) -> bool;

/// [`send_datagrams`], sending again whatever a failed call did not send
/// when `resend` says the error was not about it.
pub fn send_datagrams_or_resend(
    socket: BorrowedFd<'_>,
    packets: &[&[u8]],
    destination: Option<&SockAddr>,
    flags: libc::c_int,
    resend: Resend<'_>,
) -> io::Result<usize> {
    match packets {
        [] => return Ok(0),
        // One datagram: sendto(2), without building message headers.
        [packet] => return send_one(socket, packet, destination, flags, resend).map(|_| 1),
        _ => {}
    }
    send_messages(socket, packets, destination, &[], flags, resend)
}

/// Sends each buffer as one datagram in `sendmmsg(2)` calls, like
/// [`send_datagrams`], each with an `SCM_TXTIME` control message carrying
/// `txtimes[i]` (one value per packet); a value of 0 sends no control message
/// for that packet, which the kernel treats the same as a txtime of 0. The
/// socket must have `SO_TXTIME` enabled ([`enable_txtime_monotonic`]), or the
/// kernel refuses the control message with `EINVAL`. A failed call is made
/// again for what it did not send when `resend` says so.
pub fn send_datagrams_with_txtime(
    socket: BorrowedFd<'_>,
    packets: &[&[u8]],
    destination: Option<&SockAddr>,
    txtimes: &[u64],
    flags: libc::c_int,
    resend: Resend<'_>,
) -> io::Result<usize> {
    if txtimes.len() != packets.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one txtime per packet is needed",
        ));
    }
    let controls: Vec<Vec<u8>> = txtimes
        .iter()
        .map(|&value| {
            if value == 0 {
                Vec::new()
            } else {
                txtime_cmsg(value)
            }
        })
        .collect();
    let controls: Vec<&[u8]> = controls.iter().map(Vec::as_slice).collect();
    send_messages(socket, packets, destination, &controls, flags, resend)
}

/// `CMSG_ALIGN`: glibc aligns control messages to `size_t`.
const fn cmsg_align(len: usize) -> usize {
    let align = std::mem::size_of::<usize>();
    (len + align - 1) & !(align - 1)
}

/// `CMSG_LEN(len)`.
const fn cmsg_len(len: usize) -> usize {
    cmsg_align(std::mem::size_of::<libc::cmsghdr>()) + len
}

/// `CMSG_SPACE(len)`.
const fn cmsg_space(len: usize) -> usize {
    cmsg_align(std::mem::size_of::<libc::cmsghdr>()) + cmsg_align(len)
}

/// The bytes of one `SCM_TXTIME` control message carrying `value`: a
/// `cmsghdr` (SOL_SOCKET, SCM_TXTIME, CMSG_LEN(8)), the u64 at
/// `CMSG_DATA`, and padding to `CMSG_SPACE(8)`.
pub fn txtime_cmsg(value: u64) -> Vec<u8> {
    let mut buf = vec![0u8; cmsg_space(8)];
    let header = libc::cmsghdr {
        cmsg_len: cmsg_len(8) as _,
        cmsg_level: libc::SOL_SOCKET,
        cmsg_type: libc::SCM_TXTIME,
    };
    // SAFETY: `buf` holds CMSG_SPACE(8) bytes, more than a cmsghdr;
    // write_unaligned needs no alignment, and cmsghdr is plain integers. The
    // kernel copies control data into its own buffer, so the user buffer's
    // alignment does not matter to it either.
    unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast::<libc::cmsghdr>(), header) };
    let data = cmsg_align(std::mem::size_of::<libc::cmsghdr>());
    buf[data..data + 8].copy_from_slice(&value.to_ne_bytes());
    buf
}

/// `sendmmsg(2)` of `packets`, each with `controls[i]` as its control data
/// when `controls` is not empty (an empty entry sends none).
fn send_messages(
    socket: BorrowedFd<'_>,
    packets: &[&[u8]],
    destination: Option<&SockAddr>,
    controls: &[&[u8]],
    flags: libc::c_int,
    resend: Resend<'_>,
) -> io::Result<usize> {
    if packets.is_empty() {
        return Ok(0);
    }
    let mut iovecs: Vec<libc::iovec> = packets
        .iter()
        .map(|packet| libc::iovec {
            iov_base: packet.as_ptr() as *mut libc::c_void,
            iov_len: packet.len(),
        })
        .collect();
    let (name, name_len) = match destination {
        Some(address) => (address.as_ptr() as *mut libc::c_void, address.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .enumerate()
        .map(|(i, iovec)| {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid value
            // (null pointers, zero lengths) that the fields below complete.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_name = name;
            header.msg_hdr.msg_namelen = name_len;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            if let Some(control) = controls.get(i).filter(|c| !c.is_empty()) {
                header.msg_hdr.msg_control = control.as_ptr() as *mut libc::c_void;
                header.msg_hdr.msg_controllen = control.len() as _;
            }
            header
        })
        .collect();
    let mut sent = 0;
    while sent < headers.len() {
        let batch = &mut headers[sent..];
        let count = libc::c_uint::try_from(batch.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: every header points at an iovec in `iovecs`, at a packet
        // slice and at its control bytes, all alive until this function
        // returns; the destination address, when given, outlives the call;
        // the kernel only reads them and writes msg_len.
        let rc = unsafe { libc::sendmmsg(socket.as_raw_fd(), batch.as_mut_ptr(), count, flags) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                _ if resend(&err) => continue,
                _ if sent > 0 && is_pushback(&err) => return Ok(sent),
                _ => return Err(err),
            }
        }
        sent += usize::try_from(rc).unwrap_or(0);
    }
    Ok(sent)
}

/// Enables `SO_TXTIME` on `CLOCK_MONOTONIC` without flags
/// (`setsockopt(SOL_SOCKET, SO_TXTIME)`), so that `SCM_TXTIME` values reach
/// `skb->tstamp`. Needs no privilege on Linux 5.8 and later; it cannot be
/// turned off again, which is harmless: packets sent without the control
/// message carry no txtime.
pub fn enable_txtime_monotonic(socket: BorrowedFd<'_>) -> io::Result<()> {
    let config = libc::sock_txtime {
        clockid: libc::CLOCK_MONOTONIC,
        flags: 0,
    };
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::TxTime, &config)
        .map_err(io::Error::from)
}

/// Whether `IP_RECVERR` (`ipv6`: `IPV6_RECVERR`) is on (`getsockopt(2)`).
pub fn recv_err(socket: BorrowedFd<'_>, ipv6: bool) -> io::Result<bool> {
    use nix::sys::socket::{getsockopt, sockopt};
    if ipv6 {
        getsockopt(&socket, sockopt::Ipv6RecvErr)
    } else {
        getsockopt(&socket, sockopt::Ipv4RecvErr)
    }
    .map_err(io::Error::from)
}

/// Sets `IP_RECVERR` (`ipv6`: `IPV6_RECVERR`) (`setsockopt(2)`). With it, a
/// UDP send that the qdisc refuses fails with `ENOBUFS` instead of seeming to succeed.
pub fn set_recv_err(socket: BorrowedFd<'_>, ipv6: bool, on: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if ipv6 {
        setsockopt(&socket, sockopt::Ipv6RecvErr, &on)
    } else {
        setsockopt(&socket, sockopt::Ipv4RecvErr, &on)
    }
    .map_err(io::Error::from)
}

/// One entry of a socket's error queue, as `IP_RECVERR`/`IPV6_RECVERR` put it
/// there (`struct sock_extended_err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedError {
    /// Where the error came from: `SO_EE_ORIGIN_ICMP`, `SO_EE_ORIGIN_ICMP6`,
    /// `SO_EE_ORIGIN_LOCAL`...
    pub origin: u8,
    /// The errno the kernel made of it.
    pub errno: i32,
    /// The ICMP type, for ICMP origins.
    pub icmp_type: u8,
    /// The ICMP code, for ICMP origins.
    pub icmp_code: u8,
}

/// Takes every entry off the socket's error queue (`recvmsg(2)` with
/// `MSG_ERRQUEUE | MSG_DONTWAIT` until it is empty), oldest first. Dequeuing
/// the last ICMP entry also clears the socket's pending error (`SO_ERROR`),
/// which the kernel set from it.
pub fn take_queued_errors(socket: BorrowedFd<'_>) -> io::Result<Vec<QueuedError>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    let mut taken = Vec::new();
    loop {
        // The queued datagram's payload does not matter: a byte is enough,
        // and the kernel truncates the rest.
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut control = nix::cmsg_space!(
            libc::sock_extended_err,
            libc::sockaddr_in6,
            libc::sockaddr_in6
        );
        let message = match recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(message) => message,
            Err(nix::errno::Errno::EAGAIN) => return Ok(taken),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        };
        // A truncated control buffer cannot be read; the entry is gone either way.
        let Ok(cmsgs) = message.cmsgs() else {
            continue;
        };
        for cmsg in cmsgs {
            let extended = match cmsg {
                ControlMessageOwned::Ipv4RecvErr(extended, _)
                | ControlMessageOwned::Ipv6RecvErr(extended, _) => extended,
                _ => continue,
            };
            taken.push(QueuedError {
                origin: extended.ee_origin,
                errno: i32::try_from(extended.ee_errno).unwrap_or(i32::MAX),
                icmp_type: extended.ee_type,
                icmp_code: extended.ee_code,
            });
        }
    }
}

/// `sendto(2)` (or `send(2)` without a destination) of one datagram.
fn send_one(
    socket: BorrowedFd<'_>,
    packet: &[u8],
    destination: Option<&SockAddr>,
    flags: libc::c_int,
    resend: Resend<'_>,
) -> io::Result<usize> {
    let (name, name_len) = match destination {
        Some(address) => (address.as_ptr(), address.len()),
        None => (std::ptr::null(), 0),
    };
    loop {
        // SAFETY: the packet slice and the destination address are alive for
        // the call and only read by the kernel; a null address with length 0
        // is sendto's form of send.
        let rc = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                flags,
                name.cast(),
                name_len,
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted && !resend(&err) {
            return Err(err);
        }
    }
}

/// Is this the socket or the device pushing back, so that a retry later may succeed?
pub fn is_pushback(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS))
}

/// Waits until the socket can take more data or `timeout` passes (`poll(2)`).
pub fn wait_writable(socket: &impl AsRawFd, timeout: std::time::Duration) {
    let mut pollfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one pollfd, alive on the stack for the call; poll only writes revents.
    // The result does not matter: the caller retries its send either way.
    let _ = unsafe { libc::poll(&mut pollfd, 1, millis) };
}

/// Waits until the socket has an error to report (`POLLERR`: a pending error
/// or an entry on its error queue) or `timeout` passes (`poll(2)`); whether it has.
#[cfg(test)]
pub fn wait_error(socket: &impl AsRawFd, timeout: std::time::Duration) -> bool {
    let mut pollfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        // POLLERR is always reported; asking for nothing waits for it alone.
        events: 0,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one pollfd, alive on the stack for the call; poll only writes revents.
    let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
    ready > 0 && pollfd.revents & libc::POLLERR != 0
}

/// Puts the calling thread in the `SCHED_FIFO` real-time class at `priority`
/// (`sched_setscheduler(2)` on thread id 0, which is the caller). Needs
/// CAP_SYS_NICE or an `RLIMIT_RTPRIO` allowance.
pub fn make_thread_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param on the stack for the duration of
    // the call; pid 0 names the calling thread, which exists.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// `SO_NETNS_COOKIE` (Linux 5.14, asm-generic value; libc does not name it).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the network namespace the socket belongs to
/// (`getsockopt(SOL_SOCKET, SO_NETNS_COOKIE)`): unique for as long as the
/// system runs, where a namespace's inode is reused once it is gone.
pub fn netns_cookie(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes (8) through the pointer,
    // which points at a live local u64, and the new length through `len`;
    // the fd is borrowed, so it stays open for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// Takes ownership of a descriptor the kernel has just installed in this
/// process for a received `SCM_RIGHTS` message, so that it is closed when
/// dropped.
pub fn own_received_fd(raw: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel installed `raw` in this process for the message just
    // received and nothing else refers to it; the caller is its only owner.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) }
}

/// A socket's address family, type and protocol (`getsockopt` of
/// `SO_DOMAIN`, `SO_TYPE` and `SO_PROTOCOL`); an error (`ENOTSOCK`) for a
/// descriptor that is not a socket.
pub fn socket_identity(socket: BorrowedFd<'_>) -> io::Result<(i32, i32, i32)> {
    let read = |option: libc::c_int| -> io::Result<i32> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes (one c_int) through
        // the pointer, which points at a live local c_int, and the length
        // through `len`; the fd is borrowed, so it stays open for the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    };
    Ok((
        read(libc::SO_DOMAIN)?,
        read(libc::SO_TYPE)?,
        read(libc::SO_PROTOCOL)?,
    ))
}

/// Whether this thread's effective capability set holds CAP_NET_ADMIN
/// (`capget(2)`): one system call, cheap enough to ask before every
/// `qsocket`, and right after a privilege drop, which a cached answer would
/// not be.
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget reads the header and, for version 3, writes two Data
    // records (64-bit sets split in two 32-bit halves); both pointers point
    // at live locals of exactly those layouts.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    rc == 0 && data[0].effective & (1 << CAP_NET_ADMIN) != 0
}
