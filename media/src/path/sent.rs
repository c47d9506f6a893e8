//! The frames the sender payloaded: when each was captured and whether it
//! was an I-frame, by RTP timestamp, for the receiver's arrivals to be
//! matched against.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;
use parking_lot::Mutex;

use crate::pipeline::{rtp_header, NamespacePipeline};
use crate::{Error, Result};

/// One frame the payloader sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentFrame {
    /// Its RTP timestamp, which the receiver's [`FrameArrival`](crate::FrameArrival) carries.
    pub rtp_timestamp: u32,
    /// When the source captured it, since the run's epoch: the clock time
    /// of its PTS (base time + its running time, on the pipeline's clock,
    /// the system's monotonic clock, as [`Instant`](std::time::Instant)'s).
    pub captured: Duration,
    /// Whether the encoder made it an I-frame (no delta-unit flag).
    pub intra: bool,
}

/// What the probes gathered.
#[derive(Debug, Default)]
struct Stamps {
    /// PTS of the access units that were I-frames, until payloaded.
    intra_pts: HashSet<gst::ClockTime>,
    frames: HashMap<u32, SentFrame>,
}

/// Watches the element `payloader` of a sender and records each frame it
/// sends on.
#[derive(Debug, Clone)]
pub(crate) struct SentFrames {
    stamps: Arc<Mutex<Stamps>>,
}

impl SentFrames {
    /// Probes `payloader`'s pads in `sender`. `epoch_clock` is the system
    /// clock's time at the run's epoch.
    pub(crate) fn watch(
        sender: &NamespacePipeline,
        epoch_clock: gst::ClockTime,
    ) -> Result<SentFrames> {
        let payloader = sender.element("payloader")?;
        let pad = |name: &str| {
            payloader
                .static_pad(name)
                .ok_or_else(|| Error::Pipeline(format!("the payloader has no {name} pad")))
        };
        let stamps = Arc::new(Mutex::new(Stamps::default()));
        let intra = Arc::clone(&stamps);
        pad("sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                if let Some(pts) = buffer
                    .pts()
                    .filter(|_| !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT))
                {
                    intra.lock().intra_pts.insert(pts);
                }
            }
            gst::PadProbeReturn::Ok
        });
        let sent = Arc::clone(&stamps);
        let element = payloader.clone();
        pad("src")?.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |pad, info| {
                let base_time = element.base_time().unwrap_or(gst::ClockTime::ZERO);
                // Encoders shift their timestamps (x264enc by 1000 hours) and
                // the segment with them: the running time is the capture's.
                let segment = pad
                    .sticky_event::<gst::event::Segment>(0)
                    .and_then(|event| event.segment().downcast_ref::<gst::ClockTime>().cloned());
                let Some(segment) = segment else {
                    return gst::PadProbeReturn::Ok;
                };
                let record = |buffer: &gst::BufferRef| {
                    let Some(header) = rtp_header(buffer) else {
                        return;
                    };
                    let Some(pts) = buffer.pts() else {
                        return;
                    };
                    let Some(running_time) = segment.to_running_time(pts) else {
                        return;
                    };
                    let mut stamps = sent.lock();
                    if stamps.frames.contains_key(&header.timestamp) {
                        return;
                    }
                    let intra = stamps.intra_pts.remove(&pts);
                    let captured = (base_time + running_time).saturating_sub(epoch_clock);
                    stamps.frames.insert(
                        header.timestamp,
                        SentFrame {
                            rtp_timestamp: header.timestamp,
                            captured: Duration::from_nanos(captured.nseconds()),
                            intra,
                        },
                    );
                };
                match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => record(buffer),
                    Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(record),
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
        Ok(SentFrames { stamps })
    }

    /// Every frame sent on so far, in capture order.
    pub(crate) fn frames(&self) -> Vec<SentFrame> {
        let mut frames: Vec<SentFrame> = self.stamps.lock().frames.values().copied().collect();
        frames.sort_by_key(|f| f.captured);
        frames
    }
}
