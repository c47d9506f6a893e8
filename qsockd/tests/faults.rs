//! Faults a client can commit, each met with a clear refusal while qsockd
//! keeps serving everyone else: malformed, oversized and wrong-version
//! messages; descriptors that are not a UDP or TCP socket of qsockd's
//! namespace; a client that never reads its replies; a thousand clients at
//! once, after which no descriptor or class is left behind.

mod support;

use std::net::UdpSocket;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::socket::MsgFlags;
use qsock::daemon::protocol::{self, Reply, ReplyErrorKind, Request, PROTOCOL_VERSION};
use qsock_testbed::TestBed;
use support::{
    attached, bed, measure_until, refusal, sender_udp, stream_classes, stream_every, Client,
    Daemon, PREPARED,
};

/// qsockd still admits a stream on a fresh connection.
fn still_serves(bed: &TestBed, daemon: &Daemon) {
    let client = Client::connect(daemon);
    let socket = sender_udp(bed);
    attached(&client.attach(bed, socket.as_fd(), stream_every(Duration::from_millis(50))));
}

/// Sends raw bytes as one message and returns the reply, after which
/// qsockd must have closed the connection.
fn refused_and_closed(client: &Client, bytes: &[u8]) -> (ReplyErrorKind, String) {
    protocol::send_frame(client.fd.as_fd(), bytes, None, MsgFlags::empty()).expect("send");
    let frame = protocol::recv_frame(client.fd.as_fd(), MsgFlags::empty()).expect("a reply");
    let reply: Reply = protocol::decode(&frame.bytes).expect("a reply qsockd sent");
    assert!(client.closed_by_daemon(), "qsockd kept the connection open");
    refusal(&reply)
}

#[test]
fn broken_messages_are_refused_and_their_connection_closed() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);

    let (kind, message) = refused_and_closed(&Client::connect(&daemon), b"{\"request\": 17");
    assert_eq!(kind, ReplyErrorKind::Protocol, "{message}");
    assert!(message.contains("not a qsockd request"), "{message}");

    let oversized = vec![b'x'; protocol::MAX_MESSAGE_BYTES + 1];
    let (kind, message) = refused_and_closed(&Client::connect(&daemon), &oversized);
    assert_eq!(kind, ReplyErrorKind::Protocol, "{message}");
    assert!(message.contains("longer than 65536 bytes"), "{message}");

    let hello = protocol::encode(&Request::Hello {
        version: PROTOCOL_VERSION + 1,
    })
    .expect("encode");
    let (kind, message) = refused_and_closed(&Client::raw(&daemon), &hello);
    assert_eq!(kind, ReplyErrorKind::Protocol, "{message}");
    assert!(message.contains("speaks protocol version 1"), "{message}");

    let info = protocol::encode(&Request::Info { stream: 1 }).expect("encode");
    let (kind, message) = refused_and_closed(&Client::raw(&daemon), &info);
    assert_eq!(kind, ReplyErrorKind::Protocol, "{message}");
    assert!(message.contains("first request must be Hello"), "{message}");

    still_serves(&bed, &daemon);
    assert!(daemon.log().contains("connection closed"));
}

#[test]
fn descriptors_other_than_a_udp_or_tcp_socket_of_its_namespace_are_refused() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let client = Client::connect(&daemon);
    let check = |fd: &OwnedFd, needle: &str| {
        let (kind, message) =
            refusal(&client.attach(&bed, fd.as_fd(), stream_every(Duration::from_millis(50))));
        assert_eq!(kind, ReplyErrorKind::InvalidInput, "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message}");
    };
    let file: OwnedFd = std::fs::File::open("/dev/null").expect("/dev/null").into();
    check(&file, "not a socket");
    let (unix, _) = UnixDatagram::pair().expect("a Unix socket pair");
    check(&OwnedFd::from(unix), "not an IPv4/IPv6 UDP or TCP socket");
    // This test's own namespace is not the sender's, where qsockd runs.
    let elsewhere = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket here");
    check(&OwnedFd::from(elsewhere), "another network namespace");
    // A refusal of the socket keeps the connection.
    let socket = sender_udp(&bed);
    attached(&client.attach(
        &bed,
        socket.as_fd(),
        stream_every(Duration::from_millis(50)),
    ));
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped_and_others_are_served() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let idle = Client::connect(&daemon);
    let socket = sender_udp(&bed);
    attached(&idle.attach(
        &bed,
        socket.as_fd(),
        stream_every(Duration::from_millis(50)),
    ));
    let request = protocol::encode(&Request::Info { stream: 99 }).expect("encode");
    let mut sent = 0;
    let outcome = loop {
        match protocol::send_frame(idle.fd.as_fd(), &request, None, MsgFlags::empty()) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
        assert!(
            sent < 1_000_000,
            "qsockd took a million requests without dropping the client"
        );
    };
    assert!(
        matches!(outcome.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
        "{outcome}"
    );
    daemon.wait_for_line("replies unread: dropped", Duration::from_secs(5));
    eprintln!("the idle client was dropped after {sent} requests");
    let gone = measure_until(Duration::from_secs(5), || stream_classes(&bed) == PREPARED);
    assert!(gone.is_some(), "the dropped client's class stayed");
    still_serves(&bed, &daemon);
}

/// Raises this process's descriptor limit: a thousand clients hold two
/// descriptors each here.
fn raise_own_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

#[test]
fn a_thousand_clients_at_once_are_served_and_leave_nothing_behind() {
    const CLIENTS: usize = 1000;
    raise_own_descriptor_limit();
    let bed = bed();
    let daemon = Daemon::start(&bed, "1gbit", &[]);
    let before = daemon.open_descriptors();
    // Every connection is made before any is greeted: they wait in
    // qsockd's backlog together.
    let connections: Vec<OwnedFd> = (0..CLIENTS)
        .map(|_| protocol::connect_to(&daemon.socket).expect("connect"))
        .collect();
    let hello = protocol::encode(&Request::Hello {
        version: PROTOCOL_VERSION,
    })
    .expect("encode");
    for connection in &connections {
        protocol::send_frame(connection.as_fd(), &hello, None, MsgFlags::empty()).expect("hello");
    }
    let sockets: Vec<UdpSocket> = bed
        .run_in_sender(|| {
            (0..CLIENTS)
                .map(|_| UdpSocket::bind((bed.sender_v4(), 0)).expect("a UDP socket"))
                .collect()
        })
        .expect("enter the sender namespace");
    let params = qsock::QosParams::new(
        bed.sender_dev(),
        qsock::SchedulerName::Htb,
        stream_every(Duration::from_secs(1)),
    );
    let attach = protocol::encode(&Request::Attach { params }).expect("encode");
    for (connection, socket) in connections.iter().zip(&sockets) {
        protocol::send_frame(
            connection.as_fd(),
            &attach,
            Some(socket.as_fd()),
            MsgFlags::empty(),
        )
        .expect("attach");
    }
    let mut classes = std::collections::HashSet::new();
    for connection in &connections {
        let read = |what| {
            let frame = protocol::recv_frame(connection.as_fd(), MsgFlags::empty())
                .unwrap_or_else(|err| panic!("no {what} reply: {err}"));
            protocol::decode::<Reply>(&frame.bytes).expect("a reply")
        };
        assert!(matches!(read("hello"), Reply::Hello { .. }));
        let (_, class) = attached(&read("attach"));
        assert!(classes.insert(class.clone()), "{class} given twice");
    }
    // Each client's class is in the kernel (the next prepared ones may
    // still be on their way).
    let shown = support::classes(&bed);
    for class in &classes {
        assert!(
            shown.contains(&format!("class htb {class} ")),
            "{class} is not in:\n{shown}"
        );
    }
    drop(sockets);
    drop(connections);
    let settled = measure_until(Duration::from_secs(30), || stream_classes(&bed) == PREPARED);
    assert!(
        settled.is_some(),
        "{} stream classes left after every client left",
        stream_classes(&bed)
    );
    eprintln!(
        "{CLIENTS} clients' classes were removed {:?} after they left",
        settled.unwrap_or_default()
    );
    let after = measure_until(Duration::from_secs(5), || {
        daemon.open_descriptors() == before
    });
    assert!(
        after.is_some(),
        "qsockd holds {} descriptors after the clients left, {before} before",
        daemon.open_descriptors()
    );
    still_serves(&bed, &daemon);
}
