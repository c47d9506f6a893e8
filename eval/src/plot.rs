//! PNG plots with plotters: one or more panels stacked in one image, each a
//! set of named series over time, with vertical markers for events (a bulk
//! transfer starting).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::Result;

/// Width of every image, in pixels; each panel adds `PANEL_HEIGHT`.
const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 340;
const TITLE_HEIGHT: u32 = 40;

/// Colours that stay apart for colour-blind readers (Okabe and Ito).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
];

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// Its colour.
    pub color: RGBColor,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of the image.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// Axis labels.
    pub x_label: String,
    /// Axis labels.
    pub y_label: String,
    /// The x axis' extent.
    pub x_range: (f64, f64),
    /// The y axis' top; `None` fits the data.
    pub y_max: Option<f64>,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical dashed lines at these x, with a label.
    pub markers: Vec<(f64, String)>,
    /// Draw each point as a step holding its value until the next point
    /// (per-interval counts), instead of joining points directly.
    pub steps: bool,
}

/// Draws `panels` one under the other into a PNG at `path`.
pub fn panels(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    sans_serif_font()?;
    let failed = |err: &dyn std::fmt::Display| format!("cannot draw {}: {err}", path.display());
    let height = TITLE_HEIGHT + PANEL_HEIGHT * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let (top, body) = root.split_vertically(TITLE_HEIGHT);
    top.titled(title, ("sans-serif", 22))
        .map_err(|e| failed(&e))?;
    let areas = body.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel).map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let y_max = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_top = match panel.y_max {
        Some(top) => top,
        None if y_max > 0.0 => y_max * 1.15,
        None => 1.0,
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(panel.x_range.0..panel.x_range.1, 0.0..y_top)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (x, label) in &panel.markers {
        chart.draw_series(DashedLineSeries::new(
            [(*x, 0.0), (*x, y_top)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (*x, y_top * 0.97),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    let count = panel.series.len() as u32;
    for (i, series) in panel.series.iter().enumerate() {
        let color = series.color;
        let points = if panel.steps {
            steps(&series.points, panel.x_range.1)
        } else {
            series.points.clone()
        };
        // Streams often hold the same value: each line is drawn thinner
        // than the one under it, so that every colour stays in sight.
        let width = if panel.steps {
            2 + 2 * (count - 1 - i as u32)
        } else {
            2
        };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// Registers the system's sans-serif font with plotters, once: its ab_glyph
/// text renderer has no font of its own. fc-match (fontconfig) names the file.
fn sans_serif_font() -> Result<()> {
    static FONT: OnceLock<Result<()>> = OnceLock::new();
    FONT.get_or_init(|| {
        let help = "install fontconfig and fonts-dejavu-core (make deps does)";
        let output = Command::new("fc-match")
            .args(["--format=%{file}", "sans-serif"])
            .output()
            .map_err(|err| format!("cannot run fc-match to find a font: {err}; {help}"))?;
        let file = String::from_utf8_lossy(&output.stdout).into_owned();
        let data = std::fs::read(&file).map_err(|err| {
            format!("cannot read the font {file:?} fc-match named: {err}; {help}")
        })?;
        // plotters keeps a registered font for the whole process.
        let data: &'static [u8] = Box::leak(data.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, data)
            .map_err(|_| format!("{file} is not a font plotters can read; {help}"))
    })
    .clone()
}

/// A staircase through `points`: each value holds until the next x (the
/// last until `end`).
fn steps(points: &[(f64, f64)], end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(x, y)) in points.iter().enumerate() {
        let next = points.get(i + 1).map_or(end, |p| p.0);
        out.push((x, y));
        out.push((next, y));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_each_value_to_the_next_point() {
        assert_eq!(
            steps(&[(0.0, 3.0), (5.0, 1.0)], 10.0),
            vec![(0.0, 3.0), (5.0, 3.0), (5.0, 1.0), (10.0, 1.0)]
        );
    }

    #[test]
    fn a_two_panel_png_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        let panel = Panel {
            title: "late".into(),
            x_label: "s".into(),
            y_label: "messages".into(),
            x_range: (0.0, 10.0),
            y_max: None,
            series: vec![Series {
                name: "lossy EDF".into(),
                color: RGBColor(0, 0, 255),
                points: vec![(0.0, 1.0), (5.0, 2.0)],
            }],
            markers: vec![(5.0, "bulk TCP starts".into())],
            steps: true,
        };
        panels(&path, "test", &[panel.clone(), panel]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
