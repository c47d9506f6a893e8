//! The stream's period (its inter-packet gap, its share of the link): the
//! one owner of its formulas and of every `qchange` that moves it.
//!
//! The feedback thread sizes the period from what it measured; the
//! streaming thread only asks for room for a frame before sending it, and
//! the owner shortens the period, synchronously, when the frame would not
//! otherwise leave by its deadline.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use qsock::{Deadline, QSocket, QosParams, StreamKind, StreamParams};

/// A derived period sizes the stream a quarter above its mean rate, so that
/// frames larger than the mean (intra frames) do not fall behind the period.
const DERIVED_RATE_HEADROOM: f64 = 1.25;

/// A derived period lets the largest frame of this many recent intervals
/// leave within the latency budget.
const LARGEST_FRAME_INTERVALS: usize = 10;

/// A period is changed only when it moves by more than this share: every
/// change is a `tc class change` on the kernel schedulers.
const CHANGE_THRESHOLD: f64 = 0.1;

/// What bounds the stream's period on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkLimits {
    /// The link rate in bit/s the device's scheduler was given, if known.
    pub rate: Option<u64>,
    /// A full-size packet of the device, in bytes on its link.
    pub full_packet_bytes: u64,
}

/// Bytes the sink counts on top of what a full packet costs on the link
/// ([`qsock::link::full_packet_bytes`]: the MTU and Ethernet's header), 1600
/// in all for Ethernet's 1500: a stream at the shortest period then needs
/// under 95% of the link, so that on htb it is admitted beside best
/// effort's guarantee ([`qsock::link::best_effort_guarantee`], a hundredth)
/// and leaves the scheduler's own rounding some room.
const ADMISSION_MARGIN_BYTES: u64 = 86;

impl LinkLimits {
    /// The limits of `device` at start: a full packet from its MTU
    /// (Ethernet's when it cannot be read; a loopback device's 64 KiB MTU
    /// makes a class for full packets forty times faster than one for
    /// Ethernet's), and the link rate its qsock scheduler was given; with how
    /// much of that rate the live streams have not reserved, if it knows
    /// them.
    pub fn of(device: &str) -> (Self, Option<u64>) {
        let mtu = qsock::device_mtu(device).unwrap_or(1500);
        let (rate, unreserved) = link_rate_of(device);
        let link = LinkLimits {
            rate,
            full_packet_bytes: u64::from(qsock::link::full_packet_bytes(mtu))
                + ADMISSION_MARGIN_BYTES,
        };
        (link, unreserved)
    }

    /// The time one full packet takes on the link, if its rate is known:
    /// the shortest period the sink asks for.
    pub fn full_packet_time(self) -> Option<Duration> {
        self.rate
            .filter(|&bits| bits > 0)
            .map(|bits| Duration::from_nanos(self.full_packet_bytes * 8 * 1_000_000_000 / bits))
    }

    /// `period`, or the shortest one the link carries if that is longer: the
    /// kernel schedulers refuse a stream faster than their link.
    fn at_most_the_link(self, period: Duration) -> Duration {
        self.full_packet_time()
            .map_or(period, |shortest| period.max(shortest))
    }
}

/// The link rate the device's qsock scheduler was given, and how much of it
/// the live streams have not reserved, if it knows them.
fn link_rate_of(device: &str) -> (Option<u64>, Option<u64>) {
    let Ok(report) = qsock::report(device) else {
        return (None, None);
    };
    let Some(rate) = report
        .link_rate
        .map(|rate| rate.bits_per_second())
        .filter(|&bits| bits > 0)
    else {
        return (None, None);
    };
    let reserved = report
        .streams
        .iter()
        .filter(|stream| !stream.stale)
        .filter_map(|stream| stream.rate)
        .map(|rate| rate.bits_per_second())
        .fold(0, u64::saturating_add);
    (Some(rate), Some(rate.saturating_sub(reserved)))
}

/// Why a fixed `ipg` may ask more than the link carries: the sink cannot
/// know its packets' sizes before they arrive, so the scheduler sizes the
/// stream for the device's full packets.
pub(super) fn full_packet_period_hint(ipg_us: u64, device: &str, link: LinkLimits) -> String {
    let mtu = qsock::device_mtu(device).map_or_else(|_| "its".to_string(), |mtu| mtu.to_string());
    let shortest = link.full_packet_time().map_or_else(String::new, |time| {
        format!(" (at least {} µs here)", time.as_micros().max(1))
    });
    format!(
        ". qsocksink gives the scheduler no packet size, as it learns its packets' sizes only \
         as they arrive, so ipg={ipg_us} µs is one full packet of {device}'s {mtu}-byte MTU (plus \
         its link header) per period. Lengthen ipg{shortest}, or set ipg=0 to let the sink derive \
         it"
    )
}

/// What the feedback thread measured over an interval, to size the period.
#[derive(Debug, Clone, Copy)]
pub(super) struct Measured {
    /// The time between frames (from upstream's framerate, else measured).
    pub frame_interval: Duration,
    /// Mean packets per frame over the interval.
    pub packets_per_frame: f64,
    /// How long a frame may take to leave.
    pub latency_budget: Duration,
}

/// The period that carries the measured stream, within the link.
fn derived(from: &Measured, largest_recent_frame: u64, link: LinkLimits) -> Duration {
    let by_mean = from
        .frame_interval
        .div_f64(from.packets_per_frame.max(1.0) * DERIVED_RATE_HEADROOM);
    // The largest recent frame (an intra frame, typically) must leave within
    // the budget even at the period's pace.
    let by_largest = match u32::try_from(largest_recent_frame) {
        Ok(packets) if packets > 0 && !from.latency_budget.is_zero() => {
            from.latency_budget / packets
        }
        _ => by_mean,
    };
    link.at_most_the_link(by_mean.min(by_largest))
}

/// The period at which `packets` leave within `left`, within the link.
fn to_fit(left: Duration, packets: u32, link: LinkLimits) -> Duration {
    link.at_most_the_link(left / packets.max(1))
}

/// The period a stream starts at before anything is measured: half of what
/// the link's other streams leave unreserved (half the link when that is
/// unknown), so that sinks started side by side on one device are all
/// admitted; 1 ms when the link rate is unknown.
pub(super) fn starting(link: LinkLimits, unreserved: Option<u64>) -> Duration {
    let room = LinkLimits {
        rate: unreserved.or(link.rate),
        ..link
    };
    match room.full_packet_time() {
        Some(shortest) => (shortest * 2).max(Duration::from_micros(50)),
        None => Duration::from_millis(1),
    }
}

/// Why a period change was not made.
#[derive(Debug)]
pub(super) struct Refused {
    /// The stream asked for.
    pub wanted: StreamParams,
    /// The scheduler's answer.
    pub error: qsock::Error,
}

/// The socket's stream period, and the only writer of the stream's
/// parameters.
#[derive(Debug)]
pub(super) struct StreamPeriod {
    socket: RwLock<QSocket>,
    full_packet_bytes: u64,
    /// The device's link rate in bit/s as its scheduler knows it; 0 when
    /// unknown.
    link_rate: AtomicU64,
    /// The period in force in nanoseconds, 0 when the stream is aperiodic:
    /// the streaming thread checks it for every frame without a lock.
    period_ns: AtomicU64,
    /// The largest frame (packets) of each of the last intervals.
    largest_frames: parking_lot::Mutex<VecDeque<u64>>,
}

fn period_ns(stream: &StreamParams) -> u64 {
    match stream.kind {
        StreamKind::Periodic => u64::try_from(stream.ipg.as_nanos()).unwrap_or(u64::MAX),
        _ => 0,
    }
}

impl StreamPeriod {
    /// Owns `socket`, attached at its starting period.
    pub fn new(socket: QSocket, link: LinkLimits) -> Self {
        let period_ns = AtomicU64::new(period_ns(&socket.params().stream));
        StreamPeriod {
            socket: RwLock::new(socket),
            full_packet_bytes: link.full_packet_bytes,
            link_rate: AtomicU64::new(link.rate.unwrap_or(0)),
            period_ns,
            largest_frames: parking_lot::Mutex::new(VecDeque::with_capacity(
                LARGEST_FRAME_INTERVALS,
            )),
        }
    }

    /// The socket, to send and to read its statistics.
    pub fn socket(&self) -> parking_lot::RwLockReadGuard<'_, QSocket> {
        self.socket.read()
    }

    /// Gives the socket back, to close it.
    pub fn into_socket(self) -> QSocket {
        self.socket.into_inner()
    }

    /// What bounds the period now.
    pub fn link(&self) -> LinkLimits {
        LinkLimits {
            rate: Some(self.link_rate.load(Ordering::Relaxed)).filter(|&bits| bits > 0),
            full_packet_bytes: self.full_packet_bytes,
        }
    }

    /// Takes the link rate the scheduler reports in its `qinfo`.
    pub fn set_link_rate(&self, rate: Option<qsock::Rate>) {
        self.link_rate.store(
            rate.map_or(0, qsock::Rate::bits_per_second),
            Ordering::Relaxed,
        );
    }

    /// The period in force, if the stream is periodic.
    pub fn current(&self) -> Option<Duration> {
        Some(self.period_ns.load(Ordering::Relaxed))
            .filter(|&ns| ns > 0)
            .map(Duration::from_nanos)
    }

    /// Makes room for a frame of `packets` that must leave by `deadline`:
    /// shortens the period, before the frame is sent, when at the current
    /// one it would not leave in time. Returns the period changed from and
    /// to, or why it could not be.
    pub fn make_room(
        &self,
        packets: usize,
        deadline: Deadline,
    ) -> Option<Result<(Duration, Duration), qsock::Error>> {
        let current = self.current()?;
        let packets = u32::try_from(packets).ok().filter(|&packets| packets > 0)?;
        let left = deadline
            .as_monotonic_nanos()
            .saturating_sub(qsock::monotonic_now());
        let fitted = to_fit(Duration::from_nanos(left), packets, self.link());
        if fitted.as_secs_f64() >= current.as_secs_f64() * (1.0 - CHANGE_THRESHOLD) {
            return None;
        }
        let mut socket = self.socket.write();
        let stream = socket.params().stream;
        let wanted = StreamParams {
            ipg: fitted,
            ..stream
        };
        Some(self.change(&mut socket, wanted).map(|()| (current, fitted)))
    }

    /// Sizes the period for an interval: derived from `measured` when the
    /// sink derives it (`make_stream` is given `None` when it does not), and
    /// applied with the stream's other attributes through `make_stream`.
    /// Returns the stream's period afterwards, and the change that was
    /// refused, if any.
    pub fn adapt(
        &self,
        measured: Option<Measured>,
        largest_frame_packets: u64,
        derives: bool,
        make_stream: impl FnOnce(Option<Duration>) -> StreamParams,
    ) -> (Option<Duration>, Option<Refused>) {
        let largest_recent_frame = {
            let mut largest = self.largest_frames.lock();
            if largest.len() == LARGEST_FRAME_INTERVALS {
                largest.pop_front();
            }
            largest.push_back(largest_frame_packets);
            largest.iter().copied().max().unwrap_or(0)
        };
        let link = self.link();
        // Senders keep sending while the period is sized; only a change
        // waits for them.
        let socket = self.socket.upgradable_read();
        let current = socket.params().stream;
        let current_ipg = (current.kind == StreamKind::Periodic).then_some(current.ipg);
        let derived = measured
            .filter(|_| derives)
            .map(|measured| derived(&measured, largest_recent_frame, link));
        let derived = match (derived, current_ipg) {
            (Some(new), Some(old)) => {
                let moved = (new.as_secs_f64() - old.as_secs_f64()).abs() / old.as_secs_f64();
                Some(if moved > CHANGE_THRESHOLD { new } else { old })
            }
            (derived, _) => derived,
        };
        let wanted = make_stream(derived.or(current_ipg.filter(|_| derives)));
        let refused = (wanted != current)
            .then(|| {
                let mut socket = RwLockUpgradableReadGuard::upgrade(socket);
                self.change(&mut socket, wanted).err()
            })
            .flatten()
            .map(|error| Refused { wanted, error });
        (self.current(), refused)
    }

    /// `qchange` to `stream`, on the same device and scheduler.
    fn change(&self, socket: &mut QSocket, stream: StreamParams) -> Result<(), qsock::Error> {
        let params = QosParams::new(socket.params().device.clone(), socket.scheduler(), stream);
        socket.change(&params)?;
        self.period_ns
            .store(period_ns(&socket.params().stream), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ethernet(rate: Option<u64>) -> LinkLimits {
        LinkLimits {
            rate,
            full_packet_bytes: 1600,
        }
    }

    fn video() -> Measured {
        Measured {
            frame_interval: Duration::from_millis(40),
            packets_per_frame: 4.0,
            latency_budget: Duration::from_millis(100),
        }
    }

    fn derived_ipg(largest: u64, link_rate: Option<u64>) -> Duration {
        derived(&video(), largest, ethernet(link_rate))
    }

    #[test]
    fn a_derived_period_carries_the_mean_rate_with_headroom() {
        assert_eq!(derived_ipg(4, None), Duration::from_millis(8));
    }

    #[test]
    fn a_derived_period_lets_the_largest_frame_leave_within_the_budget() {
        assert_eq!(derived_ipg(40, None), Duration::from_micros(2500));
    }

    #[test]
    fn a_derived_period_never_asks_for_more_than_the_link() {
        assert_eq!(
            derived_ipg(40, Some(4_000_000)),
            Duration::from_micros(3200)
        );
    }

    #[test]
    fn a_frame_is_fitted_into_the_time_left_down_to_the_link() {
        let left = Duration::from_millis(60);
        assert_eq!(to_fit(left, 30, ethernet(None)), Duration::from_millis(2));
        assert_eq!(
            to_fit(left, 30, ethernet(Some(10_000_000))),
            Duration::from_millis(2)
        );
        assert_eq!(
            to_fit(left, 30, ethernet(Some(4_000_000))),
            Duration::from_micros(3200)
        );
        assert_eq!(
            to_fit(Duration::ZERO, 30, ethernet(Some(4_000_000))),
            Duration::from_micros(3200)
        );
    }

    #[test]
    fn a_stream_starts_at_half_the_link_for_the_devices_full_packets() {
        assert_eq!(
            starting(ethernet(Some(10_000_000)), None),
            Duration::from_micros(2560)
        );
        assert_eq!(
            starting(ethernet(Some(10_000_000)), Some(5_000_000)),
            Duration::from_micros(5120)
        );
        let loopback = LinkLimits {
            rate: Some(10_000_000_000),
            full_packet_bytes: 65_536 + 100,
        };
        assert_eq!(starting(loopback, None), Duration::from_nanos(105_016));
        assert_eq!(starting(ethernet(None), None), Duration::from_millis(1));
    }
}
