//! Video frames and their types, found by parsing the packets of a stream:
//! the one RTP and MPEG-TS packet view of the project, the codec
//! classifiers, and the grouping of packets into frames.
//!
//! The sender (qsocksink) hands every datagram to a [`Classifier`] built for
//! the negotiated caps; the classifier says which frame the packet belongs
//! to, whether it ends that frame, and what its payload shows of the frame's
//! type. A [`FrameAssembler`] groups packets into frames from that. The
//! receivers type what they receive with the same classifier, so that both
//! ends name frame types alike. Nothing here knows about GStreamer or
//! sockets.
#![deny(missing_docs)]

mod aggregation;
mod annexb;
mod assembler;
mod bits;
mod fragmentation;
pub mod h264;
mod h265;
pub mod header_extension;
pub mod mpeg_video;
pub mod mpegts;
mod reception;
pub mod rtp;
#[cfg(test)]
mod tests;
mod ts_packet;

pub use assembler::{fallback_info, Frame, FrameAssembler};
pub use reception::{FrameEvent, FrameReceiver, ReceivedFrame, TIMESTAMP_RATE};
pub use rtp::RtpPacket;
pub use ts_packet::{TsPacket, NULL_PID, TS_PACKET_SIZE};

/// The payload format, from the negotiated caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `application/x-rtp, encoding-name=H264` (RFC 6184).
    RtpH264,
    /// `application/x-rtp, encoding-name=H265` (RFC 7798).
    RtpH265,
    /// `application/x-rtp, encoding-name=MPV` (RFC 2250, MPEG-1/2 video).
    RtpMpegVideo,
    /// `application/x-rtp, encoding-name=MP2T` (RFC 2250, transport stream).
    RtpMp2t,
    /// `video/mpegts`: whole 188-byte transport stream packets.
    MpegTs,
}

/// A frame's type, as far as dropping it is concerned.
///
/// Types are ordered by how much a payload shows of its frame: `Unknown`
/// (nothing) below `NonReference`, `Predicted` and `Intra`; the type of
/// several units together is the greatest. [`FrameType::ALL`] lists them
/// from the greatest down, and [`FrameType::index`] is a type's place there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameType {
    /// Nothing in the payload told the type (yet).
    Unknown,
    /// Not used as a reference by any other frame (B-frames, non-reference P).
    NonReference,
    /// Predicted from earlier frames and used as a reference (P, reference B).
    Predicted,
    /// Decodable on its own (I and IDR/IRAP frames).
    Intra,
}

impl FrameType {
    /// Every type, greatest first: the order of per-type counts and reports.
    pub const ALL: [FrameType; 4] = [
        FrameType::Intra,
        FrameType::Predicted,
        FrameType::NonReference,
        FrameType::Unknown,
    ];

    /// The type's place in [`FrameType::ALL`], for arrays of per-type counts.
    pub fn index(self) -> usize {
        match self {
            FrameType::Intra => 0,
            FrameType::Predicted => 1,
            FrameType::NonReference => 2,
            FrameType::Unknown => 3,
        }
    }

    /// Of two types of frames a packet carries together, the one whose loss
    /// would do the most harm: `Unknown` above all (nothing says it is safe
    /// to lose), then the greater.
    pub fn most_protected(self, other: FrameType) -> FrameType {
        if self == FrameType::Unknown || other == FrameType::Unknown {
            FrameType::Unknown
        } else {
            self.max(other)
        }
    }

    /// The type's name in statistics and messages (`intra`, `predicted`,
    /// `non-reference`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Unknown => "unknown",
            FrameType::NonReference => "non-reference",
            FrameType::Predicted => "predicted",
            FrameType::Intra => "intra",
        }
    }
}

impl std::fmt::Display for FrameType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one packet carries, as far as the classifier could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo {
    /// Identifies the frame (access unit) the packet belongs to: the RTP
    /// timestamp for RTP, a count of video PES starts for MPEG-TS. Packets of
    /// one frame share it; consecutive frames differ.
    pub frame: u64,
    /// True when this packet starts a new frame.
    pub starts_frame: bool,
    /// True when this packet is known to be the last of its frame (the RTP
    /// marker bit); false when the end is only found from the next frame.
    pub ends_frame: bool,
    /// True when the packet also carries the end of the previous frame: a
    /// datagram of several MPEG-TS packets can straddle a frame boundary. The
    /// sink must not make such a packet more droppable than that frame.
    pub also_ends_previous: bool,
    /// The types of the frames that began and ended inside this packet,
    /// oldest first: a datagram of several MPEG-TS packets can hold a small
    /// frame (a B-frame of a few dozen bytes) whole, between the end of one
    /// frame and the start of the next. `frame` has already counted them.
    /// Empty for every other format. The sink must not make such a packet
    /// more droppable than these frames.
    pub hidden_frames: Vec<FrameType>,
    /// The frame type this packet's payload shows; `Unknown` when it carries
    /// no slice or picture header (a fragment's continuation, say).
    pub frame_type: FrameType,
    /// True when the packet carries stream configuration a decoder cannot do
    /// without: H.264/H.265 parameter sets, MPEG-2 sequence headers, MPEG-TS
    /// PAT/PMT. Such packets are never droppable.
    pub configuration: bool,
}

impl PacketInfo {
    /// A packet of frame `frame` that shows nothing else: it neither starts
    /// nor ends a frame, and its type is `Unknown`.
    pub fn of_frame(frame: u64) -> PacketInfo {
        PacketInfo {
            frame,
            starts_frame: false,
            ends_frame: false,
            also_ends_previous: false,
            hidden_frames: Vec::new(),
            frame_type: FrameType::Unknown,
            configuration: false,
        }
    }
}

/// Why a packet could not be classified. The sink still sends such packets,
/// as non-droppable, and says once what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// What a payload, NAL unit or start-code unit shows of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shows {
    pub(crate) frame_type: FrameType,
    pub(crate) configuration: bool,
}

impl Shows {
    pub(crate) const NOTHING: Shows = Shows {
        frame_type: FrameType::Unknown,
        configuration: false,
    };

    pub(crate) const CONFIGURATION: Shows = Shows {
        frame_type: FrameType::Unknown,
        configuration: true,
    };

    pub(crate) fn frame(frame_type: FrameType) -> Shows {
        Shows {
            frame_type,
            configuration: false,
        }
    }

    /// Several units in one packet: the packet shows the strongest type any
    /// of them shows, and configuration if any of them is.
    pub(crate) fn merge(&mut self, other: Shows) {
        self.frame_type = self.frame_type.max(other.frame_type);
        self.configuration |= other.configuration;
    }
}

/// Why a unit (NAL unit, start-code unit) could not be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitError {
    /// The bytes end before the syntax element that tells the type; more
    /// bytes of the unit may follow in a later packet.
    Truncated,
    /// The unit is malformed.
    Invalid(String),
}

impl From<bits::OutOfBits> for UnitError {
    fn from(_: bits::OutOfBits) -> Self {
        UnitError::Truncated
    }
}

/// Classifies the packets of one stream, in order. Keeps what later packets
/// need (parameter sets for slice headers, PMT for the video PID, the frame
/// count).
#[derive(Debug)]
pub struct Classifier {
    format: PayloadFormat,
    /// The previous RTP packet's timestamp: a packet with another one starts
    /// a frame.
    previous_timestamp: Option<u32>,
    h265_parameters: h265::ParameterSets,
    mpeg_video: mpeg_video::RtpMpegVideo,
    transport_stream: mpegts::TransportStream,
}

impl Classifier {
    /// A classifier for packets of `format`.
    pub fn new(format: PayloadFormat) -> Self {
        Classifier {
            format,
            previous_timestamp: None,
            h265_parameters: h265::ParameterSets::default(),
            mpeg_video: mpeg_video::RtpMpegVideo::default(),
            transport_stream: mpegts::TransportStream::default(),
        }
    }

    /// The format this classifier parses.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// Classifies the next packet of the stream (one datagram's payload).
    pub fn inspect(&mut self, packet: &[u8]) -> Result<PacketInfo, ParseError> {
        match self.format {
            PayloadFormat::RtpH264 => {
                self.inspect_rtp_video(packet, |_, payload| h264::classify_rtp_payload(payload))
            }
            PayloadFormat::RtpH265 => self.inspect_rtp_video(packet, |classifier, payload| {
                classifier.h265_parameters.classify_rtp_payload(payload)
            }),
            PayloadFormat::RtpMpegVideo => self.inspect_rtp_video(packet, |classifier, payload| {
                classifier.mpeg_video.classify_rtp_payload(payload)
            }),
            PayloadFormat::RtpMp2t => {
                let rtp = rtp::parse(packet)?;
                self.transport_stream.inspect(rtp.payload)
            }
            PayloadFormat::MpegTs => self.transport_stream.inspect(packet),
        }
    }

    /// RTP video frames are told by the timestamp and closed by the marker
    /// bit. The frame is tracked before the payload is parsed, so that a
    /// payload that cannot be classified does not merge two frames.
    fn inspect_rtp_video(
        &mut self,
        packet: &[u8],
        classify: impl FnOnce(&mut Self, &[u8]) -> Result<Shows, ParseError>,
    ) -> Result<PacketInfo, ParseError> {
        let rtp = rtp::parse(packet)?;
        let starts_frame = self.previous_timestamp != Some(rtp.timestamp);
        self.previous_timestamp = Some(rtp.timestamp);
        let shows = classify(self, rtp.payload)?;
        Ok(PacketInfo {
            starts_frame,
            ends_frame: rtp.marker,
            frame_type: shows.frame_type,
            configuration: shows.configuration,
            ..PacketInfo::of_frame(u64::from(rtp.timestamp))
        })
    }
}
