//! A path run's series, interval by interval, and its figures over a span:
//! what a viewer got, what was lost, how late frames came, and what the
//! sender believed the path carries against what the router let through.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::SentFrame;
use crate::stats::percentile;
use crate::{intervals, FrameArrival};

/// What the run looked like at one moment (one tick of the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSample {
    /// When, since the run's epoch.
    pub at: Duration,
    /// The router's rate then, bits per second.
    pub router_bps: u64,
    /// The sender's estimate of what the path carries (qsocksink's
    /// `estimated-bitrate`, rtpgccbwe's), bits per second; None for senders
    /// without one.
    pub estimate_bps: Option<u64>,
    /// The encoder's target bitrate, bits per second.
    pub encoder_bps: u64,
}

/// One interval of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PathRow {
    /// Its start, in seconds since the epoch.
    pub start_s: f64,
    /// Its length, in seconds.
    pub length_s: f64,
    /// Frames that arrived whole in it, per second.
    pub fps: f64,
    /// Of those, the ones a decoder could show, per second.
    pub decodable_fps: f64,
    /// Frames captured in it that the payloader sent on.
    pub frames_sent: u32,
    /// Of those, I-frames.
    pub intra_sent: u32,
    /// I-frames captured in it that never arrived whole.
    pub intra_lost: u32,
    /// The 99th percentile (nearest rank) of the one-way delay, from
    /// capture to the arrival of the last packet, of the frames captured
    /// in it that arrived whole, in ms.
    pub delay_p99_ms: Option<f64>,
    /// The sender's mean estimate in it, bits per second.
    pub estimate_bps: Option<f64>,
    /// The encoder's mean target bitrate in it, bits per second.
    pub encoder_bps: Option<f64>,
    /// The router's mean rate in it, bits per second.
    pub router_bps: Option<f64>,
}

/// Splits `[0, until)` into intervals of `length`; frames count by arrival
/// for the frame rates and by capture for losses and delays.
pub fn path_rows(
    frames: &[FrameArrival],
    sent: &[SentFrame],
    samples: &[PathSample],
    frame_interval: Duration,
    length: Duration,
    until: Duration,
) -> Vec<PathRow> {
    let rates = intervals(frames, frame_interval, length, until);
    let arrived: HashMap<u32, Duration> = frames
        .iter()
        .map(|f| (f.rtp_timestamp, f.arrived))
        .collect();
    rates
        .iter()
        .map(|rate| {
            let (start, end) = (rate.start, rate.start + rate.length);
            let within = |at: Duration| start <= at && at < end;
            let captured: Vec<&SentFrame> = sent.iter().filter(|f| within(f.captured)).collect();
            let intra: Vec<&&SentFrame> = captured.iter().filter(|f| f.intra).collect();
            let mut delays: Vec<f64> = captured
                .iter()
                .filter_map(|f| arrived.get(&f.rtp_timestamp).map(|a| delay_ms(f, *a)))
                .collect();
            delays.sort_by(f64::total_cmp);
            let in_interval: Vec<&PathSample> = samples.iter().filter(|s| within(s.at)).collect();
            PathRow {
                start_s: start.as_secs_f64(),
                length_s: rate.length.as_secs_f64(),
                fps: rate.fps,
                decodable_fps: rate.decodable_fps,
                frames_sent: captured.len() as u32,
                intra_sent: intra.len() as u32,
                intra_lost: intra
                    .iter()
                    .filter(|f| !arrived.contains_key(&f.rtp_timestamp))
                    .count() as u32,
                delay_p99_ms: percentile(&delays, 0.99),
                estimate_bps: mean(
                    in_interval
                        .iter()
                        .filter_map(|s| s.estimate_bps)
                        .map(|v| v as f64),
                ),
                encoder_bps: mean(in_interval.iter().map(|s| s.encoder_bps as f64)),
                router_bps: mean(in_interval.iter().map(|s| s.router_bps as f64)),
            }
        })
        .collect()
}

/// A run's figures from `from` to `until`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PathSummary {
    /// Decodable frames that arrived in the span, per second.
    pub decodable_fps: f64,
    /// I-frames captured in the span that never arrived whole.
    pub intra_lost: u32,
    /// I-frames captured in the span.
    pub intra_sent: u32,
    /// The 99th percentile of the one-way delay of the frames captured in
    /// the span that arrived whole, in ms.
    pub delay_p99_ms: Option<f64>,
    /// The mean of the sender's estimate over the router's rate, sample by
    /// sample (the encoder's target for senders without an estimate).
    pub rate_over_router: Option<f64>,
}

impl PathSummary {
    /// The figures of the span `[from, until)`.
    pub fn of(
        frames: &[FrameArrival],
        sent: &[SentFrame],
        samples: &[PathSample],
        from: Duration,
        until: Duration,
    ) -> PathSummary {
        let within = |at: Duration| from <= at && at < until;
        let decodable = frames
            .iter()
            .filter(|f| f.decodable && within(f.arrived))
            .count();
        let arrived: HashMap<u32, Duration> = frames
            .iter()
            .map(|f| (f.rtp_timestamp, f.arrived))
            .collect();
        let captured: Vec<&SentFrame> = sent.iter().filter(|f| within(f.captured)).collect();
        let mut delays: Vec<f64> = captured
            .iter()
            .filter_map(|f| arrived.get(&f.rtp_timestamp).map(|a| delay_ms(f, *a)))
            .collect();
        delays.sort_by(f64::total_cmp);
        let intra: Vec<&&SentFrame> = captured.iter().filter(|f| f.intra).collect();
        PathSummary {
            decodable_fps: decodable as f64 / until.saturating_sub(from).as_secs_f64().max(1e-9),
            intra_lost: intra
                .iter()
                .filter(|f| !arrived.contains_key(&f.rtp_timestamp))
                .count() as u32,
            intra_sent: intra.len() as u32,
            delay_p99_ms: percentile(&delays, 0.99),
            rate_over_router: mean(samples.iter().filter(|s| within(s.at)).map(|s| {
                let rate = s.estimate_bps.unwrap_or(s.encoder_bps);
                rate as f64 / s.router_bps.max(1) as f64
            })),
        }
    }
}

/// How long after `step` the decodable rate came back for good: the start
/// of the first of `rows` (one-second rows) at or after `step`, before
/// `until`, from which every row up to `until` has at least `fps`
/// decodable frames per second, less `step`. None when it never did.
pub fn recovery_after(
    rows: &[PathRow],
    step: Duration,
    until: Duration,
    fps: f64,
) -> Option<Duration> {
    let (step_s, until_s) = (step.as_secs_f64(), until.as_secs_f64());
    let span: Vec<&PathRow> = rows
        .iter()
        .filter(|r| r.start_s >= step_s && r.start_s + r.length_s <= until_s)
        .collect();
    let first_good = span
        .iter()
        .rposition(|r| r.decodable_fps < fps)
        .map_or(0, |last_bad| last_bad + 1);
    span.get(first_good)
        .map(|r| Duration::from_secs_f64(r.start_s - step_s))
}

fn delay_ms(frame: &SentFrame, arrived: Duration) -> f64 {
    arrived.saturating_sub(frame.captured).as_secs_f64() * 1e3
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(40);

    /// 25 fps for `seconds`, an I-frame every 25th; each arrives `delay`
    /// after capture unless `lost` says otherwise.
    fn run(
        seconds: u64,
        delay: Duration,
        lost: impl Fn(u32) -> bool,
    ) -> (Vec<FrameArrival>, Vec<SentFrame>) {
        let (mut frames, mut sent) = (Vec::new(), Vec::new());
        for n in 0..(seconds as u32 * 25) {
            let captured = FRAME * n;
            let rtp_timestamp = 3600 * n;
            sent.push(SentFrame {
                rtp_timestamp,
                captured,
                intra: n % 25 == 0,
            });
            if !lost(n) {
                frames.push(FrameArrival {
                    rtp_timestamp,
                    frame: u64::from(n),
                    arrived: captured + delay,
                    decodable: true,
                });
            }
        }
        (frames, sent)
    }

    fn samples(seconds: u64, estimate: u64, router: u64) -> Vec<PathSample> {
        (0..seconds * 10)
            .map(|tick| PathSample {
                at: Duration::from_millis(100 * tick),
                router_bps: router,
                estimate_bps: Some(estimate),
                encoder_bps: estimate,
            })
            .collect()
    }

    #[test]
    fn lost_intra_frames_count_where_they_were_captured() {
        // Frame 25 (the I-frame at 1 s) and frame 30 are lost.
        let (frames, sent) = run(3, Duration::from_millis(30), |n| n == 25 || n == 30);
        let rows = path_rows(
            &frames,
            &sent,
            &samples(3, 1_000_000, 1_500_000),
            FRAME,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].intra_sent, rows[0].intra_lost), (1, 0));
        assert_eq!((rows[1].intra_sent, rows[1].intra_lost), (1, 1));
        assert_eq!(rows[1].frames_sent, 25);
        let delay = rows[1].delay_p99_ms.expect("frames arrived");
        assert!((delay - 30.0).abs() < 1e-6, "{delay}");
        assert_eq!(rows[1].estimate_bps, Some(1_000_000.0));
        assert_eq!(rows[1].router_bps, Some(1_500_000.0));
    }

    #[test]
    fn the_summary_takes_its_span_only() {
        let (frames, sent) = run(4, Duration::from_millis(20), |n| n == 0);
        let summary = PathSummary::of(
            &frames,
            &sent,
            &samples(4, 1_200_000, 1_500_000),
            Duration::from_secs(1),
            Duration::from_secs(4),
        );
        assert!((summary.decodable_fps - 25.0).abs() < 0.5, "{summary:?}");
        assert_eq!((summary.intra_sent, summary.intra_lost), (3, 0));
        let ratio = summary.rate_over_router.expect("samples");
        assert!((ratio - 0.8).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn recovery_is_the_first_second_from_which_the_rate_holds() {
        let row = |start: f64, fps: f64| PathRow {
            start_s: start,
            length_s: 1.0,
            fps,
            decodable_fps: fps,
            frames_sent: 25,
            intra_sent: 1,
            intra_lost: 0,
            delay_p99_ms: None,
            estimate_bps: None,
            encoder_bps: None,
            router_bps: None,
        };
        // Good, a dip at 21 and 23, good from 24 to the next step at 26.
        let rows: Vec<PathRow> = (18..26)
            .map(|s| row(f64::from(s), if s == 21 || s == 23 { 3.0 } else { 25.0 }))
            .collect();
        let secs = Duration::from_secs;
        assert_eq!(
            recovery_after(&rows, secs(20), secs(26), 23.75),
            Some(secs(4))
        );
        let never: Vec<PathRow> = (20..26).map(|s| row(f64::from(s), 0.0)).collect();
        assert_eq!(recovery_after(&never, secs(20), secs(26), 23.75), None);
    }
}
