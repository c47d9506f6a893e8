//! `IP_RECVERR` for the qdisc's refusals, without what it does to ICMP errors.
//!
//! With `IP_RECVERR` (or `IPV6_RECVERR`) on, a UDP send that the qdisc
//! refuses fails with `ENOBUFS`, which the dwcs backend needs. The same flag
//! makes the kernel queue every ICMP error the socket draws and store it as
//! the socket's pending error even when the socket is not connected
//! (`__udp4_lib_err`, `__udp6_lib_err`), and the next send fails with it
//! without sending its datagram. A plain socket fails a send for an ICMP
//! error only when it is connected and the error is a hard one (port or
//! protocol unreachable, administratively prohibited, ...). So when a send
//! fails, the error queue is read: if the failure came from an ICMP error a
//! plain socket would not have been told of, the send is made again.

use std::io;
use std::os::fd::AsFd;

use socket2::Socket;

use crate::sys::{self, QueuedError};

/// ICMP types and codes, as `include/uapi/linux/icmp.h` and `icmpv6.h` number them.
mod icmp {
    pub const V4_DEST_UNREACH: u8 = 3;
    pub const V4_PARAMETERPROB: u8 = 12;
    pub const V6_DEST_UNREACH: u8 = 1;
    pub const V6_PKT_TOOBIG: u8 = 2;
    pub const V6_PARAMPROB: u8 = 4;
}

/// Whether the kernel counts an ICMP error as hard, i.e. fails a send of a
/// connected socket without `IP_RECVERR` with it: `icmp_err_convert[].fatal`
/// and the cases of `__udp4_lib_err`; `icmpv6_err_convert` and
/// `__udp6_lib_err`. A queued "fragmentation needed" or "packet too big" is
/// hard: the kernel queues it only when the socket does path MTU discovery,
/// and it is hard then.
pub(crate) fn is_hard(error: &QueuedError) -> bool {
    match (error.origin, error.icmp_type) {
        (libc::SO_EE_ORIGIN_ICMP, icmp::V4_DEST_UNREACH) => {
            // Network and host unreachable (0, 1), source route failed (5)
            // and the TOS variants (11, 12) are soft; so is any code past 15.
            matches!(error.icmp_code, 2..=4 | 6..=10 | 13..=15)
        }
        (libc::SO_EE_ORIGIN_ICMP, icmp::V4_PARAMETERPROB) => true,
        (libc::SO_EE_ORIGIN_ICMP6, icmp::V6_DEST_UNREACH) => {
            // No route (0), not a neighbour (2) and address unreachable (3)
            // are soft; the rest, and codes the kernel does not know, hard.
            !matches!(error.icmp_code, 0 | 2 | 3)
        }
        (libc::SO_EE_ORIGIN_ICMP6, icmp::V6_PKT_TOOBIG | icmp::V6_PARAMPROB) => true,
        _ => false,
    }
}

fn is_icmp(error: &QueuedError) -> bool {
    matches!(
        error.origin,
        libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
    )
}

/// The errors the kernel turns ICMP errors into (`icmp_err_convert`,
/// `icmpv6_err_convert`, parameter problems as `EPROTO`).
const ICMP_ERRNOS: [i32; 10] = [
    libc::ENETUNREACH,
    libc::EHOSTUNREACH,
    libc::ENOPROTOOPT,
    libc::ECONNREFUSED,
    libc::EMSGSIZE,
    libc::EOPNOTSUPP,
    libc::EHOSTDOWN,
    libc::ENONET,
    libc::EPROTO,
    libc::EACCES,
];

/// Whether a send on `socket` that failed with `failure` should be made
/// again: the failure was an ICMP error that a plain socket would not have
/// reported (any ICMP error on an unconnected socket; a soft one on a
/// connected socket). Empties the socket's error queue either way, so that
/// it neither holds on to receive memory nor leaves a pending error behind.
///
/// The error queue may have another reader: one that reads the socket's
/// transmit timestamps there (`SO_TIMESTAMPING`) takes the ICMP errors
/// queued among them. The send then fails for an error that is no longer
/// queued; a failure that an ICMP error could have caused and no queued one
/// explains is made once more (`retried` says whether it was), and a
/// failure of the send's own comes back. A connected socket is then not
/// told of a hard ICMP error that such a reader took.
pub(crate) fn resend_after(socket: &Socket, failure: &io::Error, retried: &mut bool) -> bool {
    // The qdisc's refusal and a full buffer come from the send itself.
    if sys::is_pushback(failure) {
        return false;
    }
    let Ok(queued) = sys::take_queued_errors(socket.as_fd()) else {
        return false;
    };
    let icmp: Vec<&QueuedError> = queued.iter().filter(|e| is_icmp(e)).collect();
    if !icmp
        .iter()
        .any(|error| Some(error.errno) == failure.raw_os_error())
    {
        let could_be_icmp = failure
            .raw_os_error()
            .is_some_and(|errno| ICMP_ERRNOS.contains(&errno));
        // Otherwise the failure is the send's own (no route, too big, not
        // permitted): it is reported as a plain socket reports it.
        return could_be_icmp && !std::mem::replace(retried, true);
    }
    let connected = socket.peer_addr().is_ok();
    !(connected && icmp.iter().any(|error| is_hard(error)))
}

/// Empties the socket's error queue, e.g. once `IP_RECVERR` is off again, so
/// that no error queued while it was on fails a later send.
pub(crate) fn discard_queued(socket: &Socket) {
    // Best effort: a socket whose queue cannot be read has nothing queued.
    let _ = sys::take_queued_errors(socket.as_fd());
}

#[cfg(test)]
mod tests;
