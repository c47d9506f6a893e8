//! H.265 NAL units (ITU-T H.265 §7.3) and their RTP payload format
//! (RFC 7798). Slice types need fields of the picture parameter set and, for
//! slice segments after the first, the picture size from the sequence
//! parameter set, so the parameter sets seen so far are kept by id.

use std::collections::HashMap;

use super::aggregation::size_prefixed_units;
use super::bits::{rbsp, BitReader, OutOfBits};
use super::fragmentation::starting_fu_header;
use super::{FrameType, ParseError, Shows, UnitError};

const LAST_NON_IRAP_VCL: u8 = 15;
const FIRST_IRAP: u8 = 16;
const LAST_IRAP: u8 = 23;
const VPS: u8 = 32;
const SPS: u8 = 33;
const PPS: u8 = 34;
const AGGREGATION_PACKET: u8 = 48;
const FRAGMENTATION_UNIT: u8 = 49;
const PACI: u8 = 50;

/// Parameter sets end with VUI and extensions that are never read; what is
/// read comes well within this many bytes.
const PARAMETER_SET_PREFIX: usize = 256;
/// The slice segment header up to slice_type, with room for a long
/// slice_segment_address and extra header bits.
const SLICE_HEADER_PREFIX: usize = 32;

/// What slice headers need of a sequence parameter set.
#[derive(Debug, Clone, Copy)]
struct SequenceParameters {
    max_sub_layers_minus1: u8,
    /// Length of slice_segment_address: Ceil(Log2(PicSizeInCtbsY)).
    slice_address_bits: u32,
}

/// What slice headers need of a picture parameter set.
#[derive(Debug, Clone, Copy)]
struct PictureParameters {
    sps_id: u32,
    dependent_slice_segments_enabled: bool,
    num_extra_slice_header_bits: u32,
}

/// The parameter sets seen so far, by id.
#[derive(Debug, Default)]
pub(crate) struct ParameterSets {
    sequence: HashMap<u32, SequenceParameters>,
    picture: HashMap<u32, PictureParameters>,
}

/// The two-byte NAL unit header.
#[derive(Debug, Clone, Copy)]
struct NalHeader {
    nal_type: u8,
    temporal_id: u8,
}

impl NalHeader {
    fn parse(nal: &[u8]) -> Result<NalHeader, UnitError> {
        let bytes = nal.get(..2).ok_or(UnitError::Truncated)?;
        let temporal_id_plus1 = bytes[1] & 7;
        if temporal_id_plus1 == 0 {
            return Err(UnitError::Invalid(
                "H.265 NAL unit header with nuh_temporal_id_plus1 = 0".into(),
            ));
        }
        Ok(NalHeader {
            nal_type: (bytes[0] >> 1) & 0x3f,
            temporal_id: temporal_id_plus1 - 1,
        })
    }
}

/// What the slice segment header tells before slice_type.
#[derive(Debug, Clone, Copy)]
struct SliceSegment {
    pps_id: u32,
    /// None for a dependent slice segment, which has no slice_type of its
    /// own.
    slice_type: Option<u32>,
}

impl ParameterSets {
    /// What the NAL unit `nal` (two-byte header first) shows; parameter sets
    /// are kept for later slices. `complete` as for H.264: when false, a
    /// cut-off header asks for more bytes instead of being guessed from the
    /// NAL type.
    pub(crate) fn classify_nal(&mut self, nal: &[u8], complete: bool) -> Result<Shows, UnitError> {
        let header = NalHeader::parse(nal)?;
        match header.nal_type {
            0..=LAST_NON_IRAP_VCL => self.classify_slice(header, nal, complete),
            FIRST_IRAP..=LAST_IRAP => Ok(Shows::frame(FrameType::Intra)),
            VPS => Ok(Shows::CONFIGURATION),
            SPS | PPS => {
                let body = rbsp(&nal[2..nal.len().min(PARAMETER_SET_PREFIX)]);
                let stored = if header.nal_type == SPS {
                    self.store_sequence_parameters(&body)
                } else {
                    self.store_picture_parameters(&body)
                };
                match stored {
                    // A parameter set that cannot be read is still one: the
                    // decoder needs it, whatever its slices then show.
                    Err(OutOfBits) if !complete => Err(UnitError::Truncated),
                    _ => Ok(Shows::CONFIGURATION),
                }
            }
            _ => Ok(Shows::NOTHING),
        }
    }

    fn classify_slice(
        &self,
        header: NalHeader,
        nal: &[u8],
        complete: bool,
    ) -> Result<Shows, UnitError> {
        // Even types below 16 are sub-layer non-reference pictures
        // (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N and reserved ones).
        let sub_layer_non_reference = header.nal_type % 2 == 0;
        let segment = if header.nal_type <= 9 {
            match self.slice_segment(header, nal) {
                Ok(segment) => segment,
                Err(UnitError::Truncated) if !complete => return Err(UnitError::Truncated),
                Err(UnitError::Invalid(message)) => return Err(UnitError::Invalid(message)),
                Err(UnitError::Truncated) => None,
            }
        } else {
            None
        };
        if sub_layer_non_reference {
            // Such a picture may still be a reference for pictures of a
            // higher temporal sub-layer.
            let referenced_by_higher_sub_layers = segment
                .and_then(|segment| self.picture.get(&segment.pps_id))
                .and_then(|pps| self.sequence.get(&pps.sps_id))
                .is_some_and(|sps| header.temporal_id < sps.max_sub_layers_minus1);
            return Ok(Shows::frame(if referenced_by_higher_sub_layers {
                FrameType::Predicted
            } else {
                FrameType::NonReference
            }));
        }
        const I: u32 = 2;
        Ok(Shows::frame(
            match segment.and_then(|segment| segment.slice_type) {
                Some(I) => FrameType::Intra,
                Some(0..=1) => FrameType::Predicted,
                Some(other) => {
                    return Err(UnitError::Invalid(format!(
                        "H.265 slice_type {other} is out of range 0-2"
                    )))
                }
                // Dependent slice segment, or no parameter set to read the
                // header with: a reference picture, so at least Predicted.
                None => FrameType::Predicted,
            },
        ))
    }

    /// Reads the slice segment header up to slice_type; None when the
    /// parameter sets it needs have not been seen.
    fn slice_segment(
        &self,
        header: NalHeader,
        nal: &[u8],
    ) -> Result<Option<SliceSegment>, UnitError> {
        let body = rbsp(&nal[2..nal.len().min(2 + SLICE_HEADER_PREFIX)]);
        let mut reader = BitReader::new(&body);
        let first_slice_segment_in_pic = reader.bit()?;
        if (FIRST_IRAP..=LAST_IRAP).contains(&header.nal_type) {
            let _no_output_of_prior_pics = reader.bit()?;
        }
        let pps_id = reader.ue()?;
        let Some(pps) = self.picture.get(&pps_id) else {
            return Ok(None);
        };
        let mut dependent = false;
        if !first_slice_segment_in_pic {
            if pps.dependent_slice_segments_enabled {
                dependent = reader.bit()?;
            }
            let Some(sps) = self.sequence.get(&pps.sps_id) else {
                return Ok(None);
            };
            reader.skip(sps.slice_address_bits as usize)?;
        }
        let slice_type = if dependent {
            None
        } else {
            reader.skip(pps.num_extra_slice_header_bits as usize)?;
            Some(reader.ue()?)
        };
        Ok(Some(SliceSegment { pps_id, slice_type }))
    }

    fn store_sequence_parameters(&mut self, body: &[u8]) -> Result<(), OutOfBits> {
        let mut reader = BitReader::new(body);
        let _vps_id = reader.bits(4)?;
        let max_sub_layers_minus1 = reader.bits(3)? as u8;
        let _temporal_id_nesting = reader.bit()?;
        skip_profile_tier_level(&mut reader, max_sub_layers_minus1)?;
        let sps_id = reader.ue()?;
        let chroma_format_idc = reader.ue()?;
        if chroma_format_idc == 3 {
            let _separate_colour_plane = reader.bit()?;
        }
        let width = reader.ue()?;
        let height = reader.ue()?;
        if reader.bit()? {
            // conformance window offsets
            for _ in 0..4 {
                reader.ue()?;
            }
        }
        let _bit_depth_luma_minus8 = reader.ue()?;
        let _bit_depth_chroma_minus8 = reader.ue()?;
        let _log2_max_pic_order_cnt_lsb_minus4 = reader.ue()?;
        let ordering_info_for_all_sub_layers = reader.bit()?;
        let ordering_entries = if ordering_info_for_all_sub_layers {
            u32::from(max_sub_layers_minus1) + 1
        } else {
            1
        };
        for _ in 0..ordering_entries {
            // max_dec_pic_buffering, max_num_reorder_pics, max_latency_increase
            for _ in 0..3 {
                reader.ue()?;
            }
        }
        let log2_min_coding_block = u64::from(reader.ue()?) + 3;
        let log2_ctb = log2_min_coding_block + u64::from(reader.ue()?);
        // Valid streams have 16 to 64-sample CTBs; anything else is not
        // stored rather than believed.
        if sps_id > 15 || !(4..=6).contains(&log2_ctb) {
            return Ok(());
        }
        let ctb_size = 1u64 << log2_ctb;
        let ctbs = u64::from(width).div_ceil(ctb_size) * u64::from(height).div_ceil(ctb_size);
        let slice_address_bits = if ctbs <= 1 {
            0
        } else {
            64 - (ctbs - 1).leading_zeros()
        };
        self.sequence.insert(
            sps_id,
            SequenceParameters {
                max_sub_layers_minus1,
                slice_address_bits,
            },
        );
        Ok(())
    }

    fn store_picture_parameters(&mut self, body: &[u8]) -> Result<(), OutOfBits> {
        let mut reader = BitReader::new(body);
        let pps_id = reader.ue()?;
        let sps_id = reader.ue()?;
        let dependent_slice_segments_enabled = reader.bit()?;
        let _output_flag_present = reader.bit()?;
        let num_extra_slice_header_bits = reader.bits(3)?;
        if pps_id <= 63 && sps_id <= 15 {
            self.picture.insert(
                pps_id,
                PictureParameters {
                    sps_id,
                    dependent_slice_segments_enabled,
                    num_extra_slice_header_bits,
                },
            );
        }
        Ok(())
    }

    /// What an RTP H.265 payload shows: a single NAL unit, an aggregation
    /// packet (every unit in it) or a fragmentation unit (only the first
    /// fragment carries the header). Decoding-order numbers (DONL, present
    /// only when sprop-max-don-diff > 0) are not expected.
    pub(crate) fn classify_rtp_payload(&mut self, payload: &[u8]) -> Result<Shows, ParseError> {
        let header = NalHeader::parse(payload).map_err(|error| match error {
            UnitError::Truncated => ParseError(format!(
                "{}-byte H.265 RTP payload is shorter than the NAL unit header",
                payload.len()
            )),
            UnitError::Invalid(message) => ParseError(message),
        })?;
        match header.nal_type {
            AGGREGATION_PACKET => {
                let mut shows = Shows::NOTHING;
                let units = &payload[2..];
                for nal in size_prefixed_units(units, "H.265 aggregation", "H.265 aggregated") {
                    shows.merge(self.classify_whole_nal(nal?)?);
                }
                Ok(shows)
            }
            FRAGMENTATION_UNIT => {
                let Some(fu_header) = starting_fu_header(payload, 2, "H.265")? else {
                    return Ok(Shows::NOTHING);
                };
                let mut nal = Vec::with_capacity(PARAMETER_SET_PREFIX);
                nal.push((payload[0] & 0x81) | ((fu_header & 0x3f) << 1));
                nal.push(payload[1]);
                nal.extend(payload[3..].iter().take(PARAMETER_SET_PREFIX));
                self.classify_whole_nal(&nal)
            }
            PACI => Err(ParseError(
                "H.265 PACI packets (type 50) are not parsed".into(),
            )),
            _ => self.classify_whole_nal(payload),
        }
    }

    fn classify_whole_nal(&mut self, nal: &[u8]) -> Result<Shows, ParseError> {
        self.classify_nal(nal, true).map_err(|error| match error {
            UnitError::Invalid(message) => ParseError(message),
            UnitError::Truncated => ParseError("H.265 NAL unit cut short".into()),
        })
    }
}

/// profile_tier_level(1, max_sub_layers_minus1): nothing in it is needed,
/// but its length depends on which sub-layer parts are present.
fn skip_profile_tier_level(
    reader: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<(), OutOfBits> {
    // general profile space, tier, profile, compatibility flags, constraint
    // flags and level: 2 + 1 + 5 + 32 + 48 + 8 bits.
    reader.skip(96)?;
    let sub_layers = usize::from(max_sub_layers_minus1);
    let mut present = [(false, false); 8];
    for flags in present.iter_mut().take(sub_layers) {
        *flags = (reader.bit()?, reader.bit()?);
    }
    if sub_layers > 0 {
        reader.skip(2 * (8 - sub_layers))?;
    }
    for &(profile_present, level_present) in present.iter().take(sub_layers) {
        if profile_present {
            reader.skip(88)?;
        }
        if level_present {
            reader.skip(8)?;
        }
    }
    Ok(())
}
