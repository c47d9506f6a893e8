use super::*;
use crate::RtpPacket;

const FRAME_TICKS: u32 = 3600; // 25 fps at 90 kHz

/// NAL units: a sequence parameter set, an access unit delimiter, an IDR
/// slice, a reference P-slice and a non-reference P-slice; the slices with
/// first_mb_in_slice 0 (beginning the frame) or 1 (a later slice).
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e];
const DELIMITER: &[u8] = &[0x09, 0xf0];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0xff];
const IDR_LATER_SLICE: &[u8] = &[0x65, 0x42, 0x3f, 0xff];
const P: &[u8] = &[0x41, 0xe0, 0xff, 0xff];
const P_LATER_SLICE: &[u8] = &[0x41, 0x58, 0xff, 0xff];
const B: &[u8] = &[0x01, 0xe0, 0xff, 0xff];

fn rtp(sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let (payload_type, ssrc) = (96, 1);
    RtpPacket {
        marker,
        payload_type,
        sequence,
        timestamp,
        ssrc,
        payload,
    }
    .serialize()
}

/// A receiver of H.264 at 25 frames a second.
fn h264_receiver() -> FrameReceiver {
    let mut receiver = FrameReceiver::new(PayloadFormat::RtpH264);
    receiver.set_frame_rate(25, 1);
    receiver
}

/// Feeds one packet at time zero; returns the frames it ended.
fn feed(receiver: &mut FrameReceiver, packet: &[u8]) -> Vec<FrameEvent> {
    let mut events = Vec::new();
    receiver.packet(packet, Duration::ZERO, &mut events);
    events
}

fn received(events: &[FrameEvent]) -> Vec<ReceivedFrame> {
    events
        .iter()
        .filter_map(|event| match event {
            FrameEvent::Received(frame) => Some(*frame),
            FrameEvent::Missing { .. } => None,
        })
        .collect()
}

/// Sends one-packet frames 1, 2, ... (timestamp step one frame each),
/// the configuration first with frame 0; `None` frames do not arrive.
/// Returns (number, decodable) of each whole frame.
fn decodability(frames: &[Option<&[u8]>]) -> Vec<(u64, bool)> {
    let mut receiver = h264_receiver();
    let mut events = Vec::new();
    receiver.packet(&rtp(0, 0, false, SPS), Duration::ZERO, &mut events);
    receiver.packet(&rtp(1, 0, true, B), Duration::ZERO, &mut events);
    for (n, payload) in frames.iter().enumerate() {
        let n = u16::try_from(n).expect("few frames") + 1;
        if let Some(payload) = payload {
            let packet = rtp(n + 1, u32::from(n) * FRAME_TICKS, true, payload);
            receiver.packet(&packet, Duration::ZERO, &mut events);
        }
    }
    received(&events)
        .iter()
        .filter(|frame| frame.whole && frame.number > 0)
        .map(|frame| (frame.number, frame.decodable))
        .collect()
}

#[test]
fn a_lost_reference_leaves_the_frames_after_it_undecodable_until_the_next_intra() {
    let whole = decodability(&[
        Some(P),   // 1: no intra frame seen yet
        Some(IDR), // 2
        Some(P),   // 3
        None,      // 4: lost
        Some(P),   // 5: whole, but its reference is gone
        Some(P),   // 6
        Some(IDR), // 7: repairs
        Some(P),   // 8
    ]);
    assert_eq!(
        whole,
        [
            (1, false),
            (2, true),
            (3, true),
            (5, false),
            (6, false),
            (7, true),
            (8, true)
        ]
    );
}

#[test]
fn a_lost_non_reference_frame_breaks_nothing() {
    let whole = decodability(&[Some(IDR), Some(B), Some(P)]);
    assert_eq!(whole, [(1, true), (2, true), (3, true)]);
    let mut receiver = h264_receiver();
    let mut events = Vec::new();
    for (sequence, timestamp, marker, payload) in [
        (0, 0, false, SPS),
        (1, 0, true, IDR),
        // A B-frame of three packets loses its middle one; the P-frame
        // after it refers to the I-frame and still decodes.
        (2, FRAME_TICKS, false, B),
        (4, FRAME_TICKS, true, B),
        (5, 2 * FRAME_TICKS, true, P),
        // A P-frame loses its marker packet: the frame after it is whole
        // but refers to a broken picture.
        (6, 3 * FRAME_TICKS, false, P),
        (8, 4 * FRAME_TICKS, true, P_LATER_SLICE),
        (9, 5 * FRAME_TICKS, true, P),
    ] {
        receiver.packet(
            &rtp(sequence, timestamp, marker, payload),
            Duration::ZERO,
            &mut events,
        );
    }
    let frames: Vec<_> = received(&events)
        .iter()
        .map(|frame| (frame.number, frame.frame_type, frame.whole, frame.decodable))
        .collect();
    assert_eq!(
        frames,
        [
            (0, FrameType::Intra, true, true),
            (1, FrameType::NonReference, false, false),
            (2, FrameType::Predicted, true, true),
            (3, FrameType::Predicted, false, false),
            (4, FrameType::Predicted, false, false),
            (5, FrameType::Predicted, true, false),
        ]
    );
}

#[test]
fn an_intra_frame_decodes_only_after_the_parameter_sets() {
    let mut receiver = h264_receiver();
    let without = received(&feed(&mut receiver, &rtp(0, 0, true, IDR)));
    assert!(without[0].whole && !without[0].decodable, "{without:?}");
    let mut events = feed(&mut receiver, &rtp(1, FRAME_TICKS, false, SPS));
    events.extend(feed(&mut receiver, &rtp(2, FRAME_TICKS, true, IDR)));
    let frames = received(&events);
    assert_eq!(frames.len(), 1);
    assert!(frames[0].whole && frames[0].decodable, "{frames:?}");
}

#[test]
fn a_frame_begins_with_an_access_unit_start_or_after_a_marker() {
    let mut receiver = h264_receiver();
    // Joined in the middle of a frame: nothing is reported for it.
    assert!(feed(&mut receiver, &rtp(1, 0, true, IDR_LATER_SLICE)).is_empty());
    // After the marker: whole, even with a payload that shows no start.
    let after_marker = received(&feed(
        &mut receiver,
        &rtp(2, FRAME_TICKS, true, IDR_LATER_SLICE),
    ));
    assert!(after_marker[0].whole);
    // After a gap, only a payload that starts an access unit.
    let after_gap = received(&feed(
        &mut receiver,
        &rtp(4, 3 * FRAME_TICKS, true, DELIMITER),
    ));
    assert!(after_gap[0].whole);
    let mut events = feed(&mut receiver, &rtp(6, 5 * FRAME_TICKS, true, P_LATER_SLICE));
    assert_eq!(events.remove(0), FrameEvent::Missing { frames: 1 });
    assert!(!received(&events)[0].whole);
}

#[test]
fn numbers_and_media_time_follow_the_timestamps_across_the_wrap() {
    let mut receiver = h264_receiver();
    let mut events = Vec::new();
    let start = u32::MAX - FRAME_TICKS + 1;
    for (sequence, timestamp) in [(1, start), (2, 0), (3, 2 * FRAME_TICKS)] {
        let packet = rtp(sequence, timestamp, true, P);
        receiver.packet(&packet, Duration::ZERO, &mut events);
    }
    assert_eq!(events[2], FrameEvent::Missing { frames: 1 });
    let frames = received(&events);
    let numbers: Vec<_> = frames.iter().map(|frame| frame.number).collect();
    assert_eq!(numbers, [0, 1, 3]);
    let ticks: Vec<_> = frames.iter().map(|frame| frame.media_ticks).collect();
    let step = i64::from(FRAME_TICKS);
    assert_eq!(ticks, [Some(0), Some(step), Some(3 * step)]);
}

#[test]
fn late_and_duplicate_packets_are_ignored() {
    let mut receiver = h264_receiver();
    let mut events = Vec::new();
    let mut lost = 0;
    for sequence in [10, 12, 11, 12] {
        let packet = rtp(sequence, u32::from(sequence) * FRAME_TICKS, true, P);
        lost += receiver.packet(&packet, Duration::ZERO, &mut events);
    }
    assert_eq!(lost, 1);
    assert_eq!(received(&events).len(), 2);
}

#[test]
fn the_frame_arrives_with_its_last_packet() {
    let mut receiver = h264_receiver();
    let mut events = Vec::new();
    receiver.packet(
        &rtp(1, 0, false, IDR),
        Duration::from_millis(3),
        &mut events,
    );
    receiver.packet(
        &rtp(2, 0, true, IDR_LATER_SLICE),
        Duration::from_millis(7),
        &mut events,
    );
    assert_eq!(received(&events)[0].arrived, Duration::from_millis(7));
}
