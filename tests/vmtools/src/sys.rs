//! Every `unsafe` call of the tool: socket options and sendmsg with a
//! SCM_TXTIME control message. Each function returns `io::Result`; a raw -1
//! becomes `io::Error::last_os_error()`.

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed; the kernel only
    // reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// setsockopt(SO_RCVTIMEO): a blocking receive on `fd` fails after `t`.
pub fn set_recv_timeout(fd: &impl AsRawFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// setsockopt(SO_PRIORITY): the class handle sch_dwcs classifies by.
pub fn set_priority(s: &UdpSocket, prio: u32) -> io::Result<()> {
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PRIORITY, &prio)
}

/// setsockopt(SO_SNDBUFFORCE): lets one socket keep `bytes` queued in the
/// qdisc (needs CAP_NET_ADMIN).
pub fn set_sndbuf_force(s: &UdpSocket, bytes: i32) -> io::Result<()> {
    setsockopt(
        s.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        &bytes,
    )
}

/// setsockopt(SO_TXTIME) on CLOCK_MONOTONIC, as qsock's sockets do.
pub fn enable_txtime(s: &UdpSocket) -> io::Result<()> {
    let cfg = libc::sock_txtime {
        clockid: libc::CLOCK_MONOTONIC,
        flags: 0,
    };
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TXTIME, &cfg)
}

/// CLOCK_MONOTONIC in ns (clock_gettime), the clock of SCM_TXTIME values.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// sendmsg() of `buf` on a connected socket with a SCM_TXTIME of `txtime`.
pub fn send_with_txtime(s: &UdpSocket, buf: &[u8], txtime: u64) -> io::Result<usize> {
    // Room for one cmsg carrying a u64, aligned as cmsghdr needs.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid (no name, no iov, no control).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<u64>() as u32) } as usize;
    // SAFETY: msg_control points to `control`, which is larger than
    // msg_controllen, so CMSG_FIRSTHDR returns a header inside it and
    // CMSG_DATA a u64-sized slot after it; the kernel only reads `buf`.
    let rc = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_TXTIME;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u64>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u64>(), txtime);
        libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_DONTWAIT)
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// if_nametoindex(3).
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c =
        std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx as i32)
    }
}
