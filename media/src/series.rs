//! The per-interval series as CSV, one row per stream and interval.

use std::path::Path;

use serde::Serialize;

use crate::{BulkPeriod, Error, IntervalStats, Result};

/// One stream's series, for [`write_csv`].
#[derive(Debug, Clone, Copy)]
pub struct CsvStream<'a> {
    /// The stream's label, the `stream` column.
    pub label: &'a str,
    /// Its intervals.
    pub intervals: &'a [IntervalStats],
}

#[derive(Serialize)]
struct Row<'a> {
    stream: &'a str,
    start_s: f64,
    length_s: f64,
    frames: u32,
    fps: f64,
    decodable_fps: f64,
    jitter_mean_ms: Option<f64>,
    jitter_p99_ms: Option<f64>,
    /// Did a bulk transfer run at any time in the interval?
    bulk: bool,
}

/// Writes `streams` to `path` as CSV with a header: stream, start_s,
/// length_s, frames, fps, decodable_fps, jitter_mean_ms, jitter_p99_ms (empty without a
/// gap), bulk (whether a bulk period overlapped the interval).
pub fn write_csv(path: &Path, streams: &[CsvStream<'_>], bulk: &[BulkPeriod]) -> Result<()> {
    let io = |source: std::io::Error| Error::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    let mut writer = csv::Writer::from_path(path).map_err(|err| io(err.into()))?;
    for stream in streams {
        for interval in stream.intervals {
            let end = interval.start + interval.length;
            writer
                .serialize(Row {
                    stream: stream.label,
                    start_s: interval.start.as_secs_f64(),
                    length_s: interval.length.as_secs_f64(),
                    frames: interval.frames,
                    fps: interval.fps,
                    decodable_fps: interval.decodable_fps,
                    jitter_mean_ms: interval.jitter_mean_ms,
                    jitter_p99_ms: interval.jitter_p99_ms,
                    bulk: bulk
                        .iter()
                        .any(|p| p.start < end && interval.start < p.stop),
                })
                .map_err(|err| io(err.into()))?;
        }
    }
    writer.flush().map_err(io)
}
