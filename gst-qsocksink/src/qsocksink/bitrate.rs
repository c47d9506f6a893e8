//! The bitrate the path sustains, estimated from what the scheduler reports,
//! and how each known encoder is told a bitrate.
//!
//! Additive increase, multiplicative decrease: a congested interval (packets
//! late or lost, or queueing delay standing well above the least seen) cuts
//! the estimate by a quarter at once; a clear interval raises it by a small
//! fixed step. Cutting fast empties the queue before deadlines pile up;
//! climbing slowly keeps the stream from oscillating around the capacity.

use std::time::Duration;

/// Share of offered packets that may be late or lost in an interval before
/// it counts as congested: a single late packet is noise, a steady few
/// percent is a queue that will not drain.
const LOSS_TOLERANCE: f64 = 0.02;

/// How far the mean queueing delay may stand above the least seen before the
/// interval counts as congested: a few milliseconds are the scheduler's own
/// pacing, more is a standing queue.
const QUEUE_DELAY_TOLERANCE: Duration = Duration::from_millis(10);

/// What one congested interval leaves of the estimate.
const DECREASE_FACTOR: f64 = 0.75;

/// Clear intervals waited after a decrease before climbing again, so that a
/// decrease has time to show in the scheduler's figures.
const HOLD_AFTER_DECREASE: u32 = 2;

/// The smallest additive step, for narrow ranges.
const MIN_STEP_BPS: u64 = 10_000;

/// Intervals a climb from zero to `max` takes at the additive step.
const CLIMB_INTERVALS: u64 = 50;

/// What the scheduler showed over one feedback interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Packets given to the socket in the interval.
    pub offered_packets: u64,
    /// Of those (or of earlier ones), packets that missed their deadline or
    /// were dropped.
    pub late_or_lost_packets: u64,
    /// Mean queueing delay, where the scheduler measures it.
    pub queue_delay_mean: Option<Duration>,
    /// Rate that left the scheduler in the interval, in bits per second.
    pub delivered_bps: Option<u64>,
}

impl Observation {
    /// Share of offered packets that left on time, 0.0 to 1.0; 1.0 when
    /// nothing was offered.
    pub fn on_time_share(&self) -> f64 {
        1.0 - self.late_share()
    }

    /// Share of offered packets that were late or lost, 0.0 to 1.0.
    fn late_share(&self) -> f64 {
        if self.offered_packets == 0 {
            return 0.0;
        }
        let late = self.late_or_lost_packets.min(self.offered_packets);
        late as f64 / self.offered_packets as f64
    }
}

/// The estimate and what it remembers between intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct BitrateController {
    min_bps: u64,
    max_bps: u64,
    estimate_bps: Option<u64>,
    least_delay: Option<Duration>,
    hold: u32,
}

impl BitrateController {
    /// A controller that keeps its estimate within `min_bps..=max_bps`
    /// (swapped if given the wrong way round).
    pub fn new(min_bps: u64, max_bps: u64) -> Self {
        BitrateController {
            min_bps: min_bps.min(max_bps),
            max_bps: max_bps.max(min_bps),
            estimate_bps: None,
            least_delay: None,
            hold: 0,
        }
    }

    /// Changes the limits, keeping the estimate within them.
    pub fn set_limits(&mut self, min_bps: u64, max_bps: u64) {
        self.min_bps = min_bps.min(max_bps);
        self.max_bps = max_bps.max(min_bps);
        self.estimate_bps = self.estimate_bps.map(|bps| self.clamp(bps));
    }

    /// The current estimate, once there is one.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate_bps
    }

    /// Starts from a known rate (an encoder's setting) instead of the first
    /// delivered rate.
    pub fn seed(&mut self, bps: u64) {
        if self.estimate_bps.is_none() {
            self.estimate_bps = Some(self.clamp(bps));
        }
    }

    /// Takes one interval's figures; returns the new estimate when it changed.
    pub fn update(&mut self, observation: &Observation) -> Option<u64> {
        if observation.offered_packets == 0 {
            return None;
        }
        let previous = self.estimate_bps;
        let current = match previous {
            Some(bps) => bps,
            None => {
                let start = self.clamp(observation.delivered_bps.unwrap_or(self.max_bps));
                self.estimate_bps = Some(start);
                start
            }
        };
        let next = if self.congested(observation) {
            self.hold = HOLD_AFTER_DECREASE;
            (current as f64 * DECREASE_FACTOR) as u64
        } else if self.hold > 0 {
            self.hold -= 1;
            current
        } else {
            current.saturating_add(self.step())
        };
        let next = self.clamp(next);
        self.estimate_bps = Some(next);
        (Some(next) != previous).then_some(next)
    }

    fn congested(&mut self, observation: &Observation) -> bool {
        let lossy = observation.late_share() > LOSS_TOLERANCE;
        let queued = match observation.queue_delay_mean {
            Some(delay) => {
                let least = self.least_delay.map_or(delay, |least| least.min(delay));
                self.least_delay = Some(least);
                delay.saturating_sub(least) > QUEUE_DELAY_TOLERANCE
            }
            None => false,
        };
        lossy || queued
    }

    fn step(&self) -> u64 {
        (self.max_bps / CLIMB_INTERVALS).max(MIN_STEP_BPS)
    }

    fn clamp(&self, bps: u64) -> u64 {
        bps.clamp(self.min_bps, self.max_bps)
    }
}

/// How an encoder takes its bitrate: which property, in what unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderBitrate {
    /// The property's name.
    pub property: &'static str,
    /// Bits per second in one unit of the property (1000 for kbit/s).
    pub bits_per_unit: u64,
}

impl EncoderBitrate {
    /// `bps` in the property's unit, rounded to nearest, at least 1.
    pub fn to_units(self, bps: u64) -> u64 {
        ((bps + self.bits_per_unit / 2) / self.bits_per_unit).max(1)
    }

    /// A property value in bits per second.
    pub fn to_bps(self, units: u64) -> u64 {
        units.saturating_mul(self.bits_per_unit)
    }
}

/// The bitrate property of the encoders whose unit is known, by factory name.
pub fn encoder_bitrate(factory_name: &str) -> Option<EncoderBitrate> {
    let kbit = |property| EncoderBitrate {
        property,
        bits_per_unit: 1000,
    };
    let bit = |property| EncoderBitrate {
        property,
        bits_per_unit: 1,
    };
    match factory_name {
        "x264enc" | "x265enc" | "mpeg2enc" => Some(kbit("bitrate")),
        "openh264enc" => Some(bit("bitrate")),
        "vp8enc" | "vp9enc" => Some(bit("target-bitrate")),
        name if name.starts_with("avenc_") => Some(bit("bitrate")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(offered: u64, late: u64, delay_ms: u64) -> Observation {
        Observation {
            offered_packets: offered,
            late_or_lost_packets: late,
            queue_delay_mean: Some(Duration::from_millis(delay_ms)),
            delivered_bps: Some(3_000_000),
        }
    }

    #[test]
    fn starts_from_the_delivered_rate_within_limits() {
        let mut controller = BitrateController::new(1_000_000, 2_000_000);
        assert_eq!(controller.update(&interval(100, 0, 1)), Some(2_000_000));
        let mut wide = BitrateController::new(100_000, 10_000_000);
        // 3 Mbit/s delivered, then one step of 10 Mbit/s / 50 = 200 kbit/s.
        assert_eq!(wide.update(&interval(100, 0, 1)), Some(3_200_000));
    }

    #[test]
    fn loss_cuts_by_a_quarter_and_holds_before_climbing() {
        let mut controller = BitrateController::new(100_000, 10_000_000);
        controller.seed(4_000_000);
        assert_eq!(controller.update(&interval(100, 5, 1)), Some(3_000_000));
        assert_eq!(controller.update(&interval(100, 0, 1)), None);
        assert_eq!(controller.update(&interval(100, 0, 1)), None);
        assert_eq!(controller.update(&interval(100, 0, 1)), Some(3_200_000));
    }

    #[test]
    fn a_little_loss_is_tolerated() {
        let mut controller = BitrateController::new(100_000, 10_000_000);
        controller.seed(4_000_000);
        assert_eq!(controller.update(&interval(100, 2, 1)), Some(4_200_000));
    }

    #[test]
    fn a_standing_queue_counts_as_congestion() {
        let mut controller = BitrateController::new(100_000, 10_000_000);
        controller.seed(4_000_000);
        assert_eq!(controller.update(&interval(100, 0, 2)), Some(4_200_000));
        assert_eq!(controller.update(&interval(100, 0, 11)), Some(4_400_000));
        assert_eq!(controller.update(&interval(100, 0, 13)), Some(3_300_000));
    }

    #[test]
    fn never_leaves_the_limits() {
        let mut controller = BitrateController::new(500_000, 600_000);
        controller.seed(550_000);
        for _ in 0..10 {
            controller.update(&interval(100, 50, 1));
        }
        assert_eq!(controller.estimate(), Some(500_000));
        for _ in 0..100 {
            controller.update(&interval(100, 0, 1));
        }
        assert_eq!(controller.estimate(), Some(600_000));
        controller.set_limits(100_000, 200_000);
        assert_eq!(controller.estimate(), Some(200_000));
    }

    #[test]
    fn an_idle_interval_changes_nothing() {
        let mut controller = BitrateController::new(100_000, 10_000_000);
        controller.seed(1_000_000);
        assert_eq!(controller.update(&interval(0, 0, 100)), None);
        assert_eq!(controller.estimate(), Some(1_000_000));
    }

    #[test]
    fn on_time_share() {
        assert_eq!(interval(0, 0, 0).on_time_share(), 1.0);
        assert_eq!(interval(4, 1, 0).on_time_share(), 0.75);
        assert_eq!(interval(4, 9, 0).on_time_share(), 0.0);
    }

    #[test]
    fn encoder_units() {
        let x264 = encoder_bitrate("x264enc").unwrap_or_else(|| panic!("x264enc is known"));
        assert_eq!((x264.property, x264.to_units(2_500_400)), ("bitrate", 2500));
        assert_eq!(x264.to_bps(2500), 2_500_000);
        let vp8 = encoder_bitrate("vp8enc").unwrap_or_else(|| panic!("vp8enc is known"));
        assert_eq!(
            (vp8.property, vp8.to_units(800_000)),
            ("target-bitrate", 800_000)
        );
        let avenc = encoder_bitrate("avenc_mpeg4").unwrap_or_else(|| panic!("avenc is known"));
        assert_eq!(avenc.bits_per_unit, 1);
        assert_eq!(
            encoder_bitrate("mpeg2enc").map(|e| e.bits_per_unit),
            Some(1000)
        );
        assert_eq!(
            encoder_bitrate("openh264enc").map(|e| e.bits_per_unit),
            Some(1)
        );
        assert!(encoder_bitrate("theoraenc").is_none());
    }
}
