//! Frames per second and inter-frame jitter, interval by interval.

use std::time::Duration;

use crate::FrameArrival;

/// What a receiver saw in one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalStats {
    /// Where the interval starts, since the run's epoch.
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// Frames that arrived whole in it.
    pub frames: u32,
    /// Those frames per second of the interval.
    pub fps: f64,
    /// Frames that arrived whole and decodable in it (see
    /// [`FrameArrival::decodable`]).
    pub decodable_frames: u32,
    /// Those frames per second: the rate a viewer sees.
    pub decodable_fps: f64,
    /// Mean inter-frame jitter, in ms: how far the gap between a frame and
    /// the one that arrived before it is from the nominal frame interval,
    /// for the frames that arrived in this interval. None without a gap.
    pub jitter_mean_ms: Option<f64>,
    /// The 99th percentile of the same (nearest rank).
    pub jitter_p99_ms: Option<f64>,
}

/// Splits `[0, until)` into intervals of `length` and measures the frames
/// that arrived in each against the `nominal` frame interval. A frame's gap
/// counts in the interval it arrived in; the first frame has none. Frames
/// need not be sorted.
pub fn intervals(
    frames: &[FrameArrival],
    nominal: Duration,
    length: Duration,
    until: Duration,
) -> Vec<IntervalStats> {
    assert!(!length.is_zero(), "intervals need a length");
    let mut arrivals: Vec<(Duration, bool)> =
        frames.iter().map(|f| (f.arrived, f.decodable)).collect();
    arrivals.sort();
    let count = until.as_nanos().div_ceil(length.as_nanos()) as usize;
    let mut per_interval: Vec<(u32, u32, Vec<f64>)> = vec![(0, 0, Vec::new()); count];
    let index = |at: Duration| (at.as_nanos() / length.as_nanos()) as usize;
    for (i, &(arrived, decodable)) in arrivals.iter().enumerate() {
        let Some((frames, decodable_frames, jitters)) = per_interval.get_mut(index(arrived)) else {
            continue;
        };
        *frames += 1;
        *decodable_frames += u32::from(decodable);
        if let Some(&(before, _)) = i.checked_sub(1).and_then(|b| arrivals.get(b)) {
            let gap = (arrived - before).as_secs_f64();
            jitters.push((gap - nominal.as_secs_f64()).abs() * 1e3);
        }
    }
    per_interval
        .into_iter()
        .enumerate()
        .map(|(i, (frames, decodable_frames, mut jitters))| {
            jitters.sort_by(f64::total_cmp);
            let start = length * i as u32;
            let end = (start + length).min(until);
            let seconds = (end - start).as_secs_f64();
            IntervalStats {
                start,
                length: end - start,
                frames,
                fps: f64::from(frames) / seconds,
                decodable_frames,
                decodable_fps: f64::from(decodable_frames) / seconds,
                jitter_mean_ms: (!jitters.is_empty())
                    .then(|| jitters.iter().sum::<f64>() / jitters.len() as f64),
                jitter_p99_ms: percentile(&jitters, 0.99),
            }
        })
        .collect()
}

/// The nearest-rank percentile `q` of sorted `values`.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(ms: u64) -> FrameArrival {
        FrameArrival {
            rtp_timestamp: 0,
            frame: 0,
            arrived: Duration::from_millis(ms),
            decodable: true,
        }
    }

    #[test]
    fn counts_frames_and_measures_gaps_against_the_nominal_interval() {
        let nominal = Duration::from_millis(50);
        // Second 0: on time every 50 ms. Second 1: one frame 100 ms late,
        // then back on time (and one missing). Second 2: nothing.
        let mut frames: Vec<FrameArrival> = (0..20).map(|i| arrival(i * 50)).collect();
        frames.extend([1050, 1200, 1250].map(arrival));
        let stats = intervals(
            &frames,
            nominal,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        assert_eq!(stats.len(), 3);
        assert_eq!((stats[0].frames, stats[0].fps), (20, 20.0));
        assert_eq!(stats[0].jitter_mean_ms, Some(0.0));
        assert_eq!(stats[1].frames, 3);
        // Gaps 100 (from 950), 150, 50: deviations 50, 100, 0.
        let mean = stats[1].jitter_mean_ms.expect("gaps");
        assert!((mean - 50.0).abs() < 1e-6, "{mean}");
        assert!((stats[1].jitter_p99_ms.expect("gaps") - 100.0).abs() < 1e-6);
        assert_eq!((stats[2].frames, stats[2].jitter_mean_ms), (0, None));
    }

    #[test]
    fn only_decodable_frames_count_towards_the_decodable_rate() {
        let frames: Vec<FrameArrival> = (0..20)
            .map(|i| FrameArrival {
                decodable: i < 5,
                ..arrival(i * 50)
            })
            .collect();
        let stats = intervals(
            &frames,
            Duration::from_millis(50),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!((stats[0].frames, stats[0].decodable_frames), (20, 5));
        assert_eq!((stats[0].fps, stats[0].decodable_fps), (20.0, 5.0));
    }

    #[test]
    fn a_last_partial_interval_is_measured_over_its_own_length() {
        let frames: Vec<FrameArrival> = (0..30).map(|i| arrival(i * 50)).collect();
        let stats = intervals(
            &frames,
            Duration::from_millis(50),
            Duration::from_secs(1),
            Duration::from_millis(1500),
        );
        assert_eq!(stats[1].length, Duration::from_millis(500));
        assert_eq!(stats[1].fps, 20.0);
    }
}
