//! The remote data acquisition application of the paper's section 4.2.2: a
//! sensor sends readings aperiodically, each with its own deadline, after
//! which it is useless to the client.
//!
//! The sensor's schedule is drawn once from a seed, so every flow of a run
//! (and every run with the same seed) sends the same messages at the same
//! times with the same deadlines. Readings come singly (Poisson arrivals)
//! and in bursts (an event the sensor reports in detail), which is what
//! makes a deadline scheduler choose between them.
//!
//! A message carries its sequence number, the CLOCK_MONOTONIC time it was
//! made and its deadline. The test bed's namespaces share the host's clock,
//! so the receiver compares its own CLOCK_MONOTONIC arrival time with the
//! deadline directly.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes of the header every message starts with.
pub const HEADER_BYTES: usize = 20;
/// The largest message: one full Ethernet frame of UDP over IPv4.
pub const MAX_MESSAGE_BYTES: usize = 1472;

/// The shape of the sensor's traffic.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// How long the sensor sends.
    pub duration: Duration,
    /// Mean single readings per second (Poisson).
    pub singles_per_second: f64,
    /// Mean bursts per second (Poisson).
    pub bursts_per_second: f64,
    /// Readings in a burst, drawn uniformly from this range.
    pub burst_messages: (u32, u32),
    /// Deadline after the reading is made, drawn uniformly from this range.
    pub budget: (Duration, Duration),
    /// Message size in bytes (header included), drawn uniformly.
    pub size: (usize, usize),
}

/// One reading the sensor sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message {
    /// Its place in the schedule, from 0.
    pub seq: u32,
    /// When it is made, from the start of the run.
    pub at: Duration,
    /// How long after `at` it is still useful.
    pub budget: Duration,
    /// Datagram size in bytes.
    pub size: usize,
}

/// The sensor's whole schedule, in time order.
pub fn schedule(profile: &Profile, seed: u64) -> Vec<Message> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut events: Vec<(Duration, u32)> = Vec::new();
    let end = profile.duration.as_secs_f64();
    for (rate, burst) in [
        (profile.singles_per_second, false),
        (profile.bursts_per_second, true),
    ] {
        if rate <= 0.0 {
            continue;
        }
        let mut t = exponential(&mut rng, rate);
        while t < end {
            let count = if burst {
                rng.random_range(profile.burst_messages.0..=profile.burst_messages.1)
            } else {
                1
            };
            events.push((Duration::from_secs_f64(t), count));
            t += exponential(&mut rng, rate);
        }
    }
    events.sort_by_key(|(at, _)| *at);
    let mut messages = Vec::new();
    for (at, count) in events {
        for _ in 0..count {
            let budget = Duration::from_nanos(rng.random_range(
                profile.budget.0.as_nanos() as u64..=profile.budget.1.as_nanos() as u64,
            ));
            let size = rng.random_range(profile.size.0..=profile.size.1);
            messages.push(Message {
                seq: messages.len() as u32,
                at,
                budget,
                size: size.clamp(HEADER_BYTES, MAX_MESSAGE_BYTES),
            });
        }
    }
    messages
}

/// Seconds until the next event of a Poisson process of `rate` per second.
fn exponential(rng: &mut StdRng, rate: f64) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u: f64 = rng.random();
    -(1.0 - u).ln() / rate
}

/// Writes the header of `message` into `buffer` (at least its size long)
/// and returns the datagram.
pub fn encode<'a>(
    message: &Message,
    made_ns: u64,
    deadline_ns: u64,
    buffer: &'a mut [u8],
) -> &'a [u8] {
    buffer[0..4].copy_from_slice(&message.seq.to_be_bytes());
    buffer[4..12].copy_from_slice(&made_ns.to_be_bytes());
    buffer[12..20].copy_from_slice(&deadline_ns.to_be_bytes());
    &buffer[..message.size]
}

/// What the receiver read from one datagram, and when it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The message's sequence number.
    pub seq: u32,
    /// When it was made (CLOCK_MONOTONIC ns).
    pub made_ns: u64,
    /// Its deadline (CLOCK_MONOTONIC ns).
    pub deadline_ns: u64,
    /// When it arrived (CLOCK_MONOTONIC ns).
    pub arrived_ns: u64,
}

impl Arrival {
    /// Reads a datagram's header; `None` for anything shorter than a header.
    pub fn decode(datagram: &[u8], arrived_ns: u64) -> Option<Arrival> {
        let field = |range: std::ops::Range<usize>| datagram.get(range);
        Some(Arrival {
            seq: u32::from_be_bytes(field(0..4)?.try_into().ok()?),
            made_ns: u64::from_be_bytes(field(4..12)?.try_into().ok()?),
            deadline_ns: u64::from_be_bytes(field(12..20)?.try_into().ok()?),
            arrived_ns,
        })
    }

    /// Did it come after its deadline?
    pub fn late(&self) -> bool {
        self.arrived_ns > self.deadline_ns
    }
}

/// Receives until `stop`, stamping each datagram on arrival.
pub fn receive(socket: UdpSocket, stop: &AtomicBool) -> std::io::Result<Vec<Arrival>> {
    // The stop flag is looked at between reads.
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut arrivals = Vec::new();
    let mut buffer = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buffer) {
            Ok(n) => {
                let now = qsock::monotonic_now();
                if let Some(arrival) = Arrival::decode(&buffer[..n], now) {
                    arrivals.push(arrival);
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(arrivals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            duration: Duration::from_secs(20),
            singles_per_second: 50.0,
            bursts_per_second: 0.5,
            burst_messages: (5, 15),
            budget: (Duration::from_millis(5), Duration::from_millis(60)),
            size: (200, 1472),
        }
    }

    #[test]
    fn a_seed_gives_one_schedule_within_the_profile() {
        let a = schedule(&profile(), 7);
        assert_eq!(a, schedule(&profile(), 7));
        assert_ne!(a, schedule(&profile(), 8));
        // About 50/s singles and 0.5/s bursts of 10 over 20 s: 1,100 messages.
        assert!((800..1400).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.iter().enumerate().all(|(i, m)| m.seq as usize == i));
        assert!(a.iter().all(|m| m.at < Duration::from_secs(20)
            && (Duration::from_millis(5)..=Duration::from_millis(60)).contains(&m.budget)
            && (200..=1472).contains(&m.size)));
    }

    #[test]
    fn a_message_reads_back_as_written() {
        let message = Message {
            seq: 4242,
            at: Duration::from_millis(3),
            budget: Duration::from_millis(10),
            size: 64,
        };
        let mut buffer = [0u8; MAX_MESSAGE_BYTES];
        let datagram = encode(&message, 1_000, 11_000, &mut buffer);
        assert_eq!(datagram.len(), 64);
        let arrival = Arrival::decode(datagram, 12_000).unwrap();
        assert_eq!(
            arrival,
            Arrival {
                seq: 4242,
                made_ns: 1_000,
                deadline_ns: 11_000,
                arrived_ns: 12_000
            }
        );
        assert!(arrival.late());
        assert!(!Arrival::decode(datagram, 11_000).unwrap().late());
        assert_eq!(Arrival::decode(&datagram[..19], 0), None);
    }
}
