//! The protocol between `qsockd` and its clients.
//!
//! # Framing
//!
//! One Unix socket of type `SOCK_SEQPACKET`: the kernel keeps message
//! boundaries, so every request and every reply is exactly one packet,
//! a JSON object of at most [`MAX_MESSAGE_BYTES`]. A longer packet is
//! refused (the receiver sees it truncated, `MSG_TRUNC`) and the connection
//! closed. `Attach` carries the socket to schedule as one `SCM_RIGHTS`
//! descriptor in the same packet; the daemon identifies the peer by
//! `SO_PEERCRED`, never by anything the client writes.
//!
//! # Conversation
//!
//! The client opens with [`Request::Hello`] naming [`PROTOCOL_VERSION`]; a
//! daemon speaking another version answers with an error and closes. Then
//! any number of requests follow, each answered by one [`Reply`], in order.
//! Streams are numbered per connection ([`StreamId`]) and live as long as the
//! connection: when it closes, for whatever reason, their classes go.
//!
//! # Why not an IPC library
//!
//! What has to cross is small (a handful of request kinds, a descriptor, the
//! peer's credentials), and the parts that matter, `SCM_RIGHTS` and
//! `SO_PEERCRED`, are Unix socket features that IPC libraries (D-Bus,
//! varlink, gRPC) either wrap in a bus and its policy files or do not carry
//! at all. A sequenced-packet socket with serde bodies needs no framing code,
//! no broker and no extra dependency on either side, and the C library can
//! speak it through the Rust core.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::socket::{
    connect, getsockopt, recvmsg, sendmsg, socket, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, UnixCredentials,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::info::SchedulerStats;
use crate::params::{QosParams, Rate, SchedulerName, StreamParams};

/// The version this build speaks; [`Request::Hello`] and [`Reply::Hello`]
/// carry it, and both sides refuse another.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest message either side sends or accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Where the daemon listens unless [`SOCKET_ENV`] names another path.
pub const DEFAULT_SOCKET: &str = "/run/qsock/qsockd.sock";

/// The environment variable naming the daemon's socket, for the daemon and
/// its clients alike.
pub const SOCKET_ENV: &str = "QSOCK_DAEMON_SOCKET";

/// The daemon's socket path: [`SOCKET_ENV`] when set and not empty, else
/// [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// A stream's number on its connection, given by the daemon at `Attach`.
pub type StreamId = u64;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Opens the conversation.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// `qsockinit` from a caller without privilege: answered with
    /// [`Reply::Initialized`] when the device already runs `scheduler`,
    /// else refused; the daemon never installs or replaces a scheduler for a
    /// client.
    Init {
        /// The device.
        device: String,
        /// The scheduler the caller wants.
        scheduler: SchedulerName,
        /// The link rate the caller would have given, for the reply to say
        /// whether the daemon's differs.
        link_rate: Option<Rate>,
    },
    /// `qsocket`/`qattach`: schedule the socket passed with this message
    /// (`SCM_RIGHTS`) as a stream with `params`.
    Attach {
        /// The device, scheduler and stream wanted.
        params: QosParams,
    },
    /// `qchange` of one of this connection's streams.
    Change {
        /// The stream.
        stream: StreamId,
        /// Its new attributes.
        params: StreamParams,
    },
    /// `qinfo` of one of this connection's streams.
    Info {
        /// The stream.
        stream: StreamId,
    },
    /// `qclose` of one of this connection's streams: its class is removed
    /// at once. The daemon keeps no client's socket, so a client that goes
    /// on sending from it sets its `SO_PRIORITY` back to 0 first (which
    /// needs no privilege), lest its packets name a class that is gone or
    /// later another stream's.
    Close {
        /// The stream.
        stream: StreamId,
    },
}

/// What the daemon answers, one per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The daemon speaks the client's version.
    Hello {
        /// The daemon's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// The device runs the scheduler asked for.
    Initialized {
        /// The device.
        device: String,
        /// Its scheduler.
        scheduler: SchedulerName,
        /// The link rate the daemon gave it.
        link_rate: Option<Rate>,
    },
    /// The socket is scheduled: its `SO_PRIORITY` is set to its class.
    Attached {
        /// The stream's number on this connection.
        stream: StreamId,
        /// The scheduler it runs under.
        scheduler: SchedulerName,
        /// Its class, as `tc` prints it (e.g. `7173:2`).
        class: String,
        /// The device's link rate.
        link_rate: Option<Rate>,
    },
    /// The stream's attributes were changed.
    Changed {
        /// The stream.
        stream: StreamId,
    },
    /// The stream's figures.
    Info {
        /// The stream.
        stream: StreamId,
        /// The scheduler it runs under.
        scheduler: SchedulerName,
        /// The scheduler's figures for it.
        stats: SchedulerStats,
        /// The device's link rate.
        link_rate: Option<Rate>,
    },
    /// The stream's class is gone.
    Closed {
        /// The stream.
        stream: StreamId,
    },
    /// The request was refused.
    Error(ReplyError),
}

/// Why a request was refused: a kind a client maps onto its own errors (and
/// errno), and a sentence saying what was asked, what is left and which
/// setting would grant more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// The kind.
    pub kind: ReplyErrorKind,
    /// The sentence for a person.
    pub message: String,
}

/// The kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyErrorKind {
    /// Bad parameters (`EINVAL`).
    InvalidInput,
    /// Not allowed: this user may not use the device, or the request needs
    /// the privilege qsockd keeps to itself (`EPERM`).
    PermissionDenied,
    /// No device by that name is served (`ENODEV`).
    NoDevice,
    /// The device does not run the scheduler asked for (`EOPNOTSUPP`).
    NotSupported,
    /// Admission refused: the device's share or the user's quota has no room
    /// for the stream (`EBUSY`).
    Busy,
    /// No such stream on this connection (`EBADF`).
    NotAttached,
    /// The message broke the protocol: not JSON of a known request, too
    /// long, another version, a descriptor where none belongs or none where
    /// one does. The daemon closes the connection after saying so (`EPROTO`).
    Protocol,
    /// The daemon failed at something of its own (`EIO`).
    Internal,
}

impl ReplyError {
    /// A refusal of `kind` saying `message`.
    pub fn new(kind: ReplyErrorKind, message: impl Into<String>) -> Self {
        ReplyError {
            kind,
            message: message.into(),
        }
    }

    /// The refusal as the crate's [`Error`].
    pub fn into_error(self) -> Error {
        let kind = match self.kind {
            ReplyErrorKind::InvalidInput | ReplyErrorKind::Protocol => ErrorKind::InvalidInput,
            ReplyErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            ReplyErrorKind::NoDevice => ErrorKind::NoDevice,
            ReplyErrorKind::NotSupported => ErrorKind::NotSupported,
            ReplyErrorKind::Busy => ErrorKind::Busy,
            ReplyErrorKind::NotAttached => ErrorKind::NotAttached,
            ReplyErrorKind::Internal => ErrorKind::Os,
        };
        Error::new(kind, format!("qsockd: {}", self.message))
    }
}

impl From<&Error> for ReplyError {
    fn from(err: &Error) -> Self {
        let kind = match err.kind() {
            ErrorKind::InvalidInput => ReplyErrorKind::InvalidInput,
            ErrorKind::PermissionDenied => ReplyErrorKind::PermissionDenied,
            ErrorKind::NoDevice => ReplyErrorKind::NoDevice,
            ErrorKind::NotSupported => ReplyErrorKind::NotSupported,
            ErrorKind::Busy | ErrorKind::QueueFull => ReplyErrorKind::Busy,
            ErrorKind::NotAttached => ReplyErrorKind::NotAttached,
            _ => ReplyErrorKind::Internal,
        };
        ReplyError::new(kind, err.message())
    }
}

/// One message as it came off the socket, not yet decoded.
#[derive(Debug)]
pub struct Frame {
    /// The message's bytes.
    pub bytes: Vec<u8>,
    /// The descriptors passed with it (`SCM_RIGHTS`), owned by the receiver.
    pub fds: Vec<OwnedFd>,
}

/// What receiving found instead of a message.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// The message was longer than [`MAX_MESSAGE_BYTES`].
    #[error("a message longer than {MAX_MESSAGE_BYTES} bytes")]
    Oversized,
    /// Nothing to read yet on a non-blocking socket.
    #[error("no message yet")]
    WouldBlock,
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens a connection to the daemon listening at `path` (a
/// `SOCK_SEQPACKET` socket, close-on-exec).
pub fn connect_to(path: &std::path::Path) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// Encodes `message` as one packet; an error when it would be longer than
/// [`MAX_MESSAGE_BYTES`].
pub fn encode(message: &impl Serialize) -> io::Result<Vec<u8>> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a qsockd message of {} bytes is longer than the {MAX_MESSAGE_BYTES} allowed",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Decodes one message's bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(bytes)
}

/// Sends `bytes` as one packet, with `fd` as `SCM_RIGHTS` when given.
/// `flags` may hold `MSG_DONTWAIT`; `MSG_NOSIGNAL` is always added, so a
/// peer that went away gives `EPIPE` instead of killing the sender.
pub fn send_frame(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
    flags: MsgFlags,
) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let raw = fd.map(|fd| [fd.as_raw_fd()]);
    let control: Vec<ControlMessage<'_>> = raw
        .as_ref()
        .map(|raw| vec![ControlMessage::ScmRights(raw)])
        .unwrap_or_default();
    loop {
        match sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &iov,
            &control,
            flags | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Sends `message` as one packet, with `fd` as `SCM_RIGHTS` when given
/// (blocking).
pub fn send_message(
    socket: BorrowedFd<'_>,
    message: &impl Serialize,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    send_frame(socket, &encode(message)?, fd, MsgFlags::empty())
}

/// Receives one packet and the descriptors passed with it (close-on-exec).
/// `flags` may hold `MSG_DONTWAIT`. Descriptors that came with an oversized
/// packet are closed.
pub fn recv_frame(socket: BorrowedFd<'_>, flags: MsgFlags) -> Result<Frame, RecvError> {
    RECEIVE_BUFFER.with_borrow_mut(|buffer| recv_frame_into(socket, flags, buffer))
}

std::thread_local! {
    /// Each thread's buffer for receiving: zeroed once, not per message.
    /// One byte more than allowed tells a message of exactly the limit from
    /// a longer one, besides MSG_TRUNC.
    static RECEIVE_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0u8; MAX_MESSAGE_BYTES + 1]);
}

/// [`recv_frame`] through `buffer`, which holds one byte more than the
/// longest message.
fn recv_frame_into(
    socket: BorrowedFd<'_>,
    flags: MsgFlags,
    buffer: &mut [u8],
) -> Result<Frame, RecvError> {
    let mut control = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (len, fds, truncated) = loop {
        let mut iov = [IoSliceMut::new(buffer)];
        match recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) => {
                let mut fds = Vec::new();
                if let Ok(cmsgs) = message.cmsgs() {
                    for cmsg in cmsgs {
                        if let ControlMessageOwned::ScmRights(raw) = cmsg {
                            fds.extend(raw.into_iter().map(crate::sys::own_received_fd));
                        }
                    }
                }
                let truncated = message
                    .flags
                    .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                break (message.bytes, fds, truncated);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Err(RecvError::WouldBlock),
            Err(errno) => return Err(RecvError::Io(errno.into())),
        }
    };
    if truncated || len > MAX_MESSAGE_BYTES {
        return Err(RecvError::Oversized);
    }
    if len == 0 && fds.is_empty() {
        // A sequenced-packet socket reads an empty packet at end of file.
        return Err(RecvError::Closed);
    }
    Ok(Frame {
        bytes: buffer[..len].to_vec(),
        fds,
    })
}

/// Sends `request` (with `fd` for `Attach`) and waits for its reply: the
/// blocking round trip a client makes.
pub fn call(
    socket: BorrowedFd<'_>,
    request: &Request,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<Reply> {
    send_message(socket, request, fd)?;
    let frame = recv_frame(socket, MsgFlags::empty()).map_err(|err| match err {
        RecvError::Io(err) => err,
        RecvError::Closed => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "qsockd closed the connection",
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, format!("qsockd sent {other}")),
    })?;
    decode(&frame.bytes).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("qsockd's reply is not one this client understands: {err}"),
        )
    })
}

/// Who is at the other end of a connection (`SO_PEERCRED`).
pub fn peer_credentials(socket: BorrowedFd<'_>) -> io::Result<UnixCredentials> {
    getsockopt(&socket, sockopt::PeerCredentials).map_err(io::Error::from)
}

#[cfg(test)]
mod tests;
