//! Streams that `qsockd` sets up for a caller without CAP_NET_ADMIN: the
//! socket is passed to the daemon, which creates the class and sets the
//! socket's `SO_PRIORITY`; `qchange`, `qinfo` and `qclose` are requests on
//! the same connection. Sends never go through the daemon: the socket's
//! priority puts its packets in the class, and the per-packet values travel
//! in `SCM_TXTIME`, which needs no privilege.
//!
//! qsockd gives the stream's class its options just after answering the
//! attach; `qsocket` returns only after its next round trip (the first rate
//! sample, see `QSocket::attach`), which qsockd answers once that is done,
//! so the caller's first packets meet the stream's own class.
//!
//! When the daemon restarts, the connection closes and with it the stream's
//! class. Until the stream's next request notices, its packets keep the
//! priority of the class that is gone, which the root qdisc serves as best
//! effort; that request attaches the socket again on a new connection
//! (a new class, the same parameters), says so once, and goes on.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use socket2::{Domain, Socket, Type};

use super::{dwcs, Attachment, Frame, InitReport};
use crate::daemon::client::{self, Connection, Failure};
use crate::daemon::protocol::{Reply, Request, StreamId};
use crate::error::{Error, ErrorKind, Result};
use crate::info::SchedulerStats;
use crate::notice;
use crate::params::{InitParams, QosParams, Rate, SchedulerName, StreamKind, StreamParams};
use crate::sys;

/// A stream held by qsockd for this process.
#[derive(Debug)]
pub(crate) struct DelegatedStream {
    /// The connection it lives on and its number there.
    binding: Mutex<Binding>,
    /// What it was attached with, the scheduler resolved, the stream as
    /// last changed: what attaching it again asks for.
    params: QosParams,
    /// The same socket, to pass again after the daemon restarted.
    socket: Socket,
    /// The device's link rate, as the daemon last said it.
    link_rate: Mutex<Option<Rate>>,
    /// Whether the socket's `IP_RECVERR` (or `IPV6_RECVERR`) was off before
    /// the attach: the ICMP errors queued since are qsock's to keep from
    /// failing sends (dwcs turns it on).
    recv_err_was_off: bool,
}

#[derive(Debug)]
struct Binding {
    connection: Arc<Connection>,
    stream: StreamId,
}

/// `qsocket`/`qattach` through the daemon at `path`: the attachment and the
/// scheduler the daemon chose.
pub(crate) fn attach(
    path: &Path,
    socket: &Socket,
    params: &QosParams,
) -> Result<(Box<dyn Attachment>, SchedulerName)> {
    let recv_err_was_off = !recv_err_on(socket);
    let own = socket
        .try_clone()
        .map_err(|err| Error::os("cannot duplicate the socket for qsockd", err))?;
    let connection = client::shared(path)?;
    let (stream, scheduler, link_rate) =
        attach_on(&connection, socket, params).map_err(Failure::into_error)?;
    let params = QosParams {
        scheduler,
        ..params.clone()
    };
    Ok((
        Box::new(DelegatedStream {
            binding: Mutex::new(Binding { connection, stream }),
            params,
            socket: own,
            link_rate: Mutex::new(link_rate),
            recv_err_was_off,
        }),
        scheduler,
    ))
}

/// One `Attach` round trip: the stream's number, scheduler and link rate.
fn attach_on(
    connection: &Connection,
    socket: &Socket,
    params: &QosParams,
) -> std::result::Result<(StreamId, SchedulerName, Option<Rate>), Failure> {
    let request = Request::Attach {
        params: params.clone(),
    };
    match connection.call(&request, Some(socket.as_fd()))? {
        Reply::Attached {
            stream,
            scheduler,
            link_rate,
            ..
        } => Ok((stream, scheduler, link_rate)),
        other => Err(Failure::Refused(client::unexpected(&request, &other))),
    }
}

/// Whether the socket has its own traffic's `IP_RECVERR`/`IPV6_RECVERR` on.
fn recv_err_on(socket: &Socket) -> bool {
    let ipv6 = socket.domain().is_ok_and(|domain| domain == Domain::IPV6);
    sys::recv_err(socket.as_fd(), ipv6).unwrap_or(false)
}

impl DelegatedStream {
    /// One request about this stream. A connection found lost is replaced:
    /// the stream is attached again on a new one, then asked again.
    fn request(&self, make: impl Fn(StreamId) -> Request) -> Result<Reply> {
        let mut binding = self.binding.lock();
        let lost = match binding.connection.call(&make(binding.stream), None) {
            Ok(reply) => return Ok(reply),
            Err(Failure::Refused(err)) => return Err(err),
            Err(Failure::Lost(err)) => err,
        };
        let path = binding.connection.path().to_owned();
        let reattached = client::shared(&path).and_then(|connection| {
            let (stream, _, link_rate) =
                attach_on(&connection, &self.socket, &self.params).map_err(Failure::into_error)?;
            Ok((connection, stream, link_rate))
        });
        let (connection, stream, link_rate) = reattached.map_err(|err| {
            Error::new(
                err.kind(),
                format!(
                    "{lost}; attaching the stream again failed: {err}. Its packets go as best \
                     effort until it is attached again"
                ),
            )
        })?;
        notice::once(
            "qsockd-reattached",
            &format!(
                "{lost}; the {} stream on {} was attached again on a new connection, and so is \
                 every other stream when it next asks qsockd",
                self.params.scheduler, self.params.device
            ),
        );
        *binding = Binding { connection, stream };
        *self.link_rate.lock() = link_rate;
        binding
            .connection
            .call(&make(binding.stream), None)
            .map_err(Failure::into_error)
    }
}

impl Attachment for DelegatedStream {
    fn change(&mut self, _socket: &Socket, stream: &StreamParams) -> Result<()> {
        stream.validate()?;
        let request = |id| Request::Change {
            stream: id,
            params: *stream,
        };
        match self.request(request)? {
            Reply::Changed { .. } => {
                self.params.stream = *stream;
                Ok(())
            }
            other => Err(client::unexpected(&request(0), &other)),
        }
    }

    fn send_frame(&self, socket: &Socket, frame: &Frame<'_>) -> Result<usize> {
        match self.params.scheduler {
            SchedulerName::Dwcs => {
                let datagram = socket.r#type().is_ok_and(|ty| ty == Type::DGRAM);
                let scheduled = datagram && self.params.stream.kind != StreamKind::BestEffort;
                dwcs::send_scheduled(
                    socket,
                    frame,
                    scheduled,
                    self.recv_err_was_off,
                    &self.params.device,
                )
            }
            _ => frame
                .send_without_values(
                    socket,
                    "htb-deadline",
                    "the htb scheduler cannot honour per-packet deadlines or drop flags (nor \
                     loss windows): it only isolates each stream's rate; use the dwcs or user \
                     scheduler for deadlines",
                )
                .map_err(|err| Error::os("sendmmsg failed", err)),
        }
    }

    fn stats(&self) -> Result<SchedulerStats> {
        let request = |id| Request::Info { stream: id };
        match self.request(request)? {
            Reply::Info {
                stats, link_rate, ..
            } => {
                *self.link_rate.lock() = link_rate;
                Ok(stats)
            }
            other => Err(client::unexpected(&request(0), &other)),
        }
    }

    /// No round trip: the class qsockd gives a new stream has carried
    /// nothing of it yet. Asking would also make `qsocket` wait while qsockd
    /// finishes, after its answer, what the attach left it to do.
    fn sent_bytes_at_attach(&self) -> Result<u64> {
        Ok(0)
    }

    /// The rate the daemon gave with the last attach or figures: `qinfo`
    /// asks for the figures first, so it is never older than the call.
    fn link_rate(&self) -> Result<Option<Rate>> {
        Ok(*self.link_rate.lock())
    }

    /// `Close`; a stream whose connection is gone has no class left to
    /// remove.
    fn detach(self: Box<Self>, _socket: &Socket) -> Result<()> {
        let binding = self.binding.lock();
        let request = Request::Close {
            stream: binding.stream,
        };
        match binding.connection.call(&request, None) {
            Ok(Reply::Closed { .. }) | Err(Failure::Lost(_)) => Ok(()),
            Ok(other) => Err(client::unexpected(&request, &other)),
            Err(Failure::Refused(err)) => Err(err),
        }
    }
}

/// `qsockinit` from a caller without CAP_NET_ADMIN, for a kernel scheduler
/// (or `auto`): succeeds when the device already runs it, as qsockd (when
/// its socket exists) or the device's root qdisc says; qsockd's refusal is
/// `PermissionDenied` naming qsockd. `None` where neither runs it (and for
/// `auto` refused by qsockd): the caller goes on to install, which fails
/// for want of the privilege, or for `auto` ends at `user`.
pub(crate) fn init(init: &InitParams) -> Result<Option<InitReport>> {
    let device = &init.device;
    let wanted = init.scheduler;
    let Some(path) = client::route() else {
        return init_from_root_qdisc(init);
    };
    let request = Request::Init {
        device: device.clone(),
        scheduler: wanted,
        link_rate: init.link_rate,
    };
    let answer = client::shared(&path)
        .and_then(|connection| connection.call(&request, None).map_err(Failure::into_error));
    match answer {
        Ok(Reply::Initialized {
            scheduler,
            link_rate,
            ..
        }) => {
            let at = link_rate.map_or_else(String::new, |rate| format!(" at {rate}"));
            let mut reason = format!(
                "qsockd runs {scheduler} on {device}{at}; this caller lacks CAP_NET_ADMIN, so its \
                 qsockets are set up through qsockd ({})",
                path.display()
            );
            if let Some(asked) = init.link_rate.filter(|asked| Some(*asked) != link_rate) {
                reason.push_str(&format!(
                    "; the link rate asked for ({asked}) is not applied: qsockd's configuration \
                     sets it"
                ));
            }
            if let Some(asked) = init.best_effort_rate {
                reason.push_str(&format!(
                    "; the cap on best effort asked for ({asked}) is not applied: it would hold \
                     back every user's traffic on {device}, which only qsockd's administrator \
                     decides"
                ));
            }
            Ok(Some(InitReport {
                scheduler,
                device: device.clone(),
                installed_now: false,
                reason,
            }))
        }
        Ok(other) => Err(client::unexpected(&request, &other)),
        Err(_) if wanted == SchedulerName::Auto => Ok(None),
        Err(err) => match err.kind() {
            ErrorKind::NoDevice | ErrorKind::InvalidInput => Err(err),
            _ => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{err} (installing or replacing a scheduler needs CAP_NET_ADMIN, which \
                     qsockd keeps to itself: configure {device} with scheduler {wanted} in \
                     qsockd's configuration, or run as root)"
                ),
            )),
        },
    }
}

/// [`init`] without a daemon: the device's root qdisc decides. `None` when
/// it does not run the scheduler: the install is then tried, and says what
/// stops it (a device without a known speed, else the missing privilege,
/// naming qsockd).
fn init_from_root_qdisc(init: &InitParams) -> Result<Option<InitReport>> {
    let device = &init.device;
    let path = crate::daemon::protocol::socket_path();
    let kernel = [SchedulerName::Dwcs, SchedulerName::Htb];
    for name in kernel {
        if init.scheduler != SchedulerName::Auto && init.scheduler != name {
            continue;
        }
        let Some(backend) = super::by_name(name) else {
            continue;
        };
        if backend.is_installed(device)? {
            return Ok(Some(InitReport {
                scheduler: name,
                device: device.clone(),
                installed_now: false,
                reason: format!(
                    "{name} is already installed on {device}; this caller lacks CAP_NET_ADMIN \
                     and no qsockd listens at {}, so attaching sockets to it needs one of them",
                    path.display()
                ),
            }));
        }
    }
    Ok(None)
}
