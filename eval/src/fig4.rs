//! Figures 4 and 5: one live 20 fps video stream per contender, bulk TCP
//! transfers starting at 15 s and at 30 s; frames per second per interval
//! (Figure 4) and inter-frame jitter over time (Figure 5), from one run.
//!
//! Contenders, each on its own lane (see `lanes`): qsocksink on `htb`, on
//! `user` (over a TBF) and, in the VM, on `dwcs`; a plain udpsink and an
//! srtsink with SRT's latency equal to qsocksink's budget, both over a plain
//! TBF; and a udpsink whose port an administrator gave an HTB class.

use std::time::Duration;

use qsock_media::{BulkPeriod, BulkSchedule, IntervalStats, SinkKind, StreamSpec, VideoSettings};
use serde::Serialize;

use crate::lanes::{self, Lane, LaneArgs, LinkSetup, RunSettings, StreamOutcome};
use crate::output::{markdown_table, Results};
use crate::timeline::Timeline;
use crate::{schedulers, Result};

const FIRST_PORT: u16 = 5004;
const BULK_PORT: u16 = 5401;
/// What the figures should show (see EVALUATION.md).
const TARGET_MIN_FPS: f64 = 19.9;
const TARGET_JITTER_P99_MS: f64 = 2.0;

/// Options of `qsock-eval fig4` (Figures 4 and 5).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Who runs, across what link, with which budget.
    #[command(flatten)]
    pub lanes: LaneArgs,
    /// Seconds of video.
    #[arg(long, default_value_t = 45)]
    pub seconds: u64,
    /// When the two bulk transfers start, in seconds; both run to the end.
    #[arg(long, value_delimiter = ',', default_values_t = [15, 30])]
    pub perturb_at: Vec<u64>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            lanes: LaneArgs::default(),
            seconds: 45,
            perturb_at: vec![15, 30],
        }
    }
}

/// One line of `fig4-TAG.csv` (Figure 4 and 5's data): one stream in one
/// interval. Its columns are the stream's label, then [`IntervalStats`]'s
/// start (in seconds), frames, fps, decodable_fps, jitter_mean_ms and
/// jitter_p99_ms.
#[derive(Debug, Serialize)]
pub struct IntervalRow {
    stream: String,
    start_s: f64,
    frames: u32,
    fps: f64,
    decodable_fps: f64,
    jitter_mean_ms: Option<f64>,
    jitter_p99_ms: Option<f64>,
}

/// Turns streams into CSV rows.
pub fn interval_rows(streams: &[StreamOutcome]) -> Vec<IntervalRow> {
    streams
        .iter()
        .flat_map(|s| {
            s.intervals.iter().map(|i| IntervalRow {
                stream: s.label.clone(),
                start_s: i.start.as_secs_f64(),
                frames: i.frames,
                fps: i.fps,
                decodable_fps: i.decodable_fps,
                jitter_mean_ms: i.jitter_mean_ms,
                jitter_p99_ms: i.jitter_p99_ms,
            })
        })
        .collect()
}

/// The contenders' lanes.
fn lanes(args: &Args) -> Vec<Lane> {
    let video = VideoSettings::default();
    let budget = args.lanes.budget();
    let mut port = FIRST_PORT;
    let mut next_port = || {
        port += 2;
        port - 2
    };
    let mut lanes: Vec<Lane> = schedulers::chosen(&args.lanes.schedulers)
        .into_iter()
        .map(|scheduler| Lane {
            name: format!("qsocksink {scheduler}"),
            link: LinkSetup::Qsock(scheduler),
            senders: vec![(
                video.clone(),
                vec![StreamSpec::new(
                    format!("qsocksink ({scheduler})"),
                    SinkKind::QSockSink {
                        scheduler,
                        latency_budget: budget,
                    },
                    next_port(),
                )],
            )],
        })
        .collect();
    if !args.lanes.qsock_only {
        lanes.push(Lane {
            name: "plain".into(),
            link: LinkSetup::Fifo,
            senders: vec![(
                video.clone(),
                vec![
                    StreamSpec::new("udpsink", SinkKind::UdpSink, next_port()),
                    StreamSpec::new(
                        "srtsink",
                        SinkKind::SrtSink { latency: budget },
                        next_port(),
                    ),
                ],
            )],
        });
        lanes.push(Lane {
            name: "admin HTB".into(),
            link: LinkSetup::PortClass {
                class_kbit: args.lanes.port_class_kbit,
            },
            senders: vec![(
                video,
                vec![StreamSpec::new(
                    "udpsink + admin HTB class",
                    SinkKind::PortClassUdpSink,
                    next_port(),
                )],
            )],
        });
    }
    lanes
}

/// Runs the contenders and writes Figure 4's and 5's CSV, PNGs and section.
pub fn run(args: &Args, results: &Results) -> Result<()> {
    let rate = args.lanes.link_rate()?;
    if args.perturb_at.iter().any(|&at| at >= args.seconds) || args.seconds % 5 != 0 {
        return Err(format!(
            "--perturb-at {:?} must all come before --seconds {}, a multiple of 5",
            args.perturb_at, args.seconds
        ));
    }
    let end = Duration::from_secs(args.seconds);
    let bulk = args
        .perturb_at
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            BulkSchedule::new(
                vec![BulkPeriod {
                    start: Duration::from_secs(at),
                    stop: end,
                }],
                BULK_PORT + 10 * i as u16,
            )
            .map(|schedule| schedule.with_connections(args.lanes.bulk_connections))
            .map_err(|err| err.to_string())
        })
        .collect::<Result<Vec<_>>>()?;
    let lanes = lanes(args);
    println!(
        "fig4/fig5: {} lanes at once for {} s, bulk TCP from {:?} s",
        lanes.len(),
        args.seconds,
        args.perturb_at
    );
    let outcome = lanes::run(
        &lanes,
        &RunSettings {
            rate,
            duration: end,
            bulk,
            jitter_latency: args.lanes.budget(),
            interval: Duration::from_secs(5),
        },
    )?;
    let rows = interval_rows(&outcome.streams);
    results.write_csv("fig4", None, &rows)?;
    let markers: Vec<(f64, String)> = args
        .perturb_at
        .iter()
        .map(|&at| (at as f64, "bulk TCP starts".to_owned()))
        .collect();
    let timeline = Timeline {
        streams: &outcome.streams,
        markers: &markers,
        seconds: args.seconds,
    };
    timeline.draw_fps(
        &results.path("fig4", None, "png"),
        "Figure 4: frames per second per 5 s interval, 20 fps stream",
    )?;
    timeline.draw_jitter(
        &results.path("fig5", None, "png"),
        "Figure 5: inter-frame jitter, 20 fps stream",
    )?;
    let headline = headline(&outcome.streams, args.perturb_at.iter().min().copied());
    for line in &headline {
        println!("  {}", line.join("  "));
    }
    results.write_section("fig4", &section(args, &headline, results))?;
    Ok(())
}

/// Per stream: lowest rate of whole frames and of decodable frames in any
/// interval, the lowest decodable rate once perturbed, and the p99 of every
/// frame's jitter, overall and once perturbed.
fn headline(streams: &[StreamOutcome], perturbed_from: Option<u64>) -> Vec<Vec<String>> {
    let from = perturbed_from.unwrap_or(0) as f64;
    streams
        .iter()
        .map(|s| {
            // The first interval is left out: a receiver starts counting at
            // the first I-frame it sees, part way into it.
            let lowest = |rate: fn(&IntervalStats) -> f64, since: f64| {
                s.intervals
                    .iter()
                    .skip(1)
                    .filter(|i| i.start.as_secs_f64() >= since)
                    .map(rate)
                    .fold(f64::INFINITY, f64::min)
            };
            let min_fps = lowest(|i| i.fps, 0.0);
            let min_decodable = lowest(|i| i.decodable_fps, 0.0);
            let min_decodable_perturbed = lowest(|i| i.decodable_fps, from);
            let jitter = lanes::frame_jitter(&s.frames, s.fps);
            let all: Vec<f64> = jitter.iter().map(|j| j.1).collect();
            let perturbed: Vec<f64> = jitter.iter().filter(|j| j.0 >= from).map(|j| j.1).collect();
            let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            let meets = min_decodable >= TARGET_MIN_FPS
                && lanes::percentile(&all, 0.99).is_some_and(|p| p <= TARGET_JITTER_P99_MS);
            vec![
                s.label.clone(),
                format!("{min_fps:.2}"),
                format!("{min_decodable:.2}"),
                format!("{min_decodable_perturbed:.2}"),
                fmt(lanes::percentile(&all, 0.99)),
                fmt(lanes::percentile(&perturbed, 0.99)),
                if meets { "yes".into() } else { "no".into() },
            ]
        })
        .collect()
}

fn section(args: &Args, headline: &[Vec<String>], results: &Results) -> String {
    format!(
        "## Figures 4 and 5: one 20 fps stream, bulk TCP from {perturb:?} s ({tag})\n\n\
         {seconds} s of live H.264 (320x180, 800 kbit/s, 20 fps) per contender, all lanes at \
         once, each across its own {rate} bottleneck with {bulk} bulk TCP connections from each \
         start time. Budget (qsocksink latency-budget, SRT latency, jitter buffer): {budget} ms. \
         Target: at least {fps} decodable fps in every 5 s interval and jitter p99 within \
         {jitter} ms. A frame is decodable when it arrived whole and so did every reference \
         frame since the last I-frame. \
         Data: `{csv}`.\n\n{table}\n![Figure 4]({fig4})\n\n![Figure 5]({fig5})\n",
        perturb = args.perturb_at,
        tag = results.tag(),
        seconds = args.seconds,
        rate = args.lanes.rate,
        bulk = args.lanes.bulk_connections,
        budget = args.lanes.budget_ms,
        fps = TARGET_MIN_FPS,
        jitter = TARGET_JITTER_P99_MS,
        csv = results.file_name("fig4", None, "csv"),
        table = markdown_table(
            &[
                "stream",
                "min fps whole (5 s, after the first)",
                "min fps decodable",
                "min fps decodable (perturbed)",
                "jitter p99 ms",
                "jitter p99 ms (perturbed)",
                "meets target"
            ],
            headline
        ),
        fig4 = results.file_name("fig4", None, "png"),
        fig5 = results.file_name("fig5", None, "png"),
    )
}
