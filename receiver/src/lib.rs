//! `qsock-receive`'s parts: the receiving pipelines it runs, the accounting
//! that groups the received packets into frames and finds the lost ones, and
//! the line it prints each second.
//!
//! The packets are read and typed by qsocksink's own packet views and frame
//! classifier (`qsock_frame`), so that the receiver names frame types the
//! way the sender's scheduler saw them.
#![deny(missing_docs)]

mod format;
mod frames;
mod report;

pub use format::{Format, VideoSink};
pub use frames::{FrameAccounting, LostFrames, Tally};
pub use report::Line;
