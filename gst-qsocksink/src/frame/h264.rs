//! H.264 NAL units (ITU-T H.264 §7.3) and their RTP payload format (RFC 6184).

use super::bits::{rbsp, BitReader};
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
            let fu_header = *payload.get(1).ok_or_else(|| {
                ParseError("H.264 fragmentation unit without its FU header".into())
            })?;
            let is_start = fu_header & 0x80 != 0;
            if !is_start {
                return Ok(Shows::NOTHING);
            }
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
fn aggregated_units(
    mut units: &[u8],
    skip_per_unit: usize,
    kind: &str,
) -> Result<Shows, ParseError> {
    let mut shows = Shows::NOTHING;
    while !units.is_empty() {
        let size_bytes = units
            .get(..2)
            .ok_or_else(|| ParseError(format!("{kind} packet ends inside a unit's size")))?;
        let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
        let unit = units.get(2..2 + size).ok_or_else(|| {
            ParseError(format!(
                "{kind} unit of {size} bytes runs past the packet's {} remaining bytes",
                units.len() - 2
            ))
        })?;
        let nal = unit.get(skip_per_unit..).ok_or_else(|| {
            ParseError(format!(
                "{kind} unit of {size} bytes is shorter than its fields"
            ))
        })?;
        if nal.is_empty() {
            return Err(ParseError(format!("empty NAL unit in a {kind} packet")));
        }
        shows.merge(classify_whole_nal(nal)?);
        units = &units[2 + size..];
    }
    Ok(shows)
}
