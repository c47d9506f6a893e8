use super::*;
use qsock_frame::{RtpPacket, TS_PACKET_SIZE};

const FRAME_TICKS: u32 = 3600; // 25 fps at 90 kHz
const FRAME_TIME: Duration = Duration::from_millis(40);

/// Slices: an IDR slice, a reference P-slice and a non-reference P-slice,
/// each with first_mb_in_slice 0 (begins the frame) or 1 (a later slice).
fn idr(first: bool) -> Vec<u8> {
    if first {
        vec![0x65, 0x88, 0x84, 0xff, 0xff]
    } else {
        vec![0x65, 0x42, 0x3f, 0xff, 0xff]
    }
}
fn p_slice(first: bool) -> Vec<u8> {
    vec![0x41, if first { 0xe0 } else { 0x58 }, 0xff, 0xff]
}
fn b_slice() -> Vec<u8> {
    vec![0x01, 0xe0, 0xff, 0xff]
}

/// An RTP packet of payload type 96, source 1.
fn rtp(sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    const VIDEO: RtpPacket<'static> = RtpPacket {
        marker: false,
        payload_type: 96,
        sequence: 0,
        timestamp: 0,
        ssrc: 1,
        payload: &[],
    };
    let packet = RtpPacket {
        sequence,
        timestamp,
        marker,
        payload,
        ..VIDEO
    };
    packet.serialize()
}

/// Feeds frames of (packets) in order, frame n at time n * 40 ms, skipping
/// the sequence numbers in `lost`.
fn feed(frames: &[Vec<Vec<u8>>], lost: &[u16]) -> (FrameAccounting, Tally) {
    let mut accounting = FrameAccounting::new(Format::H264Rtp);
    let mut sequence = 0u16;
    for (n, packets) in frames.iter().enumerate() {
        let n = u32::try_from(n).expect("few frames");
        for (index, payload) in packets.iter().enumerate() {
            let marker = index + 1 == packets.len();
            if !lost.contains(&sequence) {
                let packet = rtp(sequence, 1000 + n * FRAME_TICKS, marker, payload);
                accounting.packet(&packet, FRAME_TIME * n);
            }
            sequence += 1;
        }
    }
    let tally = accounting.take_tally();
    (accounting, tally)
}

fn gop() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![idr(true), idr(false), idr(false)],
        vec![p_slice(true), p_slice(false)],
        vec![b_slice()],
        vec![p_slice(true), p_slice(false)],
        vec![p_slice(true)],
    ]
}

#[test]
fn a_clean_stream_is_complete_without_jitter() {
    let (_, tally) = feed(&gop(), &[]);
    assert_eq!(tally.complete_frames, 5);
    assert_eq!(tally.lost_packets, 0);
    assert_eq!(tally.lost_frames, LostFrames::default());
    assert_eq!(tally.mean_jitter(), Some(Duration::ZERO));
}

#[test]
fn a_gap_inside_a_frame_damages_it_by_its_type() {
    // Sequence 1 is the I-frame's second slice, 4 the second P's first.
    let (_, tally) = feed(&gop(), &[1]);
    assert_eq!(tally.lost_packets, 1);
    assert_eq!(tally.lost_frames.intra, 1);
    assert_eq!(tally.complete_frames, 4);
}

#[test]
fn a_lost_end_damages_the_frame() {
    // Sequence 4 is the first P-frame's marker packet.
    let (_, tally) = feed(&gop(), &[4]);
    assert_eq!(tally.lost_frames.predicted, 1);
    assert_eq!(tally.lost_frames.total(), 1);
}

#[test]
fn a_lost_beginning_damages_the_next_frame_not_the_closed_one() {
    // Sequence 6 begins the second P-frame; the B-frame before it closed.
    let (_, tally) = feed(&gop(), &[6]);
    assert_eq!(tally.lost_frames.predicted, 1, "{tally:?}");
    assert_eq!(tally.lost_frames.total(), 1);
    assert_eq!(tally.complete_frames, 4);
}

#[test]
fn a_wholly_lost_frame_is_missing_of_unknown_type() {
    // Sequence 5 is the whole B-frame.
    let (_, tally) = feed(&gop(), &[5]);
    assert_eq!(tally.lost_packets, 1);
    assert_eq!(
        tally.lost_frames,
        LostFrames {
            unknown: 1,
            ..LostFrames::default()
        }
    );
    assert_eq!(tally.complete_frames, 4);
}

#[test]
fn a_frame_joined_in_the_middle_is_not_counted() {
    let mut frames = gop();
    frames[0].remove(0);
    let (_, tally) = feed(&frames, &[]);
    assert_eq!(tally.complete_frames, 4);
    assert_eq!(tally.lost_frames.total(), 0);
}

#[test]
fn jitter_is_the_mean_distance_from_the_media_pace() {
    let mut accounting = FrameAccounting::new(Format::H264Rtp);
    // Arrivals at 0, 50 and 80 ms for frames 40 ms apart: 10 ms off twice.
    for (n, millis) in [0u64, 50, 80].into_iter().enumerate() {
        let n = u16::try_from(n).expect("three frames");
        let packet = rtp(n, u32::from(n) * FRAME_TICKS, true, &p_slice(true));
        accounting.packet(&packet, Duration::from_millis(millis));
    }
    let jitter = accounting.take_tally().mean_jitter().expect("two samples");
    assert!((jitter.as_secs_f64() - 0.010).abs() < 1e-9, "{jitter:?}");
}

#[test]
fn timestamps_going_backwards_stop_the_missing_count() {
    let mut accounting = FrameAccounting::new(Format::H264Rtp);
    // Decoding order I0 P3 B1 B2 P6: nothing is lost.
    for (sequence, frame) in [0u32, 3, 1, 2, 6].into_iter().enumerate() {
        let sequence = u16::try_from(sequence).expect("five frames");
        let packet = rtp(sequence, frame * FRAME_TICKS, true, &p_slice(true));
        accounting.packet(&packet, FRAME_TIME * u32::from(sequence));
    }
    assert!(accounting.reorders_frames());
    assert_eq!(accounting.take_tally().complete_frames, 5);
}

/// A 188-byte transport stream packet on `pid` with counter `counter`; with
/// `pts`, it begins a video PES packet.
fn ts_packet(pid: u16, counter: u8, pts: Option<u64>) -> Vec<u8> {
    let [pid_high, pid_low] = pid.to_be_bytes();
    let start = if pts.is_some() { 0x40 } else { 0 };
    let mut packet = vec![0x47, start | pid_high, pid_low, 0x10 | counter];
    if let Some(pts) = pts {
        packet.extend_from_slice(&[
            0,
            0,
            1,
            0xe0,
            0,
            0,
            0x80,
            0x80,
            5,
            0x21 | ((pts >> 29) as u8 & 0x0e),
            (pts >> 22) as u8,
            ((pts >> 14) as u8 & 0xfe) | 1,
            (pts >> 7) as u8,
            ((pts << 1) as u8) | 1,
        ]);
    }
    packet.resize(TS_PACKET_SIZE, 0xff);
    packet
}

#[test]
fn transport_stream_losses_from_counters_and_pts() {
    let mut accounting = FrameAccounting::new(Format::MpegtsUdp);
    let mut counter = 0u8;
    let mut send = |accounting: &mut FrameAccounting, frame: u64, lose: Option<usize>| {
        // Each frame: a PES start and two more packets, one per datagram.
        for index in 0..3 {
            let pts = (index == 0).then_some(frame * u64::from(FRAME_TICKS));
            let packet = ts_packet(0x100, counter, pts);
            counter = (counter + 1) & 0x0f;
            if lose != Some(index) {
                let arrival = FRAME_TIME * u32::try_from(frame).expect("few frames");
                accounting.packet(&packet, arrival);
            }
        }
    };
    send(&mut accounting, 0, None);
    send(&mut accounting, 1, Some(2)); // damaged (its end lost)
    send(&mut accounting, 2, None);
    // Frame 3 is not sent at all: its counters are not skipped either, so
    // only its PTS step shows it.
    send(&mut accounting, 4, None);
    send(&mut accounting, 5, None); // begins the frame after frame 4 closes
    let tally = accounting.take_tally();
    assert_eq!(tally.lost_packets, 1);
    // Frames 0, 2 and 4 closed whole (5 is still open).
    assert_eq!(tally.complete_frames, 3, "{tally:?}");
    assert_eq!(
        tally.lost_frames.unknown, 2,
        "frame 1 untyped, frame 3 missing"
    );
}

#[test]
fn the_declared_frame_rate_counts_missing_frames_between_i_frames() {
    let mut accounting = FrameAccounting::new(Format::H264Rtp);
    accounting.set_frame_rate(25, 1);
    // Only the I-frames of a 25-frame GOP arrive, one a second.
    for second in 0..3u16 {
        let timestamp = u32::from(second) * 25 * FRAME_TICKS;
        let packet = rtp(second * 25, timestamp, true, &idr(true));
        accounting.packet(&packet, Duration::from_secs(u64::from(second)));
    }
    let tally = accounting.take_tally();
    assert_eq!(tally.complete_frames, 3);
    assert_eq!(tally.lost_packets, 48);
    assert_eq!(tally.lost_frames.unknown, 48);
}
