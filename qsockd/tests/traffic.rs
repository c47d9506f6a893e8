//! A socket attached through qsockd sends through its own class: the
//! class's counters (Info, and `tc -s class show`) grow by what it sent,
//! and the class has the stream's rate once configured.

mod support;

use std::os::fd::AsFd;
use std::time::Duration;

use qsock::daemon::protocol::{Reply, Request};
use support::{attached, bed, sender_udp, stream_every, Client, Daemon};

#[test]
fn an_attached_socket_sends_through_its_class_at_its_rate() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let client = Client::connect(&daemon);
    let socket = sender_udp(&bed);
    let (stream, class) =
        attached(&client.attach(&bed, socket.as_fd(), stream_every(Duration::from_millis(2))));
    let receiver = bed
        .run_in_receiver(|| std::net::UdpSocket::bind((bed.receiver_v4(), 0)))
        .expect("enter the receiver namespace")
        .expect("a receiving socket");
    let destination = receiver.local_addr().expect("its address");
    const SENT: u64 = 20;
    for _ in 0..SENT {
        socket.send_to(&[0u8; 1000], destination).expect("send");
    }
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let mut buf = [0u8; 2000];
    for _ in 0..SENT {
        receiver
            .recv_from(&mut buf)
            .expect("every datagram arrives");
    }
    let Reply::Info { stats, .. } = client.call(&Request::Info { stream }, None) else {
        panic!("no Info reply");
    };
    // ARP may go first through the direct queue; the datagrams go through the class.
    assert!(stats.sent_packets >= SENT, "{stats:?}");
    let shown = bed
        .tc_in_sender(&["class", "show", "dev", bed.sender_dev()])
        .expect("tc class show");
    let line = shown
        .lines()
        .find(|line| line.contains(&format!("class htb {class} ")))
        .unwrap_or_else(|| panic!("{class} not in:\n{shown}"));
    // 1062 bytes every 2 ms on the wire.
    assert!(line.contains("rate 4248Kbit"), "{line}");
}
