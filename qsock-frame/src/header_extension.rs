//! RTP header extension elements (RFC 8285): the one-byte form (profile
//! `0xBEDE`, IDs 1 to 14) and the two-byte form (profile `0x100x`, IDs 1 to
//! 255), as payloaders add them with `auto-header-extension` for an
//! `extmap-ID` in the caps.

/// Bytes of the RTP fixed header.
const FIXED_HEADER_LEN: usize = 12;

/// The one-byte form's profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// The two-byte form's profiles: `0x100` in the upper 12 bits, the low four
/// bits application-specific.
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// The one-byte form's reserved ID 15: the rest of the extension is not to
/// be read (RFC 8285 §4.2).
const ONE_BYTE_STOP: u8 = 15;

/// The data of the header extension element `id` in the RTP `packet`; None
/// when the packet has no header extension in either form of RFC 8285, no
/// element with that ID, or a malformed one before it.
pub fn element(packet: &[u8], id: u8) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 6 != 2 || first & 0x10 == 0 || id == 0 {
        return None;
    }
    let start = FIXED_HEADER_LEN + 4 * usize::from(first & 0x0f);
    let header = packet.get(start..start + 4)?;
    let profile = u16::from_be_bytes([header[0], header[1]]);
    let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut elements = packet.get(start + 4..start + 4 + 4 * words)?;
    let two_byte = if profile == ONE_BYTE_PROFILE {
        false
    } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
        true
    } else {
        return None;
    };
    while let Some((&lead, rest)) = elements.split_first() {
        // Padding between elements.
        if lead == 0 {
            elements = rest;
            continue;
        }
        let (element_id, length, rest) = if two_byte {
            let (&length, rest) = rest.split_first()?;
            (lead, usize::from(length), rest)
        } else {
            if lead >> 4 == ONE_BYTE_STOP {
                return None;
            }
            (lead >> 4, usize::from(lead & 0x0f) + 1, rest)
        };
        let data = rest.get(..length)?;
        if element_id == id {
            return Some(data);
        }
        elements = &rest[length..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_with(profile: u16, elements: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x90, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
        let words = elements.len().div_ceil(4);
        packet.extend_from_slice(&profile.to_be_bytes());
        packet.extend_from_slice(&(words as u16).to_be_bytes());
        packet.extend_from_slice(elements);
        packet.resize(16 + 4 * words, 0);
        packet.extend_from_slice(b"payload");
        packet
    }

    #[test]
    fn one_byte_elements_are_found_by_id_past_padding_and_others() {
        // ID 3 with 2 bytes, a padding byte, ID 1 with 2 bytes (the
        // transport-wide sequence number 0x0102).
        let packet = packet_with(ONE_BYTE_PROFILE, &[0x31, 0xAA, 0xBB, 0, 0x11, 0x01, 0x02]);
        assert_eq!(element(&packet, 1), Some(&[0x01, 0x02][..]));
        assert_eq!(element(&packet, 3), Some(&[0xAA, 0xBB][..]));
        assert_eq!(element(&packet, 2), None);
    }

    #[test]
    fn two_byte_elements_are_found_by_id() {
        let packet = packet_with(0x1000, &[5, 0, 7, 2, 0x01, 0x02]);
        assert_eq!(element(&packet, 7), Some(&[0x01, 0x02][..]));
        assert_eq!(element(&packet, 5), Some(&[][..]));
    }

    #[test]
    fn other_profiles_truncation_and_the_stop_id_give_nothing() {
        let other = packet_with(0xABCD, &[0x11, 0x01, 0x02]);
        assert_eq!(element(&other, 1), None);
        let stopped = packet_with(ONE_BYTE_PROFILE, &[0xF0, 0x11, 0x01, 0x02]);
        assert_eq!(element(&stopped, 1), None);
        let mut truncated = packet_with(ONE_BYTE_PROFILE, &[0x11, 0x01, 0x02]);
        truncated.truncate(17);
        assert_eq!(element(&truncated, 1), None);
        let mut no_extension = packet_with(ONE_BYTE_PROFILE, &[0x11, 0x01, 0x02]);
        no_extension[0] = 0x80;
        assert_eq!(element(&no_extension, 1), None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(
            packet in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            id in 0u8..16,
        ) {
            let _ = element(&packet, id);
        }
    }
}
