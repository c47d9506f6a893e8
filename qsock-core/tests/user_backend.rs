//! The `user` backend over loopback, with no privilege, where it differs from
//! the others. What every backend must do (loss windows under overload,
//! non-droppable packets, send_frame and qinfo, streams' lifetimes), the
//! user backend included, is tested in backends.rs.

// A test that cannot set up should stop at once.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use qsock::{InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use socket2::{Domain, Type};
use support::{packet, receive_until_ends, sequences, stamping_receiver};

#[test]
fn auto_attaches_to_the_user_scheduler_running_for_the_device() {
    // This binary's only test: no other test's user scheduler runs on lo.
    let init =
        InitParams::new("lo", SchedulerName::User).with_link_rate("100mbit".parse().unwrap());
    qsock::qsockinit(&init).unwrap();
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
