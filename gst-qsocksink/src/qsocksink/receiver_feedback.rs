//! The receiver-feedback thread: listens for the receiver's RTCP on the
//! RTCP port (RFC 3550's convention: the stream's port + 1, or the
//! `rtcp-port` property) and on the sink's own socket (RFC 5761), keeps
//! what the reports say for the feedback thread, turns PLI and FIR into an
//! upstream force-key-unit event at most once per `key-unit-interval`, and
//! sends a sender report every second to the receiver's RTCP port (its
//! stream port + 1) so that the receiver can measure the round trip.
//!
//! Only RTCP from the receiver's address about the stream's own source
//! counts; anything else, and anything beyond [`MAX_DATAGRAMS_PER_SECOND`],
//! is counted by reason and otherwise ignored.
//!
//! Once the stream's packets carry transport-wide sequence numbers, the
//! thread also reads when each left the device (the stream socket's error
//! queue, [`super::departure`]), for the transport-wide delays.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::Socket;

use super::departure::{self, StreamPorts, Unavailable};
use super::imp::{self, CAT};
use super::rtcp::{self, KeyUnitRequest, ReceptionReport, Refusal};
use super::run::Run;
use super::settings::Settings;
use super::transport_wide;
use super::QSockSink;
use crate::sys::{self, SenderInfo};

/// RTCP datagrams read per second at most: a receiver sends a few reports
/// a second, and with transport-wide feedback some 25 messages more (a
/// stock rtpsession's); this leaves room for their bursts and still bounds
/// what a flood costs.
pub(super) const MAX_DATAGRAMS_PER_SECOND: u32 = 200;

/// How often the sink sends a sender report. Each receiver report measures
/// the round trip of the last sender report it echoes, and that report's
/// way through the path's queue is what shows the queue: a report every
/// quarter second gives each of a receiver's reports (AVPF: two a second)
/// a fresh one, for about 200 bit/s.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// How long departure times may fail to come, once asked for, while the
/// receiver's transport-wide feedback comes, before the sink says so.
const DEPARTURES_DUE: Duration = Duration::from_secs(2);

/// RTP video's clock rate: the sender report's RTP time is on it.
pub(super) const VIDEO_CLOCK_RATE: u64 = 90_000;

/// What the streaming thread tells of the RTP stream it sends, for sender
/// reports and for telling reports about it from others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RtpSource {
    pub ssrc: u32,
    /// The last packet's RTP timestamp, and when it was sent.
    pub timestamp: u32,
    pub sent_at: Instant,
    /// Packets and payload octets sent, as RFC 3550 counts them (wrapping).
    pub packets: u32,
    pub octets: u32,
}

/// The RTP packets of one frame as a sender report counts them: read
/// before the counters are locked, so the render path parses outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameRtp {
    ssrc: u32,
    timestamp: u32,
    packets: u32,
    octets: u32,
}

impl FrameRtp {
    /// The frame's RTP packets of the last packet's source; None when none
    /// is RTP.
    pub fn of(packets: &[&[u8]]) -> Option<FrameRtp> {
        packets
            .iter()
            .filter_map(|packet| qsock_frame::rtp::parse(packet).ok())
            .fold(None, |frame: Option<FrameRtp>, rtp| {
                let (packets, octets) = frame
                    .filter(|frame| frame.ssrc == rtp.ssrc)
                    .map_or((0, 0), |frame| (frame.packets, frame.octets));
                Some(FrameRtp {
                    ssrc: rtp.ssrc,
                    timestamp: rtp.timestamp,
                    packets: packets.wrapping_add(1),
                    octets: octets.wrapping_add(rtp.payload.len() as u32),
                })
            })
    }
}

impl RtpSource {
    /// The source after `frame` was handed to the socket now.
    pub fn after(previous: Option<RtpSource>, frame: Option<FrameRtp>) -> Option<RtpSource> {
        let Some(frame) = frame else {
            return previous;
        };
        let (packets, octets) = previous
            .filter(|source| source.ssrc == frame.ssrc)
            .map_or((0, 0), |source| (source.packets, source.octets));
        Some(RtpSource {
            ssrc: frame.ssrc,
            timestamp: frame.timestamp,
            sent_at: Instant::now(),
            packets: packets.wrapping_add(frame.packets),
            octets: octets.wrapping_add(frame.octets),
        })
    }
}

/// What the receiver's reports said since the feedback thread last looked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct ReportsSince {
    /// Reports about the stream.
    pub reports: u32,
    /// The largest share lost any of them tells.
    pub fraction_lost: f64,
    /// The latest round trip any of them measured.
    pub round_trip: Option<Duration>,
    /// Packets the receiver got between the report before these and the
    /// last of them.
    pub received_packets: u64,
    /// The time between those two reports' arrivals.
    pub received_over: Duration,
}

impl ReportsSince {
    /// The packets per second the receiver got, when the reports span long
    /// enough to tell: two reports close together (an early one beside a
    /// PLI) measure the report's timing, not the path.
    pub fn received_packet_rate(&self) -> Option<f64> {
        (self.received_over >= MIN_RECEIVED_SPAN)
            .then(|| self.received_packets as f64 / self.received_over.as_secs_f64())
    }
}

/// The shortest time between reports over which the packets received tell
/// the path's rate.
const MIN_RECEIVED_SPAN: Duration = Duration::from_millis(300);

/// More packets than this between two reports is a receiver that started
/// over, not a path.
const MAX_PACKETS_BETWEEN_REPORTS: i64 = 1 << 20;

/// Where the receiver's count stood at a report: when it arrived, the
/// highest sequence and the cumulative loss.
#[derive(Debug, Clone, Copy)]
struct ReceptionMark {
    at: Instant,
    highest_sequence: u32,
    cumulative_lost: i32,
    echoed_sender_report: u32,
}

/// The receiver's view, shared by the two threads.
#[derive(Debug, Default)]
pub(super) struct ReceiverView {
    pub since: ReportsSince,
    pub latest: Option<(Instant, ReceptionReport)>,
    pub reports: u64,
    pub ignored: [u64; Refusal::ALL.len()],
    pub key_unit_requests: u64,
    pub key_units_asked: u64,
    pub sender_reports: u64,
    /// Where the thread listens, for the stats structure and the warning.
    pub rtcp_port: Option<u16>,
    mark: Option<ReceptionMark>,
}

impl ReceiverView {
    /// Takes what arrived since the last call.
    pub fn take_since(&mut self) -> ReportsSince {
        std::mem::take(&mut self.since)
    }

    pub fn report(&mut self, report: ReceptionReport) {
        let now = Instant::now();
        self.reports += 1;
        self.latest = Some((now, report));
        let mark = ReceptionMark {
            at: now,
            highest_sequence: report.highest_sequence,
            cumulative_lost: report.cumulative_lost,
            echoed_sender_report: report.echoed_sender_report,
        };
        let previous = self.mark.replace(mark);
        let fresh_round_trip = previous
            .is_none_or(|previous| previous.echoed_sender_report != mark.echoed_sender_report);
        if let Some(previous) = previous {
            let sequences = i64::from(
                mark.highest_sequence
                    .wrapping_sub(previous.highest_sequence) as i32,
            );
            let lost = i64::from(mark.cumulative_lost) - i64::from(previous.cumulative_lost);
            let received = sequences - lost;
            if (0..MAX_PACKETS_BETWEEN_REPORTS).contains(&received) {
                self.since.received_packets += received as u64;
                self.since.received_over += now.duration_since(previous.at);
            }
        }
        let since = &mut self.since;
        since.reports += 1;
        since.fraction_lost = since.fraction_lost.max(report.fraction_lost);
        if report.round_trip.is_some() && fresh_round_trip {
            since.round_trip = report.round_trip;
        }
    }
}

/// Where the thread listens and where it sends sender reports.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReceiverFeedbackSettings {
    /// The receiver's address and stream port.
    pub destination: SocketAddr,
    /// The port this host listens on for the receiver's RTCP.
    pub rtcp_port: u16,
}

impl ReceiverFeedbackSettings {
    /// The receiver's RTCP port: its stream port + 1 (RFC 3550 §11).
    fn receiver_rtcp(&self) -> Option<SocketAddr> {
        let port = self.destination.port().checked_add(1)?;
        Some(SocketAddr::new(self.destination.ip(), port))
    }
}

/// The thread, stopped by dropping it.
#[derive(Debug)]
pub(super) struct ReceiverFeedbackThread {
    waker: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ReceiverFeedbackThread {
    fn drop(&mut self) {
        // Closing the waker's end of the stream pair wakes the thread's poll
        // with end of file.
        drop(self.waker.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                gst::warning!(CAT, "the receiver-feedback thread panicked");
            }
        }
    }
}

impl imp::QSockSink {
    /// Starts the receiver-feedback thread for `run`.
    pub(super) fn listen_to_receiver(
        &self,
        settings: &Settings,
        run: &Arc<Run>,
    ) -> Result<ReceiverFeedbackThread, gst::ErrorMessage> {
        let destination = run.destination;
        let rtcp_port = match settings.rtcp_port {
            0 => destination.port().checked_add(1).ok_or_else(|| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("port 65535 has no port + 1 for RTCP: set rtcp-port, or receiver-feedback=false")
                )
            })?,
            port => u16::try_from(port).unwrap_or(u16::MAX),
        };
        let failed = |err: io::Error| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("cannot listen for the receiver's RTCP: {err} (property receiver-feedback)")
            )
        };
        let stream_socket = run.period.socket().socket().try_clone().map_err(failed)?;
        spawn(
            &self.obj(),
            ReceiverFeedbackSettings {
                destination,
                rtcp_port,
            },
            stream_socket,
            Arc::clone(run),
        )
        .map_err(failed)
    }
}

/// Starts listening: on `stream_socket` (a duplicate of the sink's socket)
/// and on the RTCP port. A port already taken is said once, and the
/// thread listens on the stream's socket alone.
pub(super) fn spawn(
    element: &QSockSink,
    settings: ReceiverFeedbackSettings,
    stream_socket: Socket,
    run: Arc<Run>,
) -> io::Result<ReceiverFeedbackThread> {
    let control_priority = run.period.socket().control_priority();
    let listen = SocketAddr::new(
        unspecified_like(settings.destination.ip()),
        settings.rtcp_port,
    );
    let rtcp_socket = match UdpSocket::bind(listen) {
        Ok(socket) => {
            socket.set_nonblocking(true)?;
            place_sender_reports(&stream_socket, &socket, control_priority);
            run.receiver.lock().rtcp_port = Some(settings.rtcp_port);
            Some(socket)
        }
        Err(err) => {
            gst::element_warning!(
                element,
                gst::ResourceError::OpenRead,
                (
                    "cannot listen for the receiver's RTCP on port {}: {err}; only RTCP sent \
                     to the stream's own port is read (property rtcp-port names another port)",
                    settings.rtcp_port
                )
            );
            None
        }
    };
    let (waker, woken) = UnixStream::pair()?;
    let mut listener = Listener {
        element: element.downgrade(),
        settings,
        rtcp_socket,
        stream_socket: UdpSocket::from(stream_socket),
        run,
        budget: Budget::new(),
        last_key_unit: None,
        next_sender_report: Instant::now(),
        departures: Departures::NotAsked,
        departure_buffer: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("qsocksink-rtcp".into())
        .spawn(move || listener.run(&woken))?;
    Ok(ReceiverFeedbackThread {
        waker: Some(waker),
        thread: Some(thread),
    })
}

fn unspecified_like(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// A token bucket over datagrams: a second's worth at most.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            tokens: f64::from(MAX_DATAGRAMS_PER_SECOND),
            refilled: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let rate = f64::from(MAX_DATAGRAMS_PER_SECOND);
        let refill = now.duration_since(self.refilled).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Listener {
    element: glib::WeakRef<QSockSink>,
    settings: ReceiverFeedbackSettings,
    rtcp_socket: Option<UdpSocket>,
    stream_socket: UdpSocket,
    run: Arc<Run>,
    budget: Budget,
    last_key_unit: Option<Instant>,
    next_sender_report: Instant,
    departures: Departures,
    departure_buffer: Vec<u8>,
}

/// Whether the stream's departure times are read.
#[derive(Debug)]
enum Departures {
    /// Not before the stream's packets carry transport-wide numbers.
    NotAsked,
    Reading {
        ports: StreamPorts,
        since: Instant,
        /// Whether the sink said that none came.
        said_none: bool,
    },
    Unavailable,
}

impl Listener {
    fn run(&mut self, woken: &UnixStream) {
        loop {
            self.ask_for_departures();
            let wait = self
                .next_sender_report
                .saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(wait.as_millis().min(1000) as i32)
                .unwrap_or(PollTimeout::MAX);
            let readable = {
                let mut fds = vec![
                    PollFd::new(woken.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.stream_socket.as_fd(), PollFlags::POLLIN),
                ];
                if let Some(socket) = &self.rtcp_socket {
                    fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => fds.iter().map(|fd| fd.revents()).collect::<Vec<_>>(),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(err) => {
                        gst::warning!(CAT, "receiver feedback stops: poll failed: {err}");
                        return;
                    }
                }
            };
            let has = |index: usize, flags: PollFlags| {
                readable
                    .get(index)
                    .copied()
                    .flatten()
                    .is_some_and(|events| events.intersects(flags))
            };
            let any = PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP;
            if has(0, any) {
                return;
            }
            if has(1, PollFlags::POLLERR) {
                self.read_departures();
            }
            if has(1, PollFlags::POLLIN) {
                self.drain(false);
            }
            if has(2, any) {
                self.drain(true);
            }
            if Instant::now() >= self.next_sender_report {
                self.send_sender_report();
                self.next_sender_report = Instant::now() + SENDER_REPORT_INTERVAL;
            }
        }
    }

    /// Asks for the stream's departure times once its packets carry
    /// transport-wide numbers; says once why they are not read.
    fn ask_for_departures(&mut self) {
        match &mut self.departures {
            Departures::NotAsked => {
                if self.run.transport_wide_id.load(Ordering::Relaxed) == 0 {
                    return;
                }
                match departure::enable(&self.stream_socket, self.settings.destination) {
                    Ok(ports) => {
                        self.departures = Departures::Reading {
                            ports,
                            since: Instant::now(),
                            said_none: false,
                        }
                    }
                    Err(Unavailable(why)) => {
                        self.departures = Departures::Unavailable;
                        self.say_hand_over_times(&why);
                    }
                }
            }
            Departures::Reading {
                since, said_none, ..
            } => {
                if *said_none || since.elapsed() < DEPARTURES_DUE {
                    return;
                }
                let (departures, feedback) = {
                    let transport_wide = self.run.transport_wide.lock();
                    (
                        transport_wide.departures_total,
                        transport_wide.feedback_total,
                    )
                };
                if departures == 0 && feedback > 0 {
                    *said_none = true;
                    self.say_hand_over_times(
                        "the device took no software timestamps of the stream's packets (its \
                         driver does not take them, or net.core.tstamp_allow_data is 0)",
                    );
                }
            }
            Departures::Unavailable => {}
        }
    }

    fn say_hand_over_times(&self, why: &str) {
        if let Some(element) = self.element.upgrade() {
            gst::element_info!(
                element,
                gst::ResourceError::Read,
                ("the transport-wide delays are counted from the hand-over to the socket, \
                     and so include this host's queue: {why}")
            );
        }
    }

    /// Reads when the stream's packets left the device.
    fn read_departures(&mut self) {
        let Departures::Reading { ports, .. } = self.departures else {
            // Nothing asked for timestamps: what is queued is the
            // scheduler's to read.
            return;
        };
        let id = self.run.transport_wide_id.load(Ordering::Relaxed);
        let mut departed = Vec::new();
        let read = departure::take(
            &self.stream_socket,
            ports,
            &mut self.departure_buffer,
            |rtp, at| {
                if let Some(&(sequence, _)) = transport_wide::numbered(&[rtp], id).first() {
                    departed.push((sequence, at));
                }
            },
        );
        if let Err(err) = read {
            gst::debug!(CAT, "reading departure times: {err}");
        }
        let mut transport_wide = self.run.transport_wide.lock();
        for (sequence, at) in departed {
            transport_wide.departed(sequence, at);
        }
    }

    /// Reads every datagram waiting on one of the sockets.
    fn drain(&mut self, rtcp_port: bool) {
        let mut buffer = [0u8; 1500];
        loop {
            let socket = if rtcp_port {
                self.rtcp_socket.as_ref()
            } else {
                Some(&self.stream_socket)
            };
            let Some(socket) = socket else { return };
            match socket.recv_from(&mut buffer) {
                Ok((length, from)) => self.datagram(&buffer[..length], from),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors for what the stream sent come back here;
                // they are the stream's to see, not the receiver's reports.
                Err(_) => return,
            }
        }
    }

    fn datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        // The address first: datagrams from elsewhere must not spend the
        // budget that the receiver's own reports need.
        let refusal = if !from_receiver(from.ip(), self.settings.destination.ip()) {
            Some(Refusal::OtherAddress)
        } else if !self.budget.take() {
            Some(Refusal::Flood)
        } else {
            let ssrc = self.run.counters.lock().rtp.map(|source| source.ssrc);
            match ssrc {
                None => Some(Refusal::OtherSource),
                Some(ssrc) => {
                    let arrival = rtcp::compact_ntp(rtcp::ntp_time(SystemTime::now()));
                    match rtcp::read(datagram, ssrc, arrival) {
                        Ok(message) => {
                            let mut view = self.run.receiver.lock();
                            for report in message.reports {
                                view.report(report);
                            }
                            drop(view);
                            for request in message.key_unit_requests {
                                self.key_unit_request(request);
                            }
                            let mut transport_wide = self.run.transport_wide.lock();
                            let unreadable = message
                                .transport_wide
                                .iter()
                                .filter(|control| !transport_wide.feedback(control))
                                .count();
                            (unreadable > 0).then_some(Refusal::Malformed)
                        }
                        Err(refusal) => Some(refusal),
                    }
                }
            }
        };
        if let Some(refusal) = refusal {
            self.run.receiver.lock().ignored[refusal.index()] += 1;
            gst::log!(CAT, "ignored RTCP from {from}: {}", refusal.name());
        }
    }

    /// Asks upstream for a key unit, unless one was asked for within
    /// `key-unit-interval`: the next key frame answers every request made
    /// meanwhile.
    fn key_unit_request(&mut self, request: KeyUnitRequest) {
        self.run.receiver.lock().key_unit_requests += 1;
        let Some(element) = self.element.upgrade() else {
            return;
        };
        let interval = Duration::from_millis(u64::from(
            element.imp().settings.lock().key_unit_interval_ms,
        ));
        let now = Instant::now();
        if self
            .last_key_unit
            .is_some_and(|last| now.duration_since(last) < interval)
        {
            gst::debug!(
                CAT,
                "{} within key-unit-interval: answered by the last request",
                request.name()
            );
            return;
        }
        self.last_key_unit = Some(now);
        self.run.receiver.lock().key_units_asked += 1;
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if !element
            .static_pad("sink")
            .is_some_and(|pad| pad.push_event(event))
        {
            gst::debug!(
                CAT,
                obj = element,
                "upstream did not take the key-unit request"
            );
        } else {
            gst::debug!(
                CAT,
                obj = element,
                "{} from the receiver: key unit asked",
                request.name()
            );
        }
    }

    fn send_sender_report(&mut self) {
        let Some(source) = self.run.counters.lock().rtp else {
            return;
        };
        let now = SystemTime::now();
        let ticks = source.sent_at.elapsed().as_micros() as u64 * VIDEO_CLOCK_RATE / 1_000_000;
        let info = SenderInfo {
            ssrc: source.ssrc,
            ntp_time: rtcp::ntp_time(now),
            rtp_time: source.timestamp.wrapping_add(ticks as u32),
            packets: source.packets,
            octets: source.octets,
        };
        let Some(report) = sys::sender_report(info, &cname()) else {
            return;
        };
        let Some(to) = self.settings.receiver_rtcp() else {
            return;
        };
        // Never waiting for room: this thread also reads the receiver's
        // reports.
        let socket = self.rtcp_socket.as_ref().unwrap_or(&self.stream_socket);
        let sent = socket2::SockRef::from(socket).send_to_with_flags(
            &report,
            &to.into(),
            nix::sys::socket::MsgFlags::MSG_DONTWAIT.bits(),
        );
        match sent {
            Ok(_) => self.run.receiver.lock().sender_reports += 1,
            Err(err) => gst::debug!(CAT, "sender report to {to}: {err}"),
        }
    }
}

/// Has the sender reports leave ahead of the host's queues where the
/// scheduler has a way (`control_priority`), else beside the stream's
/// packets (its priority, by which the kernel schedulers classify), never
/// behind the host's bulk traffic: the round trip they measure is then the
/// path's. Without the privilege to set it they go as best effort, which the
/// debug log says.
fn place_sender_reports(stream_socket: &Socket, rtcp_socket: &UdpSocket, control: Option<u32>) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt::Priority};
    let priority = match control {
        Some(priority) => Ok(i32::from_ne_bytes(priority.to_ne_bytes())),
        None => getsockopt(stream_socket, Priority),
    };
    if let Err(err) = priority.and_then(|priority| setsockopt(rtcp_socket, Priority, &priority)) {
        gst::debug!(CAT, "sender reports go as best effort: SO_PRIORITY: {err}");
    }
}

/// RTCP counts from the receiver's address; for a multicast stream, from
/// any of its receivers.
fn from_receiver(from: IpAddr, destination: IpAddr) -> bool {
    destination.is_multicast() || from == destination
}

/// The source's canonical name (RFC 3550 §6.5.1): qsocksink at this host.
fn cname() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    format!("qsocksink@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use qsock_frame::rtp::RtpPacket;

    fn packet(ssrc: u32, sequence: u16, payload: &[u8]) -> Vec<u8> {
        RtpPacket {
            marker: false,
            payload_type: 96,
            sequence,
            timestamp: 9000,
            ssrc,
            payload,
        }
        .serialize()
    }

    #[test]
    fn a_sender_report_counts_the_packets_and_payload_octets_sent() {
        let first = [packet(7, 1, &[0; 100]), packet(7, 2, &[0; 50])];
        let frame: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        let source = RtpSource::after(None, FrameRtp::of(&frame));
        let second = [packet(7, 3, &[0; 10])];
        let frame: Vec<&[u8]> = second.iter().map(Vec::as_slice).collect();
        let source = RtpSource::after(source, FrameRtp::of(&frame))
            .unwrap_or_else(|| panic!("an RTP source"));
        assert_eq!((source.ssrc, source.packets, source.octets), (7, 3, 160));
        // A frame with nothing RTP in it changes nothing; a new source
        // starts its counts over.
        assert_eq!(FrameRtp::of(&[b"not rtp".as_slice()]), None);
        let other = [packet(8, 1, &[0; 20])];
        let frame: Vec<&[u8]> = other.iter().map(Vec::as_slice).collect();
        let source = RtpSource::after(Some(source), FrameRtp::of(&frame))
            .unwrap_or_else(|| panic!("an RTP source"));
        assert_eq!((source.ssrc, source.packets, source.octets), (8, 1, 20));
    }
}
