//! `qsocksink`: a GStreamer sink that sends RTP or MPEG-TS video through a
//! QSocket, so that a packet scheduler (sch_dwcs, HTB or qsock's own) may
//! drop what can be dropped and must deliver the rest by its deadline.
#![deny(missing_docs)]

use gst::glib;

mod qsocksink;
mod sys;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    qsocksink::register(plugin)
}

// plugin_define! writes undocumented public items (the plugin descriptor and
// its registration functions) that are not this crate's API.
#[allow(missing_docs)]
mod descriptor {
    use super::plugin_init;

    gst::plugin_define!(
        qsocksink,
        env!("CARGO_PKG_DESCRIPTION"),
        plugin_init,
        concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
        "MIT/X11",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_REPOSITORY"),
        env!("BUILD_REL_DATE")
    );
}

pub use descriptor::plugin_register_static;
