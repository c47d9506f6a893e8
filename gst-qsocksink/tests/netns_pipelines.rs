//! qsocksink end to end: live video from a real encoder crosses a bottleneck
//! between two network namespaces while a bulk TCP transfer fills it, and a
//! real receiver (jitter buffer, depayloader, decoder) and ffprobe judge what
//! arrived. The same encoded stream goes at the same time through a plain
//! udpsink, the control: what qsocksink delivers must be every I-frame, with
//! losses only among droppable frames, and the control must lose I-frames,
//! or the test has not shown anything.
//!
//! Needs root (namespaces, qdiscs); without it each test prints why it
//! skips. The `dwcs` test runs where the sch_dwcs module is loaded (the VM
//! runner, kmod-dwcs/test/guest_rust.sh, sets `QSOCK_EXPECT_DWCS=1`, and then
//! a missing module fails it); elsewhere it skips.
//!
//! Every run prints what was sent and received per sink, for quoting:
//! `cargo test --release -p gst-qsocksink --test netns_pipelines -- --nocapture`.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod media_run;
mod plugin;

use std::time::{Duration, Instant};

use media_run::{Format, NetworkSink, Report, Run, SinkReport, WorkDir};
use parking_lot::{Mutex, MutexGuard};
use qsock::{qsockinit, InitParams, Rate, SchedulerName};
use qsock_testbed::{BulkTransfer, TestBed};

/// The bottleneck every test sends across.
const LINK_KBIT: u64 = 4000;
/// The video's target bitrate: two copies of it (qsocksink's and the
/// control's) fit the link with room to spare, so that what the control loses
/// it loses to the TCP transfer, not to its twin.
const VIDEO_KBIT: u32 = 1000;
/// The video's target bitrate on `user`, where it crosses the bottleneck
/// alone: its I-frames are then larger than the TBF's queue.
const USER_VIDEO_KBIT: u32 = 2500;
/// 12 s of video: twelve I-frames a run.
const FRAMES: u32 = 300;
/// The receivers' playout delay, a live stream's usual 200 ms.
const PLAYOUT_DELAY_MS: u64 = 200;
/// qsocksink's deadline for a frame to leave, after its clock time.
const LATENCY_BUDGET_MS: u64 = 100;
/// The bulk transfer runs this long before the video starts, so that its
/// queue already stands at the bottleneck.
const BULK_HEAD_START_BYTES: u64 = 1_000_000;

const MANAGED_PORT: u16 = 5004;
const CONTROL_PORT: u16 = 5006;
const BULK_PORT: u16 = 5201;

/// Runs take turns: two encoders and two TCP transfers on the same two cores
/// would measure the CPU, not the schedulers.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
}

/// A fresh test bed, or None (after saying why) when not root.
fn bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED: these tests build network namespaces and install qdiscs, which needs root"
        );
        return None;
    }
    media_run::init();
    Some(TestBed::new().unwrap_or_else(|err| panic!("cannot build the test bed: {err}")))
}

fn link_rate() -> Rate {
    Rate::from_bits_per_second(LINK_KBIT * 1000)
}

/// Installs `scheduler` on the sender's veth with the link rate as the
/// bottleneck; traffic that is not a qsocket's (TCP, udpsink) goes to its
/// best-effort class.
fn install(bed: &TestBed, scheduler: SchedulerName) {
    let init = InitParams::new(bed.sender_dev(), scheduler).with_link_rate(link_rate());
    bed.run_in_sender(|| qsockinit(&init))
        .expect("enter the sender's namespace")
        .unwrap_or_else(|err| panic!("qsockinit {scheduler:?}: {err}"));
}

fn qsocksink(bed: &TestBed, scheduler: SchedulerName) -> NetworkSink {
    NetworkSink {
        label: format!("qsocksink ({})", scheduler.as_str()),
        description: format!(
            "qsocksink host={} port={MANAGED_PORT} device={} scheduler={} latency-budget={}",
            bed.receiver_v4(),
            bed.sender_dev(),
            scheduler.as_str(),
            LATENCY_BUDGET_MS,
        ),
        port: MANAGED_PORT,
    }
}

fn udpsink(bed: &TestBed) -> NetworkSink {
    NetworkSink {
        label: "udpsink (control)".into(),
        description: format!("udpsink host={} port={CONTROL_PORT}", bed.receiver_v4()),
        port: CONTROL_PORT,
    }
}

/// Starts the bulk transfer and waits until its queue stands.
fn start_bulk(bed: &TestBed) -> BulkTransfer {
    let bulk = BulkTransfer::start(bed, BULK_PORT).expect("the bulk transfer starts");
    assert!(
        bulk.wait_for(BULK_HEAD_START_BYTES, Duration::from_secs(20)),
        "the bulk transfer moved only {} bytes in 20 s",
        bulk.received_bytes()
    );
    bulk
}

/// Runs `run` while the bulk transfer goes on, and prints what happened.
fn run_beside_bulk(bed: &TestBed, run: &Run, name: &str) -> Report {
    let dir = WorkDir::new(name);
    let bulk = start_bulk(bed);
    let (bytes_before, started) = (bulk.received_bytes(), Instant::now());
    let report = media_run::run(bed, run, &dir);
    let bulk_kbit =
        (bulk.received_bytes() - bytes_before) * 8 / 1000 / started.elapsed().as_secs().max(1);
    println!("{name}: bulk TCP {bulk_kbit} kbit/s; {report}");
    bulk.stop().expect("the bulk transfer ran without error");
    report
}

/// qsocksink delivered every I-frame whole, decodably; what it lost was P.
fn assert_keeps_every_intra_frame(report: &Report, sink: &SinkReport) {
    assert!(
        sink.receiver_error.is_none(),
        "{}'s receiver failed: {report}",
        sink.label
    );
    let received = sink
        .received
        .as_ref()
        .unwrap_or_else(|err| panic!("{}'s stream does not decode: {err}", sink.label));
    assert_eq!(
        received.intra, report.sent.intra,
        "{} lost I-frames: {report}",
        sink.label
    );
    if let Some(delivery) = &sink.delivery {
        assert_eq!(
            delivery.intra.damaged(),
            0,
            "{} damaged I-frames: {report}",
            sink.label
        );
    }
    assert!(
        received.predicted <= report.sent.predicted,
        "more P-frames received than sent: {report}"
    );
    assert!(
        sink.decoded >= u64::from(received.intra) && sink.decoded > 0,
        "{}'s receiver decoded {} frames: {report}",
        sink.label,
        sink.decoded
    );
}

/// The control lost at least one I-frame, in ffprobe's count or, for RTP, in
/// part (a damaged I-frame is what qsocksink exists to prevent).
fn assert_loses_intra_frames(report: &Report, sink: &SinkReport) {
    let counted_short = sink
        .received
        .as_ref()
        .map_or(true, |received| received.intra < report.sent.intra);
    let damaged = sink
        .delivery
        .as_ref()
        .is_some_and(|delivery| delivery.intra.damaged() > 0);
    assert!(
        counted_short || damaged,
        "the control lost no I-frame, so the run shows nothing: {report}"
    );
}

/// The comparison on a kernel scheduler: both sinks at once, beside TCP.
fn managed_beside_control(format: Format, scheduler: SchedulerName, name: &str) {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    install(&bed, scheduler);
    let run = Run {
        format,
        frames: FRAMES,
        video_kbit: VIDEO_KBIT,
        playout_delay: Duration::from_millis(PLAYOUT_DELAY_MS),
        sinks: vec![qsocksink(&bed, scheduler), udpsink(&bed)],
    };
    let report = run_beside_bulk(&bed, &run, name);
    assert_keeps_every_intra_frame(&report, &report.sinks[0]);
    assert_loses_intra_frames(&report, &report.sinks[1]);
}

#[test]
fn h264_over_rtp_on_htb_keeps_every_i_frame_where_udpsink_loses_some() {
    managed_beside_control(Format::RtpH264, SchedulerName::Htb, "h264-rtp-htb");
}

#[test]
fn mpeg2_over_rtp_on_htb_keeps_every_i_frame_where_udpsink_loses_some() {
    managed_beside_control(Format::RtpMpeg2, SchedulerName::Htb, "mpeg2-rtp-htb");
}

#[test]
fn h264_in_mpegts_on_htb_keeps_every_i_frame_where_udpsink_loses_some() {
    managed_beside_control(Format::MpegTsH264, SchedulerName::Htb, "h264-ts-htb");
}

#[test]
fn h264_over_rtp_on_dwcs_keeps_every_i_frame_where_udpsink_loses_some() {
    if !qsock_testbed::dwcs_test_runs() {
        return;
    }
    managed_beside_control(Format::RtpH264, SchedulerName::Dwcs, "h264-rtp-dwcs");
}

/// The `user` backend schedules this process's qsockets and nothing else:
/// the bulk transfer and the control would go straight to the device, so
/// beside them qsocksink on `user` cannot promise anything, and a comparison
/// under TCP would measure only how the TBF's one FIFO treats three flows.
/// What `user` does promise is to pace its own streams to the link rate, so
/// that the bursts of I-frames never overflow the bottleneck's queue. That is
/// the comparison here: a video whose I-frames are larger than the TBF's
/// queue, sent across it alone, once through qsocksink and once (after it,
/// on the same bed) through udpsink, with no other traffic.
#[test]
fn h264_over_rtp_on_user_keeps_every_i_frame_where_udpsink_loses_some() {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    let bed = bed
        .with_bottleneck(&format!("{LINK_KBIT}kbit"))
        .expect("a TBF on the sender's veth");
    install(&bed, SchedulerName::User);
    let run_alone = |sink: NetworkSink, name: &str| {
        let run = Run {
            format: Format::RtpH264,
            frames: FRAMES,
            video_kbit: USER_VIDEO_KBIT,
            playout_delay: Duration::from_millis(PLAYOUT_DELAY_MS),
            sinks: vec![sink],
        };
        let dir = WorkDir::new(name);
        let report = media_run::run(&bed, &run, &dir);
        println!("{name}: {report}");
        report
    };
    let managed = run_alone(qsocksink(&bed, SchedulerName::User), "h264-rtp-user");
    let control = run_alone(udpsink(&bed), "h264-rtp-user-control");
    let device = bed.sender_dev().to_owned();
    bed.run_in_sender(|| qsock::reset(&device))
        .expect("enter the sender's namespace")
        .expect("the user scheduler resets");
    assert_keeps_every_intra_frame(&managed, &managed.sinks[0]);
    assert_loses_intra_frames(&control, &control.sinks[0]);
}
