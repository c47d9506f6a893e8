//! What the accounting reads from packets besides the frame type: RTP
//! sequence numbers and timestamps, transport stream continuity counters and
//! PES timestamps, and whether a packet's payload begins a frame.

/// The RTP header fields (RFC 3550 §5.1) that tell losses and frames apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtpPacket<'a> {
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    /// The payload after CSRCs and header extension (padding left on).
    pub(crate) payload: &'a [u8],
}

/// Parses an RTP version 2 header; None for anything else.
pub(crate) fn rtp(packet: &[u8]) -> Option<RtpPacket<'_>> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    Some(RtpPacket {
        sequence: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes(packet.get(4..8)?.try_into().ok()?),
        marker: packet[1] & 0x80 != 0,
        payload: packet.get(start..)?,
    })
}

/// True when an H.264 RTP payload (RFC 6184) begins an access unit: a
/// parameter set, SEI or delimiter, or a slice whose first_mb_in_slice is 0
/// (its Exp-Golomb code is the single bit 1), alone, first in a STAP-A, or
/// in the first fragment of an FU-A.
pub(crate) fn h264_starts_frame(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        1..=5 => payload.get(1).is_some_and(|byte| byte & 0x80 != 0),
        6..=9 => true,
        // STAP-A: a two-byte size, then the first NAL unit.
        24 => payload.get(3..).is_some_and(h264_starts_frame),
        // FU-A: the fragment header's start bit and NAL unit type, then the
        // fragmented unit's first byte after its header.
        28 => {
            let Some(&fragment) = payload.get(1) else {
                return false;
            };
            let starts = fragment & 0x80 != 0;
            match fragment & 0x1f {
                1..=5 => starts && payload.get(2).is_some_and(|byte| byte & 0x80 != 0),
                6..=9 => starts,
                _ => false,
            }
        }
        _ => false,
    }
}

/// True when an MPEG video RTP payload (RFC 2250 §3.4) begins a picture:
/// after the video-specific header (and the MPEG-2 extension header, when
/// its T bit says there is one) comes a sequence, GOP or picture start code.
pub(crate) fn mpeg_video_starts_frame(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let header_len = if first & 0x04 != 0 { 8 } else { 4 };
    matches!(
        payload.get(header_len..header_len + 4),
        Some([0, 0, 1, 0xb3 | 0xb8 | 0x00])
    )
}

/// The size of a transport stream packet.
pub(crate) const TS_PACKET_SIZE: usize = 188;

/// The PID of null packets, which carry nothing and no continuity counter.
const NULL_PID: u16 = 0x1fff;

/// One transport stream packet's header (ISO/IEC 13818-1 §2.4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TsPacket<'a> {
    pub(crate) pid: u16,
    pub(crate) payload_unit_start: bool,
    /// Counts packets with payload on this PID, modulo 16.
    pub(crate) continuity_counter: u8,
    /// The payload, None when the packet carries only an adaptation field.
    pub(crate) payload: Option<&'a [u8]>,
    /// The adaptation field says the counter restarts here.
    pub(crate) discontinuity: bool,
}

/// Parses a 188-byte packet; None without the sync byte, or for null
/// packets.
pub(crate) fn ts_packet(packet: &[u8]) -> Option<TsPacket<'_>> {
    if packet.len() != TS_PACKET_SIZE || packet[0] != 0x47 {
        return None;
    }
    let pid = u16::from_be_bytes([packet[1] & 0x1f, packet[2]]);
    if pid == NULL_PID {
        return None;
    }
    let control = (packet[3] >> 4) & 3;
    let has_adaptation = control & 2 != 0;
    let adaptation_len = if has_adaptation {
        1 + usize::from(packet[4])
    } else {
        0
    };
    let discontinuity = has_adaptation && packet[4] > 0 && packet[5] & 0x80 != 0;
    let payload = if control & 1 != 0 {
        Some(packet.get(4 + adaptation_len..)?)
    } else {
        None
    };
    Some(TsPacket {
        pid,
        payload_unit_start: packet[1] & 0x40 != 0,
        continuity_counter: packet[3] & 0x0f,
        payload,
        discontinuity,
    })
}

/// When `payload` (of a packet that starts a payload unit) begins a video
/// PES packet (stream_id 0xE0 to 0xEF), Some with its PTS in 90 kHz ticks,
/// if it has one; None when it is not a video PES packet.
pub(crate) fn video_pes_start(payload: &[u8]) -> Option<Option<u64>> {
    let [0, 0, 1, stream_id, ..] = payload else {
        return None;
    };
    if stream_id & 0xf0 != 0xe0 {
        return None;
    }
    let has_pts = payload.get(7).is_some_and(|flags| flags & 0x80 != 0);
    let pts = payload.get(9..14).filter(|_| has_pts).map(|bytes| {
        (u64::from(bytes[0] >> 1) & 0x07) << 30
            | u64::from(bytes[1]) << 22
            | u64::from(bytes[2] >> 1) << 15
            | u64::from(bytes[3]) << 7
            | u64::from(bytes[4] >> 1)
    });
    Some(pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_header_fields() {
        let mut packet = vec![0x80, 0x80 | 96, 0x12, 0x34, 0, 0, 0x0e, 0x10, 1, 2, 3, 4];
        packet.extend_from_slice(&[0x65, 0x88]);
        let rtp = rtp(&packet).expect("an RTP packet");
        assert_eq!(rtp.sequence, 0x1234);
        assert_eq!(rtp.timestamp, 3600);
        assert!(rtp.marker);
        assert_eq!(rtp.payload, &[0x65, 0x88]);
        assert!(super::rtp(&[0x40; 12]).is_none(), "version 1");
        assert!(super::rtp(&[0x80; 8]).is_none(), "too short");
    }

    #[test]
    fn h264_frame_starts() {
        assert!(h264_starts_frame(&[0x67, 0x42]), "SPS");
        assert!(h264_starts_frame(&[0x65, 0x88]), "IDR slice, first_mb 0");
        assert!(!h264_starts_frame(&[0x41, 0x20]), "slice, first_mb 1");
        assert!(
            h264_starts_frame(&[0x18, 0, 2, 0x67, 0x42]),
            "STAP-A with SPS"
        );
        assert!(h264_starts_frame(&[0x7c, 0x85, 0x88]), "FU-A start, IDR");
        assert!(!h264_starts_frame(&[0x7c, 0x05, 0x88]), "FU-A continuation");
        assert!(
            !h264_starts_frame(&[0x7c, 0x85, 0x20]),
            "FU-A start, second slice"
        );
        assert!(!h264_starts_frame(&[]));
    }

    #[test]
    fn mpeg_video_frame_starts() {
        assert!(mpeg_video_starts_frame(&[0, 0, 0x10, 0x01, 0, 0, 1, 0xb3]));
        assert!(mpeg_video_starts_frame(&[
            0x04, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x00
        ]));
        assert!(!mpeg_video_starts_frame(&[0, 0, 0, 0x01, 0, 0, 1, 0x01]));
    }

    #[test]
    fn transport_stream_headers_and_pts() {
        let mut packet = vec![0xff; TS_PACKET_SIZE];
        packet[..4].copy_from_slice(&[0x47, 0x41, 0x00, 0x17]);
        // PES header: video stream, PTS only, PTS = 0x1_2345_6789 & 33 bits.
        let pts: u64 = 0x1_2345_6789;
        packet[4..18].copy_from_slice(&[
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
        let parsed = ts_packet(&packet).expect("a TS packet");
        assert_eq!(parsed.pid, 0x100);
        assert!(parsed.payload_unit_start);
        assert_eq!(parsed.continuity_counter, 7);
        let payload = parsed.payload.expect("has a payload");
        assert_eq!(video_pes_start(payload), Some(Some(pts)));
        assert_eq!(video_pes_start(&[0, 0, 1, 0xc0]), None, "audio");
        packet[1] = 0x1f;
        packet[2] = 0xff;
        assert!(ts_packet(&packet).is_none(), "null packet");
    }
}
