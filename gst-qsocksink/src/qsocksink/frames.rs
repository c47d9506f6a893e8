//! Grouping packets into frames, and what a frame's type makes droppable.
//!
//! Nothing here knows about sockets; the packets are whatever the element
//! keeps (GStreamer buffers), so that the rules can be tested on plain values.

use gst::glib;
use qsock::DropFlag;

use crate::frame::{FrameType, PacketInfo, PayloadFormat};

/// Which frame types the scheduler may drop when they are late. Intra frames,
/// configuration and whatever could not be classified are never droppable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstQSockSinkDroppable")]
pub enum DropPolicy {
    /// Every frame must arrive.
    #[enum_value(name = "None: every frame is sent non-droppable", nick = "none")]
    None = 0,
    /// Only frames nothing else refers to (B-frames) may be dropped.
    #[enum_value(
        name = "Non-reference: only frames no other frame refers to (B-frames) may be dropped",
        nick = "non-reference"
    )]
    NonReference = 1,
    /// Non-reference and predicted frames may be dropped.
    #[default]
    #[enum_value(
        name = "Non-reference and predicted: B- and P-frames may be dropped, I-frames never",
        nick = "non-reference-and-predicted"
    )]
    NonReferenceAndPredicted = 2,
}

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
    fn new(key: u64) -> Self {
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

    /// The drop flag every packet of the frame is sent with. qsock's flags
    /// know one level of droppability, so "non-reference first" cannot be
    /// said to the scheduler: `policy` chooses which types are droppable at
    /// all, and all droppable frames are equal to the scheduler.
    pub fn drop_flag(&self, policy: DropPolicy) -> DropFlag {
        if self.configuration || self.unclassified {
            return DropFlag::NonDroppable;
        }
        let strongest = match self.carries_end_of {
            Some(FrameType::Unknown) => FrameType::Unknown,
            Some(previous) => previous.max(self.frame_type),
            None => self.frame_type,
        };
        let droppable = match (strongest, policy) {
            (FrameType::NonReference, DropPolicy::NonReference)
            | (FrameType::NonReference, DropPolicy::NonReferenceAndPredicted)
            | (FrameType::Predicted, DropPolicy::NonReferenceAndPredicted) => true,
            (FrameType::Unknown | FrameType::Intra, _)
            | (FrameType::Predicted, DropPolicy::NonReference | DropPolicy::None)
            | (FrameType::NonReference, DropPolicy::None) => false,
        };
        if droppable {
            DropFlag::Droppable
        } else {
            DropFlag::NonDroppable
        }
    }
}

/// The type among `types` whose loss would do the most harm, for a packet
/// that carries all of them: `Unknown` above all, then intra, predicted and
/// non-reference. None for no types.
fn most_protected(types: impl IntoIterator<Item = FrameType>) -> Option<FrameType> {
    types.into_iter().reduce(|a, b| {
        if a == FrameType::Unknown || b == FrameType::Unknown {
            FrameType::Unknown
        } else {
            a.max(b)
        }
    })
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
                carries_end_of = most_protected(
                    previous_end
                        .into_iter()
                        .chain(info.hidden_frames.iter().copied())
                        .chain(unseen_frames),
                );
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
        | PayloadFormat::RtpMp2t => match rtp_timestamp_and_marker(packet) {
            Some((rtp_timestamp, marker)) => (u64::from(rtp_timestamp), marker),
            None => (timestamp.unwrap_or(u64::MAX), false),
        },
    };
    PacketInfo {
        frame,
        starts_frame: false,
        ends_frame,
        also_ends_previous: false,
        hidden_frames: Vec::new(),
        frame_type: FrameType::Unknown,
        configuration: false,
    }
}

/// The RTP timestamp and marker bit of an RTP version 2 packet (RFC 3550).
fn rtp_timestamp_and_marker(packet: &[u8]) -> Option<(u32, bool)> {
    let header = packet.get(..12)?;
    if header[0] >> 6 != 2 {
        return None;
    }
    let marker = header[1] & 0x80 != 0;
    let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    Some((timestamp, marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(frame: u64, frame_type: FrameType, ends: bool) -> PacketInfo {
        PacketInfo {
            frame,
            starts_frame: false,
            ends_frame: ends,
            also_ends_previous: false,
            hidden_frames: Vec::new(),
            frame_type,
            configuration: false,
        }
    }

    fn frame_of(frame_type: FrameType) -> Frame<()> {
        let mut frame = Frame::new(0);
        frame.frame_type = frame_type;
        frame
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
    fn the_strongest_type_and_any_configuration_decide() {
        let policy = DropPolicy::NonReferenceAndPredicted;
        assert_eq!(
            frame_of(FrameType::Predicted).drop_flag(policy),
            DropFlag::Droppable
        );
        assert_eq!(
            frame_of(FrameType::Intra).drop_flag(policy),
            DropFlag::NonDroppable
        );
        assert_eq!(
            frame_of(FrameType::Unknown).drop_flag(policy),
            DropFlag::NonDroppable
        );
        let mut configured = frame_of(FrameType::NonReference);
        configured.configuration = true;
        assert_eq!(configured.drop_flag(policy), DropFlag::NonDroppable);
        let mut unclassified = frame_of(FrameType::NonReference);
        unclassified.unclassified = true;
        assert_eq!(unclassified.drop_flag(policy), DropFlag::NonDroppable);
    }

    #[test]
    fn each_policy_drops_what_it_names() {
        let cases = [
            (DropPolicy::None, FrameType::NonReference, false),
            (DropPolicy::None, FrameType::Predicted, false),
            (DropPolicy::NonReference, FrameType::NonReference, true),
            (DropPolicy::NonReference, FrameType::Predicted, false),
            (
                DropPolicy::NonReferenceAndPredicted,
                FrameType::Predicted,
                true,
            ),
            (
                DropPolicy::NonReferenceAndPredicted,
                FrameType::Intra,
                false,
            ),
        ];
        for (policy, frame_type, droppable) in cases {
            let flag = frame_of(frame_type).drop_flag(policy);
            assert_eq!(
                flag == DropFlag::Droppable,
                droppable,
                "{policy:?} {frame_type:?}"
            );
        }
    }

    #[test]
    fn a_datagram_straddling_an_intra_frame_keeps_the_next_frame() {
        let mut assembler = FrameAssembler::default();
        let mut done = Vec::new();
        assembler.push(1, &info(1, FrameType::Intra, false), true, &mut done);
        let mut straddling = info(2, FrameType::NonReference, false);
        straddling.starts_frame = true;
        straddling.also_ends_previous = true;
        assembler.push(2, &straddling, true, &mut done);
        let next = assembler
            .drain()
            .unwrap_or_else(|| panic!("frame 2 is pending"));
        assert_eq!(next.carries_end_of, Some(FrameType::Intra));
        assert_eq!(
            next.drop_flag(DropPolicy::NonReferenceAndPredicted),
            DropFlag::NonDroppable
        );
        assert_eq!(next.counted_type(), FrameType::NonReference);
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

    /// A datagram of frame 3's start that also held frame 2 whole, with
    /// what the classifier saw of frame 2 (if anything).
    fn hiding(hidden_frames: Vec<FrameType>) -> PacketInfo {
        PacketInfo {
            starts_frame: true,
            hidden_frames,
            ..info(3, FrameType::Predicted, false)
        }
    }

    fn frame_3_after(hiding: &PacketInfo) -> Frame<u32> {
        let mut assembler = FrameAssembler::default();
        assembler.set_format(PayloadFormat::MpegTs);
        let mut complete = Vec::new();
        let start = PacketInfo {
            starts_frame: true,
            ..info(1, FrameType::Predicted, false)
        };
        assembler.push(1, &start, true, &mut complete);
        assembler.push(2, hiding, true, &mut complete);
        let frame = assembler.drain().expect("frame 3 is collecting");
        assert_eq!((frame.key, complete.len()), (3, 1));
        frame
    }

    #[test]
    fn a_datagram_is_no_more_droppable_than_the_frames_it_hides() {
        let policy = DropPolicy::NonReferenceAndPredicted;
        let carrying = |hidden| frame_3_after(&hiding(hidden)).drop_flag(policy);
        assert_eq!(carrying(vec![FrameType::NonReference]), DropFlag::Droppable);
        assert_eq!(carrying(vec![FrameType::Intra]), DropFlag::NonDroppable);
        assert_eq!(
            carrying(vec![FrameType::NonReference, FrameType::Unknown]),
            DropFlag::NonDroppable
        );
        assert_eq!(
            frame_3_after(&hiding(vec![FrameType::Predicted])).drop_flag(DropPolicy::NonReference),
            DropFlag::NonDroppable
        );
    }

    #[test]
    fn frames_that_went_by_unseen_make_the_datagram_not_droppable() {
        // The key jumped from 1 to 3 with no hidden frame reported.
        let frame = frame_3_after(&hiding(Vec::new()));
        assert_eq!(
            frame.drop_flag(DropPolicy::NonReferenceAndPredicted),
            DropFlag::NonDroppable
        );
        // Consecutive keys are ordinary frames.
        let mut assembler = FrameAssembler::default();
        assembler.set_format(PayloadFormat::MpegTs);
        let mut complete = Vec::new();
        for key in 1..=2 {
            let start = PacketInfo {
                starts_frame: true,
                ..info(key, FrameType::Predicted, false)
            };
            assembler.push(key, &start, true, &mut complete);
        }
        let next = assembler.drain().expect("frame 2 is collecting");
        assert_eq!(
            next.drop_flag(DropPolicy::NonReferenceAndPredicted),
            DropFlag::Droppable
        );
    }
}
