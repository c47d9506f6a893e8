//! The `user` backend over loopback, with no privilege, where it differs from
//! the others. What every backend must do (loss windows under overload,
//! non-droppable packets, send_frame and qinfo, streams' lifetimes), the
//! user backend included, is tested in backends.rs.

// A test that cannot set up should stop at once.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use qsock::{InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use socket2::{Domain, Type};
use support::{packet, receive_until_ends, sequences, stamping_receiver, turn};

/// The user scheduler on lo at 100 Mbit/s, for this test alone: it runs once
/// per device and process, so tests take turns on lo.
fn user_on_lo() -> parking_lot::MutexGuard<'static, ()> {
    let turn = turn();
    let init =
        InitParams::new("lo", SchedulerName::User).with_link_rate("100mbit".parse().unwrap());
    qsock::qsockinit(&init).unwrap();
    turn
}

#[test]
fn auto_attaches_to_the_user_scheduler_running_for_the_device() {
    let _turn = user_on_lo();
    let rx = stamping_receiver("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = rx.local_addr().unwrap();
    let params = QosParams::new(
        "lo",
        SchedulerName::Auto,
        // A period a busy machine's scheduler thread keeps: with 100 us the
        // first packet was once dropped as late on a loaded CI host.
        StreamParams::periodic(Duration::from_millis(10), 0, 0),
    );
    let socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params).unwrap();
    assert_eq!(socket.scheduler(), SchedulerName::User);
    socket
        .send_to(&packet(7, 0, false), &address, &PacketFlags::new())
        .unwrap();
    socket
        .send_to(&packet(7, 1, true), &address, &support::end_flags())
        .unwrap();
    let arrivals = receive_until_ends(&rx, &[7]);
    assert_eq!(sequences(&arrivals, 7), vec![0]);
    assert_eq!(socket.info().unwrap().scheduler, SchedulerName::User);
    socket.close().unwrap();
    qsock::reset("lo").unwrap();
}

/// The scheduler thread sends after the call returned: a datagram the kernel
/// refuses there (a broadcast address without SO_BROADCAST: EACCES, or no
/// route: ENETUNREACH) is not counted as sent, and the next send reports it.
#[test]
fn a_datagram_the_kernel_refuses_on_the_thread_is_not_counted_and_is_reported() {
    let _turn = user_on_lo();
    let rx = stamping_receiver("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = rx.local_addr().unwrap();
    let broadcast = "255.255.255.255:9".parse().unwrap();
    let plain = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let kernel = plain
        .send_to(&packet(7, 0, false), broadcast)
        .expect_err("sendto to a broadcast address without SO_BROADCAST");
    let params = QosParams::new(
        "lo",
        SchedulerName::User,
        StreamParams::periodic(Duration::from_millis(10), 0, 0),
    );
    let socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params).unwrap();
    socket
        .send_to(&packet(7, 0, false), &broadcast, &PacketFlags::new())
        .unwrap();
    // Queued (backlog 1), then released (sent 1), then taken back: only
    // then are both 0.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = socket.info().unwrap().stats;
        if stats.sent_packets == 0 && stats.backlog_packets == 0 {
            assert_eq!(stats.dropped.total(), 0, "{stats:?}");
            break;
        }
        assert!(
            Instant::now() < until,
            "{stats:?}: the refused datagram is still counted as sent"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let err = socket
        .send_to(&packet(7, 2, false), &address, &PacketFlags::new())
        .expect_err("the send after a refused datagram reports it");
    let cause = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error);
    assert_eq!(cause, kernel.raw_os_error(), "{err}; sendto said {kernel}");
    assert!(
        err.message().contains("refused an earlier datagram"),
        "{err}"
    );
    // Reported once, and nothing of it arrived.
    socket
        .send_to(&packet(7, 3, true), &address, &support::end_flags())
        .unwrap();
    assert_eq!(
        sequences(&receive_until_ends(&rx, &[7]), 7),
        Vec::<u32>::new()
    );
    assert_eq!(socket.info().unwrap().stats.sent_packets, 1);
    socket.close().unwrap();
    qsock::reset("lo").unwrap();
}
