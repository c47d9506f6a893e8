//! `QSocket`: a socket whose traffic a scheduler backend orders and paces.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::backend::{self, Attachment, Frame};
use crate::error::{Error, ErrorKind, Result};
use crate::flags::PacketFlags;
use crate::info::QInfo;
use crate::notice;
use crate::params::{QosParams, Rate, SchedulerName};
use crate::sys;

/// A socket attached to a stream of a packet scheduler.
///
/// Created by [`QSocket::new`] (the paper's `qsocket`) or [`QSocket::attach`]
/// (`qattach`). Datagram sockets get everything: classification, per-packet
/// deadlines and drop flags, frame groups. Stream sockets (TCP) get
/// classification only: the scheduler paces the connection, but its bytes
/// have no packet boundaries to attach flags to.
pub struct QSocket {
    socket: Socket,
    params: QosParams,
    datagram: bool,
    /// The address family, which decides what a destination must look like.
    domain: Option<Domain>,
    attachment: Option<Box<dyn Attachment>>,
    last_sample: Mutex<RateSample>,
}

#[derive(Debug, Clone, Copy)]
struct RateSample {
    at_nanos: u64,
    sent_bytes: u64,
}

/// A failed [`QSocket::attach`]: the error, and the socket handed back unchanged.
#[derive(Debug)]
pub struct AttachError {
    /// Why the socket could not be attached.
    pub error: Error,
    /// The socket, as it was before the call.
    pub socket: Socket,
}

impl From<AttachError> for Error {
    fn from(failed: AttachError) -> Self {
        failed.error
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl QSocket {
    /// `qsocket`: creates a socket (`socket(2)`) and attaches it to a stream
    /// of `params.scheduler` on `params.device`.
    pub fn new(
        domain: Domain,
        ty: Type,
        protocol: Option<Protocol>,
        params: &QosParams,
    ) -> Result<Self> {
        params.validate()?;
        let socket = Socket::new(domain, ty, protocol)
            .map_err(|err| Error::os("cannot create the socket", err))?;
        QSocket::attach(socket, params).map_err(Error::from)
    }

    /// `qattach`: attaches an existing socket to a stream of
    /// `params.scheduler` on `params.device`. On failure the socket comes back
    /// unchanged inside the error.
    pub fn attach(socket: Socket, params: &QosParams) -> std::result::Result<Self, AttachError> {
        match QSocket::attach_inner(&socket, params) {
            Ok((attachment, resolved, datagram)) => {
                let sent_bytes = attachment.sent_bytes_at_attach().unwrap_or(0);
                let domain = socket.domain().ok();
                Ok(QSocket {
                    socket,
                    params: resolved,
                    datagram,
                    domain,
                    attachment: Some(attachment),
                    last_sample: Mutex::new(RateSample {
                        at_nanos: sys::monotonic_nanos(),
                        sent_bytes,
                    }),
                })
            }
            Err(error) => Err(AttachError { error, socket }),
        }
    }

    fn attach_inner(
        socket: &Socket,
        params: &QosParams,
    ) -> Result<(Box<dyn Attachment>, QosParams, bool)> {
        params.validate()?;
        let ty = socket
            .r#type()
            .map_err(|err| Error::os("the descriptor is not a usable socket", err))?;
        let datagram = ty == Type::DGRAM;
        if !datagram && ty != Type::STREAM {
            return Err(Error::new(
                ErrorKind::NotSupported,
                "only datagram (UDP) and stream (TCP) sockets can be attached",
            ));
        }
        let (attachment, scheduler) = backend::attach(socket, params)?;
        let resolved = QosParams {
            scheduler,
            ..params.clone()
        };
        Ok((attachment, resolved, datagram))
    }

    /// `qchange`: gives the stream new attributes. A different device or
    /// scheduler moves the socket to a new stream there.
    pub fn change(&mut self, params: &QosParams) -> Result<()> {
        params.validate()?;
        let same_place = params.device == self.params.device
            && (params.scheduler == self.params.scheduler
                || params.scheduler == SchedulerName::Auto);
        if same_place {
            let attachment = self.attachment.as_mut().ok_or_else(closed)?;
            attachment.change(&self.socket, &params.stream)?;
            self.params.stream = params.stream;
            return Ok(());
        }
        let (attachment, resolved, _) = QSocket::attach_inner(&self.socket, params)?;
        if let Some(old) = self.attachment.replace(attachment) {
            old.detach(&self.socket)?;
        }
        self.params = resolved;
        Ok(())
    }

    /// `qsend`: sends one datagram to the connected peer with `flags`.
    pub fn send(&self, packet: &[u8], flags: &PacketFlags) -> Result<usize> {
        self.send_to_address(packet, None, flags)
    }

    /// `qsendto`: sends one datagram to `destination` with `flags`.
    pub fn send_to(
        &self,
        packet: &[u8],
        destination: &SocketAddr,
        flags: &PacketFlags,
    ) -> Result<usize> {
        self.send_to_address(packet, Some(&SockAddr::from(*destination)), flags)
    }

    /// Sends one datagram to `destination` (or the connected peer) given as
    /// any socket address, as C's `qsendto` does.
    pub fn send_to_address(
        &self,
        packet: &[u8],
        destination: Option<&SockAddr>,
        flags: &PacketFlags,
    ) -> Result<usize> {
        let sent = self.send_packets_to(&[packet], destination, flags)?;
        if sent == 0 {
            return Err(Error::new(
                ErrorKind::QueueFull,
                "the socket or the scheduler queue is full (ENOBUFS): the packet was not taken and nothing was dropped; send it again later",
            ));
        }
        Ok(packet.len())
    }

    /// Sends every packet of one frame with one deadline and drop flag, in one
    /// system call where the backend allows (`sendmmsg(2)`). The first packet
    /// starts the frame. Returns how many packets were accepted: fewer than
    /// given only when the queue pushed back, and then the caller sends the
    /// rest with [`QSocket::continue_frame`] (nothing non-droppable is dropped).
    pub fn send_frame(
        &self,
        packets: &[&[u8]],
        destination: Option<&SocketAddr>,
        flags: &PacketFlags,
    ) -> Result<usize> {
        self.send_packets_to_ip(packets, destination, &flags.starting_frame())
    }

    /// Sends more packets of the frame the last [`QSocket::send_frame`]
    /// began (the rest it did not accept), with the same flags and deadline
    /// but no frame-start mark, so that the scheduler keeps them in that frame.
    pub fn continue_frame(
        &self,
        packets: &[&[u8]],
        destination: Option<&SocketAddr>,
        flags: &PacketFlags,
    ) -> Result<usize> {
        let flags = PacketFlags {
            frame_start: false,
            ..*flags
        };
        self.send_packets_to_ip(packets, destination, &flags)
    }

    fn send_packets_to_ip(
        &self,
        packets: &[&[u8]],
        destination: Option<&SocketAddr>,
        flags: &PacketFlags,
    ) -> Result<usize> {
        let destination = destination.map(|address| SockAddr::from(*address));
        self.send_packets_to(packets, destination.as_ref(), flags)
    }

    /// Sends `packets` with `flags` to `destination` (or the connected
    /// peer) given as any socket address; how many were accepted, as for
    /// [`QSocket::send_frame`]. The flags are used as given: the caller marks
    /// the frame start.
    pub fn send_packets_to(
        &self,
        packets: &[&[u8]],
        destination: Option<&SockAddr>,
        flags: &PacketFlags,
    ) -> Result<usize> {
        if !self.datagram {
            if *flags != PacketFlags::new() && *flags != PacketFlags::new().starting_frame() {
                notice::once(
                    "stream-socket-flags",
                    "per-packet flags are ignored on stream (TCP) sockets: their bytes have no \
                     packet boundaries; the scheduler still paces the connection",
                );
            }
            let mut sent = 0;
            for packet in packets {
                let written = self
                    .socket
                    .send(packet)
                    .map_err(|err| Error::os("send failed", err))?;
                if written < packet.len() {
                    return Err(Error::new(
                        ErrorKind::Os,
                        "a stream socket took part of the data: use write_all on socket() for bulk data",
                    ));
                }
                sent += 1;
            }
            return Ok(sent);
        }
        let destination = match destination {
            Some(address) => check_destination(self.domain, address)?,
            None => None,
        };
        for packet in packets {
            if packet.len() > 65_507 {
                return Err(Error::invalid(format!(
                    "a datagram of {} bytes is larger than UDP can carry (65507 bytes): split it",
                    packet.len()
                )));
            }
        }
        match self.attachment()?.send_frame(
            &self.socket,
            &Frame {
                packets,
                destination,
                flags,
            },
        ) {
            // Every backend reports push-back the same way: nothing accepted.
            Err(err) if err.kind() == ErrorKind::QueueFull => Ok(0),
            other => other,
        }
    }

    /// `qinfo`: how the scheduler is doing for this socket's stream, and what
    /// the socket itself holds.
    pub fn info(&self) -> Result<QInfo> {
        let attachment = self.attachment()?;
        let stats = attachment.stats()?;
        let link_rate = attachment.link_rate()?;
        let send_buffer_bytes =
            self.socket
                .send_buffer_size()
                .map_err(|err| Error::os("cannot read SO_SNDBUF", err))? as u64;
        let unsent_bytes = sys::unsent_bytes(self.socket.as_fd())
            .map_err(|err| Error::os("cannot read SIOCOUTQ", err))?;
        let now = sys::monotonic_nanos();
        let mut sample = self.last_sample.lock();
        let elapsed = now.saturating_sub(sample.at_nanos);
        let delivered_rate = Rate::of(
            stats.sent_bytes.saturating_sub(sample.sent_bytes),
            Duration::from_nanos(elapsed),
        );
        *sample = RateSample {
            at_nanos: now,
            sent_bytes: stats.sent_bytes,
        };
        Ok(QInfo {
            scheduler: self.params.scheduler,
            stats,
            delivered_rate,
            interval: Duration::from_nanos(elapsed),
            send_buffer_bytes,
            unsent_bytes,
            link_rate,
        })
    }

    /// `qclose`: removes the stream once its queued packets have left, then
    /// closes the socket.
    pub fn close(mut self) -> Result<()> {
        if let Some(attachment) = self.attachment.take() {
            attachment.detach(&self.socket)?;
        }
        Ok(())
    }

    /// The socket underneath, for `bind`, `connect`, `set_*` options or plain sends.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The backend scheduling this socket (never `Auto`: what `auto` chose).
    pub fn scheduler(&self) -> SchedulerName {
        self.params.scheduler
    }

    /// The SO_PRIORITY for the stream's own control traffic (its RTCP) that
    /// leaves ahead of every queue of the scheduler, where the scheduler has
    /// such a way (HTB's direct queue): a sender report that waits behind
    /// the stream's queue in the host measures that queue, not the path.
    /// `None` where the scheduler has none (dwcs) or none is needed (user,
    /// whose queue is in the process).
    pub fn control_priority(&self) -> Option<u32> {
        (self.params.scheduler == SchedulerName::Htb).then(crate::backend::htb::direct_priority)
    }

    /// The parameters in force.
    pub fn params(&self) -> &QosParams {
        &self.params
    }

    fn attachment(&self) -> Result<&dyn Attachment> {
        self.attachment.as_deref().ok_or_else(closed)
    }
}

/// The destination a UDP send goes to, checked as `udp_sendmsg` and
/// `udpv6_sendmsg` check it, so that every backend refuses what `sendto(2)`
/// refuses, with the same errno, before anything is queued: `None` where the
/// kernel takes the address to mean the connected peer (`AF_UNSPEC` on an
/// IPv6 socket).
fn check_destination(domain: Option<Domain>, address: &SockAddr) -> Result<Option<&SockAddr>> {
    const SOCKADDR_IN: usize = std::mem::size_of::<libc::sockaddr_in>();
    const SOCKADDR_IN6: usize = std::mem::size_of::<libc::sockaddr_in6>();
    let family = libc::c_int::from(address.family());
    let len = address.len() as usize;
    let refuse = |errno: i32, what: String| {
        Err(Error::os(
            format!("{what}: sendto(2) refuses it too, and nothing was sent"),
            std::io::Error::from_raw_os_error(errno),
        ))
    };
    let needed = match (domain, family) {
        (Some(Domain::IPV6), libc::AF_UNSPEC) => return Ok(None),
        (Some(Domain::IPV6), libc::AF_INET6) => SOCKADDR_IN6,
        (Some(Domain::IPV6), libc::AF_INET) => SOCKADDR_IN,
        (Some(Domain::IPV6), _) => {
            return refuse(
                libc::EINVAL,
                format!(
                    "the destination's address family ({family}) is neither AF_INET6 nor AF_INET, \
                     which an IPv6 socket can send to"
                ),
            )
        }
        (Some(Domain::IPV4), libc::AF_INET | libc::AF_UNSPEC) => SOCKADDR_IN,
        (Some(Domain::IPV4), _) => {
            if len < SOCKADDR_IN {
                return refuse(libc::EINVAL, short_address(len, family, SOCKADDR_IN));
            }
            return refuse(
                libc::EAFNOSUPPORT,
                format!(
                    "the destination's address family ({family}) is not AF_INET, which an IPv4 \
                     socket sends to: pass a struct sockaddr_in"
                ),
            );
        }
        // Not an IP socket: the kernel's own checks answer.
        _ => return Ok(Some(address)),
    };
    if len < needed {
        return refuse(libc::EINVAL, short_address(len, family, needed));
    }
    if address.as_socket().is_some_and(|a| a.port() == 0) {
        return refuse(
            libc::EINVAL,
            "the destination's port is 0, which no datagram can be sent to".to_owned(),
        );
    }
    Ok(Some(address))
}

fn short_address(len: usize, family: libc::c_int, needed: usize) -> String {
    let name = if needed == std::mem::size_of::<libc::sockaddr_in6>() {
        "sockaddr_in6"
    } else {
        "sockaddr_in"
    };
    format!(
        "an address length of {len} bytes is too short for the destination (family {family}): \
         pass sizeof(struct {name}), {needed} bytes"
    )
}

fn closed() -> Error {
    Error::new(ErrorKind::NotAttached, "the qsocket was already closed")
}

impl Drop for QSocket {
    fn drop(&mut self) {
        if let Some(attachment) = self.attachment.take() {
            if let Err(err) = attachment.detach(&self.socket) {
                notice::once("drop-detach", &format!("closing a qsocket: {err}"));
            }
        }
    }
}

impl fmt::Debug for QSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QSocket")
            .field("fd", &self.socket.as_raw_fd())
            .field("params", &self.params)
            .field("attachment", &self.attachment)
            .finish()
    }
}

impl AsFd for QSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for QSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
