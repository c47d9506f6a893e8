//! The one error type of the crate, and how it maps onto errno for the C ABI.

use std::io;

/// What kind of failure an [`Error`] is; each kind has one errno in the C ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad parameters or attributes (`EINVAL`).
    InvalidInput,
    /// The caller lacks a privilege, usually `CAP_NET_ADMIN` (`EPERM`).
    PermissionDenied,
    /// No network device by that name (`ENODEV`).
    NoDevice,
    /// The scheduler is unknown, not installed or cannot do what was asked (`EOPNOTSUPP`).
    NotSupported,
    /// Another queueing discipline owns the device (`EBUSY`).
    Busy,
    /// `qsockd` refused to admit the stream: the device's reservable share
    /// or the user's quota has no room for it (`EBUSY`). The message is the
    /// daemon's: what was asked, what is left, which setting grants more.
    AdmissionRefused,
    /// The scheduler's queue is full and the packet must not be dropped: retry later (`ENOBUFS`).
    QueueFull,
    /// The socket is not a qsocket, or was already closed (`EBADF`).
    NotAttached,
    /// Any other operating-system error, passed through with its errno.
    Os,
}

/// An error from a QSockets call: a kind, a sentence for a person, and the
/// operating-system error underneath when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<io::Error>,
}

/// The result type of every QSockets call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message that says what was wrong and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error wrapping an operating-system error, with context first.
    pub fn os(context: impl Into<String>, source: io::Error) -> Self {
        let kind = match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => ErrorKind::PermissionDenied,
            Some(libc::ENODEV) => ErrorKind::NoDevice,
            Some(libc::EBUSY) => ErrorKind::Busy,
            Some(libc::ENOBUFS) | Some(libc::EAGAIN) => ErrorKind::QueueFull,
            Some(libc::EINVAL) => ErrorKind::InvalidInput,
            Some(libc::EOPNOTSUPP) => ErrorKind::NotSupported,
            Some(libc::EBADF) | Some(libc::ENOTSOCK) => ErrorKind::NotAttached,
            _ => ErrorKind::Os,
        };
        Error {
            kind,
            message: format!("{}: {}", context.into(), source),
            source: Some(source),
        }
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The sentence for a person, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The errno the C ABI reports for this error.
    pub fn errno(&self) -> i32 {
        match self.kind {
            ErrorKind::InvalidInput => libc::EINVAL,
            ErrorKind::PermissionDenied => libc::EPERM,
            ErrorKind::NoDevice => libc::ENODEV,
            ErrorKind::NotSupported => libc::EOPNOTSUPP,
            ErrorKind::Busy | ErrorKind::AdmissionRefused => libc::EBUSY,
            ErrorKind::QueueFull => libc::ENOBUFS,
            ErrorKind::NotAttached => libc::EBADF,
            ErrorKind::Os => self
                .source
                .as_ref()
                .and_then(io::Error::raw_os_error)
                .unwrap_or(libc::EIO),
        }
    }

    /// The standard message for a call that needs `CAP_NET_ADMIN`.
    pub fn needs_net_admin(what: &str, device: &str) -> Self {
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{what} on {device} needs CAP_NET_ADMIN (run as root, or grant the capability with \
                 `setcap cap_net_admin+ep <program>`, or start qsockd, which sets streams up for \
                 callers without it when its socket, {}, exists); without it, use the `user` \
                 scheduler, which runs in the process and needs no privilege",
                crate::daemon::protocol::socket_path().display()
            ),
        )
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(io::Error::from_raw_os_error(err.errno()).kind(), err)
    }
}
