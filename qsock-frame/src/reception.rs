//! Frames as a receiver sees them: the datagrams of one stream, in the
//! order they arrive, grouped into frames, typed by the [`Classifier`], and
//! each reported once as whole, damaged or missing, with whether a decoder
//! could show it.
//!
//! The rules:
//! - A frame is *whole* when every packet of it arrived. A frame is
//!   *damaged* when a packet of it was lost: a gap in the middle of it, its
//!   end (RTP: the marker packet) missing before the next frame begins, or
//!   its beginning missing. Its beginning is there when its first packet
//!   shows the start of an access unit or picture (H.264, MPEG video, a
//!   video PES start in MPEG-TS), or follows the previous frame's marker
//!   packet without a gap. A damaged frame's type is the strongest type its
//!   surviving packets show, `Unknown` when none shows one.
//! - Frames are *missing* when none of their packets arrived. They are
//!   counted from the timestamp step between consecutive frames (RTP
//!   timestamp, or PES PTS) against the stream's frame interval: the
//!   declared frame rate ([`FrameReceiver::set_frame_rate`]), else the
//!   smallest step seen, which needs two consecutive frames. Nothing of them
//!   arrived, so their type is not guessed. A stream whose timestamps go
//!   backwards (B-frames, sent in decoding order) gets no missing-frame
//!   count; [`FrameReceiver::reorders_frames`] says so.
//! - A frame the receiver joined in the middle of, before any frame began
//!   in full, is neither whole nor lost: nothing is reported for it.
//! - A packet that arrives after a later one (late, or a duplicate) is
//!   ignored: it was counted lost.
//! - A whole frame is *decodable* when a decoder could show it correctly:
//!   stream configuration (parameter sets, sequence header, PAT/PMT) has
//!   arrived, and it is an intra frame or every reference frame since the
//!   last intra frame arrived whole. A lost frame breaks the chain of
//!   references unless it showed itself a non-reference frame; a missing
//!   frame always does, as nothing of it told its type.

use std::collections::HashMap;
use std::time::Duration;

use crate::ts_packet::{TsPacket, NULL_PID, TS_PACKET_SIZE};
use crate::{h264, mpeg_video, mpegts, rtp, Classifier, FrameType, PayloadFormat};

/// The clock rate of RTP video timestamps and of PES PTS.
pub const TIMESTAMP_RATE: u32 = 90_000;

/// One frame that ended, whole or damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// The frame's number, counted from the first frame reported (from the
    /// timestamps where the frame interval is known, so missing frames
    /// leave gaps; one more than the frame before otherwise).
    pub number: u64,
    /// The RTP timestamp or PES PTS; None for a PES packet without PTS.
    pub timestamp: Option<u64>,
    /// Timestamp ticks (90 kHz) since the first timestamp seen, unwrapped;
    /// it goes backwards in streams that send frames out of display order.
    pub media_ticks: Option<i64>,
    /// The strongest type its packets showed.
    pub frame_type: FrameType,
    /// Every packet of it arrived.
    pub whole: bool,
    /// A decoder could show it (see the module documentation); never true
    /// for a damaged frame.
    pub decodable: bool,
    /// When its latest packet arrived.
    pub arrived: Duration,
}

/// What the receiver learnt from a datagram, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEvent {
    /// A frame ended.
    Received(ReceivedFrame),
    /// This many frames in a row arrived not at all.
    Missing {
        /// How many.
        frames: u64,
    },
}

/// A frame whose packets are still arriving.
#[derive(Debug)]
struct Partial {
    number: u64,
    timestamp: Option<u64>,
    media_ticks: Option<i64>,
    frame_type: FrameType,
    damaged: bool,
    last_arrival: Duration,
    /// False for a frame the receiver joined in the middle of.
    counted: bool,
}

/// Receives one stream's datagrams and reports its frames; see the module
/// documentation for the rules.
#[derive(Debug)]
pub struct FrameReceiver {
    format: PayloadFormat,
    classifier: Classifier,
    /// Timestamps wrap at this (2^32 for RTP, 2^33 for PTS).
    timestamp_modulus: u64,
    /// The RTP packet before: its sequence number and marker bit.
    previous_rtp: Option<(u16, bool)>,
    continuity: HashMap<u16, u8>,
    video_pid: Option<u16>,
    current: Option<Partial>,
    /// The timestamp of the frame begun last, and its unwrapped ticks.
    previous_timestamp: Option<(u64, i64)>,
    /// The smallest forward step between consecutive frames: the frame
    /// interval, once two consecutive frames have arrived.
    smallest_step: Option<u64>,
    /// The frame interval from the stream's declared frame rate, which
    /// stands when only frames far apart arrive (I-frames alone).
    nominal_step: Option<u64>,
    reordered: bool,
    /// A frame has been counted: frames from then on count even when their
    /// beginning was lost.
    counting: bool,
    /// The number of the frame begun last.
    last_number: Option<u64>,
    configuration_seen: bool,
    references_intact: bool,
}

impl FrameReceiver {
    /// A receiver for a stream of `format`.
    pub fn new(format: PayloadFormat) -> FrameReceiver {
        FrameReceiver {
            format,
            classifier: Classifier::new(format),
            timestamp_modulus: if format == PayloadFormat::MpegTs {
                1 << 33
            } else {
                1 << 32
            },
            previous_rtp: None,
            continuity: HashMap::new(),
            video_pid: None,
            current: None,
            previous_timestamp: None,
            smallest_step: None,
            nominal_step: None,
            reordered: false,
            counting: false,
            last_number: None,
            configuration_seen: false,
            references_intact: false,
        }
    }

    /// Takes one datagram, which arrived at `arrival` (on any clock that is
    /// the same for every call), and appends what it ended to `events`.
    /// Returns how many packets were found lost before it: RTP packets, or
    /// transport stream packets (whose 4-bit counters hide runs of 16 and
    /// more on one PID).
    pub fn packet(
        &mut self,
        datagram: &[u8],
        arrival: Duration,
        events: &mut Vec<FrameEvent>,
    ) -> u64 {
        if self.format == PayloadFormat::MpegTs {
            self.transport_stream_datagram(datagram, arrival, events)
        } else {
            self.rtp_packet(datagram, arrival, events)
        }
    }

    /// Gives the stream's frame rate (as a decoder read it from the stream),
    /// which then sets the frame interval that missing frames are counted
    /// against. Without it the interval is the smallest timestamp step seen,
    /// which is too long while only I-frames arrive.
    pub fn set_frame_rate(&mut self, numerator: u32, denominator: u32) {
        if numerator > 0 && denominator > 0 {
            let ticks = f64::from(TIMESTAMP_RATE) * f64::from(denominator) / f64::from(numerator);
            self.nominal_step = Some((ticks.round() as u64).max(1));
        }
    }

    /// True once the stream's timestamps went backwards (B-frames), which
    /// stops the count of missing frames.
    pub fn reorders_frames(&self) -> bool {
        self.reordered
    }

    fn rtp_packet(
        &mut self,
        packet: &[u8],
        arrival: Duration,
        events: &mut Vec<FrameEvent>,
    ) -> u64 {
        let Ok(rtp) = rtp::parse(packet) else {
            return 0;
        };
        let (lost, follows_marker) = match self.previous_rtp {
            None => (0, false),
            Some((previous, marker)) => {
                let step = rtp.sequence.wrapping_sub(previous.wrapping_add(1));
                if step >= 0x8000 {
                    return 0; // late or duplicate: already counted lost
                }
                (u64::from(step), marker && step == 0)
            }
        };
        self.previous_rtp = Some((rtp.sequence, rtp.marker));
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
            // closes it), so it lost its last packets if any were lost.
            // Lost packets after a closed frame belong to missing frames,
            // counted from the timestamps, or to this frame's beginning,
            // seen in its payload.
            if let Some(frame) = self.current.take() {
                let damaged = frame.damaged || lost > 0;
                self.finish(Partial { damaged, ..frame }, events);
            }
            let starts = follows_marker
                || match self.format {
                    PayloadFormat::RtpH264 => h264::rtp_payload_starts_access_unit(rtp.payload),
                    PayloadFormat::RtpMpegVideo => {
                        mpeg_video::rtp_payload_starts_picture(rtp.payload)
                    }
                    PayloadFormat::RtpH265 | PayloadFormat::RtpMp2t | PayloadFormat::MpegTs => {
                        false
                    }
                };
            self.begin(Some(timestamp), starts, arrival, events);
        }
        if let Some(frame) = self.classify_into_current(packet) {
            frame.last_arrival = arrival;
        }
        if rtp.marker {
            if let Some(frame) = self.current.take() {
                self.finish(frame, events);
            }
        }
        lost
    }

    fn transport_stream_datagram(
        &mut self,
        datagram: &[u8],
        arrival: Duration,
        events: &mut Vec<FrameEvent>,
    ) -> u64 {
        let mut lost_packets = 0;
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
                    lost_packets += u64::from(lost);
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
                        self.finish(frame, events);
                    }
                    self.begin(pts, true, arrival, events);
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
        lost_packets
    }

    /// Classifies `packet` and adds the type it shows to the frame in
    /// progress, which it returns.
    fn classify_into_current(&mut self, packet: &[u8]) -> Option<&mut Partial> {
        let info = self.classifier.inspect(packet).ok();
        self.configuration_seen |= info.as_ref().is_some_and(|info| info.configuration);
        let frame_type = info.map_or(FrameType::Unknown, |info| info.frame_type);
        let frame = self.current.as_mut()?;
        frame.frame_type = frame.frame_type.max(frame_type);
        Some(frame)
    }

    fn damage_current(&mut self) {
        if let Some(frame) = self.current.as_mut() {
            frame.damaged = true;
        }
    }

    /// A new frame begins; `starts` says whether its first packet is there.
    fn begin(
        &mut self,
        timestamp: Option<u64>,
        starts: bool,
        arrival: Duration,
        events: &mut Vec<FrameEvent>,
    ) {
        let mut frames_on = 1;
        let mut media_ticks = None;
        match (timestamp, self.previous_timestamp) {
            (Some(now), Some((before, before_ticks))) => {
                let step = now.wrapping_sub(before) % self.timestamp_modulus;
                let backwards = step > self.timestamp_modulus / 2;
                let signed_step = if backwards {
                    step as i64 - self.timestamp_modulus as i64
                } else {
                    step as i64
                };
                media_ticks = Some(before_ticks + signed_step);
                if backwards {
                    self.reordered = true;
                } else if step > 0 {
                    if let Some(interval) = self.nominal_step.or(self.smallest_step) {
                        let intervals = ((step + interval / 2) / interval).max(1);
                        if !self.reordered {
                            frames_on = intervals;
                        }
                        if self.counting && !self.reordered && intervals > 1 {
                            self.missing(intervals - 1, events);
                        }
                    }
                    self.smallest_step = Some(
                        self.smallest_step
                            .map_or(step, |interval| interval.min(step)),
                    );
                }
            }
            (Some(_), None) => media_ticks = Some(0),
            (None, _) => {}
        }
        if let (Some(now), Some(ticks)) = (timestamp, media_ticks) {
            self.previous_timestamp = Some((now, ticks));
        }
        let number = self.last_number.map_or(0, |last| last + frames_on);
        self.last_number = Some(number);
        let counted = starts || self.counting;
        self.counting |= counted;
        self.current = Some(Partial {
            number,
            timestamp,
            media_ticks,
            frame_type: FrameType::Unknown,
            damaged: !starts,
            last_arrival: arrival,
            counted,
        });
    }

    fn missing(&mut self, frames: u64, events: &mut Vec<FrameEvent>) {
        self.references_intact = false;
        events.push(FrameEvent::Missing { frames });
    }

    fn finish(&mut self, frame: Partial, events: &mut Vec<FrameEvent>) {
        if !frame.counted {
            return;
        }
        let whole = !frame.damaged;
        let decodable = if !whole {
            if frame.frame_type != FrameType::NonReference {
                self.references_intact = false;
            }
            false
        } else if frame.frame_type == FrameType::Intra {
            self.references_intact = self.configuration_seen;
            self.configuration_seen
        } else {
            self.references_intact
        };
        events.push(FrameEvent::Received(ReceivedFrame {
            number: frame.number,
            timestamp: frame.timestamp,
            media_ticks: frame.media_ticks,
            frame_type: frame.frame_type,
            whole,
            decodable,
            arrived: frame.last_arrival,
        }));
    }
}

#[cfg(test)]
mod tests;
