//! What a stream's packets cost on a device's link, and the shortest period
//! a stream may have there.
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

/// The shortest period at which a stream of packets of `packet_bytes` is
/// admitted on a link of `link_rate` with no other stream: the shortest
/// `ipg` whose [`stream_rate`] fits beside [`best_effort_guarantee`].
pub fn shortest_period(packet_bytes: u64, link_rate: Rate) -> Duration {
    let room = link_rate
        .bits_per_second()
        .saturating_sub(best_effort_guarantee(link_rate).bits_per_second());
    let bits = u128::from(packet_bytes) * 8 * 1_000_000_000;
    let ns = bits.div_ceil(u128::from(room.max(1)));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
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

    #[test]
    fn the_shortest_period_leaves_best_effort_its_guarantee() {
        let link = Rate::from_bits_per_second(10_000_000);
        assert_eq!(shortest_period(1514, link), Duration::from_nanos(1_223_435));
        for (bytes, bits_per_second) in [(1514, 10_000_000), (65_550, 10_000_000_000), (77, 3_000)]
        {
            let link = Rate::from_bits_per_second(bits_per_second);
            let room = link.bits_per_second() - best_effort_guarantee(link).bits_per_second();
            let period = shortest_period(bytes, link);
            let packet = u32::try_from(bytes).unwrap_or(u32::MAX);
            assert!(stream_rate(packet, period).bits_per_second() <= room);
            let faster = stream_rate(packet, period - Duration::from_nanos(1));
            assert!(faster.bits_per_second() > room);
        }
    }
}
