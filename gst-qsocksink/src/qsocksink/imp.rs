use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use std::sync::LazyLock;

#[derive(Debug, Default)]
pub struct QSockSink {}

#[glib::object_subclass]
impl ObjectSubclass for QSockSink {
    const NAME: &'static str = "GstQSockSink";
    type Type = super::QSockSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for QSockSink {}
impl GstObjectImpl for QSockSink {}

impl ElementImpl for QSockSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "QSocket sink",
                "Sink/Network",
                "Sends RTP or MPEG-TS video through a QSocket with per-frame deadlines and drop flags",
                "qsock developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder_full()
                .structure(gst::Structure::new_empty("application/x-rtp"))
                .structure(
                    gst::Structure::builder("video/mpegts")
                        .field("packetsize", 188i32)
                        .build(),
                )
                .build();
            vec![gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("the sink pad template is valid")]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for QSockSink {
    fn render(&self, _buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        Ok(gst::FlowSuccess::Ok)
    }
}
