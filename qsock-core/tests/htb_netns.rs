//! The `htb` backend against the real kernel, in network namespaces made for
//! each test: HTB's own layout of classes, and rate isolation of a managed UDP stream under a real iperf3 TCP
//! transfer, with an unmanaged stream beside it as the control.
//!
//! Needs root (namespaces, qdiscs). Without it the tests fail, saying so,
//! unless `QSOCK_SKIP_PRIVILEGED=1`, which turns them into skips.
//!
//! What every backend must do, htb included, is tested in backends.rs.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use qsock::{
    qsockinit, report, ErrorKind, InitParams, PacketFlags, QSocket, QosParams, Rate, SchedulerName,
    StreamParams,
};
use qsock_testbed::TestBed;
use socket2::{Domain, Type};
use support::{iperf3_server, mbit, tc_show, turn, wait_for_bulk, Reaped};

fn bed() -> Option<TestBed> {
    support::privileged_bed("the htb tests")
}

fn htb_init(bed: &TestBed, rate: Rate) -> InitParams {
    InitParams::new(bed.sender_dev(), SchedulerName::Htb).with_link_rate(rate)
}

/// A stream of the sender's htb.
fn htb_stream(bed: &TestBed, stream: StreamParams) -> QosParams {
    QosParams::new(bed.sender_dev(), SchedulerName::Htb, stream)
}

/// A stream of 938-byte datagrams (980 bytes on the wire with the UDP, IP
/// and Ethernet headers), one every `period`.
fn datagrams_of_938_bytes_every(period: Duration) -> StreamParams {
    StreamParams::periodic(period, 0, 0).with_packet_size(938)
}

/// A test bed whose sender's link qsock's htb shapes to 10 Mbit/s.
fn bed_with_htb_at_10_mbit() -> Option<TestBed> {
    let bed = bed()?;
    bed.run_in_sender(|| qsockinit(&htb_init(&bed, mbit(10))))
        .expect("run in the sender's namespace")
        .expect("qsockinit htb at 10 Mbit/s");
    Some(bed)
}

/// Idempotence, rate changes and reset are in backends.rs; this is the
/// layout only HTB has.
#[test]
fn qsockinit_builds_the_link_and_best_effort_classes() {
    let Some(bed) = bed() else { return };
    let init = htb_init(&bed, mbit(10));
    let first = bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    assert!(first.installed_now, "{first:?}");
    let qdiscs = tc_show(&bed, "qdisc");
    assert!(qdiscs.contains("qdisc htb 7173: root"), "{qdiscs}");
    assert!(qdiscs.contains("default 0xfffe"), "{qdiscs}");
    let classes = tc_show(&bed, "class");
    assert!(classes.contains("class htb 7173:1 root"), "{classes}");
    assert!(classes.contains("rate 10Mbit ceil 10Mbit"), "{classes}");
    assert!(
        classes.contains("class htb 7173:fffe parent 7173:1"),
        "{classes}"
    );
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.root_qdisc, "htb 7173:");
}

#[test]
fn qsockinit_refuses_a_qdisc_installed_on_purpose() {
    let Some(bed) = bed() else { return };
    let bed = bed.with_bottleneck("10mbit").expect("tbf");
    let init = htb_init(&bed, mbit(10));
    let err = bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.errno(), libc::EBUSY);
    let text = err.to_string();
    assert!(text.contains("tbf"), "{text}");
    // qsockctl reset removes only qsock's own schedulers: not the way here.
    assert!(!text.contains("qsockctl reset"), "{text}");
    assert!(text.contains("tc qdisc del dev"), "{text}");
    // And the tbf is still there.
    assert!(tc_show(&bed, "qdisc").contains("qdisc tbf"));
}

#[test]
fn qsockinit_on_a_missing_device_is_enodev() {
    let Some(bed) = bed() else { return };
    let init = InitParams::new("qsk-nosuchdev", SchedulerName::Htb).with_link_rate(mbit(10));
    let err = bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoDevice, "{err}");
    assert_eq!(err.errno(), libc::ENODEV);
}

#[test]
fn qsockinit_without_a_rate_on_veth_asks_for_one_or_uses_the_speed() {
    let Some(bed) = bed() else { return };
    let init = InitParams::new(bed.sender_dev(), SchedulerName::Htb);
    match bed.run_in_sender(|| qsockinit(&init)).unwrap() {
        // Sysfs shows the test's namespace, not the bed's: the speed is unknown.
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("--rate"), "{err}");
            assert!(!tc_show(&bed, "qdisc").contains("htb"));
        }
        Ok(report) => assert!(report.installed_now),
    }
}

#[test]
fn stream_classes_are_numbered_and_sized_for_their_streams() {
    let Some(bed) = bed_with_htb_at_10_mbit() else {
        return;
    };
    let params = htb_stream(&bed, datagrams_of_938_bytes_every(Duration::from_millis(4)));
    let socket = bed
        .run_in_sender(|| QSocket::new(Domain::IPV4, Type::DGRAM, None, &params))
        .unwrap()
        .unwrap();
    assert_eq!(socket.scheduler(), SchedulerName::Htb);
    assert_eq!(socket.socket().priority().unwrap(), 0x7173_0002);
    let classes = tc_show(&bed, "class");
    assert!(
        classes.contains("class htb 7173:2 parent 7173:1"),
        "{classes}"
    );
    assert!(classes.contains("rate 2Mbit ceil 2Mbit"), "{classes}");

    // A second stream gets the next free class.
    let second = bed
        .run_in_sender(|| QSocket::new(Domain::IPV6, Type::DGRAM, None, &params))
        .unwrap()
        .unwrap();
    assert_eq!(second.socket().priority().unwrap(), 0x7173_0003);
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.streams.len(), 2, "{shown:?}");
    assert_eq!(shown.streams[0].rate, Some(mbit(2)));

    // Stats come from the class; closed from this thread, outside the namespace.
    let dest: SocketAddr = (bed.receiver_v4(), 9).into();
    socket
        .send_to(&[0u8; 938], &dest, &PacketFlags::new())
        .unwrap();
    // The class counts the packet when HTB dequeues it; wait for that.
    let waited = Instant::now();
    let info = loop {
        let info = socket.info().unwrap();
        if info.stats.sent_packets > 0 || waited.elapsed() > Duration::from_secs(2) {
            break info;
        }
        std::thread::yield_now();
    };
    assert_eq!(info.stats.sent_packets, 1, "{info:?}");
    assert_eq!(info.stats.sent_bytes, 938 + 28 + 14, "{info:?}");
    assert!(info.stats.queue_delay.is_none());
    socket.close().unwrap();
    second.close().unwrap();
    let classes = tc_show(&bed, "class");
    assert!(!classes.contains("7173:2 "), "class left behind: {classes}");
    assert!(!classes.contains("7173:3 "), "class left behind: {classes}");

    // Best-effort streams get no class.
    let best_effort = htb_stream(&bed, StreamParams::best_effort());
    let plain = bed
        .run_in_sender(|| QSocket::new(Domain::IPV4, Type::DGRAM, None, &best_effort))
        .unwrap()
        .unwrap();
    assert_eq!(plain.socket().priority().unwrap(), 0);
    assert_eq!(
        bed.run_in_sender(|| report(bed.sender_dev()))
            .unwrap()
            .unwrap()
            .streams
            .len(),
        0
    );
    drop(plain);
}

#[test]
fn a_lower_link_rate_binds_the_streams_already_attached() {
    // An HTB class may always send at its own rate, whatever its parent's:
    // without refitting, a squeezed link would not squeeze the streams.
    let Some(bed) = bed_with_htb_at_10_mbit() else {
        return;
    };
    let paced = htb_stream(&bed, datagrams_of_938_bytes_every(Duration::from_millis(2)));
    let work_conserving = htb_stream(
        &bed,
        datagrams_of_938_bytes_every(Duration::from_millis(8)).work_conserving(),
    );
    let (paced, work_conserving) = bed
        .run_in_sender(|| {
            (
                QSocket::new(Domain::IPV4, Type::DGRAM, None, &paced).unwrap(),
                QSocket::new(Domain::IPV4, Type::DGRAM, None, &work_conserving).unwrap(),
            )
        })
        .unwrap();
    let classes = tc_show(&bed, "class");
    assert!(classes.contains("rate 4Mbit ceil 4Mbit"), "{classes}");
    assert!(classes.contains("rate 1Mbit ceil 10Mbit"), "{classes}");

    let squeezed = htb_init(&bed, mbit(2));
    let report_of_init = bed.run_in_sender(|| qsockinit(&squeezed)).unwrap().unwrap();
    assert!(
        report_of_init
            .reason
            .contains("2 stream class(es) were fitted"),
        "{report_of_init:?}"
    );
    let classes = tc_show(&bed, "class");
    assert!(
        classes.contains("rate 2Mbit ceil 2Mbit"),
        "paced stream: {classes}"
    );
    assert!(
        classes.contains("rate 1Mbit ceil 2Mbit"),
        "work-conserving stream: {classes}"
    );

    // A change after the squeeze sizes against the new link rate.
    let mut paced = paced;
    let too_fast = htb_stream(&bed, datagrams_of_938_bytes_every(Duration::from_millis(3)));
    let refused = paced.change(&too_fast).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("link rate"), "{refused}");
    paced.close().unwrap();
    work_conserving.close().unwrap();
}

/// What a receiver saw of one stream.
#[derive(Debug, Default)]
struct Seen {
    received: u64,
    delays: Vec<Duration>,
}

impl Seen {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.delays.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(Duration::MAX)
    }
}

/// Receives datagrams stamped with their send time until `quiet` passes without one.
fn receive(socket: UdpSocket, quiet: Duration) -> Seen {
    let mut seen = Seen::default();
    receive_until_quiet(&socket, quiet, 8, |datagram| {
        let sent = u64::from_ne_bytes(datagram[..8].try_into().expect("8 bytes"));
        seen.received += 1;
        seen.delays.push(Duration::from_nanos(
            qsock::monotonic_now().saturating_sub(sent),
        ));
    });
    seen
}

/// Calls `each` with every datagram of at least `header` bytes that
/// `socket` receives, until `quiet` passes without one.
fn receive_until_quiet(
    socket: &UdpSocket,
    quiet: Duration,
    header: usize,
    mut each: impl FnMut(&[u8]),
) {
    socket.set_read_timeout(Some(quiet)).expect("timeout");
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        if n >= header {
            each(&buf[..n]);
        }
    }
}

/// A socket of the receiver, on a free port.
fn receiver_socket(bed: &TestBed) -> UdpSocket {
    let address = bed.receiver_v4();
    bed.run_in_receiver(move || UdpSocket::bind((address, 0)))
        .expect("run in the receiver's namespace")
        .expect("bind a receiver's socket")
}

/// iperf3's TCP filling the sender's link for `seconds` on `port`: the
/// server, and the client whose JSON report [`iperf3_received_bps`] reads.
/// Returns once TCP has filled the link and its queue, so that the streams
/// start on a loaded link.
fn iperf3_filling_the_link(bed: &TestBed, port: &str, seconds: &str) -> (Reaped, Reaped) {
    let receiver = bed.receiver_v4().to_string();
    let server = iperf3_server(bed, port);
    let client = Reaped(
        bed.command_in_sender("iperf3", ["-c", &receiver, "-p", port, "-t", seconds, "-J"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iperf3 client"),
    );
    wait_for_bulk(bed, 1_000_000, Duration::from_secs(10));
    (server, client)
}

/// The control stream's socket, in the sender (the caller's namespace). A
/// full send buffer must cost the unmanaged stream its packet, not stall the
/// sending loop and with it the managed stream's timing: it does not block.
fn unmanaged_socket(bed: &TestBed) -> UdpSocket {
    let unmanaged = UdpSocket::bind((bed.sender_v4(), 0)).expect("bind");
    unmanaged.set_nonblocking(true).expect("non-blocking");
    unmanaged
}

#[test]
fn a_managed_stream_keeps_its_rate_under_iperf3_and_an_unmanaged_one_does_not() {
    let _turn = turn();
    let Some(bed) = bed_with_htb_at_10_mbit() else {
        return;
    };

    // Receivers first, so nothing is sent into the void.
    let (managed_rx, unmanaged_rx) = (receiver_socket(&bed), receiver_socket(&bed));
    let managed_to = managed_rx.local_addr().unwrap();
    let unmanaged_to = unmanaged_rx.local_addr().unwrap();
    let quiet = Duration::from_secs(3);
    let managed_seen = std::thread::spawn(move || receive(managed_rx, quiet));
    let unmanaged_seen = std::thread::spawn(move || receive(unmanaged_rx, quiet));

    let (_server, client) = iperf3_filling_the_link(&bed, "5201", "7");

    // 938-byte datagrams every 4 ms: 2 Mbit/s on the wire, for 4 seconds.
    const PAYLOAD: usize = 938;
    const IPG: Duration = Duration::from_millis(4);
    const PACKETS: u64 = 1000;
    let params = htb_stream(
        &bed,
        StreamParams::periodic(IPG, 0, 0).with_packet_size(PAYLOAD as u32),
    );
    let sent = bed
        .run_in_sender(|| -> qsock::Result<(u64, u64)> {
            let managed = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params)?;
            let unmanaged = unmanaged_socket(&bed);
            let (mut managed_sent, mut unmanaged_sent) = (0, 0);
            send_stamped::<PAYLOAD>(PACKETS, IPG, |packet| {
                if managed
                    .send_to(packet, &managed_to, &PacketFlags::new())
                    .is_ok()
                {
                    managed_sent += 1;
                }
                if unmanaged.send_to(packet, unmanaged_to).is_ok() {
                    unmanaged_sent += 1;
                }
            });
            managed.close()?;
            Ok((managed_sent, unmanaged_sent))
        })
        .unwrap()
        .unwrap();

    let output = client.wait_for_output();
    let managed = managed_seen.join().unwrap();
    let unmanaged = unmanaged_seen.join().unwrap();
    let tcp_bps = iperf3_received_bps(&output);
    let summary = format!(
        "managed: sent {} received {} p50 {:?} p95 {:?}; unmanaged: sent {} received {} p50 {:?} \
         p95 {:?}; iperf3 {:.1} Mbit/s",
        sent.0,
        managed.received,
        managed.percentile(0.5),
        managed.percentile(0.95),
        sent.1,
        unmanaged.received,
        unmanaged.percentile(0.5),
        unmanaged.percentile(0.95),
        tcp_bps / 1e6
    );
    eprintln!("{summary}");

    // The managed stream: everything arrives, promptly.
    assert_eq!(sent.0, PACKETS, "{summary}");
    assert!(managed.received * 100 >= sent.0 * 99, "{summary}");
    assert!(
        managed.percentile(0.95) < Duration::from_millis(30),
        "{summary}"
    );
    // The control: the unmanaged stream shares best effort with TCP and loses
    // packets or waits behind its queue. Medians, because a busy CPU can
    // stretch any stream's tail but not a standing queue's middle.
    let unmanaged_lost = sent.1.saturating_sub(unmanaged.received);
    assert!(
        unmanaged_lost * 100 >= sent.1 * 5
            || (unmanaged.percentile(0.5) > Duration::from_millis(20)
                && unmanaged.percentile(0.5) > managed.percentile(0.5) * 20),
        "the control did not suffer: {summary}"
    );
    // TCP still gets most of the rest of the 10 Mbit/s link.
    assert!(tcp_bps > 5e6, "{summary}");
}

#[test]
fn a_cap_on_best_effort_holds_bulk_traffic_back_and_leaves_the_streams_the_link() {
    let _turn = turn();
    let Some(bed) = bed_with_htb_at_10_mbit() else {
        return;
    };
    let capped = htb_init(&bed, mbit(10)).with_best_effort_rate(mbit(2));
    let init = bed.run_in_sender(|| qsockinit(&capped)).unwrap().unwrap();
    assert!(
        init.reason.contains("best effort is capped at 2mbit"),
        "{init:?}"
    );
    let classes = tc_show(&bed, "class");
    let best_effort = classes
        .lines()
        .find(|line| line.starts_with("class htb 7173:fffe"))
        .unwrap_or_else(|| panic!("no best-effort class: {classes}"));
    assert!(best_effort.contains(" ceil 2Mbit "), "{best_effort}");
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.best_effort_rate, Some(mbit(2)));
    assert_eq!(shown.link_rate, Some(mbit(10)));

    // A stream of 3.9 Mbit/s on the wire, beside TCP: above the cap, and
    // not held to it.
    let (_server, client) = iperf3_filling_the_link(&bed, "5203", "5");
    let managed_rx = receiver_socket(&bed);
    let managed_to = managed_rx.local_addr().unwrap();
    let managed_seen = std::thread::spawn(move || receive(managed_rx, Duration::from_secs(3)));
    const PAYLOAD: usize = 938;
    const IPG: Duration = Duration::from_millis(2);
    const PACKETS: u64 = 1500;
    let params = htb_stream(
        &bed,
        StreamParams::periodic(IPG, 0, 0)
            .with_packet_size(PAYLOAD as u32)
            .work_conserving(),
    );
    let sent = bed
        .run_in_sender(|| -> qsock::Result<u64> {
            let managed = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params)?;
            let mut sent = 0;
            send_stamped::<PAYLOAD>(PACKETS, IPG, |packet| {
                if managed
                    .send_to(packet, &managed_to, &PacketFlags::new())
                    .is_ok()
                {
                    sent += 1;
                }
            });
            managed.close()?;
            Ok(sent)
        })
        .unwrap()
        .unwrap();
    let capped_tcp = iperf3_received_bps(&client.wait_for_output());
    let managed = managed_seen.join().unwrap();
    let summary = format!(
        "stream: sent {sent} received {} p95 {:?}; TCP {:.2} Mbit/s under a 2 Mbit/s cap",
        managed.received,
        managed.percentile(0.95),
        capped_tcp / 1e6
    );
    eprintln!("{summary}");
    assert_eq!(sent, PACKETS, "{summary}");
    assert!(managed.received * 100 >= sent * 99, "{summary}");
    assert!(
        managed.percentile(0.95) < Duration::from_millis(30),
        "{summary}"
    );
    assert!(capped_tcp < 2.3e6, "TCP passed its cap: {summary}");
    assert!(capped_tcp > 0.5e6, "TCP was starved: {summary}");

    // A cap at the link rate lifts it.
    let lifted = htb_init(&bed, mbit(10)).with_best_effort_rate(mbit(10));
    let init = bed.run_in_sender(|| qsockinit(&lifted)).unwrap().unwrap();
    assert!(
        init.reason.contains("best effort may use the whole link"),
        "{init:?}"
    );
    let (_server, client) = iperf3_filling_the_link(&bed, "5204", "3");
    let free_tcp = iperf3_received_bps(&client.wait_for_output());
    assert!(
        free_tcp > 5e6,
        "TCP got {:.2} Mbit/s with the cap lifted",
        free_tcp / 1e6
    );
}

/// Hands `send` `packets` datagrams of `N` bytes, one every `ipg`, each
/// stamped in its first 8 bytes with its send time (for [`receive`]).
fn send_stamped<const N: usize>(packets: u64, ipg: Duration, mut send: impl FnMut(&[u8])) {
    let mut packet = [0u8; N];
    let start = Instant::now();
    for i in 0..packets {
        let due = start + ipg * u32::try_from(i).expect("fits");
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        packet[..8].copy_from_slice(&qsock::monotonic_now().to_ne_bytes());
        send(&packet);
    }
}

fn iperf3_received_bps(json: &str) -> f64 {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| {
        panic!("iperf3 -J did not print JSON ({e}): {json}");
    });
    value["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no end.sum_received.bits_per_second in {json}"))
}

/// Frame arrivals of one video stream: (frame number, time its last packet arrived).
fn receive_frames(
    socket: UdpSocket,
    packets_per_frame: u8,
    quiet: Duration,
) -> Vec<(u32, Instant)> {
    let mut parts: std::collections::HashMap<u32, u8> = std::collections::HashMap::new();
    let mut complete = Vec::new();
    receive_until_quiet(&socket, quiet, 4, |datagram| {
        let frame = u32::from_ne_bytes(datagram[..4].try_into().expect("4 bytes"));
        let count = parts.entry(frame).or_default();
        *count += 1;
        if *count == packets_per_frame {
            complete.push((frame, Instant::now()));
        }
    });
    complete
}

/// Frames per second between the first and last complete frame, and the
/// standard deviation of the gaps between frames.
fn frame_rate_and_jitter(frames: &[(u32, Instant)]) -> (f64, Duration) {
    if frames.len() < 2 {
        return (0.0, Duration::MAX);
    }
    let span = frames[frames.len() - 1].1 - frames[0].1;
    let rate = (frames.len() - 1) as f64 / span.as_secs_f64();
    let gaps: Vec<f64> = frames
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    (rate, Duration::from_secs_f64(var.sqrt()))
}

#[test]
fn a_managed_20_fps_video_keeps_its_frame_rate_under_iperf3() {
    let _turn = turn();
    let Some(bed) = bed_with_htb_at_10_mbit() else {
        return;
    };
    const FPS: u32 = 20;
    const FRAME_BYTES: usize = 8_000;
    const MAX_DATAGRAM: usize = 1_400;
    const FRAMES: u32 = 120;
    let packets_per_frame = FRAME_BYTES.div_ceil(MAX_DATAGRAM) as u8;
    let frame_period = Duration::from_secs(1) / FPS;

    let (managed_rx, unmanaged_rx) = (receiver_socket(&bed), receiver_socket(&bed));
    let managed_to = managed_rx.local_addr().unwrap();
    let unmanaged_to = unmanaged_rx.local_addr().unwrap();
    let quiet = Duration::from_secs(3);
    let managed_seen =
        std::thread::spawn(move || receive_frames(managed_rx, packets_per_frame, quiet));
    let unmanaged_seen =
        std::thread::spawn(move || receive_frames(unmanaged_rx, packets_per_frame, quiet));

    let (_server, client) = iperf3_filling_the_link(&bed, "5202", "9");

    // The stream's class is sized for one full datagram per packet slot.
    let params = htb_stream(
        &bed,
        StreamParams::periodic(frame_period / u32::from(packets_per_frame), 0, 0)
            .with_packet_size(MAX_DATAGRAM as u32),
    );
    bed.run_in_sender(|| -> qsock::Result<()> {
        let managed = QSocket::new(Domain::IPV4, Type::DGRAM, None, &params)?;
        let unmanaged = unmanaged_socket(&bed);
        let frame = vec![0u8; FRAME_BYTES];
        let start = Instant::now();
        for number in 0..FRAMES {
            let due = start + frame_period * number;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let packets: Vec<Vec<u8>> = frame
                .chunks(MAX_DATAGRAM)
                .map(|chunk| {
                    let mut p = chunk.to_vec();
                    p[..4].copy_from_slice(&number.to_ne_bytes());
                    p
                })
                .collect();
            let slices: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
            let mut sent = 0;
            while sent < slices.len() {
                sent +=
                    managed.send_frame(&slices[sent..], Some(&managed_to), &PacketFlags::new())?;
            }
            for p in &slices {
                let _ = unmanaged.send_to(p, unmanaged_to);
            }
        }
        managed.close()
    })
    .unwrap()
    .unwrap();

    let output = client.wait_for_output();
    let managed = managed_seen.join().unwrap();
    let unmanaged = unmanaged_seen.join().unwrap();
    let (managed_fps, managed_jitter) = frame_rate_and_jitter(&managed);
    let (unmanaged_fps, unmanaged_jitter) = frame_rate_and_jitter(&unmanaged);
    let tcp_bps = iperf3_received_bps(&output);
    let summary = format!(
        "managed: {} of {FRAMES} frames, {managed_fps:.2} fps, jitter {managed_jitter:?}; \
         unmanaged: {} frames, {unmanaged_fps:.2} fps, jitter {unmanaged_jitter:?}; iperf3 \
         {:.1} Mbit/s",
        managed.len(),
        unmanaged.len(),
        tcp_bps / 1e6
    );
    eprintln!("{summary}");
    assert_eq!(managed.len(), FRAMES as usize, "{summary}");
    assert!(
        (managed_fps - f64::from(FPS)).abs() <= f64::from(FPS) * 0.02,
        "{summary}"
    );
    assert!(managed_jitter < Duration::from_millis(5), "{summary}");
    assert!(
        unmanaged.len() < FRAMES as usize * 95 / 100 || unmanaged_jitter > managed_jitter * 3,
        "the control did not suffer: {summary}"
    );
    assert!(tcp_bps > 5e6, "{summary}");
}
