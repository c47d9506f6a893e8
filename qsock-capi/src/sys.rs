//! The exported functions of `include/qsock.h`. Each turns the caller's
//! pointers into references or slices, the only unsafe code of the C ABI,
//! and hands over to the crate root, which does the work in safe code.
//!
//! The contract every function relies on is the header's: a pointer is NULL
//! or points at a live, properly aligned object of the declared type (or, for
//! buffers, at `len` readable bytes) for the duration of the call. NULL is
//! reported as EFAULT (EINVAL for `qos_params.attributes`), never dereferenced.

use std::ffi::{c_char, c_int, c_void};
use std::io;
use std::os::fd::{FromRawFd, RawFd};

use socket2::{SockAddr, SockAddrStorage, Socket};

use qsock::{Error, Result};

use crate::{call, null, packet_flags, q_dwcs_attr, qinfo, qos_params, qsock_init_attr};

/// Takes ownership of the application's descriptor for `qattach`; the caller
/// gives it back with `into_raw_fd` if attaching fails.
fn socket_from_fd(fd: RawFd) -> Result<Socket> {
    // from_raw_fd needs an open descriptor: check before claiming it.
    nix::sys::stat::fstat(fd).map_err(|errno| {
        Error::os(
            format!("descriptor {fd} is not open"),
            io::Error::from_raw_os_error(errno as i32),
        )
    })?;
    // SAFETY: fd is open (checked above) and not owned by any other qsock
    // object (qattach holds its lock and found no live registry entry). The
    // application hands ownership over; qattach returns it unclosed with
    // into_raw_fd when attaching fails.
    Ok(unsafe { Socket::from_raw_fd(fd) })
}

/// `*const T` as an optional reference.
///
/// # Safety
/// `pointer` is NULL or points at a live, aligned `T` that outlives `'a`.
unsafe fn optional<'a, T>(pointer: *const T) -> Option<&'a T> {
    // SAFETY: guaranteed by this function's contract.
    unsafe { pointer.as_ref() }
}

/// The `qos_params` and the `q_dwcs_attr` its `attributes` points at.
///
/// # Safety
/// `params` is NULL or a valid `qos_params` whose `attributes` is NULL or a
/// valid `q_dwcs_attr`.
unsafe fn stream_params<'a>(
    params: *const qos_params,
) -> Result<(&'a qos_params, Option<&'a q_dwcs_attr>)> {
    // SAFETY: the caller's contract.
    let params = unsafe { optional(params) }.ok_or_else(|| null("the qos_params pointer"))?;
    // SAFETY: for qsocket, qattach and qchange the header defines
    // `attributes` as NULL or a `struct q_dwcs_attr *`.
    let attributes = unsafe { optional(params.attributes.cast::<q_dwcs_attr>().cast_const()) };
    Ok((params, attributes))
}

/// `len` bytes at `buf`.
///
/// # Safety
/// `buf` is NULL or points at `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(buf: *const c_void, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if buf.is_null() {
        return Err(null("the buffer"));
    }
    if isize::try_from(len).is_err() {
        return Err(Error::invalid(format!(
            "a length of {len} bytes is impossible"
        )));
    }
    // SAFETY: buf is non-null and, by the contract, valid for len bytes; len
    // fits in isize (checked above).
    Ok(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })
}

/// The destination address, copied; NULL means the connected peer, as in sendto(2).
///
/// # Safety
/// `address` is NULL or points at `len` readable bytes.
unsafe fn destination(
    address: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Result<Option<SockAddr>> {
    if address.is_null() {
        return Ok(None);
    }
    let size = len as usize;
    if size < std::mem::size_of::<libc::sa_family_t>()
        || size > std::mem::size_of::<libc::sockaddr_storage>()
    {
        return Err(Error::invalid(format!(
            "an address length of {len} bytes is invalid: pass sizeof the sockaddr_in or \
             sockaddr_in6"
        )));
    }
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_storage is the type SockAddrStorage wraps.
    let raw: *mut libc::sockaddr_storage = unsafe { storage.view_as::<libc::sockaddr_storage>() };
    // SAFETY: the source has `size` readable bytes (contract); the target is a
    // sockaddr_storage, at least `size` bytes (checked); they cannot overlap,
    // as the target is a local.
    unsafe { std::ptr::copy_nonoverlapping(address.cast::<u8>(), raw.cast::<u8>(), size) };
    // SAFETY: storage is initialised: zeroed, then its first `len` bytes copied.
    Ok(Some(unsafe { SockAddr::new(storage, len) }))
}

/// `qsockinit`: installs the scheduler `params->name` on `params->dev`.
///
/// # Safety
/// See the module's contract; `attributes` is NULL or a `qsock_init_attr`.
#[no_mangle]
pub unsafe extern "C" fn qsockinit(params: *mut qos_params) -> c_int {
    call("qsockinit", -1, || {
        // SAFETY: the module's contract.
        let params = unsafe { optional(params.cast_const()) }
            .ok_or_else(|| null("the qos_params pointer"))?;
        // SAFETY: for qsockinit the header defines `attributes` as NULL or a
        // `struct qsock_init_attr *`.
        let attributes =
            unsafe { optional(params.attributes.cast::<qsock_init_attr>().cast_const()) };
        crate::qsockinit(params, attributes).map(|()| 0)
    })
}

/// `qsocket`: socket(2), then attached to a stream; the new descriptor.
///
/// # Safety
/// See the module's contract.
#[no_mangle]
pub unsafe extern "C" fn qsocket(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    params: *mut qos_params,
) -> c_int {
    call("qsocket", -1, || {
        // SAFETY: the module's contract.
        let (params, attributes) = unsafe { stream_params(params) }?;
        crate::qsocket(domain, ty, protocol, params, attributes)
    })
}

/// `qattach`: attaches an existing socket; on failure it is left untouched.
///
/// # Safety
/// See the module's contract.
#[no_mangle]
pub unsafe extern "C" fn qattach(fd: c_int, params: *mut qos_params) -> c_int {
    call("qattach", -1, || {
        // SAFETY: the module's contract.
        let (params, attributes) = unsafe { stream_params(params) }?;
        crate::qattach(fd, params, attributes, socket_from_fd).map(|()| 0)
    })
}

/// `qchange`: new attributes (or device, or scheduler) for the socket's stream.
///
/// # Safety
/// See the module's contract.
#[no_mangle]
pub unsafe extern "C" fn qchange(fd: c_int, params: *mut qos_params) -> c_int {
    call("qchange", -1, || {
        // SAFETY: the module's contract.
        let (params, attributes) = unsafe { stream_params(params) }?;
        crate::qchange(fd, params, attributes).map(|()| 0)
    })
}

/// `qsend`: one datagram to the connected peer.
///
/// # Safety
/// See the module's contract.
#[no_mangle]
pub unsafe extern "C" fn qsend(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    pflags: *const packet_flags,
) -> isize {
    call("qsend", -1, || {
        // SAFETY: the module's contract.
        let packet = unsafe { bytes(buf, len) }?;
        // SAFETY: the module's contract.
        let pflags = unsafe { optional(pflags) };
        crate::qsendto(fd, packet, flags, None, pflags)
    })
}

/// `qsendto`: one datagram to `dest`.
///
/// # Safety
/// See the module's contract.
#[no_mangle]
pub unsafe extern "C" fn qsendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    dest: *const libc::sockaddr,
    destlen: libc::socklen_t,
    pflags: *const packet_flags,
) -> isize {
    call("qsendto", -1, || {
        // SAFETY: the module's contract.
        let packet = unsafe { bytes(buf, len) }?;
        // SAFETY: the module's contract.
        let destination = unsafe { destination(dest, destlen) }?;
        // SAFETY: the module's contract.
        let pflags = unsafe { optional(pflags) };
        crate::qsendto(fd, packet, flags, destination.as_ref(), pflags)
    })
}

/// `qsendframe`: every packet of one frame, one deadline; packets accepted.
///
/// # Safety
/// See the module's contract; `packets` points at `count` iovecs, each of
/// which is valid for its length.
#[no_mangle]
pub unsafe extern "C" fn qsendframe(
    fd: c_int,
    packets: *const libc::iovec,
    count: usize,
    flags: c_int,
    dest: *const libc::sockaddr,
    destlen: libc::socklen_t,
    pflags: *const packet_flags,
) -> isize {
    call("qsendframe", -1, || {
        let iovecs: &[libc::iovec] = if count == 0 {
            &[]
        } else if packets.is_null() {
            return Err(null("the iovec array"));
        } else if count > isize::MAX as usize / std::mem::size_of::<libc::iovec>() {
            return Err(Error::invalid(format!("{count} packets are impossible")));
        } else {
            // SAFETY: non-null, and by the contract `count` live iovecs; the
            // total size fits in isize (checked above).
            unsafe { std::slice::from_raw_parts(packets, count) }
        };
        // SAFETY: the module's contract.
        let destination = unsafe { destination(dest, destlen) }?;
        // SAFETY: the module's contract.
        let pflags = unsafe { optional(pflags) };
        let packet = |index: usize| {
            let iovec = &iovecs[index];
            // SAFETY: each iovec is valid for its length (the contract).
            unsafe { bytes(iovec.iov_base.cast_const(), iovec.iov_len) }
        };
        crate::qsendframe(fd, count, packet, flags, destination.as_ref(), pflags)
    })
}

/// `qinfo`: fills `*info` with the stream's statistics.
///
/// # Safety
/// See the module's contract; `info` points at writable memory for a `qinfo`.
#[no_mangle]
pub unsafe extern "C" fn qinfo(fd: c_int, info: *mut qinfo) -> c_int {
    call("qinfo", -1, || {
        if info.is_null() {
            return Err(null("the qinfo pointer"));
        }
        let value = crate::qinfo_of(fd)?;
        // SAFETY: non-null and, by the contract, valid and aligned for a write
        // of a qinfo; write() does not read or drop the old contents.
        unsafe { info.write(value) };
        Ok(0)
    })
}

/// `qclose`: detaches the socket from its stream and closes it.
///
/// # Safety
/// None beyond close(2)'s: the descriptor must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn qclose(fd: c_int) -> c_int {
    call("qclose", -1, || crate::qclose(fd).map(|()| 0))
}

/// This thread's last failure message (empty if none).
#[no_mangle]
pub extern "C" fn qsock_last_error() -> *const c_char {
    crate::last_error()
}
