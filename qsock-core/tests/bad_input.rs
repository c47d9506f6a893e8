//! Bad input to the Rust API: every refusal is an `Err` of the right kind,
//! made before anything changes; no panic, no descriptor leaked, and a failed
//! `attach` hands the socket back as it was.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use qsock::{
    qsockinit, ErrorKind, InitParams, PacketFlags, QSocket, QosParams, Rate, SchedulerName,
    StreamParams,
};
use socket2::{Domain, Socket, Type};

/// Counting descriptors only means something while no other test of this
/// binary opens or closes any: every test holds this lock.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// A UDP socket on loopback that waits up to 2 s for a datagram, and its
/// address.
fn loopback_receiver() -> (UdpSocket, SocketAddr) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let address = receiver.local_addr().unwrap();
    (receiver, address)
}

fn periodic(ipg_micros: u64, oln: u32, old: u32) -> StreamParams {
    StreamParams::periodic(Duration::from_micros(ipg_micros), oln, old)
}

/// Each case: parameters and the kind of error they must give.
fn bad_params() -> Vec<(QosParams, ErrorKind, &'static str)> {
    let on_lo = |stream| QosParams::new("lo", SchedulerName::User, stream);
    let bad_streams = [
        (periodic(10_000, 3, 2), "must not exceed"),
        (periodic(10_000, 1, 0), "old (the window length) is 0"),
        (periodic(0, 0, 10), "ipg is 0"),
        (periodic(0, 0, 0).lossless(), "ipg is 0"),
        (
            StreamParams::aperiodic().with_packet_size(0),
            "packet size 0",
        ),
    ];
    let good = periodic(10_000, 0, 10);
    let bad_devices = [
        ("", "no device given"),
        ("eth0/1", "not a valid interface name"),
        ("a-very-long-interface-name", "at most 15 characters"),
        ("has space", "not a valid interface name"),
        ("nosuchdev0", "no network device"),
    ];
    let streams = bad_streams
        .into_iter()
        .map(|(stream, needle)| (on_lo(stream), ErrorKind::InvalidInput, needle));
    let devices = bad_devices.into_iter().map(|(device, needle)| {
        let params = QosParams::new(device, SchedulerName::User, good);
        (params, ErrorKind::NoDevice, needle)
    });
    // Valid, but no dwcs scheduler is installed on lo.
    let no_dwcs = (
        QosParams::new("lo", SchedulerName::Dwcs, good),
        ErrorKind::NotSupported,
        "not installed on lo",
    );
    streams.chain(devices).chain([no_dwcs]).collect()
}

#[test]
fn qsocket_refuses_bad_params_without_leaking() {
    let _serial = serial();
    let before = open_fds();
    for (params, kind, needle) in bad_params() {
        let err = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params)
            .expect_err(&format!("{params:?} was accepted"));
        assert_eq!(err.kind(), kind, "{params:?}: {err}");
        assert!(err.message().contains(needle), "{params:?}: {err}");
    }
    assert_eq!(open_fds(), before, "QSocket::new leaked descriptors");
}

#[test]
fn attach_failure_returns_the_socket_intact() {
    let _serial = serial();
    let (receiver, destination) = loopback_receiver();

    let before = open_fds();
    let mut socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.set_send_buffer_size(65_536).unwrap();
    let fd = socket.as_raw_fd();
    let local = socket.local_addr().unwrap().as_socket();
    let buffer = socket.send_buffer_size().unwrap();

    for (params, kind, needle) in bad_params() {
        let failed = QSocket::attach(socket, &params).expect_err("attached with bad params");
        assert_eq!(failed.error.kind(), kind, "{params:?}: {}", failed.error);
        assert!(failed.error.message().contains(needle), "{}", failed.error);
        socket = failed.socket;
        assert_eq!(socket.as_raw_fd(), fd, "a different descriptor came back");
        assert_eq!(socket.local_addr().unwrap().as_socket(), local);
        assert_eq!(socket.send_buffer_size().unwrap(), buffer);
    }
    socket.send_to(b"still works", &destination.into()).unwrap();
    let mut buf = [0u8; 64];
    let (len, from) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"still works");
    assert_eq!(Some(from), local);
    drop(socket);
    assert_eq!(open_fds(), before, "attach leaked descriptors");
}

#[test]
fn attach_refuses_a_socket_that_is_not_udp_or_tcp() {
    let _serial = serial();
    let raw = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    let fd = raw.as_raw_fd();
    let params = QosParams::new("lo", SchedulerName::User, periodic(10_000, 0, 10));
    let failed = QSocket::attach(raw, &params).expect_err("attached a seqpacket socket");
    assert_eq!(failed.error.kind(), ErrorKind::NotSupported);
    assert_eq!(failed.socket.as_raw_fd(), fd);
}

#[test]
fn qsockinit_refuses_bad_params() {
    let _serial = serial();
    let cases = [
        (
            InitParams::new("", SchedulerName::User),
            ErrorKind::NoDevice,
        ),
        (
            InitParams::new("a/b", SchedulerName::User),
            ErrorKind::NoDevice,
        ),
        (
            InitParams::new("nosuchdev0", SchedulerName::User),
            ErrorKind::NoDevice,
        ),
        (
            InitParams {
                limit: Some(0),
                ..InitParams::new("lo", SchedulerName::User)
            },
            ErrorKind::InvalidInput,
        ),
        // Not loaded on a development machine.
        (
            InitParams::new("lo", SchedulerName::Dwcs),
            ErrorKind::NotSupported,
        ),
        // The user scheduler never sees the host's other traffic.
        (
            InitParams::new("lo", SchedulerName::User)
                .with_best_effort_rate(Rate::from_bits_per_second(1_000_000)),
            ErrorKind::NotSupported,
        ),
    ];
    for (init, kind) in cases {
        let err = qsockinit(&init).expect_err(&format!("{init:?} was accepted"));
        assert_eq!(err.kind(), kind, "{init:?}: {err}");
    }
}

/// Runs the user backend, so it needs the DWCS model: a refused `change`
/// leaves the stream working as before.
#[test]
fn refused_change_leaves_the_stream_alone() {
    let _serial = serial();
    qsockinit(&InitParams::new("lo", SchedulerName::User)).unwrap();
    let (receiver, destination) = loopback_receiver();

    let before = open_fds();
    let params = QosParams::new("lo", SchedulerName::User, periodic(1_000, 1, 10));
    let mut socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params).unwrap();
    for (bad, kind, _) in bad_params() {
        let err = socket.change(&bad).expect_err("changed to bad params");
        assert_eq!(err.kind(), kind, "{bad:?}: {err}");
        assert_eq!(
            socket.params(),
            &params,
            "a refused change changed the params"
        );
    }
    let flags = PacketFlags::new().non_droppable();
    assert_eq!(socket.send_to(b"after", &destination, &flags).unwrap(), 5);
    let mut buf = [0u8; 16];
    assert_eq!(receiver.recv(&mut buf).unwrap(), 5);
    socket.close().unwrap();
    // The scheduler thread lets go of the stream's duplicate descriptor once
    // its queue is empty.
    for _ in 0..50 {
        if open_fds() == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(open_fds(), before, "a closed qsocket left descriptors open");
}
