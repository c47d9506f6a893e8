//! Bulk TCP transfers on a schedule: the perturbation.

use std::time::{Duration, Instant};

use qsock_testbed::{BulkTransfer, TestBed};

use crate::{Error, Result};

/// A time when bulk transfers run, since the run's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkPeriod {
    /// When the transfers start.
    pub start: Duration,
    /// When they stop.
    pub stop: Duration,
}

impl BulkPeriod {
    /// Does the period cover `at`?
    pub fn covers(&self, at: Duration) -> bool {
        self.start <= at && at < self.stop
    }
}

/// When bulk TCP transfers run across the test bed, and how many at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSchedule {
    periods: Vec<BulkPeriod>,
    connections: u16,
    first_port: u16,
}

impl BulkSchedule {
    /// Transfers during each of `periods` (in order, not overlapping), one
    /// TCP connection each, to ports from `first_port` up.
    pub fn new(periods: Vec<BulkPeriod>, first_port: u16) -> Result<BulkSchedule> {
        for (i, period) in periods.iter().enumerate() {
            if period.start >= period.stop {
                return Err(Error::Setup(format!(
                    "bulk period {} starts at {:?} but stops at {:?}: it must start before it stops",
                    i + 1,
                    period.start,
                    period.stop
                )));
            }
            if let Some(next) = periods.get(i + 1) {
                if next.start < period.stop {
                    return Err(Error::Setup(format!(
                        "bulk periods {} and {} overlap: give them in order, each starting after the last stopped",
                        i + 1,
                        i + 2
                    )));
                }
            }
        }
        Ok(BulkSchedule {
            periods,
            connections: 1,
            first_port,
        })
    }

    /// Runs `connections` transfers in parallel in each period (a download
    /// manager opens several); they use that many ports from the first.
    pub fn with_connections(mut self, connections: u16) -> BulkSchedule {
        self.connections = connections.max(1);
        self
    }

    /// The periods.
    pub fn periods(&self) -> &[BulkPeriod] {
        &self.periods
    }

    /// Is a period on at `at`?
    pub fn is_on(&self, at: Duration) -> bool {
        self.periods.iter().any(|p| p.covers(at))
    }

    /// The first start or stop after `at`.
    pub fn next_change_after(&self, at: Duration) -> Option<Duration> {
        self.periods
            .iter()
            .flat_map(|p| [p.start, p.stop])
            .find(|&t| t > at)
    }

    /// Follows the schedule across `bed` from `epoch`; call
    /// [`RunningSchedule::update`] at (or soon after) each change.
    pub fn start<'bed>(&self, bed: &'bed TestBed, epoch: Instant) -> RunningSchedule<'bed> {
        RunningSchedule {
            bed,
            schedule: self.clone(),
            epoch,
            running: Vec::new(),
            started_at: None,
            done: Vec::new(),
            bytes_done: 0,
        }
    }
}

/// A schedule being followed: the transfers that run now and the periods
/// that really ran.
#[derive(Debug)]
pub struct RunningSchedule<'bed> {
    bed: &'bed TestBed,
    schedule: BulkSchedule,
    epoch: Instant,
    running: Vec<BulkTransfer>,
    started_at: Option<Duration>,
    done: Vec<BulkPeriod>,
    bytes_done: u64,
}

impl RunningSchedule<'_> {
    /// Starts or stops the transfers as the schedule says for now; returns
    /// whether they run.
    pub fn update(&mut self) -> Result<bool> {
        let now = self.epoch.elapsed();
        let on = self.schedule.is_on(now);
        if on && self.running.is_empty() {
            for port in 0..self.schedule.connections {
                let port = self.schedule.first_port + port;
                self.running.push(BulkTransfer::start(self.bed, port)?);
            }
            self.started_at = Some(now);
        } else if !on && !self.running.is_empty() {
            self.stop_running()?;
        }
        Ok(on)
    }

    /// Are transfers running?
    pub fn is_on(&self) -> bool {
        !self.running.is_empty()
    }

    /// Bytes the transfers delivered so far.
    pub fn received_bytes(&self) -> u64 {
        self.bytes_done
            + self
                .running
                .iter()
                .map(BulkTransfer::received_bytes)
                .sum::<u64>()
    }

    fn stop_running(&mut self) -> Result<()> {
        let stopped_at = self.epoch.elapsed();
        let mut first_error = Ok(());
        for transfer in self.running.drain(..) {
            match transfer.stop() {
                Ok(bytes) => self.bytes_done += bytes,
                Err(err) if first_error.is_ok() => first_error = Err(err.into()),
                Err(_) => {}
            }
        }
        if let Some(start) = self.started_at.take() {
            self.done.push(BulkPeriod {
                start,
                stop: stopped_at,
            });
        }
        first_error
    }

    /// Stops what runs and returns the periods that really ran (their starts
    /// and stops as they happened) with the bytes delivered in all.
    pub fn finish(mut self) -> Result<(Vec<BulkPeriod>, u64)> {
        self.stop_running()?;
        Ok((std::mem::take(&mut self.done), self.bytes_done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: u64, stop: u64) -> BulkPeriod {
        BulkPeriod {
            start: Duration::from_secs(start),
            stop: Duration::from_secs(stop),
        }
    }

    #[test]
    fn a_schedule_says_when_it_is_on_and_when_it_changes_next() {
        let schedule =
            BulkSchedule::new(vec![period(10, 25), period(30, 40)], 5201).expect("valid");
        assert!(!schedule.is_on(Duration::from_secs(9)));
        assert!(schedule.is_on(Duration::from_secs(10)));
        assert!(!schedule.is_on(Duration::from_secs(25)));
        assert_eq!(
            schedule.next_change_after(Duration::from_secs(10)),
            Some(Duration::from_secs(25))
        );
        assert_eq!(schedule.next_change_after(Duration::from_secs(40)), None);
    }

    #[test]
    fn periods_that_stop_before_they_start_or_overlap_are_refused() {
        let backwards = BulkSchedule::new(vec![period(25, 10)], 5201).unwrap_err();
        assert!(
            backwards.to_string().contains("must start before it stops"),
            "{backwards}"
        );
        let overlapping =
            BulkSchedule::new(vec![period(10, 25), period(20, 30)], 5201).unwrap_err();
        assert!(overlapping.to_string().contains("overlap"), "{overlapping}");
    }
}
