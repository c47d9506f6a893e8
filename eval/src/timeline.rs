//! A run's streams over time, as Figures 4, 5 and 6 draw them: frames per
//! second per interval, and inter-frame jitter.

use std::path::Path;

use qsock_media::IntervalStats;

use crate::lanes::{self, StreamOutcome};
use crate::plot::{self, Panel, Series, PALETTE};
use crate::Result;

/// The streams of one run, one line each, over the run's length.
#[derive(Debug, Clone, Copy)]
pub struct Timeline<'a> {
    /// What each stream did.
    pub streams: &'a [StreamOutcome],
    /// Vertical lines for events (a bulk transfer starting), with a label.
    pub markers: &'a [(f64, String)],
    /// The run's length: the x axis' extent.
    pub seconds: u64,
}

impl Timeline<'_> {
    /// Frames per second per interval, one line per stream: decodable frames
    /// (what a viewer sees) above, frames that arrived whole below.
    pub fn draw_fps(&self, path: &Path, title: &str) -> Result<()> {
        let panel = |caption: &str, rate: fn(&IntervalStats) -> f64| Panel {
            title: caption.into(),
            y_label: "frames per second".into(),
            ..self.panel(
                "time (s)",
                None,
                true,
                self.series(|s| {
                    s.intervals
                        .iter()
                        .map(|iv| (iv.start.as_secs_f64(), rate(iv)))
                        .collect()
                }),
            )
        };
        plot::panels(
            path,
            title,
            &[
                panel(
                    "decodable frames (whole, and no reference lost since the last I-frame), per second of each 5 s interval",
                    |iv| iv.decodable_fps,
                ),
                panel(
                    "frames that arrived whole, per second of each 5 s interval",
                    |iv| iv.fps,
                ),
            ],
        )
    }

    /// Jitter of each frame over time, and its p99 per interval.
    pub fn draw_jitter(&self, path: &Path, title: &str) -> Result<()> {
        const CLIP_MS: f64 = 60.0;
        let per_frame = self.series(|s| {
            lanes::frame_jitter(&s.frames, s.fps)
                .into_iter()
                .map(|(t, j)| (t, j.min(CLIP_MS)))
                .collect()
        });
        let p99 = self.series(|s| {
            s.intervals
                .iter()
                .map(|iv| {
                    (
                        iv.start.as_secs_f64(),
                        iv.jitter_p99_ms.unwrap_or(CLIP_MS).min(CLIP_MS),
                    )
                })
                .collect()
        });
        plot::panels(
            path,
            title,
            &[
                Panel {
                    title: format!("each frame: |gap to the previous frame − frame interval| (ms, clipped at {CLIP_MS} ms)"),
                    y_label: "jitter (ms)".into(),
                    ..self.panel("arrival time (s)", Some(CLIP_MS), false, per_frame)
                },
                Panel {
                    title: format!("99th percentile per 5 s interval (ms, clipped at {CLIP_MS} ms; no frames: at the clip)"),
                    y_label: "jitter p99 (ms)".into(),
                    ..self.panel("time (s)", Some(CLIP_MS), true, p99)
                },
            ],
        )
    }

    /// A panel of `series` over the run, with its markers, the y axis up to
    /// `y_max` (`None` fits the data), points joined as `steps` or directly;
    /// the caller names the panel and its y axis.
    fn panel(&self, x_label: &str, y_max: Option<f64>, steps: bool, series: Vec<Series>) -> Panel {
        Panel {
            title: String::new(),
            x_label: x_label.into(),
            y_label: String::new(),
            x_range: (0.0, self.seconds as f64),
            y_max,
            series,
            markers: self.markers.to_vec(),
            steps,
        }
    }

    /// One line per stream, in the palette's colours, through `points`.
    fn series(&self, points: impl Fn(&StreamOutcome) -> Vec<(f64, f64)>) -> Vec<Series> {
        self.streams
            .iter()
            .enumerate()
            .map(|(i, s)| Series {
                name: s.label.clone(),
                color: PALETTE[i % PALETTE.len()],
                points: points(s),
            })
            .collect()
    }
}
