//! What a packet tells the scheduler about itself (the paper's `struct packet_flags`).

use std::time::Duration;

use crate::sys;

/// Whether the scheduler may drop a packet that is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DropFlag {
    /// As the stream says (`drop_flag = 0` in C).
    #[default]
    StreamDefault,
    /// May be dropped when late, even on a lossless stream.
    Droppable,
    /// Never dropped: sent late if it must be, refused at the socket when the
    /// queue is full so the sender can retry (an I-frame of a lossy stream).
    NonDroppable,
}

impl DropFlag {
    /// Resolves the flag against the stream's own default.
    pub fn is_droppable(self, stream_droppable: bool) -> bool {
        match self {
            DropFlag::StreamDefault => stream_droppable,
            DropFlag::Droppable => true,
            DropFlag::NonDroppable => false,
        }
    }
}

/// An absolute time on `CLOCK_MONOTONIC`, in nanoseconds: the one clock of
/// every deadline in qsock (GStreamer's system clock is monotonic too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(u64);

impl Deadline {
    /// The deadline at `nanos` on `CLOCK_MONOTONIC`.
    pub const fn from_monotonic_nanos(nanos: u64) -> Self {
        Deadline(nanos)
    }

    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        Deadline(sys::monotonic_nanos().saturating_add(budget))
    }

    /// Nanoseconds on `CLOCK_MONOTONIC`.
    pub const fn as_monotonic_nanos(self) -> u64 {
        self.0
    }
}

/// Per-packet scheduling attributes, passed with every `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketFlags {
    /// May the scheduler drop this packet when it is late?
    pub drop: DropFlag,
    /// When the packet must have left; `None` takes the stream's periodic deadline.
    pub deadline: Option<Deadline>,
    /// The packet begins a new frame even if its deadline equals the previous
    /// packet's. Packets of one frame share a deadline and are dropped together.
    pub frame_start: bool,
}

impl PacketFlags {
    /// No attributes: the stream's defaults.
    pub const fn new() -> Self {
        PacketFlags {
            drop: DropFlag::StreamDefault,
            deadline: None,
            frame_start: false,
        }
    }

    /// The same flags, marked never to be dropped.
    pub const fn non_droppable(mut self) -> Self {
        self.drop = DropFlag::NonDroppable;
        self
    }

    /// The same flags, marked droppable.
    pub const fn droppable(mut self) -> Self {
        self.drop = DropFlag::Droppable;
        self
    }

    /// The same flags, with a deadline.
    pub const fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same flags, starting a frame.
    pub const fn starting_frame(mut self) -> Self {
        self.frame_start = true;
        self
    }
}
