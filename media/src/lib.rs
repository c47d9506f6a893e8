//! Live video across the qsock test bed, measured frame by frame.
//!
//! The building blocks of `make demo` and of the paper's Figures 4–6:
//!
//! - [`Sender`]: a live source and one H.264 encoder in the sender's
//!   namespace, whose RTP stream goes out through one or more [`SinkKind`]s
//!   at once (qsocksink with a scheduler, plain udpsink, udpsink in an
//!   administrator's HTB class, srtsink);
//! - [`Receiver`]: one per stream in the receiver's namespace; it records
//!   when each frame became complete at the depayloader ([`FrameArrival`]);
//! - [`intervals`]: frames per second and inter-frame jitter (deviation of
//!   the gap between consecutive frames from the nominal frame interval) per
//!   interval, with the interval's 99th percentile;
//! - [`BulkSchedule`]: bulk TCP transfers that start and stop at given
//!   seconds, the perturbation;
//! - [`write_csv`] and [`plot_png`]: the series, as a table and as a figure
//!   with the perturbations shaded;
//! - [`path`]: the path experiment, a bottleneck in a router beyond the
//!   host, its rate on a schedule, with cross traffic, one contender a bed;
//! - [`NamespacePipeline`]: any gst-launch pipeline whose streaming threads
//!   stay in one of the test bed's namespaces, for harnesses of their own.
//!
//! Times are [`Duration`](std::time::Duration)s since one run's epoch, an
//! [`Instant`](std::time::Instant) the caller picks and hands to each part.

#![deny(missing_docs)]

mod bulk;
mod error;
pub mod path;
mod pipeline;
mod plot;
mod port_class;
mod receiver;
mod sender;
mod series;
mod sink;
mod stats;
mod video;

pub use bulk::{BulkPeriod, BulkSchedule, RunningSchedule};
pub use error::{Error, Result};
pub use pipeline::{is_eos, rtp_header, NamespacePipeline};
pub use plot::{plot_png, PlotStream};
pub use port_class::install_port_classes;
pub use receiver::{FrameArrival, FrameLoss, Receiver};
pub use sender::Sender;
pub use series::{write_csv, CsvStream};
pub use sink::{SinkKind, StreamSpec, TWCC_URI};
pub use stats::{intervals, IntervalStats};
pub use video::VideoSettings;

/// GStreamer elements the senders and receivers use, by the Debian package
/// that has them.
const ELEMENTS: &[(&str, &str)] = &[
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("srtsink", "gstreamer1.0-plugins-bad"),
    ("srtsrc", "gstreamer1.0-plugins-bad"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtpjitterbuffer", "gstreamer1.0-plugins-good"),
    ("udpsrc", "gstreamer1.0-plugins-good"),
    ("udpsink", "gstreamer1.0-plugins-good"),
    ("rtpsession", "gstreamer1.0-plugins-good"),
    ("rtpbin", "gstreamer1.0-plugins-good"),
];

/// Initialises GStreamer and registers qsocksink with `register_qsocksink`
/// (the plugin's `plugin_register_static`: the caller links the plugin, so
/// that the plugin's own tests can use this crate); fails naming the Debian
/// package of any element that is missing. Call once before anything else.
pub fn init(
    register_qsocksink: fn() -> std::result::Result<(), gst::glib::BoolError>,
) -> Result<()> {
    gst::init().map_err(|err| Error::Setup(format!("GStreamer does not initialise: {err}")))?;
    register_qsocksink()
        .map_err(|err| Error::Setup(format!("qsocksink does not register: {err}")))?;
    let missing: Vec<String> = ELEMENTS
        .iter()
        .filter(|(name, _)| gst::ElementFactory::find(name).is_none())
        .map(|(name, package)| format!("{name} ({package})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Setup(format!(
            "GStreamer elements missing: {}; run `make deps`",
            missing.join(", ")
        )))
    }
}
