//! The `qsocksink` element: frames in, one `send_frame` per frame out, and
//! the scheduler's figures back upstream and on the bus.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use qsock::{
    Deadline, DropFlag, ErrorKind, InitParams, PacketFlags, QInfo, QSocket, QosParams, Rate,
    SchedulerName, StreamParams, WindowConstraint,
};
use socket2::{Domain, Protocol, Type};

use super::bitrate::{
    encoder_bitrate, interval_mean_delay, BitrateController, EncoderBitrate, Observation,
};
use super::frames::{fallback_info, DropPolicy, Frame, FrameAssembler, FrameDropFlag};
use qsock_frame::{Classifier, FrameType, PayloadFormat};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "qsocksink",
        gst::DebugColorFlags::empty(),
        Some("QSocket sink"),
    )
});

/// The scheduler the sink's socket is attached to; the names are qsock's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstQSockSinkScheduler")]
pub enum SchedulerChoice {
    /// Whatever qsock scheduler the device has; if none, installs the first
    /// of dwcs, htb, user that works.
    #[default]
    #[enum_value(
        name = "Auto: the scheduler installed on the device; if none, the first of dwcs, htb \
                (both need CAP_NET_ADMIN) and user that can be installed",
        nick = "auto"
    )]
    Auto = 0,
    /// sch_dwcs, the kernel module.
    #[enum_value(
        name = "DWCS: the sch_dwcs kernel qdisc (module loaded, CAP_NET_ADMIN)",
        nick = "dwcs"
    )]
    Dwcs = 1,
    /// The kernel's HTB qdisc.
    #[enum_value(
        name = "HTB: the kernel's HTB qdisc, rate isolation only (CAP_NET_ADMIN)",
        nick = "htb"
    )]
    Htb = 2,
    /// qsock's in-process scheduler.
    #[enum_value(
        name = "User: DWCS in this process, no privilege needed",
        nick = "user"
    )]
    User = 3,
}

impl SchedulerChoice {
    fn name(self) -> SchedulerName {
        match self {
            SchedulerChoice::Auto => SchedulerName::Auto,
            SchedulerChoice::Dwcs => SchedulerName::Dwcs,
            SchedulerChoice::Htb => SchedulerName::Htb,
            SchedulerChoice::User => SchedulerName::User,
        }
    }
}

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u32 = 5004;
const DEFAULT_BIND_ADDRESS: &str = "";
const DEFAULT_DEVICE: &str = "";
const DEFAULT_SCHEDULER: SchedulerChoice = SchedulerChoice::Auto;
const DEFAULT_LINK_RATE: &str = "";
const DEFAULT_DROPPABLE: DropPolicy = DropPolicy::NonReferenceAndPredicted;
const DEFAULT_LATENCY_BUDGET_MS: u32 = 100;
const DEFAULT_IPG_US: u64 = 0;
const DEFAULT_LOSS_NUMERATOR: u32 = 2;
const DEFAULT_LOSS_DENOMINATOR: u32 = 10;
const DEFAULT_LOSSLESS: bool = false;
const DEFAULT_QOS_INTERVAL_MS: u32 = 1000;
const DEFAULT_ADAPT_BITRATE: bool = false;
const DEFAULT_MIN_BITRATE: u64 = 250_000;
const DEFAULT_MAX_BITRATE: u64 = 8_000_000;

/// First wait after the scheduler pushes a packet back; doubled up to
/// [`MAX_PUSH_BACK_WAIT`]. Neither the kernel's queue nor the user scheduler
/// signals room, so the sink polls, and stays interruptible while it does.
const MIN_PUSH_BACK_WAIT: Duration = Duration::from_micros(500);
const MAX_PUSH_BACK_WAIT: Duration = Duration::from_millis(10);

/// A derived ipg sizes the stream a quarter above its mean rate, so that
/// frames larger than the mean (intra frames) do not fall behind the period.
const DERIVED_RATE_HEADROOM: f64 = 1.25;

/// A derived ipg lets the largest frame of this many recent qos-intervals
/// leave within the latency budget.
const LARGEST_FRAME_INTERVALS: usize = 10;

/// A derived ipg is applied only when it moves by more than this share:
/// every change is a `tc class change` on the kernel schedulers.
const IPG_CHANGE_THRESHOLD: f64 = 0.1;

/// How far upstream the sink looks for an encoder or a framerate.
const MAX_UPSTREAM_ELEMENTS: usize = 32;

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    bind_address: String,
    device: String,
    scheduler: SchedulerChoice,
    link_rate: String,
    droppable: DropPolicy,
    latency_budget_ms: u32,
    ipg_us: u64,
    loss_numerator: u32,
    loss_denominator: u32,
    lossless: bool,
    qos_interval_ms: u32,
    adapt_bitrate: bool,
    min_bitrate: u64,
    max_bitrate: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            device: DEFAULT_DEVICE.into(),
            scheduler: DEFAULT_SCHEDULER,
            link_rate: DEFAULT_LINK_RATE.into(),
            droppable: DEFAULT_DROPPABLE,
            latency_budget_ms: DEFAULT_LATENCY_BUDGET_MS,
            ipg_us: DEFAULT_IPG_US,
            loss_numerator: DEFAULT_LOSS_NUMERATOR,
            loss_denominator: DEFAULT_LOSS_DENOMINATOR,
            lossless: DEFAULT_LOSSLESS,
            qos_interval_ms: DEFAULT_QOS_INTERVAL_MS,
            adapt_bitrate: DEFAULT_ADAPT_BITRATE,
            min_bitrate: DEFAULT_MIN_BITRATE,
            max_bitrate: DEFAULT_MAX_BITRATE,
        }
    }
}

impl Settings {
    fn latency_budget(&self) -> Duration {
        Duration::from_millis(u64::from(self.latency_budget_ms))
    }

    /// What the streaming thread copies out for each render.
    fn send_settings(&self) -> SendSettings {
        SendSettings {
            droppable: self.droppable,
            latency_budget: self.latency_budget(),
            derives_ipg: self.ipg_us == 0,
        }
    }

    /// The stream's attributes; `derived_ipg` stands in when `ipg` is 0.
    fn stream_params(&self, derived_ipg: Option<Duration>) -> StreamParams {
        let ipg = match self.ipg_us {
            0 => derived_ipg,
            us => Some(Duration::from_micros(us)),
        };
        // Every packet carries its frame's deadline; the period only sizes
        // the stream's share of the link. Live video should leave as soon as
        // the link is free, so the stream is work-conserving.
        let stream = match ipg {
            Some(ipg) => StreamParams::periodic(ipg, self.loss_numerator, self.loss_denominator)
                .work_conserving(),
            None => StreamParams {
                window: WindowConstraint::new(self.loss_numerator, self.loss_denominator),
                ..StreamParams::aperiodic()
            },
        };
        if self.lossless {
            stream.lossless()
        } else {
            stream
        }
    }
}

/// What the streaming thread needs of the settings for each buffer.
#[derive(Debug, Clone, Copy)]
struct SendSettings {
    droppable: DropPolicy,
    latency_budget: Duration,
    /// `ipg=0`: the sink sizes the stream's period, and may shorten it for
    /// a frame that would not leave in time.
    derives_ipg: bool,
}

/// Wakes a render thread that waits for the scheduler to take a packet.
#[derive(Debug, Default)]
struct Flushing {
    flushing: Mutex<bool>,
    wake: Condvar,
}

impl Flushing {
    fn set(&self, flushing: bool) {
        *lock(&self.flushing) = flushing;
        self.wake.notify_all();
    }

    /// Waits up to `wait`; false when the sink is flushing.
    fn wait(&self, wait: Duration) -> bool {
        let guard = lock(&self.flushing);
        if *guard {
            return false;
        }
        let (guard, _) = self
            .wake
            .wait_timeout(guard, wait)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !*guard
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the sink counts itself, shared with the feedback thread.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    frames: [u64; 4],
    packets: [u64; 4],
    sink_dropped: [u64; 4],
    offered_packets: u64,
    send_frame_calls: u64,
    push_back_waits: u64,
    frame_interval_sum_ns: u64,
    frame_intervals: u64,
    last_frame_pts: Option<gst::ClockTime>,
    last_running_time: Option<gst::ClockTime>,
    /// Packets of the largest frame since the feedback thread last looked.
    largest_frame_packets: u64,
}

impl Counters {
    fn sink_dropped_total(&self) -> u64 {
        self.sink_dropped.iter().sum()
    }

    fn frames_total(&self) -> u64 {
        self.frames.iter().sum()
    }
}

/// The socket and what both the streaming and the feedback thread use.
#[derive(Debug)]
struct Shared {
    socket: RwLock<QSocket>,
    destination: SocketAddr,
    device: String,
    /// The device's link rate in bit/s as its scheduler knows it; 0 when
    /// unknown. Read at start and by the feedback thread at every interval.
    link_rate: AtomicU64,
    /// A full-size packet on the device, in bits (from its MTU).
    full_packet_bits: u64,
    counters: Mutex<Counters>,
}

impl Shared {
    fn socket(&self) -> std::sync::RwLockReadGuard<'_, QSocket> {
        self.socket
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What bounds the stream's period now.
    fn link_limits(&self) -> LinkLimits {
        LinkLimits {
            rate: Some(self.link_rate.load(Ordering::Relaxed)).filter(|&bits| bits > 0),
            full_packet_bits: self.full_packet_bits,
        }
    }

    /// `qchange` to `stream`, on the same device and scheduler.
    fn change_stream(&self, stream: StreamParams) -> Result<(), qsock::Error> {
        let mut socket = self
            .socket
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let params = QosParams::new(socket.params().device.clone(), socket.scheduler(), stream);
        socket.change(&params)
    }
}

#[derive(Debug)]
struct FeedbackThread {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

#[derive(Debug)]
struct Started {
    shared: Arc<Shared>,
    classifier: Option<Classifier>,
    assembler: FrameAssembler<gst::Buffer>,
    warned_unclassified: bool,
    feedback: Option<FeedbackThread>,
    monotonic_clock: Option<(gst::Clock, bool)>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Stopped,
    Started(Box<Started>),
}

/// What the feedback thread keeps between intervals.
#[derive(Debug)]
struct Feedback {
    controller: BitrateController,
    previous_counters: Counters,
    previous_info: Option<QInfo>,
    upstream_frame_interval: Option<Duration>,
    encoder: Option<(glib::WeakRef<gst::Element>, EncoderBitrate)>,
    encoder_searched: bool,
    applied_bitrate: Option<u64>,
    warned: bool,
    /// The largest frame (packets) of each of the last intervals.
    largest_frames: VecDeque<u64>,
}

impl Feedback {
    fn new(settings: &Settings) -> Self {
        Feedback {
            controller: BitrateController::new(settings.min_bitrate, settings.max_bitrate),
            previous_counters: Counters::default(),
            previous_info: None,
            upstream_frame_interval: None,
            encoder: None,
            encoder_searched: false,
            applied_bitrate: None,
            warned: false,
            largest_frames: VecDeque::with_capacity(LARGEST_FRAME_INTERVALS),
        }
    }
}

/// The element.
#[derive(Debug)]
pub struct QSockSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    flushing: Flushing,
    feedback: Mutex<Feedback>,
    stats: Mutex<gst::Structure>,
    estimated_bitrate: Mutex<u64>,
    /// The previous frame waited for room: a new wait is not a new episode.
    pushing_back: Mutex<bool>,
}

impl Default for QSockSink {
    fn default() -> Self {
        let settings = Settings::default();
        QSockSink {
            feedback: Mutex::new(Feedback::new(&settings)),
            settings: Mutex::new(settings),
            state: Mutex::new(State::Stopped),
            flushing: Flushing::default(),
            stats: Mutex::new(gst::Structure::new_empty("qsocksink-stats")),
            estimated_bitrate: Mutex::new(0),
            pushing_back: Mutex::new(false),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for QSockSink {
    const NAME: &'static str = "GstQSockSink";
    type Type = super::QSockSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for QSockSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb("Address or host name the packets are sent to")
                    .default_value(Some(DEFAULT_HOST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("UDP port the packets are sent to")
                    .minimum(1)
                    .maximum(u32::from(u16::MAX))
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("bind-address")
                    .nick("Bind address")
                    .blurb(
                        "Local address to send from (empty: the kernel picks the address of \
                         the route to host)",
                    )
                    .default_value(Some(DEFAULT_BIND_ADDRESS))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb(
                        "Network interface whose scheduler orders the packets (empty: the \
                         device the route to host leaves by)",
                    )
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("scheduler", DEFAULT_SCHEDULER)
                    .nick("Scheduler")
                    .blurb(
                        "Packet scheduler: auto uses the one installed on the device, or \
                         installs the first of dwcs, htb, user that works; a named one is \
                         installed if the device has none",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("link-rate")
                    .nick("Link rate")
                    .blurb(
                        "Rate the scheduler may send at, as tc writes it (e.g. 10mbit), used \
                         only when the sink installs the scheduler (empty: the device's speed)",
                    )
                    .default_value(Some(DEFAULT_LINK_RATE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("droppable", DEFAULT_DROPPABLE)
                    .nick("Droppable frames")
                    .blurb(
                        "Which frames the scheduler may drop when they are late; intra frames, \
                         parameter sets and unclassified packets are never dropped",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("latency-budget")
                    .nick("Latency budget")
                    .blurb(
                        "Milliseconds a frame may take to leave after its clock time (DTS, else \
                         PTS): its packets' deadline",
                    )
                    .minimum(1)
                    .maximum(60_000)
                    .default_value(DEFAULT_LATENCY_BUDGET_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("ipg")
                    .nick("Inter-packet gap")
                    .blurb(
                        "Microseconds between the stream's packets, its share of the link (0: \
                         derived from the framerate and packets per frame)",
                    )
                    .maximum(3_600_000_000)
                    .default_value(DEFAULT_IPG_US)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("loss-numerator")
                    .nick("Loss numerator")
                    .blurb(
                        "Packets that may miss their deadline in every loss-denominator \
                         packets (DWCS's x, oln); 0 with a denominator of 0 tolerates no loss",
                    )
                    .default_value(DEFAULT_LOSS_NUMERATOR)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("loss-denominator")
                    .nick("Loss denominator")
                    .blurb(
                        "Length in packets of the window loss-numerator counts in (DWCS's y, \
                         old); must not be below loss-numerator",
                    )
                    .default_value(DEFAULT_LOSS_DENOMINATOR)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("lossless")
                    .nick("Lossless")
                    .blurb(
                        "Send late packets late instead of dropping them (droppable frames are \
                         then dropped only when the queue is full)",
                    )
                    .default_value(DEFAULT_LOSSLESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("qos-interval")
                    .nick("QoS interval")
                    .blurb(
                        "Milliseconds between reports: a QoS event upstream, a qsocksink-stats \
                         message on the bus, and bitrate adaptation",
                    )
                    .minimum(10)
                    .maximum(60_000)
                    .default_value(DEFAULT_QOS_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "The latest report: frames and packets sent per frame type, drops, \
                         deadline misses, queueing delay, delivered rate and the scheduler in use",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("estimated-bitrate")
                    .nick("Estimated bitrate")
                    .blurb(
                        "Bits per second the sink estimates the path carries on time, within \
                         min-bitrate and max-bitrate (0 until the first report; notifies on \
                         change)",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("adapt-bitrate")
                    .nick("Adapt bitrate")
                    .blurb(
                        "Set the bitrate of the nearest upstream encoder (x264enc, x265enc, \
                         openh264enc, vp8enc, vp9enc, avenc_*, mpeg2enc) to estimated-bitrate",
                    )
                    .default_value(DEFAULT_ADAPT_BITRATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("min-bitrate")
                    .nick("Minimum bitrate")
                    .blurb("Lowest estimated-bitrate, in bits per second")
                    .minimum(1000)
                    .default_value(DEFAULT_MIN_BITRATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bitrate")
                    .nick("Maximum bitrate")
                    .blurb("Highest estimated-bitrate, in bits per second")
                    .minimum(1000)
                    .default_value(DEFAULT_MAX_BITRATE)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let started = matches!(*lock(&self.state), State::Started(_));
        let mut settings = lock(&self.settings);
        let previous_limits = (settings.min_bitrate, settings.max_bitrate);
        let text = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match pspec.name() {
            "host" => settings.host = text(),
            "port" => settings.port = value.get().unwrap_or(DEFAULT_PORT),
            "bind-address" => settings.bind_address = text(),
            "device" => settings.device = text(),
            "scheduler" => settings.scheduler = value.get().unwrap_or(DEFAULT_SCHEDULER),
            "link-rate" => settings.link_rate = text(),
            "droppable" => settings.droppable = value.get().unwrap_or(DEFAULT_DROPPABLE),
            "latency-budget" => {
                settings.latency_budget_ms = value.get().unwrap_or(DEFAULT_LATENCY_BUDGET_MS)
            }
            "ipg" => settings.ipg_us = value.get().unwrap_or(DEFAULT_IPG_US),
            "loss-numerator" => {
                settings.loss_numerator = value.get().unwrap_or(DEFAULT_LOSS_NUMERATOR)
            }
            "loss-denominator" => {
                settings.loss_denominator = value.get().unwrap_or(DEFAULT_LOSS_DENOMINATOR)
            }
            "lossless" => settings.lossless = value.get().unwrap_or(DEFAULT_LOSSLESS),
            "qos-interval" => {
                settings.qos_interval_ms = value.get().unwrap_or(DEFAULT_QOS_INTERVAL_MS)
            }
            "adapt-bitrate" => settings.adapt_bitrate = value.get().unwrap_or(false),
            "min-bitrate" => settings.min_bitrate = value.get().unwrap_or(DEFAULT_MIN_BITRATE),
            "max-bitrate" => settings.max_bitrate = value.get().unwrap_or(DEFAULT_MAX_BITRATE),
            other => gst::warning!(CAT, imp = self, "no writable property {other}"),
        }
        // Before start the pair may pass through any order of settings;
        // start refuses it. While running, the estimate must stay within
        // both at every moment, so a change that crosses them is refused.
        if started && settings.min_bitrate > settings.max_bitrate {
            let message = bitrate_limits_error(settings.min_bitrate, settings.max_bitrate);
            (settings.min_bitrate, settings.max_bitrate) = previous_limits;
            drop(settings);
            gst::error!(CAT, imp = self, "{message}");
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "{message}; the change is refused and the limits stay {}..={} bit/s",
                    previous_limits.0,
                    previous_limits.1
                )
            );
            return;
        }
        let (min, max) = (settings.min_bitrate, settings.max_bitrate);
        drop(settings);
        lock(&self.feedback).controller.set_limits(min, max);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return lock(&self.stats).to_value();
        }
        if pspec.name() == "estimated-bitrate" {
            return lock(&self.estimated_bitrate).to_value();
        }
        let settings = lock(&self.settings);
        match pspec.name() {
            "host" => settings.host.to_value(),
            "port" => settings.port.to_value(),
            "bind-address" => settings.bind_address.to_value(),
            "device" => settings.device.to_value(),
            "scheduler" => settings.scheduler.to_value(),
            "link-rate" => settings.link_rate.to_value(),
            "droppable" => settings.droppable.to_value(),
            "latency-budget" => settings.latency_budget_ms.to_value(),
            "ipg" => settings.ipg_us.to_value(),
            "loss-numerator" => settings.loss_numerator.to_value(),
            "loss-denominator" => settings.loss_denominator.to_value(),
            "lossless" => settings.lossless.to_value(),
            "qos-interval" => settings.qos_interval_ms.to_value(),
            "adapt-bitrate" => settings.adapt_bitrate.to_value(),
            "min-bitrate" => settings.min_bitrate.to_value(),
            "max-bitrate" => settings.max_bitrate.to_value(),
            other => {
                gst::warning!(CAT, imp = self, "no readable property {other}");
                pspec.default_value().clone()
            }
        }
    }
}

impl GstObjectImpl for QSockSink {}

impl ElementImpl for QSockSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "QSocket sink",
                "Sink/Network",
                "Sends RTP or MPEG-TS video through a QSocket with per-frame deadlines and drop flags",
                "qsock developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Exactly the encodings the frame classifiers can type, so that
            // linking another payloader fails at negotiation, not once PLAYING.
            let caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("application/x-rtp")
                        .field("media", "video")
                        .field(
                            "encoding-name",
                            gst::List::new(RTP_ENCODINGS.iter().map(|(name, _)| *name)),
                        )
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/mpegts")
                        .field("packetsize", 188i32)
                        .build(),
                )
                .build();
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("the sink pad template is valid")]
        });
        TEMPLATES.as_ref()
    }
}

/// What a stream's period is derived from when `ipg=0`.
#[derive(Debug, Clone, Copy)]
struct DerivedIpg {
    frame_interval: Duration,
    packets_per_frame: f64,
    largest_frame_packets: u64,
    latency_budget: Duration,
    link: LinkLimits,
}

/// What bounds a stream's period on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkLimits {
    /// The link rate the device's scheduler was given, in bit/s.
    rate: Option<u64>,
    /// A full-size packet with its link-layer header, rounded up, as the
    /// kernel backends size a class (HTB refuses one faster than the link).
    full_packet_bits: u64,
}

impl LinkLimits {
    /// A full packet's time on the link: the shortest period a stream can
    /// have there; None when the rate is not known.
    fn full_packet_time(self) -> Option<Duration> {
        self.rate
            .filter(|&bits| bits > 0)
            .map(|bits| Duration::from_nanos(self.full_packet_bits * 1_000_000_000 / bits))
    }

    /// `period`, or the full packet's time if that is longer.
    fn at_most_the_link(self, period: Duration) -> Duration {
        self.full_packet_time()
            .map_or(period, |shortest| period.max(shortest))
    }
}

/// The stream's period: short enough to carry its mean rate with headroom,
/// and to let its largest recent frame (an intra frame, typically several
/// times the mean) leave within the latency budget; never more than the
/// whole link asks for.
fn derived_ipg(from: DerivedIpg) -> Duration {
    let by_mean = from
        .frame_interval
        .div_f64(from.packets_per_frame.max(1.0) * DERIVED_RATE_HEADROOM);
    let by_largest = match u32::try_from(from.largest_frame_packets) {
        Ok(packets) if packets > 0 && !from.latency_budget.is_zero() => {
            from.latency_budget / packets
        }
        _ => by_mean,
    };
    from.link.at_most_the_link(by_mean.min(by_largest))
}

/// The period that lets `packets` packets leave within `left`, but no
/// shorter than a full packet's time on the link.
fn period_to_fit(left: Duration, packets: u32, link: LinkLimits) -> Duration {
    link.at_most_the_link(left / packets.max(1))
}

/// Link-layer header and rounding on top of the MTU: 1600 bytes for
/// Ethernet's 1500.
const LINK_HEADER_ALLOWANCE: u64 = 100;

/// A full packet on `device` in bits, from its MTU (Ethernet's when it cannot
/// be read). A loopback device's 64 KiB MTU makes a class for full packets
/// forty times faster than one for Ethernet's.
fn full_packet_bits(device: &str) -> u64 {
    let mtu = qsock::device_mtu(device).map_or(1500, u64::from);
    (mtu + LINK_HEADER_ALLOWANCE) * 8
}

/// The link rate the device's qsock scheduler was given, and how much of it
/// the live streams have not reserved, if it knows them.
fn link_rate_of(device: &str) -> (Option<u64>, Option<u64>) {
    let Ok(report) = qsock::report(device) else {
        return (None, None);
    };
    let Some(rate) = report
        .link_rate
        .map(|rate| rate.bits_per_second())
        .filter(|&bits| bits > 0)
    else {
        return (None, None);
    };
    let reserved = report
        .streams
        .iter()
        .filter(|stream| !stream.stale)
        .filter_map(|stream| stream.rate)
        .map(|rate| rate.bits_per_second())
        .fold(0, u64::saturating_add);
    (Some(rate), Some(rate.saturating_sub(reserved)))
}

/// The period a stream starts with while `ipg=0` leaves it to be measured:
/// a full-size packet at half of what the device's link has not reserved for
/// other streams (1 ms when the rate is not known), so that streams started
/// side by side are all admitted. Starting aperiodic would leave the first
/// frames, the first I-frame among them, without a share of the link (HTB
/// gives an aperiodic stream no class), queued behind whatever else is sent.
fn starting_ipg(link: LinkLimits, unreserved: Option<u64>) -> Duration {
    let room = LinkLimits {
        rate: unreserved.or(link.rate),
        ..link
    };
    match room.full_packet_time() {
        Some(shortest) => (shortest * 2).max(Duration::from_micros(50)),
        None => Duration::from_millis(1),
    }
}

/// The RTP encodings the frame classifiers can type, as payloaders name them.
const RTP_ENCODINGS: [(&str, PayloadFormat); 4] = [
    ("H264", PayloadFormat::RtpH264),
    ("H265", PayloadFormat::RtpH265),
    ("MPV", PayloadFormat::RtpMpegVideo),
    ("MP2T", PayloadFormat::RtpMp2t),
];

/// The payload format the caps describe, or what to do instead. The pad
/// template lets only these through; the messages serve an element that
/// bypasses negotiation.
fn payload_format(caps: &gst::CapsRef) -> Result<PayloadFormat, String> {
    let structure = caps
        .structure(0)
        .ok_or_else(|| "empty caps: give application/x-rtp or video/mpegts".to_string())?;
    match structure.name().as_str() {
        "video/mpegts" => Ok(PayloadFormat::MpegTs),
        "application/x-rtp" => {
            let encoding = structure.get::<&str>("encoding-name").map_err(|_| {
                "RTP caps without encoding-name: the payloader must say which of H264, H265, \
                 MPV or MP2T it sends"
                    .to_string()
            })?;
            RTP_ENCODINGS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(encoding))
                .map(|(_, format)| *format)
                .ok_or_else(|| {
                    format!(
                        "qsocksink cannot tell the frames of RTP encoding-name={encoding}: it \
                         sends H264 (rtph264pay), H265 (rtph265pay), MPV (rtpmpvpay), MP2T \
                         (rtpmp2tpay) or video/mpegts; use udpsink for other payloads"
                    )
                })
        }
        other => Err(format!(
            "qsocksink takes application/x-rtp or video/mpegts, not {other}"
        )),
    }
}

impl BaseSinkImpl for QSockSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        if settings.min_bitrate > settings.max_bitrate {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "{}",
                    bitrate_limits_error(settings.min_bitrate, settings.max_bitrate)
                )
            ));
        }
        let bind_address = bind_address(&settings)?;
        let destination = resolve_destination(&settings, bind_address)?;
        let route_device = qsock::egress_device(destination.ip());
        let device = match (settings.device.as_str(), route_device) {
            ("", Ok(route_device)) => route_device,
            ("", Err(err)) => {
                return Err(gst::error_msg!(
                    gst::ResourceError::NotFound,
                    ("{err}; or set the device property")
                ))
            }
            (device, Ok(route_device)) if device == route_device => route_device,
            (device, Ok(route_device)) => {
                if let Err(err) = qsock::device_mtu(device) {
                    return Err(gst::error_msg!(
                        gst::ResourceError::NotFound,
                        (
                            "device={device}: {err}; the route to {} leaves by {route_device}",
                            destination.ip()
                        )
                    ));
                }
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    (
                        "device={device}, but the route to {} leaves by {route_device}: the \
                         scheduler on {device} would never see the stream's packets. Set \
                         device={route_device}, or leave device empty for the route's device",
                        destination.ip()
                    )
                ));
            }
            (device, Err(err)) => {
                return Err(gst::error_msg!(
                    gst::ResourceError::NotFound,
                    (
                        "cannot check that traffic to {} leaves by device={device}: {err}",
                        destination.ip()
                    )
                ))
            }
        };
        let stream = settings.stream_params(None);
        stream.validate().map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("{err} (properties ipg, loss-numerator, loss-denominator)")
            )
        })?;
        let scheduler = self.prepare_scheduler(&settings, &device)?;
        let (link_rate, unreserved) = link_rate_of(&device);
        let full_packet_bits = full_packet_bits(&device);
        let stream = if settings.ipg_us == 0 {
            let starting = starting_ipg(
                LinkLimits {
                    rate: link_rate,
                    full_packet_bits,
                },
                unreserved,
            );
            gst::debug!(
                CAT,
                imp = self,
                "starting ipg {starting:?} until one is measured"
            );
            settings.stream_params(Some(starting))
        } else {
            stream
        };
        let params = QosParams::new(device.clone(), scheduler, stream);
        let domain = match destination {
            SocketAddr::V4(_) => Domain::IPV4,
            SocketAddr::V6(_) => Domain::IPV6,
        };
        let socket =
            QSocket::new(domain, Type::DGRAM, Some(Protocol::UDP), &params).map_err(|err| {
                let why = if settings.ipg_us > 0 && err.kind() == ErrorKind::InvalidInput {
                    full_packet_period_hint(&settings, &device, link_rate, full_packet_bits)
                } else {
                    String::new()
                };
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("cannot attach a socket to the {scheduler} scheduler on {device}: {err}{why}")
                )
            })?;
        if let Some(address) = bind_address {
            socket
                .socket()
                .bind(&SocketAddr::new(address, 0).into())
                .map_err(|err| {
                    gst::error_msg!(
                        gst::ResourceError::OpenWrite,
                        ("cannot bind to {address}: {err}; is it an address of this host?")
                    )
                })?;
        }
        // The sink never blocks in the kernel: a full queue comes back as
        // push-back, which it waits out where unlock can interrupt it.
        socket.socket().set_nonblocking(true).map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("cannot make the socket non-blocking: {err}")
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "sending to {destination} through the {} scheduler on {device}",
            socket.scheduler()
        );
        let shared = Arc::new(Shared {
            socket: RwLock::new(socket),
            destination,
            device,
            link_rate: AtomicU64::new(link_rate.unwrap_or(0)),
            full_packet_bits,
            counters: Mutex::new(Counters::default()),
        });
        *lock(&self.feedback) = Feedback::new(&settings);
        *lock(&self.stats) = gst::Structure::new_empty("qsocksink-stats");
        *lock(&self.estimated_bitrate) = 0;
        *lock(&self.pushing_back) = false;
        let feedback = self.spawn_feedback(Arc::clone(&shared))?;
        *lock(&self.state) = State::Started(Box::new(Started {
            shared,
            classifier: None,
            assembler: FrameAssembler::default(),
            warned_unclassified: false,
            feedback: Some(feedback),
            monotonic_clock: None,
        }));
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *lock(&self.state));
        let State::Started(mut started) = state else {
            return Ok(());
        };
        if let Some(feedback) = started.feedback.take() {
            drop(feedback.stop);
            if feedback.thread.join().is_err() {
                gst::warning!(CAT, imp = self, "the feedback thread panicked");
            }
        }
        let shared = started.shared;
        match Arc::try_unwrap(shared) {
            Ok(shared) => {
                let socket = shared
                    .socket
                    .into_inner()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                socket.close().map_err(|err| {
                    gst::error_msg!(gst::ResourceError::Close, ("closing the qsocket: {err}"))
                })?;
            }
            Err(_) => gst::warning!(CAT, imp = self, "the socket is still in use at stop"),
        }
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let format = match payload_format(caps) {
            Ok(format) => format,
            Err(message) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{message}"));
                return Err(gst::loggable_error!(CAT, "{message}"));
            }
        };
        let mut state = lock(&self.state);
        let State::Started(started) = &mut *state else {
            return Err(gst::loggable_error!(CAT, "caps before start"));
        };
        if started.classifier.as_ref().map(Classifier::format) != Some(format) {
            gst::debug!(CAT, imp = self, "payload format {format:?}");
            started.classifier = Some(Classifier::new(format));
            started.assembler.set_format(format);
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.render_buffers(std::slice::from_ref(buffer))
    }

    fn render_list(&self, list: &gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        let buffers: Vec<gst::Buffer> = list.iter_owned().collect();
        self.render_buffers(&buffers)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                // The last frame has no successor to close it.
                if let Err(err) = self.drain() {
                    gst::debug!(CAT, imp = self, "draining at EOS: {err:?}");
                }
                // The interval since the last report would otherwise go
                // unreported; this one precedes the EOS message.
                let shared = match &*lock(&self.state) {
                    State::Started(started) => Some(Arc::clone(&started.shared)),
                    State::Stopped => None,
                };
                if let Some(shared) = shared {
                    self.report(&shared, true);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let State::Started(started) = &mut *lock(&self.state) {
                    started.assembler.clear();
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(true);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(false);
        Ok(())
    }
}

/// Why a min-bitrate above max-bitrate is refused, and the fix.
fn bitrate_limits_error(min: u64, max: u64) -> String {
    format!(
        "min-bitrate {min} is above max-bitrate {max}: give min-bitrate <= max-bitrate (to raise \
         both while playing, raise max-bitrate first; to lower both, lower min-bitrate first)"
    )
}

/// Whether this process may install qdiscs: CAP_NET_ADMIN in its effective
/// set (`CapEff` in /proc/self/status). Without it, each backend fails on the
/// first thing it checks, which need not be the privilege (a device without
/// a known speed fails htb before it asks the kernel).
fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let mask = line.strip_prefix("CapEff:")?.trim();
                u64::from_str_radix(mask, 16).ok()
            })
        })
        .is_some_and(|mask| mask & (1 << CAP_NET_ADMIN) != 0)
}

/// Whether `err` is a device that does not report its speed, which only a
/// link rate fixes.
fn lacks_speed(err: &qsock::Error) -> bool {
    err.kind() == ErrorKind::InvalidInput && err.message().contains("speed")
}

/// What a user can do when a kernel scheduler cannot be installed.
fn install_fix(err: &qsock::Error, settings: &Settings, device: &str) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => "run as root (or with CAP_NET_ADMIN) to install it, or set \
                                        scheduler=user, which needs no privilege"
            .to_string(),
        ErrorKind::Busy => format!(
            "remove the other root qdisc first (`tc qdisc del dev {device} root`), or set \
             scheduler=user"
        ),
        _ if lacks_speed(err) => {
            "set the link-rate property (e.g. link-rate=100mbit) so that it can be installed"
                .to_string()
        }
        _ if !settings.link_rate.is_empty() => format!(
            "check link-rate={}: the scheduler is installed at that rate, and the kernel refuses \
             rates it cannot shape (give the link's real rate, e.g. link-rate=100mbit)",
            settings.link_rate
        ),
        _ => "check the device and the scheduler's module (`qsockctl init` says the same)"
            .to_string(),
    }
}

fn passed_over_reasons(passed_over: &[(SchedulerName, qsock::Error)]) -> String {
    passed_over
        .iter()
        .map(|(scheduler, err)| format!("{scheduler}: {err}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one warning `scheduler=auto` posts when it falls back to the user
/// scheduler: what it wanted, why each kernel scheduler was passed over, and
/// what would give it one.
fn fallback_warning(
    device: &str,
    passed_over: &[(SchedulerName, qsock::Error)],
    settings: &Settings,
) -> String {
    let privileged = has_net_admin();
    let mut fixes = Vec::new();
    let mut add = |fix: String| {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    };
    if !privileged
        || passed_over
            .iter()
            .any(|(_, err)| err.kind() == ErrorKind::PermissionDenied)
    {
        add("run the pipeline as root or with CAP_NET_ADMIN".to_string());
    }
    for (scheduler, err) in passed_over {
        match err.kind() {
            ErrorKind::PermissionDenied => {}
            ErrorKind::Busy => add(format!(
                "remove the root qdisc an administrator put on {device} (`tc qdisc del dev \
                 {device} root`) if qsock may replace it"
            )),
            _ if lacks_speed(err) => add(format!(
                "set link-rate (e.g. link-rate=100mbit), as {device} does not report its speed"
            )),
            _ if *scheduler == SchedulerName::Dwcs => {
                add("load sch_dwcs (`modprobe sch_dwcs`) for dwcs".to_string())
            }
            _ => add(install_fix(err, settings, device)),
        }
    }
    let privilege = if privileged {
        ""
    } else {
        "this process lacks CAP_NET_ADMIN, which installing a kernel scheduler needs; "
    };
    format!(
        "scheduler=auto wanted a kernel scheduler (dwcs, else htb) on {device} but uses the user \
         scheduler, which cannot hold back other processes' traffic: {privilege}{}. To have a \
         kernel scheduler: {}; or set scheduler=user to choose the user scheduler without this \
         warning",
        passed_over_reasons(passed_over),
        fixes.join("; ")
    )
}

/// The `bind-address` property as an address, if one is given.
fn bind_address(settings: &Settings) -> Result<Option<IpAddr>, gst::ErrorMessage> {
    if settings.bind_address.is_empty() {
        return Ok(None);
    }
    settings.bind_address.parse().map(Some).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            (
                "bind-address {:?} is not an IP address: give one of this host's addresses, or \
                 leave it empty",
                settings.bind_address
            )
        )
    })
}

fn family(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// The address `host` resolves to; with a `bind_address`, the first of its
/// family, as a socket bound to it can send to no other.
fn resolve_destination(
    settings: &Settings,
    bind_address: Option<IpAddr>,
) -> Result<SocketAddr, gst::ErrorMessage> {
    let port = u16::try_from(settings.port).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            ("port {} is out of range: give 1 to 65535", settings.port)
        )
    })?;
    let addresses: Vec<SocketAddr> = (settings.host.as_str(), port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    let Some(&first) = addresses.first() else {
        return Err(gst::error_msg!(
            gst::ResourceError::NotFound,
            (
                "cannot resolve host {:?}: give an IP address or a name this host can resolve",
                settings.host
            )
        ));
    };
    let Some(bind_address) = bind_address else {
        return Ok(first);
    };
    addresses
        .iter()
        .find(|address| address.is_ipv4() == bind_address.is_ipv4())
        .copied()
        .ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "bind-address {bind_address} is an {} address but host {:?} is {} ({}): a \
                     socket sends only within one family. Give a bind-address of the host's \
                     family, or leave it empty",
                    family(bind_address),
                    settings.host,
                    family(first.ip()),
                    first.ip()
                )
            )
        })
}

/// Why a fixed `ipg` may ask more than the link carries: the sink cannot
/// know its packets' sizes before they arrive, so the scheduler sizes the
/// stream for the device's full packets.
fn full_packet_period_hint(
    settings: &Settings,
    device: &str,
    link_rate: Option<u64>,
    full_packet_bits: u64,
) -> String {
    let mtu = qsock::device_mtu(device).map_or_else(|_| "its".to_string(), |mtu| mtu.to_string());
    let shortest = LinkLimits {
        rate: link_rate,
        full_packet_bits,
    }
    .full_packet_time()
    .map_or_else(String::new, |time| {
        format!(" (at least {} µs here)", time.as_micros().max(1))
    });
    format!(
        ". qsocksink gives the scheduler no packet size, as it learns its packets' sizes only \
         as they arrive, so ipg={} µs is one full packet of {device}'s {mtu}-byte MTU (plus its \
         link header) per period. Lengthen ipg{shortest}, or set ipg=0 to let the sink derive it",
        settings.ipg_us
    )
}

impl QSockSink {
    /// The scheduler to attach to: the installed one when it is what was
    /// asked for (or `auto` was), else what `qsockinit` installs now. `auto`
    /// installs the first kernel scheduler that works, else the user
    /// scheduler, and then says once why and how to have a kernel one.
    fn prepare_scheduler(
        &self,
        settings: &Settings,
        device: &str,
    ) -> Result<SchedulerName, gst::ErrorMessage> {
        let wanted = settings.scheduler.name();
        // Read even when the device has a scheduler already: a rate no
        // scheduler can take is refused, not ignored until it matters.
        let link_rate = (!settings.link_rate.is_empty())
            .then(|| settings.link_rate.parse::<Rate>())
            .transpose()
            .map_err(|err| gst::error_msg!(gst::ResourceError::Settings, ("link-rate: {err}")))?;
        let installed = qsock::report(device)
            .ok()
            .and_then(|report| report.scheduler);
        match installed {
            Some(installed) if wanted == SchedulerName::Auto || wanted == installed => {
                gst::info!(
                    CAT,
                    imp = self,
                    "{device} already has the {installed} scheduler"
                );
                return Ok(installed);
            }
            _ => {}
        }
        let mut init = InitParams::new(device, wanted);
        if let Some(rate) = link_rate {
            init = init.with_link_rate(rate);
        }
        init.validate().map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("cannot install a scheduler on {device}: {err}")
            )
        })?;
        if wanted != SchedulerName::Auto {
            return match qsock::qsockinit(&init) {
                Ok(report) => Ok(self.installed(&report)),
                Err(err) => Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    (
                        "cannot use the {wanted} scheduler on {device}: {err}; {}; or set \
                         scheduler=auto, which falls back to the user scheduler",
                        install_fix(&err, settings, device)
                    )
                )),
            };
        }
        let mut passed_over = Vec::new();
        for kernel in [SchedulerName::Dwcs, SchedulerName::Htb] {
            let attempt = InitParams {
                scheduler: kernel,
                ..init.clone()
            };
            match qsock::qsockinit(&attempt) {
                Ok(report) => return Ok(self.installed(&report)),
                Err(err) => passed_over.push((kernel, err)),
            }
        }
        let user = InitParams {
            scheduler: SchedulerName::User,
            ..init
        };
        let report = qsock::qsockinit(&user).map_err(|user_err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "no scheduler works on {device}: {}; and the user scheduler: {user_err}",
                    passed_over_reasons(&passed_over)
                )
            )
        })?;
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Settings,
            ("{}", fallback_warning(device, &passed_over, settings))
        );
        Ok(report.scheduler)
    }

    /// Says what `qsockinit` did; a kernel scheduler installed now outlives
    /// the pipeline, so the bus hears how to remove it.
    fn installed(&self, report: &qsock::InitReport) -> SchedulerName {
        let device = &report.device;
        let message = format!(
            "installed the {} scheduler on {device}: {}",
            report.scheduler, report.reason
        );
        gst::info!(CAT, imp = self, "{message}");
        if report.installed_now && report.scheduler != SchedulerName::User {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("{message}. It stays after the pipeline ends; `qsockctl reset --dev {device}` \
                  removes it")
            );
        }
        report.scheduler
    }

    /// Classifies the buffers and sends every frame they complete.
    fn render_buffers(&self, buffers: &[gst::Buffer]) -> Result<gst::FlowSuccess, gst::FlowError> {
        let send_settings = lock(&self.settings).send_settings();
        let mut complete = Vec::new();
        let mut first_failure = None;
        let shared = {
            let mut state = lock(&self.state);
            let State::Started(started) = &mut *state else {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("not started"));
                return Err(gst::FlowError::Error);
            };
            let Some(classifier) = started.classifier.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("a buffer arrived before caps: the payloader must send caps first")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let format = classifier.format();
            for buffer in buffers {
                let map = buffer.map_readable().map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("cannot read a buffer's memory")
                    );
                    gst::FlowError::Error
                })?;
                let (info, classified) = match classifier.inspect(&map) {
                    Ok(info) => (info, true),
                    Err(err) => {
                        first_failure.get_or_insert(err);
                        let timestamp = buffer.dts_or_pts().map(gst::ClockTime::nseconds);
                        (fallback_info(format, &map, timestamp), false)
                    }
                };
                drop(map);
                gst::trace!(CAT, imp = self, "packet {info:?}");
                started
                    .assembler
                    .push(buffer.clone(), &info, classified, &mut complete);
            }
            if let Some(err) = first_failure.take() {
                if !started.warned_unclassified {
                    started.warned_unclassified = true;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("cannot tell frame types ({err}): such packets are sent \
                             non-droppable, grouped by RTP timestamp and marker (MPEG-TS: by \
                             buffer timestamp)")
                    );
                }
            }
            Arc::clone(&started.shared)
        };
        for frame in complete {
            self.send(&shared, frame, send_settings)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Sends the frame still being collected (at EOS).
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let send_settings = lock(&self.settings).send_settings();
        let (shared, frame) = {
            let mut state = lock(&self.state);
            let State::Started(started) = &mut *state else {
                return Ok(gst::FlowSuccess::Ok);
            };
            (Arc::clone(&started.shared), started.assembler.drain())
        };
        match frame {
            Some(frame) => self.send(&shared, frame, send_settings),
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    /// One `send_frame` for the frame, then `continue_frame` for whatever the
    /// scheduler pushed back, waiting in between until it takes the rest.
    /// A droppable frame is given up once its deadline has passed; a
    /// non-droppable one is waited for until the sink is flushed.
    fn send(
        &self,
        shared: &Shared,
        frame: Frame<gst::Buffer>,
        send_settings: SendSettings,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(first) = frame.packets.first() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let deadline = self.deadline(first, send_settings.latency_budget);
        if send_settings.derives_ipg {
            self.fit_period_to_frame(shared, frame.packets.len(), deadline);
        }
        let drop_flag = frame.drop_flag(send_settings.droppable);
        let flags = PacketFlags {
            drop: drop_flag,
            deadline: Some(deadline),
            frame_start: true,
        };
        let frame_type = frame.counted_type();
        let maps = frame
            .packets
            .iter()
            .map(|buffer| buffer.map_readable())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("cannot read a buffer's memory")
                );
                gst::FlowError::Error
            })?;
        let packets: Vec<&[u8]> = maps.iter().map(|map| map.as_slice()).collect();
        let running_time = self.running_time(first);
        let mut sent = 0;
        let mut wait = MIN_PUSH_BACK_WAIT;
        let mut waited = false;
        let outcome = loop {
            let result = {
                let socket = shared.socket();
                if sent == 0 {
                    lock(&shared.counters).send_frame_calls += 1;
                    socket.send_frame(&packets, Some(&shared.destination), &flags)
                } else {
                    socket.continue_frame(&packets[sent..], Some(&shared.destination), &flags)
                }
            };
            match result {
                Ok(accepted) => {
                    sent += accepted;
                    if accepted > 0 {
                        wait = MIN_PUSH_BACK_WAIT;
                    }
                }
                Err(err) if err.kind() == ErrorKind::QueueFull => {}
                Err(err) => {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("sending to {}: {err}", shared.destination)
                    );
                    break Err(gst::FlowError::Error);
                }
            }
            if sent >= packets.len() {
                break Ok(gst::FlowSuccess::Ok);
            }
            if drop_flag == DropFlag::Droppable
                && qsock::monotonic_now() > deadline.as_monotonic_nanos()
            {
                let given_up = (packets.len() - sent) as u64;
                lock(&shared.counters).sink_dropped[frame_type.index()] += given_up;
                gst::debug!(
                    CAT,
                    imp = self,
                    "gave up {given_up} packets of a late droppable frame"
                );
                break Ok(gst::FlowSuccess::Ok);
            }
            if !waited {
                waited = true;
                self.push_back_started(shared, frame_type, packets.len() - sent);
            }
            lock(&shared.counters).push_back_waits += 1;
            if !self.flushing.wait(wait) {
                gst::debug!(CAT, imp = self, "flushing while waiting for the scheduler");
                break Err(gst::FlowError::Flushing);
            }
            wait = (wait * 2).min(MAX_PUSH_BACK_WAIT);
        };
        *lock(&self.pushing_back) = waited;
        let mut counters = lock(&shared.counters);
        let index = frame_type.index();
        counters.frames[index] += 1;
        counters.packets[index] += packets.len() as u64;
        counters.offered_packets += packets.len() as u64;
        counters.largest_frame_packets = counters.largest_frame_packets.max(packets.len() as u64);
        if let Some(pts) = first.pts() {
            if let Some(previous) = counters.last_frame_pts {
                if pts > previous {
                    counters.frame_interval_sum_ns += (pts - previous).nseconds();
                    counters.frame_intervals += 1;
                }
            }
            counters.last_frame_pts = Some(pts);
        }
        if running_time.is_some() {
            counters.last_running_time = running_time;
        }
        drop(counters);
        gst::trace!(
            CAT,
            imp = self,
            "frame of {} packets, {frame_type:?}, {drop_flag:?}, deadline {}",
            packets.len(),
            deadline.as_monotonic_nanos()
        );
        outcome
    }

    /// Shortens the stream's period at once when a frame of `packets`
    /// packets, one period apart, could not all leave by `deadline`: the
    /// first I-frame, before the feedback thread has measured any, or a
    /// frame far larger than the recent ones. The period never goes below a
    /// full packet's time on the link. The feedback thread's next
    /// derivation counts this frame among the largest, so the room stays
    /// while such frames keep coming.
    fn fit_period_to_frame(&self, shared: &Shared, packets: usize, deadline: Deadline) {
        let current = shared.socket().params().stream;
        let Ok(packets) = u32::try_from(packets) else {
            return;
        };
        if current.kind != qsock::StreamKind::Periodic || packets == 0 {
            return;
        }
        let left = deadline
            .as_monotonic_nanos()
            .saturating_sub(qsock::monotonic_now());
        let fitted = period_to_fit(Duration::from_nanos(left), packets, shared.link_limits());
        if fitted.as_secs_f64() >= current.ipg.as_secs_f64() * (1.0 - IPG_CHANGE_THRESHOLD) {
            return;
        }
        let wanted = StreamParams {
            ipg: fitted,
            ..current
        };
        // A failure here repeats in the feedback thread's next change, which
        // says so on the bus.
        match shared.change_stream(wanted) {
            Ok(()) => gst::debug!(
                CAT,
                imp = self,
                "period {:?} -> {fitted:?} for a frame of {packets} packets",
                current.ipg
            ),
            Err(err) => gst::debug!(CAT, imp = self, "cannot shorten the period: {err}"),
        }
    }

    /// Says on the bus that the scheduler pushed back, once per episode.
    fn push_back_started(&self, shared: &Shared, frame_type: FrameType, waiting: usize) {
        if *lock(&self.pushing_back) {
            return;
        }
        gst::debug!(
            CAT,
            imp = self,
            "push-back: {waiting} packets wait for room"
        );
        let structure = gst::Structure::builder("qsocksink-push-back")
            .field("frame-type", FrameType::name(frame_type))
            .field("packets-waiting", waiting as u64)
            .field("device", shared.device.as_str())
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    fn running_time(&self, buffer: &gst::Buffer) -> Option<gst::ClockTime> {
        let timestamp = buffer.dts_or_pts()?;
        let segment = self.obj().segment();
        let segment = segment.downcast_ref::<gst::format::Time>()?;
        segment.to_running_time(timestamp)
    }

    /// The frame's clock time (base time plus the running time of its DTS,
    /// else PTS, plus the pipeline's latency) plus the budget, on
    /// CLOCK_MONOTONIC. A buffer without timestamps, or a sink without a
    /// clock, gets now plus the budget.
    fn deadline(&self, first: &gst::Buffer, budget: Duration) -> Deadline {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let now = qsock::monotonic_now();
        let obj = self.obj();
        // A live pipeline renders a frame at its running time plus the
        // latency upstream elements declared (mpeg2enc declares over a
        // second): the budget starts there, or every frame would be late.
        let latency = obj.latency();
        let clock_time = self
            .running_time(first)
            .zip(obj.base_time())
            .map(|(running_time, base_time)| running_time + base_time + latency);
        let monotonic = match (clock_time, obj.clock()) {
            (Some(clock_time), Some(clock)) => {
                if self.clock_is_monotonic(&clock) {
                    clock_time.nseconds()
                } else {
                    // Another clock: map through the offset between the two now.
                    let offset = i128::from(now) - i128::from(clock.time().nseconds());
                    u64::try_from(i128::from(clock_time.nseconds()) + offset).unwrap_or(0)
                }
            }
            _ => now,
        };
        gst::log!(
            CAT,
            imp = self,
            "frame at the sink {:.1} ms after its clock time (latency {latency})",
            (i128::from(now) - i128::from(monotonic)) as f64 / 1e6
        );
        Deadline::from_monotonic_nanos(monotonic.saturating_add(budget))
    }

    /// GStreamer's system clock reads CLOCK_MONOTONIC unless told otherwise.
    fn clock_is_monotonic(&self, clock: &gst::Clock) -> bool {
        let mut state = lock(&self.state);
        let State::Started(started) = &mut *state else {
            return false;
        };
        if let Some((known, monotonic)) = &started.monotonic_clock {
            if known == clock {
                return *monotonic;
            }
        }
        let monotonic = clock
            .downcast_ref::<gst::SystemClock>()
            .is_some_and(|system| {
                system.property::<gst::ClockType>("clock-type") == gst::ClockType::Monotonic
            });
        started.monotonic_clock = Some((clock.clone(), monotonic));
        monotonic
    }

    fn spawn_feedback(&self, shared: Arc<Shared>) -> Result<FeedbackThread, gst::ErrorMessage> {
        let (stop, stopped) = mpsc::channel::<()>();
        let element = self.obj().downgrade();
        let thread = std::thread::Builder::new()
            .name("qsocksink-qos".into())
            .spawn(move || loop {
                let interval = match element.upgrade() {
                    Some(element) => {
                        let imp = element.imp();
                        Duration::from_millis(u64::from(lock(&imp.settings).qos_interval_ms))
                    }
                    None => return,
                };
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                if let Some(element) = element.upgrade() {
                    element.imp().report(&shared, false);
                }
            })
            .map_err(|err| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("cannot start the feedback thread: {err}")
                )
            })?;
        Ok(FeedbackThread { stop, thread })
    }

    /// One feedback interval: read qinfo, tell upstream and the bus, update
    /// the estimate, steer the encoder and the stream's period.
    fn report(&self, shared: &Shared, end_of_stream: bool) {
        let settings = lock(&self.settings).clone();
        // One report at a time: the one at EOS may meet the thread's.
        let mut feedback = lock(&self.feedback);
        let info = match shared.socket().info() {
            Ok(info) => info,
            Err(err) => {
                if !feedback.warned {
                    feedback.warned = true;
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Read,
                        ("cannot read the scheduler's statistics: {err}")
                    );
                }
                return;
            }
        };
        let counters = *lock(&shared.counters);
        let previous = feedback.previous_counters;
        let previous_info = feedback.previous_info.clone();
        let since = |now: u64, before: Option<u64>| now.saturating_sub(before.unwrap_or(0));
        let offered = counters.offered_packets - previous.offered_packets;
        let late_or_lost = since(
            info.stats.deadline_misses,
            previous_info.as_ref().map(|p| p.stats.deadline_misses),
        ) + since(
            info.stats.dropped.queue_full,
            previous_info.as_ref().map(|p| p.stats.dropped.queue_full),
        ) + (counters.sink_dropped_total() - previous.sink_dropped_total());
        let observation = Observation {
            offered_packets: offered,
            sent_packets: since(
                info.stats.sent_packets,
                previous_info.as_ref().map(|p| p.stats.sent_packets),
            ),
            late_or_lost_packets: late_or_lost,
            queue_delay_mean: interval_delay(previous_info.as_ref(), &info),
            delivered_bps: info.delivered_rate.map(Rate::bits_per_second),
            frame_interval: self.frame_interval(&mut feedback, &counters),
        };
        // The encoder's setting is a better start than the delivered rate,
        // which is only what the source happened to offer.
        if feedback.controller.estimate().is_none() {
            if let Some(bps) = self.encoder_bitrate(&mut feedback, settings.adapt_bitrate) {
                feedback.controller.seed(bps);
            }
        }
        feedback.controller.update(&observation);
        let estimate = feedback.controller.estimate().unwrap_or(0);
        if settings.adapt_bitrate && estimate > 0 && feedback.applied_bitrate != Some(estimate) {
            self.set_encoder_bitrate(&mut feedback, estimate);
        }
        let ipg = self.apply_ipg(&settings, shared, &mut feedback, &counters, &previous);
        feedback.previous_counters = counters;
        feedback.previous_info = Some(info.clone());
        drop(feedback);

        let mut stats = stats_structure(shared, &info, &counters, &observation, estimate, ipg);
        if end_of_stream {
            stats.set("end-of-stream", true);
        }
        *lock(&self.stats) = stats.clone();
        let obj = self.obj();
        let previous_estimate = std::mem::replace(&mut *lock(&self.estimated_bitrate), estimate);
        if previous_estimate != estimate {
            obj.notify("estimated-bitrate");
        }
        let _ = obj.post_message(gst::message::Element::builder(stats).src(&*obj).build());
        if let Some(share) = observation.on_time_share() {
            let diff = observation
                .queue_delay_mean
                .map_or(0, |mean| i64::try_from(mean.as_nanos()).unwrap_or(i64::MAX));
            let event = gst::event::Qos::new(
                gst::QOSType::Overflow,
                share,
                diff,
                counters.last_running_time,
            );
            if !obj.sink_pad().push_event(event) {
                gst::trace!(CAT, imp = self, "upstream did not handle the QoS event");
            }
        }
    }

    /// The stream's period when the `ipg` property leaves it to the sink:
    /// the frame interval (upstream framerate, else measured) over the
    /// packets per frame, with headroom; applied with `qchange` when it moved.
    /// Returns the period in force.
    fn apply_ipg(
        &self,
        settings: &Settings,
        shared: &Shared,
        feedback: &mut Feedback,
        counters: &Counters,
        previous: &Counters,
    ) -> Option<Duration> {
        let current = shared.socket().params().stream;
        let frames = counters.frames_total() - previous.frames_total();
        let largest = std::mem::take(&mut lock(&shared.counters).largest_frame_packets);
        if feedback.largest_frames.len() == LARGEST_FRAME_INTERVALS {
            feedback.largest_frames.pop_front();
        }
        feedback.largest_frames.push_back(largest);
        // Read each time: qsockinit may change it under a running stream
        // (the classes are refitted).
        shared.link_rate.store(
            link_rate_of(&shared.device).0.unwrap_or(0),
            Ordering::Relaxed,
        );
        let derived = if settings.ipg_us == 0 && frames > 0 {
            let interval = self.frame_interval(feedback, counters);
            let packets = counters.offered_packets - previous.offered_packets;
            interval
                .filter(|interval| !interval.is_zero())
                .map(|interval| {
                    derived_ipg(DerivedIpg {
                        frame_interval: interval,
                        packets_per_frame: packets as f64 / frames as f64,
                        largest_frame_packets: feedback
                            .largest_frames
                            .iter()
                            .copied()
                            .max()
                            .unwrap_or(0),
                        latency_budget: settings.latency_budget(),
                        link: shared.link_limits(),
                    })
                })
        } else {
            None
        };
        let current_ipg = (current.kind == qsock::StreamKind::Periodic).then_some(current.ipg);
        let derived = match (derived, current_ipg) {
            (Some(new), Some(old)) if settings.ipg_us == 0 => {
                let moved = (new.as_secs_f64() - old.as_secs_f64()).abs() / old.as_secs_f64();
                if moved > IPG_CHANGE_THRESHOLD {
                    Some(new)
                } else {
                    Some(old)
                }
            }
            (derived, _) => derived,
        };
        let wanted =
            settings.stream_params(derived.or(current_ipg.filter(|_| settings.ipg_us == 0)));
        if wanted != current {
            match shared.change_stream(wanted) {
                Ok(()) => gst::debug!(CAT, imp = self, "stream now {wanted:?}"),
                Err(err) => {
                    if !feedback.warned {
                        feedback.warned = true;
                        let why = if settings.ipg_us > 0 && err.kind() == ErrorKind::InvalidInput {
                            let link = shared.link_limits();
                            full_packet_period_hint(
                                settings,
                                &shared.device,
                                link.rate,
                                link.full_packet_bits,
                            )
                        } else {
                            String::new()
                        };
                        gst::element_imp_warning!(
                            self,
                            gst::ResourceError::Settings,
                            ("cannot change the stream to {wanted:?}: {err} (properties ipg, \
                                 loss-numerator, loss-denominator, lossless){why}")
                        );
                    }
                }
            }
        }
        let stream = shared.socket().params().stream;
        (stream.kind == qsock::StreamKind::Periodic).then_some(stream.ipg)
    }

    /// Time between frames: the upstream framerate, else the measured PTS
    /// spacing.
    fn frame_interval(&self, feedback: &mut Feedback, counters: &Counters) -> Option<Duration> {
        if feedback.upstream_frame_interval.is_none() {
            feedback.upstream_frame_interval = self.upstream_frame_interval();
        }
        let measured = (counters.frame_intervals > 0).then(|| {
            Duration::from_nanos(counters.frame_interval_sum_ns / counters.frame_intervals)
        });
        feedback.upstream_frame_interval.or(measured)
    }

    /// The framerate of the nearest upstream caps that have one.
    fn upstream_frame_interval(&self) -> Option<Duration> {
        upstream_elements(self.obj().sink_pad())
            .iter()
            .flat_map(|element| element.sink_pads())
            .filter_map(|pad| pad.current_caps())
            .find_map(|caps| {
                let framerate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
                (framerate.numer() > 0 && framerate.denom() > 0).then(|| {
                    Duration::from_nanos(
                        1_000_000_000 * framerate.denom() as u64 / framerate.numer() as u64,
                    )
                })
            })
    }

    /// The nearest upstream encoder with a known bitrate property, and its
    /// current bitrate in bits per second.
    fn encoder_bitrate(&self, feedback: &mut Feedback, adapting: bool) -> Option<u64> {
        let (encoder, unit) = self.encoder(feedback, adapting)?;
        let units = read_unsigned(&encoder, unit.property)?;
        Some(unit.to_bps(units))
    }

    /// The encoder found upstream; `adapting` says whether its absence is
    /// worth a warning.
    fn encoder(
        &self,
        feedback: &mut Feedback,
        adapting: bool,
    ) -> Option<(gst::Element, EncoderBitrate)> {
        if let Some((weak, unit)) = &feedback.encoder {
            if let Some(encoder) = weak.upgrade() {
                return Some((encoder, *unit));
            }
        }
        if feedback.encoder_searched && feedback.encoder.is_none() {
            return None;
        }
        feedback.encoder_searched = true;
        let found = upstream_elements(self.obj().sink_pad())
            .into_iter()
            .find_map(|element| {
                let factory = element.factory()?;
                if !factory
                    .metadata(gst::ELEMENT_METADATA_KLASS)?
                    .contains("Encoder")
                {
                    return None;
                }
                let unit = encoder_bitrate(factory.name().as_str())?;
                element.find_property(unit.property)?;
                Some((element, unit))
            });
        match &found {
            Some((encoder, _)) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "adapting the bitrate of {}",
                    encoder.name()
                )
            }
            None if !adapting => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "no upstream encoder with a known bitrate unit"
                )
            }
            None => gst::element_imp_warning!(
                self,
                gst::CoreError::Negotiation,
                ("adapt-bitrate: no upstream encoder whose bitrate unit is known (x264enc, \
                     x265enc, openh264enc, vp8enc, vp9enc, avenc_*, mpeg2enc); estimated-bitrate \
                     is still reported")
            ),
        }
        feedback.encoder = found
            .as_ref()
            .map(|(encoder, unit)| (encoder.downgrade(), *unit));
        found
    }

    fn set_encoder_bitrate(&self, feedback: &mut Feedback, bps: u64) {
        let Some((encoder, unit)) = self.encoder(feedback, true) else {
            return;
        };
        let units = unit.to_units(bps);
        if write_unsigned(&encoder, unit.property, units) {
            gst::debug!(
                CAT,
                imp = self,
                "{}::{} = {units} ({bps} bit/s)",
                encoder.name(),
                unit.property
            );
            feedback.applied_bitrate = Some(bps);
        }
    }
}

/// Elements upstream of `pad`, nearest first.
fn upstream_elements(pad: &gst::Pad) -> Vec<gst::Element> {
    let mut found: Vec<gst::Element> = Vec::new();
    let mut pads = std::collections::VecDeque::from([pad.clone()]);
    while let Some(pad) = pads.pop_front() {
        if found.len() >= MAX_UPSTREAM_ELEMENTS {
            break;
        }
        let Some(element) = pad.peer().and_then(|peer| peer.parent_element()) else {
            continue;
        };
        if found.contains(&element) {
            continue;
        }
        pads.extend(element.sink_pads());
        found.push(element);
    }
    found
}

/// An integer property as u64, whatever its integer type.
fn read_unsigned(element: &gst::Element, property: &str) -> Option<u64> {
    let value = element.property_value(property);
    value
        .get::<u32>()
        .map(u64::from)
        .ok()
        .or_else(|| value.get::<i32>().ok().and_then(|v| u64::try_from(v).ok()))
        .or_else(|| value.get::<u64>().ok())
        .or_else(|| value.get::<i64>().ok().and_then(|v| u64::try_from(v).ok()))
}

/// Sets an integer property from a u64, clamped to what the property allows.
fn write_unsigned(element: &gst::Element, property: &str, units: u64) -> bool {
    let Some(pspec) = element.find_property(property) else {
        return false;
    };
    let value = if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        let clamped = units.clamp(u64::from(spec.minimum()), u64::from(spec.maximum()));
        u32::try_from(clamped).unwrap_or(u32::MAX).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        let clamped = i64::try_from(units)
            .unwrap_or(i64::MAX)
            .clamp(i64::from(spec.minimum()), i64::from(spec.maximum()));
        i32::try_from(clamped).unwrap_or(i32::MAX).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        units.clamp(spec.minimum(), spec.maximum()).to_value()
    } else if let Some(spec) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        i64::try_from(units)
            .unwrap_or(i64::MAX)
            .clamp(spec.minimum(), spec.maximum())
            .to_value()
    } else {
        return false;
    };
    element.set_property_from_value(property, &value);
    true
}

/// The mean queueing delay of the packets sent since `previous`, from the
/// scheduler's running mean.
fn interval_delay(previous: Option<&QInfo>, info: &QInfo) -> Option<Duration> {
    let now = info.stats.queue_delay?;
    let before = previous.and_then(|previous| {
        let delay = previous.stats.queue_delay?;
        Some((delay.mean, previous.stats.sent_packets))
    });
    interval_mean_delay(before, (now.mean, info.stats.sent_packets))
}

fn stats_structure(
    shared: &Shared,
    info: &QInfo,
    counters: &Counters,
    observation: &Observation,
    estimated_bitrate: u64,
    ipg: Option<Duration>,
) -> gst::Structure {
    let mut builder = gst::Structure::builder("qsocksink-stats")
        .field("scheduler", info.scheduler.as_str())
        .field("device", shared.device.as_str());
    for frame_type in FrameType::ALL {
        let index = frame_type.index();
        let name = FrameType::name(frame_type);
        builder = builder
            .field(format!("frames-{name}"), counters.frames[index])
            .field(format!("packets-{name}"), counters.packets[index])
            .field(format!("sink-dropped-{name}"), counters.sink_dropped[index]);
    }
    let stats = &info.stats;
    builder = builder
        .field("send-frame-calls", counters.send_frame_calls)
        .field("push-back-waits", counters.push_back_waits)
        .field("sent-packets", stats.sent_packets)
        .field("sent-bytes", stats.sent_bytes)
        .field("dropped-late", stats.dropped.late)
        .field("dropped-window", stats.dropped.window)
        .field("dropped-frame", stats.dropped.frame)
        .field("dropped-queue-full", stats.dropped.queue_full)
        .field("deadline-misses", stats.deadline_misses)
        .field("window-violations", stats.window_violations)
        .field("backlog-packets", stats.backlog_packets)
        .field(
            "delivered-bitrate",
            info.delivered_rate.map_or(0, Rate::bits_per_second),
        )
        .field("estimated-bitrate", estimated_bitrate)
        .field(
            "ipg-us",
            ipg.map_or(0, |ipg| u64::try_from(ipg.as_micros()).unwrap_or(u64::MAX)),
        );
    if let Some(delay) = stats.queue_delay {
        builder = builder
            .field(
                "queue-delay-mean-us",
                u64::try_from(delay.mean.as_micros()).unwrap_or(u64::MAX),
            )
            .field(
                "queue-delay-max-us",
                u64::try_from(delay.max.as_micros()).unwrap_or(u64::MAX),
            );
    }
    if let Some(share) = observation.on_time_share() {
        builder = builder.field("on-time-share", share);
    }
    if let Some(delay) = observation.queue_delay_mean {
        builder = builder.field(
            "queue-delay-interval-us",
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
        );
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link of `rate` bit/s with Ethernet's MTU.
    fn ethernet(rate: Option<u64>) -> LinkLimits {
        LinkLimits {
            rate,
            full_packet_bits: 1600 * 8,
        }
    }

    fn video(largest_frame_packets: u64, link_rate: Option<u64>) -> DerivedIpg {
        // 25 fps, 4 packets a frame on average, 100 ms of latency budget.
        DerivedIpg {
            frame_interval: Duration::from_millis(40),
            packets_per_frame: 4.0,
            largest_frame_packets,
            latency_budget: Duration::from_millis(100),
            link: ethernet(link_rate),
        }
    }

    #[test]
    fn a_derived_period_carries_the_mean_rate_with_headroom() {
        // 40 ms / (4 * 1.25) = 8 ms; the largest frame (4 packets) would
        // allow 25 ms.
        assert_eq!(derived_ipg(video(4, None)), Duration::from_millis(8));
    }

    #[test]
    fn a_derived_period_lets_the_largest_frame_leave_within_the_budget() {
        // A 40-packet intra frame must leave in 100 ms: 2.5 ms a packet.
        assert_eq!(derived_ipg(video(40, None)), Duration::from_micros(2500));
    }

    #[test]
    fn a_derived_period_never_asks_for_more_than_the_link() {
        // At 4 Mbit/s a full packet takes 3.2 ms: 2.5 ms would be refused.
        assert_eq!(
            derived_ipg(video(40, Some(4_000_000))),
            Duration::from_micros(3200)
        );
    }

    #[test]
    fn a_frame_is_fitted_into_the_time_left_down_to_the_link() {
        // 30 packets with 60 ms left: one every 2 ms.
        let left = Duration::from_millis(60);
        assert_eq!(
            period_to_fit(left, 30, ethernet(None)),
            Duration::from_millis(2)
        );
        assert_eq!(
            period_to_fit(left, 30, ethernet(Some(10_000_000))),
            Duration::from_millis(2)
        );
        // At 4 Mbit/s no packet leaves faster than every 3.2 ms.
        assert_eq!(
            period_to_fit(left, 30, ethernet(Some(4_000_000))),
            Duration::from_micros(3200)
        );
        // Already late: as fast as the link goes.
        assert_eq!(
            period_to_fit(Duration::ZERO, 30, ethernet(Some(4_000_000))),
            Duration::from_micros(3200)
        );
    }

    #[test]
    fn a_stream_starts_at_half_the_link_for_the_devices_full_packets() {
        // Ethernet at 10 Mbit/s: 1600 bytes every 2.56 ms.
        assert_eq!(
            starting_ipg(ethernet(Some(10_000_000)), None),
            Duration::from_micros(2560)
        );
        // Half of what other streams left: 5 Mbit/s of 10 are free.
        assert_eq!(
            starting_ipg(ethernet(Some(10_000_000)), Some(5_000_000)),
            Duration::from_micros(5120)
        );
        // Loopback's 64 KiB MTU at 10 Gbit/s: a class sized for its full
        // packets every 50 µs would need 10.5 Gbit/s, more than the link.
        let loopback = LinkLimits {
            rate: Some(10_000_000_000),
            full_packet_bits: (65_536 + 100) * 8,
        };
        assert_eq!(starting_ipg(loopback, None), Duration::from_nanos(105_016));
        assert_eq!(starting_ipg(ethernet(None), None), Duration::from_millis(1));
    }
}
