//! One contender across the routed bed while the router's rate follows its
//! schedule and cross traffic runs: the run's ticks and what it measured.

use std::time::{Duration, Instant};

use gst::prelude::*;
use qsock_testbed::{BulkTransfer, RouterHost, TestBed};

use super::contender::{PathContender, WEBRTCSINK_X264_VBV_MS};
use super::rows::{path_rows, PathRow, PathSample};
use super::schedule::{CrossTraffic, RouterSchedule};
use super::sent::{SentFrame, SentFrames};
use crate::{Error, FrameArrival, NamespacePipeline, Receiver, Result, VideoSettings};

/// The receiver's port; its RTCP goes to the sender's port + 1.
const PORT: u16 = 5004;
/// The cross traffic's first port.
const BULK_PORT: u16 = 5201;

/// What every contender of one condition meets.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSettings {
    /// The video: the is 640x360 at 25 fps on snow, 2500 kbit/s
    /// at the start, an I-frame a second.
    pub video: VideoSettings,
    /// The router's rate toward the receiver over the run.
    pub router: RouterSchedule,
    /// The router's token bucket (tc syntax).
    pub router_burst: String,
    /// How long a packet may wait in the router's queue (tc syntax).
    pub router_latency: String,
    /// Traffic beside the video.
    pub cross: CrossTraffic,
    /// When the cross traffic starts; it runs to the end.
    pub cross_start: Duration,
    /// TCP connections of the cross traffic.
    pub cross_connections: u16,
    /// qsocksink's latency budget and SRT's latency.
    pub latency_budget: Duration,
    /// How long the receiver's jitter buffer waits for a missing packet.
    pub jitter_latency: Duration,
    /// The adaptive senders' bounds on their bitrate, bits per second.
    pub bitrate_bounds: (u64, u64),
}

impl Default for PathSettings {
    /// The bed: the router at 1.5 Mbit/s (burst 15k, 300 ms of
    /// queue), the video alone.
    fn default() -> PathSettings {
        PathSettings {
            video: VideoSettings {
                width: 640,
                height: 360,
                frames_per_second: 25,
                bitrate_kbit: 2500,
                keyframe_interval: 25,
                pattern: "snow",
            },
            router: RouterSchedule::constant(1_500_000),
            router_burst: "15k".into(),
            router_latency: "300ms".into(),
            cross: CrossTraffic::None,
            cross_start: Duration::from_secs(10),
            cross_connections: 1,
            latency_budget: Duration::from_millis(100),
            jitter_latency: Duration::from_millis(200),
            bitrate_bounds: (200_000, 4_000_000),
        }
    }
}

/// A fresh routed bed for one run: sender → router → receiver, the
/// router's egress at the schedule's first rate, and a third host on the
/// router when the cross traffic comes from one.
#[derive(Debug)]
pub struct PathBed {
    bed: TestBed,
    third_host: Option<RouterHost>,
}

impl PathBed {
    /// Builds the bed for `settings` (needs root).
    pub fn new(settings: &PathSettings) -> Result<PathBed> {
        let mut bed = TestBed::routed()?;
        let first = settings.router.rate_at(Duration::ZERO);
        set_router_rate(&bed, settings, first)?;
        let third_host = match settings.cross {
            CrossTraffic::FromThirdHost => Some(bed.add_router_host()?),
            CrossTraffic::None | CrossTraffic::FromSender => None,
        };
        Ok(PathBed { bed, third_host })
    }

    /// The test bed.
    pub fn bed(&self) -> &TestBed {
        &self.bed
    }
}

fn set_router_rate(bed: &TestBed, settings: &PathSettings, bits_per_second: u64) -> Result<()> {
    bed.set_router_bottleneck(
        &format!("{bits_per_second}bit"),
        &settings.router_burst,
        &settings.router_latency,
    )?;
    Ok(())
}

/// A contender running across a [`PathBed`]; call [`PathRun::tick`] often
/// (every 100 ms or so): it follows the schedules, samples the sender and,
/// for GCC, hands the estimate to the encoder.
#[derive(Debug)]
pub struct PathRun {
    path: PathBed,
    settings: PathSettings,
    contender: PathContender,
    epoch: Instant,
    receiver: Receiver,
    sender: NamespacePipeline,
    sent: SentFrames,
    cross: Vec<BulkTransfer>,
    router_bps: u64,
    samples: Vec<PathSample>,
}

impl PathRun {
    /// Starts the receiver, then the sender, on `path`; `epoch` is the
    /// run's time zero, which the schedules count from.
    pub fn start(
        path: PathBed,
        settings: &PathSettings,
        contender: PathContender,
        epoch: Instant,
    ) -> Result<PathRun> {
        let bed = &path.bed;
        let stream = contender.stream(PORT, settings.latency_budget);
        let receiver = Receiver::start(
            bed,
            &stream,
            &settings.video,
            settings.jitter_latency,
            epoch,
        )?;
        let description =
            contender.sender_description(bed, &settings.video, settings.bitrate_bounds, &stream)?;
        let sender = NamespacePipeline::launch(&description, bed.sender_ns())?;
        if contender == PathContender::Gcc {
            sender
                .element("encoder")?
                .set_property("vbv-buf-capacity", WEBRTCSINK_X264_VBV_MS);
        }
        // The system clock's time at the epoch: capture times are clock times.
        let epoch_clock =
            gst::SystemClock::obtain()
                .time()
                .saturating_sub(gst::ClockTime::from_nseconds(
                    epoch.elapsed().as_nanos() as u64
                ));
        let sent = SentFrames::watch(&sender, epoch_clock)?;
        // Sinks open sockets and install schedulers on the way to PLAYING.
        bed.run_in_sender(|| sender.pipeline().set_state(gst::State::Playing))?
            .map_err(|err| {
                let detail = sender.check().err().map(|e| format!(": {e}"));
                Error::Pipeline(format!(
                    "the {} sender does not start ({err}){}",
                    contender.label(),
                    detail.unwrap_or_default()
                ))
            })?;
        let router_bps = settings.router.rate_at(Duration::ZERO);
        Ok(PathRun {
            path,
            settings: settings.clone(),
            contender,
            epoch,
            receiver,
            sender,
            sent,
            cross: Vec::new(),
            router_bps,
            samples: Vec::new(),
        })
    }

    /// The contender.
    pub fn contender(&self) -> PathContender {
        self.contender
    }

    /// Follows the router's schedule and the cross traffic's start, takes a
    /// sample, steers GCC's encoder; fails when the sender or the receiver
    /// has failed.
    pub fn tick(&mut self) -> Result<()> {
        let now = self.epoch.elapsed();
        let rate = self.settings.router.rate_at(now);
        if rate != self.router_bps {
            set_router_rate(&self.path.bed, &self.settings, rate)?;
            self.router_bps = rate;
        }
        if self.cross.is_empty()
            && self.settings.cross != CrossTraffic::None
            && now >= self.settings.cross_start
        {
            self.start_cross_traffic()?;
        }
        self.sender.check()?;
        self.receiver.check()?;
        let encoder = self.sender.element("encoder")?;
        let estimate_bps = match self.contender {
            PathContender::QSockSink { .. } => Some(
                self.sender
                    .element("sink")?
                    .property::<u64>("estimated-bitrate"),
            ),
            PathContender::Gcc => {
                let estimate = self
                    .sender
                    .element("bwe")?
                    .property::<u32>("estimated-bitrate");
                // As webrtcsink does: the encoder targets the estimate.
                let kbit = (estimate / 1000).max(1);
                if encoder.property::<u32>("bitrate") != kbit {
                    encoder.set_property("bitrate", kbit);
                }
                Some(u64::from(estimate))
            }
            PathContender::UdpSink | PathContender::SrtSink => None,
        };
        let encoder_bps = u64::from(encoder.property::<u32>("bitrate")) * 1000;
        self.samples.push(PathSample {
            at: now,
            router_bps: self.router_bps,
            estimate_bps,
            encoder_bps,
        });
        Ok(())
    }

    fn start_cross_traffic(&mut self) -> Result<()> {
        let bed = &self.path.bed;
        let from = match &self.path.third_host {
            Some(host) => host.namespace().to_owned(),
            None => bed.sender_ns().to_owned(),
        };
        for port in 0..self.settings.cross_connections.max(1) {
            self.cross
                .push(BulkTransfer::start_from(bed, &from, BULK_PORT + port)?);
        }
        Ok(())
    }

    /// The last sample taken.
    pub fn last_sample(&self) -> Option<PathSample> {
        self.samples.last().copied()
    }

    /// The series so far, in intervals of `length` up to `until`.
    pub fn rows(&self, length: Duration, until: Duration) -> Vec<PathRow> {
        path_rows(
            &self.receiver.frames(),
            &self.sent.frames(),
            &self.samples,
            self.settings.video.frame_interval(),
            length,
            until,
        )
    }

    /// Stops the sender (in its namespace, where its scheduler is torn
    /// down), the cross traffic and the receiver; returns what was measured.
    pub fn finish(self) -> Result<PathOutcome> {
        let bed = &self.path.bed;
        let pipeline = self.sender.pipeline().clone();
        bed.run_in_sender(move || pipeline.set_state(gst::State::Null))?
            .map_err(|err| {
                Error::Pipeline(format!(
                    "the {} sender does not stop: {err}",
                    self.contender.label()
                ))
            })?;
        let mut cross_bytes = 0;
        for transfer in self.cross {
            cross_bytes += transfer.stop()?;
        }
        let sent = self.sent.frames();
        let frames = self.receiver.stop()?;
        Ok(PathOutcome {
            contender: self.contender,
            frame_interval: self.settings.video.frame_interval(),
            frames,
            sent,
            samples: self.samples,
            cross_bytes,
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct PathOutcome {
    /// Who ran.
    pub contender: PathContender,
    /// The video's nominal frame interval.
    pub frame_interval: Duration,
    /// Every frame that arrived whole.
    pub frames: Vec<FrameArrival>,
    /// Every frame the payloader sent on.
    pub sent: Vec<SentFrame>,
    /// The run's samples, tick by tick.
    pub samples: Vec<PathSample>,
    /// Bytes the cross traffic delivered.
    pub cross_bytes: u64,
}

impl PathOutcome {
    /// The series in intervals of `length` up to `until`.
    pub fn rows(&self, length: Duration, until: Duration) -> Vec<PathRow> {
        path_rows(
            &self.frames,
            &self.sent,
            &self.samples,
            self.frame_interval,
            length,
            until,
        )
    }
}
