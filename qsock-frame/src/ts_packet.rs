//! The MPEG-2 transport stream packet header (ISO/IEC 13818-1 §2.4.3.2).

use super::ParseError;

/// The size of a transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;

const SYNC_BYTE: u8 = 0x47;

/// The PID of null packets, which carry nothing and no continuity counter.
pub const NULL_PID: u16 = 0x1fff;

/// A view of one 188-byte transport stream packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsPacket<'a> {
    /// The packet identifier.
    pub pid: u16,
    /// The payload begins a PES packet or a section.
    pub payload_unit_start: bool,
    /// Counts packets with payload on this PID, modulo 16.
    pub continuity_counter: u8,
    /// The payload, None when the packet carries only an adaptation field
    /// (or the reserved adaptation_field_control value).
    pub payload: Option<&'a [u8]>,
    /// The adaptation field says the counter restarts here.
    pub discontinuity: bool,
}

impl<'a> TsPacket<'a> {
    /// Parses one packet: `packet` must be 188 bytes starting with the sync
    /// byte, and its adaptation field must fit.
    pub fn parse(packet: &'a [u8]) -> Result<TsPacket<'a>, ParseError> {
        if packet.len() != TS_PACKET_SIZE {
            return Err(ParseError(format!(
                "{}-byte transport stream packet; expected 188 bytes",
                packet.len()
            )));
        }
        if packet[0] != SYNC_BYTE {
            return Err(ParseError(format!(
                "transport stream packet starts with 0x{:02x}; expected sync byte 0x47",
                packet[0]
            )));
        }
        let pid = u16::from_be_bytes([packet[1] & 0x1f, packet[2]]);
        let adaptation_field_control = (packet[3] >> 4) & 3;
        let has_adaptation = adaptation_field_control & 2 != 0;
        let discontinuity = has_adaptation && packet[4] > 0 && packet[5] & 0x80 != 0;
        let payload = match adaptation_field_control {
            1 => Some(&packet[4..]),
            3 => {
                let length = usize::from(packet[4]);
                Some(packet.get(5 + length..).ok_or_else(|| {
                    ParseError(format!(
                        "adaptation field of {length} bytes overruns the transport stream packet on PID {pid}"
                    ))
                })?)
            }
            _ => None,
        };
        Ok(TsPacket {
            pid,
            payload_unit_start: packet[1] & 0x40 != 0,
            continuity_counter: packet[3] & 0x0f,
            payload,
            discontinuity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_adaptation_field() {
        let mut packet = vec![0xff; TS_PACKET_SIZE];
        packet[..4].copy_from_slice(&[0x47, 0x41, 0x00, 0x17]);
        let parsed = TsPacket::parse(&packet).expect("a TS packet");
        assert_eq!(parsed.pid, 0x100);
        assert!(parsed.payload_unit_start);
        assert_eq!(parsed.continuity_counter, 7);
        assert_eq!(parsed.payload.map(<[u8]>::len), Some(184));
        assert!(!parsed.discontinuity);

        packet[3] = 0x37;
        packet[4] = 1;
        packet[5] = 0x80;
        let parsed = TsPacket::parse(&packet).expect("a TS packet");
        assert!(parsed.discontinuity);
        assert_eq!(parsed.payload.map(<[u8]>::len), Some(182));

        packet[1] = 0x1f;
        packet[2] = 0xff;
        assert_eq!(
            TsPacket::parse(&packet).expect("a null packet").pid,
            NULL_PID
        );

        packet[3] = 0x27;
        assert_eq!(TsPacket::parse(&packet).expect("a TS packet").payload, None);

        packet[3] = 0x37;
        packet[4] = 184;
        assert!(
            TsPacket::parse(&packet).is_err(),
            "adaptation field overruns"
        );
        packet[0] = 0x48;
        assert!(TsPacket::parse(&packet).is_err(), "no sync byte");
        assert!(TsPacket::parse(&packet[..100]).is_err(), "short packet");
    }
}
