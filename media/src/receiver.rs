//! A receiver per stream, in the receiver's namespace, that records when
//! each frame arrived whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;
use qsock_frame::{FrameEvent, FrameReceiver, PayloadFormat};
use qsock_testbed::TestBed;

use crate::pipeline::NamespacePipeline;
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
    /// Whether a decoder could show it correctly: an intra frame, or a frame
    /// predicted from references that all arrived whole since the last
    /// intra frame. A whole frame after a lost reference is not decodable:
    /// the picture is wrong until the next intra frame repairs it.
    pub decodable: bool,
}

/// A receiving pipeline: source (udpsrc, or srtsrc for SRT), rtpjitterbuffer,
/// rtph264depay. A probe on the source stamps each RTP packet as it arrives;
/// one in front of the depayloader, which sees packets in order after the
/// jitter buffer, hands them to the project's frame receiver
/// ([`FrameReceiver`]), which tells which frames arrived whole and which of
/// them a decoder could show. A frame's arrival is its last packet's, not
/// the jitter buffer's release, which would hide the network's jitter
/// behind the buffer's.
#[derive(Debug)]
pub struct Receiver {
    running: NamespacePipeline,
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
        let running = NamespacePipeline::launch(&description, bed.receiver_ns())?;
        let packet_arrivals = PacketArrivals::default();
        let stamped = Arc::clone(&packet_arrivals);
        running.on_rtp_packets("source", "src", move |_, header| {
            stamped.lock().insert(header.sequence, Instant::now());
        })?;
        let frames = Arc::new(Mutex::new(Vec::new()));
        let mut frame_receiver = FrameReceiver::new(PayloadFormat::RtpH264);
        frame_receiver.set_frame_rate(video.frames_per_second, 1);
        let frame_receiver = Mutex::new((frame_receiver, Vec::new()));
        let assembled = Arc::clone(&frames);
        running.on_rtp_packets("depay", "sink", move |buffer, header| {
            let arrived = packet_arrivals
                .lock()
                .remove(&header.sequence)
                .unwrap_or_else(Instant::now);
            let Ok(map) = buffer.map_readable() else {
                return;
            };
            let mut receiving = frame_receiver.lock();
            let (frame_receiver, events) = &mut *receiving;
            frame_receiver.packet(
                map.as_slice(),
                arrived.saturating_duration_since(epoch),
                events,
            );
            let mut assembled = assembled.lock();
            for event in events.drain(..) {
                if let FrameEvent::Received(frame) = event {
                    if frame.whole {
                        assembled.push(FrameArrival {
                            rtp_timestamp: frame.timestamp.map_or(0, |ts| ts as u32),
                            frame: frame.number,
                            arrived: frame.arrived,
                            decodable: frame.decodable,
                        });
                    }
                }
            }
        })?;
        // The source binds its socket on the way to PLAYING: in this namespace.
        bed.run_in_receiver(|| running.pipeline().set_state(gst::State::Playing))?
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
        self.frames.lock().clone()
    }

    /// How many frames arrived so far.
    pub fn frame_count(&self) -> usize {
        self.frames.lock().len()
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
        Ok(std::mem::take(&mut *self.frames.lock()))
    }
}
