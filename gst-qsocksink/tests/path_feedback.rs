//! qsocksink over a path whose bottleneck is beyond the host: sender →
//! router → receiver, the router's link to the receiver a token bucket of
//! 1.5 Mbit/s with a deep queue, as a home router's uplink is. The encoder
//! starts above the router's rate, on busy content, and the receiver is a
//! stock GStreamer receiver (rtpsession, AVPF) that sends RTCP back.
//!
//! Needs root (namespaces); without it each test prints why and passes.
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once

use std::time::{Duration, Instant};

use gst::prelude::*;
use qsock::SchedulerName;
use qsock_frame::FrameType;
use qsock_media::{FrameArrival, FrameLoss, NamespacePipeline, Receiver, TWCC_URI};
use qsock_testbed::{BulkTransfer, TestBed};

mod plugin;

/// The router's rate toward the receiver.
const ROUTER_BPS: u64 = 1_500_000;
const PORT: u16 = 5004;
const FPS: u32 = 25;
/// The payloader's SSRC, which the receiver's RTCP names.
const SSRC: u32 = 0x5150_0001;
const QOS_INTERVAL_MS: u32 = 500;

fn routed_bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: path_feedback needs root to build network namespaces");
        return None;
    }
    plugin::init();
    qsock_media::init(gstqsocksink::plugin_register_static).unwrap();
    Some(TestBed::routed().unwrap())
}

/// The sender: x264 on snow at `start_kbit`, qsocksink on htb adapting the
/// encoder to its estimate.
/// How the sender is built.
#[derive(Debug, Clone, Copy)]
struct SenderSpec<'a> {
    start_kbit: u32,
    /// More qsocksink properties.
    sink_extra: &'a str,
    /// An rtpbin between the payloader and the sink, exchanging the RTCP on
    /// port + 1 itself, as webrtc-like applications have.
    through_rtpbin: bool,
    /// The payloader numbers packets with the transport-wide header
    /// extension (id 1), for a receiver that answers with TWCC feedback.
    transport_wide: bool,
}

impl SenderSpec<'_> {
    fn starting_at(start_kbit: u32) -> SenderSpec<'static> {
        SenderSpec {
            start_kbit,
            sink_extra: "",
            through_rtpbin: false,
            transport_wide: false,
        }
    }
}

/// The sender: x264 on snow at its start bitrate, qsocksink on htb
/// adapting the encoder to its estimate.
fn start_sender(bed: &TestBed, spec: SenderSpec<'_>) -> NamespacePipeline {
    let (receiver, sender) = (bed.receiver_v4(), bed.sender_v4());
    let SenderSpec {
        start_kbit,
        sink_extra,
        through_rtpbin,
        transport_wide,
    } = spec;
    let numbered = if transport_wide {
        format!(" auto-header-extension=true ! application/x-rtp,extmap-1=(string){TWCC_URI}")
    } else {
        String::new()
    };
    let sink = format!(
        "qsocksink name=sink host={receiver} port={PORT} device={} scheduler=htb \
         link-rate=100mbit adapt-bitrate=true qos-interval={QOS_INTERVAL_MS} \
         min-bitrate=200000 max-bitrate=4000000 {sink_extra}",
        bed.sender_dev()
    );
    let (into_sink, session) = if through_rtpbin {
        let rtcp_port = PORT + 1;
        (
            format!("rtpbin.send_rtp_sink_0 rtpbin.send_rtp_src_0 ! {sink}"),
            format!(
                "rtpbin name=rtpbin rtp-profile=avpf \
                 rtpbin.send_rtcp_src_0 ! udpsink host={receiver} port={rtcp_port} sync=false \
                 async=false \
                 udpsrc address={sender} port={rtcp_port} ! rtpbin.recv_rtcp_sink_0"
            ),
        )
    } else {
        (sink, String::new())
    };
    let description = format!(
        "{session} videotestsrc is-live=true pattern=snow \
         ! video/x-raw,width=640,height=360,framerate={FPS}/1 \
         ! x264enc name=encoder tune=zerolatency speed-preset=ultrafast threads=1 \
           bitrate={start_kbit} key-int-max={FPS} \
         ! video/x-h264,stream-format=byte-stream \
         ! rtph264pay name=payloader config-interval=-1 mtu=1200 ssrc={SSRC}{numbered} ! {into_sink}"
    );
    let sender = NamespacePipeline::launch(&description, bed.sender_ns()).unwrap();
    bed.run_in_sender(|| sender.pipeline().set_state(gst::State::Playing))
        .unwrap()
        .unwrap_or_else(|err| panic!("the sender does not start: {err}: {:?}", sender.check()));
    sender
}

fn stop(bed: &TestBed, pipeline: NamespacePipeline) {
    let element = pipeline.pipeline().clone();
    bed.run_in_sender(move || element.set_state(gst::State::Null))
        .unwrap()
        .unwrap();
}

/// A `qsocksink-stats` report, when it came.
#[derive(Debug, Clone)]
struct Report {
    at: Duration,
    stats: gst::Structure,
}

impl Report {
    fn get(&self, field: &str) -> u64 {
        self.stats.get::<u64>(field).unwrap_or(0)
    }
}

/// The sender's reports and warnings until `length` has passed; fails on
/// an error.
fn collect(
    sender: &NamespacePipeline,
    epoch: Instant,
    length: Duration,
) -> (Vec<Report>, Vec<String>) {
    let bus = sender.pipeline().bus().unwrap();
    let (mut reports, mut warnings) = (Vec::new(), Vec::new());
    let until = epoch + length;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Some(message) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
        else {
            break;
        };
        match message.view() {
            gst::MessageView::Error(error) => panic!("the sender failed: {error:?}"),
            gst::MessageView::Warning(warning) => warnings.push(warning.error().to_string()),
            gst::MessageView::Element(element) => {
                if let Some(stats) = element
                    .structure()
                    .filter(|s| s.name() == "qsocksink-stats")
                {
                    reports.push(Report {
                        at: epoch.elapsed(),
                        stats: stats.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    (reports, warnings)
}

fn print(reports: &[Report]) {
    for report in reports {
        eprintln!(
            "{:5.1} s estimate {:>8} sent {:>8} encoder {:>8} link {:>9} signal {:<15} lost {:.3} \
             rtt {:>6} us reports {}",
            report.at.as_secs_f64(),
            report.get("estimated-bitrate"),
            report.get("delivered-bitrate"),
            report.get("encoder-bitrate"),
            report.get("link-rate"),
            report
                .stats
                .get::<String>("estimate-signal")
                .unwrap_or_default(),
            report
                .stats
                .get::<f64>("receiver-fraction-lost")
                .unwrap_or(0.0),
            report.get("round-trip-us"),
            report.get("receiver-reports"),
        );
    }
}

/// What one run of the bed saw.
struct PathRun {
    reports: Vec<Report>,
    warnings: Vec<String>,
    frames: Vec<FrameArrival>,
    losses: Vec<FrameLoss>,
}

/// Streams for `length` from the sender `spec` builds to a stock receiver
/// that sends RTCP.
fn run_path(bed: &TestBed, spec: SenderSpec<'_>, length: Duration) -> PathRun {
    let epoch = Instant::now();
    let receiver = if spec.transport_wide {
        Receiver::reporting_transport_wide(bed, SchedulerName::Htb, PORT, FPS, epoch)
    } else {
        Receiver::reporting(bed, SchedulerName::Htb, PORT, FPS, epoch)
    }
    .unwrap();
    let sender = start_sender(bed, spec);
    let (reports, warnings) = collect(&sender, epoch, length);
    stop(bed, sender);
    let frames = receiver.frames();
    let losses = receiver.losses();
    receiver.stop().unwrap();
    print(&reports);
    PathRun {
        reports,
        warnings,
        frames,
        losses,
    }
}

/// Drops every datagram the receiver sends to the sender's RTCP port, as a
/// firewall would: the receiver's own device classifies them into a class
/// whose queue holds nothing.
fn block_receiver_rtcp(bed: &TestBed) {
    let device = bed.receiver_dev().to_string();
    let rtcp_port = (PORT + 1).to_string();
    let commands: [&[&str]; 4] = [
        &[
            "qdisc", "add", "dev", &device, "root", "handle", "1:", "htb", "default", "1",
        ],
        &[
            "class", "add", "dev", &device, "parent", "1:", "classid", "1:1", "htb", "rate",
            "1gbit", "quantum", "60000",
        ],
        &[
            "class", "add", "dev", &device, "parent", "1:", "classid", "1:2", "htb", "rate",
            "8kbit",
        ],
        &[
            "qdisc", "add", "dev", &device, "parent", "1:2", "pfifo", "limit", "0",
        ],
    ];
    for args in commands {
        run_in_receiver(bed, "tc", args);
    }
    run_in_receiver(
        bed,
        "tc",
        &[
            "filter", "add", "dev", &device, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", &rtcp_port, "0xffff",
            "flowid", "1:2",
        ],
    );
}

fn run_in_receiver(bed: &TestBed, program: &str, args: &[&str]) {
    let output = bed.command_in_receiver(program, args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn without_the_receivers_reports_the_estimate_holds_and_the_sink_says_how_to_send_them() {
    let Some(bed) = routed_bed() else { return };
    bed.set_router_bottleneck("1500kbit", "15k", "300ms")
        .unwrap();
    block_receiver_rtcp(&bed);
    // Below the router's rate: the host's queue stays clear throughout,
    // which is no evidence that more would get through.
    let run = run_path(&bed, SenderSpec::starting_at(1000), Duration::from_secs(10));
    let highest = run
        .reports
        .iter()
        .map(|report| report.get("estimated-bitrate"))
        .max()
        .unwrap_or(0);
    assert!(
        (1..=1_000_000).contains(&highest),
        "the estimate went to {highest} bit/s without a report from the receiver"
    );
    let last = run.reports.last().unwrap();
    assert_eq!(last.get("receiver-reports"), 0, "{}", last.stats);
    let warning = run
        .warnings
        .iter()
        .find(|warning| warning.contains("adapt-bitrate"))
        .unwrap_or_else(|| panic!("no warning about the missing reports: {:?}", run.warnings));
    qsock_testbed::assert_mentions(
        warning,
        &["holds", "rtcp-port", "pipelines/h264-rtp-receive-rtcp.sh"],
    );
    assert_eq!(
        run.warnings
            .iter()
            .filter(|warning| warning.contains("adapt-bitrate"))
            .count(),
        1,
        "{:?}",
        run.warnings
    );
    // The stream itself got through.
    assert!(
        run.frames.len() > 150,
        "{} frames arrived",
        run.frames.len()
    );
}

/// From `settled` to `until` the receiver lost no I-frame and decoded at
/// least 90 % of the frame rate.
fn assert_decodes_after(run: &PathRun, settled: Duration, until: Duration) {
    let intra_lost: Vec<_> = run
        .losses
        .iter()
        .filter(|loss| loss.noticed > settled && loss.frame_type == FrameType::Intra)
        .collect();
    assert!(
        intra_lost.is_empty(),
        "I-frames lost after {settled:?}: {intra_lost:?}"
    );
    let span = until.saturating_sub(settled).as_secs_f64();
    let decodable = run
        .frames
        .iter()
        .filter(|frame| frame.decodable && frame.arrived > settled && frame.arrived <= until)
        .count() as f64;
    eprintln!(
        "decodable {:.1} fps from {settled:?} to {until:?}; losses {:?}",
        decodable / span,
        run.losses
    );
    assert!(
        decodable / span >= 0.9 * f64::from(FPS),
        "only {:.1} decodable fps from {settled:?} to {until:?}",
        decodable / span
    );
}

#[test]
fn with_bulk_traffic_from_the_host_shape_link_keeps_the_queue_in_the_host() {
    let Some(bed) = routed_bed() else { return };
    bed.set_router_bottleneck("1500kbit", "15k", "300ms")
        .unwrap();
    // TCP from the sender's host keeps the router's queue full.
    let bulk = BulkTransfer::start(&bed, 5201).unwrap();
    let spec = SenderSpec {
        sink_extra: "shape-link=true",
        ..SenderSpec::starting_at(1200)
    };
    let run = run_path(&bed, spec, Duration::from_secs(25));
    let bulk_bytes = bulk.stop().unwrap();
    eprintln!("bulk TCP carried {bulk_bytes} bytes");
    assert!(bulk_bytes > 0, "the bulk transfer carried nothing");
    // The host's link follows the estimate: the router's queue drains and
    // the stream keeps its rate in the host's scheduler.
    let shaped_at = run
        .reports
        .iter()
        .find(|report| (1..=2 * ROUTER_BPS).contains(&report.get("link-rate")))
        .map(|report| report.at);
    eprintln!("the host's link shaped from {shaped_at:?}");
    assert!(
        shaped_at.is_some_and(|at| at <= Duration::from_secs(6)),
        "the host's link was not shaped near the path's rate within 6 s"
    );
    assert_decodes_after(&run, Duration::from_secs(8), Duration::from_secs(24));
    // The link rate is given back at stop.
    let link = bed
        .run_in_sender(|| qsock::report(bed.sender_dev()))
        .unwrap()
        .unwrap()
        .link_rate
        .map(qsock::Rate::bits_per_second);
    assert_eq!(link, Some(100_000_000), "the link rate after stop");
}

#[test]
fn the_estimate_falls_below_the_routers_rate_and_no_i_frame_is_lost_after() {
    let Some(bed) = routed_bed() else { return };
    bed.set_router_bottleneck("1500kbit", "15k", "300ms")
        .unwrap();
    let run = run_path(&bed, SenderSpec::starting_at(2500), Duration::from_secs(25));
    let reports = &run.reports;

    let fell = reports
        .iter()
        .find(|report| report.get("estimated-bitrate") < ROUTER_BPS)
        .unwrap_or_else(|| panic!("the estimate never fell below the router's 1.5 Mbit/s"));
    eprintln!("below the router's rate at {:.1} s", fell.at.as_secs_f64());
    assert!(
        fell.at <= Duration::from_secs(5),
        "the estimate fell at {:?}",
        fell.at
    );
    // After a second to drain the queue the router built meanwhile.
    let settled = fell.at + Duration::from_secs(2);
    assert_decodes_after(&run, settled, Duration::from_secs(20));
    let last = reports.last().unwrap();
    assert!(last.get("receiver-reports") > 10, "{}", last.stats);
    // The estimate probes around the router's rate: a little above it
    // until the queue it builds shows in the round trip, then cut below.
    // The encoder is asked for what makes it send the estimate, so the
    // stream reaches the router's rate when the estimate does.
    let mut settled_estimates: Vec<f64> = reports
        .iter()
        .filter(|report| report.at > settled)
        .map(|report| report.get("estimated-bitrate") as f64 / ROUTER_BPS as f64)
        .collect();
    settled_estimates.sort_by(f64::total_cmp);
    let median = settled_estimates[settled_estimates.len() / 2];
    let highest = settled_estimates.last().copied().unwrap_or(0.0);
    eprintln!(
        "estimate / router's rate after {settled:?}: median {median:.2}, highest {highest:.2}"
    );
    assert!(
        (0.7..=1.0).contains(&median),
        "the estimate's median is {median:.2} of the router's rate"
    );
    assert!(
        highest <= 1.15,
        "the estimate rose to {highest:.2} of the router's rate"
    );
}

#[test]
fn with_rtpbin_upstream_the_sink_reads_the_receivers_reports_from_the_session() {
    let Some(bed) = routed_bed() else { return };
    bed.set_router_bottleneck("1500kbit", "15k", "300ms")
        .unwrap();
    // rtpbin holds port + 1 for the RTCP: a sink listening there too would
    // fail to start.
    let spec = SenderSpec {
        through_rtpbin: true,
        ..SenderSpec::starting_at(2500)
    };
    let run = run_path(&bed, spec, Duration::from_secs(15));
    let last = run.reports.last().unwrap();
    assert!(last.get("receiver-reports") > 5, "{}", last.stats);
    let fell = run
        .reports
        .iter()
        .find(|report| report.get("estimated-bitrate") < ROUTER_BPS)
        .map(|report| report.at);
    assert!(
        fell.is_some_and(|at| at <= Duration::from_secs(5)),
        "the estimate fell below the router's rate at {fell:?}"
    );
    assert_decodes_after(&run, Duration::from_secs(8), Duration::from_secs(14));
}

#[test]
fn with_transport_wide_feedback_the_sink_measures_the_routers_queue_and_cuts_below_its_rate() {
    let Some(bed) = routed_bed() else { return };
    bed.set_router_bottleneck("1500kbit", "15k", "300ms")
        .unwrap();
    let spec = SenderSpec {
        transport_wide: true,
        ..SenderSpec::starting_at(2500)
    };
    let run = run_path(&bed, spec, Duration::from_secs(15));
    let last = run.reports.last().unwrap();
    // rtpsession answers every 100 ms or so.
    assert!(last.get("transport-wide-feedback") > 50, "{}", last.stats);
    assert_eq!(last.get("rtcp-ignored-malformed"), 0, "{}", last.stats);
    // Each packet's departure from the sender's device is read back, so
    // the wait in the host's own HTB class is not counted as the path's:
    // all but those sent before the caps named the extension.
    let (departures, sent) = (last.get("departure-times"), last.get("sent-packets"));
    assert!(
        departures * 10 >= sent * 9 && departures <= sent,
        "{departures} departure times of {sent} packets: {}",
        last.stats
    );
    // The encoder starts above the router's rate, and the estimate then
    // probes it: a queue stands in the router, each packet's one-way delay
    // shows it, and after the cut it drains. (At the very start the
    // router's queue may be in the least delay seen so far, and the
    // receiver's losses show the overload first.)
    let queues: Vec<(Duration, u64)> = run
        .reports
        .iter()
        .filter(|report| report.stats.has_field("standing-queue-us"))
        .map(|report| (report.at, report.get("standing-queue-us")))
        .collect();
    let Some(&(stood_at, _)) = queues.iter().find(|&&(_, queue)| queue > 10_000) else {
        panic!("no standing queue over 10 ms: {queues:?}");
    };
    assert!(
        queues
            .iter()
            .any(|&(at, queue)| at > stood_at && queue < 2_000),
        "the standing queue never drained after {stood_at:?}: {queues:?}"
    );
    let fell = run
        .reports
        .iter()
        .find(|report| report.get("estimated-bitrate") < ROUTER_BPS)
        .unwrap_or_else(|| panic!("the estimate never fell below the router's 1.5 Mbit/s"));
    eprintln!("below the router's rate at {:.1} s", fell.at.as_secs_f64());
    assert!(fell.at <= Duration::from_secs(5), "fell at {:?}", fell.at);
    assert_decodes_after(
        &run,
        fell.at + Duration::from_secs(2),
        Duration::from_secs(14),
    );
}
