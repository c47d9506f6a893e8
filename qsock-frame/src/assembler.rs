//! Grouping packets into frames by what the classifier tells of them.
//!
//! The packets are whatever the caller keeps (GStreamer buffers in the sink,
//! plain values in tests), so that the rules can be tested on plain values.

use crate::rtp::FixedHeader;
use crate::{FrameType, PacketInfo, PayloadFormat};

/// One frame's packets and what they showed of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<P> {
    /// The classifier's frame identifier.
    pub key: u64,
    /// The packets, in order.
    pub packets: Vec<P>,
    /// The strongest type any packet showed.
    pub frame_type: FrameType,
    /// Some packet carried configuration (parameter sets, PAT/PMT).
    pub configuration: bool,
    /// Some packet could not be classified.
    pub unclassified: bool,
    /// The type of the previous frame when one of this frame's packets also
    /// carries that frame's end: this frame must be no more droppable.
    pub carries_end_of: Option<FrameType>,
}

impl<P> Frame<P> {
    /// An empty frame with the classifier's identifier `key`.
    pub fn new(key: u64) -> Self {
        Frame {
            key,
            packets: Vec::new(),
            frame_type: FrameType::Unknown,
            configuration: false,
            unclassified: false,
            carries_end_of: None,
        }
    }

    /// The type the frame is counted under: `Unknown` when anything in it
    /// could not be classified.
    pub fn counted_type(&self) -> FrameType {
        if self.unclassified {
            FrameType::Unknown
        } else {
            self.frame_type
        }
    }
}

/// Collects packets until a frame is complete: on a packet that ends it, or
/// when the next frame starts (then the frame waits for that packet).
#[derive(Debug)]
pub struct FrameAssembler<P> {
    pending: Option<Frame<P>>,
    /// Frame keys count frames one by one (MPEG-TS: video PES starts), so a
    /// key that moves on by more than one means whole frames went by inside
    /// one datagram.
    keys_count_frames: bool,
}

impl<P> Default for FrameAssembler<P> {
    fn default() -> Self {
        FrameAssembler {
            pending: None,
            keys_count_frames: false,
        }
    }
}

impl<P> FrameAssembler<P> {
    /// Tells how `format` numbers its frames (new caps); a frame still
    /// collecting is kept.
    pub fn set_format(&mut self, format: PayloadFormat) {
        self.keys_count_frames = matches!(format, PayloadFormat::MpegTs | PayloadFormat::RtpMp2t);
    }

    /// Adds the next packet; frames it completes are appended to `complete`.
    /// `classified` is false when `info` was guessed because the classifier
    /// failed on the packet.
    pub fn push(
        &mut self,
        packet: P,
        info: &PacketInfo,
        classified: bool,
        complete: &mut Vec<Frame<P>>,
    ) {
        let starts_new = match &self.pending {
            Some(pending) => info.starts_frame || info.frame != pending.key,
            None => true,
        };
        let mut carries_end_of = None;
        if starts_new {
            if let Some(previous) = self.pending.take() {
                // Configuration is as essential as an intra frame.
                let previous_end = info.also_ends_previous.then(|| {
                    if previous.configuration {
                        FrameType::Intra
                    } else {
                        previous.counted_type()
                    }
                });
                // Frames went by that nobody saw the type of.
                let unseen_frames = (self.keys_count_frames
                    && info.frame
                        > previous
                            .key
                            .saturating_add(1 + info.hidden_frames.len() as u64))
                .then_some(FrameType::Unknown);
                // Small frames (a B-frame of a few dozen bytes, say) that
                // began and ended inside this datagram come in between.
                carries_end_of = previous_end
                    .into_iter()
                    .chain(info.hidden_frames.iter().copied())
                    .chain(unseen_frames)
                    .reduce(FrameType::most_protected);
                complete.push(previous);
            }
        }
        let frame = self.pending.get_or_insert_with(|| {
            let mut frame = Frame::new(info.frame);
            frame.carries_end_of = carries_end_of;
            frame
        });
        frame.packets.push(packet);
        frame.frame_type = frame.frame_type.max(info.frame_type);
        frame.configuration |= info.configuration;
        frame.unclassified |= !classified;
        if info.ends_frame {
            if let Some(done) = self.pending.take() {
                complete.push(done);
            }
        }
    }

    /// The frame still collecting, if any, as it is (at end of stream).
    pub fn drain(&mut self) -> Option<Frame<P>> {
        self.pending.take()
    }

    /// Forgets the frame still collecting (on flush).
    pub fn clear(&mut self) {
        self.pending = None;
    }
}

/// What the sink can tell of a packet the classifier could not read: RTP
/// packets are grouped by their timestamp and end at the marker bit; MPEG-TS
/// datagrams by the buffer's timestamp. The frame type stays unknown, so the
/// frame is sent non-droppable.
pub fn fallback_info(format: PayloadFormat, packet: &[u8], timestamp: Option<u64>) -> PacketInfo {
    let (frame, ends_frame) = match format {
        PayloadFormat::MpegTs => (timestamp.unwrap_or(u64::MAX), false),
        PayloadFormat::RtpH264
        | PayloadFormat::RtpH265
        | PayloadFormat::RtpMpegVideo
        | PayloadFormat::RtpMp2t => match FixedHeader::parse(packet) {
            Some(header) => (u64::from(header.timestamp), header.marker),
            None => (timestamp.unwrap_or(u64::MAX), false),
        },
    };
    PacketInfo {
        ends_frame,
        ..PacketInfo::of_frame(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(frame: u64, frame_type: FrameType, ends: bool) -> PacketInfo {
        PacketInfo {
            ends_frame: ends,
            frame_type,
            ..PacketInfo::of_frame(frame)
        }
    }

    #[test]
    fn a_frame_closes_on_its_marker_or_when_the_next_starts() {
        let mut assembler = FrameAssembler::default();
        let mut done = Vec::new();
        assembler.push(1, &info(7, FrameType::Intra, false), true, &mut done);
        assembler.push(2, &info(7, FrameType::Unknown, true), true, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].packets, vec![1, 2]);
        assert_eq!(done[0].frame_type, FrameType::Intra);
        assembler.push(3, &info(8, FrameType::Predicted, false), true, &mut done);
        assembler.push(4, &info(9, FrameType::NonReference, false), true, &mut done);
        assert_eq!(done.len(), 2);
        assert_eq!(done[1].packets, vec![3]);
        let last = assembler
            .drain()
            .unwrap_or_else(|| panic!("frame 9 is pending"));
        assert_eq!(last.packets, vec![4]);
        assert!(assembler.drain().is_none());
    }

    #[test]
    fn starts_frame_closes_even_with_the_same_key() {
        let mut assembler = FrameAssembler::default();
        let mut done = Vec::new();
        assembler.push(1, &info(5, FrameType::Predicted, false), true, &mut done);
        let mut next = info(5, FrameType::Predicted, false);
        next.starts_frame = true;
        assembler.push(2, &next, true, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].packets, vec![1]);
    }

    #[test]
    fn rtp_fallback_groups_by_timestamp_and_marker() {
        let mut packet = vec![0x80, 0x80 | 96, 0, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 1];
        packet.extend_from_slice(&[0; 20]);
        let guessed = fallback_info(PayloadFormat::RtpH264, &packet, Some(42));
        assert_eq!(guessed.frame, 3000);
        assert!(guessed.ends_frame);
        assert_eq!(guessed.frame_type, FrameType::Unknown);
        let not_rtp = fallback_info(PayloadFormat::RtpH264, &[0u8; 4], Some(42));
        assert_eq!(not_rtp.frame, 42);
        let ts = fallback_info(PayloadFormat::MpegTs, &packet, Some(42));
        assert_eq!((ts.frame, ts.ends_frame), (42, false));
    }
}
