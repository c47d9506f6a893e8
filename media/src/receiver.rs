//! A receiver per stream, in the receiver's namespace, that records when
//! each frame arrived whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;
use qsock_frame::{FrameEvent, FrameReceiver, FrameType, PayloadFormat};
use qsock_testbed::TestBed;

use crate::pipeline::NamespacePipeline;
use qsock::SchedulerName;

use crate::{Result, SinkKind, StreamSpec, VideoSettings};

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

/// Frames that did not arrive whole, as the receiver noticed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLoss {
    /// When the loss was noticed (the frame's last packet, or the packet
    /// after a run of missing frames), since the run's epoch.
    pub noticed: Duration,
    /// The type the frame's surviving packets showed; `Unknown` for frames
    /// of which nothing arrived.
    pub frame_type: FrameType,
    /// How many frames: more than one only for a run of missing frames.
    pub frames: u64,
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
    losses: Arc<Mutex<Vec<FrameLoss>>>,
    label: String,
}

/// An RTP session between the source and the jitter buffer, as a stock
/// receiver runs one: RTCP in on `port` + 1, receiver reports (AVPF, every
/// half second) and PLI out to the sender's `port` + 1.
fn rtcp_session(bed: &TestBed, port: u16) -> String {
    let (receiver, sender) = (bed.receiver_v4(), bed.sender_v4());
    let rtcp_port = port + 1;
    format!(
        "rtpsession name=session rtp-profile=avpf rtcp-min-interval=500000000 \
         udpsrc address={receiver} port={rtcp_port} ! session.recv_rtcp_sink \
         session.send_rtcp_src ! udpsink host={sender} port={rtcp_port} sync=false async=false"
    )
}

/// When each RTP packet came in, by sequence number, until it is assembled.
type PacketArrivals = Arc<Mutex<HashMap<u16, Instant>>>;

impl Receiver {
    /// A stock receiver of a qsocksink stream on `scheduler` at `port` that
    /// sends its RTCP back (receiver reports, PLI), with a 200 ms jitter
    /// buffer: what lets the sink see the path.
    pub fn reporting(
        bed: &TestBed,
        scheduler: SchedulerName,
        port: u16,
        frames_per_second: u32,
        epoch: Instant,
    ) -> Result<Receiver> {
        let stream = Self::qsocksink_stream(scheduler, port).with_receiver_reports();
        Self::start_at(bed, &stream, frames_per_second, epoch)
    }

    /// The same receiver, its session also answering the stream's
    /// transport-wide sequence numbers (header extension 1) with TWCC
    /// feedback.
    pub fn reporting_transport_wide(
        bed: &TestBed,
        scheduler: SchedulerName,
        port: u16,
        frames_per_second: u32,
        epoch: Instant,
    ) -> Result<Receiver> {
        let stream = Self::qsocksink_stream(scheduler, port).with_transport_cc();
        Self::start_at(bed, &stream, frames_per_second, epoch)
    }

    fn qsocksink_stream(scheduler: SchedulerName, port: u16) -> StreamSpec {
        StreamSpec::new(
            scheduler.to_string(),
            SinkKind::QSockSink {
                scheduler,
                latency_budget: Duration::from_millis(100),
            },
            port,
        )
    }

    fn start_at(
        bed: &TestBed,
        stream: &StreamSpec,
        frames_per_second: u32,
        epoch: Instant,
    ) -> Result<Receiver> {
        let video = VideoSettings {
            frames_per_second,
            ..VideoSettings::default()
        };
        Receiver::start(bed, stream, &video, Duration::from_millis(200), epoch)
    }

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
        let source = stream.source_description(bed);
        let source = if stream.receiver_reports {
            format!(
                "{} {source} ! session.recv_rtp_sink session.recv_rtp_src",
                rtcp_session(bed, stream.port)
            )
        } else {
            source
        };
        let description = format!(
            "{source} ! rtpjitterbuffer latency={} ! rtph264depay name=depay request-keyframe={} \
             ! fakesink sync=false async=false",
            jitter_latency.as_millis(),
            // A receiver that reports asks for a key frame on loss (PLI).
            stream.receiver_reports,
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
        let losses = Arc::new(Mutex::new(Vec::new()));
        let assembled = Arc::clone(&frames);
        let lost = Arc::clone(&losses);
        running.on_rtp_packets("depay", "sink", move |buffer, header| {
            let arrived = packet_arrivals
                .lock()
                .remove(&header.sequence)
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(epoch);
            let Ok(map) = buffer.map_readable() else {
                return;
            };
            let mut receiving = frame_receiver.lock();
            let (frame_receiver, events) = &mut *receiving;
            frame_receiver.packet(map.as_slice(), arrived, events);
            for event in events.drain(..) {
                match event {
                    FrameEvent::Received(frame) if frame.whole => {
                        assembled.lock().push(FrameArrival {
                            rtp_timestamp: frame.timestamp.map_or(0, |ts| ts as u32),
                            frame: frame.number,
                            arrived: frame.arrived,
                            decodable: frame.decodable,
                        })
                    }
                    FrameEvent::Received(frame) => lost.lock().push(FrameLoss {
                        noticed: frame.arrived,
                        frame_type: frame.frame_type,
                        frames: 1,
                    }),
                    FrameEvent::Missing { frames } => lost.lock().push(FrameLoss {
                        noticed: arrived,
                        frame_type: FrameType::Unknown,
                        frames,
                    }),
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
            losses,
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

    /// The frames lost so far, in the order the losses were noticed.
    pub fn losses(&self) -> Vec<FrameLoss> {
        self.losses.lock().clone()
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
