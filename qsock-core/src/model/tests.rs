//! Scheduler-level rules: pacing, misses, frames, limits, best effort, stats.

use super::*;
use crate::flags::DropFlag;

const T: Nanos = 10;

fn pkt(id: u64) -> Packet<()> {
    Packet {
        id,
        len: 100,
        deadline: None,
        drop: DropFlag::StreamDefault,
        frame_start: false,
        payload: (),
    }
}

fn with_deadline(id: u64, deadline: Nanos) -> Packet<()> {
    Packet {
        deadline: Some(deadline),
        ..pkt(id)
    }
}

fn periodic(oln: u32, old: u32, droppable: bool) -> StreamConfig {
    StreamConfig {
        period: T,
        oln,
        old,
        droppable,
        work_conserving: false,
    }
}

fn sched() -> Scheduler<()> {
    Scheduler::new(SchedulerConfig::default())
}

/// A scheduler configuration with no deadline resolution.
fn config(link_rate: Option<u64>, limit: u32) -> SchedulerConfig {
    SchedulerConfig {
        link_rate,
        limit,
        resolution: 0,
    }
}

/// A scheduler with the one stream A, configured `config`, holding
/// `packets`, which arrived at 0.
fn stream_a(config: StreamConfig, packets: impl IntoIterator<Item = Packet<()>>) -> Scheduler<()> {
    let mut s = sched();
    s.add_stream(A, config).unwrap();
    for packet in packets {
        s.enqueue(0, Class::Stream(A), packet).unwrap();
    }
    s
}

fn sent(next: Next<()>) -> Departure<()> {
    match next {
        Next::Send(d) => d,
        other => panic!("expected a send, got {other:?}"),
    }
}

fn drops(s: &mut Scheduler<()>) -> Vec<(u64, DropReason)> {
    s.drain_drops().map(|d| (d.id, d.reason)).collect()
}

const A: StreamId = StreamId(1);
const B: StreamId = StreamId(2);

#[test]
fn stream_configuration_is_validated() {
    let mut s = sched();
    s.add_stream(A, periodic(1, 2, true)).unwrap();
    let e = s.add_stream(A, periodic(1, 2, true)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("already exists"), "{e}");
    let e = s.add_stream(B, periodic(3, 2, true)).unwrap_err();
    assert!(e.message().contains("must not exceed"), "{e}");
    let e = s.add_stream(B, periodic(1, 0, true)).unwrap_err();
    assert!(e.message().contains("is 0"), "{e}");
    assert!(s.add_stream(B, periodic(0, 0, true)).is_ok());
    let e = s
        .change_stream(StreamId(9), periodic(0, 0, true))
        .unwrap_err();
    assert!(e.message().contains("no stream 9"), "{e}");
    assert!(s.remove_stream(StreamId(9)).is_err());
}

#[test]
fn from_params_maps_aperiodic_to_work_conserving() {
    let p = StreamParams::periodic(std::time::Duration::from_millis(50), 1, 4);
    let c = StreamConfig::from_params(&p);
    assert_eq!(c.period, 50_000_000);
    assert_eq!((c.oln, c.old), (1, 4));
    assert!(c.droppable && !c.work_conserving);
    let c = StreamConfig::from_params(&StreamParams::aperiodic().lossless());
    assert_eq!(c.period, 0);
    assert!(c.work_conserving && !c.droppable);
}

#[test]
fn non_work_conserving_streams_send_one_packet_per_period() {
    let mut s = stream_a(periodic(0, 0, false), (1..=3).map(pkt));
    let d = sent(s.dequeue(0));
    assert_eq!((d.packet.id, d.deadline, d.late), (1, Some(10), false));
    assert_eq!(s.dequeue(0), Next::NotBefore(10));
    assert_eq!(s.dequeue(9), Next::NotBefore(10));
    let d = sent(s.dequeue(10));
    assert_eq!((d.packet.id, d.deadline), (2, Some(20)));
    assert_eq!(s.dequeue(15), Next::NotBefore(20));
    assert_eq!(sent(s.dequeue(20)).packet.id, 3);
    assert_eq!(s.dequeue(20), Next::Idle);
}

#[test]
fn a_stalled_stream_catches_up_instead_of_drifting() {
    let mut s = stream_a(periodic(0, 0, false), (1..=5).map(pkt));
    sent(s.dequeue(0));
    // Nobody called dequeue until 35 (say the device was busy): 2 (d = 20)
    // and 3 (d = 30) go late back to back, 4 (d = 40) goes in time, and the
    // pacing track is where it would have been: 5 waits for 40.
    let got: Vec<_> = (0..3)
        .map(|_| {
            let d = sent(s.dequeue(35));
            (d.packet.id, d.deadline, d.late)
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, Some(20), true),
            (3, Some(30), true),
            (4, Some(40), false)
        ]
    );
    assert_eq!(s.dequeue(35), Next::NotBefore(40));
    let d = sent(s.dequeue(40));
    assert_eq!((d.packet.id, d.deadline, d.late), (5, Some(50), false));
}

#[test]
fn work_conserving_streams_send_ahead() {
    let mut c = periodic(0, 0, false);
    c.work_conserving = true;
    let mut s = stream_a(c, (1..=3).map(pkt));
    let deadlines: Vec<_> = (0..3).map(|_| sent(s.dequeue(0)).deadline).collect();
    assert_eq!(deadlines, [Some(10), Some(20), Some(30)]);
}

#[test]
fn explicit_deadlines_are_paced_on_their_own_track() {
    // A frame's packets share a deadline but still leave one per period.
    let mut s = stream_a(
        periodic(0, 0, false),
        (1..=2).map(|id| with_deadline(id, 100)),
    );
    assert_eq!(sent(s.dequeue(0)).deadline, Some(100));
    assert_eq!(s.dequeue(0), Next::NotBefore(10));
    assert_eq!(sent(s.dequeue(10)).deadline, Some(100));
}

#[test]
fn arrival_into_an_idle_stream_restarts_deadlines_from_now() {
    let mut s = sched();
    s.add_stream(A, periodic(0, 0, false)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(1)).unwrap();
    assert_eq!(sent(s.dequeue(0)).deadline, Some(10));
    s.enqueue(45, Class::Stream(A), pkt(2)).unwrap();
    let d = sent(s.dequeue(45));
    assert_eq!((d.deadline, d.late), (Some(55), false));
    // Early arrival: the deadline keeps the period from the previous one.
    s.enqueue(46, Class::Stream(A), pkt(3)).unwrap();
    assert_eq!(s.dequeue(46), Next::NotBefore(55));
    assert_eq!(sent(s.dequeue(55)).deadline, Some(65));
}

#[test]
fn precedence_picks_the_tighter_window_then_first_come() {
    let mut s = sched();
    let mut loose = periodic(1, 2, true);
    loose.work_conserving = true;
    let mut tight = periodic(1, 4, true);
    tight.work_conserving = true;
    s.add_stream(A, loose).unwrap();
    s.add_stream(B, tight).unwrap();
    s.add_stream(StreamId(3), loose).unwrap();
    s.enqueue(0, Class::Stream(StreamId(3)), pkt(30)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(10)).unwrap();
    s.enqueue(0, Class::Stream(B), pkt(20)).unwrap();
    // Same deadline 10: B's 1/4 first, then 3 and A (1/2 each) by arrival.
    let order: Vec<_> = (0..3).map(|_| sent(s.dequeue(0)).packet.id).collect();
    assert_eq!(order, [20, 30, 10]);
}

#[test]
fn lossy_late_packet_within_tolerance_is_dropped_late() {
    let mut s = stream_a(periodic(1, 2, true), (1..=3).map(pkt));
    sent(s.dequeue(0));
    assert_eq!(s.window(A), Some((1, 1)));
    // Packet 2 (d = 20) is found late at 25; 1/1 - 1 = 0/0 restarts at 1/2.
    let d = sent(s.dequeue(25));
    assert_eq!(drops(&mut s), [(2, DropReason::Late)]);
    assert_eq!((d.packet.id, d.deadline, d.late), (3, Some(30), false));
    assert_eq!(s.window(A), Some((1, 1)));
    let st = s.stream_stats(A).unwrap();
    assert_eq!(st.dropped.late, 1);
    assert_eq!(st.deadline_misses, 1);
    assert_eq!(st.window_violations, 0);
}

#[test]
fn lossy_late_packet_beyond_tolerance_is_a_window_violation() {
    let mut s = stream_a(periodic(0, 2, true), (1..=3).map(pkt));
    sent(s.dequeue(0));
    assert_eq!(s.window(A), Some((0, 1)));
    let d = sent(s.dequeue(25));
    assert_eq!(drops(&mut s), [(2, DropReason::Window)]);
    assert_eq!(d.packet.id, 3);
    // The violation raised y' to 2 and tagged; the in-time send of 3 then
    // took y' to 1 and the tag reset the window to 0/2.
    assert_eq!(s.window(A), Some((0, 2)));
    let st = s.stream_stats(A).unwrap();
    assert_eq!((st.dropped.window, st.window_violations), (1, 1));
}

#[test]
fn lossless_late_packet_is_sent_late_and_counted_once() {
    let mut s = stream_a(periodic(0, 2, false), (1..=3).map(pkt));
    sent(s.dequeue(0));
    let d = sent(s.dequeue(25));
    assert_eq!((d.packet.id, d.deadline, d.late), (2, Some(20), true));
    assert!(drops(&mut s).is_empty());
    assert_eq!(s.window(A), Some((0, 2)));
    let d = sent(s.dequeue(25));
    assert_eq!((d.packet.id, d.deadline, d.late), (3, Some(30), false));
    let st = s.stream_stats(A).unwrap();
    assert_eq!((st.deadline_misses, st.window_violations), (1, 1));
    assert_eq!(st.dropped.total(), 0);
}

#[test]
fn a_late_frame_is_dropped_whole_and_later_packets_of_it_too() {
    let mut s = stream_a(periodic(2, 4, true), (1..=3).map(|id| with_deadline(id, 5)));
    // A non-droppable member of the frame survives the frame drop.
    let mut keep = with_deadline(4, 5);
    keep.drop = DropFlag::NonDroppable;
    s.enqueue(0, Class::Stream(A), keep).unwrap();
    sent(s.dequeue(0));
    assert_eq!(s.dequeue(0), Next::NotBefore(10));
    // At 10: 2 is late (2/3 -> 1/2), 3 goes with it (-> 0/1), and 4, kept,
    // becomes head, is late too (a violation) and waits for its pacing slot.
    assert_eq!(s.dequeue(10), Next::NotBefore(20));
    assert_eq!(
        drops(&mut s),
        [(2, DropReason::Late), (3, DropReason::Frame)]
    );
    // A straggler of the dropped frame is dropped on arrival.
    s.enqueue(11, Class::Stream(A), with_deadline(5, 5))
        .unwrap();
    assert_eq!(drops(&mut s), [(5, DropReason::Frame)]);
    // A frame-start mark begins a new frame despite the equal deadline.
    let mut fresh = with_deadline(6, 5);
    fresh.frame_start = true;
    s.enqueue(12, Class::Stream(A), fresh).unwrap();
    assert!(drops(&mut s).is_empty());
    assert_eq!(s.backlog(), 2);
    let d = sent(s.dequeue(20));
    assert_eq!((d.packet.id, d.late), (4, true));
    let st = s.stream_stats(A).unwrap();
    assert_eq!(st.dropped.late, 1);
    assert_eq!(st.dropped.frame, 2);
    assert_eq!(st.deadline_misses, 4);
    assert_eq!(st.window_violations, 2);
}

#[test]
fn full_queue_drops_droppable_and_refuses_the_rest() {
    let mut s = Scheduler::new(config(None, 2));
    s.add_stream(A, periodic(1, 2, true)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(1)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(2)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(3)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(4)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(5)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(6)).unwrap();
    assert_eq!(
        drops(&mut s),
        [(3, DropReason::QueueFull), (6, DropReason::QueueFull)]
    );
    let mut precious = pkt(7);
    precious.drop = DropFlag::NonDroppable;
    let r = s
        .enqueue(0, Class::Stream(A), precious.clone())
        .unwrap_err();
    assert_eq!((r.reason, r.packet.id), (RefuseReason::QueueFull, 7));
    assert_eq!(r.to_error().kind(), ErrorKind::QueueFull);
    let r = s.enqueue(0, Class::BestEffort, precious).unwrap_err();
    assert_eq!(r.reason, RefuseReason::QueueFull);
    // The streams' limit and best effort's are apart: 2 + 2.
    assert_eq!(s.backlog(), 4);
    // Queue-full drops do not touch the window.
    assert_eq!(s.window(A), Some((1, 2)));
    assert_eq!(s.stream_stats(A).unwrap().dropped.queue_full, 1);
    assert_eq!(s.best_effort_stats().dropped.queue_full, 1);
}

#[test]
fn a_full_best_effort_queue_leaves_the_streams_their_room() {
    // A bulk transfer keeps best effort full; a stream's non-droppable
    // packet (an I-frame's) must still be taken.
    let mut s = Scheduler::new(config(None, 2));
    s.add_stream(A, periodic(1, 2, true)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(1)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(2)).unwrap();
    let mut precious = pkt(3);
    precious.drop = DropFlag::NonDroppable;
    s.enqueue(0, Class::Stream(A), precious).unwrap();
    assert_eq!(s.backlog(), 3);
    assert!(drops(&mut s).is_empty());
}

#[test]
fn unknown_streams_are_refused() {
    let mut s = sched();
    let r = s.enqueue(0, Class::Stream(A), pkt(1)).unwrap_err();
    assert_eq!(r.reason, RefuseReason::UnknownStream);
    assert_eq!(r.to_error().kind(), ErrorKind::InvalidInput);
}

#[test]
fn best_effort_goes_when_no_stream_is_eligible() {
    let mut s = sched();
    s.add_stream(A, periodic(0, 0, false)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(100)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(101)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(1)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(2)).unwrap();
    let order: Vec<_> = (0..3).map(|_| sent(s.dequeue(0)).packet.id).collect();
    assert_eq!(order, [1, 100, 101]);
    assert_eq!(s.dequeue(0), Next::NotBefore(10));
    let be = s.best_effort_stats();
    assert_eq!((be.sent_packets, be.sent_bytes), (2, 200));
    assert_eq!(be.current_window, None);
}

#[test]
fn the_link_rate_spaces_departures() {
    // 100 bytes take 100 us.
    let mut s = Scheduler::new(config(Some(1_000_000), 10));
    s.enqueue(0, Class::BestEffort, pkt(1)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(2)).unwrap();
    sent(s.dequeue(0));
    assert_eq!(s.dequeue(0), Next::NotBefore(100_000));
    assert_eq!(s.dequeue(99_999), Next::NotBefore(100_000));
    sent(s.dequeue(100_000));
    // A zero rate means no limit rather than a division by zero.
    s.set_config(config(Some(0), 10));
    s.enqueue(100_000, Class::BestEffort, pkt(3)).unwrap();
    sent(s.dequeue(100_000));
}

#[test]
fn stats_fill_every_field() {
    let mut s = stream_a(periodic(1, 3, true), (1..=3).map(pkt));
    sent(s.dequeue(4));
    sent(s.dequeue(10));
    let st = s.stream_stats(A).unwrap();
    assert_eq!((st.sent_packets, st.sent_bytes), (2, 200));
    assert_eq!((st.backlog_packets, st.backlog_bytes), (1, 100));
    let delay = st.queue_delay.unwrap();
    assert_eq!(delay.mean, std::time::Duration::from_nanos(7));
    assert_eq!(delay.max, std::time::Duration::from_nanos(10));
    assert_eq!(st.current_window, Some(WindowConstraint::new(1, 1)));
    assert!(s.stream_stats(B).is_none());
}

#[test]
fn removing_a_stream_hands_back_its_packets() {
    let mut s = sched();
    s.add_stream(A, periodic(1, 3, true)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(1)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(2)).unwrap();
    s.enqueue(0, Class::BestEffort, pkt(3)).unwrap();
    let back: Vec<_> = s.remove_stream(A).unwrap().iter().map(|p| p.id).collect();
    assert_eq!(back, [1, 2]);
    assert_eq!(s.backlog(), 1);
    assert!(s.window(A).is_none());
}

#[test]
fn changing_a_stream_restarts_its_window() {
    let mut s = sched();
    s.add_stream(A, periodic(1, 3, true)).unwrap();
    s.enqueue(0, Class::Stream(A), pkt(1)).unwrap();
    sent(s.dequeue(0));
    assert_eq!(s.window(A), Some((1, 2)));
    s.change_stream(A, periodic(2, 5, true)).unwrap();
    assert_eq!(s.window(A), Some((2, 5)));
    assert!(s.change_stream(A, periodic(6, 5, true)).is_err());
    assert_eq!(s.window(A), Some((2, 5)));
}

#[test]
fn extreme_times_do_not_panic() {
    let mut s = Scheduler::new(config(Some(1), 10));
    let mut c = periodic(1, 2, true);
    c.period = u64::MAX;
    s.add_stream(A, c).unwrap();
    s.enqueue(u64::MAX - 1, Class::Stream(A), pkt(1)).unwrap();
    s.enqueue(u64::MAX, Class::Stream(A), with_deadline(2, u64::MAX))
        .unwrap();
    let d = sent(s.dequeue(u64::MAX));
    assert_eq!(d.deadline, Some(u64::MAX));
    // The link would be free after the end of the clock: it saturates there.
    assert_eq!(sent(s.dequeue(u64::MAX)).packet.id, 2);
    assert_eq!(s.dequeue(u64::MAX), Next::Idle);
}
