//! How the scheduler is doing for one socket (the paper's `qinfo`).

use std::time::Duration;

use crate::params::{Rate, SchedulerName, WindowConstraint};

/// Packets the scheduler dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DropCounts {
    /// Late droppable packets, dropped while the stream was within its loss window.
    pub late: u64,
    /// Late droppable packets whose loss broke the stream's window-constraint.
    pub window: u64,
    /// The rest of a frame one of whose packets was dropped.
    pub frame: u64,
    /// Droppable packets refused because the queue was full.
    pub queue_full: u64,
}

impl DropCounts {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.late + self.window + self.frame + self.queue_full
    }
}

/// Time packets spent queued in the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueDelay {
    /// Mean over the packets sent so far.
    pub mean: Duration,
    /// Largest seen.
    pub max: Duration,
}

/// What a backend knows of one stream. [`crate::QSocket::info`] adds what the
/// socket itself knows.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SchedulerStats {
    /// Packets that left the scheduler.
    pub sent_packets: u64,
    /// Bytes that left the scheduler.
    pub sent_bytes: u64,
    /// Packets dropped, by reason.
    pub dropped: DropCounts,
    /// Packets that missed their deadline (dropped late or sent late).
    pub deadline_misses: u64,
    /// Times the window-constraint was broken.
    pub window_violations: u64,
    /// Queueing delay; `None` where the scheduler does not measure it (HTB).
    pub queue_delay: Option<QueueDelay>,
    /// Packets waiting in the scheduler.
    pub backlog_packets: u64,
    /// Bytes waiting in the scheduler.
    pub backlog_bytes: u64,
    /// The current window-constraint x'/y'; `None` where the scheduler has none (HTB).
    pub current_window: Option<WindowConstraint>,
}

/// The answer of [`crate::QSocket::info`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QInfo {
    /// The backend scheduling this socket.
    pub scheduler: SchedulerName,
    /// The scheduler's figures for the socket's stream.
    #[serde(flatten)]
    pub stats: SchedulerStats,
    /// Rate that left the scheduler since the previous `info` call on this
    /// socket (or since attach); `None` on the first call if no time has passed.
    pub delivered_rate: Option<Rate>,
    /// The interval `delivered_rate` was measured over.
    pub interval: Duration,
    /// The socket's send buffer size (`SO_SNDBUF`).
    pub send_buffer_bytes: u64,
    /// Bytes the socket holds that have not left the host yet (`SIOCOUTQ`).
    pub unsent_bytes: u64,
    /// The link rate the device's scheduler was given (`qsockinit`'s
    /// rate); `None` where it has none.
    pub link_rate: Option<Rate>,
}
