//! The fragmentation units of RTP H.264 (FU-A and FU-B, RFC 6184 §5.8) and
//! H.265 (FU, RFC 7798 §4.4.3): a NAL unit split over packets, whose FU
//! header's S bit marks the fragment that starts it.

use super::ParseError;

/// The FU header's start (S) bit.
const START: u8 = 0x80;

/// The FU header at `at` in a fragmentation unit's `payload` when the
/// fragment starts its NAL unit; `None` for a later fragment. `codec` names
/// the packet in the error.
pub(crate) fn starting_fu_header(
    payload: &[u8],
    at: usize,
    codec: &str,
) -> Result<Option<u8>, ParseError> {
    let fu_header = *payload
        .get(at)
        .ok_or_else(|| ParseError(format!("{codec} fragmentation unit without its FU header")))?;
    Ok((fu_header & START != 0).then_some(fu_header))
}
