//! The `qsocksink` element: frames in, one `send_frame` per frame out, and
//! the scheduler's figures back upstream and on the bus.
//!
//! `imp` is the GObject and BaseSink glue; `sender` is the streaming
//! thread, `feedback` the feedback thread, `period` the one owner of the
//! stream's period, `encoder` the upstream encoder the estimate steers,
//! `bitrate` the estimate's controller, `scheduler` and `destination` what
//! start sets up.

use gst::glib;
use gst::prelude::*;
use qsock::SchedulerName;

mod bitrate;
mod departure;
mod destination;
mod encoder;
mod encoder_target;
mod feedback;
mod frames;
mod imp;
mod link_shaping;
mod period;
mod receiver_feedback;
mod rtcp;
mod run;
mod scheduler;
mod sender;
mod session_reports;
mod settings;
mod transport_wide;

glib::wrapper! {
    /// The `qsocksink` element.
    pub struct QSockSink(ObjectSubclass<imp::QSockSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// The scheduler the sink's socket is attached to; the names are qsock's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstQSockSinkScheduler")]
pub enum SchedulerChoice {
    /// Whatever qsock scheduler the device has; if none, installs the first
    /// of dwcs, htb, user that works.
    #[default]
    #[enum_value(
        name = "Auto: the scheduler installed on the device; if none, the first of dwcs, htb \
                (both need CAP_NET_ADMIN) and user that can be installed",
        nick = "auto"
    )]
    Auto = 0,
    /// sch_dwcs, the kernel module.
    #[enum_value(
        name = "DWCS: the sch_dwcs kernel qdisc (module loaded, CAP_NET_ADMIN)",
        nick = "dwcs"
    )]
    Dwcs = 1,
    /// The kernel's HTB qdisc.
    #[enum_value(
        name = "HTB: the kernel's HTB qdisc, rate isolation only (CAP_NET_ADMIN)",
        nick = "htb"
    )]
    Htb = 2,
    /// qsock's in-process scheduler.
    #[enum_value(
        name = "User: DWCS in this process, no privilege needed",
        nick = "user"
    )]
    User = 3,
}

impl SchedulerChoice {
    /// qsock's name for the scheduler.
    pub(crate) fn name(self) -> SchedulerName {
        match self {
            SchedulerChoice::Auto => SchedulerName::Auto,
            SchedulerChoice::Dwcs => SchedulerName::Dwcs,
            SchedulerChoice::Htb => SchedulerName::Htb,
            SchedulerChoice::User => SchedulerName::User,
        }
    }
}

/// Registers `qsocksink` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "qsocksink",
        gst::Rank::NONE,
        QSockSink::static_type(),
    )
}
