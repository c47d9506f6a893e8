//! What a stream's packets cost on a device's link, and what a rate-based
//! backend keeps of the link for best effort.
//!
//! The rate-based backends (htb) size a stream's class from these rules and
//! refuse a stream faster than the link; a caller that chooses a stream's
//! period (the GStreamer sink) uses the same rules, so that what it asks for
//! is what the backend accepts.

use std::time::Duration;

use crate::params::Rate;

/// Ethernet's header, around an MTU-sized IP packet.
pub const ETHERNET_HEADER_BYTES: u32 = 14;

/// UDP (8), IPv6 (40, the larger IP header) and Ethernet (14) headers
/// around a datagram.
pub const UDP_IPV6_ETHERNET_HEADER_BYTES: u32 = 62;

/// The bytes one packet of a stream takes on the link, headers included (a
/// qdisc charges each packet's length as the device sees it): a datagram of
/// `packet_size` bytes when the stream gives one, else an MTU-sized packet.
pub fn packet_bytes(packet_size: Option<u32>, mtu: u32) -> u32 {
    match packet_size {
        Some(size) => size.saturating_add(UDP_IPV6_ETHERNET_HEADER_BYTES),
        None => full_packet_bytes(mtu),
    }
}

/// The bytes a full-size packet of a device with `mtu` takes on its link.
pub fn full_packet_bytes(mtu: u32) -> u32 {
    mtu.saturating_add(ETHERNET_HEADER_BYTES)
}

/// The rate a stream of one packet of `packet_bytes` every `ipg` needs,
/// rounded up so that a class of this rate is never slower than the stream.
pub fn stream_rate(packet_bytes: u32, ipg: Duration) -> Rate {
    let ipg_ns = ipg.as_nanos().max(1);
    let bits = (u128::from(packet_bytes) * 8 * 1_000_000_000).div_ceil(ipg_ns);
    Rate::from_bits_per_second(u64::try_from(bits).unwrap_or(u64::MAX))
}

/// What a rate-based backend keeps of a link of `link_rate` for best
/// effort: a hundredth (at least 1 kbit/s, as HTB counts whole bytes per
/// second), so that best effort never starves entirely.
pub fn best_effort_guarantee(link_rate: Rate) -> Rate {
    Rate::from_bits_per_second((link_rate.bits_per_second() / 100).max(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_packet_carries_the_ethernet_header() {
        assert_eq!(full_packet_bytes(1500), 1514);
        assert_eq!(packet_bytes(None, 1500), 1514);
        assert_eq!(packet_bytes(Some(1000), 1500), 1062);
    }
}
