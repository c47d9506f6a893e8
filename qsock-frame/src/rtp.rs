//! The RTP fixed header (RFC 3550 §5.1): the fields that tell frames and
//! losses apart, and where the payload is.

use super::ParseError;

/// A view of one RTP version 2 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit: for video, the last packet of a frame.
    pub marker: bool,
    /// The payload type.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// The payload without CSRCs, header extension and padding.
    pub payload: &'a [u8],
}

impl RtpPacket<'_> {
    /// The packet's bytes with the shortest header (no CSRCs, no header
    /// extension, no padding), as a payloader makes them.
    pub fn serialize(&self) -> Vec<u8> {
        let mut packet = Vec::with_capacity(FIXED_HEADER_LEN + self.payload.len());
        packet.push(0x80);
        packet.push(u8::from(self.marker) << 7 | self.payload_type & 0x7f);
        packet.extend_from_slice(&self.sequence.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(self.payload);
        packet
    }
}

const FIXED_HEADER_LEN: usize = 12;

/// The fields of the 12-byte fixed header of an RTP version 2 packet, read
/// without checking what follows it: enough to group a packet whose payload
/// cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The marker bit: for video, the last packet of a frame.
    pub marker: bool,
    /// The payload type.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
}

impl FixedHeader {
    /// The fixed header of `packet`; None when it is shorter than 12 bytes
    /// or not RTP version 2.
    pub fn parse(packet: &[u8]) -> Option<FixedHeader> {
        let header = packet.get(..FIXED_HEADER_LEN)?;
        if header[0] >> 6 != 2 {
            return None;
        }
        Some(FixedHeader {
            marker: header[1] & 0x80 != 0,
            payload_type: header[1] & 0x7f,
            sequence: u16::from_be_bytes([header[2], header[3]]),
            timestamp: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        })
    }
}

/// Parses the RTP header of `packet`.
pub fn parse(packet: &[u8]) -> Result<RtpPacket<'_>, ParseError> {
    if packet.len() < FIXED_HEADER_LEN {
        return Err(ParseError(format!(
            "{}-byte packet is shorter than the 12-byte RTP header",
            packet.len()
        )));
    }
    let Some(FixedHeader {
        marker,
        payload_type,
        sequence,
        timestamp,
    }) = FixedHeader::parse(packet)
    else {
        return Err(ParseError(format!(
            "RTP version {} packet; expected version 2",
            packet[0] >> 6
        )));
    };
    let has_padding = packet[0] & 0x20 != 0;
    let has_extension = packet[0] & 0x10 != 0;
    let csrc_count = usize::from(packet[0] & 0x0f);

    let mut payload_start = FIXED_HEADER_LEN + 4 * csrc_count;
    if packet.len() < payload_start {
        return Err(ParseError(format!(
            "RTP packet of {} bytes cannot hold its {csrc_count} CSRCs",
            packet.len()
        )));
    }
    if has_extension {
        let extension = packet
            .get(payload_start..payload_start + 4)
            .ok_or_else(|| {
                ParseError("RTP packet ends inside its header extension's header".into())
            })?;
        let words = usize::from(u16::from_be_bytes([extension[2], extension[3]]));
        payload_start += 4 + 4 * words;
        if packet.len() < payload_start {
            return Err(ParseError(format!(
                "RTP header extension of {words} words runs past the {}-byte packet",
                packet.len()
            )));
        }
    }
    let mut payload_end = packet.len();
    if has_padding {
        let padding = usize::from(packet[packet.len() - 1]);
        if padding == 0 || payload_start + padding > packet.len() {
            return Err(ParseError(format!(
                "RTP padding of {padding} bytes does not fit the {}-byte payload",
                packet.len() - payload_start
            )));
        }
        payload_end -= padding;
    }
    Ok(RtpPacket {
        marker,
        payload_type,
        sequence,
        timestamp,
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload: &packet[payload_start..payload_end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(first_byte: u8, marker: bool) -> Vec<u8> {
        let mut packet = vec![first_byte, if marker { 0x80 | 96 } else { 96 }, 0, 1];
        packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        packet.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        packet
    }

    #[test]
    fn plain_header() {
        let mut packet = header(0x80, true);
        packet.extend_from_slice(&[1, 2, 3]);
        let rtp = parse(&packet).expect("valid packet");
        assert!(rtp.marker);
        assert_eq!(rtp.payload_type, 96);
        assert_eq!(rtp.sequence, 1);
        assert_eq!(rtp.timestamp, 0x1234_5678);
        assert_eq!(rtp.payload, &[1, 2, 3]);
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let mut packet = header(0x80 | 0x20 | 0x10 | 2, false);
        packet.extend_from_slice(&[0; 8]); // two CSRCs
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // one-word extension
        packet.extend_from_slice(&[7, 8]);
        packet.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let rtp = parse(&packet).expect("valid packet");
        assert!(!rtp.marker);
        assert_eq!(rtp.payload, &[7, 8]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        let error = parse(&header(0x40, false)).expect_err("version 1");
        assert_eq!(error.0, "RTP version 1 packet; expected version 2");
        assert!(parse(&[0x80; 11]).is_err());
        assert!(parse(&header(0x80 | 3, false)).is_err(), "missing CSRCs");
        assert!(parse(&header(0x90, false)).is_err(), "missing extension");
        let mut packet = header(0xa0, false);
        packet.push(9);
        assert!(parse(&packet).is_err(), "padding longer than the payload");
    }
}
