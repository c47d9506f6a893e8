//! Stream classes kept by `qsockd` on behalf of its clients.

use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{Error, ErrorKind, Result};

/// The transport of a socket a client passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP socket (IPv4 or IPv6).
    Udp,
    /// A TCP socket (IPv4 or IPv6).
    Tcp,
}

/// Checks that `socket` is a UDP or TCP socket of the daemon's own network
/// namespace (the one whose devices it manages); the error says what it is
/// instead.
pub fn check_client_socket(socket: BorrowedFd<'_>) -> Result<Transport> {
    let (domain, kind, protocol) = crate::sys::socket_identity(socket).map_err(|err| {
        let what = if err.raw_os_error() == Some(libc::ENOTSOCK) {
            "the descriptor passed is not a socket".to_owned()
        } else {
            format!("the descriptor passed cannot be inspected ({err})")
        };
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what}: pass the UDP or TCP socket whose traffic is to be scheduled"),
        )
    })?;
    let transport = match (domain, kind, protocol) {
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP) => Transport::Udp,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP) => Transport::Tcp,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the socket passed is of family {domain}, type {kind}, protocol {protocol}, \
                     not an IPv4/IPv6 UDP or TCP socket: only those are scheduled"
                ),
            ))
        }
    };
    let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)
        .map_err(|err| Error::os("cannot open a socket to find the network namespace", err))?;
    let ours = crate::sys::netns_cookie(probe.as_fd())
        .map_err(|err| Error::os("cannot read this network namespace's cookie", err))?;
    let theirs = crate::sys::netns_cookie(socket)
        .map_err(|err| Error::os("cannot read the socket's network namespace cookie", err))?;
    if ours != theirs {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the socket passed belongs to another network namespace than qsockd's: its traffic \
             cannot reach the devices qsockd schedules; run a qsockd in that namespace",
        ));
    }
    Ok(transport)
}
