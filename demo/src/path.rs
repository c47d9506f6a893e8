//! The demo's second part: the bottleneck beyond the host (issue 12).
//!
//! qsocksink, adapting to the receiver's RTCP, and a plain udpsink, both
//! starting at the same bitrate, each cross a router whose rate steps down
//! and back up. Each has a routed bed of its own, the two run at the same
//! time on the same schedule: through one router the two would share its
//! rate, and the udpsink's overload would take the sink's share too, so
//! neither line would show what that sender does alone on such a path.
//! Every second: decodable fps of each, the sink's estimate, the router's
//! rate; at the end a CSV and a PNG.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use qsock::SchedulerName;
use qsock_media::path::{
    plot_path_png, write_path_csv, PathBed, PathContender, PathRow, PathRun, PathSeries,
    PathSettings, RouterSchedule,
};

use crate::shown;

/// How often the runs sample their senders and follow the schedule.
const TICK: Duration = Duration::from_millis(100);

/// The path part's options, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct PathDemo {
    /// Seconds of video; the router steps at a third and two thirds.
    pub seconds: u64,
    /// The router's rate before and after the dip, kbit/s.
    pub high_kbit: u64,
    /// Its rate in the dip, kbit/s.
    pub low_kbit: u64,
    /// Both encoders' start bitrate, kbit/s.
    pub start_kbit: u32,
    /// qsocksink's scheduler.
    pub scheduler: SchedulerName,
}

/// Runs the path part and writes `qsock-demo-path.csv` and `.png` into
/// `out_dir`; stops early when `interrupted` says so.
pub fn run(demo: PathDemo, out_dir: &Path, interrupted: &Receiver<()>) -> Result<(), String> {
    let (down, up) = (
        Duration::from_secs(demo.seconds / 3),
        Duration::from_secs(2 * demo.seconds / 3),
    );
    let mut settings = PathSettings::default();
    settings.video.bitrate_kbit = demo.start_kbit;
    settings.router = RouterSchedule::stepping(
        demo.high_kbit * 1000,
        &[(down, demo.low_kbit * 1000), (up, demo.high_kbit * 1000)],
    )
    .map_err(|e| e.to_string())?;
    let contenders = [
        PathContender::QSockSink {
            scheduler: demo.scheduler,
            // The sink's default: with shape-link on, the device's link
            // rate a tenth above an estimate near the router's own rate
            // kept the router's queue full through the eval's dip (EVALUATION.md).
            shape_link: false,
            transport_cc: false,
        },
        PathContender::UdpSink,
    ];
    println!();
    println!(
        "path: sender -> router -> receiver, the router at {} kbit/s, {} kbit/s from {} s, \
         {} kbit/s from {} s (burst {}, {} of queue); {}x{} at {} fps on snow from {} kbit/s, \
         through qsocksink ({}, adapt-bitrate, the receiver sending RTCP) and through a plain \
         udpsink, each on a routed bed of its own",
        demo.high_kbit,
        demo.low_kbit,
        down.as_secs(),
        demo.high_kbit,
        up.as_secs(),
        settings.router_burst,
        settings.router_latency,
        settings.video.width,
        settings.video.height,
        settings.video.frames_per_second,
        demo.start_kbit,
        demo.scheduler.as_str()
    );
    let beds = contenders
        .iter()
        .map(|_| PathBed::new(&settings))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot build the routed beds: {e}"))?;
    let epoch = Instant::now();
    let mut runs = beds
        .into_iter()
        .zip(contenders)
        .map(|(bed, contender)| PathRun::start(bed, &settings, contender, epoch))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    println!();
    println!(
        "   t   {:>36}   {:>22}   router",
        "qsocksink + RTCP", "udpsink"
    );
    let mut seconds_run = 0;
    let mut next_tick = epoch;
    'seconds: for second in 1..=demo.seconds {
        let until = Duration::from_secs(second);
        while epoch.elapsed() < until {
            for run in &mut runs {
                run.tick()
                    .map_err(|e| format!("{}: {e}", run.contender().label()))?;
            }
            next_tick += TICK;
            match interrupted.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    println!("interrupted");
                    break 'seconds;
                }
            }
        }
        let last = |run: &PathRun| run.rows(Duration::from_secs(1), until).pop();
        let (sink, udp) = (last(&runs[0]), last(&runs[1]));
        let sample = runs[0].last_sample();
        let estimate = sample.and_then(|s| s.estimate_bps).unwrap_or(0) as f64 / 1e6;
        let router = sample.map_or(0, |s| s.router_bps) as f64 / 1e6;
        println!(
            "{second:>4}s  {:>2} fps decodable, estimate {estimate:4.2} Mbit/s   {:>2} fps decodable   {router:4.2} Mbit/s",
            decodable(sink.as_ref()),
            decodable(udp.as_ref()),
        );
        seconds_run = second;
    }
    // Frames of the last second still on their way: a second more.
    let tail = Duration::from_secs(seconds_run + 1);
    while epoch.elapsed() < tail && seconds_run > 0 {
        for run in &mut runs {
            run.tick()
                .map_err(|e| format!("{}: {e}", run.contender().label()))?;
        }
        next_tick += TICK;
        std::thread::sleep(next_tick.saturating_duration_since(Instant::now()));
    }
    let mut series = Vec::new();
    for run in runs {
        let label = run.contender().label();
        let outcome = run.finish().map_err(|e| format!("{label}: {e}"))?;
        series.push((
            label,
            outcome.rows(Duration::from_secs(1), Duration::from_secs(seconds_run)),
        ));
    }
    summarize(&series, down, up);
    let views: Vec<PathSeries> = series
        .iter()
        .map(|(label, rows)| PathSeries { label, rows })
        .collect();
    let csv = out_dir.join("qsock-demo-path.csv");
    let png = out_dir.join("qsock-demo-path.png");
    write_path_csv(&csv, &views).map_err(|e| e.to_string())?;
    plot_path_png(
        &png,
        &format!(
            "{} fps H.264 from {} kbit/s across a router at {} -> {} -> {} kbit/s",
            settings.video.frames_per_second,
            demo.start_kbit,
            demo.high_kbit,
            demo.low_kbit,
            demo.high_kbit
        ),
        &views,
        &[down.as_secs_f64(), up.as_secs_f64()],
        f64::from(settings.video.frames_per_second),
    )
    .map_err(|e| e.to_string())?;
    println!("path series: {}", shown(&csv));
    println!("path plot:   {}", shown(&png));
    Ok(())
}

fn decodable(row: Option<&PathRow>) -> String {
    row.map_or("-".into(), |r| format!("{:.0}", r.decodable_fps))
}

/// Mean decodable fps before, in and after the dip, and the estimate's
/// mean share of the router's rate in each.
fn summarize(series: &[(String, Vec<PathRow>)], down: Duration, up: Duration) {
    println!();
    let phases = [
        ("before the dip", 0.0, down.as_secs_f64()),
        ("in the dip", down.as_secs_f64(), up.as_secs_f64()),
        ("after it", up.as_secs_f64(), f64::INFINITY),
    ];
    for (label, rows) in series {
        let line: Vec<String> = phases
            .iter()
            .map(|&(phase, from, to)| {
                let inside: Vec<&PathRow> = rows
                    .iter()
                    .filter(|r| r.start_s >= from && r.start_s < to)
                    .collect();
                let n = inside.len().max(1) as f64;
                let fps = inside.iter().map(|r| r.decodable_fps).sum::<f64>() / n;
                let shares: Vec<f64> = inside
                    .iter()
                    .filter_map(|r| Some(r.estimate_bps.or(r.encoder_bps)? / r.router_bps?))
                    .collect();
                let share = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
                format!("{phase} {fps:.1} fps, rate/router {share:.2}")
            })
            .collect();
        println!("{label:>20}: {}", line.join("; "));
    }
}
