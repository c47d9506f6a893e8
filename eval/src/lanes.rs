//! Live video runs for Figures 4 to 6: several identical test beds
//! ("lanes") side by side, one per way of getting QoS, each with its own
//! bottleneck, senders, receivers and bulk TCP schedule, all started from
//! one epoch and run at the same time.
//!
//! Lanes, not one bed: a device has one root qdisc, so qsock's htb, the
//! user scheduler over a TBF, an administrator's HTB port class and a plain
//! FIFO cannot share a link; identical beds run at the same moment on the
//! same machine are the closest to one test bed.

use std::time::{Duration, Instant};

use qsock::{InitParams, Rate, SchedulerName};
use qsock_media::{
    BulkSchedule, FrameArrival, IntervalStats, Receiver, RunningSchedule, Sender, SinkKind,
    StreamSpec, VideoSettings,
};
use qsock_testbed::TestBed;

use crate::{schedulers, Result};

/// The options Figures 4 to 6 share: who runs, across what link, with which
/// budget (`#[command(flatten)]` into each figure's options).
#[derive(Debug, Clone, clap::Args)]
pub struct LaneArgs {
    /// qsocksink's backends, one lane each (default: user and, as root,
    /// htb; dwcs when sch_dwcs is loaded).
    #[arg(long, value_delimiter = ',', value_parser = schedulers::parse)]
    pub schedulers: Vec<SchedulerName>,
    /// Leave out the contenders' lanes (udpsink, udpsink in an
    /// administrator's HTB class, srtsink).
    #[arg(long)]
    pub qsock_only: bool,
    /// TCP connections of each bulk transfer.
    #[arg(long, default_value_t = 4)]
    pub bulk_connections: u16,
    /// The bottleneck's rate.
    #[arg(long, default_value = "10mbit")]
    pub rate: String,
    /// qsocksink's latency budget, SRT's latency and the receivers'
    /// jitter-buffer latency, in ms.
    #[arg(long, default_value_t = 100)]
    pub budget_ms: u64,
    /// The administrator's HTB class for each udpsink's port, in kbit/s.
    #[arg(long, default_value_t = 2000)]
    pub port_class_kbit: u64,
}

impl Default for LaneArgs {
    fn default() -> Self {
        LaneArgs {
            schedulers: Vec::new(),
            qsock_only: false,
            bulk_connections: 4,
            rate: "10mbit".into(),
            budget_ms: 100,
            port_class_kbit: 2000,
        }
    }
}

impl LaneArgs {
    /// `--rate`, parsed.
    pub fn link_rate(&self) -> Result<Rate> {
        self.rate
            .parse()
            .map_err(|e: qsock::Error| format!("--rate: {e}"))
    }

    /// `--budget-ms`.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
}

/// How a lane's link is set up before its streams start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSetup {
    /// qsockinit with this backend at the link rate; `user` gets a TBF at
    /// the link rate underneath, since it paces only its own process.
    Qsock(SchedulerName),
    /// A plain TBF bottleneck and nothing else.
    Fifo,
    /// An administrator's HTB with a class of `class_kbit` for the port of
    /// each of the lane's udpsinks in a port class
    /// (qsock_media::install_port_classes).
    PortClass {
        /// The class's rate.
        class_kbit: u64,
    },
}

/// One lane: its link and the senders on it (each one encoder, several sinks).
#[derive(Debug, Clone)]
pub struct Lane {
    /// The name the lane's streams are reported under.
    pub name: String,
    /// How the link is set up.
    pub link: LinkSetup,
    /// Each sender's video and the streams it sends.
    pub senders: Vec<(VideoSettings, Vec<StreamSpec>)>,
}

/// The common settings of a run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The bottleneck's rate.
    pub rate: Rate,
    /// How long the video runs.
    pub duration: Duration,
    /// Bulk TCP schedules, each followed on every lane.
    pub bulk: Vec<BulkSchedule>,
    /// The receivers' jitter-buffer latency.
    pub jitter_latency: Duration,
    /// Interval of the statistics.
    pub interval: Duration,
}

/// What one stream's receiver saw.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    /// The stream's label (lane names are part of it).
    pub label: String,
    /// The frame rate it was sent at.
    pub fps: u32,
    /// Every frame that arrived whole.
    pub frames: Vec<FrameArrival>,
    /// Per-interval frames per second and jitter.
    pub intervals: Vec<IntervalStats>,
}

/// What a run saw: each stream, in lane order.
#[derive(Debug)]
pub struct RunOutcome {
    /// One per stream, in lane order.
    pub streams: Vec<StreamOutcome>,
}

/// Runs every lane at once for `settings.duration`.
pub fn run(lanes: &[Lane], settings: &RunSettings) -> Result<RunOutcome> {
    qsock_media::init(gstqsocksink::plugin_register_static).map_err(|err| err.to_string())?;
    let mut beds = Vec::new();
    for lane in lanes {
        beds.push(set_up(lane, settings.rate)?);
    }
    println!("lanes: {} test beds up, streams starting", beds.len());
    let epoch = Instant::now();
    let mut receivers: Vec<(Receiver, u32)> = Vec::new();
    let mut senders = Vec::new();
    for (lane, bed) in lanes.iter().zip(&beds) {
        for (video, streams) in &lane.senders {
            for stream in streams {
                let receiver = Receiver::start(bed, stream, video, settings.jitter_latency, epoch)
                    .map_err(|err| format!("{}: receiver {}: {err}", lane.name, stream.label))?;
                receivers.push((receiver, video.frames_per_second));
            }
        }
    }
    for (lane, bed) in lanes.iter().zip(&beds) {
        for (video, streams) in &lane.senders {
            senders.push(
                Sender::start(bed, video, streams)
                    .map_err(|err| format!("{}: sender: {err}", lane.name))?,
            );
        }
    }
    let mut schedules: Vec<RunningSchedule<'_>> = Vec::new();
    for bed in &beds {
        for schedule in &settings.bulk {
            schedules.push(schedule.start(bed, epoch));
        }
    }
    follow(&mut schedules, &senders, settings, epoch)?;
    for sender in senders {
        sender.finish().map_err(|err| format!("sender: {err}"))?;
    }
    for schedule in schedules {
        schedule.finish().map_err(|err| format!("bulk: {err}"))?;
    }
    let mut streams = Vec::new();
    for (receiver, fps) in receivers {
        let label = receiver.label().to_owned();
        let frames = receiver
            .stop()
            .map_err(|err| format!("receiver {label}: {err}"))?;
        let nominal = Duration::from_secs(1) / fps;
        let intervals =
            qsock_media::intervals(&frames, nominal, settings.interval, settings.duration);
        streams.push(StreamOutcome {
            label,
            fps,
            frames,
            intervals,
        });
    }
    // The beds (namespaces, qdiscs, the user scheduler's device) go here.
    drop(beds);
    Ok(RunOutcome { streams })
}

fn set_up(lane: &Lane, rate: Rate) -> Result<TestBed> {
    let failed = |err: &dyn std::fmt::Display| format!("lane {}: {err}", lane.name);
    let bed = TestBed::new().map_err(|e| failed(&e))?;
    match lane.link {
        LinkSetup::Qsock(scheduler) => {
            let bed = if scheduler == SchedulerName::User {
                bed.with_bottleneck(&rate.to_string())
                    .map_err(|e| failed(&e))?
            } else {
                bed
            };
            let init = InitParams::new(bed.sender_dev(), scheduler).with_link_rate(rate);
            bed.run_in_sender(|| qsock::qsockinit(&init))
                .map_err(|e| failed(&e))?
                .map_err(|e| failed(&format!("qsockinit {scheduler}: {e}")))?;
            Ok(bed)
        }
        LinkSetup::Fifo => bed
            .with_bottleneck(&rate.to_string())
            .map_err(|e| failed(&e)),
        LinkSetup::PortClass { class_kbit } => {
            let ports: Vec<u16> = lane
                .senders
                .iter()
                .flat_map(|(_, streams)| streams)
                .filter(|stream| stream.sink == SinkKind::PortClassUdpSink)
                .map(|stream| stream.port)
                .collect();
            qsock_media::install_port_classes(
                &bed,
                rate.bits_per_second() / 1000,
                &ports,
                class_kbit,
            )
            .map_err(|e| failed(&e))?;
            Ok(bed)
        }
    }
}

/// Starts and stops the bulk transfers at their times until the end,
/// checking the senders as it goes.
fn follow(
    schedules: &mut [RunningSchedule<'_>],
    senders: &[Sender],
    settings: &RunSettings,
    epoch: Instant,
) -> Result<()> {
    let end = settings.duration;
    loop {
        for schedule in schedules.iter_mut() {
            schedule.update().map_err(|err| format!("bulk: {err}"))?;
        }
        for sender in senders {
            sender.check().map_err(|err| format!("sender: {err}"))?;
        }
        let now = epoch.elapsed();
        if now >= end {
            return Ok(());
        }
        let next = settings
            .bulk
            .iter()
            .filter_map(|schedule| schedule.next_change_after(now))
            .min()
            .unwrap_or(end)
            .min(end);
        // The run's own timetable: wake at the next bulk change or the end,
        // and at least every second to look at the senders.
        std::thread::sleep((next.saturating_sub(now)).min(Duration::from_secs(1)));
    }
}

/// Inter-frame jitter of each frame (|gap − nominal|, ms) against its
/// arrival time (s), frames in arrival order; the first frame has none.
pub fn frame_jitter(frames: &[FrameArrival], fps: u32) -> Vec<(f64, f64)> {
    let nominal = 1.0 / f64::from(fps);
    let mut arrivals: Vec<f64> = frames.iter().map(|f| f.arrived.as_secs_f64()).collect();
    arrivals.sort_by(f64::total_cmp);
    arrivals
        .windows(2)
        .map(|pair| (pair[1], ((pair[1] - pair[0]) - nominal).abs() * 1e3))
        .collect()
}

/// The nearest-rank percentile `q` (0..=1) of `values`.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64, arrived_ms: u64) -> FrameArrival {
        FrameArrival {
            rtp_timestamp: (n * 4500) as u32,
            frame: n,
            arrived: Duration::from_millis(arrived_ms),
            decodable: true,
        }
    }

    #[test]
    fn jitter_is_the_gap_off_the_frame_interval() {
        let frames = [frame(0, 0), frame(2, 103), frame(1, 50)];
        let jitter = frame_jitter(&frames, 20);
        assert_eq!(jitter.len(), 2);
        assert!((jitter[0].0 - 0.050).abs() < 1e-9 && jitter[0].1.abs() < 1e-6);
        assert!((jitter[1].0 - 0.103).abs() < 1e-9 && (jitter[1].1 - 3.0).abs() < 1e-6);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
