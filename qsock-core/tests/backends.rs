//! The contract every scheduler backend meets. Each test is written once,
//! for a scheduler, and run as `user::NAME`, `htb::NAME` and `dwcs::NAME`:
//!
//! - `user` runs on loopback in this process's namespace, without privilege;
//! - `htb` runs in a pair of network namespaces made for the test (root; as
//!   in htb_netns.rs, `QSOCK_SKIP_PRIVILEGED=1` turns it into a skip for
//!   others);
//! - `dwcs` runs in such a pair too, where sch_dwcs is loaded: in a VM
//!   (kmod-dwcs/test/guest_rust.sh sets `QSOCK_EXPECT_DWCS=1`, and a missing
//!   module fails there); elsewhere it prints a SKIP line and passes.
//!
//! Where a backend cannot meet a clause (HTB keeps no loss windows), its test
//! says so on a SKIP line.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use qsock::{
    qsockinit, report, reset, Deadline, ErrorKind, InitParams, PacketFlags, QSocket, QosParams,
    Rate, SchedulerName, SchedulerStats, StreamParams,
};
use qsock_testbed::TestBed;
use socket2::{Domain, Type};
use support::{
    end_flags, mbit, packet, receive_until_ends, sequences, stamping_receiver, stats, turn,
    worst_window, Arrival, PAYLOAD, WIRE,
};

/// Where one backend's test runs, and what it leaves behind when it ends.
struct Rig {
    scheduler: SchedulerName,
    /// The kernel backends' namespaces; `None` for the user backend, which
    /// runs on this namespace's loopback.
    bed: Option<TestBed>,
    /// The user scheduler is per process and per device, and only `lo`
    /// exists without privilege: its tests take turns on it.
    _loopback: Option<MutexGuard<'static, ()>>,
}

impl Rig {
    /// The place to test `scheduler`, or `None` where it cannot be tested
    /// here (said on a SKIP line).
    fn new(scheduler: SchedulerName) -> Option<Rig> {
        let (bed, loopback) = match scheduler {
            SchedulerName::User => {
                static LOOPBACK: Mutex<()> = Mutex::new(());
                let turn = LOOPBACK.lock();
                (None, Some(turn))
            }
            SchedulerName::Htb => (
                Some(support::privileged_bed("the htb backend's tests")?),
                None,
            ),
            SchedulerName::Dwcs => (Some(support::dwcs_bed()?), None),
            other => unreachable!("{other} is not a backend these tests know"),
        };
        if let Some(bed) = &bed {
            support::resolve_receiver(bed);
        }
        Some(Rig {
            scheduler,
            bed,
            _loopback: loopback,
        })
    }

    fn device(&self) -> &str {
        self.bed.as_ref().map_or("lo", TestBed::sender_dev)
    }

    /// Runs `f` where the sender lives.
    fn in_sender<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.bed {
            Some(bed) => bed.run_in_sender(f).unwrap(),
            None => f(),
        }
    }

    fn init(&self, rate: Rate) -> InitParams {
        InitParams::new(self.device(), self.scheduler).with_link_rate(rate)
    }

    fn install(&self, init: &InitParams) {
        let done = self.in_sender(|| qsockinit(init));
        assert!(done.is_ok(), "qsockinit {}: {done:?}", self.scheduler);
    }

    /// A stamping receiver where the streams' datagrams go, and its address.
    fn receiver(&self, ipv6: bool) -> (UdpSocket, SocketAddr) {
        let address: SocketAddr = match (&self.bed, ipv6) {
            (Some(bed), false) => (bed.receiver_v4(), 0).into(),
            (Some(bed), true) => (bed.receiver_v6(), 0).into(),
            (None, false) => "127.0.0.1:0".parse().unwrap(),
            (None, true) => "[::1]:0".parse().unwrap(),
        };
        self.receiver_at(address)
    }

    /// A stamping receiver bound to `address` where the receiver lives.
    fn receiver_at(&self, address: SocketAddr) -> (UdpSocket, SocketAddr) {
        let socket = match &self.bed {
            Some(bed) => bed.run_in_receiver(|| stamping_receiver(address)).unwrap(),
            None => stamping_receiver(address),
        }
        .unwrap_or_else(|err| panic!("a receiver on {address}: {err}"));
        let address = socket.local_addr().unwrap();
        (socket, address)
    }

    fn params(&self, stream: StreamParams) -> QosParams {
        QosParams::new(self.device(), self.scheduler, stream)
    }

    fn qsocket(&self, domain: Domain, ty: Type, stream: StreamParams) -> qsock::Result<QSocket> {
        let params = self.params(stream);
        self.in_sender(|| QSocket::new(domain, ty, None, &params))
    }

    fn udp(&self, stream: StreamParams) -> QSocket {
        self.qsocket(Domain::IPV4, Type::DGRAM, stream)
            .unwrap_or_else(|err| panic!("attach a socket to {}: {err}", self.scheduler))
    }

    /// The scheduler running on the device, as qsock reports it.
    fn running(&self) -> Option<SchedulerName> {
        let device = self.device().to_owned();
        self.in_sender(|| report(&device))
            .ok()
            .and_then(|shown| shown.scheduler)
    }

    /// How many streams (classes, for the kernel backends) the device has.
    fn streams(&self) -> usize {
        let device = self.device().to_owned();
        self.in_sender(|| report(&device))
            .unwrap_or_else(|err| panic!("report {}: {err}", self.scheduler))
            .streams
            .len()
    }

    fn link_rate(&self) -> Option<Rate> {
        let device = self.device().to_owned();
        self.in_sender(|| report(&device)).unwrap().link_rate
    }

    /// The bytes the scheduler charges the link for one numbered datagram:
    /// a qdisc sees the headers, the user scheduler only the payload.
    fn charged_bytes(&self) -> u64 {
        match self.scheduler {
            SchedulerName::User => PAYLOAD as u64,
            _ => WIRE,
        }
    }

    /// An attach this backend refuses after its own checks, not qsock's
    /// validation of the parameters: the socket, the stream, and why.
    fn refused_attach(&self) -> (Domain, Type, StreamParams, &'static str) {
        let stream = StreamParams::periodic(Duration::from_millis(4), 0, 0).with_packet_size(938);
        match self.scheduler {
            SchedulerName::User => (
                Domain::IPV4,
                Type::STREAM,
                stream,
                "the user scheduler paces datagram sockets only",
            ),
            SchedulerName::Htb => (
                Domain::IPV4,
                Type::DGRAM,
                StreamParams::periodic(Duration::from_micros(100), 0, 0).with_packet_size(1200),
                "HTB refuses a stream faster than the link (100 Mbit/s on 10)",
            ),
            // A datagram socket that is not IP: the class is made before the
            // socket is found to take no IP_RECVERR, so it must be removed.
            SchedulerName::Dwcs => (
                Domain::UNIX,
                Type::DGRAM,
                stream,
                "dwcs needs IP_RECVERR, which a Unix socket does not take",
            ),
            other => unreachable!("{other} is not a backend these tests know"),
        }
    }

    /// The place to test how `scheduler` keeps loss windows and drop flags,
    /// or `None` where it cannot be tested here or keeps none (said on a
    /// SKIP line).
    fn keeping_loss_windows(scheduler: SchedulerName) -> Option<Rig> {
        Rig::new(scheduler).filter(Rig::keeps_loss_windows)
    }

    /// Whether the backend keeps loss windows and drop flags; prints why not.
    fn keeps_loss_windows(&self) -> bool {
        if self.scheduler == SchedulerName::Htb {
            eprintln!(
                "SKIP: htb cannot keep loss windows or honour drop flags: it only isolates \
                 each stream's rate (see backend/htb.rs)"
            );
            return false;
        }
        true
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The user scheduler outlives a test in this process unless reset;
        // the kernel backends go with their namespaces.
        if self.bed.is_none() {
            let _ = reset(self.device());
        }
    }
}

/// One test per contract clause and backend: `user::NAME`, `htb::NAME`,
/// `dwcs::NAME`, each calling `NAME(scheduler)`.
macro_rules! contract {
    (@backend $module:ident, $scheduler:ident, $($clause:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $clause() {
                    super::$clause(qsock::SchedulerName::$scheduler);
                }
            )*
        }
    };
    ($($clause:ident),* $(,)?) => {
        contract!(@backend user, User, $($clause),*);
        contract!(@backend htb, Htb, $($clause),*);
        contract!(@backend dwcs, Dwcs, $($clause),*);
    };
}

contract!(
    a_send_to_a_port_nobody_listens_on_succeeds_and_a_late_receiver_gets_the_stream,
    a_connected_socket_reports_port_unreachable_as_send_does,
    sends_the_kernel_refuses_are_refused_as_sendto_refuses_them,
    qsockinit_is_idempotent_and_changes_the_rate,
    a_stream_lives_exactly_as_long_as_its_socket,
    a_failed_attach_leaves_nothing_behind,
    sockets_need_qsockinit_and_valid_parameters,
    send_frame_over_ipv4_and_ipv6_arrives_and_is_counted,
    overloaded_droppable_streams_keep_their_loss_windows,
    non_droppable_packets_of_an_overloaded_stream_all_arrive,
);

fn qsockinit_is_idempotent_and_changes_the_rate(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    let init = rig.init(mbit(10));
    let first = rig.in_sender(|| qsockinit(&init)).unwrap();
    assert!(first.installed_now, "{first:?}");
    assert_eq!(first.scheduler, scheduler);
    assert_eq!(rig.running(), Some(scheduler));
    assert_eq!(rig.link_rate(), Some(mbit(10)));

    let again = rig.in_sender(|| qsockinit(&init)).unwrap();
    assert!(!again.installed_now, "{again:?}");
    assert_eq!(again.scheduler, scheduler);

    let faster = rig.init(mbit(20));
    let changed = rig.in_sender(|| qsockinit(&faster)).unwrap();
    assert!(!changed.installed_now, "{changed:?}");
    assert_eq!(rig.link_rate(), Some(mbit(20)));
    assert_eq!(rig.running(), Some(scheduler));

    let device = rig.device().to_owned();
    rig.in_sender(|| reset(&device)).unwrap();
    assert_eq!(
        rig.running(),
        None,
        "{scheduler} is still running after reset"
    );
}

fn a_stream_lives_exactly_as_long_as_its_socket(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(10)));
    // 938 bytes every 4 ms: 2 Mbit/s on the wire, within every backend's link.
    let stream = StreamParams::periodic(Duration::from_millis(4), 0, 0).with_packet_size(938);
    assert_eq!(rig.streams(), 0);
    let closed = rig.udp(stream);
    assert_eq!(closed.scheduler(), scheduler);
    assert_eq!(rig.streams(), 1);
    let dropped = rig
        .qsocket(Domain::IPV6, Type::DGRAM, stream)
        .unwrap_or_else(|err| panic!("attach an IPv6 socket: {err}"));
    assert_eq!(rig.streams(), 2);

    closed.close().unwrap();
    assert_eq!(rig.streams(), 1, "qclose left its stream behind");
    drop(dropped);
    assert_eq!(
        rig.streams(),
        0,
        "dropping the socket left its stream behind"
    );
}

fn a_failed_attach_leaves_nothing_behind(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(10)));
    let (domain, ty, stream, why) = rig.refused_attach();
    match rig.qsocket(domain, ty, stream) {
        Ok(socket) => panic!("{scheduler} attached what it should refuse ({why}): {socket:?}"),
        Err(err) => eprintln!("{scheduler} refused, as expected ({why}): {err}"),
    }
    assert_eq!(rig.streams(), 0, "a refused attach left a stream behind");
    // And the scheduler is as usable as before.
    let socket = rig.udp(StreamParams::periodic(Duration::from_millis(4), 0, 0));
    assert_eq!(rig.streams(), 1);
    socket.close().unwrap();
    assert_eq!(rig.streams(), 0);
}

fn sockets_need_qsockinit_and_valid_parameters(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    let stream = StreamParams::periodic(Duration::from_millis(4), 0, 0);
    let err = rig
        .qsocket(Domain::IPV4, Type::DGRAM, stream)
        .expect_err("a socket attached before qsockinit");
    assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
    assert!(err.message().contains("qsockinit"), "{err}");

    rig.install(&rig.init(mbit(10)));
    let bad_device = QosParams::new("nosuchdev0", scheduler, StreamParams::best_effort());
    let err = rig
        .in_sender(|| QSocket::new(Domain::IPV4, Type::DGRAM, None, &bad_device))
        .expect_err("a socket attached to a missing device");
    assert_eq!(err.kind(), ErrorKind::NoDevice, "{err}");
    assert!(err.message().contains("nosuchdev0"), "{err}");

    for invalid in [
        StreamParams::periodic(Duration::from_millis(4), 3, 2),
        StreamParams::periodic(Duration::ZERO, 0, 0),
    ] {
        let err = rig
            .qsocket(Domain::IPV4, Type::DGRAM, invalid)
            .expect_err("a socket attached with invalid parameters");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{invalid:?}: {err}");
    }
    assert_eq!(rig.streams(), 0);
}

fn send_frame_over_ipv4_and_ipv6_arrives_and_is_counted(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(100)));
    const PACKETS: u32 = 10;
    for (domain, ipv6) in [(Domain::IPV4, false), (Domain::IPV6, true)] {
        let (rx, to) = rig.receiver(ipv6);
        let stream = StreamParams::periodic(Duration::from_millis(1), 0, 0)
            .with_packet_size(PAYLOAD as u32)
            .lossless();
        let socket = rig
            .qsocket(domain, Type::DGRAM, stream)
            .unwrap_or_else(|err| panic!("attach ({domain:?}): {err}"));
        // The last packet is the end marker the receiver waits for.
        let frame: Vec<Vec<u8>> = (0..PACKETS)
            .map(|i| packet(7, i, i == PACKETS - 1))
            .collect();
        let slices: Vec<&[u8]> = frame.iter().map(Vec::as_slice).collect();
        let flags = PacketFlags::new()
            .non_droppable()
            .with_deadline(Deadline::after(Duration::from_millis(50)));
        let mut sent = 0;
        while sent < slices.len() {
            sent += socket
                .send_frame(&slices[sent..], Some(&to), &flags)
                .unwrap();
        }
        let arrivals = receive_until_ends(&rx, &[7]);
        assert_eq!(
            sequences(&arrivals, 7),
            (0..PACKETS - 1).collect::<Vec<_>>(),
            "{domain:?}"
        );
        // Every packet arrived, so the scheduler has counted it: schedulers
        // count a packet as it leaves them.
        let info = socket.info().unwrap();
        assert_eq!(info.scheduler, scheduler);
        let counted = &info.stats;
        assert_eq!(
            counted.sent_packets,
            u64::from(PACKETS),
            "{domain:?}: {info:?}"
        );
        // The user scheduler counts payload; qdiscs count headers too.
        let payload = u64::from(PACKETS) * PAYLOAD as u64;
        assert!(
            (payload..=payload + u64::from(PACKETS) * 62).contains(&counted.sent_bytes),
            "{domain:?}: {info:?}"
        );
        assert_eq!(counted.dropped.total(), 0, "{domain:?}: {info:?}");
        assert!(info.send_buffer_bytes > 0, "{info:?}");
        // HTB measures no queueing delay; the DWCS schedulers do.
        assert_eq!(
            counted.queue_delay.is_some(),
            scheduler != SchedulerName::Htb,
            "{info:?}"
        );
        socket.close().unwrap();
    }
}

/// The loss windows of the three overloaded streams.
const OVERLOAD_WINDOWS: [(u32, u32); 3] = [(1, 2), (2, 4), (1, 2)];
/// One packet time on the overloaded link: long, so that an emulated VM's
/// stalls are small beside it.
const PACKET_TIME: Duration = Duration::from_millis(10);

/// What one run of the overloaded periodic set did.
struct Overload {
    arrivals: Vec<Arrival>,
    stats: Vec<SchedulerStats>,
    non_droppable: Vec<u32>,
}

/// Three droppable periodic streams with T = two packet times and windows
/// 1/2, 2/4 and 1/2 (U = 0.75), each sending `packets` packets: 1.5 times
/// what the link carries. With `non_droppable_every`, every such packet of
/// stream 0 is marked non-droppable.
fn overload(rig: &Rig, packets: u32, non_droppable_every: Option<u32>) -> Overload {
    // Exactly one numbered datagram per packet time, as the scheduler
    // charges it. Deadlines within one packet time count as equal, so that
    // the three streams, started together by this thread, share their
    // deadline slots despite the sleeps' overshoot.
    let link = Rate::from_bits_per_second(rig.charged_bytes() * 8 * 100);
    rig.install(&rig.init(link).with_deadline_resolution(PACKET_TIME));
    let (rx, to) = rig.receiver(false);
    let period = PACKET_TIME * 2;
    let sockets: Vec<QSocket> = OVERLOAD_WINDOWS
        .iter()
        .map(|&(oln, old)| rig.udp(StreamParams::periodic(period, oln, old)))
        .collect();
    let receiving = std::thread::spawn(move || receive_until_ends(&rx, &[0, 1, 2]));

    let mut non_droppable = Vec::new();
    let start = Instant::now();
    let start_ns = qsock::monotonic_now();
    for sequence in 0..packets {
        let due = start + period * sequence;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            // The source's own clock: one packet per period per stream.
            std::thread::sleep(wait);
        }
        // Each packet carries its deadline on the source's clock, two periods
        // after it was due. Left to the scheduler, a deadline is max(d,
        // arrival) + T whenever a stream's queue ran empty; in an emulated VM
        // this loop wakes milliseconds late, so the three streams' deadlines
        // drift apart and can straddle a slot boundary, and DWCS orders
        // streams by their windows only within a slot: the guarantee is for
        // streams whose deadlines are equal. Two periods of budget rather
        // than one, so that a stall of the sending loop itself (not the
        // scheduler) does not make a packet late before it reaches the
        // scheduler; the streams still share slots.
        let deadline =
            Deadline::from_monotonic_nanos(start_ns + (period * (sequence + 2)).as_nanos() as u64);
        for (stream, socket) in sockets.iter().enumerate() {
            let flags = match non_droppable_every {
                Some(n) if stream == 0 && sequence % n == 0 => {
                    non_droppable.push(sequence);
                    PacketFlags::new().non_droppable()
                }
                _ => PacketFlags::new(),
            }
            .with_deadline(deadline);
            socket
                .send_to(&packet(stream as u32, sequence, false), &to, &flags)
                .unwrap();
        }
    }
    for (stream, socket) in sockets.iter().enumerate() {
        socket
            .send_to(&packet(stream as u32, packets, true), &to, &end_flags())
            .unwrap();
    }
    let arrivals = receiving.join().unwrap();
    Overload {
        arrivals,
        stats: sockets.iter().map(stats).collect(),
        non_droppable,
    }
}

fn overloaded_droppable_streams_keep_their_loss_windows(scheduler: SchedulerName) {
    let _turn = turn();
    let Some(rig) = Rig::keeping_loss_windows(scheduler) else {
        return;
    };
    const PACKETS: u32 = 120;
    let run = overload(&rig, PACKETS, None);
    let mut dropped = 0;
    for (stream, stats) in run.stats.iter().enumerate() {
        let got = sequences(&run.arrivals, stream as u32);
        // What the scheduler says it dropped is exactly what did not arrive.
        assert_eq!(
            u64::from(PACKETS) - got.len() as u64,
            stats.dropped.total(),
            "stream {stream}: {stats:?}"
        );
        assert_eq!(stats.dropped.queue_full, 0, "stream {stream}: {stats:?}");
        let (oln, old) = OVERLOAD_WINDOWS[stream];
        let worst = worst_window(&got, PACKETS, old);
        assert!(
            worst <= oln,
            "stream {stream} lost {worst} packets in one window of {old} (allowed {oln}): \
             {stats:?}"
        );
        dropped += stats.dropped.total();
    }
    // Overload really happened: of 1.5 link's worth offered, the link carried
    // at most one, so at least a third was dropped (half that, for slack).
    assert!(
        dropped >= u64::from(PACKETS) / 2,
        "only {dropped} of {} packets dropped: the link was not overloaded",
        3 * PACKETS
    );
    // And the link rate held at the receiver: no faster than one packet per
    // packet time (one packet's slack for the stamps).
    let first = run.arrivals.first().unwrap().at;
    let last = run.arrivals.last().unwrap().at;
    let carried = run.arrivals.len() as u32 - 1;
    assert!(
        last - first + PACKET_TIME >= PACKET_TIME * carried,
        "{carried} packets in {:?}: faster than the link",
        last - first
    );
}

fn non_droppable_packets_of_an_overloaded_stream_all_arrive(scheduler: SchedulerName) {
    let _turn = turn();
    let Some(rig) = Rig::keeping_loss_windows(scheduler) else {
        return;
    };
    const PACKETS: u32 = 100;
    let run = overload(&rig, PACKETS, Some(10));
    let got = sequences(&run.arrivals, 0);
    assert_eq!(run.non_droppable.len(), 10);
    for sequence in &run.non_droppable {
        assert!(
            got.contains(sequence),
            "non-droppable packet {sequence} was lost: {:?}",
            run.stats[0]
        );
    }
    let stats = &run.stats[0];
    assert_eq!(
        u64::from(PACKETS) - got.len() as u64,
        stats.dropped.total(),
        "{stats:?}"
    );
    // The set was under overload. Which stream pays for it is the
    // scheduler's choice: the user scheduler may keep every packet of
    // stream 0 and drop more of the others.
    let dropped: u64 = run.stats.iter().map(|s| s.dropped.total()).sum();
    assert!(
        dropped > 0,
        "nothing was dropped: no overload: {:?}",
        run.stats
    );
}

/// A receiver address with a port nobody listens on: it was bound a moment
/// ago and let go.
fn port_nobody_listens_on(rig: &Rig) -> SocketAddr {
    if let Some(bed) = &rig.bed {
        // The receiver answers every datagram with port unreachable, not
        // six and then one a second (loopback, where the user backend
        // runs, is never limited).
        bed.run_in_receiver(|| std::fs::write("/proc/sys/net/ipv4/icmp_ratelimit", "0"))
            .unwrap()
            .unwrap();
    }
    let (socket, address) = rig.receiver(false);
    drop(socket);
    address
}

/// A plain UDP socket in the sender's namespace, connected to `to`, whose
/// `recv` fails once the ICMP error its datagram draws is back.
fn witness(rig: &Rig, to: SocketAddr) -> UdpSocket {
    rig.in_sender(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(to).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    })
}

/// Sends a datagram through `witness` after `socket`'s scheduler let `sent`
/// packets go, and waits for the port unreachable it draws: the ICMP error
/// of the qsocket's last datagram, sent before it, is back by then.
fn wait_for_port_unreachable(socket: &QSocket, sent: u64, witness: &UdpSocket) {
    let until = Instant::now() + Duration::from_secs(5);
    while socket.info().unwrap().stats.sent_packets < sent {
        assert!(
            Instant::now() < until,
            "the scheduler did not let {sent} packets go within 5 s: {:?}",
            socket.info()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    witness.send(b"witness").unwrap();
    let mut buf = [0u8; 16];
    let answer = witness.recv(&mut buf);
    assert_eq!(
        answer.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "no port unreachable came back: {answer:?}"
    );
}

fn a_send_to_a_port_nobody_listens_on_succeeds_and_a_late_receiver_gets_the_stream(
    scheduler: SchedulerName,
) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(10)));
    let closed = port_nobody_listens_on(&rig);
    let socket = rig.udp(
        StreamParams::periodic(Duration::from_millis(4), 0, 0)
            .with_packet_size(PAYLOAD as u32)
            .lossless(),
    );
    let witness = witness(&rig, closed);
    let flags = PacketFlags::new()
        .non_droppable()
        .with_deadline(Deadline::after(Duration::from_secs(1)));
    const EARLY: u32 = 5;
    for sequence in 0..EARLY {
        // sendto succeeds here, however many port unreachables came back.
        socket
            .send_to(&packet(1, sequence, false), &closed, &flags)
            .unwrap_or_else(|err| {
                panic!("send {sequence} to {closed}, where nobody listens yet: {err}")
            });
        wait_for_port_unreachable(&socket, u64::from(sequence) + 1, &witness);
    }
    let (rx, _) = rig.receiver_at(closed);
    const LATE: u32 = 5;
    for sequence in EARLY..EARLY + LATE {
        socket
            .send_to(&packet(1, sequence, false), &closed, &flags)
            .unwrap_or_else(|err| panic!("send {sequence} to the late receiver: {err}"));
    }
    socket
        .send_to(&packet(1, EARLY + LATE, true), &closed, &end_flags())
        .unwrap();
    let arrivals = receive_until_ends(&rx, &[1]);
    assert_eq!(
        sequences(&arrivals, 1),
        (EARLY..EARLY + LATE).collect::<Vec<_>>()
    );
    let stats = socket.info().unwrap().stats;
    assert_eq!(stats.sent_packets, u64::from(EARLY + LATE + 1), "{stats:?}");
    socket.close().unwrap();
}

fn a_connected_socket_reports_port_unreachable_as_send_does(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(10)));
    let closed = port_nobody_listens_on(&rig);
    let socket = rig.udp(StreamParams::periodic(Duration::from_millis(4), 0, 0).lossless());
    socket.socket().connect(&closed.into()).unwrap();
    let witness = witness(&rig, closed);
    let flags = PacketFlags::new().non_droppable();
    socket.send(&packet(1, 0, false), &flags).unwrap();
    wait_for_port_unreachable(&socket, 1, &witness);
    // As send(2) on a connected socket: the error fails the next send, once.
    let err = socket
        .send(&packet(1, 1, false), &flags)
        .expect_err("a send after port unreachable on a connected socket");
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{err}");
    socket
        .send(&packet(1, 2, false), &flags)
        .unwrap_or_else(|err| panic!("the send after the reported error: {err}"));
    socket.close().unwrap();
}

fn sends_the_kernel_refuses_are_refused_as_sendto_refuses_them(scheduler: SchedulerName) {
    let Some(rig) = Rig::new(scheduler) else {
        return;
    };
    rig.install(&rig.init(mbit(10)));
    let (rx, to) = rig.receiver(false);
    let socket = rig.udp(StreamParams::periodic(Duration::from_millis(4), 0, 0).lossless());
    let plain = rig.in_sender(|| socket2::Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap());
    let data = packet(2, 0, false);
    let flags = PacketFlags::new().non_droppable();
    let cases: [(&str, Option<SocketAddr>); 3] = [
        ("no destination on an unconnected socket", None),
        ("port 0", Some(SocketAddr::new(to.ip(), 0))),
        (
            "an IPv6 destination on an IPv4 socket",
            Some("[::1]:9".parse().unwrap()),
        ),
    ];
    for (what, destination) in cases {
        let kernel = match destination {
            None => plain.send(&data),
            Some(address) => plain.send_to(&data, &address.into()),
        }
        .expect_err(what);
        let refused = match destination {
            None => socket.send(&data, &flags),
            Some(address) => socket.send_to(&data, &address, &flags),
        }
        .expect_err(what);
        assert_eq!(
            Some(refused.errno()),
            kernel.raw_os_error(),
            "{what}: qsock said {refused}, sendto said {kernel}"
        );
    }
    let stats = socket.info().unwrap().stats;
    assert_eq!(stats.sent_packets, 0, "refused sends counted: {stats:?}");
    assert_eq!(stats.backlog_packets, 0, "refused sends queued: {stats:?}");
    // Nothing but the end marker arrives.
    socket
        .send_to(&packet(2, 1, true), &to, &end_flags())
        .unwrap();
    let arrivals = receive_until_ends(&rx, &[2]);
    assert_eq!(sequences(&arrivals, 2), Vec::<u32>::new());
    socket.close().unwrap();
}
