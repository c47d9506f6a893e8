//! What a frame's type makes droppable: the sink's drop policy, and the
//! drop flag of a frame that `qsock_frame`'s assembler grouped.

use gst::glib;
use qsock::DropFlag;
use qsock_frame::FrameType;
pub use qsock_frame::{fallback_info, Frame, FrameAssembler};

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

/// The drop flag of a frame under the sink's [`DropPolicy`].
pub trait FrameDropFlag {
    /// The drop flag every packet of the frame is sent with. qsock's flags
    /// know one level of droppability, so "non-reference first" cannot be
    /// said to the scheduler: `policy` chooses which types are droppable at
    /// all, and all droppable frames are equal to the scheduler.
    fn drop_flag(&self, policy: DropPolicy) -> DropFlag;
}

impl<P> FrameDropFlag for Frame<P> {
    fn drop_flag(&self, policy: DropPolicy) -> DropFlag {
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

#[cfg(test)]
mod tests {
    use super::*;
    use qsock_frame::{PacketInfo, PayloadFormat};

    /// A packet of frame `frame` that shows `frame_type`.
    fn typed(frame: u64, frame_type: FrameType) -> PacketInfo {
        PacketInfo {
            frame_type,
            ..PacketInfo::of_frame(frame)
        }
    }

    fn frame_of(frame_type: FrameType) -> Frame<()> {
        let mut frame = Frame::new(0);
        frame.frame_type = frame_type;
        frame
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
        assembler.push(1, &typed(1, FrameType::Intra), true, &mut done);
        let mut straddling = typed(2, FrameType::NonReference);
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

    /// A datagram of frame 3's start that also held frame 2 whole, with
    /// what the classifier saw of frame 2 (if anything).
    fn hiding(hidden_frames: Vec<FrameType>) -> PacketInfo {
        PacketInfo {
            starts_frame: true,
            hidden_frames,
            ..typed(3, FrameType::Predicted)
        }
    }

    fn frame_3_after(hiding: &PacketInfo) -> Frame<u32> {
        let mut assembler = FrameAssembler::default();
        assembler.set_format(PayloadFormat::MpegTs);
        let mut complete = Vec::new();
        let start = PacketInfo {
            starts_frame: true,
            ..typed(1, FrameType::Predicted)
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
                ..typed(key, FrameType::Predicted)
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
