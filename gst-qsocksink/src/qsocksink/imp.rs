//! The `qsocksink` element: frames in, one `send_frame` per frame out, and
//! the scheduler's figures back upstream and on the bus.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use parking_lot::Mutex;
use qsock::{ErrorKind, QosParams};
use socket2::Domain;

use super::destination::{bind_address, egress_device, resolve_destination};
use super::feedback::{Feedback, FeedbackThread, Reported};
use super::frames::FrameAssembler;
use super::period::{self, full_packet_period_hint, LinkLimits, StreamPeriod};
use super::receiver_feedback::{ReceiverFeedbackThread, ReceiverView};
use super::run::{Counters, Run};
use super::sender::Flushing;
use super::session_reports::SessionReports;
use super::settings::*;
use super::transport_wide::{self, TransportWide};
use qsock_frame::{Classifier, PayloadFormat};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "qsocksink",
        gst::DebugColorFlags::empty(),
        Some("QSocket sink"),
    )
});

/// One run of the sink, from start to stop.
#[derive(Debug)]
pub(super) struct Started {
    /// What the streaming and the feedback thread share.
    pub run: Arc<Run>,
    /// The settings the streaming thread uses, kept here so that a frame
    /// takes one lock.
    pub send_settings: SendSettings,
    pub classifier: Option<Classifier>,
    pub assembler: FrameAssembler<gst::Buffer>,
    pub warned_unclassified: bool,
    pub feedback: Option<FeedbackThread>,
    /// Listens for the receiver's RTCP; stops when dropped.
    pub receiver_feedback: Option<ReceiverFeedbackThread>,
    /// The pipeline clock, and whether it runs on CLOCK_MONOTONIC.
    pub monotonic_clock: Option<(gst::Clock, bool)>,
}

#[derive(Debug)]
pub(super) enum State {
    /// Not started; holds the last run's report for the `stats` and
    /// `estimated-bitrate` properties.
    Stopped(Reported),
    Started(Box<Started>),
}

impl Default for State {
    fn default() -> Self {
        State::Stopped(Reported::default())
    }
}

/// The element.
#[derive(Debug)]
pub struct QSockSink {
    pub(super) settings: Mutex<Settings>,
    pub(super) state: Mutex<State>,
    pub(super) flushing: Flushing,
}

impl Default for QSockSink {
    fn default() -> Self {
        QSockSink {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
            flushing: Flushing::default(),
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
                glib::ParamSpecUInt::builder("bind-port")
                    .nick("Bind port")
                    .blurb(
                        "Local UDP port to send from, where a receiver multiplexing RTCP \
                         (RFC 5761) sends it (0: the kernel picks one)",
                    )
                    .maximum(u32::from(u16::MAX))
                    .default_value(DEFAULT_BIND_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("shape-link")
                    .nick("Shape the link")
                    .blurb(
                        "Set the device's link rate a tenth above the path's estimate (once \
                         the receiver reports), so that the queue forms in this host's \
                         scheduler, with the stream guaranteed and other traffic behind it, \
                         not in a router further on; for a device whose traffic all crosses \
                         this path, by one sink; restored at stop",
                    )
                    .default_value(DEFAULT_SHAPE_LINK)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("receiver-feedback")
                    .nick("Receiver feedback")
                    .blurb(
                        "Read the receiver's RTCP (reports, PLI, FIR) on rtcp-port and on the \
                         sink's own port, and send sender reports to the receiver's port + 1",
                    )
                    .default_value(DEFAULT_RECEIVER_FEEDBACK)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("rtcp-port")
                    .nick("RTCP port")
                    .blurb(
                        "UDP port the sink listens on for the receiver's RTCP (0: port + 1); \
                         sender reports go to the receiver's port + 1",
                    )
                    .maximum(u32::from(u16::MAX))
                    .default_value(DEFAULT_RTCP_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("key-unit-interval")
                    .nick("Key unit interval")
                    .blurb(
                        "Least time between two key-unit requests sent upstream for the \
                         receiver's PLI or FIR, in milliseconds",
                    )
                    .default_value(DEFAULT_KEY_UNIT_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut state = self.state.lock();
        let started = matches!(*state, State::Started(_));
        let mut settings = self.settings.lock();
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
            "bind-port" => settings.bind_port = value.get().unwrap_or(DEFAULT_BIND_PORT),
            "shape-link" => settings.shape_link = value.get().unwrap_or(DEFAULT_SHAPE_LINK),
            "receiver-feedback" => {
                settings.receiver_feedback = value.get().unwrap_or(DEFAULT_RECEIVER_FEEDBACK)
            }
            "rtcp-port" => settings.rtcp_port = value.get().unwrap_or(DEFAULT_RTCP_PORT),
            "key-unit-interval" => {
                settings.key_unit_interval_ms = value.get().unwrap_or(DEFAULT_KEY_UNIT_INTERVAL_MS)
            }
            other => gst::warning!(CAT, imp = self, "no writable property {other}"),
        }
        // Before start the pair may pass through any order of settings;
        // start refuses it. While running, the estimate must stay within
        // both at every moment, so a change that crosses them is refused.
        if started && settings.min_bitrate > settings.max_bitrate {
            let message = bitrate_limits_error(settings.min_bitrate, settings.max_bitrate);
            (settings.min_bitrate, settings.max_bitrate) = previous_limits;
            drop(settings);
            drop(state);
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
        if let State::Started(started) = &mut *state {
            started.send_settings = settings.send_settings();
            let (min, max) = (settings.min_bitrate, settings.max_bitrate);
            drop(settings);
            started.run.feedback.lock().controller.set_limits(min, max);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let "stats" | "estimated-bitrate" = pspec.name() {
            let state = self.state.lock();
            let started;
            let reported = match &*state {
                State::Stopped(reported) => reported,
                State::Started(run) => {
                    started = run.run.reported.lock();
                    &*started
                }
            };
            return match pspec.name() {
                "stats" => reported.stats.to_value(),
                _ => reported.estimated_bitrate.to_value(),
            };
        }
        let settings = self.settings.lock();
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
            "bind-port" => settings.bind_port.to_value(),
            "receiver-feedback" => settings.receiver_feedback.to_value(),
            "shape-link" => settings.shape_link.to_value(),
            "rtcp-port" => settings.rtcp_port.to_value(),
            "key-unit-interval" => settings.key_unit_interval_ms.to_value(),
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
        let settings = self.settings.lock().clone();
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
        let device = egress_device(&settings, destination)?;
        let stream = settings.stream_params(None);
        stream.validate().map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("{err} (properties ipg, loss-numerator, loss-denominator)")
            )
        })?;
        let scheduler = self.prepare_scheduler(&settings, &device)?;
        let (link, unreserved) = LinkLimits::of(&device);
        let stream = if settings.ipg_us == 0 {
            let starting = period::starting(link, unreserved);
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
        let socket = self
            .open_socket(&settings, domain, &params)
            .map_err(|err| {
                let why = if settings.ipg_us > 0 && err.kind() == ErrorKind::InvalidInput {
                    full_packet_period_hint(settings.ipg_us, &device, link)
                } else {
                    String::new()
                };
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("cannot attach a socket to the {scheduler} scheduler on {device}: {err}{why}")
                )
            })?;
        if bind_address.is_some() || settings.bind_port > 0 {
            let address = bind_address.unwrap_or(match destination {
                SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
                SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
            });
            let port = u16::try_from(settings.bind_port).unwrap_or(0);
            socket
                .socket()
                .bind(&SocketAddr::new(address, port).into())
                .map_err(|err| {
                    gst::error_msg!(
                        gst::ResourceError::OpenWrite,
                        ("cannot bind to {address} port {port}: {err}; is it an address of \
                             this host, and is the port (property bind-port) free?")
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
        let run = Arc::new(Run {
            period: StreamPeriod::new(socket, link),
            destination,
            device,
            counters: Mutex::new(Counters::default()),
            pushing_back: AtomicBool::new(false),
            feedback: Mutex::new(Feedback::new(&settings)),
            reported: Mutex::new(Reported::default()),
            receiver: Mutex::new(ReceiverView::default()),
            transport_wide_id: AtomicU8::new(0),
            transport_wide: Mutex::new(TransportWide::default()),
        });
        let session = settings
            .receiver_feedback
            .then(|| {
                SessionReports::upstream_of(gst_base::prelude::BaseSinkExtManual::sink_pad(
                    &*self.obj(),
                ))
            })
            .flatten();
        let receiver_feedback = if settings.receiver_feedback && session.is_none() {
            Some(self.listen_to_receiver(&settings, &run)?)
        } else {
            None
        };
        if session.is_some() {
            gst::info!(
                CAT,
                imp = self,
                "an RTP session upstream exchanges the RTCP: reading the receiver's reports \
                 from its statistics"
            );
            run.feedback.lock().session = session;
        }
        let feedback = self.spawn_feedback(Arc::clone(&run))?;
        *self.state.lock() = State::Started(Box::new(Started {
            run,
            send_settings: settings.send_settings(),
            classifier: None,
            assembler: FrameAssembler::default(),
            warned_unclassified: false,
            feedback: Some(feedback),
            receiver_feedback,
            monotonic_clock: None,
        }));
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock());
        let State::Started(mut started) = state else {
            *self.state.lock() = state;
            return Ok(());
        };
        drop(started.receiver_feedback.take());
        if let Some(feedback) = started.feedback.take() {
            drop(feedback.stop);
            if feedback.thread.join().is_err() {
                gst::warning!(CAT, imp = self, "the feedback thread panicked");
            }
        }
        let run = started.run;
        let scheduler = run.period.socket().scheduler();
        if let Err(err) = run.feedback.lock().link.restore(&run.device, scheduler) {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("shape-link: cannot give {} its link rate back: {err}; `qsockctl init --dev {} \
                  --scheduler {scheduler} --rate RATE` sets it", run.device, run.device)
            );
        }
        *self.state.lock() = State::Stopped(run.reported.lock().clone());
        match Arc::try_unwrap(run) {
            Ok(run) => {
                let socket = run.period.into_socket();
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
        let mut state = self.state.lock();
        let State::Started(started) = &mut *state else {
            return Err(gst::loggable_error!(CAT, "caps before start"));
        };
        let transport_wide = transport_wide::extension_id(caps).unwrap_or(0);
        if started
            .run
            .transport_wide_id
            .swap(transport_wide, Ordering::Relaxed)
            != transport_wide
        {
            gst::debug!(
                CAT,
                imp = self,
                "transport-wide sequence numbers in extension {transport_wide} (0: none)"
            );
        }
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
                let run = match &*self.state.lock() {
                    State::Started(started) => Some(Arc::clone(&started.run)),
                    State::Stopped(_) => None,
                };
                if let Some(run) = run {
                    self.report(&run, true);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let State::Started(started) = &mut *self.state.lock() {
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
