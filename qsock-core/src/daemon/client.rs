//! The client side of `qsockd`: one connection per process, opened on the
//! first call that needs the daemon and shared by every qsocket attached
//! through it.
//!
//! # One connection per process
//!
//! Every stream lives as long as the connection it was attached on, so the
//! connection is held (an [`Arc`]) by each stream attached through it and
//! closes when the last one closes: a process with no qsocket holds no
//! descriptor of the daemon's. While any stream lives, the next `qsocket`
//! reuses the connection, which makes its cost one round trip rather than a
//! connect, a `Hello` and a round trip, and the daemon counts one client per
//! process, not per socket. Requests on the connection are serialised: each
//! is a round trip, and sends never go through the daemon.
//!
//! A child made by `fork` inherits the descriptor but not the right to
//! talk on it (the parent's replies would cross with its own): a process
//! whose id is not the opener's opens its own connection.
//!
//! # A daemon that goes away
//!
//! When a round trip finds the connection closed (qsockd restarted or
//! ended), the connection is marked lost and the next caller opens a new
//! one; the stream whose request found it attaches itself again on the new
//! connection (see `backend::delegated`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::protocol::{self, Reply, ReplyError, ReplyErrorKind, Request, PROTOCOL_VERSION};
use crate::error::{Error, ErrorKind, Result};

/// Why a round trip did not return the daemon's answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection is gone (the daemon closed it, ended or restarted):
    /// every stream attached on it has lost its class with it.
    Lost(Error),
    /// The daemon answered with a refusal, or with something this client
    /// cannot read.
    Refused(Error),
}

impl Failure {
    /// The error, whichever way the call failed.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Lost(err) | Failure::Refused(err) => err,
        }
    }
}

/// One conversation with qsockd.
#[derive(Debug)]
pub(crate) struct Connection {
    socket: Mutex<OwnedFd>,
    path: PathBuf,
    opener: u32,
    lost: AtomicBool,
}

/// The process's connection, while any stream holds it.
fn shared_slot() -> &'static Mutex<Weak<Connection>> {
    static SHARED: OnceLock<Mutex<Weak<Connection>>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Weak::new()))
}

/// The daemon's socket path when this caller should go through qsockd: it
/// lacks CAP_NET_ADMIN and a socket exists at the path (the
/// `QSOCK_DAEMON_SOCKET` environment variable, else the default).
pub(crate) fn route() -> Option<PathBuf> {
    if crate::sys::has_net_admin() {
        return None;
    }
    let path = protocol::socket_path();
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(&path)
        .is_ok_and(|meta| meta.file_type().is_socket())
        .then_some(path)
}

/// The process's connection to the daemon at `path`: the one its streams
/// hold, else a new one.
pub(crate) fn shared(path: &Path) -> Result<Arc<Connection>> {
    let mut slot = shared_slot().lock();
    if let Some(existing) = slot.upgrade() {
        if existing.is_usable() && existing.path == path {
            return Ok(existing);
        }
    }
    let opened = Arc::new(Connection::open(path)?);
    *slot = Arc::downgrade(&opened);
    Ok(opened)
}

impl Connection {
    /// Connects and says `Hello`.
    fn open(path: &Path) -> Result<Connection> {
        let socket = protocol::connect_to(path).map_err(|err| {
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot reach qsockd at {} ({err}); this caller lacks CAP_NET_ADMIN, so \
                     kernel schedulers are set up through qsockd: start it (`systemctl start \
                     qsockd`, or `qsockd --foreground ...`), or run as root",
                    path.display()
                ),
            )
        })?;
        let connection = Connection {
            socket: Mutex::new(socket),
            path: path.to_owned(),
            opener: std::process::id(),
            lost: AtomicBool::new(false),
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
        };
        match connection.call(&hello, None) {
            Ok(Reply::Hello { version }) if version == PROTOCOL_VERSION => Ok(connection),
            Ok(other) => Err(unexpected(&hello, &other)),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Still connected, and this process's own.
    fn is_usable(&self) -> bool {
        !self.lost.load(Ordering::Acquire) && self.opener == std::process::id()
    }

    /// The daemon's socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One round trip: `request`, with `fd` passed along (`SCM_RIGHTS`)
    /// where given, and the daemon's answer; a refusal comes back as
    /// [`Failure::Refused`] with the daemon's words.
    pub(crate) fn call(
        &self,
        request: &Request,
        fd: Option<BorrowedFd<'_>>,
    ) -> std::result::Result<Reply, Failure> {
        if !self.is_usable() {
            return Err(Failure::Lost(self.lost_error("it was lost before")));
        }
        let socket = self.socket.lock();
        match protocol::call(socket.as_fd(), request, fd) {
            Ok(Reply::Error(refusal)) => Err(Failure::Refused(refusal_error(refusal))),
            Ok(reply) => Ok(reply),
            Err(err) if is_lost(&err) => {
                self.lost.store(true, Ordering::Release);
                Err(Failure::Lost(self.lost_error(&err.to_string())))
            }
            Err(err) => Err(Failure::Refused(Error::os(
                format!("talking to qsockd at {}", self.path.display()),
                err,
            ))),
        }
    }

    fn lost_error(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the connection to qsockd at {} is gone ({why}): qsockd ended or restarted, and \
                 the streams attached on that connection lost their classes with it",
                self.path.display()
            ),
        )
    }
}

/// Errors that mean the other end is gone, not that a request was bad.
fn is_lost(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as Io;
    matches!(
        err.kind(),
        Io::ConnectionReset | Io::BrokenPipe | Io::NotConnected | Io::ConnectionAborted
    )
}

/// The daemon's refusal as this crate's error: an admission refusal is its
/// own kind ([`ErrorKind::AdmissionRefused`], `EBUSY` in C), the rest keep
/// the protocol's mapping.
pub(crate) fn refusal_error(refusal: ReplyError) -> Error {
    if refusal.kind == ReplyErrorKind::Busy {
        return Error::new(
            ErrorKind::AdmissionRefused,
            format!("qsockd: {}", refusal.message),
        );
    }
    refusal.into_error()
}

/// A reply that does not answer the request: a daemon of another build.
pub(crate) fn unexpected(request: &Request, reply: &Reply) -> Error {
    Error::new(
        ErrorKind::Os,
        format!(
            "qsockd answered {reply:?} to {request:?}: the daemon and this library do not \
             speak the same protocol; install them from the same build"
        ),
    )
}
