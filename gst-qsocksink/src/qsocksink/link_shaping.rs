//! Holding this host's traffic just above the path's estimate
//! (`shape-link`), so that the queue a bottleneck further on would hold
//! forms in this host's scheduler instead, where the host's other traffic
//! waits behind the video and a router cannot drop the video blindly.
//!
//! On `htb`, which classes the traffic of no stream apart, only that
//! traffic is held: best effort is capped at a tenth of the estimate (and
//! what a stream limited by its content leaves), and the stream's own
//! frames leave as fast as the device takes them (a frame paced through the
//! host at the estimate would reach the receiver later than through the
//! router, which drains it at the path's full rate). On `dwcs`, whose best
//! effort shares the link with the streams, the whole link follows the
//! estimate: the stream's frames then wait in the host, where frames past
//! their deadline are dropped whole.
//!
//! Either way the device's scheduler is shared by every stream on it: only
//! a device whose traffic all crosses this stream's bottleneck (a host
//! behind one uplink) should be shaped, and by one sink.

use std::time::Duration;

use qsock::{InitParams, Rate, SchedulerName};

/// The traffic the host sends towards the path is held this far above the
/// stream's estimate: room for the host's other traffic, while the total
/// stays near what the path carries (the estimate stands below it).
const LINK_HEADROOM: f64 = 1.1;

/// A stream sending below this share of its estimate, over seconds, is
/// limited by its content (a still scene), not by the path: best effort may
/// have what it leaves below this share. A stream above it is taken to send
/// its estimate, whatever it sent of late: during a climb its rate lags the
/// estimate, and a cap that opened by the lag would let the host's traffic
/// fill the path's queue just as the stream reaches its rate.
const CONTENT_LIMITED: f64 = 0.7;

/// How long the stream's rate, which best effort's cap leaves room for,
/// takes to follow a change: long against a group of pictures, whose
/// I-frame doubles one interval's rate and whose P-frames halve the next
/// (a cap that followed them would open for the host's traffic just
/// before the next I-frame), short against a scene.
const STREAM_RATE_SETTLE: Duration = Duration::from_secs(5);

/// The link rate (or best effort's cap) is changed only when it would move
/// by more than this share of the estimate: each change is a `tc class
/// change`, and a narrowed link's refits every class on the device.
const CHANGE_THRESHOLD: f64 = 0.05;

/// What the sink holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// The device's whole link, to this rate in bit/s.
    Link(u64),
    /// Only the traffic of no stream, to this rate in bit/s.
    BestEffort(u64),
}

impl Held {
    fn bits_per_second(self) -> u64 {
        match self {
            Held::Link(bps) | Held::BestEffort(bps) => bps,
        }
    }
}

/// What the sink set on the device, and the link rate to give back.
#[derive(Debug, Default)]
pub(super) struct LinkShaper {
    /// The device's link rate before the sink shaped it.
    original: Option<Rate>,
    /// What the sink last set.
    held: Option<Held>,
    /// The stream's rate, smoothed over [`STREAM_RATE_SETTLE`], in bit/s.
    stream_bps: Option<f64>,
    /// Shaping was refused once: the sink said why and stopped trying.
    refused: bool,
}

/// A change the sink made to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shaped {
    pub from: Option<Held>,
    pub to: Held,
}

/// What to hold on `scheduler` for a stream whose estimate is
/// `estimate_bps` and which sent `stream_bps` of late, on a link given
/// `original`.
fn wanted(
    scheduler: SchedulerName,
    estimate_bps: u64,
    stream_bps: f64,
    original: Option<Rate>,
) -> Held {
    let total = (estimate_bps as f64 * LINK_HEADROOM) as u64;
    match scheduler {
        SchedulerName::Htb => {
            let headroom = total.saturating_sub(estimate_bps);
            let unused = (estimate_bps as f64 * CONTENT_LIMITED - stream_bps).max(0.0);
            Held::BestEffort(headroom + unused as u64)
        }
        // Never above what the scheduler was given: shaping only narrows.
        _ => Held::Link(original.map_or(total, |original| total.min(original.bits_per_second()))),
    }
}

impl LinkShaper {
    /// Follows `estimate_bps`, the stream having sent `stream` (bit/s,
    /// over an interval of that length): caps best effort (`htb`) or
    /// narrows the link (`dwcs`) when what it would set moved enough.
    /// `link_rate` is the rate the scheduler reports now, kept to be given
    /// back.
    pub fn follow(
        &mut self,
        device: &str,
        scheduler: SchedulerName,
        link_rate: Option<Rate>,
        estimate_bps: u64,
        stream: (u64, Duration),
    ) -> Result<Option<Shaped>, qsock::Error> {
        let stream_bps = self.smooth_stream_rate(stream);
        if self.refused || estimate_bps == 0 {
            return Ok(None);
        }
        if self.held.is_none() {
            self.original = link_rate;
        }
        let wanted = wanted(scheduler, estimate_bps, stream_bps, self.original);
        let moved = self.held.is_none_or(|held| {
            held != wanted
                && (held.bits_per_second().abs_diff(wanted.bits_per_second()) as f64)
                    > estimate_bps as f64 * CHANGE_THRESHOLD
        });
        if !moved {
            return Ok(None);
        }
        let init = InitParams::new(device, scheduler);
        let init = match wanted {
            Held::Link(bps) => init.with_link_rate(Rate::from_bits_per_second(bps)),
            Held::BestEffort(bps) => init.with_best_effort_rate(Rate::from_bits_per_second(bps)),
        };
        match qsock::qsockinit(&init) {
            Ok(_) => {
                let change = Shaped {
                    from: self.held,
                    to: wanted,
                };
                self.held = Some(wanted);
                Ok(Some(change))
            }
            Err(err) => {
                self.refused = true;
                Err(err)
            }
        }
    }

    /// The stream's rate over the last few seconds, `stream` added.
    fn smooth_stream_rate(&mut self, (bps, length): (u64, Duration)) -> f64 {
        let weight = (length.as_secs_f64() / STREAM_RATE_SETTLE.as_secs_f64()).min(1.0);
        let smoothed = match self.stream_bps {
            Some(smoothed) => smoothed + (bps as f64 - smoothed) * weight,
            None => bps as f64,
        };
        self.stream_bps = Some(smoothed);
        smoothed
    }

    /// The sink has the device's whole link following the estimate: the
    /// stream's own frames wait in the host's scheduler.
    pub fn holds_the_stream(&self) -> bool {
        matches!(self.held, Some(Held::Link(_)))
    }

    /// The cap the sink set on best effort, in bit/s.
    pub fn best_effort_cap(&self) -> Option<u64> {
        match self.held {
            Some(Held::BestEffort(bps)) => Some(bps),
            _ => None,
        }
    }

    /// Gives the device back what the sink changed: its link rate, or best
    /// effort the whole link.
    pub fn restore(&mut self, device: &str, scheduler: SchedulerName) -> Result<(), qsock::Error> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let mut init = InitParams::new(device, scheduler);
        match held {
            Held::Link(_) => {
                if let Some(original) = self.original {
                    init = init.with_link_rate(original);
                }
            }
            Held::BestEffort(_) => {
                // A cap at the link rate (or above it) lifts the cap.
                let link = self
                    .original
                    .unwrap_or(Rate::from_bits_per_second(u64::MAX));
                init = init.with_best_effort_rate(link);
            }
        }
        qsock::qsockinit(&init).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_htb_best_effort_gets_what_the_stream_leaves_of_the_headroom() {
        let link = Some(Rate::from_bits_per_second(100_000_000));
        let cases = [
            (
                1_000_000.0,
                100_000,
                "sending its estimate: the tenth above",
            ),
            (
                500_000.0,
                300_000,
                "simple content: what it leaves below 70 % too",
            ),
            (
                850_000.0,
                100_000,
                "climbing, a little behind: the lag opens nothing",
            ),
            (1_300_000.0, 100_000, "above its estimate: still the tenth"),
        ];
        for (stream_bps, cap, case) in cases {
            assert_eq!(
                wanted(SchedulerName::Htb, 1_000_000, stream_bps, link),
                Held::BestEffort(cap),
                "{case}"
            );
        }
    }

    #[test]
    fn on_dwcs_the_link_follows_the_estimate_and_only_narrows() {
        let link = Some(Rate::from_bits_per_second(2_000_000));
        assert_eq!(
            wanted(SchedulerName::Dwcs, 1_000_000, 1_000_000.0, link),
            Held::Link(1_100_000)
        );
        assert_eq!(
            wanted(SchedulerName::Dwcs, 3_000_000, 1_000_000.0, link),
            Held::Link(2_000_000)
        );
    }

    #[test]
    fn an_i_frames_interval_does_not_open_the_cap() {
        let mut shaper = LinkShaper::default();
        let half = Duration::from_millis(500);
        for _ in 0..20 {
            shaper.smooth_stream_rate((1_000_000, half));
        }
        // An interval without the I-frame sends a third less.
        let smoothed = shaper.smooth_stream_rate((650_000, half));
        assert!(smoothed > 950_000.0, "{smoothed}");
        let cap = wanted(SchedulerName::Htb, 1_000_000, smoothed, None);
        assert!(cap.bits_per_second() < 150_000, "{cap:?}");
    }
}
