//! The path experiment (issue 12): the bottleneck is a router beyond the
//! host. Each contender alone on a fresh sender → router → receiver bed, in
//! four conditions: (a) the router at 1.5 Mbit/s; (b) the same with bulk
//! TCP from the sender's host; (c) with bulk TCP from a third host through
//! the router; (d) the router stepping 3 → 1 → 3 Mbit/s at a third and two
//! thirds of the run. Per 5 s: decodable fps, I-frames lost, p99 one-way
//! frame delay, the sender's estimate against the router's rate.

use std::time::{Duration, Instant};

use qsock_media::path::{
    recovery_after, CrossTraffic, PathBed, PathContender, PathOutcome, PathRow, PathRun,
    PathSettings, PathSummary, RouterSchedule,
};
use qsock_media::VideoSettings;
use serde::Serialize;

use crate::output::{markdown_table, Results};
use crate::plot::{self, Panel, Series, PALETTE};
use crate::Result;

/// How often a run samples its sender and follows its schedules.
const TICK: Duration = Duration::from_millis(100);
/// The run goes on this long past its measured span, so that frames
/// captured at its end can still arrive (router queue and jitter buffer).
const TAIL: Duration = Duration::from_secs(1);
/// Figures leave out the first seconds, the encoder's and estimators' start.
const SETTLE: Duration = Duration::from_secs(5);
/// Decodable frames per second a contender must keep: 95 % of 25.
const TARGET_SHARE: f64 = 0.95;

/// Options of `qsock-eval path`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seconds of video per run (a multiple of 5, at least 15).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Conditions to run: a, b, c, d.
    #[arg(long, value_delimiter = ',', default_values_t = ['a', 'b', 'c', 'd'])]
    pub conditions: Vec<char>,
    /// Contenders: qsocksink-htb, qsocksink-user, qsocksink-dwcs (add -twcc
    /// for the receiver's TWCC feedback too, then -unshaped for shape-link
    /// off), udpsink, srtsink, gcc.
    #[arg(long, value_delimiter = ',', value_parser = parse_contender,
          default_values = ["qsocksink-htb", "qsocksink-user", "udpsink", "srtsink", "gcc"])]
    pub contenders: Vec<PathContender>,
    /// Scales the bed down for a slow (emulated) host: the router's rates,
    /// the video's bitrate and its bounds by this factor, the picture's
    /// area with them (0.1 to 1).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            seconds: 60,
            conditions: vec!['a', 'b', 'c', 'd'],
            contenders: [
                "qsocksink-htb",
                "qsocksink-user",
                "udpsink",
                "srtsink",
                "gcc",
            ]
            .into_iter()
            .filter_map(|name| parse_contender(name).ok())
            .collect(),
            scale: 1.0,
        }
    }
}

fn parse_contender(text: &str) -> Result<PathContender> {
    let unknown = || {
        format!(
            "unknown contender {text:?}: give qsocksink-SCHEDULER (htb, user or dwcs; add \
             -twcc for the receiver's TWCC feedback too, then -unshaped for shape-link off), \
             udpsink, srtsink or gcc"
        )
    };
    Ok(match text {
        "udpsink" => PathContender::UdpSink,
        "srtsink" => PathContender::SrtSink,
        "gcc" => PathContender::Gcc,
        _ => {
            let rest = text.strip_prefix("qsocksink-").ok_or_else(unknown)?;
            let (rest, shape_link) = match rest.strip_suffix("-unshaped") {
                Some(rest) => (rest, false),
                None => (rest, true),
            };
            let (scheduler, transport_cc) = match rest.strip_suffix("-twcc") {
                Some(rest) => (rest, true),
                None => (rest, false),
            };
            PathContender::QSockSink {
                scheduler: scheduler.parse().map_err(|_| unknown())?,
                shape_link,
                transport_cc,
            }
        }
    })
}

/// One condition: its letter, what it is, and its settings.
struct Condition {
    letter: char,
    title: String,
    settings: PathSettings,
    /// The router's rate changes, for markers and recovery times.
    steps: Vec<Duration>,
}

/// `bps` scaled by `scale`.
fn scaled(bps: u64, scale: f64) -> u64 {
    (bps as f64 * scale) as u64
}

/// The bed, its rates and picture scaled by `scale`.
fn scaled_settings(scale: f64, seconds: u64) -> PathSettings {
    let base = PathSettings::default();
    let times = |bps: u64| scaled(bps, scale);
    // Area in proportion to the bitrate: as many bits per pixel. x264 takes
    // even sizes.
    let side = |pixels: u32| ((f64::from(pixels) * scale.sqrt() / 2.0).round() as u32 * 2).max(16);
    let (min, max) = base.bitrate_bounds;
    PathSettings {
        video: VideoSettings {
            width: side(base.video.width),
            height: side(base.video.height),
            bitrate_kbit: (f64::from(base.video.bitrate_kbit) * scale).round() as u32,
            ..base.video
        },
        router: RouterSchedule::constant(times(1_500_000)),
        bitrate_bounds: (times(min), times(max)),
        cross_start: Duration::from_secs(seconds / 6),
        ..base
    }
}

/// A rate as the conditions' titles give it.
fn rate_text(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", bps / 1000)
    }
}

fn condition(letter: char, seconds: u64, scale: f64) -> Result<Condition> {
    let secs = Duration::from_secs;
    let base = scaled_settings(scale, seconds);
    let router = rate_text(base.router.rate_at(Duration::ZERO));
    Ok(match letter {
        'a' => Condition {
            letter,
            title: format!("router {router}"),
            settings: base,
            steps: Vec::new(),
        },
        'b' => Condition {
            letter,
            title: format!(
                "router {router}, bulk TCP from the sender's host from {} s",
                seconds / 6
            ),
            settings: PathSettings {
                cross: CrossTraffic::FromSender,
                ..base
            },
            steps: Vec::new(),
        },
        'c' => Condition {
            letter,
            title: format!(
                "router {router}, bulk TCP from a third host from {} s",
                seconds / 6
            ),
            settings: PathSettings {
                cross: CrossTraffic::FromThirdHost,
                ..base
            },
            steps: Vec::new(),
        },
        'd' => {
            let (down, up) = (secs(seconds / 3), secs(2 * seconds / 3));
            let (high, low) = (scaled(3_000_000, scale), scaled(1_000_000, scale));
            Condition {
                letter,
                title: format!(
                    "router {} -> {} -> {} at {} s and {} s",
                    rate_text(high),
                    rate_text(low),
                    rate_text(high),
                    down.as_secs(),
                    up.as_secs()
                ),
                settings: PathSettings {
                    router: RouterSchedule::stepping(high, &[(down, low), (up, high)])
                        .map_err(|e| e.to_string())?,
                    ..base
                },
                steps: vec![down, up],
            }
        }
        other => return Err(format!("unknown condition {other:?}: give a, b, c or d")),
    })
}

/// One line of `path-TAG.csv` (5 s intervals) or `path-TAG-seconds.csv`
/// (1 s, where recoveries are counted): one contender in one interval of
/// one condition.
#[derive(Debug, Serialize)]
struct IntervalLine {
    condition: char,
    contender: String,
    start_s: f64,
    fps: f64,
    decodable_fps: f64,
    frames_sent: u32,
    intra_sent: u32,
    intra_lost: u32,
    delay_p99_ms: Option<f64>,
    estimate_bps: Option<f64>,
    encoder_bps: Option<f64>,
    router_bps: Option<f64>,
}

impl IntervalLine {
    fn new(condition: char, contender: String, row: PathRow) -> IntervalLine {
        IntervalLine {
            condition,
            contender,
            start_s: row.start_s,
            fps: row.fps,
            decodable_fps: row.decodable_fps,
            frames_sent: row.frames_sent,
            intra_sent: row.intra_sent,
            intra_lost: row.intra_lost,
            delay_p99_ms: row.delay_p99_ms,
            estimate_bps: row.estimate_bps,
            encoder_bps: row.encoder_bps,
            router_bps: row.router_bps,
        }
    }
}

/// One line of `path-TAG-summary.csv`: one contender in one condition,
/// from 5 s to the end.
#[derive(Debug, Serialize)]
struct SummaryLine {
    condition: char,
    contender: String,
    decodable_fps: f64,
    intra_lost: u32,
    intra_sent: u32,
    delay_p99_ms: Option<f64>,
    rate_over_router: Option<f64>,
    /// (d): seconds from each step until decodable fps held at 95 %.
    recovery_s: String,
    /// Bytes the cross traffic delivered, per second of the run, in Mbit/s.
    cross_mbit: f64,
}

/// Runs every condition and contender, one after the other, and writes
/// the CSV files, one PNG per condition and the markdown section.
pub fn run(args: &Args, results: &Results) -> Result<()> {
    if args.seconds < 15 || args.seconds % 5 != 0 {
        return Err(format!(
            "--seconds {} must be a multiple of 5, at least 15",
            args.seconds
        ));
    }
    if !(0.1..=1.0).contains(&args.scale) {
        return Err(format!(
            "--scale {} is out of range: give 0.1 to 1 (1 is the issue's bed)",
            args.scale
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the path experiment builds network namespaces: run it as root".into());
    }
    qsock_media::init(gstqsocksink::plugin_register_static).map_err(|e| e.to_string())?;
    gstrsrtp::plugin_register_static()
        .map_err(|e| format!("gst-plugin-rtp (rtpgccbwe) does not register: {e}"))?;
    let conditions = args
        .conditions
        .iter()
        .map(|&letter| condition(letter, args.seconds, args.scale))
        .collect::<Result<Vec<_>>>()?;
    let until = Duration::from_secs(args.seconds);
    let (mut intervals, mut seconds, mut summaries, mut table) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for condition in &conditions {
        let mut outcomes = Vec::new();
        for &contender in &args.contenders {
            println!(
                "path ({}) {}: {} for {} s",
                condition.letter,
                condition.title,
                contender.label(),
                args.seconds
            );
            let outcome = run_one(&condition.settings, contender, until)
                .map_err(|e| format!("path ({}) {}: {e}", condition.letter, contender.label()))?;
            let summary = PathSummary::of(
                &outcome.frames,
                &outcome.sent,
                &outcome.samples,
                SETTLE,
                until,
            );
            let recovery = recoveries(&outcome, &condition.steps, until);
            println!(
                "  decodable {:.1} fps, I-frames lost {}/{}, p99 delay {} ms, rate/router {}, recovery {}",
                summary.decodable_fps,
                summary.intra_lost,
                summary.intra_sent,
                figure(summary.delay_p99_ms, 0),
                figure(summary.rate_over_router, 2),
                recovery
            );
            for row in outcome.rows(Duration::from_secs(5), until) {
                intervals.push(IntervalLine::new(condition.letter, contender.label(), row));
            }
            for row in outcome.rows(Duration::from_secs(1), until) {
                seconds.push(IntervalLine::new(condition.letter, contender.label(), row));
            }
            table.push(vec![
                condition.letter.to_string(),
                contender.label(),
                format!("{:.1}", summary.decodable_fps),
                format!("{} / {}", summary.intra_lost, summary.intra_sent),
                figure(summary.delay_p99_ms, 0),
                figure(summary.rate_over_router, 2),
                recovery.clone(),
            ]);
            summaries.push(SummaryLine {
                condition: condition.letter,
                contender: contender.label(),
                decodable_fps: summary.decodable_fps,
                intra_lost: summary.intra_lost,
                intra_sent: summary.intra_sent,
                delay_p99_ms: summary.delay_p99_ms,
                rate_over_router: summary.rate_over_router,
                recovery_s: recovery,
                cross_mbit: outcome.cross_bytes as f64 * 8.0 / 1e6 / args.seconds as f64,
            });
            outcomes.push(outcome);
        }
        draw(condition, &outcomes, args.seconds, results)?;
    }
    results.write_csv("path", None, &intervals)?;
    results.write_csv("path", Some("seconds"), &seconds)?;
    results.write_csv("path", Some("summary"), &summaries)?;
    results.write_section("path", &section(args, &conditions, &table, results))?;
    Ok(())
}

/// One contender on a fresh bed for `until` (and the tail).
fn run_one(
    settings: &PathSettings,
    contender: PathContender,
    until: Duration,
) -> Result<PathOutcome> {
    let bed = PathBed::new(settings).map_err(|e| format!("cannot build the routed bed: {e}"))?;
    let epoch = Instant::now();
    let mut run = PathRun::start(bed, settings, contender, epoch).map_err(|e| e.to_string())?;
    let end = until + TAIL;
    let mut next = epoch;
    while epoch.elapsed() < end {
        run.tick().map_err(|e| e.to_string())?;
        next += TICK;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    run.finish().map_err(|e| e.to_string())
}

/// "4 s, 2 s" for the steps of (d): how long after each the decodable rate
/// held 95 % of nominal for good (per second, up to the next step); "-"
/// without steps, "never" where it did not.
fn recoveries(outcome: &PathOutcome, steps: &[Duration], until: Duration) -> String {
    if steps.is_empty() {
        return "-".into();
    }
    let fps = 1.0 / outcome.frame_interval.as_secs_f64();
    let rows = outcome.rows(Duration::from_secs(1), until);
    steps
        .iter()
        .enumerate()
        .map(|(i, &step)| {
            let next = steps.get(i + 1).copied().unwrap_or(until);
            recovery_after(&rows, step, next, TARGET_SHARE * fps)
                .map_or("never".into(), |d| format!("{} s", d.as_secs()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn figure(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// `path-TAG-X.png`: decodable fps per 5 s, each sender's rate (its
/// estimate, else its encoder's target) and the router's per second, and
/// p99 frame delay per 5 s.
fn draw(
    condition: &Condition,
    outcomes: &[PathOutcome],
    seconds: u64,
    results: &Results,
) -> Result<()> {
    let until = Duration::from_secs(seconds);
    let series = |points: &dyn Fn(&PathOutcome) -> Vec<(f64, f64)>| -> Vec<Series> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, outcome)| Series {
                name: outcome.contender.label(),
                color: PALETTE[i % PALETTE.len()],
                points: points(outcome),
            })
            .collect()
    };
    let markers: Vec<(f64, String)> = condition
        .steps
        .iter()
        .map(|step| (step.as_secs_f64(), "router rate steps".to_owned()))
        .chain((condition.settings.cross != CrossTraffic::None).then(|| {
            (
                condition.settings.cross_start.as_secs_f64(),
                "bulk TCP starts".to_owned(),
            )
        }))
        .collect();
    let panel = |title: &str, y_label: &str, steps: bool, series: Vec<Series>| Panel {
        title: title.into(),
        x_label: "time (s)".into(),
        y_label: y_label.into(),
        x_range: (0.0, seconds as f64),
        y_max: None,
        series,
        markers: markers.clone(),
        steps,
    };
    let mut rates = series(&|o| {
        o.rows(Duration::from_secs(1), until)
            .iter()
            .filter_map(|r| Some((r.start_s, r.estimate_bps.or(r.encoder_bps)? / 1e6)))
            .collect()
    });
    rates.push(Series {
        name: "router".into(),
        color: plotters::style::RGBColor(0, 0, 0),
        points: outcomes.first().map_or(Vec::new(), |o| {
            o.rows(Duration::from_secs(1), until)
                .iter()
                .filter_map(|r| Some((r.start_s, r.router_bps? / 1e6)))
                .collect()
        }),
    });
    plot::panels(
        &results.path("path", Some(&condition.letter.to_string()), "png"),
        &format!("Path ({}): {}", condition.letter, condition.title),
        &[
            panel(
                "decodable frames per second, per 5 s",
                "frames per second",
                true,
                series(&|o| {
                    o.rows(Duration::from_secs(5), until)
                        .iter()
                        .map(|r| (r.start_s, r.decodable_fps))
                        .collect()
                }),
            ),
            panel(
                "the sender's estimate (fixed senders: the encoder's target) and the router's rate, per second",
                "Mbit/s",
                true,
                rates,
            ),
            panel(
                "p99 one-way frame delay, capture to arrival, per 5 s",
                "ms",
                true,
                series(&|o| {
                    o.rows(Duration::from_secs(5), until)
                        .iter()
                        .filter_map(|r| Some((r.start_s, r.delay_p99_ms?)))
                        .collect()
                }),
            ),
        ],
    )
}

fn section(
    args: &Args,
    conditions: &[Condition],
    table: &[Vec<String>],
    results: &Results,
) -> String {
    let video = scaled_settings(args.scale, args.seconds).video;
    let plots: String = conditions
        .iter()
        .map(|c| {
            format!(
                "![Path ({})]({})\n\n",
                c.letter,
                results.file_name("path", Some(&c.letter.to_string()), "png")
            )
        })
        .collect();
    format!(
        "## The path: a bottleneck beyond the host ({tag})\n\n\
         Sender → router → receiver, the router's egress a token bucket (burst 15k, 300 ms of \
         queue); {seconds} s of live H.264 ({width}x{height}, 25 fps, videotestsrc snow, x264 \
         from {kbit} kbit/s, an I-frame a second) per contender, each alone on a fresh bed. \
         Conditions: {conditions}. Figures from {settle} s to the end: decodable fps at the \
         receiver, I-frames lost of those sent, p99 one-way frame delay (capture to the last \
         packet's arrival), the mean of the sender's estimate over the router's rate (for \
         fixed-rate senders their encoder's target), and for (d) how long after each step the \
         decodable rate held 95 % of 25 fps. Data: `{csv}` (per 5 s), `{per_second}` (per \
         second) and `{summary}`.\n\n\
         {table}\n{plots}",
        tag = results.tag(),
        seconds = args.seconds,
        width = video.width,
        height = video.height,
        kbit = video.bitrate_kbit,
        conditions = conditions
            .iter()
            .map(|c| format!("({}) {}", c.letter, c.title))
            .collect::<Vec<_>>()
            .join("; "),
        settle = SETTLE.as_secs(),
        csv = results.file_name("path", None, "csv"),
        per_second = results.file_name("path", Some("seconds"), "csv"),
        summary = results.file_name("path", Some("summary"), "csv"),
        table = markdown_table(
            &[
                "condition",
                "contender",
                "decodable fps",
                "I-frames lost / sent",
                "p99 delay ms",
                "rate / router",
                "recovery after steps"
            ],
            table
        ),
    )
}
