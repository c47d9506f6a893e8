//! The classifier on hand-built packets of every format.

use proptest::prelude::*;

use super::{Classifier, FrameType, PacketInfo, PayloadFormat, RtpPacket};

/// Writes syntax elements most significant bit first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bit_count: usize,
}

impl BitWriter {
    fn bit(&mut self, bit: bool) -> &mut Self {
        if self.bit_count % 8 == 0 {
            self.bytes.push(0);
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> (self.bit_count % 8);
        }
        self.bit_count += 1;
        self
    }

    fn bits(&mut self, value: u64, count: u32) -> &mut Self {
        for shift in (0..count).rev() {
            self.bit((value >> shift) & 1 == 1);
        }
        self
    }

    fn ue(&mut self, value: u32) -> &mut Self {
        let code = u64::from(value) + 1;
        let length = 64 - code.leading_zeros();
        self.bits(0, length - 1).bits(code, length)
    }

    /// rbsp_trailing_bits, then emulation prevention as an encoder applies
    /// it.
    fn finish(&mut self) -> Vec<u8> {
        self.bit(true);
        let mut escaped = Vec::new();
        let mut zeros = 0;
        for &byte in &self.bytes {
            if zeros >= 2 && byte <= 3 {
                escaped.push(3);
                zeros = 0;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            escaped.push(byte);
        }
        escaped
    }
}

fn rtp(marker: bool, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let packet = RtpPacket {
        marker,
        payload_type: 96,
        sequence: 0,
        timestamp,
        ssrc: 0x0102_0304,
        payload,
    };
    packet.serialize()
}

fn inspect(classifier: &mut Classifier, packet: &[u8]) -> PacketInfo {
    classifier
        .inspect(packet)
        .unwrap_or_else(|error| panic!("{error}"))
}

// ---------------------------------------------------------------- H.264

fn h264_slice(nal_ref_idc: u8, nal_type: u8, first_mb: u32, slice_type: u32) -> Vec<u8> {
    let mut nal = vec![(nal_ref_idc << 5) | nal_type];
    nal.extend(
        BitWriter::default()
            .ue(first_mb)
            .ue(slice_type)
            .ue(0) // pic_parameter_set_id
            .bits(0x5a5a, 16) // slice data stand-in
            .finish(),
    );
    nal
}

const H264_SPS: [u8; 5] = [0x67, 0x4d, 0x00, 0x1e, 0xab];
const H264_PPS: [u8; 3] = [0x68, 0xee, 0x3c];

fn stap_a(units: &[&[u8]]) -> Vec<u8> {
    let mut payload = vec![0x78]; // NRI 3, type 24
    for unit in units {
        payload.extend_from_slice(&(unit.len() as u16).to_be_bytes());
        payload.extend_from_slice(unit);
    }
    payload
}

/// FU-A fragments of `nal`, `size` bytes of it each.
fn fu_a(nal: &[u8], size: usize) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = nal[1..].chunks(size).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let start = if index == 0 { 0x80 } else { 0 };
            let end = if index == chunks.len() - 1 { 0x40 } else { 0 };
            let mut payload = vec![(nal[0] & 0xe0) | 28, start | end | (nal[0] & 0x1f)];
            payload.extend_from_slice(chunk);
            payload
        })
        .collect()
}

fn h264_type_of(nal: &[u8]) -> FrameType {
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    inspect(&mut classifier, &rtp(true, 0, nal)).frame_type
}

#[test]
fn h264_slice_types_and_reference_idc() {
    const P: u32 = 0;
    const B: u32 = 1;
    const I: u32 = 2;
    assert_eq!(h264_type_of(&h264_slice(2, 1, 0, P)), FrameType::Predicted);
    assert_eq!(
        h264_type_of(&h264_slice(2, 1, 0, P + 5)),
        FrameType::Predicted
    );
    assert_eq!(
        h264_type_of(&h264_slice(0, 1, 0, B)),
        FrameType::NonReference
    );
    assert_eq!(
        h264_type_of(&h264_slice(0, 1, 0, P)),
        FrameType::NonReference
    );
    assert_eq!(
        h264_type_of(&h264_slice(1, 1, 0, B + 5)),
        FrameType::Predicted
    );
    assert_eq!(h264_type_of(&h264_slice(3, 1, 7, I + 5)), FrameType::Intra);
    assert_eq!(
        h264_type_of(&h264_slice(3, 1, 7, 4)),
        FrameType::Intra,
        "SI"
    );
    assert_eq!(
        h264_type_of(&h264_slice(3, 5, 0, I)),
        FrameType::Intra,
        "IDR"
    );
    assert_eq!(
        h264_type_of(&[0x06, 0x05, 0x01, 0x80]),
        FrameType::Unknown,
        "SEI"
    );
}

#[test]
fn h264_slice_header_behind_emulation_prevention() {
    // first_mb_in_slice with 22 leading zeros writes 00 00 02 00 00 ...:
    // the encoder escapes it, and slice_type is only found after undoing
    // that.
    let nal = h264_slice(0, 1, (1 << 22) - 1, 1);
    assert!(
        nal.windows(3).any(|window| window == [0, 0, 3]),
        "{nal:02x?}"
    );
    assert_eq!(h264_type_of(&nal), FrameType::NonReference);
}

#[test]
fn h264_parameter_sets_are_configuration() {
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    let sps = inspect(&mut classifier, &rtp(false, 0, &H264_SPS));
    assert!(sps.configuration);
    assert_eq!(sps.frame_type, FrameType::Unknown);
    let slice = inspect(&mut classifier, &rtp(true, 0, &h264_slice(2, 1, 0, 0)));
    assert!(!slice.configuration);
}

#[test]
fn h264_stap_a_shows_every_unit() {
    let idr = h264_slice(3, 5, 0, 7);
    let payload = stap_a(&[&H264_SPS, &H264_PPS, &idr]);
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    let info = inspect(&mut classifier, &rtp(false, 0, &payload));
    assert!(info.configuration);
    assert_eq!(info.frame_type, FrameType::Intra);

    let mut broken = payload.clone();
    broken.truncate(payload.len() - 2);
    let error = classifier
        .inspect(&rtp(false, 0, &broken))
        .expect_err("unit runs past the packet");
    assert!(error.0.contains("STAP-A"), "{error}");
}

#[test]
fn h264_fu_a_only_the_first_fragment_shows_the_slice() {
    let mut nal = h264_slice(0, 1, 0, 1);
    nal.extend(std::iter::repeat_n(0x55, 40));
    let fragments = fu_a(&nal, 16);
    assert!(fragments.len() >= 3);
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    let last = fragments.len() - 1;
    for (index, fragment) in fragments.iter().enumerate() {
        let info = inspect(&mut classifier, &rtp(index == last, 9000, fragment));
        assert_eq!(info.starts_frame, index == 0);
        assert_eq!(info.ends_frame, index == last);
        assert_eq!(info.frame, 9000);
        let expected = if index == 0 {
            FrameType::NonReference
        } else {
            FrameType::Unknown
        };
        assert_eq!(info.frame_type, expected, "fragment {index}");
    }
}

#[test]
fn rtp_frames_follow_the_timestamp() {
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    let slice = h264_slice(2, 1, 0, 0);
    let starts: Vec<bool> = [100, 100, 200, 200, 200, 300]
        .iter()
        .map(|&timestamp| inspect(&mut classifier, &rtp(false, timestamp, &slice)).starts_frame)
        .collect();
    assert_eq!(starts, vec![true, false, true, false, false, true]);
}

#[test]
fn h264_errors_say_what_was_wrong() {
    let mut classifier = Classifier::new(PayloadFormat::RtpH264);
    let mut version_one = rtp(false, 0, &H264_SPS);
    version_one[0] = 0x40;
    let error = classifier.inspect(&version_one).expect_err("version 1");
    assert_eq!(
        error.to_string(),
        "RTP version 1 packet; expected version 2"
    );
    let error = classifier.inspect(&rtp(false, 0, &[])).expect_err("empty");
    assert!(error.0.contains("empty"), "{error}");
    let error = classifier
        .inspect(&rtp(false, 0, &h264_slice(2, 1, 0, 12)))
        .expect_err("slice_type 12");
    assert!(error.0.contains("slice_type 12"), "{error}");
}

#[test]
fn h264_fu_b_and_stap_b_carry_decoding_order_numbers() {
    let slice = h264_slice(0, 1, 0, 1);
    let mut fu_b = vec![(slice[0] & 0xe0) | 29, 0x80 | (slice[0] & 0x1f), 0x12, 0x34];
    fu_b.extend_from_slice(&slice[1..]);
    assert_eq!(h264_type_of(&fu_b), FrameType::NonReference);

    let idr = h264_slice(3, 5, 0, 7);
    let mut stap_b = vec![0x79, 0x00, 0x01];
    stap_b.extend_from_slice(&(idr.len() as u16).to_be_bytes());
    stap_b.extend_from_slice(&idr);
    assert_eq!(h264_type_of(&stap_b), FrameType::Intra);
}

// ---------------------------------------------------------------- H.265

fn h265_nal(nal_type: u8, temporal_id: u8, body: &[u8]) -> Vec<u8> {
    let mut nal = vec![nal_type << 1, temporal_id + 1];
    nal.extend_from_slice(body);
    nal
}

/// An SPS for 320x240 with 16-sample CTBs: 20 x 15 = 300 CTBs, so
/// slice_segment_address takes 9 bits.
fn h265_sps(max_sub_layers_minus1: u8) -> Vec<u8> {
    let mut writer = BitWriter::default();
    writer
        .bits(0, 4) // vps id
        .bits(u64::from(max_sub_layers_minus1), 3)
        .bit(true) // temporal id nesting
        .bits(0x0160_0000, 32) // profile space, tier, Main profile...
        .bits(0x9000_0000, 32) // ...compatibility and constraint flags
        .bits(0, 24)
        .bits(0x5d, 8); // level
    for _ in 0..max_sub_layers_minus1 {
        writer.bit(false).bit(false); // no sub-layer profile or level
    }
    if max_sub_layers_minus1 > 0 {
        writer.bits(0, 2 * (8 - u32::from(max_sub_layers_minus1)));
    }
    writer
        .ue(0) // sps id
        .ue(1) // 4:2:0
        .ue(320)
        .ue(240)
        .bit(false) // no conformance window
        .ue(0)
        .ue(0)
        .ue(4)
        .bit(true); // ordering info for all sub-layers
    for _ in 0..=max_sub_layers_minus1 {
        writer.ue(4).ue(2).ue(0);
    }
    writer
        .ue(0) // 8-sample minimum coding block
        .ue(1) // 16-sample CTB
        .bits(0x3c3c, 16); // the rest of the SPS, unread
    h265_nal(33, 0, &writer.finish())
}

fn h265_pps(dependent_slice_segments_enabled: bool, extra_slice_header_bits: u64) -> Vec<u8> {
    let body = BitWriter::default()
        .ue(0) // pps id
        .ue(0) // sps id
        .bit(dependent_slice_segments_enabled)
        .bit(false) // output_flag_present
        .bits(extra_slice_header_bits, 3)
        .bits(0xa5, 8)
        .finish();
    h265_nal(34, 0, &body)
}

/// A slice segment of a picture using the SPS and PPS above (two extra
/// slice header bits, dependent slice segments enabled).
fn h265_slice(nal_type: u8, temporal_id: u8, address: Option<u64>, slice_type: u32) -> Vec<u8> {
    let mut writer = BitWriter::default();
    writer.bit(address.is_none());
    if (16..=23).contains(&nal_type) {
        writer.bit(false);
    }
    writer.ue(0);
    if let Some(address) = address {
        writer.bit(false); // not dependent
        writer.bits(address, 9);
    }
    writer.bits(0b11, 2).ue(slice_type).bits(0xff00, 16);
    h265_nal(nal_type, temporal_id, &writer.finish())
}

fn h265_configured(max_sub_layers_minus1: u8) -> Classifier {
    let mut classifier = Classifier::new(PayloadFormat::RtpH265);
    let vps = h265_nal(32, 0, &[0x0c, 0x01, 0xff]);
    let sps = h265_sps(max_sub_layers_minus1);
    let pps = h265_pps(true, 2);
    let mut aggregation = h265_nal(48, 0, &[]);
    for unit in [&vps, &sps, &pps] {
        aggregation.extend_from_slice(&(unit.len() as u16).to_be_bytes());
        aggregation.extend_from_slice(unit);
    }
    let info = inspect(&mut classifier, &rtp(false, 0, &aggregation));
    assert!(info.configuration);
    assert_eq!(info.frame_type, FrameType::Unknown);
    classifier
}

#[test]
fn h265_slice_types_need_the_parameter_sets() {
    const B: u32 = 0;
    const P: u32 = 1;
    const I: u32 = 2;
    const TRAIL_N: u8 = 0;
    const TRAIL_R: u8 = 1;
    const RASL_N: u8 = 8;
    let mut classifier = h265_configured(0);
    let mut type_of = |nal: Vec<u8>| inspect(&mut classifier, &rtp(true, 0, &nal)).frame_type;
    for (nal_type, address, slice_type, frame_type) in [
        (TRAIL_R, None, P, FrameType::Predicted),
        (TRAIL_R, None, B, FrameType::Predicted),
        (TRAIL_R, None, I, FrameType::Intra),
        (TRAIL_N, None, B, FrameType::NonReference),
        (RASL_N, None, B, FrameType::NonReference),
        // Later slice segments: the 9-bit address sits before slice_type; an
        // address of all ones read with the wrong length would garble the type.
        (TRAIL_R, Some(0x1ff), I, FrameType::Intra),
        (TRAIL_R, Some(0x100), P, FrameType::Predicted),
    ] {
        assert_eq!(
            type_of(h265_slice(nal_type, 0, address, slice_type)),
            frame_type,
            "NAL type {nal_type}, address {address:?}, slice type {slice_type}"
        );
    }
    for irap in [16, 19, 20, 21] {
        assert_eq!(type_of(h265_slice(irap, 0, None, I)), FrameType::Intra);
    }
}

#[test]
fn h265_without_parameter_sets_falls_back_to_the_nal_type() {
    let mut classifier = Classifier::new(PayloadFormat::RtpH265);
    let mut type_of = |nal: Vec<u8>| inspect(&mut classifier, &rtp(true, 0, &nal)).frame_type;
    assert_eq!(type_of(h265_slice(1, 0, None, 2)), FrameType::Predicted);
    assert_eq!(type_of(h265_slice(0, 0, None, 2)), FrameType::NonReference);
    assert_eq!(type_of(h265_slice(19, 0, None, 2)), FrameType::Intra);
}

#[test]
fn h265_non_reference_types_of_lower_sub_layers_are_references() {
    // With three temporal sub-layers, a TRAIL_N picture of sub-layer 0 may
    // be referenced from sub-layer 1 or 2; one of the top sub-layer not.
    let mut classifier = h265_configured(2);
    let mut type_of = |nal: Vec<u8>| inspect(&mut classifier, &rtp(true, 0, &nal)).frame_type;
    assert_eq!(type_of(h265_slice(0, 0, None, 0)), FrameType::Predicted);
    assert_eq!(type_of(h265_slice(0, 2, None, 0)), FrameType::NonReference);
}

#[test]
fn h265_fragmentation_units() {
    let mut classifier = h265_configured(0);
    let mut slice = h265_slice(1, 0, None, 2);
    slice.extend(std::iter::repeat_n(0x77, 30));
    let fu_header = |start: bool| (if start { 0x80 } else { 0 }) | 1;
    let mut first = h265_nal(49, 0, &[fu_header(true)]);
    first.extend_from_slice(&slice[2..20]);
    let mut second = h265_nal(49, 0, &[fu_header(false) | 0x40]);
    second.extend_from_slice(&slice[20..]);
    let first = inspect(&mut classifier, &rtp(false, 5, &first));
    let second = inspect(&mut classifier, &rtp(true, 5, &second));
    assert_eq!(first.frame_type, FrameType::Intra);
    assert!(first.starts_frame);
    assert_eq!(second.frame_type, FrameType::Unknown);
    assert!(second.ends_frame && !second.starts_frame);
}

#[test]
fn h265_errors() {
    let mut classifier = Classifier::new(PayloadFormat::RtpH265);
    assert!(classifier.inspect(&rtp(false, 0, &[0x02])).is_err());
    let error = classifier
        .inspect(&rtp(false, 0, &[0x02, 0x00, 0x00]))
        .expect_err("temporal id plus one of zero");
    assert!(error.0.contains("nuh_temporal_id_plus1"), "{error}");
    let error = classifier
        .inspect(&rtp(false, 0, &h265_nal(50, 0, &[0, 0, 0])))
        .expect_err("PACI");
    assert!(error.0.contains("PACI"), "{error}");
}

// ------------------------------------------------------ MPEG video (RTP)

const SEQUENCE_HEADER: [u8; 12] = [
    0x00, 0x00, 0x01, 0xb3, 0x14, 0x00, 0xf0, 0x13, 0xff, 0xff, 0xe0, 0x18,
];

fn picture_header(coding_type: u8) -> [u8; 8] {
    // temporal_reference 5, then picture_coding_type, vbv_delay...
    let second = (5u16 << 6) as u8 | (coding_type << 3);
    [0x00, 0x00, 0x01, 0x00, 0x01, second, 0xff, 0xf8]
}

/// A sequence header, then a picture header of `coding_type`.
fn sequence_and_picture_header(coding_type: u8) -> Vec<u8> {
    [&SEQUENCE_HEADER[..], &picture_header(coding_type)].concat()
}

fn rfc2250_header(picture_type: u8, sequence_header: bool) -> Vec<u8> {
    vec![
        0,
        5,
        if sequence_header { 0x20 } else { 0 } | 0x10 | picture_type,
        0,
    ]
}

#[test]
fn mpeg_video_picture_header_and_rfc2250_field() {
    let mut classifier = Classifier::new(PayloadFormat::RtpMpegVideo);
    // rtpmpvpay's all-zero header: the picture header tells.
    let mut payload = vec![0, 0, 0, 0];
    payload.extend_from_slice(&SEQUENCE_HEADER);
    payload.extend_from_slice(&picture_header(1));
    payload.extend_from_slice(&[0, 0, 1, 1, 0x12, 0x34]);
    let info = inspect(&mut classifier, &rtp(false, 3000, &payload));
    assert_eq!(info.frame_type, FrameType::Intra);
    assert!(info.configuration && info.starts_frame && !info.ends_frame);

    let mut continuation = vec![0, 0, 0, 0];
    continuation.extend_from_slice(&[0, 0, 1, 2, 0x55, 0x66]);
    let info = inspect(&mut classifier, &rtp(true, 3000, &continuation));
    assert_eq!(info.frame_type, FrameType::Unknown);
    assert!(info.ends_frame && !info.configuration);

    // A filled-in header tells on every packet, picture header or not.
    let mut slice_only = rfc2250_header(3, false);
    slice_only.extend_from_slice(&[0, 0, 1, 2, 0x55, 0x66]);
    let info = inspect(&mut classifier, &rtp(true, 6000, &slice_only));
    assert_eq!(info.frame_type, FrameType::NonReference);
    let mut with_sequence = rfc2250_header(2, true);
    with_sequence.extend_from_slice(&[0, 0, 1, 2, 0x55, 0x66]);
    let info = inspect(&mut classifier, &rtp(true, 9000, &with_sequence));
    assert_eq!(info.frame_type, FrameType::Predicted);
    assert!(info.configuration);

    // The MPEG-2 extension header (T bit) is skipped.
    let mut extended = vec![0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    extended.extend_from_slice(&picture_header(3));
    let info = inspect(&mut classifier, &rtp(true, 12000, &extended));
    assert_eq!(info.frame_type, FrameType::NonReference);
}

#[test]
fn mpeg_video_picture_header_split_across_packets() {
    let mut classifier = Classifier::new(PayloadFormat::RtpMpegVideo);
    let mut stream = sequence_and_picture_header(2);
    stream.extend_from_slice(&[0, 0, 1, 1, 9, 9, 9]);
    let split_at = SEQUENCE_HEADER.len() + 5; // inside the picture header
    let mut first = vec![0, 0, 0, 0];
    first.extend_from_slice(&stream[..split_at]);
    let mut second = vec![0, 0, 0, 0];
    second.extend_from_slice(&stream[split_at..]);
    let first = inspect(&mut classifier, &rtp(false, 1, &first));
    let second = inspect(&mut classifier, &rtp(true, 1, &second));
    assert_eq!(first.frame_type, FrameType::Unknown);
    assert!(first.configuration);
    assert_eq!(second.frame_type, FrameType::Predicted);
}

#[test]
fn mpeg_video_errors() {
    let mut classifier = Classifier::new(PayloadFormat::RtpMpegVideo);
    assert!(classifier.inspect(&rtp(false, 0, &[0, 0])).is_err());
    let mut forbidden = vec![0, 0, 0, 0];
    forbidden.extend_from_slice(&picture_header(0));
    let error = classifier
        .inspect(&rtp(false, 0, &forbidden))
        .expect_err("picture_coding_type 0");
    assert!(error.0.contains("picture_coding_type 0"), "{error}");
    assert!(classifier
        .inspect(&rtp(false, 0, &rfc2250_header(6, false)))
        .is_err());
}

// ------------------------------------------------------- MPEG-TS

const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// A transport stream packet carrying `payload`, padded with adaptation
/// field stuffing.
fn ts_packet(pid: u16, payload_unit_start: bool, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 184);
    let mut packet = vec![
        0x47,
        (if payload_unit_start { 0x40 } else { 0 }) | (pid >> 8) as u8,
        pid as u8,
    ];
    let stuffing = 184 - payload.len();
    if stuffing == 0 {
        packet.push(0x10);
    } else {
        packet.push(0x30);
        packet.push((stuffing - 1) as u8);
        if stuffing > 1 {
            packet.push(0x00);
            packet.extend(std::iter::repeat_n(0xff, stuffing - 2));
        }
    }
    packet.extend_from_slice(payload);
    assert_eq!(packet.len(), 188);
    packet
}

fn psi_section(table_id: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut section = vec![
        0x00, // pointer field
        table_id,
        0xb0 | (section_length >> 8) as u8,
        section_length as u8,
        0x00,
        0x01,
        0xc1,
        0x00,
        0x00,
    ];
    section.extend_from_slice(body);
    section.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // CRC, unchecked
    section
}

fn pat() -> Vec<u8> {
    let body = [0x00, 0x01, 0xe0 | (PMT_PID >> 8) as u8, PMT_PID as u8];
    ts_packet(0, true, &psi_section(0x00, &body))
}

fn pmt(video_stream_type: u8) -> Vec<u8> {
    let mut body = vec![0xe1, 0x00, 0xf0, 0x00]; // PCR PID, no program info
    body.extend_from_slice(&[0x0f, 0xe1, AUDIO_PID as u8, 0xf0, 0x03, 0x0a, 0x01, 0x00]);
    body.extend_from_slice(&[video_stream_type, 0xe1, VIDEO_PID as u8, 0xf0, 0x00]);
    ts_packet(PMT_PID, true, &psi_section(0x02, &body))
}

fn pes_start(elementary_stream: &[u8]) -> Vec<u8> {
    let mut pes = vec![0x00, 0x00, 0x01, 0xe0, 0x00, 0x00, 0x80, 0x80, 0x05];
    pes.extend_from_slice(&[0x21, 0x00, 0x01, 0x00, 0x01]); // PTS
    pes.extend_from_slice(elementary_stream);
    pes
}

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut stream = Vec::new();
    for nal in nals {
        stream.extend_from_slice(&[0, 0, 0, 1]);
        stream.extend_from_slice(nal);
    }
    stream
}

fn concat(packets: &[Vec<u8>]) -> Vec<u8> {
    packets.concat()
}

/// TS packets of the PAT, a PMT whose video is of `stream_type`, and the
/// video's first packet, starting a PES of `elementary_stream`.
fn tables_and_video_start(stream_type: u8, elementary_stream: &[u8]) -> Vec<u8> {
    concat(&[
        pat(),
        pmt(stream_type),
        ts_packet(VIDEO_PID, true, &pes_start(elementary_stream)),
    ])
}

#[test]
fn mpegts_h264_frames_from_pes_starts() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    let aud = [0x09, 0xf0];
    let idr = h264_slice(3, 5, 0, 7);
    let first_frame = annex_b(&[&aud, &H264_SPS, &H264_PPS, &idr]);
    let datagram = tables_and_video_start(0x1b, &first_frame);
    let info = inspect(&mut classifier, &datagram);
    assert_eq!(
        (info.frame, info.starts_frame, info.also_ends_previous),
        (1, true, false)
    );
    assert_eq!(info.frame_type, FrameType::Intra);
    assert!(info.configuration);
    assert!(!info.ends_frame);

    // The tail of frame 1, audio, and the start of frame 2 (a B frame).
    let b_slice = h264_slice(0, 1, 0, 1);
    let datagram = concat(&[
        ts_packet(VIDEO_PID, false, &[0x42; 100]),
        ts_packet(AUDIO_PID, true, &[0xff; 50]),
        ts_packet(VIDEO_PID, true, &pes_start(&annex_b(&[&aud, &b_slice]))),
    ]);
    let info = inspect(&mut classifier, &datagram);
    assert_eq!(
        (info.frame, info.starts_frame, info.also_ends_previous),
        (2, true, true)
    );
    assert_eq!(info.frame_type, FrameType::NonReference);
    assert!(!info.configuration);

    // Audio alone belongs to no new frame and shows nothing.
    let info = inspect(&mut classifier, &ts_packet(AUDIO_PID, false, &[0x12; 184]));
    assert_eq!((info.frame, info.starts_frame), (2, false));
    assert_eq!(info.frame_type, FrameType::Unknown);
}

#[test]
fn mpegts_frames_held_whole_inside_a_datagram_are_typed() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    let aud = [0x09, 0xf0];
    let idr = annex_b(&[&aud, &h264_slice(3, 5, 0, 7)]);
    inspect(&mut classifier, &tables_and_video_start(0x1b, &idr));
    // The tail of frame 1; frames 2 (B) and 3 (P) whole; the start of frame 4
    // (B). Frame 2's slice is two bytes, the last of its PES packet: the
    // scanner cannot tell it from the start of a start code until the next
    // PES packet shows that the slice is complete.
    // nal_ref_idc 0, type 1; first_mb 0, slice_type 1 (B), pps 0.
    let tiny_b_slice = [0x01, 0b1010_1000];
    let tiny_b_frame = annex_b(&[&aud, &tiny_b_slice]);
    let b_frame = annex_b(&[&aud, &h264_slice(0, 1, 0, 1)]);
    let p_frame = annex_b(&[&aud, &h264_slice(2, 1, 0, 0)]);
    let datagram = concat(&[
        ts_packet(VIDEO_PID, false, &[0x42; 100]),
        ts_packet(VIDEO_PID, true, &pes_start(&tiny_b_frame)),
        ts_packet(VIDEO_PID, true, &pes_start(&p_frame)),
        ts_packet(VIDEO_PID, true, &pes_start(&b_frame)),
    ]);
    let info = inspect(&mut classifier, &datagram);
    assert_eq!(
        (info.frame, info.starts_frame, info.also_ends_previous),
        (4, true, true)
    );
    assert_eq!(
        info.hidden_frames,
        [FrameType::NonReference, FrameType::Predicted]
    );
    assert_eq!(info.frame_type, FrameType::NonReference);

    // A datagram that starts one frame hides none.
    let info = inspect(
        &mut classifier,
        &ts_packet(VIDEO_PID, true, &pes_start(&p_frame)),
    );
    assert_eq!((info.frame, info.hidden_frames.len()), (5, 0));
}

#[test]
fn mpegts_slice_header_split_across_datagrams() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    inspect(&mut classifier, &concat(&[pat(), pmt(0x1b)]));
    let p_slice = h264_slice(2, 1, 0, 0);
    let stream = pes_start(&annex_b(&[&[0x09, 0x30], &p_slice]));
    // Cut right after the slice's NAL header byte.
    let cut = stream.len() - (p_slice.len() - 1);
    let first = inspect(&mut classifier, &ts_packet(VIDEO_PID, true, &stream[..cut]));
    let second = inspect(
        &mut classifier,
        &ts_packet(VIDEO_PID, false, &stream[cut..]),
    );
    assert_eq!(first.frame_type, FrameType::Unknown);
    assert!(first.starts_frame);
    assert_eq!(second.frame_type, FrameType::Predicted);
    assert_eq!((second.frame, second.starts_frame), (1, false));
}

#[test]
fn mpegts_pes_header_split_across_packets() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    inspect(&mut classifier, &concat(&[pat(), pmt(0x1b)]));
    let stream = pes_start(&annex_b(&[&h264_slice(3, 5, 0, 7)]));
    let datagram = concat(&[
        ts_packet(VIDEO_PID, true, &stream[..7]),
        ts_packet(VIDEO_PID, false, &stream[7..]),
    ]);
    let info = inspect(&mut classifier, &datagram);
    assert_eq!(info.frame_type, FrameType::Intra);
}

#[test]
fn mpegts_mpeg2_video_and_rtp_encapsulation() {
    let mut classifier = Classifier::new(PayloadFormat::RtpMp2t);
    let stream = sequence_and_picture_header(3);
    let datagram = tables_and_video_start(0x02, &stream);
    let info = inspect(&mut classifier, &rtp(false, 77, &datagram));
    assert_eq!(info.frame_type, FrameType::NonReference);
    assert!(info.configuration && info.starts_frame);
    assert_eq!(info.frame, 1, "TS frames are counted, not RTP timestamps");
}

#[test]
fn mpegts_h265_video() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    let stream = annex_b(&[
        &h265_nal(35, 0, &[0x50]),
        &h265_sps(0),
        &h265_pps(true, 2),
        &h265_slice(1, 0, None, 2),
    ]);
    let datagram = tables_and_video_start(0x24, &stream);
    let info = inspect(&mut classifier, &datagram);
    assert_eq!(
        info.frame_type,
        FrameType::Intra,
        "I slice in a TRAIL_R picture"
    );
    assert!(info.configuration);
}

#[test]
fn mpegts_errors() {
    let mut classifier = Classifier::new(PayloadFormat::MpegTs);
    let error = classifier.inspect(&[0x47; 100]).expect_err("short");
    assert!(error.0.contains("188"), "{error}");
    let mut bad_sync = concat(&[pat(), pmt(0x1b)]);
    bad_sync[188] = 0x48;
    let error = classifier.inspect(&bad_sync).expect_err("sync byte");
    assert!(
        error.0.contains("packet 1") && error.0.contains("0x48"),
        "{error}"
    );
    inspect(&mut classifier, &concat(&[pat(), pmt(0x1b)]));
    let error = classifier
        .inspect(&ts_packet(VIDEO_PID, true, &[0xaa; 20]))
        .expect_err("not a PES start");
    assert!(error.0.contains("PES"), "{error}");
}

// ------------------------------------------------------- no panics

const FORMATS: [PayloadFormat; 5] = [
    PayloadFormat::RtpH264,
    PayloadFormat::RtpH265,
    PayloadFormat::RtpMpegVideo,
    PayloadFormat::RtpMp2t,
    PayloadFormat::MpegTs,
];

/// Valid packets of each format, to be cut and corrupted.
fn valid_packets() -> Vec<(PayloadFormat, Vec<u8>)> {
    let mpv = [&[0, 0, 0, 0][..], &sequence_and_picture_header(1)].concat();
    let ts = tables_and_video_start(
        0x24,
        &annex_b(&[
            &h265_sps(1),
            &h265_pps(false, 0),
            &h265_slice(1, 0, None, 1),
        ]),
    );
    vec![
        (
            PayloadFormat::RtpH264,
            rtp(
                true,
                1,
                &stap_a(&[&H264_SPS, &H264_PPS, &h264_slice(3, 5, 0, 7)]),
            ),
        ),
        (
            PayloadFormat::RtpH264,
            rtp(true, 1, &fu_a(&h264_slice(2, 1, 0, 0), 4)[0]),
        ),
        (PayloadFormat::RtpH265, rtp(true, 1, &h265_sps(2))),
        (
            PayloadFormat::RtpH265,
            rtp(true, 1, &h265_slice(1, 0, Some(3), 1)),
        ),
        (PayloadFormat::RtpMpegVideo, rtp(true, 1, &mpv)),
        (PayloadFormat::MpegTs, ts.clone()),
        (PayloadFormat::RtpMp2t, rtp(false, 1, &ts)),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(format_index in 0..FORMATS.len(), packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..4)) {
        let mut classifier = Classifier::new(FORMATS[format_index]);
        for packet in &packets {
            let _ = classifier.inspect(packet);
        }
    }

    #[test]
    fn corrupted_valid_packets_never_panic(
        which in 0..7usize,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let (format, mut packet) = valid_packets().swap_remove(which);
        let mut classifier = Classifier::new(format);
        for (position, value) in flips {
            let index = position.index(packet.len());
            packet[index] = value;
        }
        // The whole packet, then a cut-off copy: state from the first must
        // not trip up the second.
        let _ = classifier.inspect(&packet);
        let _ = classifier.inspect(&packet[..cut.index(packet.len() + 1)]);
        // Stuffing a TS datagram with random packets after a valid PMT.
        if matches!(format, PayloadFormat::MpegTs) {
            let mut shifted = packet.clone();
            shifted.rotate_left(188);
            let _ = classifier.inspect(&shifted);
        }
    }
}

#[test]
fn valid_packets_are_classified() {
    // The corpus the corruption test starts from is itself valid.
    for (format, packet) in valid_packets() {
        let mut classifier = Classifier::new(format);
        let info = classifier
            .inspect(&packet)
            .unwrap_or_else(|error| panic!("{format:?}: {error}"));
        assert!(
            info.configuration || info.frame_type != FrameType::Unknown,
            "{format:?}: {info:?}"
        );
    }
}
