//! What the receiver's RTCP says about this stream: reception reports
//! (RFC 3550 §6.4) with the round-trip time from their LSR and DLSR, and
//! requests for a key unit (PLI and FIR, RFC 4585 §6.3.1 and RFC 5104
//! §4.3.1), and transport-wide congestion control feedback. Packets are parsed with GStreamer's RTCP buffer API (`crate::sys`);
//! what does not concern the stream's source is left out here, and what
//! cannot be trusted is refused with the reason, which the sink counts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sys::{self, ReportBlock, RtcpPacket};

/// RTCP packet types 200 to 206 (SR, RR, SDES, BYE, APP, RTPFB, PSFB) and
/// 207 (XR) in the second byte: how RFC 5761 §4 tells RTCP from RTP on one
/// port (RTP payload types 72 to 76 are not used for this reason).
const RTCP_PACKET_TYPES: std::ops::RangeInclusive<u8> = 192..=223;

/// PSFB message types.
const PICTURE_LOSS_INDICATION: u32 = 1;
const FULL_INTRA_REQUEST: u32 = 4;

/// The RTPFB message type of transport-wide congestion control feedback.
const TRANSPORT_WIDE_FEEDBACK: u32 = 15;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// How the receiver is doing, from one report block about the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ReceptionReport {
    /// Share of the stream's packets lost since the previous report, 0 to 1.
    pub fraction_lost: f64,
    /// Packets lost since the receiver began (negative with duplicates).
    pub cumulative_lost: i32,
    /// The extended highest sequence number received: with the loss, how
    /// many packets arrived between two reports.
    pub highest_sequence: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter_ticks: u32,
    /// From the sender report it echoes; None before the receiver has had
    /// one, or when its echo is older than the clock allows to tell.
    pub round_trip: Option<Duration>,
    /// Which sender report it echoes (LSR): a report echoing the same one
    /// as the previous measures nothing new of the path.
    pub echoed_sender_report: u32,
}

/// Which kind of key-unit request the receiver sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyUnitRequest {
    /// Picture loss indication.
    PictureLoss,
    /// Full intra request.
    FullIntra,
}

impl KeyUnitRequest {
    pub fn name(self) -> &'static str {
        match self {
            KeyUnitRequest::PictureLoss => "PLI",
            KeyUnitRequest::FullIntra => "FIR",
        }
    }
}

/// What one RTCP datagram from the receiver says about the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ReceiverMessage {
    pub reports: Vec<ReceptionReport>,
    pub key_unit_requests: Vec<KeyUnitRequest>,
    /// The control information of transport-wide feedback about the
    /// stream, left to [`super::transport_wide`] to read.
    pub transport_wide: Vec<Vec<u8>>,
}

/// Why a datagram was not taken as the receiver's feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not RTCP, or RTCP that GStreamer's validation refuses.
    Malformed,
    /// Valid RTCP about other sources only.
    OtherSource,
    /// Sent from an address other than the receiver's.
    OtherAddress,
    /// Beyond the rate the sink reads RTCP at.
    Flood,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Malformed,
        Refusal::OtherSource,
        Refusal::OtherAddress,
        Refusal::Flood,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in the stats structure, after `rtcp-ignored-`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::OtherSource => "other-source",
            Refusal::OtherAddress => "other-address",
            Refusal::Flood => "flood",
        }
    }
}

/// True when a datagram on the stream's own port is RTCP (RFC 5761 §4).
pub(super) fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && RTCP_PACKET_TYPES.contains(&datagram[1])
}

/// Reads what `datagram` says about the source `ssrc`; `arrival` is when it
/// arrived, in the compact NTP format of LSR and DLSR
/// ([`compact_ntp`]).
pub(super) fn read(datagram: &[u8], ssrc: u32, arrival: u32) -> Result<ReceiverMessage, Refusal> {
    if !is_rtcp(datagram) {
        return Err(Refusal::Malformed);
    }
    let packets = sys::parse_rtcp(datagram).ok_or(Refusal::Malformed)?;
    let mut message = ReceiverMessage::default();
    let mut concerns_us = false;
    // Anything about another source, or in the stream's own name: what
    // makes a datagram that says nothing of the stream a refusal rather
    // than a receiver's minimal compound packet (an RR without report
    // blocks and its SDES, which rtpsession sends beside its feedback).
    let mut concerns_another = false;
    for packet in packets {
        match packet {
            // A reporter in the stream's own name is the sink's own RTCP
            // reflected, or a forgery (RFC 3550 §8.2): never its receiver.
            RtcpPacket::Report { reporter, .. }
            | RtcpPacket::Feedback {
                sender: reporter, ..
            } if reporter == ssrc => concerns_another = true,
            RtcpPacket::Report { blocks, .. } => {
                for block in &blocks {
                    if block.ssrc == ssrc {
                        concerns_us = true;
                        message.reports.push(reception_report(block, arrival));
                    } else {
                        concerns_another = true;
                    }
                }
            }
            RtcpPacket::Feedback {
                payload_specific: true,
                format,
                media,
                control,
                ..
            } => match format {
                PICTURE_LOSS_INDICATION if media == ssrc => {
                    concerns_us = true;
                    message.key_unit_requests.push(KeyUnitRequest::PictureLoss);
                }
                // The media source field is unused in a FIR; each entry of
                // its control information names the source it asks.
                FULL_INTRA_REQUEST
                    if control
                        .chunks_exact(8)
                        .any(|entry| entry[..4] == ssrc.to_be_bytes()) =>
                {
                    concerns_us = true;
                    message.key_unit_requests.push(KeyUnitRequest::FullIntra);
                }
                _ => concerns_another = true,
            },
            RtcpPacket::Feedback {
                payload_specific: false,
                format: TRANSPORT_WIDE_FEEDBACK,
                media,
                control,
                ..
            } if media == ssrc => {
                concerns_us = true;
                message.transport_wide.push(control);
            }
            RtcpPacket::Feedback { .. } => concerns_another = true,
            RtcpPacket::Other(_) => {}
        }
    }
    if concerns_us || !concerns_another {
        Ok(message)
    } else {
        Err(Refusal::OtherSource)
    }
}

fn reception_report(block: &ReportBlock, arrival: u32) -> ReceptionReport {
    // RFC 3550 §6.4.1: A - LSR - DLSR, all in 1/65536 s; no RTT before the
    // receiver has had a sender report (LSR 0).
    let round_trip = (block.last_sender_report != 0)
        .then(|| {
            arrival
                .wrapping_sub(block.last_sender_report)
                .checked_sub(block.delay_since_last_sender_report)
        })
        .flatten()
        // A round trip over a minute is a clock step or a stale echo.
        .filter(|&units| units < 60 << 16)
        .map(compact_ntp_duration);
    ReceptionReport {
        fraction_lost: f64::from(block.fraction_lost) / 256.0,
        cumulative_lost: block.packets_lost,
        highest_sequence: block.highest_sequence,
        jitter_ticks: block.jitter,
        round_trip,
        echoed_sender_report: block.last_sender_report,
    }
}

/// The 64-bit NTP timestamp of `time`.
pub(super) fn ntp_time(time: SystemTime) -> u64 {
    let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET_SECS;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// A span in the compact NTP format of LSR, DLSR and round trips (1/65536 s).
pub(super) fn compact_ntp_duration(units: u32) -> Duration {
    Duration::from_micros(u64::from(units) * 1_000_000 / 65_536)
}

/// The middle 32 bits of an NTP timestamp: LSR's and DLSR's format.
pub(super) fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests;
