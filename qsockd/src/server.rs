//! The event loop: one thread, `epoll` over the listening socket and every
//! client, non-blocking in both directions, so that no client can hold up
//! another. A client's hangup (exit, crash, `kill -9`) is an event like a
//! request, and its classes go as soon as it is seen. Netlink work (giving
//! a prepared class its stream's options, preparing the next, removing,
//! reading figures) runs on the kernel worker's thread; a request whose
//! reply needs the kernel's answer is answered when its job is done, and
//! its client's next requests wait until then, so replies keep their order.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::MsgFlags;
use qsock::daemon::classes::{self, DeviceClasses, Reservation};
use qsock::daemon::protocol::{
    self, Frame, RecvError, Reply, ReplyError, ReplyErrorKind, Request, StreamId, PROTOCOL_VERSION,
};
use qsock::{QosParams, SchedulerName, StreamParams};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::clients::{Client, Stream};
use crate::config::Config;
use crate::devices::Device;
use crate::worker::{Finished, Job, Waiter, Waiting, Worker};

/// The listening socket's epoll token; clients get the numbers above it.
const LISTENER: u64 = 0;
/// The kernel worker's wake-up descriptor's epoll token.
const WORKER: u64 = u64::MAX;
/// Requests read from one client before the others' turn.
const REQUESTS_PER_TURN: usize = 16;
/// How often the devices are looked at (root qdisc, restart grace).
const TICK: Duration = Duration::from_secs(1);
/// Streams one connection may hold: each holds a class of the kernel's
/// 65534, whatever little it reserves.
const STREAMS_PER_CONNECTION: usize = 256;
/// Connections waiting to be accepted: a thousand clients starting at once
/// wait here instead of being refused.
const BACKLOG: i32 = 4096;

/// What to do with a connection after a request.
enum Flow {
    Continue,
    Close,
}

/// The daemon.
#[derive(Debug)]
pub struct Server {
    config: Config,
    devices: Vec<Device>,
    epoll: Epoll,
    listener: Socket,
    /// The listener is out of the epoll set while descriptors ran out.
    listener_paused: bool,
    clients: HashMap<u64, Client>,
    next_token: u64,
    worker: Worker,
    /// The cookie of qsockd's network namespace, which passed sockets must share.
    namespace: u64,
}

/// A refusal reply.
fn refusal(kind: ReplyErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error(ReplyError::new(kind, message))
}

/// A refusal from the library's error.
fn refused(err: &qsock::Error) -> Reply {
    Reply::Error(ReplyError::from(err))
}

/// Creates the listening socket at `path`: mode 0666 (each request is
/// checked by the peer's credentials), after removing a socket file no
/// daemon answers on; refuses to take over one that answers.
fn listen_at(path: &Path) -> Result<Socket, String> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    if path.exists() {
        if protocol::connect_to(path).is_ok() {
            return Err(format!(
                "another qsockd already serves {}: stop it first, or give this one another \
                 --socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|err| format!("cannot remove the stale socket {}: {err}", path.display()))?;
    }
    let address = SockAddr::unix(path)
        .map_err(|err| format!("cannot use {} as a socket path: {err}", path.display()))?;
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)
        .and_then(|socket| socket.bind(&address).map(|()| socket))
        .and_then(|socket| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
            socket.listen(BACKLOG)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .map_err(|err| format!("cannot listen on {}: {err}", path.display()))?;
    Ok(socket)
}

impl Server {
    /// Starts every configured device and listens on the configured socket.
    pub fn start(config: Config) -> Result<Server, String> {
        let devices = config
            .devices
            .iter()
            .map(|device| Device::start(device, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let namespace = classes::namespace_cookie().map_err(|err| err.to_string())?;
        let listener = listen_at(&config.socket)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|err| format!("cannot create an epoll instance: {err}"))?;
        epoll
            .add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))
            .map_err(|err| format!("cannot watch the listening socket: {err}"))?;
        let worker = Worker::start(devices.iter().map(|d| d.classes.clone()).collect())
            .map_err(|err| format!("cannot start the kernel worker thread: {err}"))?;
        epoll
            .add(
                worker.wake_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, WORKER),
            )
            .map_err(|err| format!("cannot watch the kernel worker: {err}"))?;
        log::info!(
            "listening on {} (protocol version {PROTOCOL_VERSION}) for {}",
            config.socket.display(),
            devices
                .iter()
                .map(|device| format!(
                    "{} ({} at {}, {:.0}% reservable)",
                    device.config.name,
                    device.config.scheduler,
                    device.link_rate,
                    device.config.reservable * 100.0
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Server {
            config,
            devices,
            epoll,
            listener,
            listener_paused: false,
            clients: HashMap::new(),
            next_token: LISTENER + 1,
            worker,
            namespace,
        })
    }

    /// Serves until the process is stopped.
    pub fn run(&mut self) -> ! {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut next_tick = Instant::now() + TICK;
        loop {
            let left = next_tick.saturating_duration_since(Instant::now());
            let timeout = EpollTimeout::try_from(left).unwrap_or(EpollTimeout::MAX);
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(err) => {
                    log::error!("epoll_wait failed: {err}");
                    0
                }
            };
            for event in &events[..ready] {
                match event.data() {
                    LISTENER => self.accept_all(),
                    WORKER => self.finish_jobs(),
                    token => self.client_event(token, event.events()),
                }
            }
            self.worker.start_held();
            let now = Instant::now();
            if now >= next_tick {
                for device in &mut self.devices {
                    device.tick(now);
                }
                next_tick = now + TICK;
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let socket = match self.listener.accept() {
                Ok((socket, _)) => socket,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        // The waiting connections stay in the backlog until a
                        // client leaves and frees a descriptor.
                        log::warn!(
                            "out of descriptors with {} clients connected ({err}): new \
                             connections wait until one leaves",
                            self.clients.len()
                        );
                        let _ = self.epoll.delete(&self.listener);
                        self.listener_paused = true;
                    } else {
                        log::warn!("accept failed: {err}");
                    }
                    return;
                }
            };
            let credentials = match protocol::peer_credentials(socket.as_fd()) {
                Ok(credentials) => credentials,
                Err(err) => {
                    log::warn!("a client's credentials cannot be read ({err}): dropped");
                    continue;
                }
            };
            if let Err(err) = socket.set_nonblocking(true) {
                log::warn!("cannot make a client's socket non-blocking ({err}): dropped");
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
            if let Err(err) = self.epoll.add(&socket, EpollEvent::new(flags, token)) {
                log::warn!("cannot watch a client's socket ({err}): dropped");
                continue;
            }
            let client = Client::new(
                socket,
                u32::try_from(credentials.pid()).unwrap_or(0),
                credentials.uid(),
                credentials.gid(),
            );
            self.clients.insert(token, client);
        }
    }

    fn client_event(&mut self, token: u64, flags: EpollFlags) {
        let Some(mut client) = self.clients.remove(&token) else {
            return;
        };
        if flags.contains(EpollFlags::EPOLLOUT) && client.flush() {
            self.watch(token, &client);
        }
        let mut flow = Flow::Continue;
        for _ in 0..REQUESTS_PER_TURN {
            if client.waiting > 0 {
                break;
            }
            match protocol::recv_frame(client.socket.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(frame) => {
                    flow = self.request(token, &mut client, frame);
                    if matches!(flow, Flow::Close) {
                        break;
                    }
                }
                Err(RecvError::WouldBlock) => break,
                Err(RecvError::Oversized) => {
                    self.protocol_error(
                        token,
                        &mut client,
                        format!(
                            "a request longer than {} bytes: qsockd reads no more than that",
                            protocol::MAX_MESSAGE_BYTES
                        ),
                    );
                    flow = Flow::Close;
                    break;
                }
                Err(RecvError::Closed) | Err(RecvError::Io(_)) => {
                    flow = Flow::Close;
                    break;
                }
            }
        }
        // A client waiting for a reply is not read from: its hangup is the
        // end of it.
        let hung_up = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            && !flags.contains(EpollFlags::EPOLLIN)
            || client.waiting > 0 && flags.contains(EpollFlags::EPOLLRDHUP);
        if matches!(flow, Flow::Continue) && hung_up {
            flow = Flow::Close;
        }
        match flow {
            Flow::Continue => {
                self.watch(token, &client);
                self.clients.insert(token, client);
            }
            Flow::Close => self.drop_client(client),
        }
    }

    /// Watches a client for requests unless it waits for a reply, and for
    /// room to write while replies wait in its outbox.
    fn watch(&self, token: u64, client: &Client) {
        let mut watch = EpollFlags::EPOLLRDHUP;
        if client.waiting == 0 {
            watch |= EpollFlags::EPOLLIN;
        }
        if !client.outbox_is_empty() {
            watch |= EpollFlags::EPOLLOUT;
        }
        let _ = self
            .epoll
            .modify(&client.socket, &mut EpollEvent::new(watch, token));
    }

    /// Answers the requests whose jobs the kernel worker finished.
    fn finish_jobs(&mut self) {
        for Finished { waiter, result } in self.worker.finished() {
            let Waiter {
                token,
                stream: id,
                request,
            } = waiter;
            // A client that left had its streams ended already.
            let Some(mut client) = self.clients.remove(&token) else {
                continue;
            };
            client.waiting = client.waiting.saturating_sub(1);
            let reply = match (request, result) {
                (Waiting::Close, _) => Reply::Closed { stream: id },
                (Waiting::Change { .. }, Ok(_)) => Reply::Changed { stream: id },
                (
                    Waiting::Change {
                        asked,
                        previous,
                        previous_params,
                    },
                    Err(refusal),
                ) => {
                    if let Some(stream) = client.streams.get_mut(&id) {
                        let ledger = &mut self.devices[stream.device].ledger;
                        ledger.release(client.uid, asked);
                        ledger.hold(client.uid, previous);
                        stream.reservation = previous;
                        stream.params = previous_params;
                    }
                    Reply::Error(refusal)
                }
                (Waiting::Info, Ok(stats)) => match client.streams.get(&id) {
                    Some(stream) => {
                        let device = &self.devices[stream.device];
                        Reply::Info {
                            stream: id,
                            scheduler: device.scheduler(),
                            stats: stats.unwrap_or_default(),
                            link_rate: Some(device.link_rate),
                        }
                    }
                    None => not_attached(id),
                },
                (Waiting::Info, Err(refusal)) => Reply::Error(refusal),
            };
            match self.reply(token, &mut client, &reply) {
                Flow::Continue => {
                    self.watch(token, &client);
                    self.clients.insert(token, client);
                }
                Flow::Close => self.drop_client(client),
            }
        }
    }

    /// Says what broke the protocol, then the caller closes the connection.
    fn protocol_error(&mut self, token: u64, client: &mut Client, message: String) {
        log::warn!(
            "client pid {} uid {}: {message}; connection closed",
            client.pid,
            client.uid
        );
        let _ = self.reply(token, client, &refusal(ReplyErrorKind::Protocol, message));
    }

    /// Sends or queues `reply`; `Close` when the client left too many
    /// replies unread.
    fn reply(&mut self, token: u64, client: &mut Client, reply: &Reply) -> Flow {
        let bytes = match protocol::encode(reply) {
            Ok(bytes) => bytes,
            Err(err) => {
                log::error!("cannot encode a reply: {err}");
                return Flow::Close;
            }
        };
        match client.queue(bytes) {
            Ok(false) => Flow::Continue,
            Ok(true) => {
                self.watch(token, client);
                Flow::Continue
            }
            Err(_) => {
                log::warn!(
                    "client pid {} uid {} left {} replies unread: dropped",
                    client.pid,
                    client.uid,
                    crate::clients::OUTBOX_LIMIT
                );
                Flow::Close
            }
        }
    }

    /// Removes a client's classes and closes its connection.
    fn drop_client(&mut self, mut client: Client) {
        let _ = self.epoll.delete(&client.socket);
        let streams = std::mem::take(&mut client.streams);
        let classes = streams
            .values()
            .filter(|stream| stream.class.is_some())
            .count();
        for stream in streams.into_values() {
            self.end_stream(&client, stream, "its client's connection closed", None);
        }
        if classes > 0 {
            log::info!(
                "client pid {} uid {} disconnected: its {classes} class(es) removed",
                client.pid,
                client.uid
            );
        }
        drop(client);
        if self.listener_paused {
            let event = EpollEvent::new(EpollFlags::EPOLLIN, LISTENER);
            if self.epoll.add(&self.listener, event).is_ok() {
                self.listener_paused = false;
            }
        }
    }

    /// Lets go of a stream's reservation and has its class removed; whether
    /// `waiter` waits for the removal (else it may be answered now).
    fn end_stream(
        &mut self,
        client: &Client,
        stream: Stream,
        why: &str,
        waiter: Option<Waiter>,
    ) -> bool {
        let device = &mut self.devices[stream.device];
        device.ledger.release(client.uid, stream.reservation);
        match stream.class {
            Some(class) => {
                let waits = waiter.is_some();
                self.worker.send(Job::Remove {
                    device: stream.device,
                    class,
                    why: why.to_owned(),
                    waiter,
                });
                waits
            }
            None => false,
        }
    }

    fn request(&mut self, token: u64, client: &mut Client, frame: Frame) -> Flow {
        let Frame { bytes, mut fds } = frame;
        let request: Request = match protocol::decode(&bytes) {
            Ok(request) => request,
            Err(err) => {
                self.protocol_error(
                    token,
                    client,
                    format!("the message is not a qsockd request of protocol version {PROTOCOL_VERSION}: {err}"),
                );
                return Flow::Close;
            }
        };
        let carries_fd = matches!(request, Request::Attach { .. } | Request::Change { .. });
        if fds.len() > usize::from(carries_fd) {
            let message = format!(
                "{} descriptor(s) came with a request that takes {}: pass one socket with \
                 Attach (or Change), nothing else",
                fds.len(),
                if carries_fd { "at most one" } else { "none" }
            );
            self.protocol_error(token, client, message);
            return Flow::Close;
        }
        let passed = fds.pop();
        if !client.greeted {
            let Request::Hello { version } = request else {
                self.protocol_error(
                    token,
                    client,
                    "the first request must be Hello with the protocol version".to_owned(),
                );
                return Flow::Close;
            };
            if version != PROTOCOL_VERSION {
                self.protocol_error(
                    token,
                    client,
                    format!(
                        "this qsockd speaks protocol version {PROTOCOL_VERSION}, the client \
                         version {version}: use a qsock library of the same release as qsockd"
                    ),
                );
                return Flow::Close;
            }
            client.greeted = true;
            return self.reply(
                token,
                client,
                &Reply::Hello {
                    version: PROTOCOL_VERSION,
                },
            );
        }
        let reply = match request {
            Request::Hello { .. } => {
                self.protocol_error(token, client, "Hello was sent twice".to_owned());
                return Flow::Close;
            }
            // The link rate asked for is not the caller's to set: the reply
            // carries the one qsockd keeps.
            Request::Init {
                device,
                scheduler,
                link_rate: _,
            } => Some(self.init(&device, scheduler)),
            Request::Attach { params } => {
                let Some(socket) = passed else {
                    self.protocol_error(
                        token,
                        client,
                        "Attach came without the socket to schedule: pass it with SCM_RIGHTS \
                         in the same message"
                            .to_owned(),
                    );
                    return Flow::Close;
                };
                Some(self.attach(client, &params, socket))
            }
            Request::Change { stream, params } => {
                self.change(token, client, stream, &params, passed)
            }
            Request::Info { stream } => self.info(token, client, stream),
            Request::Close { stream } => match client.streams.remove(&stream) {
                Some(entry) => {
                    let waiter = Waiter {
                        token,
                        stream,
                        request: Waiting::Close,
                    };
                    if self.end_stream(client, entry, "its client closed it", Some(waiter)) {
                        client.waiting += 1;
                        None
                    } else {
                        Some(Reply::Closed { stream })
                    }
                }
                None => Some(not_attached(stream)),
            },
        };
        match reply {
            Some(reply) => {
                let flow = self.reply(token, client, &reply);
                Server::record_owners(client);
                flow
            }
            // Answered when the kernel worker is done.
            None => Flow::Continue,
        }
    }

    fn device_index(&self, name: &str) -> Result<usize, ReplyError> {
        self.devices
            .iter()
            .position(|device| device.config.name == name)
            .ok_or_else(|| {
                let served: Vec<&str> = self
                    .devices
                    .iter()
                    .map(|device| device.config.name.as_str())
                    .collect();
                ReplyError::new(
                    ReplyErrorKind::NoDevice,
                    format!(
                        "qsockd does not schedule {name:?}: it serves {}; {}",
                        served.join(", "),
                        self.config.how_to_serve(name)
                    ),
                )
            })
    }

    /// `qsockinit` without privilege: succeeds when the device runs that
    /// scheduler already; qsockd installs nothing for a client.
    fn init(&self, device: &str, scheduler: SchedulerName) -> Reply {
        let index = match self.device_index(device) {
            Ok(index) => index,
            Err(_) => {
                return refusal(
                    ReplyErrorKind::PermissionDenied,
                    format!(
                        "qsockd does not keep {device}, and installing a scheduler needs \
                         CAP_NET_ADMIN: {}, or run qsockinit with the privilege",
                        self.config.how_to_serve(device)
                    ),
                )
            }
        };
        let served = &self.devices[index];
        let runs = served.scheduler();
        if served.replaced || (scheduler != runs && scheduler != SchedulerName::Auto) {
            let now = if served.replaced {
                format!("qsock's {runs} was replaced behind qsockd's back")
            } else {
                format!("qsockd keeps {runs} on it")
            };
            return refusal(
                ReplyErrorKind::PermissionDenied,
                format!(
                    "cannot install {scheduler} on {device} without CAP_NET_ADMIN: {now}; ask for \
                     {runs} (or auto), or change {}",
                    self.config.setting(device, "scheduler")
                ),
            );
        }
        Reply::Initialized {
            device: device.to_owned(),
            scheduler: runs,
            link_rate: Some(served.link_rate),
        }
    }

    fn attach(&mut self, client: &mut Client, params: &QosParams, socket: OwnedFd) -> Reply {
        if let Err(err) = params.validate() {
            return refused(&err);
        }
        if client.streams.len() >= STREAMS_PER_CONNECTION {
            return refusal(
                ReplyErrorKind::Busy,
                format!(
                    "this connection holds {STREAMS_PER_CONNECTION} streams, the most qsockd \
                     keeps for one connection: close some, or open another connection"
                ),
            );
        }
        let index = match self.device_index(&params.device) {
            Ok(index) => index,
            Err(refusal) => return Reply::Error(refusal),
        };
        if let Err(err) = classes::check_client_socket(socket.as_fd(), self.namespace) {
            return refused(&err);
        }
        let (user, groups) = client.account().clone();
        let device = &mut self.devices[index];
        let runs = device.scheduler();
        if params.scheduler != runs && params.scheduler != SchedulerName::Auto {
            return refusal(
                ReplyErrorKind::NotSupported,
                format!(
                    "{} runs {runs} under qsockd, not {}: ask for {runs} or auto",
                    params.device, params.scheduler
                ),
            );
        }
        if device.replaced {
            return refusal(
                ReplyErrorKind::NotSupported,
                format!(
                    "qsock's {runs} on {} was replaced behind qsockd's back: no class can be \
                     made until it is back (qsockd's log says how)",
                    params.device
                ),
            );
        }
        if !device.allows(client.uid, &groups) {
            return refusal(
                ReplyErrorKind::PermissionDenied,
                format!(
                    "user {user} may not schedule traffic on {} through qsockd: add the user to \
                     {} (or one of its groups to {})",
                    params.device,
                    self.config.setting(&params.device, "allow_users"),
                    self.config.setting(&params.device, "allow_groups")
                ),
            );
        }
        let asked = match device.reservation(&params.stream) {
            Ok(asked) => asked,
            Err(err) => return refused(&err),
        };
        let needs_class = device.classes.needs_class(&params.stream);
        let waiting = DeviceClasses::priority_minor(socket.as_fd())
            .and_then(|minor| device.take_waiting(minor, client.uid));
        if let Err(message) = device.ledger.admit(
            client.uid,
            &user,
            asked,
            Reservation::NONE,
            &device.settings,
        ) {
            if let Some(adopted) = waiting {
                device.remove(
                    adopted.class,
                    "its client attached it again, and was refused",
                );
            }
            log::info!("refused pid {} uid {}: {message}", client.pid, client.uid);
            return refusal(ReplyErrorKind::Busy, message);
        }
        let class = if !needs_class {
            if let Some(adopted) = waiting {
                device.remove(adopted.class, "its client attached it again as best effort");
            }
            None
        } else {
            let class = match waiting {
                Some(adopted) => {
                    log::info!(
                        "{}: class {} taken back by pid {} uid {}",
                        params.device,
                        adopted.class.id(),
                        client.pid,
                        client.uid
                    );
                    adopted.class
                }
                None => match device.classes.take() {
                    Ok(class) => class,
                    Err(err) => return refused(&err),
                },
            };
            if let Err(err) = device.classes.classify(&class, socket.as_fd()) {
                device.classes.give_back(class);
                return refused(&err);
            }
            Some(class)
        };
        // The daemon keeps no client's socket: its priority is set.
        drop(socket);
        device.ledger.hold(client.uid, asked);
        let id = client.next_stream;
        client.next_stream += 1;
        let class_name = class
            .as_ref()
            .map_or_else(|| "best effort".to_owned(), |c| c.id());
        let reply = Reply::Attached {
            stream: id,
            scheduler: runs,
            class: class_name.clone(),
            link_rate: Some(device.link_rate),
        };
        if let Some(class) = &class {
            self.worker.send(Job::Configure {
                device: index,
                class: class.key(),
                params: params.stream,
                link_rate: device.link_rate,
                waiter: None,
            });
            self.worker.send(Job::Replenish(index));
        }
        let recorded = class.is_none();
        client.streams.insert(
            id,
            Stream {
                device: index,
                class,
                reservation: asked,
                params: params.stream,
                recorded,
            },
        );
        // Logging writes to stderr (the journal): after the reply, and after
        // the class has its rate.
        self.worker.send(Job::Log(format!(
            "{}: stream {id} of pid {} uid {} in {class_name}, reserving {} ({} reserved in all)",
            params.device,
            client.pid,
            client.uid,
            asked.rate,
            device.ledger.held()
        )));
        reply
    }

    /// Records the client as the owner of the classes it was given, for
    /// a restarted qsockd to find: after the reply, as it writes a file.
    fn record_owners(client: &mut Client) {
        let owner = classes::client_owner(client.pid, client.uid);
        for (id, stream) in &mut client.streams {
            if stream.recorded {
                continue;
            }
            stream.recorded = true;
            if let Some(Err(err)) = stream.class.as_mut().map(|c| c.record_owner(&owner)) {
                log::warn!(
                    "cannot record pid {} as the owner of stream {id}'s class: {err}",
                    client.pid
                );
            }
        }
    }

    fn change(
        &mut self,
        token: u64,
        client: &mut Client,
        id: StreamId,
        params: &StreamParams,
        socket: Option<OwnedFd>,
    ) -> Option<Reply> {
        let (user, _) = client.account().clone();
        let Some(mut stream) = client.streams.remove(&id) else {
            return Some(not_attached(id));
        };
        let waiter = Waiter {
            token,
            stream: id,
            request: Waiting::Change {
                asked: stream.reservation,
                previous: stream.reservation,
                previous_params: stream.params,
            },
        };
        let outcome = self.change_stream(client, &user, &mut stream, params, socket, waiter);
        client.streams.insert(id, stream);
        match outcome {
            Ok(true) => {
                client.waiting += 1;
                None
            }
            Ok(false) => Some(Reply::Changed { stream: id }),
            Err(refusal) => Some(Reply::Error(refusal)),
        }
    }

    /// Admits the change and sends the kernel its part; whether `waiter`
    /// waits for it. The new reservation is held at once (and given back
    /// if the kernel refuses), so that no attach is admitted meanwhile on
    /// what the change takes.
    fn change_stream(
        &mut self,
        client: &Client,
        user: &str,
        stream: &mut Stream,
        params: &StreamParams,
        socket: Option<OwnedFd>,
        mut waiter: Waiter,
    ) -> Result<bool, ReplyError> {
        if let Err(err) = params.validate() {
            return Err(ReplyError::from(&err));
        }
        let device = &mut self.devices[stream.device];
        let asked = device
            .reservation(params)
            .map_err(|err| ReplyError::from(&err))?;
        device
            .ledger
            .admit(
                client.uid,
                user,
                asked,
                stream.reservation,
                &device.settings,
            )
            .map_err(|message| ReplyError::new(ReplyErrorKind::Busy, message))?;
        let needs_class = device.classes.needs_class(params);
        let job = match (stream.class.take(), needs_class) {
            (Some(class), true) => {
                let key = class.key();
                stream.class = Some(class);
                Some(key)
            }
            (Some(class), false) => {
                self.worker.send(Job::Remove {
                    device: stream.device,
                    class,
                    why: "its stream became best effort".to_owned(),
                    waiter: None,
                });
                None
            }
            (None, true) => {
                let Some(socket) = socket else {
                    return Err(ReplyError::new(
                        ReplyErrorKind::InvalidInput,
                        "a best-effort stream gains a class with this change: pass its socket \
                         with the Change request (SCM_RIGHTS) for qsockd to set its priority",
                    ));
                };
                classes::check_client_socket(socket.as_fd(), self.namespace)
                    .map_err(|err| ReplyError::from(&err))?;
                let mut class = device
                    .classes
                    .take()
                    .map_err(|err| ReplyError::from(&err))?;
                if let Err(err) = device.classes.classify(&class, socket.as_fd()) {
                    device.classes.give_back(class);
                    return Err(ReplyError::from(&err));
                }
                let owner = classes::client_owner(client.pid, client.uid);
                if let Err(err) = class.record_owner(&owner) {
                    log::warn!(
                        "cannot record pid {} as the owner of class {}: {err}",
                        client.pid,
                        class.id()
                    );
                }
                let key = class.key();
                stream.class = Some(class);
                self.worker.send(Job::Replenish(stream.device));
                Some(key)
            }
            (None, false) => None,
        };
        let device = &mut self.devices[stream.device];
        device.ledger.release(client.uid, stream.reservation);
        device.ledger.hold(client.uid, asked);
        if let Waiting::Change { asked: held, .. } = &mut waiter.request {
            *held = asked;
        }
        stream.reservation = asked;
        stream.params = *params;
        let Some(class) = job else {
            return Ok(false);
        };
        self.worker.send(Job::Configure {
            device: stream.device,
            class,
            params: *params,
            link_rate: device.link_rate,
            waiter: Some(waiter),
        });
        Ok(true)
    }

    fn info(&mut self, token: u64, client: &mut Client, id: StreamId) -> Option<Reply> {
        let Some(stream) = client.streams.get(&id) else {
            return Some(not_attached(id));
        };
        let device = &self.devices[stream.device];
        let Some(class) = &stream.class else {
            return Some(Reply::Info {
                stream: id,
                scheduler: device.scheduler(),
                stats: qsock::SchedulerStats::default(),
                link_rate: Some(device.link_rate),
            });
        };
        self.worker.send(Job::Stats {
            device: stream.device,
            class: class.key(),
            waiter: Waiter {
                token,
                stream: id,
                request: Waiting::Info,
            },
        });
        client.waiting += 1;
        None
    }
}

/// The refusal of a stream this connection did not attach.
fn not_attached(stream: StreamId) -> Reply {
    refusal(
        ReplyErrorKind::NotAttached,
        format!(
            "stream {stream} is not one this connection attached: a client can change, read and \
             close only the streams it created on its own connection"
        ),
    )
}
