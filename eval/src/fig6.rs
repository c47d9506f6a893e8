//! Figure 6: two managed streams at 20 and 15 fps and an unmanaged 20 fps
//! stream on an overloaded link (bulk TCP for the whole run), one lane per
//! qsocksink backend and one per contender (the two streams through udpsink
//! in an administrator's HTB port classes, and through srtsink); each
//! managed stream should hold its rate within 1 %.

use std::time::Duration;

use qsock_media::{BulkPeriod, BulkSchedule, SinkKind, StreamSpec, VideoSettings};

use crate::fig4::interval_rows;
use crate::lanes::{self, Lane, LaneArgs, LinkSetup, RunSettings, StreamOutcome};
use crate::output::{markdown_table, Results};
use crate::timeline::Timeline;
use crate::{schedulers, Result};

const FIRST_PORT: u16 = 5104;
const BULK_PORT: u16 = 5501;
/// A managed stream's rate may differ from its nominal by this share.
const TOLERANCE: f64 = 0.01;

/// Options of `qsock-eval fig6`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Who runs, across what link, with which budget.
    #[command(flatten)]
    pub lanes: LaneArgs,
    /// Seconds of video.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            lanes: LaneArgs::default(),
            seconds: 30,
        }
    }
}

/// One lane: the 20 fps and 15 fps streams through `sink`, each labelled
/// "`N` fps (`how`)", and an unmanaged 20 fps udpsink beside them.
fn lane(name: String, link: LinkSetup, sink: SinkKind, how: &str, port: u16) -> Lane {
    let fast = VideoSettings::default();
    let slow = VideoSettings {
        frames_per_second: 15,
        ..VideoSettings::default()
    };
    let stream =
        |fps: u32, port: u16| StreamSpec::new(format!("{fps} fps ({how})"), sink.clone(), port);
    Lane {
        name,
        link,
        senders: vec![
            (
                fast,
                vec![
                    stream(20, port),
                    StreamSpec::new(
                        format!("unmanaged 20 fps ({how} lane)"),
                        SinkKind::UdpSink,
                        port + 2,
                    ),
                ],
            ),
            (slow, vec![stream(15, port + 4)]),
        ],
    }
}

fn lanes(args: &Args) -> Vec<Lane> {
    let budget = args.lanes.budget();
    let mut lanes: Vec<Lane> = schedulers::chosen(&args.lanes.schedulers)
        .into_iter()
        .enumerate()
        .map(|(i, scheduler)| {
            let how = format!("qsocksink {scheduler}");
            let sink = SinkKind::QSockSink {
                scheduler,
                latency_budget: budget,
            };
            let port = FIRST_PORT + 10 * i as u16;
            lane(how.clone(), LinkSetup::Qsock(scheduler), sink, &how, port)
        })
        .collect();
    if !args.lanes.qsock_only {
        let port = FIRST_PORT + 10 * lanes.len() as u16;
        lanes.push(lane(
            "admin HTB".into(),
            LinkSetup::PortClass {
                class_kbit: args.lanes.port_class_kbit,
            },
            SinkKind::PortClassUdpSink,
            "udpsink + admin HTB class",
            port,
        ));
        lanes.push(lane(
            "srtsink".into(),
            LinkSetup::Fifo,
            SinkKind::SrtSink { latency: budget },
            "srtsink",
            port + 10,
        ));
    }
    lanes
}

/// Runs the lanes and writes Figure 6's CSV, PNGs and section.
pub fn run(args: &Args, results: &Results) -> Result<()> {
    let rate = args.lanes.link_rate()?;
    if args.seconds < 10 || args.seconds % 5 != 0 {
        return Err(format!(
            "--seconds {} must be a multiple of 5, at least 10",
            args.seconds
        ));
    }
    let end = Duration::from_secs(args.seconds);
    let bulk = BulkSchedule::new(
        vec![BulkPeriod {
            start: Duration::ZERO,
            stop: end,
        }],
        BULK_PORT,
    )
    .map_err(|err| err.to_string())?
    .with_connections(args.lanes.bulk_connections);
    let lanes = lanes(args);
    println!(
        "fig6: {} lanes at once for {} s, bulk TCP throughout",
        lanes.len(),
        args.seconds
    );
    let outcome = lanes::run(
        &lanes,
        &RunSettings {
            rate,
            duration: end,
            bulk: vec![bulk],
            jitter_latency: args.lanes.budget(),
            interval: Duration::from_secs(5),
        },
    )?;
    results.write_csv("fig6", None, &interval_rows(&outcome.streams))?;
    let timeline = Timeline {
        streams: &outcome.streams,
        markers: &[],
        seconds: args.seconds,
    };
    timeline.draw_fps(
        &results.path("fig6", None, "png"),
        "Figure 6: streams at 20 and 15 fps and an unmanaged 20 fps stream, bulk TCP throughout",
    )?;
    timeline.draw_jitter(
        &results.path("fig6", Some("jitter"), "png"),
        "Figure 6 (jitter): the same run",
    )?;
    let headline = headline(&outcome.streams, args.seconds);
    for line in &headline {
        println!("  {}", line.join("  "));
    }
    results.write_section("fig6", &section(args, &headline, results))?;
    Ok(())
}

/// Per stream: its rate of whole frames and of decodable frames over the
/// run (the first interval left out: the receivers start with the first
/// I-frame), the decodable rate against nominal, and its lowest interval.
fn headline(streams: &[StreamOutcome], seconds: u64) -> Vec<Vec<String>> {
    streams
        .iter()
        .map(|s| {
            let settled: Vec<_> = s.intervals.iter().skip(1).collect();
            let span = (seconds as f64 - 5.0).max(1.0);
            let fps = f64::from(settled.iter().map(|i| i.frames).sum::<u32>()) / span;
            let decodable =
                f64::from(settled.iter().map(|i| i.decodable_frames).sum::<u32>()) / span;
            let min = settled
                .iter()
                .map(|i| i.decodable_fps)
                .fold(f64::INFINITY, f64::min);
            let off = decodable / f64::from(s.fps) - 1.0;
            let managed = !s.label.starts_with("unmanaged");
            let jitter: Vec<f64> = lanes::frame_jitter(&s.frames, s.fps)
                .into_iter()
                .map(|j| j.1)
                .collect();
            vec![
                s.label.clone(),
                s.fps.to_string(),
                format!("{fps:.2}"),
                format!("{decodable:.2}"),
                format!("{:+.1} %", off * 100.0),
                format!("{min:.2}"),
                lanes::percentile(&jitter, 0.99).map_or("-".into(), |p| format!("{p:.2}")),
                if !managed {
                    "(unmanaged)".into()
                } else if off.abs() <= TOLERANCE {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect()
}

fn section(args: &Args, headline: &[Vec<String>], results: &Results) -> String {
    format!(
        "## Figure 6: two managed streams and an unmanaged one on an overloaded link ({tag})\n\n\
         {seconds} s; one lane per qsocksink backend and per contender (udpsink in an \
         administrator's HTB class of {class} kbit/s per port; srtsink with a latency of \
         {budget} ms), each with streams at 20 fps and at 15 fps through it and a plain udpsink \
         at 20 fps, across a {rate} bottleneck with {bulk} bulk TCP connections throughout. Rates are over the run after the first 5 s interval; a frame is decodable \
         when it arrived whole and so did every reference frame since the last I-frame. \
         Target: each managed stream's decodable rate within {tol} % of its rate. \
         Data: `{csv}`.\n\n{table}\n![Figure 6]({png})\n\n![Figure 6, jitter]({jitter})\n",
        tag = results.tag(),
        seconds = args.seconds,
        rate = args.lanes.rate,
        bulk = args.lanes.bulk_connections,
        class = args.lanes.port_class_kbit,
        budget = args.lanes.budget_ms,
        tol = TOLERANCE * 100.0,
        csv = results.file_name("fig6", None, "csv"),
        table = markdown_table(
            &[
                "stream",
                "nominal fps",
                "fps whole",
                "fps decodable",
                "decodable off nominal",
                "min decodable fps (5 s)",
                "jitter p99 ms",
                "within 1 %"
            ],
            headline
        ),
        png = results.file_name("fig6", None, "png"),
        jitter = results.file_name("fig6", Some("jitter"), "png"),
    )
}
