use super::*;

const PORTS: StreamPorts = StreamPorts {
    source: 40000,
    destination: 5004,
};

/// An Ethernet, IPv4 and UDP header before `payload`, as a veth's driver
/// sees the packet.
fn as_the_driver_sees_it(payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; 14 + 20];
    packet[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    packet[14] = 0x45;
    packet.extend_from_slice(&PORTS.source.to_be_bytes());
    packet.extend_from_slice(&PORTS.destination.to_be_bytes());
    packet.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

#[test]
fn the_payload_is_found_behind_any_headers() {
    let payload = b"\x80\x60rtp packet";
    assert_eq!(
        udp_payload(&as_the_driver_sees_it(payload), PORTS),
        Some(&payload[..])
    );
    // Without the link header (a device that has none) too.
    assert_eq!(
        udp_payload(&as_the_driver_sees_it(payload)[14..], PORTS),
        Some(&payload[..])
    );
    assert_eq!(
        udp_payload(&as_the_driver_sees_it(b""), PORTS),
        Some(&b""[..])
    );
}

#[test]
fn another_flow_or_a_cut_packet_is_not_the_stream() {
    let packet = as_the_driver_sees_it(b"payload");
    let other = StreamPorts {
        source: 40001,
        ..PORTS
    };
    assert_eq!(udp_payload(&packet, other), None);
    assert_eq!(udp_payload(&packet[..packet.len() - 1], PORTS), None);
    assert_eq!(udp_payload(&packet[..5], PORTS), None);
    // The ports inside the payload do not count: the length must reach
    // the packet's end from there.
    let mut inner = PORTS.source.to_be_bytes().to_vec();
    inner.extend_from_slice(&PORTS.destination.to_be_bytes());
    inner.extend_from_slice(&[0, 99, 0, 0]);
    let packet = as_the_driver_sees_it(&inner);
    assert_eq!(udp_payload(&packet, PORTS), Some(&inner[..]));
}

#[test]
fn each_sent_datagram_comes_back_with_when_it_left() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let ports = enable(&sender, to).unwrap_or_else(|why| panic!("{why:?}"));
    let before = Instant::now();
    for i in 0..3u8 {
        sender.send_to(&[0x80, i, 1, 2, 3], to).unwrap();
    }
    let mut departed = Vec::new();
    let mut buffer = Vec::new();
    // The timestamps are queued as the loopback device takes each packet,
    // within the send call.
    take(&sender, ports, &mut buffer, |rtp, at| {
        departed.push((rtp.to_vec(), at))
    })
    .unwrap();
    let after = Instant::now();
    assert_eq!(
        departed
            .iter()
            .map(|(rtp, _)| rtp.clone())
            .collect::<Vec<_>>(),
        (0..3u8).map(|i| vec![0x80, i, 1, 2, 3]).collect::<Vec<_>>()
    );
    for (_, at) in &departed {
        // The two clocks are read a moment apart: a millisecond's slack.
        assert!(
            *at + Duration::from_millis(1) >= before && *at <= after,
            "{at:?} not in {before:?}..{after:?}"
        );
    }
    // What is read is gone, and the receiver got every datagram.
    take(&sender, ports, &mut buffer, |_, _| panic!("read twice")).unwrap();
    let mut datagram = [0u8; 16];
    for _ in 0..3 {
        assert_eq!(receiver.recv(&mut datagram).unwrap(), 5);
    }
}

#[test]
fn beside_the_schedulers_icmp_errors_the_departures_are_read_and_the_errors_skipped() {
    // A port nobody listens on: the datagram draws a port unreachable,
    // which IP_RECVERR (as the dwcs backend sets it) queues with the
    // timestamp; on loopback, within the send call.
    let to = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    setsockopt(&sender, sockopt::Ipv4RecvErr, &true).unwrap();
    let ports = enable(&sender, to).unwrap_or_else(|why| panic!("{why:?}"));
    sender.send_to(&[0x80, 7, 1, 2, 3], to).unwrap();
    let mut departed = Vec::new();
    take(&sender, ports, &mut Vec::new(), |rtp, _| {
        departed.push(rtp.to_vec())
    })
    .unwrap();
    assert_eq!(departed, [vec![0x80, 7, 1, 2, 3]]);
    // The ICMP error was read and dropped: it fails no send.
    assert_eq!(sender.take_error().unwrap().map(|e| e.to_string()), None);
    sender.send_to(&[0x80, 8], to).unwrap();
}
