//! Properties of the DWCS reference model, checked on random traces. Each
//! property is computed from what left the scheduler (sends, drops,
//! refusals), not from the model's own counters.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use qsock::model::trace::{self, Arrival, Event, Outcome, Trace};
use qsock::model::{
    Class, DropReason, Next, Packet, Scheduler, SchedulerConfig, StreamConfig, StreamId,
};
use qsock::DropFlag;

/// One byte per nanosecond: a packet of `len` bytes occupies the link `len` ns.
const RATE: u64 = 1_000_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn replay(trace: &Trace) -> Outcome {
    trace::run(trace).expect("the model replays any trace")
}

// ---------------------------------------------------------------------------
// Random mixes

#[derive(Debug, Clone)]
struct RawArrival {
    gap_us: u64,
    class: u32,
    len: u32,
    deadline_us: Option<u64>,
    same_deadline: bool,
    drop: u8,
    start: bool,
}

fn raw_arrival() -> impl Strategy<Value = RawArrival> {
    (
        0u64..1_500,
        0u32..6,
        64u32..1500,
        prop::option::of(0u64..12_000),
        any::<bool>(),
        0u8..4,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(gap_us, class, len, deadline_us, same_deadline, drop, start)| RawArrival {
                gap_us,
                class,
                len,
                deadline_us,
                same_deadline,
                drop,
                start,
            },
        )
}

fn stream_config() -> impl Strategy<Value = StreamConfig> {
    (0u64..6, 0u32..7, 0u32..7, any::<bool>(), any::<bool>()).prop_map(
        |(period_ms, old, oln, droppable, work_conserving)| StreamConfig {
            period: period_ms * 1_000_000,
            oln: if old == 0 { 0 } else { oln % (old + 1) },
            old,
            droppable,
            work_conserving,
        },
    )
}

/// Any mix: lossy and lossless streams, best effort, unknown streams, frames,
/// small limits and slow links (overload included).
fn any_trace() -> impl Strategy<Value = Trace> {
    (
        prop::collection::vec(stream_config(), 1..5),
        prop::option::of(200_000u64..5_000_000),
        1u32..40,
        prop::collection::vec(raw_arrival(), 1..150),
    )
        .prop_map(|(streams, link_rate, limit, raw)| {
            let n = streams.len() as u32;
            let mut time = 0;
            let mut previous_deadline = None;
            let arrivals = raw
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    time += r.gap_us * 1_000;
                    let class = match r.class {
                        0 => Class::BestEffort,
                        c if c > n + 1 => Class::Stream(StreamId(1)),
                        c => Class::Stream(StreamId(c)), // c == n + 1 is unknown
                    };
                    let deadline = match (previous_deadline, r.same_deadline) {
                        (Some(d), true) => Some(d),
                        _ => r.deadline_us.map(|us| time + us * 1_000),
                    };
                    previous_deadline = deadline;
                    Arrival {
                        time,
                        class,
                        id: i as u64 + 1,
                        len: r.len,
                        deadline,
                        drop: match r.drop {
                            0 => DropFlag::Droppable,
                            1 => DropFlag::NonDroppable,
                            _ => DropFlag::StreamDefault,
                        },
                        frame_start: r.start,
                    }
                })
                .collect();
            Trace {
                header: vec![],
                config: SchedulerConfig {
                    link_rate,
                    limit,
                    resolution: 0,
                },
                streams: streams
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (StreamId(i as u32 + 1), c))
                    .collect(),
                arrivals,
                expected: Outcome::default(),
            }
        })
}

fn droppable(trace: &Trace, arrival: &Arrival) -> bool {
    match arrival.class {
        Class::BestEffort => arrival.drop.is_droppable(true),
        Class::Stream(id) => trace
            .streams
            .iter()
            .find(|(s, _)| *s == id)
            .is_some_and(|(_, c)| arrival.drop.is_droppable(c.droppable)),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Non-droppable packets are sent (perhaps late) or refused, never
    /// dropped; every packet meets exactly one fate.
    #[test]
    fn non_droppable_packets_are_never_dropped(trace in any_trace()) {
        let outcome = replay(&trace);
        let by_id: HashMap<u64, &Arrival> = trace.arrivals.iter().map(|a| (a.id, a)).collect();
        let mut fate: HashMap<u64, &'static str> = HashMap::new();
        for event in &outcome.events {
            let (id, what) = match *event {
                Event::Send { id, .. } => (id, "sent"),
                Event::Drop { id, .. } => (id, "dropped"),
                Event::Refuse { id, .. } => (id, "refused"),
            };
            let arrival = by_id[&id];
            if what == "dropped" {
                prop_assert!(droppable(&trace, arrival), "non-droppable packet dropped: {event} ({arrival:?})");
            }
            if let Some(before) = fate.insert(id, what) {
                prop_assert!(false, "packet {id} was {before} and then {what}");
            }
        }
        for arrival in &trace.arrivals {
            prop_assert!(fate.contains_key(&arrival.id), "packet {} vanished: {arrival:?}", arrival.id);
        }
    }

    /// The model is a function of its input.
    #[test]
    fn the_same_trace_gives_the_same_schedule(trace in any_trace()) {
        let first = replay(&trace);
        let second = replay(&trace);
        prop_assert_eq!(first, second);
    }
}

// ---------------------------------------------------------------------------
// Window-constraints on a feasible set

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `(oln, old)` pairs, `old = 0` meaning no loss tolerated.
fn window() -> impl Strategy<Value = (u32, u32)> {
    (0u32..7, 0u32..7).prop_map(|(old, oln)| {
        if old == 0 {
            (0, 0)
        } else {
            (oln % (old + 1), old)
        }
    })
}

/// Smallest period, in packet times, with `sum (1 - oln/old) * C / T <= 1`.
fn feasible_period(windows: &[(u32, u32)]) -> u64 {
    // sum of (old - oln) / old as an exact fraction num / den.
    let (mut num, mut den) = (0u64, 1u64);
    for &(oln, old) in windows {
        let (n, d) = if old == 0 {
            (1, 1)
        } else {
            (u64::from(old - oln), u64::from(old))
        };
        num = num * d + n * den;
        den *= d;
        let g = gcd(num, den).max(1);
        num /= g;
        den /= g;
    }
    num.div_ceil(den).max(1)
}

fn feasible_trace() -> impl Strategy<Value = (Trace, Vec<(u32, u32)>)> {
    (
        prop::collection::vec((window(), 1u32..3), 1..6),
        0u64..2,
        10u64..40,
    )
        .prop_map(|(streams, slack, periods)| {
            let windows: Vec<(u32, u32)> = streams.iter().map(|(w, _)| *w).collect();
            const C: u64 = 1_000; // ns per packet: 1000 bytes at RATE
            let period = (feasible_period(&windows) + slack) * C;
            let mut arrivals = Vec::new();
            let mut id = 1;
            for k in 0..periods {
                for (i, (_, per_period)) in streams.iter().enumerate() {
                    for _ in 0..*per_period {
                        arrivals.push(Arrival {
                            time: k * period,
                            class: Class::Stream(StreamId(i as u32 + 1)),
                            id,
                            len: 1_000,
                            deadline: None,
                            drop: DropFlag::StreamDefault,
                            frame_start: false,
                        });
                        id += 1;
                    }
                }
            }
            let trace = Trace {
                header: vec![],
                config: SchedulerConfig {
                    link_rate: Some(RATE),
                    limit: 100_000,
                    resolution: 0,
                },
                streams: windows
                    .iter()
                    .enumerate()
                    .map(|(i, &(oln, old))| {
                        (
                            StreamId(i as u32 + 1),
                            StreamConfig {
                                period,
                                oln,
                                old,
                                droppable: true,
                                work_conserving: false,
                            },
                        )
                    })
                    .collect(),
                arrivals,
                expected: Outcome::default(),
            };
            (trace, windows)
        })
}

proptest! {
    #![proptest_config(config())]

    /// The DWCS papers: with equal periods and packet sizes and
    /// `sum (1 - oln/old) * C/T <= 1`, a receiver counting the stream's
    /// packets in consecutive windows of `old` (the first window starting at
    /// the stream's first packet) sees no window with more than `oln` misses
    /// (drops or late sends).
    ///
    /// The windows are consecutive, not sliding: `x'/y'` restart after every
    /// `old` packets, so DWCS may spend `oln` losses at the end of one window
    /// and `oln` more at the start of the next. With windows 4/5 and 1/3 at
    /// T = C the model (and the papers' algorithm, worked by hand) loses
    /// packets 2-5, 7-10 and 11 of the 4/5 stream: 7-11 are five in a row.
    #[test]
    fn feasible_sets_meet_every_window_constraint((trace, windows) in feasible_trace()) {
        check_windows(&trace, &windows)?;
    }

    /// The same with real arrival times: every packet arrives up to half a
    /// packet time after its period starts (a sender's scheduling jitter),
    /// and the scheduler compares deadlines at a resolution of one packet
    /// time, so the streams still share their deadline slots.
    #[test]
    fn jittered_feasible_sets_meet_every_window_constraint(
        (trace, windows) in feasible_trace(),
        seed in any::<u64>(),
    ) {
        check_windows(&jittered(trace, seed), &windows)?;
    }
}

/// Moves every arrival up to half a packet time later, keeps the trace in
/// time order, and sets the deadline resolution to one packet time.
fn jittered(mut trace: Trace, seed: u64) -> Trace {
    const C: u64 = 1_000;
    let mut state = seed;
    for arrival in &mut trace.arrivals {
        // SplitMix64: a small, seedable source of offsets.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        arrival.time += (z ^ (z >> 31)) % (C / 2);
    }
    trace.arrivals.sort_by_key(|arrival| arrival.time);
    trace.config.resolution = C;
    trace
}

/// Checks, from sends and drops alone, that no consecutive window of `old`
/// packets of a stream has more than `oln` misses.
fn check_windows(trace: &Trace, windows: &[(u32, u32)]) -> Result<(), TestCaseError> {
    let outcome = replay(trace);
    let mut missed: HashMap<u64, bool> = HashMap::new();
    for event in &outcome.events {
        match *event {
            Event::Send { id, late, .. } => {
                missed.insert(id, late);
            }
            Event::Drop { id, .. } => {
                missed.insert(id, true);
            }
            Event::Refuse { id, .. } => prop_assert!(false, "packet {id} refused"),
        }
    }
    for (index, &(oln, old)) in windows.iter().enumerate() {
        let class = Class::Stream(StreamId(index as u32 + 1));
        let misses: Vec<bool> = trace
            .arrivals
            .iter()
            .filter(|a| a.class == class)
            .map(|a| missed.get(&a.id).copied().unwrap_or(true))
            .collect();
        // 0/0 tolerates no miss at all: windows of one packet.
        let span = (old as usize).max(1);
        let allowed = oln as usize;
        for (n, w) in misses.chunks(span).enumerate() {
            let count = w.iter().filter(|m| **m).count();
            prop_assert!(
                    count <= allowed,
                    "stream {} ({oln}/{old}, period {}): {count} misses in window {n} (packets {}..{}) of {:?}",
                    index + 1, trace.streams[index].1.period, n * span, n * span + w.len(), misses
                );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// EDF for explicit deadlines

fn edf_trace() -> impl Strategy<Value = Trace> {
    (
        prop::collection::vec((window(), any::<bool>()), 1..5),
        prop::collection::vec(
            (
                0u64..3_000,
                0u32..5,
                100u32..1500,
                0u64..4_000,
                prop::bool::weighted(0.2),
            ),
            1..120,
        ),
    )
        .prop_map(|(streams, raw)| {
            let n = streams.len() as u32;
            let mut time = 0;
            // Per-stream deadlines never decrease, so each FIFO is in
            // deadline order and EDF over heads is EDF over all packets.
            let mut last: BTreeMap<u32, u64> = BTreeMap::new();
            let arrivals = raw
                .into_iter()
                .enumerate()
                .map(|(i, (gap_ns, s, len, slack_ns, same))| {
                    time += gap_ns;
                    let stream = s % n + 1;
                    let previous = last.get(&stream).copied().unwrap_or(0);
                    let deadline = if same && previous > 0 {
                        previous
                    } else {
                        (time + slack_ns).max(previous)
                    };
                    last.insert(stream, deadline);
                    Arrival {
                        time,
                        class: Class::Stream(StreamId(stream)),
                        id: i as u64 + 1,
                        len,
                        deadline: Some(deadline),
                        drop: DropFlag::StreamDefault,
                        frame_start: false,
                    }
                })
                .collect();
            Trace {
                header: vec![],
                config: SchedulerConfig {
                    link_rate: Some(RATE),
                    limit: 100_000,
                    resolution: 0,
                },
                streams: streams
                    .into_iter()
                    .enumerate()
                    .map(|(i, ((oln, old), droppable))| {
                        (
                            StreamId(i as u32 + 1),
                            StreamConfig {
                                period: 0,
                                oln,
                                old,
                                droppable,
                                work_conserving: true,
                            },
                        )
                    })
                    .collect(),
                arrivals,
                expected: Outcome::default(),
            }
        })
}

proptest! {
    #![proptest_config(config())]

    /// Aperiodic work-conserving streams: every departure has the earliest
    /// deadline of all packets queued at that decision, and carries its own.
    #[test]
    fn explicit_deadlines_go_earliest_first(trace in edf_trace()) {
        let mut scheduler = Scheduler::<u64>::new(trace.config);
        for (id, config) in &trace.streams {
            scheduler.add_stream(*id, *config).unwrap();
        }
        let mut queued: BTreeMap<u64, u64> = BTreeMap::new(); // id -> deadline
        let mut next = 0;
        let mut now = trace.arrivals[0].time;
        loop {
            while let Some(a) = trace.arrivals.get(next).filter(|a| a.time <= now) {
                next += 1;
                // The payload carries the packet's own deadline to the departure.
                let packet = Packet {
                    id: a.id,
                    len: a.len,
                    deadline: a.deadline,
                    drop: a.drop,
                    frame_start: a.frame_start,
                    payload: a.deadline.unwrap_or(0),
                };
                scheduler.enqueue(now, a.class, packet).unwrap();
                queued.insert(a.id, a.deadline.unwrap_or(0));
                for d in scheduler.drain_drops() {
                    prop_assert!(matches!(d.reason, DropReason::Late | DropReason::Window | DropReason::Frame));
                    queued.remove(&d.id);
                }
            }
            let wake = loop {
                let r = scheduler.dequeue(now);
                for d in scheduler.drain_drops() {
                    queued.remove(&d.id);
                }
                match r {
                    Next::Send(dep) => {
                        let own = dep.packet.payload;
                        prop_assert_eq!(dep.deadline, Some(own));
                        queued.remove(&dep.packet.id);
                        if let Some(earliest) = queued.values().min() {
                            prop_assert!(own <= *earliest, "sent {} (deadline {own}) at {now} while a packet due at {earliest} waited", dep.packet.id);
                        }
                    }
                    Next::NotBefore(t) => break Some(t),
                    Next::Idle => break None,
                }
            };
            let then = match (wake, trace.arrivals.get(next).map(|a| a.time)) {
                (Some(w), Some(a)) => w.min(a),
                (Some(w), None) => w,
                (None, Some(a)) => a,
                (None, None) => break,
            };
            prop_assert!(then > now);
            now = then;
        }
        prop_assert!(queued.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Best effort gets what the streams leave

fn light_load_with_flood() -> impl Strategy<Value = (Trace, u64)> {
    (
        prop::collection::vec((5u64..20, any::<bool>()), 1..4),
        100u32..1000,
        20u64..60,
    )
        .prop_map(|(streams, be_len, horizon_periods)| {
            const C: u64 = 1_000; // stream packets: 1000 bytes, 1000 ns
            let longest = streams.iter().map(|(m, _)| *m).max().unwrap_or(5) * C;
            let horizon = horizon_periods * longest;
            let mut arrivals = Vec::new();
            for (i, (m, _)) in streams.iter().enumerate() {
                let period = m * C;
                let mut t = 0;
                while t < horizon {
                    arrivals.push((t, Class::Stream(StreamId(i as u32 + 1)), 1_000u32));
                    t += period;
                }
            }
            // Best effort offers twice what the link can carry.
            let mut t = 0;
            while t < horizon {
                arrivals.push((t, Class::BestEffort, be_len));
                arrivals.push((t, Class::BestEffort, be_len));
                t += u64::from(be_len);
            }
            arrivals.sort_by_key(|(t, _, _)| *t);
            let arrivals = arrivals
                .into_iter()
                .enumerate()
                .map(|(i, (time, class, len))| Arrival {
                    time,
                    class,
                    id: i as u64 + 1,
                    len,
                    deadline: None,
                    drop: DropFlag::StreamDefault,
                    frame_start: false,
                })
                .collect();
            let trace = Trace {
                header: vec![],
                config: SchedulerConfig {
                    link_rate: Some(RATE),
                    limit: 1_000_000,
                    resolution: 0,
                },
                streams: streams
                    .iter()
                    .enumerate()
                    .map(|(i, (m, lossy))| {
                        (
                            StreamId(i as u32 + 1),
                            StreamConfig {
                                period: m * C,
                                oln: 1,
                                old: 4,
                                droppable: *lossy,
                                work_conserving: false,
                            },
                        )
                    })
                    .collect(),
                arrivals,
                expected: Outcome::default(),
            };
            (trace, horizon)
        })
}

proptest! {
    #![proptest_config(config())]

    /// Streams within their rates (at most 60% of the link) and a best-effort
    /// flood: no stream packet misses, and best effort gets the rest of the
    /// link: the link never idles before the horizon.
    #[test]
    fn best_effort_gets_what_streams_leave((trace, horizon) in light_load_with_flood()) {
        let outcome = replay(&trace);
        let by_id: HashMap<u64, &Arrival> = trace.arrivals.iter().map(|a| (a.id, a)).collect();
        let (mut stream_bytes, mut be_bytes) = (0u64, 0u64);
        for event in &outcome.events {
            match *event {
                Event::Send { time, class, id, late } => {
                    prop_assert!(!late, "stream packet {id} late at {time}");
                    if time < horizon {
                        let len = u64::from(by_id[&id].len);
                        match class {
                            Class::BestEffort => be_bytes += len,
                            Class::Stream(_) => stream_bytes += len,
                        }
                    }
                }
                Event::Drop { class, id, reason, .. } => {
                    prop_assert_eq!(class, Class::BestEffort, "stream packet {} dropped ({:?})", id, reason);
                }
                Event::Refuse { id, .. } => prop_assert!(false, "packet {id} refused"),
            }
        }
        prop_assert!(be_bytes > 0);
        // At one byte per ns the link carries `horizon` bytes before the
        // horizon; the last departure before it may run past it.
        let capacity = horizon;
        let max_len = trace.arrivals.iter().map(|a| u64::from(a.len)).max().unwrap_or(0);
        prop_assert!(
            be_bytes + stream_bytes + max_len >= capacity,
            "link idle: best effort {be_bytes} + streams {stream_bytes} bytes in {capacity} ns"
        );
    }
}

// ---------------------------------------------------------------------------
// Any call sequence, extreme values included

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        class: u32,
        len: u32,
        deadline: Option<u64>,
        drop: u8,
        start: bool,
    },
    Dequeue,
    Advance(u64),
    Change {
        stream: u32,
        config: StreamConfig,
    },
    Remove(u32),
    Add {
        stream: u32,
        config: StreamConfig,
    },
    Limits {
        rate: Option<u64>,
        limit: u32,
    },
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10_000,
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>()
    ]
}

fn any_stream_config() -> impl Strategy<Value = StreamConfig> {
    (
        extreme_u64(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(period, oln, old, droppable, work_conserving)| StreamConfig {
                period,
                oln,
                old,
                droppable,
                work_conserving,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..5, any::<u32>(), prop::option::of(extreme_u64()), 0u8..3, any::<bool>())
            .prop_map(|(class, len, deadline, drop, start)| Op::Enqueue { class, len, deadline, drop, start }),
        6 => Just(Op::Dequeue),
        3 => extreme_u64().prop_map(Op::Advance),
        1 => (1u32..4, any_stream_config()).prop_map(|(stream, config)| Op::Change { stream, config }),
        1 => (1u32..4).prop_map(Op::Remove),
        1 => (1u32..4, any_stream_config()).prop_map(|(stream, config)| Op::Add { stream, config }),
        1 => (prop::option::of(extreme_u64()), 0u32..20).prop_map(|(rate, limit)| Op::Limits { rate, limit }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// No sequence of calls panics, non-droppable packets are never dropped,
    /// and the backlog always equals what the statistics say is queued.
    #[test]
    fn any_call_sequence_keeps_the_invariants(ops in prop::collection::vec(op(), 1..200)) {
        let mut s = Scheduler::<bool>::new(SchedulerConfig { link_rate: Some(1_000_000), limit: 8, resolution: 0 });
        let mut now: u64 = 0;
        let mut next_id = 0u64;
        // id -> droppable as the caller flagged it (resolved at drop time below).
        let mut flags: HashMap<u64, (Class, DropFlag)> = HashMap::new();
        for op in ops {
            match op {
                Op::Enqueue { class, len, deadline, drop, start } => {
                    next_id += 1;
                    let class = if class == 0 { Class::BestEffort } else { Class::Stream(StreamId(class)) };
                    let drop = [DropFlag::StreamDefault, DropFlag::Droppable, DropFlag::NonDroppable][drop as usize];
                    flags.insert(next_id, (class, drop));
                    let packet = Packet { id: next_id, len, deadline, drop, frame_start: start, payload: false };
                    if let Err(refused) = s.enqueue(now, class, packet) {
                        prop_assert_eq!(refused.packet.id, next_id);
                    }
                }
                Op::Dequeue => {
                    if let Next::NotBefore(t) = s.dequeue(now) {
                        prop_assert!(t > now, "NotBefore({t}) at {now}");
                    }
                }
                Op::Advance(by) => now = now.saturating_add(by),
                Op::Change { stream, config } => {
                    let _ = s.change_stream(StreamId(stream), config);
                }
                Op::Remove(stream) => {
                    let _ = s.remove_stream(StreamId(stream));
                }
                Op::Add { stream, config } => {
                    // oln <= old also rules out old == 0 < oln.
                    let valid = config.oln <= config.old;
                    let existed = s.window(StreamId(stream)).is_some();
                    prop_assert_eq!(s.add_stream(StreamId(stream), config).is_ok(), valid && !existed);
                }
                Op::Limits { rate, limit } => s.set_config(SchedulerConfig { link_rate: rate, limit, resolution: 0 }),
            }
            for d in s.drain_drops() {
                let (_, flag) = flags[&d.id];
                prop_assert_ne!(flag, DropFlag::NonDroppable, "packet {} flagged non-droppable was dropped: {:?}", d.id, d);
            }
            let mut queued = s.best_effort_stats().backlog_packets;
            for id in s.stream_ids().collect::<Vec<_>>() {
                let stats = s.stream_stats(id).expect("listed stream has stats");
                queued += stats.backlog_packets;
                prop_assert!(stats.current_window.is_some());
            }
            prop_assert_eq!(queued, s.backlog() as u64);
        }
    }
}
