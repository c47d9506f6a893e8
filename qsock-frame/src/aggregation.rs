//! The units of an RTP aggregation packet (H.264 STAP and MTAP, RFC 6184
//! §5.7; H.265 AP, RFC 7798 §4.4.2): each a 16-bit size, then that many
//! bytes.

use super::ParseError;

/// Walks the size-prefixed units of `units`; the names say which packet
/// and unit kind an error is about.
pub(crate) fn size_prefixed_units<'a>(
    units: &'a [u8],
    packet_kind: &'a str,
    unit_kind: &'a str,
) -> impl Iterator<Item = Result<&'a [u8], ParseError>> + 'a {
    let mut rest = Some(units);
    std::iter::from_fn(move || {
        let units = rest.take().filter(|units| !units.is_empty())?;
        let Some(size_bytes) = units.get(..2) else {
            return Some(Err(ParseError(format!(
                "{packet_kind} packet ends inside a unit's size"
            ))));
        };
        let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
        let Some(unit) = units.get(2..2 + size) else {
            return Some(Err(ParseError(format!(
                "{unit_kind} unit of {size} bytes runs past the packet's {} remaining bytes",
                units.len() - 2
            ))));
        };
        rest = Some(&units[2 + size..]);
        Some(Ok(unit))
    })
}
