//! What the encoder is asked for, so that what it makes is the estimate.
//!
//! Encoders miss their target by a steady share: x264enc, its rate-control
//! buffer held within a latency budget, makes about a tenth less than it is
//! asked for; others overshoot. The estimate is what the path carries.
//! Asking the encoder for exactly that leaves the path a tenth under-used,
//! and since the estimate climbs on the evidence of what is sent, it passes
//! the path's rate by the encoder's shortfall before the stream reaches
//! it. So the sink learns, over the last few seconds, how much the encoder
//! makes of what it is asked for, and asks for the estimate divided by
//! that share, within bounds, as libwebrtc's bitrate adjuster does. The
//! estimate itself stays the path's.

use std::time::Duration;

/// How long the learnt share takes to follow a change in the encoder's
/// behaviour: long against a frame's size, which swings from an I-frame
/// to the P-frames after it, short against a scene.
const SETTLE: Duration = Duration::from_secs(5);

/// The most the encoder is asked for above the estimate: a share learnt
/// from content that calmed down must not, when the content turns busy,
/// have the encoder send far above what the path carries before the share
/// follows.
pub const MOST_ABOVE: f64 = 1.25;

/// The least the encoder is asked for below the estimate.
const LEAST_BELOW: f64 = 0.5;

/// An interval in which the encoder made less than this share of what it
/// was asked for says its content is simple (a still scene, a slide), not
/// how its rate control keeps a target: it is not learnt from.
const CONTENT_LIMITED: f64 = 0.6;

/// An interval that began with the target changed by more than this share
/// is not learnt from: the encoder's rate control takes a while to reach a
/// new target, and what it made still belongs to the old one.
const TARGET_STEP: f64 = 0.1;

/// The share of its target the encoder makes, and what it was last asked
/// for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncoderTarget {
    /// The encoder's output over what it was asked for, smoothed; None
    /// before the first interval it could be learnt from.
    output_share: Option<f64>,
    /// What the encoder was asked for during the interval now ending, and
    /// whether that interval began with a large change of it.
    asked: Option<(u64, bool)>,
}

impl EncoderTarget {
    /// Learns from one interval of `length` in which the encoder made
    /// `output_bps`.
    pub fn observe(&mut self, output_bps: u64, length: Duration) {
        let Some((asked, stepped)) = self.asked else {
            return;
        };
        if stepped || asked == 0 || length.is_zero() || output_bps == 0 {
            return;
        }
        let share = output_bps as f64 / asked as f64;
        if share < CONTENT_LIMITED {
            return;
        }
        let weight = (length.as_secs_f64() / SETTLE.as_secs_f64()).min(1.0);
        self.output_share = Some(match self.output_share {
            Some(smoothed) => smoothed + (share - smoothed) * weight,
            None => share,
        });
    }

    /// What to ask the encoder for so that it makes `estimate_bps`;
    /// remembers it for the next interval's [`observe`](Self::observe).
    pub fn for_estimate(&mut self, estimate_bps: u64) -> u64 {
        let scale = self
            .output_share
            .map_or(1.0, |share| (1.0 / share).clamp(LEAST_BELOW, MOST_ABOVE));
        let target = (estimate_bps as f64 * scale) as u64;
        let stepped = self.asked.is_some_and(|(previous, _)| {
            (target as f64 - previous as f64).abs() > previous as f64 * TARGET_STEP
        });
        self.asked = Some((target, stepped));
        target
    }

    /// The encoder's output over what it was asked for, once learnt.
    pub fn output_share(&self) -> Option<f64> {
        self.output_share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Asks for `estimate` and has the encoder make `share` of it, for
    /// `seconds` one-second intervals; returns the last target.
    fn run(target: &mut EncoderTarget, estimate: u64, share: f64, seconds: u32) -> u64 {
        let mut asked = target.for_estimate(estimate);
        for _ in 0..seconds {
            target.observe((asked as f64 * share) as u64, SECOND);
            asked = target.for_estimate(estimate);
        }
        asked
    }

    #[test]
    fn before_anything_is_learnt_the_encoder_is_asked_for_the_estimate() {
        let mut target = EncoderTarget::default();
        assert_eq!(target.for_estimate(1_000_000), 1_000_000);
        assert_eq!(target.output_share(), None);
    }

    #[test]
    fn an_encoder_that_falls_a_tenth_short_is_asked_for_a_ninth_more() {
        let mut target = EncoderTarget::default();
        let asked = run(&mut target, 1_000_000, 0.9, 20);
        assert!((1_100_000..=1_120_000).contains(&asked), "{asked}");
        let made = asked as f64 * 0.9;
        assert!((made - 1_000_000.0).abs() < 10_000.0, "makes {made}");
    }

    #[test]
    fn an_encoder_that_overshoots_is_asked_for_less() {
        let mut target = EncoderTarget::default();
        let asked = run(&mut target, 1_000_000, 1.2, 20);
        assert!((820_000..=850_000).contains(&asked), "{asked}");
    }

    #[test]
    fn simple_content_is_not_taken_for_an_undershooting_encoder() {
        let mut target = EncoderTarget::default();
        run(&mut target, 1_000_000, 0.9, 20);
        let learnt = target.output_share();
        let asked = run(&mut target, 1_000_000, 0.3, 20);
        assert_eq!(target.output_share(), learnt);
        assert!(asked < 1_120_000, "{asked}");
    }

    #[test]
    fn the_encoder_is_never_asked_for_more_than_a_quarter_above_the_estimate() {
        let mut target = EncoderTarget::default();
        let asked = run(&mut target, 1_000_000, 0.65, 30);
        assert_eq!(asked, (1_000_000.0 * MOST_ABOVE) as u64);
    }

    #[test]
    fn the_interval_after_a_large_step_of_the_target_is_not_learnt_from() {
        let mut target = EncoderTarget::default();
        run(&mut target, 2_000_000, 1.0, 10);
        let before = target.output_share();
        // The cut: the encoder still makes what it made for the old target.
        target.for_estimate(1_000_000);
        target.observe(2_000_000, SECOND);
        assert_eq!(target.output_share(), before);
        // An interval at the new target counts again.
        target.for_estimate(1_000_000);
        target.observe(900_000, SECOND);
        assert_ne!(target.output_share(), before);
    }
}
