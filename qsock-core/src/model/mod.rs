//! The DWCS reference model: a pure, deterministic packet scheduler that the
//! user-space backend runs and the kernel qdisc (kmod-dwcs) must match.
//!
//! The algorithm is Dynamic Window-Constrained Scheduling as published by
//! R. West and K. Schwan ("Dynamic Window-Constrained Scheduling for
//! Multimedia Applications", ICMCS 1999) and R. West, Y. Zhang, K. Schwan and
//! C. Poellabauer ("Dynamic Window-Constrained Scheduling of Real-Time Streams
//! in Media Servers", IEEE Transactions on Computers 53(6), 2004). This module
//! adds nothing but the choices the papers leave open, each marked
//! **decision** below and in `tests/vectors/README.md`. There is no clock inside: every call that needs
//! the time takes `now` in nanoseconds, and the caller decides when to call
//! [`Scheduler::dequeue`] again (see [`trace`] for the loop the test vectors
//! use). Decisions never depend on hash order or randomness.
//!
//! # Per-stream state
//!
//! `x'`, `y'` (start at `oln`, `old`), the head packet's deadline `d` and
//! eligibility time `e`, a FIFO, a violation tag and a frame counter.
//!
//! When a packet becomes head at time `t` (it arrives into an empty stream,
//! or the previous head was sent or dropped at `t`):
//!
//! - `e = max(e_prev + T, t)` if it arrived into an empty stream, else
//!   `e_prev + T`; for the first packet ever `e = t`.
//! - `d` = the packet's own deadline if it has one; else `max(d_prev, t) + T`
//!   if it arrived into an empty stream; else `d_prev + T` (`d_prev = 0`
//!   before the first packet).
//!
//! **decision**: pacing has its own track `e` instead of the papers' "not
//! before `d - T`". For packets with periodic deadlines `e == d - T` always,
//! but packets with explicit deadlines (a frame's packets share one) are
//! still spaced one per `T` instead of all being held until `d - T` and sent
//! in a burst.
//!
//! **decision**: a head that follows its predecessor gets `e_prev + T` even
//! when it reaches the head late, not `max(e_prev + T, t)`. With the `max`,
//! one stall (a busy link, a late send) would move `e` past `d - T` for good:
//! every later head of a backlogged stream would become eligible only after
//! its deadline, so a lossy stream would drop everything and a lossless one
//! send everything late until it ran empty. As with the papers' `d - T` rule,
//! a stream that fell behind sends back to back until it has caught up.
//!
//! A stream with a period is non-work-conserving by default: its head is not
//! sent before `e`. Work-conserving streams and aperiodic streams (`T = 0`)
//! are always eligible.
//!
//! **decision**: in an aperiodic stream a packet without its own deadline is
//! due when it becomes head (`d = max(d_prev, t)` with `T = 0`), so it is
//! late, and dropped if droppable, as soon as it waits at all. Aperiodic
//! streams are meant for packets that carry deadlines.
//!
//! # Frames
//!
//! **decision**: a packet continues the previous packet's frame (same
//! stream) if and only if it has no frame-start mark and carries an explicit
//! deadline equal to the previous packet's explicit deadline; otherwise it
//! starts a new frame. Packets without deadlines are one-packet frames. The
//! "previous packet" is the previous one the stream accepted (queued or
//! dropped); refused packets do not count.
//!
//! # `dequeue(now)`
//!
//! 1. If a link rate is set and the link is still busy with the previous
//!    packet (`link_free_at > now`), return `NotBefore(link_free_at)` and do
//!    nothing else, not even counting misses.
//! 2. Misses, stream by stream in [`StreamId`] order: while the head's
//!    `d < now` and the head has not been counted yet, it is a miss and the
//!    window is adjusted as the papers say (`x' > 0`: `x' -= 1, y' -= 1`,
//!    restart at `0/0`; `x' == 0`: a window violation, and if `old > 0`
//!    `y' += 1` and the stream is tagged). A droppable head is dropped
//!    ([`DropReason::Late`] if `x'` was above 0 before the miss,
//!    [`DropReason::Window`] otherwise), then every droppable packet of its
//!    frame still queued ([`DropReason::Frame`], each a miss too), the frame
//!    is remembered so later droppable arrivals of it are dropped at enqueue
//!    (also misses), and the next packet becomes head. A non-droppable head is
//!    marked missed: it stays head, is sent late and is not counted again.
//! 3. Among backlogged streams whose head is eligible, the first by the
//!    precedence of [`order::compare`] sends its head. In time (not missed,
//!    `now <= d`) it adjusts the window as the papers' "sent before its
//!    deadline" (including the tag reset); a missed head is sent with
//!    `late: true` and no further adjustment. With a link rate the packet
//!    takes `wire = len * 1e9 / rate` (integer division) and
//!    `link_free_at = start + wire`, where `start` is the previous
//!    `link_free_at` if `now` is at most `wire` past it (a late timer does not
//!    lower the rate; at most one packet of burst), else `now`.
//! 4. If no stream head is eligible, the best-effort FIFO sends its head.
//! 5. Otherwise `NotBefore(min e over the waiting heads)`, or `Idle`.
//!
//! **decision**: a miss is detected only by a `dequeue` call. `NotBefore`
//! names the next time something can be *sent*, not the next deadline, so a
//! caller that follows it detects a miss at the next send opportunity; the
//! count and the drops are the same, only their time differs.
//!
//! # `enqueue`
//!
//! - A packet for an unknown stream is refused ([`RefuseReason::UnknownStream`]).
//! - A droppable packet of a frame already dropped is dropped
//!   ([`DropReason::Frame`], a miss), whatever the queue's length.
//! - When the queue holds `limit` packets (the streams' together, or best
//!   effort's: each has the limit to itself, so that a bulk transfer
//!   filling best effort never takes a stream's room) a droppable
//!   packet is dropped ([`DropReason::QueueFull`], no window adjustment, like a
//!   qdisc's tail drop) and `Ok(())` is returned; a non-droppable packet is
//!   refused ([`RefuseReason::QueueFull`]) and handed back to be retried.
//!
//! **decision**: best-effort packets are droppable unless they are marked
//! [`crate::DropFlag::NonDroppable`]; their deadlines and frame marks are
//! ignored (best effort is one FIFO).
//!
//! **decision**: a queue-full drop is not a miss and does not drop the rest of
//! the packet's frame.
//!
//! **decision**: droppability is resolved when it matters (at a miss or when
//! the queue is full) against the stream's current `droppable` flag, so
//! [`Scheduler::change_stream`] applies to packets already queued.
//!
//! # Statistics
//!
//! `deadline_misses` counts every miss adjustment (late drops, window drops,
//! frame drops and late sends); `window_violations` counts misses at
//! `x' == 0`. **decision**: this includes `0/0` streams, whose window
//! the papers leave unchanged on a miss, because a stream that tolerates no
//! loss has had its constraint broken (its drops carry [`DropReason::Window`]).
//!
//! # What the window-constraint means
//!
//! `x'/y'` count consecutive windows of `old` packets: every packet, sent or
//! missed, takes one from `y'`, and the window restarts when both reach 0.
//! The guarantee of the DWCS papers (equal periods and sizes, `U <= 1`) is
//! therefore "at most `oln` misses in each consecutive window", not in every sliding
//! window: a stream may lose `oln` packets at the end of one window and `oln`
//! at the start of the next (see `tests/vectors/10_consecutive_windows.vec`).
//!
//! Never is a non-droppable packet dropped, and no input makes the model
//! panic: time arithmetic saturates.

pub mod order;
mod stream;
pub mod trace;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::error::{Error, ErrorKind, Result};
use crate::flags::DropFlag;
use crate::info::SchedulerStats;
use crate::params::{StreamKind, StreamParams, WindowConstraint};

use stream::{Counters, Queued, Stream};

/// Nanoseconds on the caller's clock (`CLOCK_MONOTONIC` in qsock).
pub type Nanos = u64;

/// A stream's identity within one [`Scheduler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How one stream is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamConfig {
    /// Request period `T` (the paper's `ipg`); 0 for an aperiodic stream.
    pub period: Nanos,
    /// Packets that may miss in every window of `old` (the paper's `oln`).
    pub oln: u32,
    /// Window length in packets (the paper's `old`).
    pub old: u32,
    /// Late packets are dropped (lossy) instead of sent late (lossless).
    pub droppable: bool,
    /// Send ahead of the period when nothing else is eligible, instead of
    /// pacing to one packet per period.
    pub work_conserving: bool,
}

impl StreamConfig {
    /// The model's view of a stream's parameters. Aperiodic (and best-effort)
    /// parameters become period 0, work-conserving. A period too long for
    /// `u64` nanoseconds saturates.
    pub fn from_params(p: &StreamParams) -> Self {
        let periodic = p.kind == StreamKind::Periodic;
        StreamConfig {
            period: if periodic {
                u64::try_from(p.ipg.as_nanos()).unwrap_or(u64::MAX)
            } else {
                0
            },
            oln: p.window.oln,
            old: p.window.old,
            droppable: p.droppable,
            work_conserving: p.work_conserving || !periodic,
        }
    }

    fn validate(&self) -> Result<()> {
        WindowConstraint::new(self.oln, self.old).validate()?;
        Ok(())
    }
}

/// Limits that apply to the whole scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedulerConfig {
    /// The link rate in bytes per second; `None` (or 0) for no limit.
    pub link_rate: Option<u64>,
    /// Most packets queued at once by the streams together, and, apart, by
    /// best effort.
    pub limit: u32,
    /// How finely rule 1 (earliest deadline first) tells deadlines apart, in
    /// nanoseconds; 0 tells every nanosecond apart. See
    /// [`Scheduler::deadline_slot`].
    pub resolution: Nanos,
}

impl SchedulerConfig {
    /// The limit of [`SchedulerConfig::default`], a device's usual `txqueuelen`.
    pub const DEFAULT_LIMIT: u32 = 1000;
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            link_rate: None,
            limit: SchedulerConfig::DEFAULT_LIMIT,
            resolution: 0,
        }
    }
}

/// Which queue a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The best-effort FIFO, served when no stream is eligible.
    BestEffort,
    /// A DWCS stream.
    Stream(StreamId),
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Class::BestEffort => f.write_str("be"),
            Class::Stream(id) => write!(f, "{id}"),
        }
    }
}

/// A packet as the scheduler sees it; `payload` is carried through untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<P> {
    /// The caller's identifier, reported back in departures and drops.
    pub id: u64,
    /// Length in bytes (what the link rate charges).
    pub len: u32,
    /// The packet's own deadline; `None` takes the stream's periodic one.
    pub deadline: Option<Nanos>,
    /// Whether it may be dropped when late.
    pub drop: DropFlag,
    /// Starts a new frame even if its deadline equals the previous packet's.
    pub frame_start: bool,
    /// The caller's data.
    pub payload: P,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Late, while the stream still had loss tolerance (`x' > 0`).
    Late,
    /// Late with `x' == 0`: the drop breaks the window-constraint.
    Window,
    /// The rest of a frame one of whose packets was dropped for lateness.
    Frame,
    /// Droppable, and the queue was full at enqueue.
    QueueFull,
}

impl DropReason {
    /// The name used in test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Late => "late",
            DropReason::Window => "window",
            DropReason::Frame => "frame",
            DropReason::QueueFull => "queue_full",
        }
    }
}

/// A packet the scheduler dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dropped {
    /// Where it was queued.
    pub class: Class,
    /// The packet's [`Packet::id`].
    pub id: u64,
    /// Why.
    pub reason: DropReason,
}

/// A packet leaving the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure<P> {
    /// Where it was queued.
    pub class: Class,
    /// The packet.
    pub packet: Packet<P>,
    /// When it was enqueued.
    pub enqueued_at: Nanos,
    /// Its effective deadline `d`; `None` for best effort.
    pub deadline: Option<Nanos>,
    /// Whether it missed that deadline (lossless streams send late packets).
    pub late: bool,
}

/// What [`Scheduler::dequeue`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<P> {
    /// Send this packet now.
    Send(Departure<P>),
    /// Nothing may be sent before this time; call again then (or on an arrival).
    NotBefore(Nanos),
    /// Nothing is queued.
    Idle,
}

/// Why a packet was handed back by [`Scheduler::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The queue is full and the packet must not be dropped: retry later.
    QueueFull,
    /// The class names a stream the scheduler does not have.
    UnknownStream,
}

impl RefuseReason {
    /// The name used in test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::QueueFull => "queue_full",
            RefuseReason::UnknownStream => "unknown_stream",
        }
    }
}

/// A packet the scheduler would not take; the caller keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused<P> {
    /// The packet, untouched.
    pub packet: Packet<P>,
    /// Why it was refused.
    pub reason: RefuseReason,
}

impl<P> Refused<P> {
    /// The error a socket call reports for this refusal
    /// ([`ErrorKind::QueueFull`] or [`ErrorKind::InvalidInput`]).
    pub fn to_error(&self) -> Error {
        match self.reason {
            RefuseReason::QueueFull => Error::new(
                ErrorKind::QueueFull,
                "the scheduler's queue is full and the packet is marked non-droppable: retry later",
            ),
            RefuseReason::UnknownStream => Error::invalid(
                "the packet names a stream the scheduler does not have: attach the socket first",
            ),
        }
    }
}

/// The DWCS scheduler: streams, a best-effort FIFO and an optional link rate.
#[derive(Debug)]
pub struct Scheduler<P> {
    config: SchedulerConfig,
    streams: BTreeMap<StreamId, Stream<P>>,
    best_effort: VecDeque<Queued<P>>,
    best_effort_counters: Counters,
    drops: Vec<Dropped>,
    link_free_at: Nanos,
    next_seq: u64,
    queued: usize,
    /// Where deadline slots are counted from: set at the first arrival.
    epoch: Option<Nanos>,
}

impl<P> Scheduler<P> {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            streams: BTreeMap::new(),
            best_effort: VecDeque::new(),
            best_effort_counters: Counters::default(),
            drops: Vec::new(),
            link_free_at: 0,
            next_seq: 0,
            queued: 0,
            epoch: None,
        }
    }

    /// The slot of `deadline` that rule 1 compares: the deadline itself at
    /// resolution 0, else its slot of `resolution` counted from the epoch.
    ///
    /// **decision**: deadlines are compared at a resolution. DWCS's guarantee
    /// assumes streams whose deadlines coincide, as they did when deadlines
    /// were counted in clock ticks; with nanosecond deadlines, streams started
    /// together by one application differ by scheduling jitter, rule 1 then
    /// always separates them, the window-constraint rules never apply, and
    /// under overload the stream that happens to be a few microseconds late
    /// takes every loss. The epoch lies half a slot before the first arrival,
    /// so that streams started within half a slot of it share their slots.
    pub fn deadline_slot(&self, deadline: Nanos) -> Nanos {
        match (self.config.resolution, self.epoch) {
            (0, _) | (_, None) => deadline,
            (resolution, Some(epoch)) => deadline.saturating_sub(epoch) / resolution,
        }
    }

    /// The scheduler-wide limits in force.
    pub fn config(&self) -> SchedulerConfig {
        self.config
    }

    /// Changes the link rate and the limit. Nothing queued is dropped when the
    /// limit shrinks below the backlog: new packets are refused or dropped
    /// until the backlog is under it again. A packet on the wire keeps the
    /// link busy for the time the old rate gave it.
    pub fn set_config(&mut self, config: SchedulerConfig) {
        self.config = config;
    }

    /// Adds a stream. Fails with [`ErrorKind::InvalidInput`] if the id is
    /// taken or the window is invalid (`oln > old`, or `old == 0 < oln`).
    pub fn add_stream(&mut self, id: StreamId, config: StreamConfig) -> Result<()> {
        config.validate()?;
        if self.streams.contains_key(&id) {
            return Err(Error::invalid(format!(
                "stream {id} already exists: remove it first, or change it with change_stream"
            )));
        }
        self.streams.insert(id, Stream::new(config));
        Ok(())
    }

    /// Changes a stream's configuration; `x'/y'` restart from the new
    /// `oln/old` and the tag is cleared. The head keeps its `d` and `e`.
    pub fn change_stream(&mut self, id: StreamId, config: StreamConfig) -> Result<()> {
        config.validate()?;
        let stream = self.streams.get_mut(&id).ok_or_else(|| unknown(id))?;
        stream.reconfigure(config);
        Ok(())
    }

    /// Removes a stream and hands back what it had queued, oldest first.
    pub fn remove_stream(&mut self, id: StreamId) -> Result<Vec<Packet<P>>> {
        let mut stream = self.streams.remove(&id).ok_or_else(|| unknown(id))?;
        let packets = stream.take_queue();
        self.queued = self.queued.saturating_sub(packets.len());
        Ok(packets)
    }

    /// Offers a packet at `now`. `Ok(())` means it was queued or dropped
    /// (droppable packets are dropped, never refused: see
    /// [`Scheduler::drain_drops`]); `Err` hands back a packet that the
    /// scheduler will not take.
    pub fn enqueue(
        &mut self,
        now: Nanos,
        class: Class,
        packet: Packet<P>,
    ) -> std::result::Result<(), Refused<P>> {
        if self.epoch.is_none() {
            self.epoch = Some(now.saturating_sub(self.config.resolution / 2));
        }
        let held = match class {
            Class::BestEffort => self.best_effort.len(),
            Class::Stream(_) => self.queued.saturating_sub(self.best_effort.len()),
        };
        let full = held >= self.config.limit as usize;
        let seq = self.next_seq;
        match class {
            Class::BestEffort => {
                if full {
                    let droppable = packet.drop.is_droppable(true);
                    return self.refuse_or_drop(class, packet, droppable);
                }
                self.next_seq = self.next_seq.saturating_add(1);
                self.best_effort_counters.queued(packet.len);
                self.best_effort.push_back(Queued {
                    packet,
                    enqueued_at: now,
                    seq,
                    frame: 0,
                });
            }
            Class::Stream(id) => {
                let Some(stream) = self.streams.get_mut(&id) else {
                    return Err(Refused {
                        packet,
                        reason: RefuseReason::UnknownStream,
                    });
                };
                let droppable = packet.drop.is_droppable(stream.config.droppable);
                if full && !droppable {
                    // Refused packets do not take part in framing: the retry will.
                    return Err(Refused {
                        packet,
                        reason: RefuseReason::QueueFull,
                    });
                }
                let frame = stream.assign_frame(&packet);
                if stream.arrival_in_dropped_frame(frame, &packet) {
                    stream.miss();
                    stream.counters.count_drop(DropReason::Frame);
                    self.drops.push(Dropped {
                        class,
                        id: packet.id,
                        reason: DropReason::Frame,
                    });
                    return Ok(());
                }
                if full {
                    return self.refuse_or_drop(class, packet, droppable);
                }
                self.next_seq = self.next_seq.saturating_add(1);
                stream.push(
                    now,
                    Queued {
                        packet,
                        enqueued_at: now,
                        seq,
                        frame,
                    },
                );
            }
        }
        self.queued = self.queued.saturating_add(1);
        Ok(())
    }

    /// The queue is full: drop a droppable packet, hand back the others.
    fn refuse_or_drop(
        &mut self,
        class: Class,
        packet: Packet<P>,
        droppable: bool,
    ) -> std::result::Result<(), Refused<P>> {
        if !droppable {
            return Err(Refused {
                packet,
                reason: RefuseReason::QueueFull,
            });
        }
        // Callers check the stream exists before they get here.
        let counters = match class {
            Class::Stream(id) => self.streams.get_mut(&id).map(|s| &mut s.counters),
            Class::BestEffort => Some(&mut self.best_effort_counters),
        };
        if let Some(counters) = counters {
            counters.count_drop(DropReason::QueueFull);
        }
        self.drops.push(Dropped {
            class,
            id: packet.id,
            reason: DropReason::QueueFull,
        });
        Ok(())
    }

    /// Decides what leaves at `now` (see the module docs for the steps).
    pub fn dequeue(&mut self, now: Nanos) -> Next<P> {
        let rate = self.link_rate();
        if rate.is_some() && self.link_free_at > now {
            return Next::NotBefore(self.link_free_at);
        }

        for (&id, stream) in self.streams.iter_mut() {
            let before = stream.counters.backlog_packets;
            stream.process_misses(now, id, &mut self.drops);
            let removed = before.saturating_sub(stream.counters.backlog_packets);
            self.queued = self
                .queued
                .saturating_sub(usize::try_from(removed).unwrap_or(usize::MAX));
        }

        let mut best: Option<(StreamId, order::HeadKey)> = None;
        for (&id, stream) in &self.streams {
            if !stream.head_eligible(now) {
                continue;
            }
            let Some(mut key) = stream.head_key() else {
                continue;
            };
            key.deadline = self.deadline_slot(key.deadline);
            let better = match &best {
                None => true,
                Some((_, best_key)) => order::compare(&key, best_key).is_lt(),
            };
            if better {
                best = Some((id, key));
            }
        }

        let departure = if let Some((id, _)) = best {
            self.streams
                .get_mut(&id)
                .and_then(|stream| stream.send_head(now))
                .map(|(queued, deadline, late)| Departure {
                    class: Class::Stream(id),
                    packet: queued.packet,
                    enqueued_at: queued.enqueued_at,
                    deadline: Some(deadline),
                    late,
                })
        } else if let Some(queued) = self.best_effort.pop_front() {
            self.best_effort_counters.unqueued(queued.packet.len);
            self.best_effort_counters
                .sent(queued.packet.len, now.saturating_sub(queued.enqueued_at));
            Some(Departure {
                class: Class::BestEffort,
                packet: queued.packet,
                enqueued_at: queued.enqueued_at,
                deadline: None,
                late: false,
            })
        } else {
            None
        };

        if let Some(departure) = departure {
            self.queued = self.queued.saturating_sub(1);
            if let Some(rate) = rate {
                let wire = u128::from(departure.packet.len) * 1_000_000_000 / u128::from(rate);
                let wire = u64::try_from(wire).unwrap_or(u64::MAX);
                // A dequeue that comes late by less than this packet's own
                // time on the wire (timer lag) continues from where the
                // previous packet ended, so lag does not lower the rate.
                let start = if now.saturating_sub(self.link_free_at) <= wire {
                    self.link_free_at
                } else {
                    now
                };
                self.link_free_at = start.saturating_add(wire);
            }
            return Next::Send(departure);
        }

        match self
            .streams
            .values()
            .filter_map(Stream::head_eligible_at)
            .min()
        {
            Some(at) => Next::NotBefore(at),
            None => Next::Idle,
        }
    }

    fn link_rate(&self) -> Option<u64> {
        self.config.link_rate.filter(|&rate| rate > 0)
    }

    /// Takes back the count of a packet of `len` bytes that [`Scheduler::dequeue`]
    /// released from `class` but that did not leave (the system refused to
    /// send it): it is not counted as sent, and with `dropped`, it is counted
    /// as dropped for that reason. An unknown stream is ignored: it has gone.
    pub fn not_sent(&mut self, class: Class, len: u32, dropped: Option<DropReason>) {
        let counters = match class {
            Class::Stream(id) => match self.streams.get_mut(&id) {
                Some(stream) => &mut stream.counters,
                None => return,
            },
            Class::BestEffort => &mut self.best_effort_counters,
        };
        counters.unsent(len);
        if let Some(reason) = dropped {
            counters.count_drop(reason);
        }
    }

    /// The drops since the last call, in the order they happened.
    pub fn drain_drops(&mut self) -> impl Iterator<Item = Dropped> + '_ {
        self.drops.drain(..)
    }

    /// A stream's figures, every field filled; `None` for an unknown stream.
    pub fn stream_stats(&self, id: StreamId) -> Option<SchedulerStats> {
        self.streams.get(&id).map(Stream::stats)
    }

    /// The best-effort FIFO's figures (no deadlines, no window).
    pub fn best_effort_stats(&self) -> SchedulerStats {
        self.best_effort_counters.stats(None)
    }

    /// Packets queued, all classes together.
    pub fn backlog(&self) -> usize {
        self.queued
    }

    /// A stream's current window-constraint `(x', y')`.
    pub fn window(&self, id: StreamId) -> Option<(u32, u32)> {
        self.streams.get(&id).map(|s| s.window.current())
    }

    /// The streams, in [`StreamId`] order.
    pub fn stream_ids(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams.keys().copied()
    }
}

fn unknown(id: StreamId) -> Error {
    Error::invalid(format!("there is no stream {id} in this scheduler"))
}
