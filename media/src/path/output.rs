//! A path run's series as CSV and as a PNG: decodable frames per second,
//! each sender's rate against the router's, and the p99 frame delay.

use std::path::Path;

use plotters::prelude::*;

use super::PathRow;
use crate::plot::{legend, register_font, timeline_chart, PALETTE};
use crate::{Error, Result};

/// One sender's rows, for [`write_path_csv`] and [`plot_path_png`].
#[derive(Debug, Clone, Copy)]
pub struct PathSeries<'a> {
    /// The legend's and the `stream` column's name for it.
    pub label: &'a str,
    /// Its intervals.
    pub rows: &'a [PathRow],
}

/// The CSV's columns: the stream, then [`PathRow`]'s fields.
const HEADER: [&str; 12] = [
    "stream",
    "start_s",
    "length_s",
    "fps",
    "decodable_fps",
    "frames_sent",
    "intra_sent",
    "intra_lost",
    "delay_p99_ms",
    "estimate_bps",
    "encoder_bps",
    "router_bps",
];

/// Writes `series` to `path` as CSV with a header: stream, then
/// [`PathRow`]'s fields (empty where nothing was measured).
pub fn write_path_csv(path: &Path, series: &[PathSeries<'_>]) -> Result<()> {
    let io = |source: std::io::Error| Error::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    let mut writer = csv::Writer::from_path(path).map_err(|err| io(err.into()))?;
    writer.write_record(HEADER).map_err(|err| io(err.into()))?;
    for stream in series {
        for row in stream.rows {
            writer
                .write_record(record(stream.label, row))
                .map_err(|err| io(err.into()))?;
        }
    }
    writer.flush().map_err(io)
}

fn record(label: &str, row: &PathRow) -> [String; 12] {
    let cell = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.3}"));
    [
        label.to_owned(),
        row.start_s.to_string(),
        row.length_s.to_string(),
        format!("{:.3}", row.fps),
        format!("{:.3}", row.decodable_fps),
        row.frames_sent.to_string(),
        row.intra_sent.to_string(),
        row.intra_lost.to_string(),
        cell(row.delay_p99_ms),
        cell(row.estimate_bps),
        cell(row.encoder_bps),
        cell(row.router_bps),
    ]
}

/// Draws `series` into a PNG at `path`: decodable fps (the `nominal_fps`
/// marked), each sender's estimate (its encoder's target when it has none)
/// with the router's rate in black, and the p99 one-way frame delay; dashed
/// lines at `marks` (seconds: the router's steps).
pub fn plot_path_png(
    path: &Path,
    title: &str,
    series: &[PathSeries<'_>],
    marks: &[f64],
    nominal_fps: f64,
) -> Result<()> {
    register_font()?;
    let plot_error =
        |err: &dyn std::fmt::Display| Error::Plot(format!("{}: {err}", path.display()));
    let rows = || series.iter().flat_map(|s| s.rows.iter());
    let end_s = rows().map(|r| r.start_s + r.length_s).fold(1.0, f64::max);
    let rate = |r: &PathRow| r.estimate_bps.or(r.encoder_bps).map(|bps| bps / 1e6);
    let router = |r: &PathRow| r.router_bps.map(|bps| bps / 1e6);
    type Value = fn(&PathRow) -> Option<f64>;
    // Each panel: its axis, its value, a reference line, its least top.
    let panels: [(&str, Value, Option<Value>, f64); 3] = [
        (
            "decodable fps",
            |r| Some(r.decodable_fps),
            None,
            nominal_fps,
        ),
        ("Mbit/s (black: router)", rate, Some(router), 0.1),
        ("p99 frame delay (ms)", |r| r.delay_p99_ms, None, 1.0),
    ];
    let root = BitMapBackend::new(path, (1000, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| plot_error(&e))?;
    for (area, (y_label, value, reference, least)) in root.split_evenly((3, 1)).iter().zip(panels) {
        let y_max = rows()
            .flat_map(|r| [value(r), reference.and_then(|f| f(r))])
            .flatten()
            .fold(least, f64::max)
            * 1.2;
        let mut chart = timeline_chart(area, end_s, y_max, y_label).map_err(|e| plot_error(&e))?;
        for &mark in marks {
            chart
                .draw_series(DashedLineSeries::new(
                    [(mark, 0.0), (mark, y_max)],
                    6,
                    4,
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(|e| plot_error(&e))?;
        }
        if let Some(reference) = reference {
            let first = series.first().map_or(&[][..], |s| s.rows);
            chart
                .draw_series(LineSeries::new(
                    steps(first, reference),
                    BLACK.stroke_width(2),
                ))
                .map_err(|e| plot_error(&e))?
                .label("router")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        }
        for (stream, color) in series.iter().zip(PALETTE.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(
                    steps(stream.rows, value),
                    color.stroke_width(2),
                ))
                .map_err(|e| plot_error(&e))?
                .label(stream.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart).map_err(|e| plot_error(&e))?;
    }
    root.present().map_err(|e| plot_error(&e))
}

/// Each row's value held across the row: a staircase.
fn steps(rows: &[PathRow], value: impl Fn(&PathRow) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((r.start_s, r.start_s + r.length_s, value(r)?)))
        .flat_map(|(start, end, y)| [(start, y), (end, y)])
        .collect()
}
