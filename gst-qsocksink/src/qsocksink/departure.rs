//! When each packet left the host: the kernel's software transmit
//! timestamp (`SO_TIMESTAMPING`, taken as the device's driver takes the
//! packet, after the host's scheduler let it go), read back from the
//! socket's error queue with the packet it belongs to. Counted from there,
//! a packet's one-way delay is the path's and the path's queues' alone; the
//! time between the hand-over to the socket and this departure is the
//! host's own queue, which `shape-link` holds on purpose.
//!
//! The error queue also carries ICMP errors where `IP_RECVERR` is on (the
//! dwcs backend sets it to see the qdisc's refusals): read here, they are
//! skipped, and the backend makes a send that such an error failed once
//! more, as it does for one it reads itself.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage, TimestampingFlag,
};

/// The largest packet read back: a jumbo frame's, with its headers.
const LARGEST_PACKET: usize = 9216 + 128;

/// Why the host's departure times are not read; the delay is then counted
/// from the hand-over to the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unavailable(pub String);

/// The stream's ports, by which a packet read back is found in what the
/// driver saw (link, network and UDP headers before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamPorts {
    source: u16,
    destination: u16,
}

/// Asks the kernel for a software timestamp of every packet `socket`
/// sends to `destination`, with the packet.
pub(super) fn enable(
    socket: &UdpSocket,
    destination: SocketAddr,
) -> Result<StreamPorts, Unavailable> {
    let source = socket
        .local_addr()
        .map_err(|err| Unavailable(format!("the socket has no local address: {err}")))?
        .port();
    let flags = TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE;
    setsockopt(socket, sockopt::Timestamping, &flags)
        .map_err(|err| Unavailable(format!("SO_TIMESTAMPING: {err}")))?;
    Ok(StreamPorts {
        source,
        destination: destination.port(),
    })
}

/// Reads what `socket`'s error queue holds and gives `departed` each of the
/// stream's packets (from its RTP header on) with when it left. Entries
/// that are not the stream's packets, or carry no timestamp (ICMP errors),
/// are dropped.
pub(super) fn take(
    socket: &UdpSocket,
    ports: StreamPorts,
    buffer: &mut Vec<u8>,
    mut departed: impl FnMut(&[u8], Instant),
) -> io::Result<()> {
    buffer.resize(LARGEST_PACKET, 0);
    loop {
        let (length, stamp) = {
            let mut iov = [IoSliceMut::new(buffer)];
            let mut control = nix::cmsg_space!(
                nix::sys::socket::Timestamps,
                nix::libc::sock_extended_err,
                nix::libc::sockaddr_in6
            );
            let message = match recvmsg::<SockaddrStorage>(
                socket.as_fd().as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => message,
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            };
            if message.flags.contains(MsgFlags::MSG_TRUNC) {
                continue;
            }
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampsns(stamps) => Some(stamps.system),
                    _ => None,
                })
            });
            (message.bytes, stamp)
        };
        let Some(stamp) = stamp else { continue };
        let Some(rtp) = udp_payload(&buffer[..length], ports) else {
            continue;
        };
        departed(rtp, departure_instant(stamp));
    }
}

/// The timestamp is on CLOCK_REALTIME; the stream's times are
/// [`Instant`]s (CLOCK_MONOTONIC). It was taken moments ago: its age on
/// the one clock is its age on the other.
fn departure_instant(stamp: nix::sys::time::TimeSpec) -> Instant {
    let stamped = Duration::new(
        u64::try_from(stamp.tv_sec()).unwrap_or(0),
        u32::try_from(stamp.tv_nsec()).unwrap_or(0),
    );
    let (now, realtime) = (Instant::now(), SystemTime::now());
    let age = realtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(Duration::ZERO, |since| since.saturating_sub(stamped));
    now.checked_sub(age).unwrap_or(now)
}

/// The UDP payload of `packet` as the driver saw it, whatever link and
/// network headers come before: the UDP header is where the stream's two
/// ports stand and its length field counts to the packet's end.
fn udp_payload(packet: &[u8], ports: StreamPorts) -> Option<&[u8]> {
    let source = ports.source.to_be_bytes();
    let destination = ports.destination.to_be_bytes();
    (0..=packet.len().checked_sub(8)?).find_map(|offset| {
        let header = &packet[offset..offset + 8];
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        (header[..2] == source && header[2..4] == destination && length == packet.len() - offset)
            .then(|| &packet[offset + 8..])
    })
}

#[cfg(test)]
mod tests;
