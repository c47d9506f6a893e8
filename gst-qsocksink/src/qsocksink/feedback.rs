//! The feedback thread: every qos-interval it reads the scheduler's
//! statistics, posts them, sends a QoS event upstream, steers the bitrate
//! estimate (and the encoder), and has the stream's period resized.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use qsock::{ErrorKind, QInfo, Rate, SchedulerName};

use super::bitrate::{
    interval_mean_delay, BitrateController, Observation, PathObservation, Signal,
};
use super::encoder::upstream_elements;
use super::encoder::UpstreamEncoder;
use super::imp::{QSockSink, CAT};
use super::link_shaping::LinkShaper;
use super::period::{full_packet_period_hint, Measured, Refused};
use super::receiver_feedback::{ReceiverView, VIDEO_CLOCK_RATE};
use super::rtcp::Refusal;
use super::run::{Counters, Run};
use super::session_reports::SessionReports;
use super::settings::Settings;
use super::transport_wide::TransportWide;
use qsock_frame::FrameType;

/// How long after the first frame the receiver's first report is due: a
/// receiver at RTCP's default minimum interval (5 s) has sent one by then.
const REPORTS_EXPECTED_WITHIN: Duration = Duration::from_secs(6);

/// The feedback thread, stopped by dropping `stop`.
#[derive(Debug)]
pub(super) struct FeedbackThread {
    pub stop: mpsc::Sender<()>,
    pub thread: JoinHandle<()>,
}

/// The latest report, read by the `stats` and `estimated-bitrate`
/// properties.
#[derive(Debug, Clone)]
pub(super) struct Reported {
    pub stats: gst::Structure,
    pub estimated_bitrate: u64,
}

impl Default for Reported {
    fn default() -> Self {
        Reported {
            stats: gst::Structure::new_empty("qsocksink-stats"),
            estimated_bitrate: 0,
        }
    }
}

/// What the feedback thread keeps between intervals.
#[derive(Debug)]
pub(super) struct Feedback {
    pub controller: BitrateController,
    previous_counters: Counters,
    previous_info: Option<QInfo>,
    upstream_frame_interval: Option<Duration>,
    encoder: UpstreamEncoder,
    warned: bool,
    /// When the first frame was counted: the receiver has had time to
    /// report some time after it.
    first_frame_at: Option<Instant>,
    warned_no_reports: bool,
    /// When the previous interval ended.
    previous_at: Option<Instant>,
    /// A report from the receiver has arrived.
    receiver_heard: bool,
    /// The device's link rate, where `shape-link` has the sink shape it.
    pub link: LinkShaper,
    /// An RTP session upstream, whose statistics carry the receiver's
    /// reports.
    pub session: Option<SessionReports>,
    warned_shaping: bool,
}

impl Feedback {
    pub fn new(settings: &Settings) -> Self {
        Feedback {
            controller: BitrateController::new(settings.min_bitrate, settings.max_bitrate),
            previous_counters: Counters::default(),
            previous_info: None,
            upstream_frame_interval: None,
            encoder: UpstreamEncoder::default(),
            warned: false,
            first_frame_at: None,
            warned_no_reports: false,
            previous_at: None,
            receiver_heard: false,
            link: LinkShaper::default(),
            session: None,
            warned_shaping: false,
        }
    }
}

impl QSockSink {
    /// Starts the thread that reports every qos-interval.
    pub(super) fn spawn_feedback(
        &self,
        run: Arc<Run>,
    ) -> Result<FeedbackThread, gst::ErrorMessage> {
        let (stop, stopped) = mpsc::channel::<()>();
        let element = self.obj().downgrade();
        let thread = std::thread::Builder::new()
            .name("qsocksink-qos".into())
            .spawn(move || loop {
                let interval = match element.upgrade() {
                    Some(element) => {
                        let imp = element.imp();
                        Duration::from_millis(u64::from(imp.settings.lock().qos_interval_ms))
                    }
                    None => return,
                };
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                if let Some(element) = element.upgrade() {
                    element.imp().report(&run, false);
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
    pub(super) fn report(&self, run: &Run, end_of_stream: bool) {
        let settings = self.settings.lock().clone();
        // One report at a time: the one at EOS may meet the thread's.
        let mut guard = run.feedback.lock();
        let feedback = &mut *guard;
        let info = match run.period.socket().info() {
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
        let counters = *run.counters.lock();
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
            frame_interval: self.frame_interval(feedback, &counters),
            path: self.path_observation(&settings, run, feedback, &counters, &info),
            length: feedback
                .previous_at
                .replace(Instant::now())
                .map_or(Duration::ZERO, |then| then.elapsed()),
            host_shaped: settings.shape_link && feedback.link.is_shaping(),
        };
        // The encoder's setting is a better start than the delivered rate,
        // which is only what the source happened to offer.
        if feedback.controller.estimate().is_none() {
            if let Some(bps) = feedback.encoder.bitrate(self, settings.adapt_bitrate) {
                feedback.controller.seed(bps);
            }
        }
        if let Some(changed) = feedback.controller.update(&observation) {
            gst::debug!(
                CAT,
                imp = self,
                "estimate {changed} bit/s ({}) from {observation:?}",
                feedback.controller.last_change().map_or("-", Signal::name)
            );
        }
        let estimate = feedback.controller.estimate().unwrap_or(0);
        if settings.adapt_bitrate && estimate > 0 {
            let output = Rate::of(
                counters.offered_bytes - feedback.previous_counters.offered_bytes,
                observation.length,
            )
            .map_or(0, Rate::bits_per_second);
            feedback.encoder.follow(
                self,
                estimate,
                (output, observation.length),
                settings.latency_budget(),
                observation.frame_interval,
            );
        }
        // The host's clear queue says nothing of the path: only a stream
        // whose receiver reports has an estimate of it to shape to.
        if settings.shape_link && feedback.receiver_heard {
            self.shape_link(run, feedback, &info, estimate);
        }
        let measured = observation
            .frame_interval
            .filter(|interval| !interval.is_zero());
        run.period.set_link_rate(info.link_rate);
        let ipg = self.adapt_period(&settings, run, feedback, &counters, measured);
        feedback.previous_counters = counters;
        feedback.previous_info = Some(info.clone());
        let signal = feedback.controller.last_change();
        let least_round_trip = feedback.controller.least_round_trip();
        let encoder_applied = feedback.encoder.applied();
        drop(guard);

        let mut stats = stats_structure(&run.device, &info, &counters, &observation, estimate, ipg);
        receiver_fields(&mut stats, &run.receiver.lock(), signal);
        transport_wide_fields(&mut stats, &run.transport_wide.lock());
        if let Some(least) = least_round_trip {
            stats.set(
                "least-round-trip-us",
                u64::try_from(least.as_micros()).unwrap_or(u64::MAX),
            );
        }
        if let Some((bps, share)) = encoder_applied {
            stats.set("encoder-bitrate", bps);
            if let Some(share) = share {
                stats.set("encoder-output-share", share);
            }
        }
        if end_of_stream {
            stats.set("end-of-stream", true);
        }
        let previous_estimate = {
            let mut reported = run.reported.lock();
            reported.stats = stats.clone();
            std::mem::replace(&mut reported.estimated_bitrate, estimate)
        };
        let obj = self.obj();
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

    /// Has the period owner size the stream for the interval (its period
    /// derived when the `ipg` property is 0) with the stream's other
    /// attributes. Returns the period in force.
    fn adapt_period(
        &self,
        settings: &Settings,
        run: &Run,
        feedback: &mut Feedback,
        counters: &Counters,
        frame_interval: Option<Duration>,
    ) -> Option<Duration> {
        let previous = &feedback.previous_counters;
        let frames = counters.frames_total() - previous.frames_total();
        let largest = std::mem::take(&mut run.counters.lock().largest_frame_packets);
        let derives = settings.ipg_us == 0;
        let measured = frame_interval
            .filter(|_| frames > 0)
            .map(|interval| Measured {
                frame_interval: interval,
                packets_per_frame: (counters.offered_packets - previous.offered_packets) as f64
                    / frames as f64,
                latency_budget: settings.latency_budget(),
            });
        let (period, refused) = run.period.adapt(measured, largest, derives, |ipg| {
            settings.stream_params(ipg)
        });
        if let Some(Refused { wanted, error }) = refused {
            if !feedback.warned {
                feedback.warned = true;
                let why = if settings.ipg_us > 0 && error.kind() == ErrorKind::InvalidInput {
                    full_packet_period_hint(settings.ipg_us, &run.device, run.period.link())
                } else {
                    String::new()
                };
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    ("cannot change the stream to {wanted:?}: {error} (properties ipg, \
                      loss-numerator, loss-denominator, lossless){why}")
                );
            }
        }
        period
    }

    /// What the receiver's reports showed since the last interval. Says
    /// once, when the sink adapts the bitrate, that without them the
    /// estimate cannot climb.
    fn path_observation(
        &self,
        settings: &Settings,
        run: &Run,
        feedback: &mut Feedback,
        counters: &Counters,
        info: &QInfo,
    ) -> Option<PathObservation> {
        if let Some(report) = feedback
            .session
            .as_mut()
            .and_then(SessionReports::next_report)
        {
            run.receiver.lock().report(report);
        }
        let (since, ever) = {
            let mut view = run.receiver.lock();
            (view.take_since(), view.reports > 0)
        };
        feedback.receiver_heard = ever;
        if counters.frames_total() > 0 && feedback.first_frame_at.is_none() {
            feedback.first_frame_at = Some(Instant::now());
        }
        let waited = feedback
            .first_frame_at
            .is_some_and(|first| first.elapsed() >= REPORTS_EXPECTED_WITHIN);
        if settings.adapt_bitrate && !ever && waited && !feedback.warned_no_reports {
            feedback.warned_no_reports = true;
            let why = if !settings.receiver_feedback {
                "receiver-feedback is off".to_string()
            } else if feedback.session.is_some() {
                "the RTP session upstream has had no receiver report about the stream".to_string()
            } else if counters.rtp.is_none() {
                "the stream is not RTP, and RTCP reports on RTP streams only".to_string()
            } else {
                format!(
                    "no RTCP receiver report about the stream arrived in {} s",
                    REPORTS_EXPECTED_WITHIN.as_secs()
                )
            };
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                ("adapt-bitrate: {why}, so estimated-bitrate holds at its start and only \
                     falls when the host's own queue overflows. Adaptation to the path \
                     needs the receiver's RTCP: receive with rtpbin (or rtpsession) and send \
                     its RTCP to this host's rtcp-port (port + 1 by default) or to the \
                     sink's own port (bind-port); pipelines/h264-rtp-receive-rtcp.sh does")
            );
        }
        // The receiver counts packets; what they weigh is what this host
        // sends on average.
        let packet_bits = (info.stats.sent_packets > 0)
            .then(|| info.stats.sent_bytes as f64 * 8.0 / info.stats.sent_packets as f64);
        let received_bps = since
            .received_packet_rate()
            .zip(packet_bits)
            .map(|(packets, bits)| (packets * bits) as u64);
        // Transport-wide feedback tells the rate and the losses per packet,
        // where receiver reports count them per report.
        let transport_wide = run.transport_wide.lock().take_interval();
        gst::debug!(
            CAT,
            imp = self,
            "transport-wide feedback: {transport_wide:?}"
        );
        let Some(transport_wide) = transport_wide else {
            return (since.reports > 0).then_some(PathObservation {
                fraction_lost: since.fraction_lost,
                round_trip: since.round_trip,
                received_bps,
                standing_queue: None,
                queue_at_end: None,
                standing_queue_beyond_the_host: false,
            });
        };
        // A receiver report counts as lost every number it did not get,
        // those the host's own scheduler dropped too; where departures are
        // read, the transport-wide share counts only packets that left.
        let fraction_lost = if transport_wide.beyond_the_host {
            transport_wide.lost_share
        } else {
            since.fraction_lost.max(transport_wide.lost_share)
        };
        Some(PathObservation {
            fraction_lost,
            round_trip: since.round_trip,
            received_bps: transport_wide.received_bps.or(received_bps),
            standing_queue: transport_wide.standing_queue,
            queue_at_end: transport_wide.queue_at_end,
            standing_queue_beyond_the_host: transport_wide.beyond_the_host,
        })
    }

    /// Sets the device's link rate just above the estimate; says once why
    /// when it cannot.
    fn shape_link(&self, run: &Run, feedback: &mut Feedback, info: &QInfo, estimate: u64) {
        // The user scheduler holds only this pipeline's packets: shaping it
        // would hold back none of the host's other traffic, only the stream.
        if info.scheduler == SchedulerName::User {
            if !feedback.warned_shaping {
                feedback.warned_shaping = true;
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "shape-link has no effect on the user scheduler, which carries only this \
                      pipeline's packets: the host's other traffic would not wait behind the \
                      stream. It needs a kernel scheduler on {} (scheduler=htb)",
                        run.device
                    )
                );
            }
            return;
        }
        match feedback
            .link
            .follow(&run.device, info.scheduler, info.link_rate, estimate)
        {
            Ok(Some(change)) => gst::info!(
                CAT,
                imp = self,
                "shape-link: {}'s link rate {:?} -> {} bit/s",
                run.device,
                change.from,
                change.to
            ),
            Ok(None) => {}
            Err(err) if !feedback.warned_shaping => {
                feedback.warned_shaping = true;
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "shape-link: cannot set {}'s link rate to follow the path's estimate: \
                         {err}. The path's queue stays in the router; shaping needs the \
                         privilege to install the {} scheduler (CAP_NET_ADMIN), or set \
                         shape-link=false",
                        run.device,
                        info.scheduler
                    )
                );
            }
            Err(_) => {}
        }
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

/// The receiver's view in the `qsocksink-stats` structure, and what drove
/// the estimate's last change.
fn receiver_fields(stats: &mut gst::Structure, view: &ReceiverView, signal: Option<Signal>) {
    stats.set("receiver-reports", view.reports);
    if let Some((at, report)) = view.latest {
        stats.set("receiver-fraction-lost", report.fraction_lost);
        stats.set("receiver-cumulative-lost", report.cumulative_lost);
        stats.set(
            "receiver-jitter-us",
            u64::from(report.jitter_ticks) * 1_000_000 / VIDEO_CLOCK_RATE,
        );
        stats.set(
            "receiver-report-age-ms",
            u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        if let Some(round_trip) = report.round_trip {
            stats.set(
                "round-trip-us",
                u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX),
            );
        }
    }
    for refusal in Refusal::ALL {
        stats.set(
            format!("rtcp-ignored-{}", refusal.name()),
            view.ignored[refusal.index()],
        );
    }
    stats.set("key-unit-requests", view.key_unit_requests);
    stats.set("key-units-asked", view.key_units_asked);
    stats.set("sender-reports", view.sender_reports);
    stats.set("estimate-signal", signal.map_or("none", Signal::name));
}

/// What the receiver's transport-wide feedback showed, in the
/// `qsocksink-stats` structure.
fn transport_wide_fields(stats: &mut gst::Structure, transport_wide: &TransportWide) {
    stats.set("transport-wide-feedback", transport_wide.feedback_total);
    stats.set("departure-times", transport_wide.departures_total);
    if let Some(queue) = transport_wide.latest_standing_queue {
        stats.set(
            "standing-queue-us",
            u64::try_from(queue.as_micros()).unwrap_or(u64::MAX),
        );
    }
}

/// The `qsocksink-stats` structure of one report.
fn stats_structure(
    device: &str,
    info: &QInfo,
    counters: &Counters,
    observation: &Observation,
    estimated_bitrate: u64,
    ipg: Option<Duration>,
) -> gst::Structure {
    let mut builder = gst::Structure::builder("qsocksink-stats")
        .field("scheduler", info.scheduler.as_str())
        .field("device", device);
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
        .field("link-rate", info.link_rate.map_or(0, Rate::bits_per_second))
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
