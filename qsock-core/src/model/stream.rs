//! One stream's queue, the deadline `d` and eligibility time `e` of its head
//! packet, its frames and its counters.

use std::collections::VecDeque;
use std::time::Duration;

use super::order::HeadKey;
use super::window::{MissOutcome, Window};
use super::{Class, DropReason, Dropped, Nanos, Packet, StreamConfig};
use crate::info::{DropCounts, QueueDelay, SchedulerStats};
use crate::params::WindowConstraint;

/// A packet waiting in the scheduler.
#[derive(Debug)]
pub(crate) struct Queued<P> {
    pub packet: Packet<P>,
    pub enqueued_at: Nanos,
    /// Global arrival order, for rule 5.
    pub seq: u64,
    /// The stream's frame number of the packet (0 in the best-effort FIFO).
    pub frame: u64,
}

/// Counters behind [`SchedulerStats`], shared by streams and best effort.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped: DropCounts,
    pub deadline_misses: u64,
    pub window_violations: u64,
    delay_sum: u128,
    delay_max: u64,
    pub backlog_packets: u64,
    pub backlog_bytes: u64,
}

impl Counters {
    pub fn queued(&mut self, len: u32) {
        self.backlog_packets = self.backlog_packets.saturating_add(1);
        self.backlog_bytes = self.backlog_bytes.saturating_add(u64::from(len));
    }

    pub fn unqueued(&mut self, len: u32) {
        self.backlog_packets = self.backlog_packets.saturating_sub(1);
        self.backlog_bytes = self.backlog_bytes.saturating_sub(u64::from(len));
    }

    pub fn sent(&mut self, len: u32, delay: Nanos) {
        self.sent_packets = self.sent_packets.saturating_add(1);
        self.sent_bytes = self.sent_bytes.saturating_add(u64::from(len));
        self.delay_sum = self.delay_sum.saturating_add(u128::from(delay));
        self.delay_max = self.delay_max.max(delay);
    }

    /// Takes back [`Counters::sent`] for a packet that did not leave after all.
    pub fn unsent(&mut self, len: u32) {
        self.sent_packets = self.sent_packets.saturating_sub(1);
        self.sent_bytes = self.sent_bytes.saturating_sub(u64::from(len));
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        let slot = match reason {
            DropReason::Late => &mut self.dropped.late,
            DropReason::Window => &mut self.dropped.window,
            DropReason::Frame => &mut self.dropped.frame,
            DropReason::QueueFull => &mut self.dropped.queue_full,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn stats(&self, window: Option<(u32, u32)>) -> SchedulerStats {
        let mean = self
            .delay_sum
            .checked_div(u128::from(self.sent_packets))
            .unwrap_or(0);
        SchedulerStats {
            sent_packets: self.sent_packets,
            sent_bytes: self.sent_bytes,
            dropped: self.dropped,
            deadline_misses: self.deadline_misses,
            window_violations: self.window_violations,
            queue_delay: Some(QueueDelay {
                mean: Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX)),
                max: Duration::from_nanos(self.delay_max),
            }),
            backlog_packets: self.backlog_packets,
            backlog_bytes: self.backlog_bytes,
            current_window: window.map(|(oln, old)| WindowConstraint { oln, old }),
        }
    }
}

/// The frame the previous accepted packet belonged to.
#[derive(Debug, Clone, Copy)]
struct LastFrame {
    number: u64,
    deadline: Option<Nanos>,
}

/// A DWCS stream.
#[derive(Debug)]
pub(crate) struct Stream<P> {
    pub config: StreamConfig,
    pub window: Window,
    queue: VecDeque<Queued<P>>,
    /// Deadline of the head packet; of the last head while the queue is empty.
    d: Nanos,
    /// Eligibility time of the head packet; of the last head while empty.
    e: Nanos,
    /// Whether any packet has been head yet (`d`, `e` mean something).
    started: bool,
    /// The head has been counted as a miss and waits to be sent late.
    head_missed: bool,
    last_frame: Option<LastFrame>,
    frames_begun: u64,
    dropped_frame: Option<u64>,
    pub counters: Counters,
}

impl<P> Stream<P> {
    pub fn new(config: StreamConfig) -> Self {
        Stream {
            config,
            window: Window::new(config.oln, config.old),
            queue: VecDeque::new(),
            d: 0,
            e: 0,
            started: false,
            head_missed: false,
            last_frame: None,
            frames_begun: 0,
            dropped_frame: None,
            counters: Counters::default(),
        }
    }

    /// Applies a new configuration: the window restarts from the new
    /// `oln/old`; the head keeps its `d` and `e`, later heads use the new period.
    pub fn reconfigure(&mut self, config: StreamConfig) {
        self.config = config;
        self.window = Window::new(config.oln, config.old);
    }

    pub fn is_backlogged(&self) -> bool {
        !self.queue.is_empty()
    }

    fn droppable(&self, packet: &Packet<P>) -> bool {
        packet.drop.is_droppable(self.config.droppable)
    }

    /// Whether the head may be sent at `now` (false when there is no head).
    pub fn head_eligible(&self, now: Nanos) -> bool {
        self.is_backlogged()
            && (self.config.work_conserving || self.config.period == 0 || now >= self.e)
    }

    /// When a paced head becomes eligible; `None` if there is no head or it
    /// needs no pacing.
    pub fn head_eligible_at(&self) -> Option<Nanos> {
        if !self.is_backlogged() || self.config.work_conserving || self.config.period == 0 {
            None
        } else {
            Some(self.e)
        }
    }

    pub fn head_key(&self) -> Option<HeadKey> {
        let head = self.queue.front()?;
        let (x, y) = self.window.current();
        Some(HeadKey {
            deadline: self.d,
            x,
            y,
            seq: head.seq,
        })
    }

    /// Which frame `packet` belongs to: it continues the previous packet's
    /// frame only if it has no frame-start mark and carries the same explicit
    /// deadline. Records the packet as the previous one.
    pub fn assign_frame(&mut self, packet: &Packet<P>) -> u64 {
        let continues = match (self.last_frame, packet.deadline) {
            (Some(last), Some(deadline)) => !packet.frame_start && last.deadline == Some(deadline),
            _ => false,
        };
        let number = match self.last_frame {
            Some(last) if continues => last.number,
            _ => {
                self.frames_begun = self.frames_begun.saturating_add(1);
                self.frames_begun
            }
        };
        self.last_frame = Some(LastFrame {
            number,
            deadline: packet.deadline,
        });
        number
    }

    /// Whether a packet of `frame` arriving now must be dropped because an
    /// earlier packet of its frame was dropped for lateness.
    pub fn arrival_in_dropped_frame(&self, frame: u64, packet: &Packet<P>) -> bool {
        self.dropped_frame == Some(frame) && self.droppable(packet)
    }

    /// Counts a miss against the window; returns what it was.
    pub fn miss(&mut self) -> MissOutcome {
        self.counters.deadline_misses = self.counters.deadline_misses.saturating_add(1);
        let outcome = self.window.missed();
        if outcome == MissOutcome::Violation {
            self.counters.window_violations = self.counters.window_violations.saturating_add(1);
        }
        outcome
    }

    /// Queues a packet; if it is the new head, its `d` and `e` are set from `now`.
    pub fn push(&mut self, now: Nanos, queued: Queued<P>) {
        self.counters.queued(queued.packet.len);
        let was_empty = self.queue.is_empty();
        self.queue.push_back(queued);
        if was_empty {
            self.start_head(now, true);
        }
    }

    /// Sets `d` and `e` for a packet that has just become head at `now`.
    fn start_head(&mut self, now: Nanos, into_empty: bool) {
        let Some(head) = self.queue.front() else {
            return;
        };
        let period = self.config.period;
        let own_deadline = head.packet.deadline;
        let (d_prev, e_prev) = if self.started {
            (self.d, Some(self.e))
        } else {
            (0, None)
        };
        // A head that follows its predecessor keeps the pacing track even if
        // it reached the head late: taking max(.., now) here would push `e`
        // past `d - T` after any stall, and from then on every head of a
        // backlogged stream would become eligible only after its deadline.
        self.e = match e_prev {
            Some(e_prev) if into_empty => e_prev.saturating_add(period).max(now),
            Some(e_prev) => e_prev.saturating_add(period),
            None => now,
        };
        self.d = match own_deadline {
            Some(deadline) => deadline,
            None if into_empty => d_prev.max(now).saturating_add(period),
            None => d_prev.saturating_add(period),
        };
        self.started = true;
        self.head_missed = false;
    }

    /// Step 2 of `dequeue`: counts every head whose deadline has passed as a
    /// miss, dropping droppable ones with the rest of their frame.
    pub fn process_misses(&mut self, now: Nanos, id: super::StreamId, drops: &mut Vec<Dropped>) {
        loop {
            let Some(head) = self.queue.front() else {
                return;
            };
            if self.head_missed || self.d >= now {
                return;
            }
            let droppable = self.droppable(&head.packet);
            let outcome = self.miss();
            if !droppable {
                // Lossless: it stays head and goes out late, counted once.
                self.head_missed = true;
                return;
            }
            let Some(head) = self.queue.pop_front() else {
                return;
            };
            let reason = match outcome {
                MissOutcome::WithinTolerance => DropReason::Late,
                MissOutcome::Violation => DropReason::Window,
            };
            self.record_drop(id, &head, reason, drops);
            let frame = head.frame;
            self.drop_rest_of_frame(id, frame, drops);
            self.dropped_frame = Some(frame);
            self.start_head(now, false);
        }
    }

    /// Drops the queued droppable packets of `frame`, each a miss of its own.
    fn drop_rest_of_frame(&mut self, id: super::StreamId, frame: u64, drops: &mut Vec<Dropped>) {
        let mut kept = VecDeque::with_capacity(self.queue.len());
        let queue = std::mem::take(&mut self.queue);
        for queued in queue {
            if queued.frame == frame && self.droppable(&queued.packet) {
                self.miss();
                self.record_drop(id, &queued, DropReason::Frame, drops);
            } else {
                kept.push_back(queued);
            }
        }
        self.queue = kept;
    }

    fn record_drop(
        &mut self,
        id: super::StreamId,
        queued: &Queued<P>,
        reason: DropReason,
        drops: &mut Vec<Dropped>,
    ) {
        self.counters.unqueued(queued.packet.len);
        self.counters.count_drop(reason);
        drops.push(Dropped {
            class: Class::Stream(id),
            id: queued.packet.id,
            reason,
        });
    }

    /// Takes the head out to send it at `now`; returns it with its effective
    /// deadline and whether it is late.
    pub fn send_head(&mut self, now: Nanos) -> Option<(Queued<P>, Nanos, bool)> {
        let head = self.queue.pop_front()?;
        let deadline = self.d;
        // Misses were counted before selection, so an unmissed head is in time.
        let late = self.head_missed || now > deadline;
        if !late {
            self.window.sent_in_time();
        } else if !self.head_missed {
            self.miss();
        }
        self.counters.unqueued(head.packet.len);
        self.counters
            .sent(head.packet.len, now.saturating_sub(head.enqueued_at));
        self.start_head(now, false);
        Some((head, deadline, late))
    }

    /// Empties the queue (the stream is going away).
    pub fn take_queue(&mut self) -> Vec<Packet<P>> {
        self.counters.backlog_packets = 0;
        self.counters.backlog_bytes = 0;
        self.queue.drain(..).map(|q| q.packet).collect()
    }

    pub fn stats(&self) -> SchedulerStats {
        self.counters.stats(Some(self.window.current()))
    }
}
