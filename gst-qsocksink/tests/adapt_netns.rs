//! adapt-bitrate over a real link: x264enc ! rtph264pay ! qsocksink in the
//! sender's namespace of a test bed, a receiver in the other namespace, and
//! the link rate the scheduler enforces squeezed below the encoder's bitrate
//! and released again. The encoder's `bitrate` must fall during the squeeze
//! and climb back after the release. The receiver is a stock GStreamer
//! receiver sending RTCP: the sink climbs only on its reports.
//!
//! The encoder's property is read at every `qsocksink-stats` message, which
//! the sink posts every `qos-interval`: the samples are the controller's own
//! clock. The series is printed so that the figures can be quoted.
//!
//! It runs on the user scheduler and on htb: both enforce a link rate given
//! to `qsockinit` on the streams already running (htb by refitting their
//! classes under the new link rate).
//!
//! Needs root (namespaces); without it the test prints why and passes.
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once

use std::time::{Duration, Instant};

use gst::prelude::*;
use qsock::{InitParams, Rate, SchedulerName};
use qsock_media::Receiver;
use qsock_testbed::TestBed;

mod plugin;

/// The link while it is clear: well above the encoder's ceiling.
const CLEAR_LINK: Rate = Rate::from_bits_per_second(8_000_000);
/// The squeezed link: a third of what the encoder sends when clear.
const SQUEEZED_LINK: Rate = Rate::from_bits_per_second(1_000_000);
/// The sink's limits, in bit/s (x264enc's `bitrate` is in kbit/s).
const MIN_BITRATE: u64 = 300_000;
const MAX_BITRATE: u64 = 3_000_000;
/// x264enc's bitrate at start, in kbit/s: below the ceiling, so the clear
/// phase shows the climb.
const START_KBPS: u32 = 2000;
const QOS_INTERVAL_MS: u64 = 200;

/// The clear phase lasts this long; by its end the encoder must be near the
/// ceiling (the estimate climbs by the ceiling in 15 s on the receiver's
/// clear reports).
const CLEAR_PHASE: Duration = Duration::from_secs(8);
/// The encoder must be at least this close to `MAX_BITRATE` after the clear phase.
const CLEAR_FLOOR_KBPS: u32 = 2700;
/// How long the encoder may take to fall below the squeezed link.
const FALL_WITHIN: Duration = Duration::from_secs(8);
/// What "fallen" means: the encoder's bitrate no higher than the squeezed link.
const FALLEN_KBPS: u32 = 1000;
/// How long the encoder stays squeezed after it has fallen, to show it stays down.
const SQUEEZE_HOLD: Duration = Duration::from_secs(3);
/// Highest the encoder may go while the link stays squeezed.
const SQUEEZED_CEILING_KBPS: u32 = 1500;
/// How long the encoder may take to climb back after the release: the climb
/// from about 700 kbit/s takes 7 s at full pace, slower near the rate at
/// which the receiver last reported loss; the rest is room for a cut or two
/// on a late frame (this machine's two cores are shared).
const CLIMB_WITHIN: Duration = Duration::from_secs(15);
/// What "climbed back" means: twice the squeezed link.
const CLIMBED_KBPS: u32 = 2000;

fn bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: adapt_netns needs root to build network namespaces");
        return None;
    }
    Some(TestBed::new().unwrap())
}

/// The receiver's port; its RTCP goes to the sender's port + 1.
const PORT: u16 = 5004;
const FPS: u32 = 25;

/// The sender's pipeline; stopped from inside the sender's namespace when
/// dropped, since stopping closes the sink's socket and with it the stream's
/// class, which netlink finds only there.
struct Sender<'a> {
    bed: &'a TestBed,
    pipeline: gst::Pipeline,
}

impl Sender<'_> {
    fn set_state(&self, state: gst::State) {
        let pipeline = self.pipeline.clone();
        self.bed
            .run_in_sender(move || pipeline.set_state(state))
            .unwrap()
            .unwrap_or_else(|err| panic!("set_state({state:?}): {err}"));
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        let pipeline = self.pipeline.clone();
        let _ = self
            .bed
            .run_in_sender(move || pipeline.set_state(gst::State::Null));
    }
}

/// One `qsocksink-stats` message and the encoder's bitrate when it came.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    phase: &'static str,
    encoder_kbps: u32,
    estimate_bps: u64,
    delivered_bps: u64,
    received_fps: f64,
    on_time_share: f64,
    queue_delay_us: Option<u64>,
    sink_dropped: u64,
    backlog_packets: u64,
}

impl Sample {
    fn print_header() {
        eprintln!(
            "{:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>7}",
            "t_s",
            "phase",
            "enc_kbps",
            "est_kbps",
            "deliv_kb",
            "recv_fps",
            "on_time",
            "qdelay_ms",
            "dropped",
            "backlog"
        );
    }

    fn print(&self) {
        let delay = self
            .queue_delay_us
            .map_or_else(|| "-".into(), |us| format!("{:.1}", us as f64 / 1000.0));
        eprintln!(
            "{:>6.1} {:>8} {:>8} {:>9} {:>9} {:>9.1} {:>7.3} {:>8} {:>7} {:>7}",
            self.at.as_secs_f64(),
            self.phase,
            self.encoder_kbps,
            self.estimate_bps / 1000,
            self.delivered_bps / 1000,
            self.received_fps,
            self.on_time_share,
            delay,
            self.sink_dropped,
            self.backlog_packets
        );
    }
}

/// Reads the sink's reports off the bus and pairs each with the encoder's
/// bitrate at that moment.
struct Sampler {
    bus: gst::Bus,
    encoder: gst::Element,
    started: Instant,
    receiver: Receiver,
    received_before: (Instant, usize),
    samples: Vec<Sample>,
}

impl Sampler {
    /// The next report, or `None` when none came by `until`. An error on the
    /// bus fails the test.
    fn next(&mut self, phase: &'static str, until: Instant) -> Option<Sample> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let message = self.bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(u64::try_from(left.as_nanos()).unwrap()),
                &[gst::MessageType::Element, gst::MessageType::Error],
            )?;
            if let gst::MessageView::Error(error) = message.view() {
                panic!("the sender's pipeline failed: {error:?}");
            }
            let Some(stats) = message.structure() else {
                continue;
            };
            if stats.name() != "qsocksink-stats" {
                continue;
            }
            let now = Instant::now();
            let received = self.receiver.frame_count();
            let (then, received_then) =
                std::mem::replace(&mut self.received_before, (now, received));
            let seconds = now.duration_since(then).as_secs_f64().max(1e-3);
            let field = |name: &str| stats.get::<u64>(name).unwrap_or(0);
            let sink_dropped = ["intra", "predicted", "non-reference", "unknown"]
                .iter()
                .map(|frame_type| field(&format!("sink-dropped-{frame_type}")))
                .sum::<u64>()
                + field("dropped-queue-full")
                + field("dropped-late");
            let sample = Sample {
                at: now.duration_since(self.started),
                phase,
                encoder_kbps: self.encoder.property::<u32>("bitrate"),
                estimate_bps: field("estimated-bitrate"),
                delivered_bps: field("delivered-bitrate"),
                received_fps: (received - received_then) as f64 / seconds,
                on_time_share: stats.get::<f64>("on-time-share").unwrap_or(1.0),
                queue_delay_us: stats.get::<u64>("queue-delay-interval-us").ok(),
                sink_dropped,
                backlog_packets: field("backlog-packets"),
            };
            sample.print();
            self.samples.push(sample.clone());
            return Some(sample);
        }
    }

    /// Samples until `done` says yes (returns that sample) or `within` has
    /// passed (returns `None`).
    fn until(
        &mut self,
        phase: &'static str,
        within: Duration,
        done: impl Fn(&Sample) -> bool,
    ) -> Option<Sample> {
        let give_up = Instant::now() + within;
        while let Some(sample) = self.next(phase, give_up) {
            if done(&sample) {
                return Some(sample);
            }
        }
        None
    }

    /// Samples for `length`; returns what it saw.
    fn during(&mut self, phase: &'static str, length: Duration) -> Vec<Sample> {
        let end = Instant::now() + length;
        let mut seen = Vec::new();
        while let Some(sample) = self.next(phase, end) {
            seen.push(sample);
        }
        seen
    }
}

fn set_link_rate(bed: &TestBed, scheduler: SchedulerName, rate: Rate) {
    let init = InitParams::new(bed.sender_dev(), scheduler).with_link_rate(rate);
    bed.run_in_sender(|| qsock::qsockinit(&init))
        .unwrap()
        .unwrap_or_else(|err| panic!("qsockinit {scheduler} at {rate}: {err}"));
}

/// Clear, squeeze, release on `scheduler`; asserts the encoder's bitrate
/// follows.
fn falls_when_squeezed_and_climbs_when_released(scheduler: SchedulerName) {
    // One run at a time: two encoders on two cores would measure the CPU.
    static TURN: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _turn = TURN.lock();
    let Some(bed) = bed() else { return };
    plugin::init();
    qsock_media::init(gstqsocksink::plugin_register_static).unwrap();
    set_link_rate(&bed, scheduler, CLEAR_LINK);
    let started = Instant::now();
    // A stock receiver that sends RTCP: its reports let the estimate climb.
    let receiver = Receiver::reporting(&bed, scheduler, PORT, FPS, started).unwrap();
    // Snow does not compress: x264enc spends the whole bitrate it is given,
    // so the offered rate is the encoder's setting, not the content's.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=snow ! \
         video/x-raw,width=640,height=360,framerate={FPS}/1 ! \
         x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={START_KBPS} ! \
         rtph264pay config-interval=-1 mtu=1200 ! \
         qsocksink name=sink host={host} port={port} scheduler={scheduler} \
         adapt-bitrate=true min-bitrate={MIN_BITRATE} max-bitrate={MAX_BITRATE} \
         qos-interval={QOS_INTERVAL_MS}",
        host = bed.receiver_v4(),
        port = PORT,
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let encoder = pipeline.by_name("enc").unwrap();
    let bus = pipeline.bus().unwrap();
    let sender = Sender {
        bed: &bed,
        pipeline,
    };
    let mut sampler = Sampler {
        bus,
        encoder,
        started,
        received_before: (started, 0),
        receiver,
        samples: Vec::new(),
    };
    eprintln!("{scheduler}: clear {CLEAR_LINK}, squeezed {SQUEEZED_LINK}");
    Sample::print_header();
    sender.set_state(gst::State::Playing);

    let clear = sampler.during("clear", CLEAR_PHASE);
    let clear_kbps = clear.last().map(|s| s.encoder_kbps);
    assert!(
        clear_kbps.is_some_and(|kbps| kbps >= CLEAR_FLOOR_KBPS),
        "{scheduler}: on a clear {CLEAR_LINK} link the encoder ended at {clear_kbps:?} kbit/s, \
         below {CLEAR_FLOOR_KBPS}"
    );

    set_link_rate(&bed, scheduler, SQUEEZED_LINK);
    let squeezed_at = Instant::now();
    let fallen = sampler.until("squeeze", FALL_WITHIN, |s| s.encoder_kbps <= FALLEN_KBPS);
    let fall_time = squeezed_at.elapsed();
    assert!(
        fallen.is_some(),
        "{scheduler}: the encoder did not fall to {FALLEN_KBPS} kbit/s within {FALL_WITHIN:?} \
         of squeezing the link to {SQUEEZED_LINK}"
    );
    let held = sampler.during("squeeze", SQUEEZE_HOLD);
    let squeezed_peak = held.iter().map(|s| s.encoder_kbps).max().unwrap_or(0);

    set_link_rate(&bed, scheduler, CLEAR_LINK);
    let released_at = Instant::now();
    let climbed = sampler.until("release", CLIMB_WITHIN, |s| s.encoder_kbps >= CLIMBED_KBPS);
    let climb_time = released_at.elapsed();
    drop(sender);
    eprintln!(
        "{scheduler}: clear {clear_kbps:?} kbit/s; fell to {:?} kbit/s {fall_time:.1?} after the \
         squeeze; at most {squeezed_peak} kbit/s while squeezed; climbed to {:?} kbit/s \
         {climb_time:.1?} after the release",
        fallen.map(|s| s.encoder_kbps),
        climbed.as_ref().map(|s| s.encoder_kbps),
    );
    assert!(
        squeezed_peak <= SQUEEZED_CEILING_KBPS,
        "{scheduler}: the encoder went back up to {squeezed_peak} kbit/s while the link was still \
         squeezed to {SQUEEZED_LINK}"
    );
    assert!(
        climbed.is_some(),
        "{scheduler}: the encoder did not climb back to {CLIMBED_KBPS} kbit/s within \
         {CLIMB_WITHIN:?} of releasing the link to {CLEAR_LINK}"
    );
}

#[test]
fn encoder_falls_when_squeezed_and_climbs_when_released() {
    falls_when_squeezed_and_climbs_when_released(SchedulerName::User);
}

#[test]
fn encoder_falls_when_squeezed_and_climbs_when_released_on_htb() {
    falls_when_squeezed_and_climbs_when_released(SchedulerName::Htb);
}
