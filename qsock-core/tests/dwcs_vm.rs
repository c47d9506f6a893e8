//! The `dwcs` backend against sch_dwcs itself. These tests are meant to run
//! inside a VM whose kernel has the module loaded (the runner sets
//! `QSOCK_EXPECT_DWCS=1` there). Where the module is not loaded they fail,
//! saying so, when `QSOCK_EXPECT_DWCS` is set, and print a SKIP line and pass
//! when it is unset.
//!
//! Each test builds its own pair of network namespaces (root needed).
//! What every backend must do, dwcs included, is tested in backends.rs.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod support;

use support::dwcs_qsocket as qsocket;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use qsock::{
    qsockinit, report, Deadline, ErrorKind, InitParams, PacketFlags, QosParams, Rate,
    SchedulerName, StreamParams, WindowConstraint,
};
use qsock_testbed::TestBed;
use support::{bed_receiver, dwcs_bed, kbit, packet, recv_numbered, tc_show};

fn init(bed: &TestBed, rate: Rate, limit: Option<u32>) -> InitParams {
    let mut init = InitParams::new(bed.sender_dev(), SchedulerName::Dwcs).with_link_rate(rate);
    init.limit = limit;
    init
}

fn install(bed: &TestBed, rate: Rate, limit: Option<u32>) {
    let params = init(bed, rate, limit);
    support::install_dwcs(bed, &params);
}

/// Idempotence, rate changes and reset are in backends.rs.
#[test]
fn install_shows_the_qdisc_and_refuses_other_schedulers() {
    let Some(bed) = dwcs_bed() else { return };
    let first = bed
        .run_in_sender(|| qsockinit(&init(&bed, kbit(10_000), Some(100))))
        .unwrap()
        .unwrap();
    assert!(first.installed_now, "{first:?}");
    assert_eq!(first.scheduler, SchedulerName::Dwcs);
    let qdiscs = tc_show(&bed, "qdisc");
    assert!(qdiscs.contains("qdisc dwcs 7173: root"), "{qdiscs}");

    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.scheduler, Some(SchedulerName::Dwcs));
    assert_eq!(shown.root_qdisc, "dwcs 7173:");
    assert_eq!(shown.link_rate, Some(kbit(10_000)), "{shown:?}");
    assert!(shown.best_effort.is_some(), "{shown:?}");

    // Another scheduler over qsock's dwcs is refused, naming it.
    let htb = InitParams::new(bed.sender_dev(), SchedulerName::Htb).with_link_rate(kbit(10_000));
    let err = bed.run_in_sender(|| qsockinit(&htb)).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("dwcs 7173:"), "{err}");
}

#[test]
fn a_qdisc_installed_on_purpose_is_refused() {
    let Some(bed) = dwcs_bed() else { return };
    let bed = bed.with_bottleneck("10mbit").expect("tbf");
    let err = bed
        .run_in_sender(|| qsockinit(&init(&bed, kbit(10_000), None)))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    let text = err.to_string();
    assert!(text.contains("tbf"), "{text}");
    assert!(text.contains("tc qdisc del dev"), "{text}");
}

#[test]
fn attach_creates_a_class_with_the_stream_options() {
    let Some(bed) = dwcs_bed() else { return };
    install(&bed, kbit(10_000), None);
    let mut socket = qsocket(
        &bed,
        StreamParams::periodic(Duration::from_millis(40), 1, 4),
    );
    assert_eq!(socket.scheduler(), SchedulerName::Dwcs);
    assert_eq!(socket.socket().priority().unwrap(), 0x7173_0001);
    let classes = tc_show(&bed, "class");
    assert!(classes.contains("class dwcs 7173:1"), "{classes}");
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.streams.len(), 1, "{shown:?}");
    assert_eq!(shown.streams[0].id, "7173:1");
    // x'/y' start at the class's oln/old.
    let info = socket.info().unwrap();
    assert_eq!(info.stats.current_window, Some(WindowConstraint::new(1, 4)));
    assert!(info.stats.queue_delay.is_some());

    let changed = QosParams::new(
        bed.sender_dev(),
        SchedulerName::Dwcs,
        StreamParams::periodic(Duration::from_millis(20), 2, 5),
    );
    socket.change(&changed).unwrap();
    assert_eq!(socket.socket().priority().unwrap(), 0x7173_0001);

    socket.close().unwrap();
    let classes = tc_show(&bed, "class");
    assert!(!classes.contains("7173:1"), "{classes}");
}

#[test]
fn per_packet_deadlines_go_earliest_first() {
    let Some(bed) = dwcs_bed() else { return };
    // 1000-byte packets take 80 ms each at 100 kbit/s: what is sent within a
    // few milliseconds queues, and leaves in the qdisc's order.
    install(&bed, kbit(100), None);
    let (rx, to) = bed_receiver(&bed);
    let late = qsocket(&bed, StreamParams::aperiodic().lossless());
    let early = qsocket(&bed, StreamParams::aperiodic().lossless());
    let now = Deadline::after(Duration::ZERO).as_monotonic_nanos();
    let at = |ms: u64| {
        PacketFlags::new().with_deadline(Deadline::from_monotonic_nanos(now + ms * 1_000_000))
    };
    // The first packet takes the idle link at once.
    late.send_to(&packet(0, 0, false), &to, &at(1)).unwrap();
    for seq in 0..3 {
        late.send_to(&packet(1, seq, false), &to, &at(20_000 + u64::from(seq)))
            .unwrap();
    }
    for seq in 0..3 {
        early
            .send_to(&packet(2, seq, false), &to, &at(10_000 + u64::from(seq)))
            .unwrap();
    }
    let order: Vec<(u32, u32)> = (0..7)
        .map(|_| recv_numbered(&rx).expect("every packet arrives"))
        .collect();
    assert_eq!(order[0], (0, 0), "{order:?}");
    // The late socket's first packet may have been dequeued before the early
    // socket's arrived; every other one leaves after all the early ones.
    let rest: Vec<(u32, u32)> = order[1..]
        .iter()
        .copied()
        .filter(|&p| p != (1, 0))
        .collect();
    assert_eq!(
        rest,
        vec![(2, 0), (2, 1), (2, 2), (1, 1), (1, 2)],
        "{order:?}"
    );
}

#[test]
fn a_full_queue_refuses_non_droppable_packets_and_a_retry_succeeds() {
    let Some(bed) = dwcs_bed() else { return };
    install(&bed, kbit(100), Some(2));
    let (rx, to) = bed_receiver(&bed);
    let socket = qsocket(&bed, StreamParams::aperiodic().lossless());
    let flags = PacketFlags::new()
        .non_droppable()
        .with_deadline(Deadline::after(Duration::from_secs(30)));
    let mut accepted = 0u32;
    let refused = loop {
        match socket.send_to(&packet(1, accepted, false), &to, &flags) {
            Ok(_) => accepted += 1,
            Err(err) => break err,
        }
        assert!(accepted < 20, "a limit of 2 packets never refused one");
    };
    assert_eq!(refused.kind(), ErrorKind::QueueFull, "{refused}");
    assert_eq!(refused.errno(), libc::ENOBUFS);
    assert!(refused.message().contains("ENOBUFS"), "{refused}");
    // The same packet again, once the queue has room.
    let start = Instant::now();
    loop {
        match socket.send_to(&packet(1, accepted, false), &to, &flags) {
            Ok(_) => break,
            Err(err) if err.kind() == ErrorKind::QueueFull => {
                assert!(start.elapsed() < Duration::from_secs(5), "{err}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("{err}"),
        }
    }
    accepted += 1;
    // Nothing accepted was lost.
    let mut seen = HashSet::new();
    while seen.len() < accepted as usize {
        let (_, sequence) = recv_numbered(&rx).expect("every accepted packet arrives");
        seen.insert(sequence);
    }
    let info = socket.info().unwrap();
    assert_eq!(info.stats.dropped.total(), 0, "{:?}", info.stats);
}

#[test]
fn stats_count_drops_by_reason() {
    let Some(bed) = dwcs_bed() else { return };
    install(&bed, kbit(100), None);
    let (_rx, to) = bed_receiver(&bed);
    // Lossy, one miss in every two packets allowed.
    let socket = qsocket(
        &bed,
        StreamParams::periodic(Duration::from_millis(10), 1, 2),
    );
    // Ten one-packet frames due within a few milliseconds on a link that
    // sends one every 80 ms: most are late and dropped.
    let deadline = Deadline::after(Duration::from_millis(5));
    for seq in 0..10 {
        let flags = PacketFlags::new().droppable().with_deadline(deadline);
        socket
            .send_frame(&[&packet(1, seq, false)], Some(&to), &flags)
            .unwrap();
    }
    // And one three-packet frame, late as a whole: once its first packet is
    // dropped for lateness, the rest go as a frame.
    let frame: Vec<Vec<u8>> = (0..3).map(|i| packet(2, i, false)).collect();
    let slices: Vec<&[u8]> = frame.iter().map(Vec::as_slice).collect();
    let flags = PacketFlags::new()
        .droppable()
        .with_deadline(Deadline::after(Duration::from_millis(6)));
    assert_eq!(socket.send_frame(&slices, Some(&to), &flags).unwrap(), 3);

    // Wait until every packet is accounted for, not merely until the class
    // is empty: while ARP resolves the receiver's address the packets wait
    // in the neighbour queue, before the qdisc, and the class is empty then
    // too (seen on a loaded emulated VM).
    let start = Instant::now();
    let stats = loop {
        let stats = socket.info().unwrap().stats;
        let done = stats.backlog_packets == 0 && stats.sent_packets + stats.dropped.total() >= 13;
        if done || start.elapsed() > Duration::from_secs(5) {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stats.backlog_packets, 0, "{stats:?}");
    assert_eq!(
        stats.sent_packets + stats.dropped.total(),
        13,
        "every packet sent or dropped: {stats:?}"
    );
    assert!(
        stats.dropped.late + stats.dropped.window > 0,
        "late drops: {stats:?}"
    );
    assert!(stats.dropped.frame > 0, "frame drops: {stats:?}");
    assert_eq!(stats.dropped.queue_full, 0, "{stats:?}");
    assert!(stats.deadline_misses >= stats.dropped.late + stats.dropped.window);
    assert!(stats.window_violations > 0, "1/2 cannot hold: {stats:?}");
}
