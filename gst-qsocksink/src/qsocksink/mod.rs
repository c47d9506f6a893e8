use gst::glib;
use gst::prelude::*;

mod bitrate;
mod frames;
mod imp;

glib::wrapper! {
    pub struct QSockSink(ObjectSubclass<imp::QSockSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "qsocksink",
        gst::Rank::NONE,
        QSockSink::static_type(),
    )
}
