//! The `user` backend: the DWCS model on a thread of this process, ordering
//! and pacing the process's own qsockets on one device. It needs no
//! privilege, and it cannot shield a stream from other processes' traffic:
//! that takes a kernel scheduler (`dwcs` or `htb`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::fd::AsFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};
use socket2::{SockAddr, Socket, Type};

use super::{Attachment, Backend, DeviceReport, Frame, InitReport, PrunedStream, StreamReport};
use crate::error::{Error, ErrorKind, Result};
use crate::info::SchedulerStats;
use crate::model::{self, Class, Next, StreamConfig, StreamId};
use crate::notice;
use crate::params::{InitParams, QosParams, Rate, SchedulerName, StreamKind, StreamParams};
use crate::sys;

/// Most packets the scheduler thread takes from the model under one lock.
const MAX_BATCH: usize = 16;

/// Packets queued at once per device when `qsockinit` gives no limit.
const DEFAULT_LIMIT: u32 = 4096;

/// Below this, the scheduler thread spins instead of sleeping: a condition
/// variable's timed wait overshoots by tens of microseconds, which would show
/// as jitter on a paced stream.
const SPIN_BELOW: Duration = Duration::from_micros(150);

/// How long the scheduler thread keeps retrying a datagram the socket pushes
/// back (its send buffer or the device queue is full) before giving up on a
/// droppable one. Non-droppable ones are retried until they go.
const PUSHBACK_PATIENCE: Duration = Duration::from_millis(50);

/// `SCHED_FIFO` priority of the scheduler thread: above ordinary threads,
/// well below the kernel's own real-time threads (which use 50 and up).
const REALTIME_PRIORITY: i32 = 10;

/// The in-process scheduler.
#[derive(Debug)]
pub(crate) struct User;

fn devices() -> MutexGuard<'static, HashMap<String, Arc<Device>>> {
    static DEVICES: OnceLock<Mutex<HashMap<String, Arc<Device>>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new())).lock()
}

fn device(name: &str) -> Option<Arc<Device>> {
    devices().get(name).cloned()
}

/// One device's scheduler thread and the model it runs.
struct Device {
    name: String,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    model: model::Scheduler<Outgoing>,
    link_rate: Option<Rate>,
    streams: BTreeMap<StreamId, StreamEntry>,
    next_stream: u32,
    next_packet: u64,
    retired: bool,
    /// The scheduler thread waits on `wake`: only then is a notification
    /// worth its system call.
    sleeping: bool,
}

struct StreamEntry {
    params: StreamParams,
    closing: bool,
    /// Why the kernel refused a datagram the scheduler thread sent for this
    /// stream, for the stream's next send to report, as the kernel reports
    /// a socket's pending error on its next send.
    refused: Option<std::io::Error>,
}

/// A datagram waiting in the model, with what the thread needs to send it.
struct Outgoing {
    socket: Arc<Socket>,
    data: Vec<u8>,
    destination: Option<SockAddr>,
    droppable: bool,
    /// Where the model counts it, and whose send reports its refusal.
    class: Class,
    stream: StreamId,
}

/// A datagram the scheduler thread released that did not leave.
struct Unsent {
    class: Class,
    stream: StreamId,
    len: usize,
    /// What the kernel said; `None` for a droppable datagram given up while
    /// the socket pushed back, which counts as dropped for a full queue.
    refused: Option<std::io::Error>,
}

impl Device {
    /// The scheduler thread: asks the model what to send next, sends it with
    /// the lock released, and sleeps until the model's next eligible time.
    fn run(self: Arc<Self>) {
        // A scheduler thread that waits behind other runnable threads misses
        // deadlines for every stream at once; the real-time class keeps it
        // first in line where the process may use it.
        if let Err(err) = sys::make_thread_realtime(REALTIME_PRIORITY) {
            notice::once(
                "user-realtime",
                &format!(
                    "the user scheduler thread runs at normal priority ({err}): other busy \
                     threads on this host can delay its packets; allow real-time priority \
                     (CAP_SYS_NICE or `ulimit -r {REALTIME_PRIORITY}`) or use a kernel scheduler"
                ),
            );
        }
        let mut state = self.state.lock();
        loop {
            let now = sys::monotonic_nanos();
            match state.model.dequeue(now) {
                Next::Send(departure) => {
                    // Take every packet that may leave now under one lock,
                    // and send runs of one socket with one system call.
                    let mut batch = vec![departure.packet.payload];
                    while batch.len() < MAX_BATCH {
                        match state.model.dequeue(now) {
                            Next::Send(next) => batch.push(next.packet.payload),
                            Next::NotBefore(_) | Next::Idle => break,
                        }
                    }
                    drop(state);
                    let unsent = transmit_batch(batch);
                    state = self.state.lock();
                    for datagram in unsent {
                        state.not_sent(datagram);
                    }
                }
                Next::NotBefore(at) => {
                    let wait = Duration::from_nanos(at.saturating_sub(now));
                    if wait < SPIN_BELOW {
                        drop(state);
                        std::hint::spin_loop();
                        std::thread::yield_now();
                        state = self.state.lock();
                    } else {
                        state.sleeping = true;
                        self.wake.wait_for(&mut state, wait - SPIN_BELOW / 2);
                        state.sleeping = false;
                    }
                }
                Next::Idle => {
                    state.remove_closed_streams();
                    if state.retired && state.streams.is_empty() {
                        return;
                    }
                    state.sleeping = true;
                    self.wake.wait(&mut state);
                    state.sleeping = false;
                }
            }
            // Drops are counted by the model; their payloads are freed here.
            state.model.drain_drops().for_each(drop);
            state.remove_closed_streams();
        }
    }
}

impl State {
    /// Counts a datagram that did not leave as not sent, and keeps the
    /// kernel's refusal for the stream's next send.
    fn not_sent(&mut self, datagram: Unsent) {
        let len = u32::try_from(datagram.len).unwrap_or(u32::MAX);
        let dropped = datagram
            .refused
            .is_none()
            .then_some(model::DropReason::QueueFull);
        self.model.not_sent(datagram.class, len, dropped);
        if let (Some(err), Some(entry)) = (datagram.refused, self.streams.get_mut(&datagram.stream))
        {
            entry.refused.get_or_insert(err);
        }
    }

    fn remove_closed_streams(&mut self) {
        let closed: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(id, entry)| {
                entry.closing
                    && self
                        .model
                        .stream_stats(**id)
                        .is_none_or(|stats| stats.backlog_packets == 0)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.streams.remove(&id);
            // The queue is empty, so nothing comes back.
            let _ = self.model.remove_stream(id);
        }
    }
}

/// Sends what the model released, in order: each run of datagrams for one
/// socket and destination in one `sendmmsg(2)`, the rest of a run that the
/// socket pushed back one by one with retries. Returns what did not leave.
fn transmit_batch(batch: Vec<Outgoing>) -> Vec<Unsent> {
    let mut unsent = Vec::new();
    let mut rest = batch.as_slice();
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|o| {
                Arc::ptr_eq(&o.socket, &first.socket) && o.destination == first.destination
            })
            .count();
        let packets: Vec<&[u8]> = rest[..run].iter().map(|o| o.data.as_slice()).collect();
        let sent = match sys::send_datagrams(
            first.socket.as_fd(),
            &packets,
            first.destination.as_ref(),
            libc::MSG_DONTWAIT,
        ) {
            Ok(sent) => sent.min(run),
            Err(err) if sys::is_pushback(&err) => 0,
            // The kernel refused the first datagram (a pending error of the
            // socket fails the send that meets it, and that datagram only).
            Err(err) => {
                unsent.push(first.unsent(Some(err)));
                1
            }
        };
        for outgoing in &rest[sent..run] {
            if let Err(refused) = transmit(outgoing) {
                unsent.push(outgoing.unsent(refused));
            }
        }
        rest = &rest[run..];
    }
    unsent
}

impl Outgoing {
    fn unsent(&self, refused: Option<std::io::Error>) -> Unsent {
        Unsent {
            class: self.class,
            stream: self.stream,
            len: self.data.len(),
            refused,
        }
    }
}

/// Sends one datagram, retrying while the socket pushes back: a non-droppable
/// datagram until it goes, a droppable one for `PUSHBACK_PATIENCE`. Fails
/// with the kernel's refusal, or with `None` when a droppable datagram was
/// given up.
fn transmit(outgoing: &Outgoing) -> std::result::Result<(), Option<std::io::Error>> {
    let started = std::time::Instant::now();
    loop {
        let result = match &outgoing.destination {
            Some(address) => {
                outgoing
                    .socket
                    .send_to_with_flags(&outgoing.data, address, libc::MSG_DONTWAIT)
            }
            None => outgoing
                .socket
                .send_with_flags(&outgoing.data, libc::MSG_DONTWAIT),
        };
        match result {
            Ok(_) => return Ok(()),
            Err(err) if sys::is_pushback(&err) => {
                if outgoing.droppable && started.elapsed() > PUSHBACK_PATIENCE {
                    return Err(None);
                }
                sys::wait_writable(&outgoing.socket, Duration::from_millis(1));
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Some(err)),
        }
    }
}

fn model_config(init: &InitParams) -> model::SchedulerConfig {
    model::SchedulerConfig {
        link_rate: init.link_rate.map(|rate| rate.bytes_per_second().max(1)),
        limit: init.limit.unwrap_or(DEFAULT_LIMIT),
        resolution: u64::try_from(init.deadline_resolution().as_nanos()).unwrap_or(u64::MAX),
    }
}

impl Backend for User {
    fn name(&self) -> SchedulerName {
        SchedulerName::User
    }

    fn kernel_kind(&self) -> Option<&'static str> {
        None
    }

    fn install(&self, init: &InitParams) -> Result<InitReport> {
        init.validate()?;
        if init.best_effort_rate.is_some() {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!(
                    "the user scheduler carries only this process's streams: the host's other \
                     traffic on {} never passes through it, so it has no best effort to cap; \
                     use scheduler htb, or ask for no cap on best effort",
                    init.device
                ),
            ));
        }
        let mut devices = devices();
        if let Some(existing) = devices.get(&init.device) {
            let mut state = existing.state.lock();
            state.link_rate = init.link_rate;
            state.model.set_config(model_config(init));
            drop(state);
            existing.wake.notify_all();
            return Ok(InitReport {
                scheduler: SchedulerName::User,
                device: init.device.clone(),
                installed_now: false,
                reason: "the user scheduler already runs for this device in this process".into(),
            });
        }
        let device = Arc::new(Device {
            name: init.device.clone(),
            state: Mutex::new(State {
                model: model::Scheduler::new(model_config(init)),
                link_rate: init.link_rate,
                streams: BTreeMap::new(),
                next_stream: 1,
                next_packet: 0,
                retired: false,
                sleeping: false,
            }),
            wake: Condvar::new(),
        });
        let runner = Arc::clone(&device);
        std::thread::Builder::new()
            .name(format!("qsock-user-{}", init.device))
            .spawn(move || runner.run())
            .map_err(|err| Error::os("cannot start the user scheduler thread", err))?;
        devices.insert(init.device.clone(), device);
        Ok(InitReport {
            scheduler: SchedulerName::User,
            device: init.device.clone(),
            installed_now: true,
            reason: "the user scheduler runs DWCS in this process and needs no privilege; it \
                     orders and paces this process's qsockets but cannot hold back other \
                     processes' traffic (the dwcs or htb scheduler can, with CAP_NET_ADMIN)"
                .into(),
        })
    }

    fn is_installed(&self, device_name: &str) -> Result<bool> {
        Ok(device(device_name).is_some())
    }

    fn attach(&self, socket: &Socket, params: &QosParams) -> Result<Box<dyn Attachment>> {
        params.validate()?;
        let device = device(&params.device).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!(
                    "the user scheduler is not running for {}: call qsockinit with scheduler user first",
                    params.device
                ),
            )
        })?;
        if socket.r#type().ok() != Some(Type::DGRAM) {
            return Err(Error::new(
                ErrorKind::NotSupported,
                "the user scheduler schedules datagram sockets only: a stream socket's bytes \
                 cannot be paced from the process; use the htb or dwcs scheduler for TCP",
            ));
        }
        let sender = socket
            .try_clone()
            .map_err(|err| Error::os("cannot duplicate the socket for the scheduler", err))?;
        let mut state = device.state.lock();
        let id = StreamId(state.next_stream);
        state.next_stream = state.next_stream.wrapping_add(1).max(1);
        state
            .model
            .add_stream(id, StreamConfig::from_params(&params.stream))?;
        state.streams.insert(
            id,
            StreamEntry {
                params: params.stream,
                closing: false,
                refused: None,
            },
        );
        drop(state);
        Ok(Box::new(UserStream {
            device,
            id,
            class: class_of(&params.stream, id),
            droppable: params.stream.droppable,
            sender: Arc::new(sender),
        }))
    }

    fn report(&self, device_name: &str) -> Result<DeviceReport> {
        let device = device(device_name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotSupported,
                format!("the user scheduler is not running for {device_name} in this process"),
            )
        })?;
        let state = device.state.lock();
        let streams = state
            .streams
            .keys()
            .filter_map(|id| {
                state.model.stream_stats(*id).map(|stats| StreamReport {
                    id: format!("user:{}", id.0),
                    rate: None,
                    stats,
                    owner: None,
                    stale: false,
                })
            })
            .collect();
        Ok(DeviceReport {
            device: device.name.clone(),
            scheduler: Some(SchedulerName::User),
            root_qdisc: "(in-process user scheduler)".into(),
            link_rate: state.link_rate,
            streams,
            best_effort: Some(state.model.best_effort_stats()),
            best_effort_rate: None,
        })
    }

    /// The streams of this process are all held by it: nothing to prune.
    fn prune(&self, _device: &str) -> Result<Vec<PrunedStream>> {
        Ok(Vec::new())
    }

    fn reset(&self, device_name: &str) -> Result<()> {
        if let Some(device) = devices().remove(device_name) {
            device.state.lock().retired = true;
            device.wake.notify_all();
        }
        Ok(())
    }
}

/// Best-effort sockets share the model's FIFO; every other kind is a stream.
fn class_of(params: &StreamParams, id: StreamId) -> Class {
    match params.kind {
        StreamKind::BestEffort => Class::BestEffort,
        StreamKind::Periodic | StreamKind::Aperiodic => Class::Stream(id),
    }
}

/// One socket's stream in the user scheduler.
struct UserStream {
    device: Arc<Device>,
    id: StreamId,
    class: Class,
    droppable: bool,
    sender: Arc<Socket>,
}

impl fmt::Debug for UserStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserStream")
            .field("device", &self.device.name)
            .field("stream", &self.id)
            .finish()
    }
}

impl Attachment for UserStream {
    fn change(&mut self, _socket: &Socket, stream: &StreamParams) -> Result<()> {
        stream.validate()?;
        let mut state = self.device.state.lock();
        state
            .model
            .change_stream(self.id, StreamConfig::from_params(stream))?;
        if let Some(entry) = state.streams.get_mut(&self.id) {
            entry.params = *stream;
        }
        drop(state);
        self.class = class_of(stream, self.id);
        self.droppable = stream.droppable;
        self.device.wake.notify_all();
        Ok(())
    }

    /// Queues the packets in the model for the scheduler thread to send,
    /// after the checks the kernel makes when the send is its own: a
    /// destination or a connected peer, and the socket's pending error,
    /// reported (and cleared) by this send as `sendto(2)` reports it.
    fn send_frame(&self, socket: &Socket, frame: &Frame<'_>) -> Result<usize> {
        let Frame {
            packets,
            destination,
            flags,
        } = *frame;
        if destination.is_none() && socket.peer_addr().is_err() {
            return Err(Error::os(
                "qsend on a socket that is not connected: connect(2) it first, or give the \
                 destination (qsendto)",
                std::io::Error::from_raw_os_error(libc::EDESTADDRREQ),
            ));
        }
        let refused = self
            .device
            .state
            .lock()
            .streams
            .get_mut(&self.id)
            .and_then(|entry| entry.refused.take());
        if let Some(err) = refused {
            return Err(Error::os(
                "the kernel refused an earlier datagram of this socket, which the user \
                 scheduler sent after the call had returned, so it was not sent (the send \
                 reports it, as send(2) reports a socket's pending error)",
                err,
            ));
        }
        if let Some(err) = socket
            .take_error()
            .map_err(|err| Error::os("getsockopt(SO_ERROR) failed", err))?
        {
            return Err(Error::os(
                "the socket had a pending error (an ICMP error that an earlier datagram drew), \
                 which fails this send as it would fail send(2); nothing was queued",
                err,
            ));
        }
        let droppable = flags.drop.is_droppable(self.droppable);
        let deadline = flags.deadline.map(|d| d.as_monotonic_nanos());
        // Copy the data before taking the lock that the scheduler thread needs.
        let payloads: Vec<Outgoing> = packets
            .iter()
            .map(|data| Outgoing {
                socket: Arc::clone(&self.sender),
                data: data.to_vec(),
                destination: destination.cloned(),
                droppable,
                class: self.class,
                stream: self.id,
            })
            .collect();
        let mut state = self.device.state.lock();
        let now = sys::monotonic_nanos();
        let mut accepted = 0;
        for (index, payload) in payloads.into_iter().enumerate() {
            let id = state.next_packet;
            state.next_packet += 1;
            let packet = model::Packet {
                id,
                len: u32::try_from(payload.data.len()).unwrap_or(u32::MAX),
                deadline,
                drop: flags.drop,
                frame_start: flags.frame_start && index == 0,
                payload,
            };
            if state.model.enqueue(now, self.class, packet).is_err() {
                break;
            }
            accepted += 1;
        }
        let sleeping = state.sleeping;
        drop(state);
        if sleeping {
            self.device.wake.notify_all();
        }
        Ok(accepted)
    }

    fn stats(&self) -> Result<SchedulerStats> {
        let state = self.device.state.lock();
        Ok(match self.class {
            Class::BestEffort => state.model.best_effort_stats(),
            Class::Stream(id) => state.model.stream_stats(id).unwrap_or_default(),
        })
    }

    fn link_rate(&self) -> Result<Option<Rate>> {
        Ok(self.device.state.lock().link_rate)
    }

    fn detach(self: Box<Self>, _socket: &Socket) -> Result<()> {
        let mut state = self.device.state.lock();
        if let Some(entry) = state.streams.get_mut(&self.id) {
            entry.closing = true;
        }
        state.remove_closed_streams();
        drop(state);
        self.device.wake.notify_all();
        Ok(())
    }
}
