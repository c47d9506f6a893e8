//! Test vectors: a line-oriented text format for a trace of arrivals and the
//! results the scheduler must give, its parser and writer, and the loop that
//! replays a trace. The kernel's C driver must replay vectors the same way;
//! `tests/vectors/README.md` is the format's reference.
//!
//! # Format
//!
//! One statement per line; `#` starts a comment; blank lines are ignored.
//! Times are unsigned integers in nanoseconds, optionally followed by one of
//! the units `ns`, `us`, `ms`, `s` (`1500us`, `2ms`). Counts are plain
//! integers. A class is `be` (best effort) or a stream number.
//!
//! ```text
//! rate <bytes-per-second>|none       # default: none
//! limit <packets>                    # default: 1000
//! resolution <time>                  # default: 0 (deadlines compared exactly)
//! stream <id> [period=<time>] [oln=<n>] [old=<n>] [droppable=yes|no] [wc=yes|no]
//! arrive <time> <class> id=<n> len=<n> [deadline=<time>] [drop=default|yes|no] [start]
//! send <time> <class> id=<n> [late]
//! drop <time> <class> id=<n> late|window|frame|queue_full
//! refuse <time> <class> id=<n> queue_full|unknown_stream
//! window <stream> x=<n> y=<n>
//! ```
//!
//! `rate`, `limit`, `resolution` and `stream` lines come before the first `arrive`;
//! `arrive` lines are in non-decreasing time order. `send`, `drop` and
//! `refuse` lines are the expected events in the order they happen; `window`
//! lines give every stream's final `x'`/`y'`, in stream order.
//!
//! # Replay loop
//!
//! ```text
//! now = time of the first arrival (no arrivals: nothing happens)
//! loop:
//!     enqueue, in file order, every arrival with time <= now;
//!         after each: a refusal is a `refuse` event, then the drops are
//!         drained into `drop` events
//!     repeat: r = dequeue(now); drain drops into `drop` events;
//!             if r is Send: a `send` event at now (late if the departure is)
//!         until r is NotBefore(t) or Idle
//!     next = min(t if NotBefore, time of the next arrival if any)
//!     if there is no next: stop
//!     now = next
//! then: `window` of every stream in stream order
//! ```
//!
//! Refused packets are not retried. Drops are drained after each call, so
//! the drops of one dequeue come before its send.

use std::fmt;
use std::fmt::Write as _;

use super::{
    Class, DropReason, Next, Packet, RefuseReason, Scheduler, SchedulerConfig, StreamConfig,
    StreamId,
};
use crate::error::{Error, Result};
use crate::flags::DropFlag;
use crate::model::Nanos;

/// One packet offered to the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When it is enqueued.
    pub time: Nanos,
    /// Its queue.
    pub class: Class,
    /// Its identifier (unique within a trace, by convention).
    pub id: u64,
    /// Length in bytes.
    pub len: u32,
    /// Its own deadline.
    pub deadline: Option<Nanos>,
    /// Its drop flag.
    pub drop: DropFlag,
    /// Its frame-start mark.
    pub frame_start: bool,
}

impl Arrival {
    /// The packet to enqueue.
    pub fn packet(&self) -> Packet<()> {
        Packet {
            id: self.id,
            len: self.len,
            deadline: self.deadline,
            drop: self.drop,
            frame_start: self.frame_start,
            payload: (),
        }
    }
}

/// Something observable that happened during a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A packet left.
    Send {
        /// When.
        time: Nanos,
        /// Its queue.
        class: Class,
        /// Its identifier.
        id: u64,
        /// Whether it missed its deadline.
        late: bool,
    },
    /// A packet was dropped.
    Drop {
        /// When (the time of the call that dropped it).
        time: Nanos,
        /// Its queue.
        class: Class,
        /// Its identifier.
        id: u64,
        /// Why.
        reason: DropReason,
    },
    /// A packet was refused at enqueue.
    Refuse {
        /// When.
        time: Nanos,
        /// The queue it was offered to.
        class: Class,
        /// Its identifier.
        id: u64,
        /// Why.
        reason: RefuseReason,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Send {
                time,
                class,
                id,
                late,
            } => {
                write!(f, "send {} {class} id={id}", Time(time))?;
                if late {
                    f.write_str(" late")?;
                }
                Ok(())
            }
            Event::Drop {
                time,
                class,
                id,
                reason,
            } => write!(f, "drop {} {class} id={id} {}", Time(time), reason.as_str()),
            Event::Refuse {
                time,
                class,
                id,
                reason,
            } => write!(
                f,
                "refuse {} {class} id={id} {}",
                Time(time),
                reason.as_str()
            ),
        }
    }
}

/// A time written in the largest unit that represents it exactly.
#[derive(Debug, Clone, Copy)]
pub struct Time(pub Nanos);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        if t == 0 {
            return f.write_str("0");
        }
        for (unit, scale) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
            if t % scale == 0 {
                return write!(f, "{}{unit}", t / scale);
            }
        }
        write!(f, "{t}")
    }
}

/// What a replay produced (or a vector expects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sends, drops and refusals in the order they happened.
    pub events: Vec<Event>,
    /// Every stream's final `(x', y')`, in stream order.
    pub windows: Vec<(StreamId, u32, u32)>,
}

impl Outcome {
    /// The outcome as vector lines.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.events.iter().map(Event::to_string).collect();
        lines.extend(
            self.windows
                .iter()
                .map(|(id, x, y)| format!("window {id} x={x} y={y}")),
        );
        lines
    }

    /// `None` if `actual` matches `self`; otherwise a report of every line,
    /// expected beside actual, differing ones marked with `!`.
    pub fn diff(&self, actual: &Outcome) -> Option<String> {
        if self == actual {
            return None;
        }
        let expected = self.lines();
        let actual = actual.lines();
        let width = expected.iter().map(String::len).max().unwrap_or(0).max(8);
        let mut report = String::new();
        if let Some(first) =
            (0..expected.len().max(actual.len())).find(|&i| expected.get(i) != actual.get(i))
        {
            let _ = writeln!(
                report,
                "first difference at result line {}: expected `{}`, got `{}`",
                first + 1,
                expected.get(first).map_or("(nothing)", String::as_str),
                actual.get(first).map_or("(nothing)", String::as_str)
            );
        }
        let _ = writeln!(report, "  {:<width$} | actual", "expected");
        for i in 0..expected.len().max(actual.len()) {
            let e = expected.get(i).map_or("", String::as_str);
            let a = actual.get(i).map_or("", String::as_str);
            let mark = if e == a { ' ' } else { '!' };
            let _ = writeln!(report, "{mark} {e:<width$} | {a}");
        }
        Some(report)
    }
}

/// A parsed vector: configuration, arrivals and expected outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Comment lines before the first statement, without their `#`.
    pub header: Vec<String>,
    /// Link rate and limit.
    pub config: SchedulerConfig,
    /// Streams, in the order they are added.
    pub streams: Vec<(StreamId, StreamConfig)>,
    /// Arrivals in time order.
    pub arrivals: Vec<Arrival>,
    /// The expected results (empty if the vector has none).
    pub expected: Outcome,
}

/// Reads a time: digits and an optional unit `ns`, `us`, `ms` or `s`.
pub fn parse_time(text: &str) -> Result<Nanos> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "" | "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => {
            return Err(Error::invalid(format!(
                "bad time {text:?}: write an integer with an optional unit ns, us, ms or s"
            )))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            Error::invalid(format!(
                "bad time {text:?}: write an integer with an optional unit ns, us, ms or s, \
                 at most 2^64-1 ns"
            ))
        })
}

fn parse_int<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse()
        .map_err(|_| Error::invalid(format!("bad {what} {text:?}: expected an integer")))
}

fn parse_yes_no(text: &str, what: &str) -> Result<bool> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(Error::invalid(format!(
            "bad {what} {text:?}: expected yes or no"
        ))),
    }
}

fn parse_class(text: &str) -> Result<Class> {
    if text == "be" {
        Ok(Class::BestEffort)
    } else {
        Ok(Class::Stream(StreamId(parse_int(text, "class")?)))
    }
}

fn parse_drop_reason(text: &str) -> Result<DropReason> {
    [
        DropReason::Late,
        DropReason::Window,
        DropReason::Frame,
        DropReason::QueueFull,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
    .ok_or_else(|| {
        Error::invalid(format!(
            "bad drop reason {text:?}: expected late, window, frame or queue_full"
        ))
    })
}

fn parse_refuse_reason(text: &str) -> Result<RefuseReason> {
    [RefuseReason::QueueFull, RefuseReason::UnknownStream]
        .into_iter()
        .find(|r| r.as_str() == text)
        .ok_or_else(|| {
            Error::invalid(format!(
                "bad refusal reason {text:?}: expected queue_full or unknown_stream"
            ))
        })
}

/// The words of a statement after its keyword and positional fields.
struct Fields<'a> {
    words: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    /// Takes `key=value`, if present.
    fn take(&mut self, key: &str) -> Option<&'a str> {
        let pos = self
            .words
            .iter()
            .position(|w| w.split_once('=').is_some_and(|(k, _)| k == key))?;
        let word = self.words.remove(pos);
        word.split_once('=').map(|(_, v)| v)
    }

    fn require(&mut self, key: &str) -> Result<&'a str> {
        self.take(key)
            .ok_or_else(|| Error::invalid(format!("missing {key}=")))
    }

    /// Takes the first word, whichever it is; "" when none is left.
    fn first(&mut self) -> &'a str {
        if self.words.is_empty() {
            ""
        } else {
            self.words.remove(0)
        }
    }

    /// Takes a bare word, if present.
    fn flag(&mut self, word: &str) -> bool {
        match self.words.iter().position(|w| *w == word) {
            Some(pos) => {
                self.words.remove(pos);
                true
            }
            None => false,
        }
    }

    fn finish(self) -> Result<()> {
        match self.words.first() {
            None => Ok(()),
            Some(word) => Err(Error::invalid(format!("unexpected {word:?}"))),
        }
    }
}

fn positional<'a>(words: &[&'a str], index: usize, what: &str) -> Result<&'a str> {
    words
        .get(index)
        .copied()
        .ok_or_else(|| Error::invalid(format!("missing {what}")))
}

/// Parses a vector. Errors name the line.
pub fn parse(text: &str) -> Result<Trace> {
    let mut trace = Trace::default();
    let mut in_header = true;
    for (index, raw) in text.lines().enumerate() {
        let (code, comment) = match raw.split_once('#') {
            Some((code, comment)) => (code, Some(comment)),
            None => (raw, None),
        };
        let words: Vec<&str> = code.split_whitespace().collect();
        if words.is_empty() {
            if in_header {
                if let Some(comment) = comment {
                    trace
                        .header
                        .push(comment.strip_prefix(' ').unwrap_or(comment).into());
                }
            }
            continue;
        }
        in_header = false;
        parse_statement(&mut trace, &words).map_err(|e| {
            Error::invalid(format!("line {}: {}: {:?}", index + 1, e.message(), raw))
        })?;
    }
    Ok(trace)
}

fn parse_statement(trace: &mut Trace, words: &[&str]) -> Result<()> {
    let keyword = words[0];
    let configuring = matches!(keyword, "rate" | "limit" | "resolution" | "stream");
    if configuring && !trace.arrivals.is_empty() {
        return Err(Error::invalid(format!(
            "{keyword} must come before the first arrive"
        )));
    }
    match keyword {
        "rate" => {
            let value = positional(words, 1, "rate")?;
            trace.config.link_rate = match value {
                "none" => None,
                n => Some(parse_int(n, "rate")?),
            };
            Fields {
                words: words[2..].to_vec(),
            }
            .finish()
        }
        "limit" => {
            trace.config.limit = parse_int(positional(words, 1, "limit")?, "limit")?;
            Fields {
                words: words[2..].to_vec(),
            }
            .finish()
        }
        "resolution" => {
            trace.config.resolution = parse_time(positional(words, 1, "resolution")?)?;
            Fields {
                words: words[2..].to_vec(),
            }
            .finish()
        }
        "stream" => {
            let id = StreamId(parse_int(positional(words, 1, "stream id")?, "stream id")?);
            if trace.streams.iter().any(|(s, _)| *s == id) {
                return Err(Error::invalid(format!("stream {id} defined twice")));
            }
            let mut f = Fields {
                words: words[2..].to_vec(),
            };
            let config = StreamConfig {
                period: f.take("period").map(parse_time).transpose()?.unwrap_or(0),
                oln: f
                    .take("oln")
                    .map(|v| parse_int(v, "oln"))
                    .transpose()?
                    .unwrap_or(0),
                old: f
                    .take("old")
                    .map(|v| parse_int(v, "old"))
                    .transpose()?
                    .unwrap_or(0),
                droppable: f
                    .take("droppable")
                    .map(|v| parse_yes_no(v, "droppable"))
                    .transpose()?
                    .unwrap_or(true),
                work_conserving: f
                    .take("wc")
                    .map(|v| parse_yes_no(v, "wc"))
                    .transpose()?
                    .unwrap_or(false),
            };
            f.finish()?;
            trace.streams.push((id, config));
            Ok(())
        }
        "arrive" => {
            let time = parse_time(positional(words, 1, "time")?)?;
            if trace.arrivals.last().is_some_and(|a| a.time > time) {
                return Err(Error::invalid("arrivals must be in time order"));
            }
            let class = parse_class(positional(words, 2, "class")?)?;
            let mut f = Fields {
                words: words.get(3..).unwrap_or_default().to_vec(),
            };
            let arrival = Arrival {
                time,
                class,
                id: parse_int(f.require("id")?, "id")?,
                len: parse_int(f.require("len")?, "len")?,
                deadline: f.take("deadline").map(parse_time).transpose()?,
                drop: match f.take("drop") {
                    None | Some("default") => DropFlag::StreamDefault,
                    Some("yes") => DropFlag::Droppable,
                    Some("no") => DropFlag::NonDroppable,
                    Some(other) => {
                        return Err(Error::invalid(format!(
                            "bad drop {other:?}: expected default, yes or no"
                        )))
                    }
                },
                frame_start: f.flag("start"),
            };
            f.finish()?;
            trace.arrivals.push(arrival);
            Ok(())
        }
        "send" | "drop" | "refuse" => {
            let time = parse_time(positional(words, 1, "time")?)?;
            let class = parse_class(positional(words, 2, "class")?)?;
            let mut f = Fields {
                words: words.get(3..).unwrap_or_default().to_vec(),
            };
            let id = parse_int(f.require("id")?, "id")?;
            let event = match keyword {
                "send" => Event::Send {
                    time,
                    class,
                    id,
                    late: f.flag("late"),
                },
                "drop" => Event::Drop {
                    time,
                    class,
                    id,
                    reason: parse_drop_reason(f.first())?,
                },
                _ => Event::Refuse {
                    time,
                    class,
                    id,
                    reason: parse_refuse_reason(f.first())?,
                },
            };
            f.finish()?;
            trace.expected.events.push(event);
            Ok(())
        }
        "window" => {
            let id = StreamId(parse_int(positional(words, 1, "stream id")?, "stream id")?);
            let mut f = Fields {
                words: words[2..].to_vec(),
            };
            let x = parse_int(f.require("x")?, "x")?;
            let y = parse_int(f.require("y")?, "y")?;
            f.finish()?;
            trace.expected.windows.push((id, x, y));
            Ok(())
        }
        other => Err(Error::invalid(format!(
            "unknown statement {other:?}: expected rate, limit, resolution, stream, arrive, send, drop, \
             refuse or window"
        ))),
    }
}

/// Replays a trace with the loop of the module docs.
pub fn run(trace: &Trace) -> Result<Outcome> {
    let mut scheduler = Scheduler::<()>::new(trace.config);
    for (id, config) in &trace.streams {
        scheduler.add_stream(*id, *config)?;
    }
    let mut events = Vec::new();
    let arrivals = &trace.arrivals;
    let mut next = 0;
    // With no arrivals nothing is queued, so there is nothing to replay.
    let mut now = arrivals.first().map_or(0, |a| a.time);
    while !arrivals.is_empty() {
        while let Some(arrival) = arrivals.get(next).filter(|a| a.time <= now) {
            next += 1;
            if let Err(refused) = scheduler.enqueue(now, arrival.class, arrival.packet()) {
                events.push(Event::Refuse {
                    time: now,
                    class: arrival.class,
                    id: arrival.id,
                    reason: refused.reason,
                });
            }
            drain(&mut scheduler, now, &mut events);
        }
        let wake = loop {
            let result = scheduler.dequeue(now);
            drain(&mut scheduler, now, &mut events);
            match result {
                Next::Send(departure) => events.push(Event::Send {
                    time: now,
                    class: departure.class,
                    id: departure.packet.id,
                    late: departure.late,
                }),
                Next::NotBefore(at) => break Some(at),
                Next::Idle => break None,
            }
        };
        let upcoming = arrivals.get(next).map(|a| a.time);
        let then = match (wake, upcoming) {
            (Some(w), Some(a)) => w.min(a),
            (Some(w), None) => w,
            (None, Some(a)) => a,
            (None, None) => break,
        };
        if then <= now {
            return Err(Error::invalid(format!(
                "the scheduler asked to be called at {} while it was already {}: the trace's \
                 times reach the end of the clock",
                Time(then),
                Time(now)
            )));
        }
        now = then;
    }
    let windows = scheduler
        .stream_ids()
        .filter_map(|id| scheduler.window(id).map(|(x, y)| (id, x, y)))
        .collect();
    Ok(Outcome { events, windows })
}

fn drain(scheduler: &mut Scheduler<()>, now: Nanos, events: &mut Vec<Event>) {
    events.extend(scheduler.drain_drops().map(|d| Event::Drop {
        time: now,
        class: d.class,
        id: d.id,
        reason: d.reason,
    }));
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Writes a trace and its expected outcome in the vector format; parsing the
/// text gives the same trace back.
pub fn write(trace: &Trace) -> String {
    let mut out = String::new();
    for line in &trace.header {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    if !trace.header.is_empty() {
        out.push('\n');
    }
    match trace.config.link_rate {
        Some(rate) => {
            let _ = writeln!(out, "rate {rate}");
        }
        None => out.push_str("rate none\n"),
    }
    let _ = writeln!(out, "limit {}", trace.config.limit);
    if trace.config.resolution != 0 {
        let _ = writeln!(out, "resolution {}", Time(trace.config.resolution));
    }
    for (id, c) in &trace.streams {
        let _ = writeln!(
            out,
            "stream {id} period={} oln={} old={} droppable={} wc={}",
            Time(c.period),
            c.oln,
            c.old,
            yes_no(c.droppable),
            yes_no(c.work_conserving)
        );
    }
    out.push('\n');
    for a in &trace.arrivals {
        let _ = write!(
            out,
            "arrive {} {} id={} len={}",
            Time(a.time),
            a.class,
            a.id,
            a.len
        );
        if let Some(deadline) = a.deadline {
            let _ = write!(out, " deadline={}", Time(deadline));
        }
        match a.drop {
            DropFlag::StreamDefault => {}
            DropFlag::Droppable => out.push_str(" drop=yes"),
            DropFlag::NonDroppable => out.push_str(" drop=no"),
        }
        if a.frame_start {
            out.push_str(" start");
        }
        out.push('\n');
    }
    out.push('\n');
    for line in trace.expected.lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
