//! Frame accounting: what [`FrameReceiver`] reports of a stream, counted
//! per interval for the line `qsock-receive` prints each second.
//!
//! The rules, as `qsock-receive --help` and the README state them, are the
//! frame receiver's (`qsock_frame::FrameReceiver`): a frame is *damaged*
//! when a packet of it was lost, *missing* when none arrived (counted from
//! the timestamps against the frame interval, typed `unknown`); lost frames
//! are damaged plus missing.
//! - Jitter: for each complete frame after the first, the difference
//!   between the time since the previous complete frame arrived and the
//!   media time between the two (timestamps, 90 kHz), as a magnitude; the
//!   report gives the mean over an interval. Zero when frames arrive exactly
//!   at the pace they were sampled.

use std::time::Duration;

use qsock_frame::{FrameEvent, FrameReceiver, FrameType, ReceivedFrame, TIMESTAMP_RATE};

use crate::format::Format;

/// Lost frames by type. qsocksink's types map onto the usual letters:
/// intra is I, predicted (used as a reference) is P, non-reference is B
/// (B-frames, and P-frames that nothing refers to).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostFrames {
    /// Intra frames (I, IDR).
    pub intra: u32,
    /// Predicted reference frames (P).
    pub predicted: u32,
    /// Non-reference frames (B).
    pub non_reference: u32,
    /// Frames whose type nothing that arrived showed, and missing frames.
    pub unknown: u32,
}

impl LostFrames {
    fn count(&mut self, frame_type: FrameType) {
        match frame_type {
            FrameType::Intra => self.intra += 1,
            FrameType::Predicted => self.predicted += 1,
            FrameType::NonReference => self.non_reference += 1,
            FrameType::Unknown => self.unknown += 1,
        }
    }

    /// All lost frames.
    pub fn total(&self) -> u32 {
        self.intra + self.predicted + self.non_reference + self.unknown
    }
}

/// What happened since the last [`FrameAccounting::take_tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Frames that arrived whole.
    pub complete_frames: u32,
    /// Packets lost: RTP packets, or transport stream packets (whose 4-bit
    /// counters hide runs of 16 and more on one PID).
    pub lost_packets: u64,
    /// Frames damaged or missing, by type.
    pub lost_frames: LostFrames,
    /// Sum of the jitter samples (see the module documentation), seconds.
    jitter_sum: f64,
    jitter_samples: u32,
}

impl Tally {
    /// The mean jitter over the interval; None when fewer than two complete
    /// frames arrived in a row.
    pub fn mean_jitter(&self) -> Option<Duration> {
        (self.jitter_samples > 0)
            .then(|| Duration::from_secs_f64(self.jitter_sum / f64::from(self.jitter_samples)))
    }
}

/// Counts one stream's frames and losses per interval; see the module
/// documentation for the rules.
#[derive(Debug)]
pub struct FrameAccounting {
    receiver: FrameReceiver,
    events: Vec<FrameEvent>,
    /// The media time (90 kHz ticks) and arrival of the latest whole frame.
    last_complete: Option<(i64, Duration)>,
    tally: Tally,
}

impl FrameAccounting {
    /// Accounting for a stream of `format`.
    pub fn new(format: Format) -> FrameAccounting {
        FrameAccounting {
            receiver: FrameReceiver::new(format.payload_format()),
            events: Vec::new(),
            last_complete: None,
            tally: Tally::default(),
        }
    }

    /// Accounts for one datagram, which arrived at `arrival` (on any clock
    /// that is the same for every call).
    pub fn packet(&mut self, datagram: &[u8], arrival: Duration) {
        let mut events = std::mem::take(&mut self.events);
        self.tally.lost_packets += self.receiver.packet(datagram, arrival, &mut events);
        for event in events.drain(..) {
            match event {
                FrameEvent::Received(frame) => self.count(&frame),
                FrameEvent::Missing { frames } => {
                    let frames = u32::try_from(frames).unwrap_or(u32::MAX);
                    self.tally.lost_frames.unknown =
                        self.tally.lost_frames.unknown.saturating_add(frames);
                }
            }
        }
        self.events = events;
    }

    /// The counts since the previous call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Gives the stream's frame rate (as the decoder read it from the
    /// stream), which then sets the frame interval that missing frames are
    /// counted against. Without it the interval is the smallest timestamp
    /// step seen, which is too long while only I-frames arrive.
    pub fn set_frame_rate(&mut self, numerator: u32, denominator: u32) {
        self.receiver.set_frame_rate(numerator, denominator);
    }

    /// True once the stream's timestamps went backwards (B-frames), which
    /// stops the count of missing frames.
    pub fn reorders_frames(&self) -> bool {
        self.receiver.reorders_frames()
    }

    fn count(&mut self, frame: &ReceivedFrame) {
        if !frame.whole {
            self.tally.lost_frames.count(frame.frame_type);
            return;
        }
        self.tally.complete_frames += 1;
        let Some(media_ticks) = frame.media_ticks else {
            self.last_complete = None;
            return;
        };
        if let Some((before, arrived)) = self.last_complete {
            let ticks = media_ticks - before;
            // Frames sent out of display order step backwards: no sample.
            if ticks >= 0 {
                let media = ticks as f64 / f64::from(TIMESTAMP_RATE);
                let elapsed = frame.arrived.saturating_sub(arrived).as_secs_f64();
                self.tally.jitter_sum += (elapsed - media).abs();
                self.tally.jitter_samples += 1;
            }
        }
        self.last_complete = Some((media_ticks, frame.arrived));
    }
}

#[cfg(test)]
mod tests;
