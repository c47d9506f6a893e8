//! What one run of the sink (start to stop) shares between the streaming
//! and the feedback thread: the socket with its period, the counters, and
//! the latest report.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8};

use parking_lot::Mutex;

use super::feedback::{Feedback, Reported};
use super::period::StreamPeriod;
use super::receiver_feedback::{ReceiverView, RtpSource};
use super::transport_wide::TransportWide;
use qsock_frame::FrameType;

/// What the sink counts itself, shared with the feedback thread.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub frames: [u64; 4],
    pub packets: [u64; 4],
    pub sink_dropped: [u64; 4],
    pub offered_packets: u64,
    /// Bytes of the packets counted in `offered_packets`: what the encoder
    /// made, as sent.
    pub offered_bytes: u64,
    pub send_frame_calls: u64,
    pub push_back_waits: u64,
    pub frame_interval_sum_ns: u64,
    pub frame_intervals: u64,
    pub last_frame_pts: Option<gst::ClockTime>,
    pub last_running_time: Option<gst::ClockTime>,
    /// Packets of the largest frame since the feedback thread last looked.
    pub largest_frame_packets: u64,
    /// The RTP stream sent, for sender reports; None for MPEG-TS over UDP.
    pub rtp: Option<RtpSource>,
}

impl Counters {
    pub fn sink_dropped_total(&self) -> u64 {
        self.sink_dropped.iter().sum()
    }

    pub fn frames_total(&self) -> u64 {
        self.frames.iter().sum()
    }

    /// Counts a frame of `packets` (`bytes` in all) handed to the scheduler (one
    /// `send_frame` call), with its PTS and running time.
    pub fn count_frame(
        &mut self,
        frame_type: FrameType,
        packets: usize,
        bytes: usize,
        pts: Option<gst::ClockTime>,
        running_time: Option<gst::ClockTime>,
    ) {
        let index = frame_type.index();
        let packets = packets as u64;
        self.send_frame_calls += 1;
        self.frames[index] += 1;
        self.packets[index] += packets;
        self.offered_packets += packets;
        self.offered_bytes += bytes as u64;
        self.largest_frame_packets = self.largest_frame_packets.max(packets);
        if let Some(pts) = pts {
            if let Some(previous) = self.last_frame_pts {
                if pts > previous {
                    self.frame_interval_sum_ns += (pts - previous).nseconds();
                    self.frame_intervals += 1;
                }
            }
            self.last_frame_pts = Some(pts);
        }
        if running_time.is_some() {
            self.last_running_time = running_time;
        }
    }
}

/// The run's shared state: one `Arc` held by the element's `Started` state
/// and by the feedback thread.
#[derive(Debug)]
pub(super) struct Run {
    /// The socket, and the only writer of its stream's period.
    pub period: StreamPeriod,
    /// Where the stream goes, and where its receiver's RTCP comes from.
    pub destination: SocketAddr,
    /// The device the stream leaves by, whose scheduler it is in.
    pub device: String,
    /// What the streaming thread counted, read by the feedback thread.
    pub counters: Mutex<Counters>,
    /// The previous frame waited for room: a new wait is not a new episode.
    pub pushing_back: AtomicBool,
    /// What the feedback thread keeps between intervals.
    pub feedback: Mutex<Feedback>,
    /// The latest report, for the `stats` and `estimated-bitrate` properties.
    pub reported: Mutex<Reported>,
    /// What the receiver's RTCP said, kept by the receiver-feedback thread.
    pub receiver: Mutex<ReceiverView>,
    /// The caps' `extmap-ID` of the transport-wide sequence number; 0 when
    /// the stream carries none.
    pub transport_wide_id: AtomicU8,
    /// When each numbered packet left, and what the receiver's
    /// transport-wide feedback said of them.
    pub transport_wide: Mutex<TransportWide>,
}
