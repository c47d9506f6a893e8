//! The test bed itself: datagrams cross the veth pair, and nothing is left
//! behind. Needs root; `QSOCK_SKIP_PRIVILEGED=1` skips instead of failing.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use qsock_testbed::{namespace_exists, TestBed};

/// A test bed, or `None` when privileged tests are to be skipped.
fn new_bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root()
        && std::env::var("QSOCK_SKIP_PRIVILEGED").as_deref() == Ok("1")
    {
        eprintln!("SKIPPED: this test needs root (QSOCK_SKIP_PRIVILEGED=1 is set)");
        return None;
    }
    match TestBed::new() {
        Ok(bed) => Some(bed),
        Err(err) => panic!("this test needs root to build a network-namespace test bed: {err}"),
    }
}

/// A datagram from `from` in the sender's namespace arrives at `to` in the
/// receiver's, each on a port the kernel picks.
fn crosses(bed: &TestBed, from: IpAddr, to: IpAddr) {
    let (from, to) = (SocketAddr::new(from, 0), SocketAddr::new(to, 0));
    let receiver = bed
        .run_in_receiver(|| UdpSocket::bind(to))
        .expect("enter receiver namespace")
        .expect("bind in receiver namespace");
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set timeout");
    let to = receiver.local_addr().expect("local addr");
    bed.run_in_sender(|| {
        let socket = UdpSocket::bind(from)?;
        socket.send_to(b"across the veth", to)
    })
    .expect("enter sender namespace")
    .expect("send");
    let mut buf = [0u8; 64];
    let (n, peer) = receiver.recv_from(&mut buf).expect("datagram arrives");
    assert_eq!(&buf[..n], b"across the veth");
    assert_eq!(peer.ip(), from.ip());
}

#[test]
fn udp_crosses_in_ipv4() {
    let Some(bed) = new_bed() else { return };
    crosses(&bed, bed.sender_v4().into(), bed.receiver_v4().into());
}

#[test]
fn udp_crosses_in_ipv6() {
    let Some(bed) = new_bed() else { return };
    crosses(&bed, bed.sender_v6().into(), bed.receiver_v6().into());
}

#[test]
fn udp_crosses_the_router_in_both_families() {
    let Some(_) = new_bed() else { return };
    let bed = TestBed::routed().expect("a routed bed");
    assert_ne!(
        bed.receiver_v4().octets()[..3],
        bed.sender_v4().octets()[..3],
        "sender and receiver are on different subnets"
    );
    crosses(&bed, bed.sender_v4().into(), bed.receiver_v4().into());
    crosses(&bed, bed.sender_v6().into(), bed.receiver_v6().into());
}

#[test]
fn the_router_takes_a_bottleneck_and_a_plain_bed_has_no_router() {
    let Some(bed) = new_bed() else { return };
    assert!(bed.set_router_bottleneck("1mbit", "15k", "300ms").is_err());
    let routed = TestBed::routed().expect("a routed bed");
    routed
        .set_router_bottleneck("1500kbit", "15k", "300ms")
        .expect("tbf on the router");
    let dev = routed.router_egress_dev().expect("a router").to_owned();
    let out = routed
        .tc_in_router(&["qdisc", "show", "dev", &dev])
        .expect("tc qdisc show");
    assert!(
        out.contains("qdisc tbf") && out.contains("rate 1500Kbit"),
        "{out}"
    );
    let router_ns = routed.router_ns().expect("a router").to_owned();
    drop(routed);
    assert!(
        !namespace_exists(&router_ns),
        "the router's namespace is gone"
    );
}

#[test]
fn sockets_are_not_in_the_test_namespace() {
    let Some(bed) = new_bed() else { return };
    // The sender's address does not exist here, so binding to it fails here
    // and succeeds inside the namespace.
    assert!(UdpSocket::bind((bed.sender_v4(), 0)).is_err());
    assert!(bed
        .run_in_sender(|| UdpSocket::bind((bed.sender_v4(), 0)).is_ok())
        .expect("enter"));
}

#[test]
fn bottleneck_installs_tbf() {
    let Some(bed) = new_bed() else { return };
    let bed = bed.with_bottleneck("10mbit").expect("tbf");
    let out = bed
        .tc_in_sender(&["qdisc", "show", "dev", bed.sender_dev()])
        .expect("tc qdisc show");
    assert!(out.contains("qdisc tbf"), "{out}");
}

#[test]
fn namespaces_are_gone_after_drop_even_on_panic() {
    let Some(bed) = new_bed() else { return };
    let names = [bed.sender_ns().to_owned(), bed.receiver_ns().to_owned()];
    assert!(names.iter().all(|ns| namespace_exists(ns)));
    drop(bed);
    assert!(names.iter().all(|ns| !namespace_exists(ns)));

    let Some(bed) = new_bed() else { return };
    let names = [bed.sender_ns().to_owned(), bed.receiver_ns().to_owned()];
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _bed = bed;
        panic!("a failing test");
    }));
    assert!(result.is_err());
    assert!(names.iter().all(|ns| !namespace_exists(ns)));
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        names.iter().all(|ns| !listed.contains(ns.as_str())),
        "{listed}"
    );
}

#[test]
fn closure_panic_is_reported() {
    let Some(bed) = new_bed() else { return };
    let err = bed
        .run_in_sender(|| -> () { panic!("boom") })
        .expect_err("panic becomes an error");
    assert!(err.to_string().contains("boom"), "{err}");
}

#[test]
fn a_bulk_transfer_crosses_the_bottleneck_until_stopped() {
    let Some(bed) = new_bed() else { return };
    let bed = bed
        .with_bottleneck("20mbit")
        .expect("tbf on the sender's veth");
    let bulk = qsock_testbed::BulkTransfer::start(&bed, 5201).expect("start the transfer");
    assert!(
        bulk.wait_for(1_000_000, Duration::from_secs(20)),
        "only {} bytes crossed in 20 s",
        bulk.received_bytes()
    );
    let total = bulk.stop().expect("both ends ran without error");
    assert!(total >= 1_000_000, "{total} bytes");
    // Stopped means stopped: nothing is listening there any more.
    let to = SocketAddr::from((bed.receiver_v4(), 5201));
    let refused = bed
        .run_in_sender(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .expect("enter");
    assert!(refused.is_err(), "the bulk listener outlived stop()");
}

#[test]
fn a_host_on_the_router_sends_bulk_through_it_and_goes_with_the_bed() {
    let Some(bed) = new_bed() else { return };
    assert!(
        matches!(
            TestBed::new().and_then(|mut plain| plain.add_router_host()),
            Err(qsock_testbed::Error::NotRouted)
        ),
        "a plain bed has no router to attach a host to"
    );
    drop(bed);
    let mut routed = TestBed::routed().expect("a routed bed");
    let host = routed.add_router_host().expect("a host on the router");
    let bulk = qsock_testbed::BulkTransfer::start_from(&routed, host.namespace(), 5202)
        .expect("start the transfer from the host");
    assert!(
        bulk.wait_for(1_000_000, Duration::from_secs(20)),
        "only {} bytes crossed from {} in 20 s",
        bulk.received_bytes(),
        host.v4()
    );
    bulk.stop().expect("both ends ran without error");
    drop(routed);
    assert!(
        !namespace_exists(host.namespace()),
        "the host's namespace is gone with the bed"
    );
}
