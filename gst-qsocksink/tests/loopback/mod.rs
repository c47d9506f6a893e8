//! A UDP socket on loopback for a sink to send to.

use std::net::UdpSocket;
use std::time::Duration;

/// A socket bound to a free port on 127.0.0.1, whose reads give up after
/// 10 s, and that port.
pub fn receiver() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a free loopback port");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let port = socket.local_addr().expect("the bound address").port();
    (socket, port)
}
