//! H.264 NAL units (ITU-T H.264 §7.3) and their RTP payload format (RFC 6184).

use super::aggregation::size_prefixed_units;
use super::bits::{rbsp, BitReader};
use super::fragmentation::starting_fu_header;
use super::{FrameType, ParseError, Shows, UnitError};

const NON_IDR_SLICE: u8 = 1;
const PARTITION_A: u8 = 2;
const IDR_SLICE: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;
const SPS_EXTENSION: u8 = 13;
const SUBSET_SPS: u8 = 15;
const STAP_A: u8 = 24;
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_A: u8 = 28;
const FU_B: u8 = 29;

/// A slice header's first two fields need a few bytes; more than this is
/// never read, which bounds the copy for emulation-prevention removal.
const SLICE_HEADER_PREFIX: usize = 16;

/// What the NAL unit `nal` (header byte first) shows. `nal` may be only the
/// unit's beginning; `complete` says whether more of it may come: when it is
/// false a cut-off slice header is `Truncated`, when true the type is guessed
/// from the NAL header alone.
pub(crate) fn classify_nal(nal: &[u8], complete: bool) -> Result<Shows, UnitError> {
    let header = *nal.first().ok_or(UnitError::Truncated)?;
    let nal_ref_idc = (header >> 5) & 3;
    match header & 0x1f {
        NON_IDR_SLICE | PARTITION_A => {
            let end = nal.len().min(1 + SLICE_HEADER_PREFIX);
            match slice_type(&nal[1..end]) {
                Ok(slice_type) => Ok(Shows::frame(frame_type(slice_type, nal_ref_idc))),
                Err(UnitError::Truncated) if complete => Ok(Shows::frame(if nal_ref_idc == 0 {
                    FrameType::NonReference
                } else {
                    FrameType::Predicted
                })),
                Err(error) => Err(error),
            }
        }
        IDR_SLICE => Ok(Shows::frame(FrameType::Intra)),
        SPS | PPS | SPS_EXTENSION | SUBSET_SPS => Ok(Shows::CONFIGURATION),
        _ => Ok(Shows::NOTHING),
    }
}

/// `slice_type` of a slice header, from the bytes after the NAL header.
fn slice_type(header_bytes: &[u8]) -> Result<u32, UnitError> {
    let rbsp = rbsp(header_bytes);
    let mut reader = BitReader::new(&rbsp);
    let _first_mb_in_slice = reader.ue()?;
    let slice_type = reader.ue()?;
    if slice_type > 9 {
        return Err(UnitError::Invalid(format!(
            "H.264 slice_type {slice_type} is out of range 0-9"
        )));
    }
    Ok(slice_type)
}

fn frame_type(slice_type: u32, nal_ref_idc: u8) -> FrameType {
    const I: u32 = 2;
    const SI: u32 = 4;
    match slice_type % 5 {
        I | SI => FrameType::Intra,
        _ if nal_ref_idc == 0 => FrameType::NonReference,
        _ => FrameType::Predicted,
    }
}

/// What an RTP H.264 payload shows: a single NAL unit, an aggregation
/// packet (every unit in it) or a fragment (only the first carries the
/// slice header).
pub(crate) fn classify_rtp_payload(payload: &[u8]) -> Result<Shows, ParseError> {
    let header = *payload
        .first()
        .ok_or_else(|| ParseError("empty H.264 RTP payload".into()))?;
    match header & 0x1f {
        0 | 30 | 31 => Err(ParseError(format!(
            "H.264 RTP payload of undefined NAL unit type {}",
            header & 0x1f
        ))),
        STAP_A => aggregated_units(&payload[1..], 0, "STAP-A"),
        STAP_B => {
            let units = payload
                .get(3..)
                .ok_or_else(|| ParseError("STAP-B packet ends inside its DON".into()))?;
            aggregated_units(units, 0, "STAP-B")
        }
        MTAP16 | MTAP24 => {
            let units = payload
                .get(3..)
                .ok_or_else(|| ParseError("MTAP packet ends inside its DONB".into()))?;
            // Each unit is preceded by DOND (1 byte) and a timestamp offset
            // of 2 (MTAP16) or 3 (MTAP24) bytes.
            let per_unit = if header & 0x1f == MTAP16 { 3 } else { 4 };
            aggregated_units(units, per_unit, "MTAP")
        }
        FU_A | FU_B => {
            let Some(fu_header) = starting_fu_header(payload, 1, "H.264")? else {
                return Ok(Shows::NOTHING);
            };
            let fragment_start = if header & 0x1f == FU_A { 2 } else { 4 };
            let fragment = payload.get(fragment_start..).unwrap_or_default();
            let mut nal = Vec::with_capacity(1 + SLICE_HEADER_PREFIX);
            nal.push((header & 0xe0) | (fu_header & 0x1f));
            nal.extend(fragment.iter().take(SLICE_HEADER_PREFIX));
            classify_whole_nal(&nal)
        }
        _ => classify_whole_nal(payload),
    }
}

fn classify_whole_nal(nal: &[u8]) -> Result<Shows, ParseError> {
    classify_nal(nal, true).map_err(|error| match error {
        UnitError::Invalid(message) => ParseError(message),
        UnitError::Truncated => ParseError("H.264 NAL unit cut short".into()),
    })
}

/// Walks the units of an aggregation packet: each is a 16-bit size, then
/// `skip_per_unit` bytes of decoding-order and timing fields, then the NAL
/// unit (the size covers those fields and the unit).
fn aggregated_units(units: &[u8], skip_per_unit: usize, kind: &str) -> Result<Shows, ParseError> {
    let mut shows = Shows::NOTHING;
    for unit in size_prefixed_units(units, kind, kind) {
        let unit = unit?;
        let nal = unit.get(skip_per_unit..).ok_or_else(|| {
            ParseError(format!(
                "{kind} unit of {} bytes is shorter than its fields",
                unit.len()
            ))
        })?;
        if nal.is_empty() {
            return Err(ParseError(format!("empty NAL unit in a {kind} packet")));
        }
        shows.merge(classify_whole_nal(nal)?);
    }
    Ok(shows)
}

/// True when an H.264 RTP payload (RFC 6184) begins an access unit: a
/// parameter set, SEI or delimiter, or a slice whose first_mb_in_slice is 0
/// (its Exp-Golomb code is the single bit 1), alone, first in a STAP-A, or
/// in the first fragment of an FU-A.
pub fn rtp_payload_starts_access_unit(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        1..=5 => payload.get(1).is_some_and(|byte| byte & 0x80 != 0),
        6..=9 => true,
        // STAP-A: a two-byte size, then the first NAL unit.
        24 => payload.get(3..).is_some_and(rtp_payload_starts_access_unit),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_unit_starts() {
        assert!(rtp_payload_starts_access_unit(&[0x67, 0x42]), "SPS");
        assert!(
            rtp_payload_starts_access_unit(&[0x65, 0x88]),
            "IDR slice, first_mb 0"
        );
        assert!(
            !rtp_payload_starts_access_unit(&[0x41, 0x20]),
            "slice, first_mb 1"
        );
        assert!(
            rtp_payload_starts_access_unit(&[0x18, 0, 2, 0x67, 0x42]),
            "STAP-A with SPS"
        );
        assert!(
            rtp_payload_starts_access_unit(&[0x7c, 0x85, 0x88]),
            "FU-A start, IDR"
        );
        assert!(
            !rtp_payload_starts_access_unit(&[0x7c, 0x05, 0x88]),
            "FU-A continuation"
        );
        assert!(
            !rtp_payload_starts_access_unit(&[0x7c, 0x85, 0x20]),
            "FU-A start, second slice"
        );
        assert!(!rtp_payload_starts_access_unit(&[]));
    }
}
