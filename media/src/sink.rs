//! The network sinks a stream can leave through, and how each is received.

use std::time::Duration;

use qsock::SchedulerName;
use qsock_testbed::TestBed;

/// RTP payload size: a packet with its headers (and SRT's) stays under a
/// 1500-byte MTU.
pub(crate) const RTP_MTU: u32 = 1200;

/// RTP caps of the H.264 stream, for receivers.
pub(crate) const RTP_CAPS: &str =
    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";

/// The URI of the transport-wide congestion-control header extension
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01).
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// How a stream leaves the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// qsocksink: every frame through a QSocket of `scheduler`, I-frames
    /// non-droppable, deadlines `latency_budget` after each frame's time.
    QSockSink {
        /// The backend the sink attaches to (install it first with `qsockinit`).
        scheduler: SchedulerName,
        /// The sink's `latency-budget`.
        latency_budget: Duration,
    },
    /// A plain udpsink: best effort, in whatever queue the device has.
    UdpSink,
    /// A plain udpsink whose destination port an administrator gave an HTB
    /// class of its own ([`install_port_classes`](crate::install_port_classes)):
    /// static reservation, the way QoS is done without an API.
    PortClassUdpSink,
    /// srtsink in caller mode with SRT's `latency` (set it to the budget):
    /// retransmission within the latency, then SRT drops what is too late.
    SrtSink {
        /// SRT's latency, the receiver's too.
        latency: Duration,
    },
}

/// One stream of a run: how it is sent and where it is received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// How reports, tables and plots name it.
    pub label: String,
    /// Its network sink.
    pub sink: SinkKind,
    /// The receiver's port (UDP, SRT's too).
    pub port: u16,
    /// The receiver sends RTCP back (RTP streams): receiver reports every
    /// half second and PLI on loss, to the sender's port + 1.
    pub receiver_reports: bool,
    /// The stream carries the transport-wide congestion-control header
    /// extension as id 1, and the receiver's RTP session answers it with
    /// TWCC feedback (with its receiver reports).
    pub transport_cc: bool,
}

impl StreamSpec {
    /// A stream labelled `label` through `sink` to `port`.
    pub fn new(label: impl Into<String>, sink: SinkKind, port: u16) -> StreamSpec {
        StreamSpec {
            label: label.into(),
            sink,
            port,
            receiver_reports: false,
            transport_cc: false,
        }
    }

    /// The same stream, its receiver sending RTCP back to the sender's
    /// port + 1 (RFC 3550's convention, which qsocksink listens on).
    pub fn with_receiver_reports(self) -> StreamSpec {
        StreamSpec {
            receiver_reports: true,
            ..self
        }
    }

    /// The same stream with receiver reports and TWCC feedback, as a WebRTC
    /// receiver sends them to a GCC sender.
    pub fn with_transport_cc(self) -> StreamSpec {
        StreamSpec {
            transport_cc: true,
            ..self.with_receiver_reports()
        }
    }

    /// The sink element with its properties, in gst-launch syntax.
    pub(crate) fn sink_description(&self, bed: &TestBed) -> String {
        let host = bed.receiver_v4();
        let port = self.port;
        match &self.sink {
            SinkKind::QSockSink {
                scheduler,
                latency_budget,
            } => format!(
                "qsocksink host={host} port={port} device={} scheduler={} latency-budget={}",
                bed.sender_dev(),
                scheduler.as_str(),
                latency_budget.as_millis()
            ),
            SinkKind::UdpSink | SinkKind::PortClassUdpSink => {
                format!("udpsink host={host} port={port}")
            }
            SinkKind::SrtSink { latency } => format!(
                "srtsink uri=\"srt://{host}:{port}?mode=caller\" latency={} \
                 wait-for-connection=true",
                latency.as_millis()
            ),
        }
    }

    /// The receiving source, up to RTP packets named `source`'s output.
    pub(crate) fn source_description(&self, bed: &TestBed) -> String {
        let host = bed.receiver_v4();
        let port = self.port;
        match &self.sink {
            SinkKind::SrtSink { latency } => format!(
                "srtsrc name=source uri=\"srt://{host}:{port}?mode=listener\" latency={} \
                 ! capsfilter caps=\"{RTP_CAPS}\"",
                latency.as_millis()
            ),
            _ if self.transport_cc => format!(
                "udpsrc name=source address={host} port={port} \
                 caps=\"{RTP_CAPS},extmap-1=(string){TWCC_URI}\""
            ),
            _ => format!("udpsrc name=source address={host} port={port} caps=\"{RTP_CAPS}\""),
        }
    }
}
