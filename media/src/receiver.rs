//! A receiver per stream, in the receiver's namespace, that records when
//! each frame arrived whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use qsock_testbed::TestBed;

use crate::pipeline::{lock, rtp_header, RtpHeader, Running};
use crate::{Result, StreamSpec, VideoSettings};

/// One frame that reached the depayloader whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameArrival {
    /// The frame's RTP timestamp: its identity on the wire.
    pub rtp_timestamp: u32,
    /// The frame's number, counted from the first frame this receiver saw
    /// (from the RTP timestamp, so lost frames leave gaps).
    pub frame: u64,
    /// When the last of its packets came off the network (or, for SRT, out
    /// of srtsrc), since the run's epoch.
    pub arrived: Duration,
}

/// A receiving pipeline: source (udpsrc, or srtsrc for SRT), rtpjitterbuffer,
/// rtph264depay. A probe on the source stamps each RTP packet as it arrives;
/// one in front of the depayloader, which sees packets in order after the
/// jitter buffer, puts them together into frames. A frame counts when its
/// packets run without a gap from the one after the previous frame's last
/// packet to its own last (marker) packet: it could be decoded. Its arrival
/// is its last packet's, not the jitter buffer's release, which would hide
/// the network's jitter behind the buffer's.
#[derive(Debug)]
pub struct Receiver {
    running: Running,
    frames: Arc<Mutex<Vec<FrameArrival>>>,
    label: String,
}

/// When each RTP packet came in, by sequence number, until it is assembled.
type PacketArrivals = Arc<Mutex<HashMap<u16, Instant>>>;

impl Receiver {
    /// Starts receiving `stream` in the receiver's namespace. The jitter
    /// buffer waits up to `jitter_latency` for a missing packet; `epoch` is
    /// the run's time zero.
    pub fn start(
        bed: &TestBed,
        stream: &StreamSpec,
        video: &VideoSettings,
        jitter_latency: Duration,
        epoch: Instant,
    ) -> Result<Receiver> {
        let description = format!(
            "{} ! rtpjitterbuffer latency={} ! rtph264depay name=depay \
             ! fakesink sync=false async=false",
            stream.source_description(bed),
            jitter_latency.as_millis()
        );
        let running = Running::launch(&description, bed.receiver_ns())?;
        let packet_arrivals = PacketArrivals::default();
        let stamped = Arc::clone(&packet_arrivals);
        running
            .element("source")?
            .static_pad("src")
            .expect("a source has a source pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    if let Some(header) = rtp_header(buffer) {
                        lock(&stamped).insert(header.sequence, Instant::now());
                    }
                }
                gst::PadProbeReturn::Ok
            });
        let frames = Arc::new(Mutex::new(Vec::new()));
        let assembly = Mutex::new(Assembly::new(video.rtp_ticks_per_frame(), epoch));
        let assembled = Arc::clone(&frames);
        running
            .element("depay")?
            .static_pad("sink")
            .expect("a depayloader has a sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    if let Some(header) = rtp_header(buffer) {
                        let arrived = lock(&packet_arrivals).remove(&header.sequence);
                        if let Some(frame) = lock(&assembly).packet(header, arrived) {
                            lock(&assembled).push(frame);
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        // The source binds its socket on the way to PLAYING: in this namespace.
        bed.run_in_receiver(|| running.pipeline.set_state(gst::State::Playing))?
            .map_err(|err| {
                crate::Error::Pipeline(format!(
                    "the receiver of {} on port {} does not start: {err}",
                    stream.label, stream.port
                ))
            })?;
        Ok(Receiver {
            running,
            frames,
            label: stream.label.clone(),
        })
    }

    /// The stream's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The frames that arrived so far, in the order they were assembled.
    pub fn frames(&self) -> Vec<FrameArrival> {
        lock(&self.frames).clone()
    }

    /// How many frames arrived so far.
    pub fn frame_count(&self) -> usize {
        lock(&self.frames).len()
    }

    /// Fails if the receiver has failed since it started.
    pub fn check(&self) -> Result<()> {
        self.running.check()
    }

    /// Stops receiving and returns every frame that arrived.
    pub fn stop(self) -> Result<Vec<FrameArrival>> {
        let outcome = self.running.check();
        drop(self.running);
        outcome?;
        Ok(std::mem::take(&mut *lock(&self.frames)))
    }
}

/// Puts in-order RTP packets together into frames.
#[derive(Debug)]
struct Assembly {
    ticks_per_frame: u32,
    epoch: Instant,
    /// The packet before: its sequence number and whether it ended a frame.
    previous: Option<(u16, bool)>,
    /// The frame being assembled.
    current: Option<Partial>,
    /// The RTP timestamp of the last frame that arrived whole.
    last_timestamp: Option<u32>,
    /// RTP ticks from the first frame that arrived whole to that one.
    ticks_since_first: i64,
}

#[derive(Debug)]
struct Partial {
    timestamp: u32,
    whole_so_far: bool,
    last_arrival: Option<Instant>,
}

impl Assembly {
    fn new(ticks_per_frame: u32, epoch: Instant) -> Assembly {
        Assembly {
            ticks_per_frame: ticks_per_frame.max(1),
            epoch,
            previous: None,
            current: None,
            last_timestamp: None,
            ticks_since_first: 0,
        }
    }

    /// Takes the next packet out of the jitter buffer; returns the frame it
    /// completed, if it completed one whole.
    fn packet(&mut self, header: RtpHeader, arrived: Option<Instant>) -> Option<FrameArrival> {
        let follows = self
            .previous
            .is_some_and(|(sequence, _)| header.sequence == sequence.wrapping_add(1));
        let previous_ended_frame = self.previous.is_some_and(|(_, marker)| marker);
        self.previous = Some((header.sequence, header.marker));
        match &mut self.current {
            Some(partial) if partial.timestamp == header.timestamp => {
                partial.whole_so_far &= follows;
                partial.last_arrival = partial.last_arrival.max(arrived);
            }
            _ => {
                self.current = Some(Partial {
                    timestamp: header.timestamp,
                    whole_so_far: follows && previous_ended_frame,
                    last_arrival: arrived,
                })
            }
        }
        if !header.marker {
            return None;
        }
        let partial = self.current.take()?;
        let arrival = partial.last_arrival?;
        if !partial.whole_so_far {
            return None;
        }
        Some(FrameArrival {
            rtp_timestamp: partial.timestamp,
            frame: self.frame_number(partial.timestamp),
            arrived: arrival.saturating_duration_since(self.epoch),
        })
    }

    /// The frame's number from its RTP timestamp, which wraps at 2^32.
    fn frame_number(&mut self, timestamp: u32) -> u64 {
        if let Some(last) = self.last_timestamp {
            // Frames come in order out of the jitter buffer, so the step from
            // the last one is small either way round the wrap.
            self.ticks_since_first += i64::from(timestamp.wrapping_sub(last) as i32);
        }
        self.last_timestamp = Some(timestamp);
        let ticks = u64::try_from(self.ticks_since_first).unwrap_or(0);
        let per_frame = u64::from(self.ticks_per_frame);
        (ticks + per_frame / 2) / per_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sequence: u16, timestamp: u32, marker: bool) -> RtpHeader {
        RtpHeader {
            sequence,
            timestamp,
            marker,
        }
    }

    #[test]
    fn frames_whole_from_marker_to_marker_count_and_gaps_do_not() {
        let epoch = Instant::now();
        let at = Some(epoch + Duration::from_millis(7));
        let mut assembly = Assembly::new(4500, epoch);
        // The first frame: nothing is known about what came before it.
        assert_eq!(assembly.packet(header(10, 1000, true), at), None);
        assert!(assembly.packet(header(11, 5500, false), at).is_none());
        let whole = assembly.packet(header(12, 5500, true), at).expect("whole");
        assert_eq!((whole.rtp_timestamp, whole.frame), (5500, 0));
        assert_eq!(whole.arrived, Duration::from_millis(7));
        // Packet 14 lost: the frame of 13..15 is not whole, and the next one,
        // whose first packet follows a marker, is.
        assert!(assembly.packet(header(13, 10000, false), at).is_none());
        assert!(assembly.packet(header(15, 10000, true), at).is_none());
        let next = assembly.packet(header(16, 14500, true), at).expect("whole");
        assert_eq!(next.frame, 2);
        // A frame whose first packet was lost with the previous one's marker.
        assert!(assembly.packet(header(18, 19000, true), at).is_none());
        // RTP timestamps wrap.
        let mut wrapping = Assembly::new(4500, epoch);
        assert!(wrapping
            .packet(header(1, u32::MAX - 4000, true), at)
            .is_none());
        let first = wrapping
            .packet(header(2, u32::MAX - 100, true), at)
            .expect("whole");
        let after_wrap = wrapping.packet(header(3, 4400, true), at).expect("whole");
        assert_eq!(after_wrap.frame - first.frame, 1);
    }
}
