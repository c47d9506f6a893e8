//! The per-interval series as a PNG: frames per second above (decodable
//! frames thick, frames that arrived whole thin), inter-frame jitter below
//! (interval means thick, 99th percentiles thin), one colour per stream,
//! bulk periods shaded.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{BulkPeriod, Error, IntervalStats, Result};

/// One stream's series, for [`plot_png`].
#[derive(Debug, Clone, Copy)]
pub struct PlotStream<'a> {
    /// The legend's name for it.
    pub label: &'a str,
    /// Its intervals.
    pub intervals: &'a [IntervalStats],
}

/// One colour per stream (Okabe and Ito's, apart for colour-blind readers).
pub(crate) const PALETTE: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];
const SHADE: RGBColor = RGBColor(120, 120, 120);

/// Draws `streams` into a PNG at `path`, titled `title`, with the `bulk`
/// periods shaded and the `nominal_fps` marked. The thick frame-rate lines
/// are decodable frames, the thin ones frames that arrived whole; the thick
/// jitter lines are the interval means, the thin ones the 99th percentiles.
pub fn plot_png(
    path: &Path,
    title: &str,
    streams: &[PlotStream<'_>],
    bulk: &[BulkPeriod],
    nominal_fps: f64,
) -> Result<()> {
    register_font()?;
    let plot_error =
        |err: &dyn std::fmt::Display| Error::Plot(format!("{}: {err}", path.display()));
    let end_s = streams
        .iter()
        .flat_map(|s| s.intervals.last())
        .map(|i| (i.start + i.length).as_secs_f64())
        .fold(1.0, f64::max);
    let jitter_max = streams
        .iter()
        .flat_map(|s| s.intervals.iter())
        .filter_map(|i| i.jitter_p99_ms)
        .fold(10.0, f64::max)
        * 1.1;
    let fps_max = streams
        .iter()
        .flat_map(|s| s.intervals.iter())
        .map(|i| i.fps)
        .fold(nominal_fps, f64::max)
        * 1.25;

    let root = BitMapBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| plot_error(&e))?;
    let (top, bottom) = root.split_vertically(350);
    let panels = [
        (
            top,
            "decodable fps (thin: whole)",
            fps_max,
            Some(nominal_fps),
        ),
        (bottom, "inter-frame jitter (ms)", jitter_max, None),
    ];
    for (panel_index, (area, y_label, y_max, reference)) in panels.into_iter().enumerate() {
        let mut chart = timeline_chart(&area, end_s, y_max, y_label).map_err(|e| plot_error(&e))?;
        chart
            .draw_series(bulk.iter().map(|p| {
                Rectangle::new(
                    [(p.start.as_secs_f64(), 0.0), (p.stop.as_secs_f64(), y_max)],
                    SHADE.mix(0.18).filled(),
                )
            }))
            .map_err(|e| plot_error(&e))?
            .label("bulk TCP transfer")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 6), (x + 16, y + 6)], SHADE.mix(0.3).filled())
            });
        if let Some(reference) = reference {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, reference), (end_s, reference)],
                    BLACK.mix(0.4).stroke_width(1),
                ))
                .map_err(|e| plot_error(&e))?;
        }
        for (stream, color) in streams.iter().zip(PALETTE.iter().cycle()) {
            let midpoint = |i: &IntervalStats| (i.start + i.length / 2).as_secs_f64();
            let values: Vec<(f64, Option<f64>, Option<f64>)> = stream
                .intervals
                .iter()
                .map(|i| match panel_index {
                    0 => (midpoint(i), Some(i.decodable_fps), Some(i.fps)),
                    _ => (midpoint(i), i.jitter_mean_ms, i.jitter_p99_ms),
                })
                .collect();
            let main = values.iter().filter_map(|&(x, y, _)| Some((x, y?)));
            chart
                .draw_series(LineSeries::new(main, color.stroke_width(2)))
                .map_err(|e| plot_error(&e))?
                .label(stream.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            let thin = values.iter().filter_map(|&(x, _, y)| Some((x, y?)));
            chart
                .draw_series(LineSeries::new(thin, color.mix(0.5).stroke_width(1)))
                .map_err(|e| plot_error(&e))?;
        }
        legend(&mut chart).map_err(|e| plot_error(&e))?;
    }
    root.present().map_err(|e| plot_error(&e))
}

/// A chart over `[0, end_s)` seconds and `[0, y_max)` on `area`, its
/// mesh drawn, the y axis labelled `y_label`.
pub(crate) fn timeline_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    end_s: f64,
    y_max: f64,
    y_label: &str,
) -> std::result::Result<Timeline<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end_s, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_label)
        .light_line_style(WHITE)
        .draw()?;
    Ok(chart)
}

/// A chart of [`timeline_chart`].
pub(crate) type Timeline<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the legend of `chart`'s labelled series, top right.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Timeline<'a, DB>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
}

/// Gives plotters a sans-serif font: the system's, as fontconfig finds it
/// (plotters draws text with ab_glyph, which brings no font of its own).
pub(crate) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let missing = "no sans-serif font found: install fontconfig and fonts-dejavu-core \
                           (`make deps` does)";
            let output = Command::new("fc-match")
                .args(["--format=%{file}", "sans-serif"])
                .output()
                .map_err(|err| format!("{missing} (fc-match: {err})"))?;
            let file = String::from_utf8_lossy(&output.stdout).into_owned();
            let bytes = std::fs::read(&file).map_err(|err| format!("{missing} ({file}: {err})"))?;
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{file} is not a font plotters can read"))
        })
        .clone()
        .map_err(Error::Plot)
}
