//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): the payloader
//! numbers every packet in a header extension (`auto-header-extension` with
//! the URI below as an `extmap` in the caps), and the receiver's
//! `rtpsession` tells, several times a second, when each numbered packet
//! arrived. With when each left this host (its departure from the device,
//! see [`super::departure`], else its hand-over to the socket), that gives
//! the one-way delay of every packet; its least value over time is the
//! path's own, and what a packet waited above it is the queue it met:
//! further on, or also in this host's scheduler when only the hand-over is
//! known. A queue that stands through a whole interval (even the
//! least-delayed packet of it waited) is what GCC's delay-based detector
//! looks for; here it is read directly, without the round trip's wait for
//! the next sender report. What arrived in the interval is also the rate
//! the path delivered, exactly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use qsock::Rate;
use rtcp_types::{FciParser, Twcc, TwccPacketStatus};

/// The header extension's URI in `extmap-ID` of the caps.
pub(super) const TRANSPORT_WIDE_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Packets remembered by sequence number: seconds of a live stream, and
/// far fewer than the 16-bit sequence wraps at.
const HISTORY: usize = 8192;

/// The feedback's receive deltas are in units of 250 µs, its reference time
/// in units of 64 ms.
const DELTA_UNIT_US: i64 = 250;
const REFERENCE_UNIT_US: i64 = 64_000;

/// The reference time has 24 bits.
const REFERENCE_WRAP: i64 = 1 << 24;

/// The path's own delay is the least seen over this long, kept per
/// [`BASE_BUCKET`]: long enough that a queue standing for a while is not
/// taken for the path, short enough that a route change or the two clocks'
/// drift is followed (LEDBAT's base delay, RFC 6817 §3.4.2, over a shorter
/// history for a stream that adapts within seconds).
const BASE_HISTORY: usize = 6;
const BASE_BUCKET: Duration = Duration::from_secs(10);

/// How long a queue must stand, packet after packet, to show as the queue
/// at an interval's end: longer than the packets of one large frame take
/// to cross a bottleneck the stream nearly fills (an I-frame within a
/// 100 ms budget), so that a frame's own burst is not taken for a queue,
/// and short against an interval, so that a queue forming shows before it
/// stands through a whole one.
const RECENT_ARRIVALS: Duration = Duration::from_millis(200);
const RECENT_ARRIVALS_US: i64 = RECENT_ARRIVALS.as_micros() as i64;

/// The shortest span of arrivals over which the bytes that arrived tell the
/// path's rate.
const MIN_RATE_SPAN: Duration = Duration::from_millis(200);

/// One packet as it left this host.
#[derive(Debug, Clone, Copy)]
struct SentPacket {
    sequence: u16,
    size: u32,
    handed_over: Instant,
    departed: Option<Instant>,
}

/// What the transport-wide feedback showed over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct TransportWideInterval {
    /// The least time any of the interval's packets waited above the path's
    /// own delay: a queue that stood the whole interval.
    pub standing_queue: Option<Duration>,
    /// The least wait of the packets that arrived in the last
    /// [`RECENT_ARRIVALS`]: a queue forming as the interval ended.
    pub queue_at_end: Option<Duration>,
    /// The rate the receiver got the stream at, from the bytes of the
    /// packets that arrived and the span of their arrivals.
    pub received_bps: Option<u64>,
    /// Share of the packets the feedback covered that did not arrive.
    pub lost_share: f64,
    /// Feedback packets in the interval.
    pub feedback: u64,
    /// The delays were counted from the packets' departure from the
    /// device: the standing queue is beyond the host.
    pub beyond_the_host: bool,
}

/// The packets sent with a transport-wide sequence number and what the
/// receiver's feedback says of them.
#[derive(Debug)]
pub(super) struct TransportWide {
    sent: Vec<Option<SentPacket>>,
    epoch: Instant,
    /// The last reference time, unwrapped, in microseconds.
    reference_us: Option<i64>,
    /// The least one-way delay (in the receiver's clock less this host's)
    /// per bucket, the newest last.
    base: VecDeque<(Instant, i64)>,
    interval: Accumulated,
    /// The arrival and the wait of each packet that arrived in the last
    /// [`RECENT_ARRIVALS`], in microseconds, the latest last.
    recent: VecDeque<(i64, i64)>,
    /// Feedback packets since the sink started.
    pub feedback_total: u64,
    /// The standing queue of the latest interval that had one measured.
    pub latest_standing_queue: Option<Duration>,
    /// Departure times taken from the device since the sink started; once
    /// one came, only packets with one count for the delay.
    pub departures_total: u64,
}

#[derive(Debug, Default)]
struct Accumulated {
    least_queue_us: Option<i64>,
    received: u64,
    lost: u64,
    bytes: u64,
    first_arrival_us: Option<i64>,
    last_arrival_us: Option<i64>,
    feedback: u64,
}

impl Default for TransportWide {
    fn default() -> Self {
        TransportWide {
            sent: vec![None; HISTORY],
            epoch: Instant::now(),
            reference_us: None,
            base: VecDeque::with_capacity(BASE_HISTORY + 1),
            interval: Accumulated::default(),
            recent: VecDeque::new(),
            feedback_total: 0,
            latest_standing_queue: None,
            departures_total: 0,
        }
    }
}

impl TransportWide {
    /// Notes that the packet numbered `sequence`, `size` bytes, was
    /// handed to the socket at `at`.
    pub fn sent(&mut self, sequence: u16, size: usize, at: Instant) {
        let slot = &mut self.sent[usize::from(sequence) % HISTORY];
        // The departure can be read before the streaming thread notes the
        // hand-over.
        let departed = slot
            .filter(|sent| sent.sequence == sequence)
            .and_then(|sent| sent.departed);
        *slot = Some(SentPacket {
            sequence,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            handed_over: at,
            departed,
        });
    }

    /// Notes that the packet numbered `sequence` left the device at `at`.
    pub fn departed(&mut self, sequence: u16, at: Instant) {
        self.departures_total += 1;
        let slot = &mut self.sent[usize::from(sequence) % HISTORY];
        match slot {
            Some(sent) if sent.sequence == sequence => sent.departed = Some(at),
            _ => {
                *slot = Some(SentPacket {
                    sequence,
                    size: 0,
                    handed_over: at,
                    departed: Some(at),
                })
            }
        }
    }

    /// Takes one feedback message's FCI; false when it does not parse.
    pub fn feedback(&mut self, fci: &[u8]) -> bool {
        let Ok(twcc) = Twcc::parse(fci) else {
            return false;
        };
        let packets = match twcc.packets().collect::<Result<Vec<_>, _>>() {
            Ok(packets) => packets,
            Err(_) => return false,
        };
        let reference_us = self.unwrap_reference(twcc.reference_time());
        self.feedback_total += 1;
        self.interval.feedback += 1;
        let mut arrival_us = reference_us;
        for (sequence, status) in packets {
            let TwccPacketStatus::Received { delta } = status else {
                // Once departures are read, a packet that never left was
                // dropped by the host's scheduler, not lost on the path.
                if self
                    .known(sequence)
                    .is_some_and(|sent| self.left(&sent).is_some())
                {
                    self.interval.lost += 1;
                }
                continue;
            };
            // Each delta is from the previous packet received, the first
            // from the reference time.
            arrival_us += i64::from(delta) * DELTA_UNIT_US;
            let Some(sent) = self.known(sequence) else {
                continue;
            };
            if let Some(left) = self.left(&sent) {
                let left_us =
                    i64::try_from(left.duration_since(self.epoch).as_micros()).unwrap_or(i64::MAX);
                let one_way_us = arrival_us - left_us;
                let base_us = self.base_delay(left, one_way_us);
                let queue_us = (one_way_us - base_us).max(0);
                let least = &mut self.interval.least_queue_us;
                *least = Some(least.map_or(queue_us, |least| least.min(queue_us)));
                self.note_recent(arrival_us, queue_us);
            }
            let interval = &mut self.interval;
            interval.received += 1;
            interval.bytes += u64::from(sent.size);
            interval.first_arrival_us = Some(
                interval
                    .first_arrival_us
                    .map_or(arrival_us, |first| first.min(arrival_us)),
            );
            interval.last_arrival_us = Some(
                interval
                    .last_arrival_us
                    .map_or(arrival_us, |last| last.max(arrival_us)),
            );
        }
        true
    }

    /// Keeps the wait of a packet that arrived at `arrival_us`, and those
    /// of the packets before it that arrived within [`RECENT_ARRIVALS`].
    fn note_recent(&mut self, arrival_us: i64, queue_us: i64) {
        self.recent.push_back((arrival_us, queue_us));
        while self
            .recent
            .front()
            .is_some_and(|&(at, _)| at < arrival_us - RECENT_ARRIVALS_US)
        {
            self.recent.pop_front();
        }
    }

    /// The least wait of the packets that arrived in the last
    /// [`RECENT_ARRIVALS`], once arrivals span most of it: fewer say
    /// nothing of a queue that stands.
    fn recent_queue(&self) -> Option<Duration> {
        let first = self.recent.iter().map(|&(at, _)| at).min()?;
        let last = self.recent.iter().map(|&(at, _)| at).max()?;
        if last - first < RECENT_ARRIVALS_US / 2 {
            return None;
        }
        let least = self.recent.iter().map(|&(_, queue)| queue).min()?;
        Some(Duration::from_micros(least.unsigned_abs()))
    }

    /// What the feedback since the last call showed; None when none came.
    pub fn take_interval(&mut self) -> Option<TransportWideInterval> {
        let interval = std::mem::take(&mut self.interval);
        if interval.feedback == 0 {
            return None;
        }
        let standing_queue = interval
            .least_queue_us
            .map(|us| Duration::from_micros(us.unsigned_abs()));
        let queue_at_end = self.recent_queue();
        if standing_queue.is_some() {
            self.latest_standing_queue = standing_queue;
        }
        let span = interval
            .first_arrival_us
            .zip(interval.last_arrival_us)
            .map(|(first, last)| Duration::from_micros((last - first).unsigned_abs()));
        let received_bps = span
            .filter(|&span| span >= MIN_RATE_SPAN)
            // The span runs from the first arrival to the last: the first
            // packet's bytes came before it.
            .and_then(|span| {
                let bytes = interval.bytes * (interval.received - 1) / interval.received;
                Rate::of(bytes, span).map(Rate::bits_per_second)
            });
        let covered = interval.received + interval.lost;
        Some(TransportWideInterval {
            standing_queue,
            queue_at_end,
            received_bps,
            lost_share: if covered == 0 {
                0.0
            } else {
                interval.lost as f64 / covered as f64
            },
            feedback: interval.feedback,
            beyond_the_host: self.departures_total > 0,
        })
    }

    /// When `sent` left, for its one-way delay: its departure from the
    /// device once departures are read (a packet whose departure was not
    /// read does not count), else its hand-over to the socket. The two
    /// are never mixed: the base delay is of one or the other.
    fn left(&self, sent: &SentPacket) -> Option<Instant> {
        if self.departures_total > 0 {
            sent.departed
        } else {
            Some(sent.handed_over)
        }
    }

    fn known(&self, sequence: u16) -> Option<SentPacket> {
        self.sent[usize::from(sequence) % HISTORY].filter(|sent| sent.sequence == sequence)
    }

    /// The reference time in microseconds, counted on across its 24-bit
    /// wrap (about 12 days) from the previous one.
    fn unwrap_reference(&mut self, reference: u32) -> i64 {
        let reference = i64::from(reference) & (REFERENCE_WRAP - 1);
        let unwrapped = match self.reference_us {
            None => reference * REFERENCE_UNIT_US,
            Some(previous_us) => {
                let previous = previous_us / REFERENCE_UNIT_US;
                let step = (reference - previous).rem_euclid(REFERENCE_WRAP);
                let step = if step > REFERENCE_WRAP / 2 {
                    step - REFERENCE_WRAP
                } else {
                    step
                };
                (previous + step) * REFERENCE_UNIT_US
            }
        };
        self.reference_us = Some(unwrapped);
        unwrapped
    }

    /// Notes `one_way_us` in the bucket of `at` and gives the least over
    /// the history.
    fn base_delay(&mut self, at: Instant, one_way_us: i64) -> i64 {
        match self.base.back_mut() {
            Some((start, least)) if at.saturating_duration_since(*start) < BASE_BUCKET => {
                *least = (*least).min(one_way_us);
            }
            _ => {
                self.base.push_back((at, one_way_us));
                if self.base.len() > BASE_HISTORY {
                    self.base.pop_front();
                }
            }
        }
        self.base
            .iter()
            .map(|&(_, least)| least)
            .min()
            .unwrap_or(one_way_us)
    }
}

/// The `extmap-ID` of the caps that names the transport-wide sequence
/// number: either the URI itself or `(direction, URI, attributes)`.
pub(super) fn extension_id(caps: &gst::CapsRef) -> Option<u8> {
    let structure = caps.structure(0)?;
    structure.iter().find_map(|(field, value)| {
        let id = field.strip_prefix("extmap-")?.parse::<u8>().ok()?;
        let uri = value.get::<String>().ok().or_else(|| {
            let array = value.get::<gst::Array>().ok()?;
            array.get(1)?.get::<String>().ok()
        })?;
        (uri == TRANSPORT_WIDE_URI).then_some(id)
    })
}

/// The transport-wide sequence numbers of `packets` with their sizes.
pub(super) fn numbered(packets: &[&[u8]], id: u8) -> Vec<(u16, usize)> {
    packets
        .iter()
        .filter_map(|packet| {
            let data = qsock_frame::header_extension::element(packet, id)?;
            let sequence = u16::from_be_bytes(data.get(..2)?.try_into().ok()?);
            Some((sequence, packet.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
