//! The path experiment (issue 12): a bottleneck beyond the host. Sender →
//! router → receiver ([`PathBed`]), the router's egress a token bucket
//! whose rate follows a [`RouterSchedule`], optional [`CrossTraffic`], one
//! [`PathContender`] per fresh bed. A [`PathRun`] samples the sender's
//! estimate and the router's rate and matches the receiver's frames to the
//! sender's ([`SentFrame`]): decodable frames per second, I-frames lost,
//! one-way frame delay from capture to arrival ([`PathRow`],
//! [`PathSummary`]).
//!
//! One-way delays are exact: every namespace shares the machine's
//! monotonic clock, which is also GStreamer's system clock.

mod contender;
mod output;
mod rows;
mod run;
mod schedule;
mod sent;

pub use contender::PathContender;
pub use output::{plot_path_png, write_path_csv, PathSeries};
pub use rows::{path_rows, recovery_after, PathRow, PathSample, PathSummary};
pub use run::{PathBed, PathOutcome, PathRun, PathSettings};
pub use schedule::{CrossTraffic, RateStep, RouterSchedule};
pub use sent::SentFrame;
