//! Traffic through sch_dwcs itself: streams sent through a veth pair between
//! two namespaces, with the qdisc's link rate as the bottleneck, and a
//! receiver on the other side that sees what really left. Like dwcs_vm.rs,
//! these tests are meant to run in a VM whose kernel has the module loaded
//! (kmod-dwcs/test/guest_rust.sh sets `QSOCK_EXPECT_DWCS=1` there); without
//! the module they fail when `QSOCK_EXPECT_DWCS` is set, and print a SKIP line
//! and pass when it is not.
//!
//! The VM may run under emulation, about ten times slower than the host, and
//! share its CPUs with other VMs. So the link is slow (100 packets a second
//! for most tests), runs are a few seconds long, and times are taken from the
//! kernel's receive stamps (SO_TIMESTAMPNS), not from when a thread got to
//! read a packet; rates are judged against the link rate the qdisc was given.
//!
//! Loss windows and non-droppable packets under overload are part of every
//! backend's contract, tested in backends.rs.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod support;

use support::dwcs_qsocket as qsocket;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use qsock::{Deadline, InitParams, PacketFlags, Rate, SchedulerName, StreamParams};
use qsock_testbed::TestBed;
use support::{
    bed_receiver, best_effort_sent, dwcs_bed, end_flags, iperf3_server, packet, receive_until_ends,
    resolve_receiver, sequences, stats, turn, unmanaged, wait_for_bulk, Reaped, WIRE,
};

/// One packet time on the slow link most tests use.
const PACKET_TIME: Duration = Duration::from_millis(10);

/// The slow link: exactly one `WIRE`-byte packet per `PACKET_TIME`.
fn slow_link() -> Rate {
    Rate::from_bits_per_second(WIRE * 8 * 100)
}

fn bed() -> Option<TestBed> {
    let bed = dwcs_bed()?;
    resolve_receiver(&bed);
    Some(bed)
}

fn install(bed: &TestBed, rate: Rate, resolution: Duration) {
    let params = InitParams::new(bed.sender_dev(), SchedulerName::Dwcs)
        .with_link_rate(rate)
        .with_deadline_resolution(resolution);
    support::install_dwcs(bed, &params);
}

/// CLOCK_MONOTONIC nanoseconds as CLOCK_REALTIME (what receive stamps use).
fn monotonic_to_realtime(monotonic_ns: u64) -> Duration {
    let realtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = qsock::monotonic_now();
    (realtime + Duration::from_nanos(monotonic_ns)).saturating_sub(Duration::from_nanos(now))
}

#[test]
fn a_lossy_stream_drops_late_packets_and_a_lossless_one_sends_them_late() {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    install(&bed, slow_link(), InitParams::DEFAULT_DEADLINE_RESOLUTION);
    let (rx, to) = bed_receiver(&bed);
    let lossy = qsocket(&bed, StreamParams::aperiodic());
    let lossless = qsocket(&bed, StreamParams::aperiodic().lossless());
    let receiving = std::thread::spawn(move || receive_until_ends(&rx, &[0, 1]));

    // Each stream asks for a packet every packet time: twice what the link
    // carries, so about half of all deadlines cannot be met. Distinct
    // deadlines, so that no two packets form a frame.
    const PACKETS: u32 = 30;
    let base = qsock::monotonic_now() + 2 * PACKET_TIME.as_nanos() as u64;
    let deadline = |i: u32| base + u64::from(i + 1) * PACKET_TIME.as_nanos() as u64;
    for i in 0..PACKETS {
        let flags = PacketFlags::new().with_deadline(Deadline::from_monotonic_nanos(deadline(i)));
        lossy.send_to(&packet(0, i, false), &to, &flags).unwrap();
        lossless.send_to(&packet(1, i, false), &to, &flags).unwrap();
    }
    // The end markers' deadlines lie after every other packet's.
    let end = end_flags().with_deadline(Deadline::from_monotonic_nanos(deadline(PACKETS + 100)));
    lossy.send_to(&packet(0, 0, true), &to, &end).unwrap();
    lossless.send_to(&packet(1, 0, true), &to, &end).unwrap();
    let arrivals = receiving.join().unwrap();
    let (lossy_stats, lossless_stats) = (stats(&lossy), stats(&lossless));
    let summary = format!("lossy {lossy_stats:?}; lossless {lossless_stats:?}");

    // Lossy: late packets were dropped, counted as late (or window or frame)
    // drops, and every miss was a drop; what arrived was on time (the
    // receive stamp is taken as the qdisc hands the packet to the veth; 2 ms
    // for the conversion between clocks and the hand-over).
    let got = sequences(&arrivals, 0);
    let dropped = &lossy_stats.dropped;
    assert!(
        dropped.total() > 0,
        "the lossy stream lost nothing: {summary}"
    );
    assert_eq!(
        dropped.late + dropped.window + dropped.frame,
        dropped.total()
    );
    assert_eq!(
        u64::from(PACKETS) - got.len() as u64,
        dropped.total(),
        "{summary}"
    );
    assert_eq!(lossy_stats.deadline_misses, dropped.total(), "{summary}");
    for arrival in arrivals.iter().filter(|a| a.stream == 0) {
        let due = monotonic_to_realtime(deadline(arrival.sequence));
        assert!(
            arrival.at <= due + Duration::from_millis(2),
            "lossy packet {} arrived {:?} after its deadline: {summary}",
            arrival.sequence,
            arrival.at - due
        );
    }
    // Lossless: everything arrived, some of it late.
    assert_eq!(
        sequences(&arrivals, 1),
        (0..PACKETS).collect::<Vec<_>>(),
        "{summary}"
    );
    assert_eq!(lossless_stats.dropped.total(), 0, "{summary}");
    assert!(lossless_stats.deadline_misses > 0, "{summary}");
}

#[test]
fn best_effort_gets_the_rest_of_the_link_beside_paced_streams() {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    install(&bed, slow_link(), InitParams::DEFAULT_DEADLINE_RESOLUTION);
    let (rx, to) = bed_receiver(&bed);
    // Two streams of one packet every four packet times: half the link.
    let period = PACKET_TIME * 4;
    let streams = [
        qsocket(&bed, StreamParams::periodic(period, 0, 0).lossless()),
        qsocket(&bed, StreamParams::periodic(period, 0, 0).lossless()),
    ];
    let best_effort = unmanaged(&bed);
    let receiving = std::thread::spawn(move || receive_until_ends(&rx, &[0, 1]));

    // Best effort offers 1.5 times the other half: three packets a period.
    const PERIODS: u32 = 50;
    let tick = period / 3;
    let start = Instant::now();
    let mut offered = 0u32;
    for t in 0..PERIODS * 3 {
        let due = start + tick * t;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if t % 3 == 0 {
            for (stream, socket) in streams.iter().enumerate() {
                socket
                    .send_to(
                        &packet(stream as u32, t / 3, false),
                        &to,
                        &PacketFlags::new(),
                    )
                    .unwrap();
            }
        }
        if best_effort.send_to(&packet(9, t, false), to).is_ok() {
            offered += 1;
        }
    }
    for (stream, socket) in streams.iter().enumerate() {
        socket
            .send_to(&packet(stream as u32, PERIODS, true), &to, &end_flags())
            .unwrap();
    }
    let arrivals = receiving.join().unwrap();

    // The streams kept their rates: everything arrived.
    for stream in 0..2 {
        assert_eq!(
            sequences(&arrivals, stream),
            (0..PERIODS).collect::<Vec<_>>(),
            "stream {stream}"
        );
    }
    // Best effort, between the streams' first and last arrivals, got at
    // least 80 % of the half of the link they left.
    let span = |stream: u32| {
        let mut at = arrivals.iter().filter(|a| a.stream == stream).map(|a| a.at);
        let first = at.next().unwrap();
        (first, at.next_back().unwrap_or(first))
    };
    let (first, last) = (span(0).0.min(span(1).0), span(0).1.max(span(1).1));
    let served = arrivals
        .iter()
        .filter(|a| a.stream == 9 && a.at >= first && a.at <= last)
        .count() as f64;
    let rest = (last - first).as_secs_f64() / PACKET_TIME.as_secs_f64() / 2.0;
    let summary = format!(
        "best effort: {offered} offered, {served} served in {:?} while the streams left room \
         for {rest:.1}",
        last - first
    );
    eprintln!("{summary}");
    assert!(served >= rest * 0.8, "{summary}");
    // And no more than the link: streams plus best effort fit in it.
    let streams_in_span = arrivals.iter().filter(|a| a.stream < 2).count() as f64;
    assert!(
        served + streams_in_span <= 2.0 * rest + 2.0,
        "faster than the link: {summary}"
    );
}

#[test]
fn a_20_fps_stream_keeps_its_frame_rate_beside_iperf3() {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    // 4 Mbit/s: TCP needs a faster link than 100 packets a second to be
    // past slow start within the test's time.
    let link_bytes_per_second = 500_000u64;
    install(
        &bed,
        Rate::from_bits_per_second(link_bytes_per_second * 8),
        InitParams::DEFAULT_DEADLINE_RESOLUTION,
    );
    const FPS: u32 = 20;
    const PARTS: u32 = 4;
    const FRAMES: u32 = 60;
    let frame_period = Duration::from_secs(1) / FPS;
    let (rx, to) = bed_receiver(&bed);
    // One packet slot per part; lossless, so that every frame is whole.
    let video = qsocket(
        &bed,
        StreamParams::periodic(frame_period / PARTS, 0, 0).lossless(),
    );

    let receiver_address = bed.receiver_v4().to_string();
    let _server = iperf3_server(&bed, "5211");
    // Longer than the frames take even when the VM is slow; killed (Reaped)
    // once they are through.
    let _client = Reaped(
        bed.command_in_sender(
            "iperf3",
            ["-c", &receiver_address, "-p", "5211", "-t", "30"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 client"),
    );
    // TCP is past slow start and its queue is standing once this much went:
    // polling a counter, as there is no event for it.
    wait_for_bulk(&bed, 200_000, Duration::from_secs(15));

    let receiving = std::thread::spawn(move || receive_until_ends(&rx, &[0]));
    let tcp_before = best_effort_sent(&bed);
    let start = Instant::now();
    for frame in 0..FRAMES {
        let due = start + frame_period * frame;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let parts: Vec<Vec<u8>> = (0..PARTS)
            .map(|part| packet(0, frame * PARTS + part, false))
            .collect();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut sent = 0;
        while sent < slices.len() {
            sent += video
                .send_frame(&slices[sent..], Some(&to), &PacketFlags::new())
                .unwrap();
        }
    }
    // TCP's share is measured while the frames were being sent.
    let elapsed = start.elapsed();
    let tcp_after = best_effort_sent(&bed);
    let (tcp_packets, tcp_bytes) = (tcp_after.0 - tcp_before.0, tcp_after.1 - tcp_before.1);
    video
        .send_to(&packet(0, FRAMES * PARTS, true), &to, &end_flags())
        .unwrap();
    let arrivals = receiving.join().unwrap();

    // A frame is complete when its last part arrived.
    let mut complete: BTreeMap<u32, (u32, Duration)> = BTreeMap::new();
    for arrival in &arrivals {
        let entry = complete
            .entry(arrival.sequence / PARTS)
            .or_insert((0, arrival.at));
        entry.0 += 1;
        entry.1 = entry.1.max(arrival.at);
    }
    let whole: Vec<Duration> = complete
        .values()
        .filter(|(parts, _)| *parts == PARTS)
        .map(|&(_, at)| at)
        .collect();
    let span = *whole.last().unwrap() - whole[0];
    let fps = (whole.len() - 1) as f64 / span.as_secs_f64();
    let video_bytes = f64::from(FRAMES * PARTS) * WIRE as f64;
    let video_stats = stats(&video);
    let rest = link_bytes_per_second as f64 * elapsed.as_secs_f64() - video_bytes;
    let summary = format!(
        "{} of {FRAMES} frames whole, {fps:.2} fps; TCP sent {tcp_bytes} bytes in \
         {tcp_packets} packets in {elapsed:?}, the stream left {rest:.0}; {video_stats:?}",
        whole.len(),
    );
    eprintln!("{summary}");
    assert_eq!(whole.len(), FRAMES as usize, "{summary}");
    assert!(
        (fps - f64::from(FPS)).abs() <= f64::from(FPS) * 0.02,
        "{summary}"
    );
    // TCP got most of what the stream left.
    assert!(tcp_bytes as f64 >= rest * 0.6, "{summary}");
    // And the stream met its deadlines: one packet per slot of a quarter
    // frame, each eligible a slot before its deadline, waits for at most one
    // TCP segment (3 ms here), not for a whole 64 KB GSO packet (130 ms).
    // 5 % for an emulated VM's timer hiccups.
    assert!(
        video_stats.deadline_misses * 20 <= u64::from(FRAMES * PARTS),
        "{summary}"
    );
    video.close().unwrap();
}
