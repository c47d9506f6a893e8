use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use super::*;
use crate::params::StreamParams;

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair(AF_UNIX, SOCK_SEQPACKET)")
}

#[test]
fn a_request_and_its_descriptor_arrive_as_sent() {
    let (client, daemon) = pair();
    let request = Request::Attach {
        params: QosParams::new("veth0", SchedulerName::Htb, StreamParams::default()),
    };
    let passed = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    send_message(client.as_fd(), &request, Some(passed.as_fd())).expect("send");
    let frame = recv_frame(daemon.as_fd(), MsgFlags::empty()).expect("receive");
    assert_eq!(decode::<Request>(&frame.bytes).expect("decode"), request);
    assert_eq!(frame.fds.len(), 1, "one descriptor passed");
    let (domain, kind, _) = crate::sys::socket_identity(frame.fds[0].as_fd()).expect("identity");
    assert_eq!((domain, kind), (libc::AF_INET, libc::SOCK_DGRAM));
}

#[test]
fn a_message_over_the_limit_is_refused_by_both_sides() {
    let (client, daemon) = pair();
    let long = vec![b' '; MAX_MESSAGE_BYTES + 1];
    assert!(encode(&String::from_utf8_lossy(&long)).is_err());
    send_frame(client.as_fd(), &long, None, MsgFlags::empty()).expect("raw send");
    assert!(matches!(
        recv_frame(daemon.as_fd(), MsgFlags::empty()),
        Err(RecvError::Oversized)
    ));
}

#[test]
fn end_of_file_and_an_empty_socket_are_told_apart() {
    let (client, daemon) = pair();
    assert!(matches!(
        recv_frame(daemon.as_fd(), MsgFlags::MSG_DONTWAIT),
        Err(RecvError::WouldBlock)
    ));
    drop(client);
    assert!(matches!(
        recv_frame(daemon.as_fd(), MsgFlags::empty()),
        Err(RecvError::Closed)
    ));
}

#[test]
fn peer_credentials_name_this_process() {
    let (client, _daemon) = pair();
    let credentials = peer_credentials(client.as_fd()).expect("SO_PEERCRED");
    assert_eq!(
        credentials.pid(),
        i32::try_from(std::process::id()).expect("pid")
    );
}

#[test]
fn refusals_keep_their_kind_across_the_wire() {
    let refusal = Reply::Error(ReplyError::new(ReplyErrorKind::Busy, "no room"));
    let bytes = encode(&refusal).expect("encode");
    let Reply::Error(back) = decode::<Reply>(&bytes).expect("decode") else {
        panic!("not an error reply");
    };
    assert_eq!(back.into_error().kind(), ErrorKind::Busy);
}
