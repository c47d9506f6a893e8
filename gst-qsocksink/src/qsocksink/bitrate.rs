//! The bitrate the path sustains, estimated from what the receiver reports
//! and what the host's scheduler reports, and how each known encoder is told
//! a bitrate.
//!
//! Two sources, one estimate. The host's scheduler shows its own queue:
//! packets late or lost there, or queueing delay standing well above the
//! least seen, cut the estimate to three quarters of what left the host.
//! The receiver's reports (RTCP) show the rest of the path: loss beyond
//! [`PATH_LOSS_CUT`] cuts the estimate to a little below what got through,
//! a lighter loss while the stream sends its estimate settles it just below
//! what got through (once per climb: a loss that goes on is the path's
//! own), and a round trip standing [`PATH_DELAY_TOLERANCE`] above the least seen
//! (a queue building in a router) cuts it too. Only a report that shows the
//! path clear lets the estimate climb, by a small fixed step, and only while
//! the stream actually sends near the estimate: the host's clear queue says
//! nothing of a bottleneck further on, so an interval without a report holds
//! the estimate, and a stream whose receiver never reports keeps its start
//! unless the host's own queue cuts it. Cutting fast empties the queue before
//! deadlines pile up; climbing slowly keeps the stream from oscillating
//! around the capacity.

use std::time::Duration;

/// Share of offered packets that may be late or lost in an interval before
/// it counts as congested: a single late packet is noise, a steady few
/// percent is a queue that will not drain.
const LOSS_TOLERANCE: f64 = 0.02;

/// How far the mean queueing delay may stand above the least seen, beyond
/// what a frame's own packets wait for each other, before the interval counts
/// as congested: a few milliseconds are the scheduler's own pacing, more is a
/// standing queue.
const QUEUE_DELAY_TOLERANCE: Duration = Duration::from_millis(10);

/// What one congested interval leaves of the estimate.
const DECREASE_FACTOR: f64 = 0.75;

/// Intervals after a decrease in which the estimate neither climbs nor is cut
/// again: the queue built before the cut takes that long to drain, and its
/// late packets would otherwise cut the estimate again and again, far below
/// the capacity.
const HOLD_AFTER_DECREASE: u32 = 2;

/// Share of the stream's packets the receiver may lose in a report before
/// the path counts as congested (GCC's loss-based threshold).
pub const PATH_LOSS_CUT: f64 = 0.10;

/// Share of the stream's packets the receiver may lose in a report that
/// still shows the path clear enough to climb (GCC's).
const PATH_LOSS_CLEAR: f64 = 0.02;

/// How far the round trip may stand above the least seen before the path
/// counts as queueing: past RTCP's own scheduling noise, well inside a
/// live stream's latency budget.
pub const PATH_DELAY_TOLERANCE: Duration = Duration::from_millis(30);

/// How long the least-delayed of an interval's packets may have waited
/// above the path's own one-way delay (transport-wide feedback) before a
/// queue counts as standing: past the receiver's 250 µs resolution and a
/// frame's packets' wait for each other, well inside a live stream's
/// latency budget.
pub const STANDING_QUEUE_TOLERANCE: Duration = Duration::from_millis(20);

/// How long the least-delayed of an interval's packets, or of its last
/// 200 ms of arrivals, may have waited above the path's own one-way delay
/// for the interval still to show the path clear for a climb: past it the
/// path is full, and the estimate settles just below what arrived
/// ([`AT_CAPACITY_FACTOR`]) before the queue stands long enough to cut
/// for, and before a receiver's jitter buffer gives up on a frame.
pub const CLEAR_QUEUE: Duration = Duration::from_millis(5);

/// What a queue just standing leaves of what arrived: far enough below the
/// path's rate for the few milliseconds of queue to drain within a second,
/// close enough to it that the stream keeps nearly all the path carries.
/// A stream that only stopped climbing there would hold the queue, or let
/// it grow until it stood long enough to cut for, a quarter below.
const AT_CAPACITY_FACTOR: f64 = 0.95;

/// How much shorter than the previous one a round trip must be for a queue
/// on the path to count as draining: it is then left to drain, neither cut
/// for again nor climbed on (the least round trip may have been measured
/// with a queue standing).
const DRAINING: Duration = Duration::from_millis(5);

/// What a cut on the receiver's evidence leaves of what got through, at
/// most.
const PATH_DECREASE_FACTOR: f64 = 0.85;

/// How soon after a cut the queue that stood on the path should be gone:
/// the cut leaves that much room below what got through. A router's queue
/// of 300 ms, drained at the 15 % a plain cut leaves, would delay every
/// frame for two seconds more.
const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// The least a cut leaves of what got through, however long the queue.
const LEAST_DECREASE_FACTOR: f64 = 0.5;

/// Near the rate at which the path last congested (within this share of
/// it), the estimate climbs at a quarter of its pace: the queue it probes
/// for builds slowly enough for the round trip to show it before the
/// router drops.
const NEAR_CEILING: f64 = 0.9;

/// When the stream sends above the rate at which the path last congested
/// by this share, without a new sign of congestion, the path has grown and
/// the climb resumes its pace. What it sends, not what it asks of the
/// encoder: an encoder falls short of its target by several percent, and
/// an estimate that far above the ceiling may carry no more than it.
const PAST_CEILING: f64 = 1.15;

/// The pace near the ceiling, as a share of the full pace.
const NEAR_CEILING_PACE: f64 = 0.25;

/// The share of the estimate the stream must actually send for a clear
/// report to count as evidence for more: an encoder that cannot fill its
/// target proves nothing about a higher one.
const APP_LIMITED_SHARE: f64 = 0.7;

/// The smallest additive step, for narrow ranges.
const MIN_STEP_BPS: u64 = 10_000;

/// How long a climb from zero to `max` takes: the step a clear report earns
/// grows with the time since the previous report, so the climb is as fast
/// with a receiver that reports twice a second as with one that reports
/// every few seconds.
const CLIMB_TIME: Duration = Duration::from_secs(15);

/// The most time one clear report counts for: a report after a long silence
/// is evidence for the moment it was sent, not for all the time before.
const CLIMB_SPAN_CAP: Duration = Duration::from_secs(2);

/// What the scheduler showed over one feedback interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Packets given to the socket in the interval.
    pub offered_packets: u64,
    /// Packets the scheduler sent in the interval (of these or earlier ones).
    pub sent_packets: u64,
    /// Of those (or of earlier ones), packets that missed their deadline or
    /// were dropped.
    pub late_or_lost_packets: u64,
    /// Mean queueing delay of the packets sent in the interval, where the
    /// scheduler measures it (see [`interval_mean_delay`]).
    pub queue_delay_mean: Option<Duration>,
    /// Rate that left the scheduler in the interval, in bits per second.
    pub delivered_bps: Option<u64>,
    /// Time between frames, where known. A frame's packets are queued
    /// together and leave one after another: on a link the stream nearly
    /// fills, they wait half a frame interval on average with no queue
    /// standing at all.
    pub frame_interval: Option<Duration>,
    /// What the receiver's reports in the interval showed; None when none
    /// came.
    pub path: Option<PathObservation>,
    /// How long the interval lasted.
    pub length: Duration,
    /// The host's link is shaped to the estimate (`shape-link`): the queue
    /// in the host is the one the shaping means to hold, and cutting for it
    /// would narrow the link further, without end.
    pub host_shaped: bool,
}

/// What the receiver's reports showed over one feedback interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathObservation {
    /// The largest share of the stream's packets a report told lost.
    pub fraction_lost: f64,
    /// The latest round trip measured anew (echoing a sender report no
    /// earlier report echoed), where one was.
    pub round_trip: Option<Duration>,
    /// The rate the receiver got the stream at, where its reports spanned
    /// long enough to tell.
    pub received_bps: Option<u64>,
    /// From transport-wide feedback, where the receiver sends it: the least
    /// time any packet of the interval waited above the path's own
    /// one-way delay.
    pub standing_queue: Option<Duration>,
    /// From transport-wide feedback: the least wait of the packets the
    /// interval's last feedback covered, a queue forming as it ended.
    pub queue_at_end: Option<Duration>,
    /// The standing queue was counted from the packets' departure from
    /// the device, not their hand-over to the socket: it leaves out the
    /// host's own queue.
    pub standing_queue_beyond_the_host: bool,
}

/// What drove the estimate's last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The first estimate: the encoder's setting, or what left the host.
    Start,
    /// Packets late or dropped in the host's scheduler.
    HostLoss,
    /// A queue standing in the host's scheduler.
    HostDelay,
    /// The receiver lost packets.
    ReceiverLoss,
    /// The round trip to the receiver grew: a queue on the path.
    ReceiverDelay,
    /// The receiver's transport-wide feedback showed a queue standing on
    /// the way: packets waited above the path's own one-way delay.
    StandingQueue,
    /// The receiver's transport-wide feedback showed a queue just forming:
    /// every packet of the interval, or of its last 200 ms, waited a
    /// little, so the path is full, and what arrived is its rate.
    QueueForming,
    /// The receiver lost a few packets, too few to cut for, while the
    /// stream sent its estimate: the path is full, and what got through is
    /// its rate.
    ReceiverLightLoss,
    /// The receiver's reports showed the path clear.
    ReceiverClear,
}

impl Signal {
    /// The name in the stats structure.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Start => "start",
            Signal::HostLoss => "host-loss",
            Signal::HostDelay => "host-delay",
            Signal::ReceiverLoss => "receiver-loss",
            Signal::ReceiverDelay => "receiver-delay",
            Signal::StandingQueue => "standing-queue",
            Signal::QueueForming => "queue-forming",
            Signal::ReceiverLightLoss => "receiver-light-loss",
            Signal::ReceiverClear => "receiver-clear",
        }
    }
}

impl Observation {
    /// Share of offered packets that left on time, 0.0 to 1.0; none when
    /// nothing was offered, and 0.0 when the scheduler sent nothing: what
    /// did not leave was not on time.
    pub fn on_time_share(&self) -> Option<f64> {
        if self.offered_packets == 0 {
            return None;
        }
        if self.sent_packets == 0 {
            return Some(0.0);
        }
        Some(1.0 - self.late_share())
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

/// The mean queueing delay of the packets sent between two readings of a
/// scheduler's running mean over all packets sent: `(mean, sent packets)`
/// then and now. `None` when nothing was sent in between.
///
/// The running mean soon stops moving (an hour of video is a million
/// packets); only the interval's own mean shows a queue that builds now. The
/// running mean is truncated to whole nanoseconds, so the sum rebuilt from it
/// is off by under a nanosecond per packet sent so far: microseconds per
/// interval after millions of packets.
pub fn interval_mean_delay(
    before: Option<(Duration, u64)>,
    now: (Duration, u64),
) -> Option<Duration> {
    let (mean_before, sent_before) = before.unwrap_or((Duration::ZERO, 0));
    let (mean_now, sent_now) = now;
    let sent = sent_now.checked_sub(sent_before).filter(|&sent| sent > 0)?;
    let total = |mean: Duration, sent: u64| mean.as_nanos() * u128::from(sent);
    let nanos = total(mean_now, sent_now).saturating_sub(total(mean_before, sent_before))
        / u128::from(sent);
    Some(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// The estimate and what it remembers between intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct BitrateController {
    min_bps: u64,
    max_bps: u64,
    estimate_bps: Option<u64>,
    least_delay: Option<Duration>,
    least_round_trip: Option<Duration>,
    previous_round_trip: Option<Duration>,
    previous_standing_queue: Option<Duration>,
    /// Time since the receiver's previous report: what a clear report
    /// vouches for.
    since_report: Duration,
    /// What the path carried when it last congested.
    path_ceiling: Option<u64>,
    /// The estimate settled on a light loss and has not climbed since: a
    /// loss that goes on after one settle is the path's own (radio, a
    /// flaky hop), not a queue, and settling on it again and again would
    /// ratchet the estimate down to its floor.
    settled_on_light_loss: bool,
    hold: u32,
    last_change: Option<Signal>,
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
            least_round_trip: None,
            previous_round_trip: None,
            previous_standing_queue: None,
            since_report: Duration::ZERO,
            path_ceiling: None,
            settled_on_light_loss: false,
            hold: 0,
            last_change: None,
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

    /// What drove the last change of the estimate.
    pub fn last_change(&self) -> Option<Signal> {
        self.last_change
    }

    /// The least round trip the receiver's reports measured.
    pub fn least_round_trip(&self) -> Option<Duration> {
        self.least_round_trip
    }

    /// Starts from a known rate (an encoder's setting) instead of the first
    /// delivered rate.
    pub fn seed(&mut self, bps: u64) {
        if self.estimate_bps.is_none() {
            self.estimate_bps = Some(self.clamp(bps));
            self.last_change = Some(Signal::Start);
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
                self.last_change = Some(Signal::Start);
                start
            }
        };
        let host = self
            .host_congestion(observation)
            .filter(|_| !observation.host_shaped);
        let path_seen = observation
            .path
            .map(|path| beyond_the_host(path, observation));
        let app_limited = self.app_limited(observation, current);
        let path = path_seen.map(|path| {
            let round_trip_counts = round_trip_is_the_paths(path, observation);
            self.path_verdict(path, app_limited, round_trip_counts)
        });
        self.since_report += observation.length;
        let vouched = std::mem::replace(&mut self.since_report, Duration::ZERO);
        if path.is_none() {
            self.since_report = vouched;
        }
        // While a queue stands, what left is what the path carries: a cut
        // from there lands below the capacity in one step however far above
        // it the estimate was, and the queue drains.
        let carried = observation
            .delivered_bps
            .filter(|&bps| bps > 0)
            .map_or(current, |bps| bps.min(current));
        // What arrived at the receiver, where its feedback spanned long
        // enough to tell.
        let received = observation
            .path
            .and_then(|path| path.received_bps)
            .filter(|&bps| bps > 0);
        let (next, signal) = if self.hold > 0 {
            self.hold -= 1;
            (current, None)
        } else if let Some(signal) = host {
            self.hold = HOLD_AFTER_DECREASE;
            ((carried as f64 * DECREASE_FACTOR) as u64, Some(signal))
        } else if let Some(PathVerdict::Congested(signal, lost)) = path {
            self.hold = HOLD_AFTER_DECREASE;
            self.settled_on_light_loss = false;
            let through = got_through(carried, lost, received);
            // Where the path congested is what arrived there, when known.
            self.path_ceiling = Some(received.unwrap_or(through as u64));
            let queue = path_seen.and_then(|path| self.queue_on_path(path));
            let cut = (through * decrease_factor(queue)) as u64;
            (cut.min(current), Some(signal))
        } else if let Some(PathVerdict::AtCapacity(signal, lost)) = path {
            // No hold: the cut is small, and the next interval's queue
            // shows whether it drains.
            // A queue forming delays but loses nothing: what arrived is the
            // path's rate, even above what left this interval.
            let through = match received {
                Some(bps) if lost == 0.0 => bps,
                _ => got_through(carried, lost, received) as u64,
            };
            self.path_ceiling = Some(through);
            self.settled_on_light_loss |= signal == Signal::ReceiverLightLoss;
            let settled = (through as f64 * AT_CAPACITY_FACTOR) as u64;
            (settled.min(current), Some(signal))
        } else if path == Some(PathVerdict::Clear) && observation.sent_packets > 0 && !app_limited {
            self.settled_on_light_loss = false;
            (
                self.climb(current, carried, vouched),
                Some(Signal::ReceiverClear),
            )
        } else {
            (current, None)
        };
        let next = self.clamp(next);
        self.estimate_bps = Some(next);
        if Some(next) != previous {
            self.last_change = signal.or(self.last_change);
        }
        (Some(next) != previous).then_some(next)
    }

    /// The host's own queue: late or lost packets, or a standing delay.
    fn host_congestion(&mut self, observation: &Observation) -> Option<Signal> {
        let lossy = observation.late_share() > LOSS_TOLERANCE;
        let queued = match observation.queue_delay_mean {
            Some(delay) => {
                let least = self.least_delay.map_or(delay, |least| least.min(delay));
                self.least_delay = Some(least);
                let own_frame = observation.frame_interval.unwrap_or_default() / 2;
                delay.saturating_sub(least) > QUEUE_DELAY_TOLERANCE + own_frame
            }
            None => false,
        };
        if lossy {
            Some(Signal::HostLoss)
        } else if queued {
            Some(Signal::HostDelay)
        } else {
            None
        }
    }

    /// What the receiver's reports say of the path beyond the host, the
    /// stream sending well below its estimate when `app_limited`; a round
    /// trip grown is a queue on the path when `round_trip_counts`.
    fn path_verdict(
        &mut self,
        path: PathObservation,
        app_limited: bool,
        round_trip_counts: bool,
    ) -> PathVerdict {
        let mut draining = false;
        let queueing = path.round_trip.is_some_and(|round_trip| {
            let least = self
                .least_round_trip
                .map_or(round_trip, |least| least.min(round_trip));
            self.least_round_trip = Some(least);
            draining = self
                .previous_round_trip
                .replace(round_trip)
                .is_some_and(|previous| round_trip + DRAINING < previous);
            round_trip_counts && round_trip.saturating_sub(least) > PATH_DELAY_TOLERANCE
        });
        let previous_standing = self.previous_standing_queue;
        if path.standing_queue.is_some() {
            self.previous_standing_queue = path.standing_queue;
        }
        let standing = path
            .standing_queue
            .is_some_and(|queue| queue > STANDING_QUEUE_TOLERANCE);
        let full = path
            .standing_queue
            .max(path.queue_at_end)
            .is_some_and(|queue| queue > CLEAR_QUEUE);
        let standing_drains = path
            .standing_queue
            .zip(previous_standing)
            .is_some_and(|(queue, previous)| queue + DRAINING < previous);
        draining |= standing_drains;
        if path.fraction_lost > PATH_LOSS_CUT {
            PathVerdict::Congested(Signal::ReceiverLoss, path.fraction_lost)
        } else if standing && !draining {
            // Per packet, and with no wait for the next sender report: the
            // finer of the two views of a queue.
            PathVerdict::Congested(Signal::StandingQueue, 0.0)
        } else if queueing && !draining {
            PathVerdict::Congested(Signal::ReceiverDelay, 0.0)
        } else if full && !draining {
            PathVerdict::AtCapacity(Signal::QueueForming, 0.0)
        } else if path.fraction_lost > PATH_LOSS_CLEAR
            && !draining
            && !app_limited
            && !self.settled_on_light_loss
        {
            // A router whose queue was full before the first round trip
            // was measured shows no queue growing, only a few packets
            // lost report after report: holding there keeps the stream
            // above the path for as long as the loss stays light.
            PathVerdict::AtCapacity(Signal::ReceiverLightLoss, path.fraction_lost)
        } else if path.fraction_lost <= PATH_LOSS_CLEAR
            && (path.round_trip.is_some() || path.standing_queue.is_some())
            && !queueing
            && !full
            && !draining
        {
            // Only a report that measured the round trip anew, or
            // transport-wide feedback on the interval's packets, shows that
            // no queue builds.
            PathVerdict::Clear
        } else {
            PathVerdict::Unclear
        }
    }

    /// How long a queue stood on the path: the least wait of the
    /// interval's packets where transport-wide feedback tells it, else the
    /// round trip above the least seen.
    fn queue_on_path(&self, path: PathObservation) -> Option<Duration> {
        path.standing_queue.or_else(|| {
            let least = self.least_round_trip?;
            Some(path.round_trip?.saturating_sub(least))
        })
    }

    /// The stream sends well below the estimate: what the path carries
    /// above what it sends is unknown.
    fn app_limited(&self, observation: &Observation, current: u64) -> bool {
        observation
            .delivered_bps
            .is_some_and(|bps| (bps as f64) < current as f64 * APP_LIMITED_SHARE)
    }

    /// The estimate a clear report vouching for `vouched` time lifts
    /// `current` to, the stream sending `carried`: at full pace up to near
    /// where the path last congested, at a quarter of it from there.
    fn climb(&mut self, current: u64, carried: u64, vouched: Duration) -> u64 {
        let share = vouched.min(CLIMB_SPAN_CAP).as_secs_f64() / CLIMB_TIME.as_secs_f64();
        let full = current.saturating_add(((self.max_bps as f64 * share) as u64).max(MIN_STEP_BPS));
        let Some(ceiling) = self.path_ceiling else {
            return full;
        };
        if carried as f64 > ceiling as f64 * PAST_CEILING {
            self.path_ceiling = None;
            return full;
        }
        let near = (ceiling as f64 * NEAR_CEILING) as u64;
        if full <= near {
            return full;
        }
        let slow = ((self.max_bps as f64 * share * NEAR_CEILING_PACE) as u64).max(MIN_STEP_BPS);
        current.saturating_add(slow).max(near)
    }

    fn clamp(&self, bps: u64) -> u64 {
        bps.clamp(self.min_bps, self.max_bps)
    }
}

/// What got through of `carried` with the share `lost` lost: what arrived,
/// where the receiver's feedback tells it (the path's rate while a queue
/// stands in it), bounded by what left less what was lost, since the
/// receiver's count is as coarse as its reports' timing.
fn got_through(carried: u64, lost: f64, received: Option<u64>) -> f64 {
    let sent_through = carried as f64 * (1.0 - lost);
    received.map_or(sent_through, |bps| sent_through.min(bps as f64))
}

/// What a cut on the receiver's evidence leaves of what got through: room
/// for a `queue` standing on the path to drain within [`DRAIN_WITHIN`], at
/// least the usual margin, at most half.
fn decrease_factor(queue: Option<Duration>) -> f64 {
    let drain = queue.unwrap_or_default().as_secs_f64() / DRAIN_WITHIN.as_secs_f64();
    (1.0 - drain).clamp(LEAST_DECREASE_FACTOR, PATH_DECREASE_FACTOR)
}

/// The receiver's view of what lies beyond the host. Where the sink shapes
/// the link and a packet's one-way delay is counted from when the sink
/// handed it to the socket (the device's departure times are not read),
/// the delay includes its wait in the host's scheduler, which the shaping
/// means to hold: cutting for it would narrow the link further, without
/// end. The standing queue then says nothing of the path, and the round
/// trip of the sender reports tells it.
fn beyond_the_host(path: PathObservation, observation: &Observation) -> PathObservation {
    let beyond = path.standing_queue_beyond_the_host || !observation.host_shaped;
    PathObservation {
        standing_queue: path.standing_queue.filter(|_| beyond),
        queue_at_end: path.queue_at_end.filter(|_| beyond),
        ..path
    }
}

/// Whether a round trip grown says a queue stands on the path. The sender
/// reports cross the host's scheduler as its traffic of no stream: on the
/// link that `shape-link` narrows they wait behind the streams (dwcs serves
/// them only when no stream's packet is due) or behind the host's bulk
/// traffic (htb's best effort). Where the packets' departures time their
/// one-way delay, that per-packet view is the path's own and tells its
/// queue; the round trip then tells the host's as well, and is left out.
fn round_trip_is_the_paths(path: PathObservation, observation: &Observation) -> bool {
    !(observation.host_shaped && path.standing_queue_beyond_the_host)
}

/// What one interval's reports say of the path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PathVerdict {
    /// Cut, for this signal, from what got through (the share lost).
    Congested(Signal, f64),
    /// A queue just forms, or a few packets are lost (with the share
    /// lost): the path is full; settle just below what arrived.
    AtCapacity(Signal, f64),
    /// Little loss and no queue: evidence that the estimate gets through.
    Clear,
    /// Some loss, no queue, already settled for it: hold.
    Unclear,
}

/// The fewest frame intervals an encoder's rate-control buffer may hold:
/// below about two, x264 cannot keep its target (at 25 fps and 1 Mbit/s
/// it made 372 kbit/s of busy content with a 50 ms buffer, 806 with 80 ms
/// and 885 with 100 ms).
const MIN_FRAMES_IN_BUFFER: u32 = 2;

/// How large the encoder's rate-control buffer may be for any frame to
/// leave within `latency_budget` at the bitrate: an encoder's default
/// (x264's 600 ms) lets an I-frame take over half a second to cross a link
/// the stream fills, whatever the path. Never below two frame intervals,
/// where known (see [`MIN_FRAMES_IN_BUFFER`]).
pub fn frame_buffer(latency_budget: Duration, frame_interval: Option<Duration>) -> Duration {
    latency_budget
        .max(frame_interval.unwrap_or_default() * MIN_FRAMES_IN_BUFFER)
        .max(Duration::from_millis(1))
}

/// How an encoder takes its bitrate: which property, in what unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderBitrate {
    /// The property's name.
    pub property: &'static str,
    /// Bits per second in one unit of the property (1000 for kbit/s).
    pub bits_per_unit: u64,
    /// The property, in milliseconds, that sizes the encoder's rate-control
    /// buffer while it plays, where it has one: no frame is larger than
    /// the buffer, so no frame takes longer than that to leave at the
    /// bitrate.
    pub frame_buffer_ms: Option<&'static str>,
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
        frame_buffer_ms: None,
    };
    let bit = |property| EncoderBitrate {
        property,
        bits_per_unit: 1,
        frame_buffer_ms: None,
    };
    match factory_name {
        "x264enc" => Some(EncoderBitrate {
            frame_buffer_ms: Some("vbv-buf-capacity"),
            ..kbit("bitrate")
        }),
        "x265enc" | "mpeg2enc" => Some(kbit("bitrate")),
        "openh264enc" => Some(bit("bitrate")),
        "vp8enc" | "vp9enc" => Some(bit("target-bitrate")),
        name if name.starts_with("avenc_") => Some(bit("bitrate")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
