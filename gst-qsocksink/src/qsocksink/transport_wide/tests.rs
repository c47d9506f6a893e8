use super::*;
use rtcp_types::{RtcpPacketWriterExt, TransportFeedback, TwccBuilder};

/// A transport-wide feedback packet as rtpsession sends it; its FCI starts
/// after the 12-byte feedback header.
fn feedback_packet(base: u16, reference: u32, statuses: &[TwccPacketStatus]) -> Vec<u8> {
    let packet =
        TransportFeedback::builder_owned(TwccBuilder::new(base, reference, 0, statuses, None))
            .sender_ssrc(1)
            .media_ssrc(7);
    let mut bytes = vec![0; 1500];
    let length = packet
        .write_into(&mut bytes)
        .unwrap_or_else(|err| panic!("writing TWCC feedback: {err:?}"));
    bytes.truncate(length);
    bytes
}

fn fci(packet: &[u8]) -> &[u8] {
    &packet[12..]
}

fn received(us: i64) -> TwccPacketStatus {
    TwccPacketStatus::Received {
        delta: i16::try_from(us / DELTA_UNIT_US).unwrap_or(i16::MAX),
    }
}

/// `count` packets received, the first `first_us` after the feedback's
/// reference time, the rest `apart_us` after the one before.
fn arrivals(first_us: i64, apart_us: i64, count: usize) -> Vec<TwccPacketStatus> {
    let mut statuses = vec![received(first_us)];
    statuses.extend(std::iter::repeat_n(received(apart_us), count - 1));
    statuses
}

/// Ten packets sent 10 ms apart from `start`, numbered from `base`.
fn send_ten(transport: &mut TransportWide, base: u16, start: Instant) {
    for i in 0..10u16 {
        let at = start + Duration::from_millis(10 * u64::from(i));
        transport.sent(base.wrapping_add(i), 1000, at);
    }
}

#[test]
fn packets_that_arrive_as_they_left_show_no_standing_queue_and_the_rate() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    send_ten(&mut transport, 100, start);
    // Arrivals 10 ms apart, the first 5 ms after the reference time.
    let statuses = arrivals(5_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(100, 20, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert_eq!(interval.standing_queue, Some(Duration::ZERO));
    assert_eq!(interval.lost_share, 0.0);
    // 10 × 1000 bytes over 90 ms of arrivals is under the span that tells
    // a rate.
    assert_eq!(interval.received_bps, None);
    assert_eq!(transport.take_interval(), None, "nothing since");
}

#[test]
fn a_queue_that_builds_shows_as_the_least_wait_of_the_interval() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    send_ten(&mut transport, 0, start);
    let statuses = arrivals(5_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    transport.take_interval();
    // The next ten left 10 ms apart and arrived 20 ms apart: each waited
    // 10 ms more than the one before, the first of them 10 ms already.
    let later = start + Duration::from_millis(100);
    send_ten(&mut transport, 10, later);
    send_ten(&mut transport, 20, later + Duration::from_millis(100));
    // The next feedback's reference time is 64 ms on, so its first packet
    // arrives 51 ms after it: 115 ms after the first reference.
    let statuses = arrivals(51_000, 20_000, 20);
    assert!(transport.feedback(fci(&feedback_packet(10, 21, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    // The first batch met no queue (its one-way delay is the path's); the
    // second's first packet left 100 ms after the first batch's first and
    // arrived 110 ms after it.
    assert_eq!(interval.standing_queue, Some(Duration::from_millis(10)));
    // A 1000-byte packet every 20 ms.
    assert_eq!(interval.received_bps, Some(400_000));
}

#[test]
fn a_queue_forming_late_in_the_interval_shows_at_its_end() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    send_ten(&mut transport, 0, start);
    let statuses = arrivals(5_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    // The next thirty left 100 ms later, 10 ms apart, and each waited
    // 30 ms: the first batch arrived 285 ms after it left, these 315 ms;
    // the reference time is 128 ms on, so the first arrives 7 ms after it.
    let later = start + Duration::from_millis(100);
    for batch in 0..3u16 {
        let at = later + Duration::from_millis(100 * u64::from(batch));
        send_ten(&mut transport, 10 + 10 * batch, at);
    }
    let statuses = arrivals(7_000, 10_000, 30);
    assert!(transport.feedback(fci(&feedback_packet(10, 22, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert_eq!(interval.standing_queue, Some(Duration::ZERO));
    assert_eq!(interval.queue_at_end, Some(Duration::from_millis(30)));
}

#[test]
fn one_large_frame_waiting_for_itself_is_no_queue_at_the_end() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    // Frames 40 ms apart, packets crossing the bottleneck 4 ms each: ten
    // frames of five packets, then one of thirty sent at once (120 ms at
    // the bottleneck), then two of five that wait behind it.
    let mut frames: Vec<(u64, usize)> = (0..10).map(|frame| (40 * frame, 5)).collect();
    frames.extend([(400, 30), (440, 5), (480, 5)]);
    let mut statuses = Vec::new();
    let (mut sequence, mut free_ms, mut previous_us) = (0u16, 0, 0);
    for (left_ms, packets) in frames {
        for _ in 0..packets {
            transport.sent(sequence, 1000, start + Duration::from_millis(left_ms));
            sequence += 1;
            let crossed_ms = free_ms.max(left_ms) + 4;
            free_ms = crossed_ms;
            let arrival_us = i64::try_from(crossed_ms * 1000).unwrap();
            statuses.push(received(arrival_us - previous_us));
            previous_us = arrival_us;
        }
    }
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    // The last packets waited over 60 ms, but within the last 200 ms of
    // arrivals the large frame's first packet met no queue.
    assert_eq!(interval.standing_queue, Some(Duration::ZERO));
    assert_eq!(interval.queue_at_end, Some(Duration::ZERO));
}

#[test]
fn packets_not_received_count_as_lost_and_unknown_ones_are_left_out() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    send_ten(&mut transport, 500, start);
    let statuses = [
        received(0),
        TwccPacketStatus::NotReceived,
        received(20_000),
        TwccPacketStatus::NotReceived,
    ];
    assert!(transport.feedback(fci(&feedback_packet(500, 1, &statuses))));
    // Numbers never sent (another sender's, or long gone) say nothing.
    assert!(transport.feedback(fci(&feedback_packet(
        9000,
        2,
        &[received(0), TwccPacketStatus::NotReceived]
    ))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert_eq!(interval.lost_share, 0.5);
    assert_eq!(interval.feedback, 2);
}

#[test]
fn truncated_feedback_is_refused() {
    let mut transport = TransportWide::default();
    let packet = feedback_packet(0, 1, &[received(0), received(300_000)]);
    let fci = fci(&packet);
    assert!(!transport.feedback(&fci[..6]));
    // Without the last delta's second byte (the FCI is padded to 32 bits).
    assert!(!transport.feedback(&fci[..fci.len() - 4]));
    assert_eq!(transport.take_interval(), None);
}

#[test]
fn the_reference_time_counts_on_across_its_wrap() {
    let mut transport = TransportWide::default();
    let last = (REFERENCE_WRAP - 1) as u32;
    assert_eq!(
        transport.unwrap_reference(last),
        (REFERENCE_WRAP - 1) * REFERENCE_UNIT_US
    );
    assert_eq!(
        transport.unwrap_reference(0),
        REFERENCE_WRAP * REFERENCE_UNIT_US
    );
    assert_eq!(
        transport.unwrap_reference(last),
        (REFERENCE_WRAP - 1) * REFERENCE_UNIT_US
    );
}

#[test]
fn the_caps_extmap_names_the_extension_in_either_form() {
    gst::init().unwrap_or_else(|err| panic!("gst::init: {err}"));
    let plain = gst::Caps::builder("application/x-rtp")
        .field("extmap-3", TRANSPORT_WIDE_URI)
        .build();
    assert_eq!(extension_id(&plain), Some(3));
    let with_direction = gst::Caps::builder("application/x-rtp")
        .field("extmap-2", "urn:ietf:params:rtp-hdrext:sdes:mid")
        .field("extmap-5", gst::Array::new(["", TRANSPORT_WIDE_URI, ""]))
        .build();
    assert_eq!(extension_id(&with_direction), Some(5));
    let none = gst::Caps::builder("application/x-rtp").build();
    assert_eq!(extension_id(&none), None);
}

#[test]
fn a_wait_in_the_host_before_departure_is_not_a_queue_on_the_path() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    // All ten handed over at once; the host's scheduler let them go 10 ms
    // apart (the first at once), and they arrived as they left.
    for i in 0..10u16 {
        transport.sent(i, 1000, start);
        transport.departed(i, start + Duration::from_millis(10 * u64::from(i)));
    }
    let statuses = arrivals(5_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    transport.take_interval();
    // The next ten were handed over 30 ms before the first of them left
    // (counted from the hand-over, each shows at least that wait in the
    // host) and arrived as they left. The departure of one (11) was not
    // read: it counts for neither the base nor the queue.
    let later = start + Duration::from_millis(100);
    let handed_over = later - Duration::from_millis(30);
    for i in 10..20u16 {
        let left = later + Duration::from_millis(10 * u64::from(i - 10));
        // Half the departures are read before the streaming thread notes
        // the hand-over.
        if i % 2 == 0 {
            transport.departed(i, left);
            transport.sent(i, 1000, handed_over);
        } else {
            transport.sent(i, 1000, handed_over);
            if i != 11 {
                transport.departed(i, left);
            }
        }
    }
    // Arrivals from 100 ms after the first batch's first, 10 ms apart.
    let statuses = arrivals(41_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(10, 21, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert_eq!(interval.standing_queue, Some(Duration::ZERO));
    assert!(interval.beyond_the_host);
    assert_eq!(interval.lost_share, 0.0);
    assert_eq!(transport.departures_total, 19);
}

#[test]
fn a_packet_the_hosts_scheduler_dropped_is_not_lost_on_the_path() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    send_ten(&mut transport, 0, start);
    // The scheduler dropped 2 and 3 late; 7 left and was lost on the way.
    for i in (0..10u16).filter(|i| ![2, 3].contains(i)) {
        transport.departed(i, start + Duration::from_millis(10 * u64::from(i)));
    }
    let statuses: Vec<TwccPacketStatus> = (0..10)
        .map(|i| match i {
            2 | 3 | 7 => TwccPacketStatus::NotReceived,
            0 => received(5_000),
            4 => received(30_000),
            _ => received(10_000),
        })
        .collect();
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert!(interval.beyond_the_host);
    assert_eq!(interval.lost_share, 1.0 / 8.0);
}

#[test]
fn without_departures_the_hand_over_times_the_delay() {
    let mut transport = TransportWide::default();
    let start = transport.epoch + Duration::from_secs(1);
    // Handed over at once, arriving 10 ms apart: from the hand-over, each
    // after the first waited 10 ms more.
    for i in 0..10u16 {
        transport.sent(i, 1000, start);
    }
    let statuses = arrivals(5_000, 10_000, 10);
    assert!(transport.feedback(fci(&feedback_packet(0, 20, &statuses))));
    let interval = transport
        .take_interval()
        .unwrap_or_else(|| panic!("feedback came"));
    assert!(!interval.beyond_the_host);
    assert_eq!(interval.standing_queue, Some(Duration::ZERO));
    assert_eq!(
        transport.base.back().map(|&(_, least)| least),
        Some(20 * REFERENCE_UNIT_US + 5_000 - 1_000_000)
    );
}
