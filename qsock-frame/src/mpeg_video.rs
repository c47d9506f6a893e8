//! MPEG-1/2 video (ISO/IEC 13818-2 §6.2): sequence and picture headers found
//! by start code, and the RTP payload format of RFC 2250 §3.

use super::annexb::StartCodeScanner;
use super::{FrameType, ParseError, Shows, UnitError};

const PICTURE_START: u8 = 0x00;
const SEQUENCE_HEADER: u8 = 0xb3;

/// What the start-code unit `unit` (start code value first) shows. Only a
/// picture header needs more than its first byte: picture_coding_type sits
/// after the 10-bit temporal_reference.
pub(crate) fn classify_unit(unit: &[u8], complete: bool) -> Result<Shows, UnitError> {
    match unit {
        [PICTURE_START, _, coding_type_byte, ..] => {
            picture_type((coding_type_byte >> 3) & 7).map(Shows::frame)
        }
        [PICTURE_START, ..] if !complete => Err(UnitError::Truncated),
        [SEQUENCE_HEADER, ..] => Ok(Shows::CONFIGURATION),
        [] if !complete => Err(UnitError::Truncated),
        _ => Ok(Shows::NOTHING),
    }
}

/// picture_coding_type, the same in the picture header and in RFC 2250's P
/// field: MPEG-2 B pictures are never references.
fn picture_type(coding_type: u8) -> Result<FrameType, UnitError> {
    match coding_type {
        1 => Ok(FrameType::Intra),
        2 => Ok(FrameType::Predicted),
        3 => Ok(FrameType::NonReference),
        // D pictures (MPEG-1) are intra-coded DC-only pictures.
        4 => Ok(FrameType::Intra),
        other => Err(UnitError::Invalid(format!(
            "MPEG video picture_coding_type {other} is forbidden or reserved"
        ))),
    }
}

/// RTP MPEG video: the RFC 2250 header of every packet, and the elementary
/// stream after it (scanned across packets, since a picture header may be
/// split by a payloader that cuts at any byte).
#[derive(Debug, Default)]
pub(crate) struct RtpMpegVideo {
    scanner: StartCodeScanner,
}

impl RtpMpegVideo {
    pub(crate) fn classify_rtp_payload(&mut self, payload: &[u8]) -> Result<Shows, ParseError> {
        let header = payload.get(..4).ok_or_else(|| {
            ParseError(format!(
                "{}-byte MPEG video RTP payload is shorter than the 4-byte RFC 2250 header",
                payload.len()
            ))
        })?;
        let has_mpeg2_extension = header[0] & 0x04 != 0;
        let sequence_header_present = header[2] & 0x20 != 0;
        let header_picture_type = header[2] & 7;
        let es_start = if has_mpeg2_extension { 8 } else { 4 };
        let elementary_stream = payload.get(es_start..).ok_or_else(|| {
            ParseError(
                "MPEG video RTP payload ends inside its RFC 2250 MPEG-2 extension header".into(),
            )
        })?;

        let mut shows = self
            .scanner
            .push(elementary_stream, &mut classify_unit)
            .map_err(|error| match error {
                UnitError::Invalid(message) => ParseError(message),
                UnitError::Truncated => ParseError("MPEG video header cut short".into()),
            })?;
        // Payloaders may leave the header's P field 0 (GStreamer's
        // rtpmpvpay writes a zero header); a picture header in the payload
        // is the stream's own word and wins over the field.
        if shows.frame_type == FrameType::Unknown && header_picture_type != 0 {
            shows.frame_type = picture_type(header_picture_type).map_err(|_| {
                ParseError(format!(
                    "RFC 2250 header picture type {header_picture_type} is reserved"
                ))
            })?;
        }
        shows.configuration |= sequence_header_present;
        Ok(shows)
    }
}

/// True when an MPEG video RTP payload (RFC 2250 §3.4) begins a picture:
/// after the video-specific header (and the MPEG-2 extension header, when
/// its T bit says there is one) comes a sequence, GOP or picture start code.
pub fn rtp_payload_starts_picture(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let header_len = if first & 0x04 != 0 { 8 } else { 4 };
    matches!(
        payload.get(header_len..header_len + 4),
        Some([0, 0, 1, 0xb3 | 0xb8 | 0x00])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_starts() {
        assert!(rtp_payload_starts_picture(&[
            0, 0, 0x10, 0x01, 0, 0, 1, 0xb3
        ]));
        assert!(rtp_payload_starts_picture(&[
            0x04, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x00
        ]));
        assert!(!rtp_payload_starts_picture(&[0, 0, 0, 0x01, 0, 0, 1, 0x01]));
    }
}
