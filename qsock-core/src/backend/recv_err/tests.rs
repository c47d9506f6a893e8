//! ICMP errors on a loopback socket with `IP_RECVERR`, as the dwcs backend
//! sets it: what the kernel does to sends, and what `resend_after` makes of it.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use super::*;

/// How long an ICMP error on loopback may take to come back: far longer
/// than it does, so that only a lost error makes a test wait this long.
const ICMP_WITHIN: Duration = Duration::from_secs(5);

/// A loopback address of `domain` with a port nobody listens on (it was
/// bound a moment ago and let go).
fn port_nobody_listens_on(domain: Domain) -> SocketAddr {
    let any: SocketAddr = if domain == Domain::IPV6 {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    UdpSocket::bind(any).unwrap().local_addr().unwrap()
}

/// A UDP socket with `IP_RECVERR` (and `IPV6_RECVERR`) on, as attach leaves it.
fn recv_err_socket(domain: Domain) -> Socket {
    let socket = Socket::new(domain, Type::DGRAM, None).unwrap();
    if domain == Domain::IPV6 {
        sys::set_recv_err(socket.as_fd(), true, true).unwrap();
    }
    sys::set_recv_err(socket.as_fd(), false, true).unwrap();
    socket
}

/// The dwcs backend's send: `send_frame`'s resend rule over `packets`.
fn send(socket: &Socket, packets: &[&[u8]], to: Option<&SockAddr>) -> io::Result<usize> {
    let mut retried = false;
    sys::send_datagrams_or_resend(socket.as_fd(), packets, to, 0, &mut |err| {
        resend_after(socket, err, &mut retried)
    })
}

/// How a test sends: as the backend does on a socket.
type SendFn = fn(&Socket, &[&[u8]], Option<&SockAddr>) -> io::Result<usize>;

/// A send on a socket whose `IP_RECVERR` the backend did not turn on: it
/// asks `resend_after` nothing.
fn send_plain(socket: &Socket, packets: &[&[u8]], to: Option<&SockAddr>) -> io::Result<usize> {
    sys::send_datagrams(socket.as_fd(), packets, to, 0)
}

/// Sends one datagram to `to` and waits until the ICMP error it draws is
/// queued on the socket.
fn draw_icmp_error(socket: &Socket, to: &SockAddr) {
    send(socket, &[b"draws an ICMP error"], Some(to)).unwrap();
    assert!(
        sys::wait_error(socket, ICMP_WITHIN),
        "no ICMP error came back from {:?} within {ICMP_WITHIN:?}",
        to.as_socket()
    );
}

#[test]
fn an_unconnected_socket_sends_on_after_port_unreachable() {
    for domain in [Domain::IPV4, Domain::IPV6] {
        let closed = port_nobody_listens_on(domain);
        let to = SockAddr::from(closed);

        // What the kernel does with IP_RECVERR on: the ICMP error fails the
        // next send, which then sends nothing.
        let bare = recv_err_socket(domain);
        sys::send_datagrams(bare.as_fd(), &[b"first"], Some(&to), 0).unwrap();
        assert!(
            sys::wait_error(&bare, ICMP_WITHIN),
            "{domain:?}: no ICMP error"
        );
        let err = sys::send_datagrams(bare.as_fd(), &[b"second"], Some(&to), 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{domain:?}");

        // With resend_after, as a plain socket: every send succeeds, in one
        // datagram or several (sendmmsg), and the queue is left empty.
        let socket = recv_err_socket(domain);
        for round in 0..3 {
            draw_icmp_error(&socket, &to);
            let frame: [&[u8]; 3] = [b"a", b"b", b"c"];
            assert_eq!(
                send(&socket, &frame, Some(&to)).unwrap(),
                3,
                "{domain:?} round {round}"
            );
            assert!(sys::wait_error(&socket, ICMP_WITHIN), "{domain:?}");
            assert_eq!(send(&socket, &[b"d"], Some(&to)).unwrap(), 1, "{domain:?}");
        }

        // A receiver that starts late gets what is sent from then on, and
        // the errors queued before are gone once a send has met them.
        let receiver = UdpSocket::bind(closed).unwrap();
        receiver.set_read_timeout(Some(ICMP_WITHIN)).unwrap();
        assert_eq!(send(&socket, &[b"late"], Some(&to)).unwrap(), 1);
        let mut buf = [0u8; 16];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late", "{domain:?}");
        assert_eq!(socket.take_error().unwrap().map(|e| e.to_string()), None);
    }
}

#[test]
fn a_connected_socket_reports_port_unreachable_as_a_plain_one_does() {
    for domain in [Domain::IPV4, Domain::IPV6] {
        let to = SockAddr::from(port_nobody_listens_on(domain));
        let plain = Socket::new(domain, Type::DGRAM, None).unwrap();
        let socket = recv_err_socket(domain);
        let sends: [(&Socket, SendFn); 2] = [(&plain, send_plain), (&socket, send)];
        for (sender, send) in sends {
            sender.connect(&to).unwrap();
            send(sender, &[b"first"], None).unwrap();
            assert!(
                sys::wait_error(sender, ICMP_WITHIN),
                "{domain:?}: no ICMP error"
            );
            let err = send(sender, &[b"second"], None).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{domain:?}");
            // Reported once: the next send goes.
            assert_eq!(send(sender, &[b"third"], None).unwrap(), 1, "{domain:?}");
        }
    }
}

#[test]
fn failures_of_the_send_itself_are_not_resent() {
    let socket = recv_err_socket(Domain::IPV4);
    let to = SockAddr::from(port_nobody_listens_on(Domain::IPV4));
    draw_icmp_error(&socket, &to);
    // Too big for UDP: the kernel says EMSGSIZE, whatever is queued.
    let huge = vec![0u8; 70_000];
    let err = send(&socket, &[&huge], Some(&to)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE), "{err}");
    assert!(!resend_after(
        &socket,
        &io::Error::from_raw_os_error(libc::ENOBUFS),
        &mut false
    ));
}

#[test]
fn a_send_failed_by_an_icmp_error_another_reader_took_is_made_once_more() {
    for domain in [Domain::IPV4, Domain::IPV6] {
        let to = SockAddr::from(port_nobody_listens_on(domain));
        let socket = recv_err_socket(domain);
        draw_icmp_error(&socket, &to);
        let failure = sys::send_datagrams(socket.as_fd(), &[b"fails"], Some(&to), 0).unwrap_err();
        assert_eq!(
            failure.raw_os_error(),
            Some(libc::ECONNREFUSED),
            "{domain:?}"
        );
        // A reader of transmit timestamps empties the queue first.
        let taken = sys::take_queued_errors(socket.as_fd()).unwrap();
        assert!(taken.iter().any(is_icmp), "{domain:?}: {taken:?}");
        let mut retried = false;
        assert!(resend_after(&socket, &failure, &mut retried), "{domain:?}");
        assert!(retried, "{domain:?}");
        // Once: a failure that comes back is the send's own.
        assert!(!resend_after(&socket, &failure, &mut retried), "{domain:?}");
        assert_eq!(
            send(&socket, &[b"goes"], Some(&to)).unwrap(),
            1,
            "{domain:?}"
        );
        // A failure no ICMP error causes is not made again at all.
        let not_permitted = io::Error::from_raw_os_error(libc::EPERM);
        assert!(
            !resend_after(&socket, &not_permitted, &mut false),
            "{domain:?}"
        );
    }
}

#[test]
fn hard_errors_are_those_the_kernel_reports_to_connected_sockets() {
    let error = |origin, icmp_type, icmp_code| QueuedError {
        origin,
        errno: 0,
        icmp_type,
        icmp_code,
    };
    let v4 = libc::SO_EE_ORIGIN_ICMP;
    let v6 = libc::SO_EE_ORIGIN_ICMP6;
    for (hard, entry) in [
        (true, error(v4, 3, 3)),   // port unreachable
        (true, error(v4, 3, 2)),   // protocol unreachable
        (true, error(v4, 3, 13)),  // administratively filtered
        (true, error(v4, 12, 0)),  // parameter problem
        (false, error(v4, 3, 0)),  // network unreachable
        (false, error(v4, 3, 1)),  // host unreachable
        (false, error(v4, 11, 0)), // time exceeded
        (true, error(v6, 1, 4)),   // port unreachable
        (true, error(v6, 1, 1)),   // administratively prohibited
        (false, error(v6, 1, 0)),  // no route
        (false, error(v6, 1, 3)),  // address unreachable
        (false, error(v6, 3, 0)),  // time exceeded
        (false, error(libc::SO_EE_ORIGIN_LOCAL, 0, 0)),
    ] {
        assert_eq!(is_hard(&entry), hard, "{entry:?}");
    }
}
