//! Shaping the device's link just above the path's estimate (`shape-link`),
//! so that the queue a bottleneck further on would hold forms in this host's
//! scheduler instead: there the stream keeps its guaranteed rate, frames are
//! dropped whole and the host's other traffic waits behind the video, where a
//! router drops blindly.
//!
//! The device's link rate is the scheduler's, shared by every stream on it:
//! only a device whose traffic all crosses this stream's bottleneck (a host
//! behind one uplink) should be shaped, and by one sink.

use qsock::{InitParams, Rate, SchedulerName};

/// The link is shaped this far above the stream's estimate: room for the
/// stream's larger frames and for the host's other traffic, while the total
/// stays near what the path carries (the estimate stands below it).
const LINK_HEADROOM: f64 = 1.1;

/// The link rate is changed only when it would move by more than this
/// share: each change refits every class on the device.
const CHANGE_THRESHOLD: f64 = 0.05;

/// The link rate the sink set, and the one to give back.
#[derive(Debug, Default)]
pub(super) struct LinkShaper {
    /// The device's link rate before the sink shaped it.
    original: Option<Rate>,
    /// The rate the sink last set, in bit/s.
    shaped: Option<u64>,
    /// Shaping was refused once: the sink said why and stopped trying.
    refused: bool,
}

/// A change the sink made to the device's link rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shaped {
    pub from: Option<u64>,
    pub to: u64,
}

impl LinkShaper {
    /// Follows `estimate_bps`: sets the device's link rate to it with
    /// headroom when it moved enough. `link_rate` is the rate the
    /// scheduler reports now, kept to be given back.
    pub fn follow(
        &mut self,
        device: &str,
        scheduler: SchedulerName,
        link_rate: Option<Rate>,
        estimate_bps: u64,
    ) -> Result<Option<Shaped>, qsock::Error> {
        if self.refused || estimate_bps == 0 {
            return Ok(None);
        }
        if self.shaped.is_none() {
            self.original = link_rate;
        }
        let target = (estimate_bps as f64 * LINK_HEADROOM) as u64;
        // Never above what the scheduler was given: shaping only narrows.
        let target = self
            .original
            .map_or(target, |original| target.min(original.bits_per_second()));
        let current = self.shaped.or(self.original.map(Rate::bits_per_second));
        let moved = current.is_none_or(|current| {
            (target as f64 - current as f64).abs() > current as f64 * CHANGE_THRESHOLD
        });
        if !moved {
            return Ok(None);
        }
        let init =
            InitParams::new(device, scheduler).with_link_rate(Rate::from_bits_per_second(target));
        match qsock::qsockinit(&init) {
            Ok(_) => {
                let change = Shaped {
                    from: current,
                    to: target,
                };
                self.shaped = Some(target);
                Ok(Some(change))
            }
            Err(err) => {
                self.refused = true;
                Err(err)
            }
        }
    }

    /// The sink has the device's link rate following the estimate.
    pub fn is_shaping(&self) -> bool {
        self.shaped.is_some()
    }

    /// Gives the device its link rate back, if the sink changed it.
    pub fn restore(&mut self, device: &str, scheduler: SchedulerName) -> Result<(), qsock::Error> {
        if self.shaped.take().is_none() {
            return Ok(());
        }
        let mut init = InitParams::new(device, scheduler);
        if let Some(original) = self.original {
            init = init.with_link_rate(original);
        }
        qsock::qsockinit(&init).map(|_| ())
    }
}
