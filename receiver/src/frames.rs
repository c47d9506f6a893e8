//! Frame accounting: packets, in the order they arrive, grouped into frames
//! and typed by qsocksink's classifier; lost packets found from RTP sequence
//! numbers or transport stream continuity counters and charged to frames.
//!
//! The rules, as `qsock-receive --help` and the README state them:
//! - A frame is *damaged* when a packet of it was lost: a gap in the middle
//!   of it, its end (RTP: the marker packet) missing before the next frame
//!   begins, or its beginning missing (the first packet that arrived does
//!   not begin a frame). A damaged frame's type is the strongest type its
//!   surviving packets show, `unknown` when none shows one.
//! - A frame is *missing* when none of its packets arrived. Missing frames
//!   are counted from the timestamp step between consecutive frames (RTP
//!   timestamp, or PES PTS) against the stream's frame interval (from its
//!   declared frame rate once the decoder's input caps carry it, else the
//!   smallest step seen, which needs two consecutive frames), and typed `unknown`: nothing of them arrived, and
//!   the type is not guessed from the GOP pattern. A stream whose timestamps
//!   go backwards (B-frames, sent in decoding order) gets no missing-frame
//!   count; `FrameAccounting::reorders_frames` says so.
//! - Lost frames are damaged plus missing. A packet that arrives after a
//!   later one (late or duplicate) is ignored; it was counted lost.
//! - Jitter: for each complete frame after the first, the difference
//!   between the time since the previous complete frame arrived and the
//!   media time between the two (timestamps, 90 kHz), as a magnitude; the
//!   report gives the mean over an interval. Zero when frames arrive exactly
//!   at the pace they were sampled.

use std::collections::HashMap;
use std::time::Duration;

use qsock_frame::{h264, mpeg_video, mpegts, rtp, Classifier, FrameType, TsPacket};
use qsock_frame::{NULL_PID, TS_PACKET_SIZE};

use crate::format::Format;

/// The clock rate of RTP video timestamps and of PES PTS.
const TIMESTAMP_RATE: f64 = 90_000.0;

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

/// A frame whose packets are still arriving.
#[derive(Debug)]
struct Frame {
    /// RTP timestamp or PES PTS; None for a PES packet without PTS.
    timestamp: Option<u64>,
    frame_type: FrameType,
    damaged: bool,
    /// When its latest packet arrived.
    last_arrival: Duration,
    /// False for a frame the receiver joined in the middle of: it is
    /// neither complete nor lost.
    counted: bool,
}

/// Groups one stream's packets into frames and counts what was lost; see
/// the module documentation for the rules.
#[derive(Debug)]
pub struct FrameAccounting {
    format: Format,
    classifier: Classifier,
    /// Timestamps wrap at this (2^32 for RTP, 2^33 for PTS).
    timestamp_modulus: u64,
    next_sequence: Option<u16>,
    continuity: HashMap<u16, u8>,
    video_pid: Option<u16>,
    current: Option<Frame>,
    /// The timestamp of the frame begun last.
    previous_timestamp: Option<u64>,
    /// The smallest forward step between consecutive frames: the frame
    /// interval, once two consecutive frames have arrived.
    frame_step: Option<u64>,
    /// The frame interval from the stream's declared frame rate, which
    /// stands when only frames far apart arrive (I-frames alone).
    nominal_step: Option<u64>,
    reordered: bool,
    /// A frame has been counted: frames from then on count even when their
    /// beginning was lost.
    counting: bool,
    /// The timestamp and arrival time of the latest complete frame.
    last_complete: Option<(u64, Duration)>,
    tally: Tally,
}

impl FrameAccounting {
    /// Accounting for a stream of `format`.
    pub fn new(format: Format) -> FrameAccounting {
        FrameAccounting {
            format,
            classifier: Classifier::new(format.payload_format()),
            timestamp_modulus: if format.is_rtp() { 1 << 32 } else { 1 << 33 },
            next_sequence: None,
            continuity: HashMap::new(),
            video_pid: None,
            current: None,
            previous_timestamp: None,
            frame_step: None,
            nominal_step: None,
            reordered: false,
            counting: false,
            last_complete: None,
            tally: Tally::default(),
        }
    }

    /// Accounts for one datagram, which arrived at `arrival` (on any clock
    /// that is the same for every call).
    pub fn packet(&mut self, datagram: &[u8], arrival: Duration) {
        if self.format.is_rtp() {
            self.rtp_packet(datagram, arrival);
        } else {
            self.transport_stream_datagram(datagram, arrival);
        }
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
        if numerator > 0 && denominator > 0 {
            let ticks = TIMESTAMP_RATE * f64::from(denominator) / f64::from(numerator);
            self.nominal_step = Some(ticks.round() as u64);
        }
    }

    /// True once the stream's timestamps went backwards (B-frames), which
    /// stops the count of missing frames.
    pub fn reorders_frames(&self) -> bool {
        self.reordered
    }

    fn rtp_packet(&mut self, packet: &[u8], arrival: Duration) {
        let Ok(rtp) = rtp::parse(packet) else {
            return;
        };
        let lost = match self.next_sequence {
            None => 0,
            Some(expected) => {
                let step = rtp.sequence.wrapping_sub(expected);
                if step >= 0x8000 {
                    return; // late or duplicate: already counted lost
                }
                step
            }
        };
        self.next_sequence = Some(rtp.sequence.wrapping_add(1));
        self.tally.lost_packets += u64::from(lost);
        let timestamp = u64::from(rtp.timestamp);

        let continues = self
            .current
            .as_ref()
            .is_some_and(|frame| frame.timestamp == Some(timestamp));
        if continues {
            if lost > 0 {
                self.damage_current();
            }
        } else {
            // A frame still open here never showed its end (the marker
            // closes it), so it lost its last packets. Lost packets after a
            // closed frame belong to missing frames, counted from the
            // timestamps, or to this frame's beginning, seen in its payload.
            if let Some(frame) = self.current.take() {
                self.finish(Frame {
                    damaged: frame.damaged || lost > 0,
                    ..frame
                });
            }
            let starts = match self.format {
                Format::H264Rtp => h264::rtp_payload_starts_access_unit(rtp.payload),
                Format::Mpeg2Rtp => mpeg_video::rtp_payload_starts_picture(rtp.payload),
                Format::MpegtsUdp => unreachable!("transport streams are not RTP here"),
            };
            self.begin(Some(timestamp), starts, arrival);
        }
        if let Some(frame) = self.classify_into_current(packet) {
            frame.last_arrival = arrival;
        }
        if rtp.marker {
            if let Some(frame) = self.current.take() {
                self.finish(frame);
            }
        }
    }

    /// Classifies `packet` and adds the type it shows to the frame in
    /// progress, which it returns.
    fn classify_into_current(&mut self, packet: &[u8]) -> Option<&mut Frame> {
        let frame_type = self
            .classifier
            .inspect(packet)
            .map_or(FrameType::Unknown, |info| info.frame_type);
        let frame = self.current.as_mut()?;
        frame.frame_type = frame.frame_type.max(frame_type);
        Some(frame)
    }

    fn transport_stream_datagram(&mut self, datagram: &[u8], arrival: Duration) {
        for packet in datagram.chunks_exact(TS_PACKET_SIZE) {
            let Some(packet) = TsPacket::parse(packet)
                .ok()
                .filter(|packet| packet.pid != NULL_PID)
            else {
                continue;
            };
            let Some(payload) = packet.payload else {
                continue; // the counter only counts packets with payload
            };
            let previous = self
                .continuity
                .insert(packet.pid, packet.continuity_counter);
            let is_video = self.video_pid == Some(packet.pid);
            if let Some(previous) = previous.filter(|_| !packet.discontinuity) {
                let lost = packet.continuity_counter.wrapping_sub(previous + 1) & 0x0f;
                // Equal counters: a duplicate, which the standard allows once.
                if packet.continuity_counter != previous && lost > 0 {
                    self.tally.lost_packets += u64::from(lost);
                    // Lost before this packet: the end of the frame in
                    // progress, or, when they held a PES start, the start of
                    // a frame whose rest this frame absorbs; either way this
                    // frame is damaged (the frame whose start was lost is
                    // missing, counted from the PTS step).
                    if is_video {
                        self.damage_current();
                    }
                }
            }
            if packet.payload_unit_start {
                if let Some(pts) = mpegts::video_pes_start(payload) {
                    self.video_pid = Some(packet.pid);
                    if let Some(frame) = self.current.take() {
                        self.finish(frame);
                    }
                    self.begin(pts, true, arrival);
                }
            }
            if self.video_pid == Some(packet.pid) {
                if let Some(frame) = self.current.as_mut() {
                    frame.last_arrival = arrival;
                }
            }
        }
        // The classifier reads the datagram whole; what it shows of the
        // video is of the frame in progress at its end.
        self.classify_into_current(datagram);
    }

    fn damage_current(&mut self) {
        if let Some(frame) = self.current.as_mut() {
            frame.damaged = true;
        }
    }

    /// A new frame begins; `starts` says whether its first packet is there.
    fn begin(&mut self, timestamp: Option<u64>, starts: bool, arrival: Duration) {
        if let (Some(now), Some(before)) = (timestamp, self.previous_timestamp) {
            let step = now.wrapping_sub(before) % self.timestamp_modulus;
            if step > self.timestamp_modulus / 2 {
                self.reordered = true;
            } else if step > 0 {
                if let Some(interval) = self.nominal_step.or(self.frame_step) {
                    let intervals = (step + interval / 2) / interval;
                    if self.counting && !self.reordered && intervals > 1 {
                        let missing = u32::try_from(intervals - 1).unwrap_or(u32::MAX);
                        self.tally.lost_frames.unknown += missing;
                    }
                }
                self.frame_step = Some(self.frame_step.map_or(step, |interval| interval.min(step)));
            }
        }
        if timestamp.is_some() {
            self.previous_timestamp = timestamp;
        }
        let counted = starts || self.counting;
        self.counting |= counted;
        self.current = Some(Frame {
            timestamp,
            frame_type: FrameType::Unknown,
            damaged: !starts,
            last_arrival: arrival,
            counted,
        });
    }

    fn finish(&mut self, frame: Frame) {
        if !frame.counted {
            return;
        }
        if frame.damaged {
            self.tally.lost_frames.count(frame.frame_type);
            return;
        }
        self.tally.complete_frames += 1;
        let Some(timestamp) = frame.timestamp else {
            self.last_complete = None;
            return;
        };
        if let Some((before, arrived)) = self.last_complete {
            let media =
                (timestamp.wrapping_sub(before) % self.timestamp_modulus) as f64 / TIMESTAMP_RATE;
            let elapsed = frame.last_arrival.saturating_sub(arrived).as_secs_f64();
            if media < self.timestamp_modulus as f64 / TIMESTAMP_RATE / 2.0 {
                self.tally.jitter_sum += (elapsed - media).abs();
                self.tally.jitter_samples += 1;
            }
        }
        self.last_complete = Some((timestamp, frame.last_arrival));
    }
}

#[cfg(test)]
mod tests;
