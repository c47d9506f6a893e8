//! The QSockets paper's video experiment (section 4.2.1, Figures 4 and 5)
//! with GStreamer, live.
//!
//! One live H.264 stream at 20 fps leaves the sender's network namespace
//! twice at once: through qsocksink (a QSocket of the best scheduler this
//! machine offers: I-frames non-droppable, a deadline on every frame) and
//! through a plain udpsink. Both cross a 10 Mbit/s bottleneck to real
//! receivers in the receiver's namespace, and part way through a bulk TCP
//! transfer starts on the same link and later stops. Every second the frames
//! each receiver got whole and their inter-frame jitter are printed side by
//! side; at the end the series go to a CSV file and a PNG plot.
//!
//! Then the bottleneck moves beyond the host (`path`): qsocksink, adapting
//! to the receiver's RTCP, and a udpsink cross a router whose rate steps
//! down and back up.

mod path;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Parser;
use qsock::{qsockinit, InitParams, Rate, SchedulerName};
use qsock_media::{
    intervals, plot_png, write_csv, BulkPeriod, BulkSchedule, CsvStream, IntervalStats, PlotStream,
    Receiver, Sender, SinkKind, StreamSpec, VideoSettings,
};
use qsock_testbed::TestBed;

/// Live H.264 through qsocksink and through a plain udpsink, side by side
/// across a bottleneck, while a bulk TCP transfer starts and stops.
#[derive(Debug, Parser)]
#[command(name = "qsock-demo", version, about)]
struct Args {
    /// How long to stream, in seconds.
    #[arg(long, default_value_t = 35)]
    seconds: u64,
    /// When the bulk TCP transfer starts, in seconds from the start.
    #[arg(long, default_value_t = 10)]
    bulk_start: u64,
    /// When it stops.
    #[arg(long, default_value_t = 25)]
    bulk_stop: u64,
    /// Parallel TCP connections of the bulk transfer.
    #[arg(long, default_value_t = 4)]
    bulk_connections: u16,
    /// The link rate the scheduler sends at: the bottleneck (tc syntax).
    #[arg(long, default_value = "10mbit")]
    rate: String,
    /// The scheduler: dwcs, htb, user, or auto (the first of those that works).
    #[arg(long, default_value = "auto")]
    scheduler: String,
    /// qsocksink's latency budget: each frame's deadline after its time.
    #[arg(long, default_value_t = 100)]
    budget_ms: u64,
    /// How long the receivers' jitter buffers wait for a missing packet.
    #[arg(long, default_value_t = 200)]
    jitter_buffer_ms: u64,
    /// Picture width.
    #[arg(long, default_value_t = VideoSettings::default().width)]
    width: u32,
    /// Picture height.
    #[arg(long, default_value_t = VideoSettings::default().height)]
    height: u32,
    /// The encoder's target bitrate.
    #[arg(long, default_value_t = VideoSettings::default().bitrate_kbit)]
    bitrate_kbit: u32,
    /// Most packets the scheduler queues at once (default: the scheduler's
    /// own; sch_dwcs gives the streams and best effort this limit each).
    #[arg(long)]
    queue_limit: Option<u32>,
    /// Seconds of the path part (the router's rate steps at a third and
    /// two thirds); 0 leaves it out.
    #[arg(long, default_value_t = 36)]
    path_seconds: u64,
    /// The router's rate before and after its dip, kbit/s.
    #[arg(long, default_value_t = 3000)]
    path_high_kbit: u64,
    /// The router's rate in its dip, kbit/s.
    #[arg(long, default_value_t = 1000)]
    path_low_kbit: u64,
    /// Both path senders' start bitrate, kbit/s.
    #[arg(long, default_value_t = 2500)]
    path_start_kbit: u32,
    /// Where the CSVs and the PNGs go.
    #[arg(long, default_value = "target/demo")]
    out_dir: PathBuf,
}

const MANAGED_PORT: u16 = 5004;
const UNMANAGED_PORT: u16 = 5006;
const BULK_PORT: u16 = 5201;
const MANAGED: &str = "managed (qsocksink)";
const UNMANAGED: &str = "unmanaged (udpsink)";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qsock-demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let rate: Rate = args.rate.parse().map_err(|e: qsock::Error| {
        format!("--rate {}: {e} (give a tc rate such as 10mbit)", args.rate)
    })?;
    let scheduler: SchedulerName = args.scheduler.parse().map_err(|e: qsock::Error| {
        format!(
            "--scheduler {}: {e} (dwcs, htb, user or auto)",
            args.scheduler
        )
    })?;
    if args.bulk_start >= args.bulk_stop || args.bulk_stop > args.seconds {
        return Err(format!(
            "the bulk transfer must start before it stops, within --seconds {}: \
             --bulk-start {} --bulk-stop {}",
            args.seconds, args.bulk_start, args.bulk_stop
        ));
    }
    if (1..9).contains(&args.path_seconds) {
        return Err(format!(
            "--path-seconds {}: give 9 or more (the router steps at a third and two thirds), \
             or 0 to leave the path part out",
            args.path_seconds
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(NOT_ROOT.into());
    }
    qsock_media::init(gstqsocksink::plugin_register_static).map_err(|e| e.to_string())?;
    let video = VideoSettings {
        width: args.width,
        height: args.height,
        bitrate_kbit: args.bitrate_kbit,
        ..VideoSettings::default()
    };
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.out_dir.display()))?;

    let mut bed = TestBed::new().map_err(|e| format!("cannot build the test bed: {e}"))?;
    if scheduler == SchedulerName::User {
        // The user scheduler paces only its own sockets: the link needs a
        // bottleneck of its own for the bulk transfer to queue at.
        bed = bed
            .with_bottleneck(&args.rate)
            .map_err(|e| format!("cannot put a {} bottleneck on the link: {e}", args.rate))?;
    }
    let mut init = InitParams::new(bed.sender_dev(), scheduler).with_link_rate(rate);
    init.limit = args.queue_limit;
    let report = bed
        .run_in_sender(|| qsockinit(&init))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("qsockinit {}: {e}", args.scheduler))?;
    println!(
        "scheduler: {} on {} at {} ({})",
        report.scheduler.as_str(),
        report.device,
        args.rate,
        report.reason
    );
    println!(
        "video: {}x{} at {} fps, H.264 at {} kbit/s, once through qsocksink (latency budget \
         {} ms) and once through udpsink; bulk TCP ({} connections) from {} s to {} s",
        video.width,
        video.height,
        video.frames_per_second,
        video.bitrate_kbit,
        args.budget_ms,
        args.bulk_connections,
        args.bulk_start,
        args.bulk_stop
    );

    let streams = [
        StreamSpec::new(
            MANAGED,
            SinkKind::QSockSink {
                scheduler: report.scheduler,
                latency_budget: Duration::from_millis(args.budget_ms),
            },
            MANAGED_PORT,
        ),
        StreamSpec::new(UNMANAGED, SinkKind::UdpSink, UNMANAGED_PORT),
    ];
    let schedule = BulkSchedule::new(
        vec![BulkPeriod {
            start: Duration::from_secs(args.bulk_start),
            stop: Duration::from_secs(args.bulk_stop),
        }],
        BULK_PORT,
    )
    .map_err(|e| e.to_string())?
    .with_connections(args.bulk_connections);

    let (interrupt, interrupted) = mpsc::channel();
    // Ctrl-C ends the run early; the test bed is still torn down.
    let _ = ctrlc::set_handler(move || {
        let _ = interrupt.send(());
    });

    let epoch = Instant::now();
    let jitter_buffer = Duration::from_millis(args.jitter_buffer_ms);
    let receivers = streams
        .iter()
        .map(|stream| Receiver::start(&bed, stream, &video, jitter_buffer, epoch))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let sender = Sender::start(&bed, &video, &streams).map_err(|e| e.to_string())?;
    let mut bulk = schedule.start(&bed, epoch);

    println!();
    println!("   t   {MANAGED:>34}     {UNMANAGED:>34}");
    let mut seconds_run = 0;
    let mut stopped_early = false;
    let mut bulk_bytes_seen = 0;
    for second in 0..args.seconds {
        bulk.update().map_err(|e| e.to_string())?;
        let until = epoch + Duration::from_secs(second + 1);
        match interrupted.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                println!("interrupted");
                stopped_early = true;
                break;
            }
        }
        sender.check().map_err(|e| format!("sender: {e}"))?;
        let mut line = format!("{:>4}s ", second + 1);
        for receiver in &receivers {
            receiver
                .check()
                .map_err(|e| format!("{}: {e}", receiver.label()))?;
            let last = intervals(
                &receiver.frames(),
                video.frame_interval(),
                Duration::from_secs(1),
                Duration::from_secs(second + 1),
            );
            let short = receiver.label().split(' ').next().unwrap_or_default();
            line += &format!(" {short:>9}: {} |", fps_and_jitter(last.last()));
        }
        let bulk_bytes = bulk.received_bytes();
        let bulk_mbit = (bulk_bytes - bulk_bytes_seen) as f64 * 8.0 / 1e6;
        bulk_bytes_seen = bulk_bytes;
        line += &if bulk.is_on() {
            format!(" bulk on  {bulk_mbit:4.1} Mbit/s")
        } else {
            " bulk off".to_string()
        };
        println!("{line}");
        seconds_run = second + 1;
    }

    let (periods, bulk_total) = bulk.finish().map_err(|e| e.to_string())?;
    sender.finish().map_err(|e| format!("sender: {e}"))?;
    let mut series = Vec::new();
    for receiver in receivers {
        let label = receiver.label().to_owned();
        let frames = receiver.stop().map_err(|e| format!("{label}: {e}"))?;
        let per_second = intervals(
            &frames,
            video.frame_interval(),
            Duration::from_secs(1),
            Duration::from_secs(seconds_run),
        );
        series.push((label, per_second));
    }
    drop(bed);

    summarize(&series, &periods, bulk_total);
    let name = format!("qsock-demo-{}", report.scheduler.as_str());
    let csv = args.out_dir.join(format!("{name}.csv"));
    let png = args.out_dir.join(format!("{name}.png"));
    let csv_streams: Vec<CsvStream> = series
        .iter()
        .map(|(label, intervals)| CsvStream { label, intervals })
        .collect();
    write_csv(&csv, &csv_streams, &periods).map_err(|e| e.to_string())?;
    let plot_streams: Vec<PlotStream> = series
        .iter()
        .map(|(label, intervals)| PlotStream { label, intervals })
        .collect();
    let title = format!(
        "20 fps H.264 across {} ({}), bulk TCP shaded",
        args.rate,
        report.scheduler.as_str()
    );
    plot_png(
        &png,
        &title,
        &plot_streams,
        &periods,
        f64::from(video.frames_per_second),
    )
    .map_err(|e| e.to_string())?;
    println!("series: {}", shown(&csv));
    println!("plot:   {}", shown(&png));
    if args.path_seconds == 0 || stopped_early {
        return Ok(());
    }
    path::run(
        path::PathDemo {
            seconds: args.path_seconds,
            high_kbit: args.path_high_kbit,
            low_kbit: args.path_low_kbit,
            start_kbit: args.path_start_kbit,
            scheduler: report.scheduler,
        },
        &args.out_dir,
        &interrupted,
    )
}

/// "20 fps (20 whole)   2.1 ms" for an interval: decodable frames, frames
/// that arrived whole, mean jitter ("-" without gaps).
fn fps_and_jitter(interval: Option<&IntervalStats>) -> String {
    let (decodable, whole, jitter) = interval.map_or((0, 0, None), |i| {
        (i.decodable_frames, i.frames, i.jitter_mean_ms)
    });
    let jitter = jitter.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
    format!("{decodable:>2} fps ({whole:>2} whole) {jitter:>8}")
}

/// Means over the seconds the bulk transfer covered whole, and over the rest.
fn summarize(series: &[(String, Vec<IntervalStats>)], periods: &[BulkPeriod], bulk_bytes: u64) {
    println!();
    let during = |i: &IntervalStats| {
        periods
            .iter()
            .any(|p| p.start <= i.start && i.start + i.length <= p.stop)
    };
    for (label, intervals) in series {
        let (with, without): (Vec<&IntervalStats>, Vec<&IntervalStats>) =
            intervals.iter().partition(|i| during(i));
        println!(
            "{label:>20}: with bulk TCP {}; without {}",
            means(&with),
            means(&without)
        );
    }
    let bulk_seconds: f64 = periods
        .iter()
        .map(|p| (p.stop - p.start).as_secs_f64())
        .sum();
    if bulk_seconds > 0.0 {
        println!(
            "{:>20}: {:.1} Mbit/s while it ran",
            "bulk TCP",
            bulk_bytes as f64 * 8.0 / 1e6 / bulk_seconds
        );
    }
}

fn means(intervals: &[&IntervalStats]) -> String {
    if intervals.is_empty() {
        return "-".into();
    }
    let n = intervals.len() as f64;
    let fps = intervals.iter().map(|i| i.decodable_fps).sum::<f64>() / n;
    let whole = intervals.iter().map(|i| i.fps).sum::<f64>() / n;
    let jitters: Vec<f64> = intervals.iter().filter_map(|i| i.jitter_mean_ms).collect();
    let worst_p99 = intervals
        .iter()
        .filter_map(|i| i.jitter_p99_ms)
        .fold(0.0, f64::max);
    let jitter = if jitters.is_empty() {
        "-".to_string()
    } else {
        format!(
            "{:.1} ms",
            jitters.iter().sum::<f64>() / jitters.len() as f64
        )
    };
    format!(
        "{fps:.1} fps decodable ({whole:.1} whole), jitter {jitter} (worst p99 {worst_p99:.1} ms)"
    )
}

/// The path as the user can open it: absolute when it can be made so.
fn shown(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

const NOT_ROOT: &str = "this demo needs root, and there is nothing honest to show without it.\n\
It builds two network namespaces joined by a veth pair, installs a kernel packet scheduler \
(sch_dwcs or HTB) on the sender's side at 10 Mbit/s, and runs a bulk TCP transfer across \
that bottleneck beside the two video streams; all of that needs CAP_NET_ADMIN. Without it \
the streams would share loopback, which has no bottleneck, so the bulk transfer could not \
hurt the unmanaged stream and qsocksink would have nothing to protect it from.\n\
Run it as root: sudo make demo (or sudo target/release/qsock-demo).";
