//! The `user` backend over loopback, with no privilege: what an in-process
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once
//! scheduler owns — ordering and pacing this process's streams within a link
//! rate, keeping their loss windows, never losing a non-droppable packet.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use qsock::{ErrorKind, InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use socket2::{Domain, Protocol, Type};

/// The user scheduler is per process and per device, and only `lo` exists
/// without privilege: the tests of this file take turns, so that one test's
/// link rate is not another's.
fn init(rate: &str, resolution: Duration) -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let turn = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let init = InitParams::new("lo", SchedulerName::User)
        .with_link_rate(rate.parse().unwrap())
        .with_deadline_resolution(resolution);
    qsock::qsockinit(&init).unwrap();
    turn
}

const PAYLOAD: usize = 1000;

/// Bytes 0..4: stream, 4..8: sequence number, 8: 1 for the end marker.
fn packet(stream: u32, sequence: u32, end: bool) -> Vec<u8> {
    let mut bytes = vec![0u8; PAYLOAD];
    bytes[0..4].copy_from_slice(&stream.to_be_bytes());
    bytes[4..8].copy_from_slice(&sequence.to_be_bytes());
    bytes[8] = u8::from(end);
    bytes
}

fn receiver() -> (UdpSocket, SocketAddr) {
    let socket = socket2::Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_recv_buffer_size(8 << 20).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let socket: UdpSocket = socket.into();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

/// Receives until every stream in `streams` has delivered its end marker;
/// returns the sequence numbers seen per stream.
fn receive_until_ends(socket: &UdpSocket, streams: &[u32]) -> BTreeMap<u32, Vec<u32>> {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut ended = Vec::new();
    let mut buffer = [0u8; 2048];
    while ended.len() < streams.len() {
        let length = socket
            .recv(&mut buffer)
            .expect("an end marker did not arrive within 10 s");
        assert_eq!(length, PAYLOAD);
        let stream = u32::from_be_bytes(buffer[0..4].try_into().unwrap());
        let sequence = u32::from_be_bytes(buffer[4..8].try_into().unwrap());
        if buffer[8] == 1 {
            ended.push(stream);
        } else {
            seen.entry(stream).or_default().push(sequence);
        }
    }
    seen
}

/// Most losses in one of the consecutive windows of `window` packets that
/// start at sequence 0. DWCS restarts x'/y' after every `old` packets, so its
/// guarantee is per consecutive window, not per sliding one (a feasible set
/// may lose `oln` at the end of one window and `oln` at the start of the next).
fn worst_window(received: &[u32], sent: u32, window: u32) -> u32 {
    let mut lost = vec![true; sent as usize];
    for &sequence in received {
        lost[sequence as usize] = false;
    }
    lost.chunks(window as usize)
        .map(|w| w.iter().filter(|&&l| l).count() as u32)
        .max()
        .unwrap_or(0)
}

#[test]
fn overloaded_streams_keep_their_loss_windows_and_non_droppable_packets() {
    // 3.2 Mbit/s carries 400 packets of 1000 bytes a second (C = 2.5 ms).
    // Three streams each offer one every 5 ms (T = 5 ms, two packet times):
    // 600 a second in all, 1.5 times the link. Windows 1/2, 2/4 and 1/2 make
    // the set feasible: U = (1/2 + 2/4 + 1/2) · C/T = 0.75.
    // Deadlines within one packet time count as equal, so that the three
    // streams, started together by this thread, share their deadline slots
    // despite the sleeps' overshoot (see model::Scheduler::deadline_slot).
    let _turn = init("3200kbit", Duration::from_micros(2500));
    let (rx, address) = receiver();
    let period = Duration::from_millis(5);
    let windows = [(1, 2), (2, 4), (1, 2)];
    let sockets: Vec<QSocket> = windows
        .iter()
        .map(|&(oln, old)| {
            let params = QosParams::new(
                "lo",
                SchedulerName::User,
                StreamParams::periodic(period, oln, old),
            );
            QSocket::new(Domain::IPV4, Type::DGRAM, None, &params).unwrap()
        })
        .collect();
    assert_eq!(sockets[0].scheduler(), SchedulerName::User);

    const PACKETS: u32 = 400;
    let start = Instant::now();
    let mut non_droppable = Vec::new();
    for sequence in 0..PACKETS {
        let due = start + period * sequence;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            // The source's own clock: one packet per period per stream.
            std::thread::sleep(wait);
        }
        for (stream, socket) in sockets.iter().enumerate() {
            // Every tenth packet of stream 0 must arrive, late if need be.
            let flags = if stream == 0 && sequence % 10 == 0 {
                non_droppable.push(sequence);
                PacketFlags::new().non_droppable()
            } else {
                PacketFlags::new()
            };
            socket
                .send_to(&packet(stream as u32, sequence, false), &address, &flags)
                .unwrap();
        }
    }
    // The end markers are non-droppable and queue behind everything sent.
    let end = PacketFlags::new().non_droppable();
    for (stream, socket) in sockets.iter().enumerate() {
        socket
            .send_to(&packet(stream as u32, PACKETS, true), &address, &end)
            .unwrap();
    }
    let seen = receive_until_ends(&rx, &[0, 1, 2]);
    let elapsed = start.elapsed();

    let mut delivered = 0;
    for (stream, socket) in sockets.iter().enumerate() {
        let info = socket.info().unwrap();
        let got = seen.get(&(stream as u32)).cloned().unwrap_or_default();
        delivered += got.len() + 1;
        // What the scheduler says it dropped is what did not arrive.
        assert_eq!(
            u64::from(PACKETS) - got.len() as u64,
            info.stats.dropped.total(),
            "stream {stream}: {info:?}"
        );
        let (oln, old) = windows[stream];
        let worst = worst_window(&got, PACKETS, old);
        assert!(
            worst <= oln,
            "stream {stream} lost {worst} packets in one window of {old} (allowed {oln})"
        );
    }
    for sequence in &non_droppable {
        assert!(
            seen[&0].contains(sequence),
            "non-droppable packet {sequence} was lost"
        );
    }
    // Overload really happened: the link could not carry everything offered.
    assert!(
        delivered < 3 * PACKETS as usize,
        "nothing was dropped: the link was not overloaded"
    );
    // And the link rate held: what left fits in 3.2 Mbit/s (plus one packet).
    let bytes = delivered as f64 * PAYLOAD as f64;
    let ceiling = 400_000.0 * elapsed.as_secs_f64() + PAYLOAD as f64;
    assert!(
        bytes <= ceiling,
        "{bytes} bytes left in {elapsed:?}: faster than the link"
    );
    for socket in sockets {
        socket.close().unwrap();
    }
}

#[test]
fn sockets_need_qsockinit_and_valid_parameters() {
    let params = QosParams::new(
        "lo",
        SchedulerName::Htb,
        StreamParams::periodic(Duration::from_millis(1), 0, 0),
    );
    // htb was never installed on lo in this process's namespace by this test.
    if let Err(err) = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params) {
        assert!(
            matches!(
                err.kind(),
                ErrorKind::NotSupported | ErrorKind::PermissionDenied
            ),
            "{err}"
        );
    }
    let bad_device = QosParams::new(
        "nosuchdev0",
        SchedulerName::User,
        StreamParams::best_effort(),
    );
    let err = QSocket::new(Domain::IPV4, Type::DGRAM, None, &bad_device).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoDevice);
    assert!(err.message().contains("nosuchdev0"), "{err}");
}

#[test]
fn send_frame_ipv6_and_info() {
    let _turn = init("100mbit", InitParams::DEFAULT_DEADLINE_RESOLUTION);
    let socket = socket2::Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    if socket
        .bind(&"[::1]:0".parse::<SocketAddr>().unwrap().into())
        .is_err()
    {
        panic!("IPv6 loopback is not available: the test needs ::1");
    }
    let rx: UdpSocket = socket.into();
    let address = rx.local_addr().unwrap();
    let params = QosParams::new(
        "lo",
        SchedulerName::Auto,
        StreamParams::periodic(Duration::from_micros(100), 0, 0),
    );
    let qsocket = QSocket::new(Domain::IPV6, Type::DGRAM, None, &params).unwrap();
    let frame: Vec<Vec<u8>> = (0..10).map(|i| packet(7, i, i == 9)).collect();
    let slices: Vec<&[u8]> = frame.iter().map(Vec::as_slice).collect();
    let flags = PacketFlags::new()
        .non_droppable()
        .with_deadline(qsock::Deadline::after(Duration::from_millis(50)));
    assert_eq!(
        qsocket.send_frame(&slices, Some(&address), &flags).unwrap(),
        10
    );
    let seen = receive_until_ends(&rx, &[7]);
    assert_eq!(seen[&7], (0..9).collect::<Vec<_>>());
    let info = qsocket.info().unwrap();
    assert_eq!(info.scheduler, SchedulerName::User);
    assert_eq!(info.stats.sent_packets, 10);
    assert_eq!(info.stats.sent_bytes, 10 * PAYLOAD as u64);
    assert_eq!(info.stats.dropped.total(), 0);
    assert!(info.send_buffer_bytes > 0);
    assert!(info.stats.queue_delay.is_some());
    qsocket.close().unwrap();
}
