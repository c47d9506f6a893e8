//! What the path does during a run: the router's rate over time, and the
//! traffic that crosses the router beside the video.

use std::time::Duration;

use crate::{Error, Result};

/// The router's rate toward the receiver from `at` on (since the run's
/// epoch) until the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStep {
    /// When the rate takes effect.
    pub at: Duration,
    /// The rate, in bits per second.
    pub bits_per_second: u64,
}

/// The router's rate over a run: a first rate, then steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSchedule {
    steps: Vec<RateStep>,
}

impl RouterSchedule {
    /// One rate for the whole run.
    pub fn constant(bits_per_second: u64) -> RouterSchedule {
        RouterSchedule {
            steps: vec![RateStep {
                at: Duration::ZERO,
                bits_per_second,
            }],
        }
    }

    /// `first` from the start, then each of `steps` in turn; fails unless
    /// the steps come in order and every rate is above zero.
    pub fn stepping(first: u64, steps: &[(Duration, u64)]) -> Result<RouterSchedule> {
        let mut schedule = RouterSchedule::constant(first);
        for &(at, bits_per_second) in steps {
            let last = schedule.steps.last().map_or(Duration::ZERO, |s| s.at);
            if at <= last {
                return Err(Error::Setup(format!(
                    "the router's rate steps at {at:?} after one at {last:?}: give the steps in order"
                )));
            }
            schedule.steps.push(RateStep {
                at,
                bits_per_second,
            });
        }
        if let Some(zero) = schedule.steps.iter().find(|s| s.bits_per_second == 0) {
            return Err(Error::Setup(format!(
                "the router's rate at {:?} is 0: give it a rate in bits per second",
                zero.at
            )));
        }
        Ok(schedule)
    }

    /// The steps, the first at zero.
    pub fn steps(&self) -> &[RateStep] {
        &self.steps
    }

    /// The rate at `at`.
    pub fn rate_at(&self, at: Duration) -> u64 {
        self.steps
            .iter()
            .take_while(|s| s.at <= at)
            .last()
            .map_or(0, |s| s.bits_per_second)
    }
}

/// Traffic beside the video through the router's bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossTraffic {
    /// The video alone.
    None,
    /// Bulk TCP from the sender's host to the receiver's: it leaves through
    /// the same device as the video, where the host can hold it back.
    FromSender,
    /// Bulk TCP from a third host beside the sender through the same
    /// router to the receiver's side: the sender can only adapt to it.
    FromThirdHost,
}

impl CrossTraffic {
    /// How reports name it.
    pub fn describe(self) -> &'static str {
        match self {
            CrossTraffic::None => "none",
            CrossTraffic::FromSender => "bulk TCP from the sender's host",
            CrossTraffic::FromThirdHost => "bulk TCP from a third host",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_holds_from_each_step_to_the_next() {
        let secs = Duration::from_secs;
        let schedule =
            RouterSchedule::stepping(3_000_000, &[(secs(20), 1_000_000), (secs(40), 3_000_000)])
                .expect("valid");
        assert_eq!(schedule.rate_at(secs(0)), 3_000_000);
        assert_eq!(schedule.rate_at(Duration::from_millis(19_999)), 3_000_000);
        assert_eq!(schedule.rate_at(secs(20)), 1_000_000);
        assert_eq!(schedule.rate_at(secs(45)), 3_000_000);
    }

    #[test]
    fn steps_out_of_order_or_at_zero_rate_are_refused() {
        let secs = Duration::from_secs;
        let backwards =
            RouterSchedule::stepping(3_000_000, &[(secs(40), 1), (secs(20), 2)]).unwrap_err();
        assert!(backwards.to_string().contains("in order"), "{backwards}");
        let zero = RouterSchedule::stepping(3_000_000, &[(secs(20), 0)]).unwrap_err();
        assert!(zero.to_string().contains("is 0"), "{zero}");
    }
}
