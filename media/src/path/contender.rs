//! Who sends across the path: qsocksink adapting to the receiver's RTCP,
//! a plain udpsink and srtsink at a fixed bitrate, and GCC (rtpgccbwe in
//! front of rtpbin with TWCC) as webrtcsink runs it.

use std::time::Duration;

use qsock::SchedulerName;
use qsock_testbed::TestBed;

use crate::sink::{RTP_MTU, TWCC_URI};
use crate::{Error, Result, SinkKind, StreamSpec, VideoSettings};

/// The rate a scheduler qsocksink installs on the sender's device runs at:
/// far above the router's, so that the bottleneck is the router.
const SENDER_LINK_RATE: &str = "100mbit";
/// qsocksink's reports, ms.
const QOS_INTERVAL_MS: u32 = 500;

/// One sender of the path experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathContender {
    /// qsocksink on `scheduler`, `adapt-bitrate=true` steering x264enc,
    /// the receiver sending RTCP (reports, PLI) to its port + 1.
    QSockSink {
        /// The backend the sink installs on the sender's device.
        scheduler: SchedulerName,
        /// The sink's `shape-link`: the device's link rate follows the
        /// path's estimate (right here: every packet of the sender's device
        /// crosses the router).
        shape_link: bool,
        /// The payloader numbers packets with the transport-wide header
        /// extension and the receiver's session answers with TWCC
        /// feedback, which the sink reads beside the reports.
        transport_cc: bool,
    },
    /// A plain udpsink; the encoder keeps its start bitrate.
    UdpSink,
    /// srtsink (caller) with SRT's latency at the budget; the encoder keeps
    /// its start bitrate.
    SrtSink,
    /// Google congestion control as webrtcsink uses it: gst-plugin-rtp's
    /// `rtpgccbwe` between the payloader (with the TWCC header extension)
    /// and `rtpbin`, whose session hands it the receiver's TWCC feedback;
    /// the run sets x264enc's bitrate from its `estimated-bitrate`. The
    /// caller registers rtpgccbwe (`gstrsrtp::plugin_register_static`).
    Gcc,
}

/// The rate-control buffer webrtcsink gives x264enc, in milliseconds: no
/// frame larger than 120 ms of the bitrate.
pub(crate) const WEBRTCSINK_X264_VBV_MS: u32 = 120;

impl PathContender {
    /// How tables and plots name it.
    pub fn label(&self) -> String {
        match self {
            PathContender::QSockSink {
                scheduler,
                shape_link,
                transport_cc,
            } => {
                let mut label = format!("qsocksink ({scheduler}");
                if *transport_cc {
                    label.push_str(", TWCC");
                }
                if !*shape_link {
                    label.push_str(", shape-link off");
                }
                label + ")"
            }
            PathContender::UdpSink => "udpsink".into(),
            PathContender::SrtSink => "srtsink".into(),
            PathContender::Gcc => "GCC (rtpgccbwe)".into(),
        }
    }

    /// Does the sender change its bitrate while it runs?
    pub fn adapts(&self) -> bool {
        matches!(self, PathContender::QSockSink { .. } | PathContender::Gcc)
    }

    /// The stream as the receiver sees it.
    pub(crate) fn stream(&self, port: u16, latency_budget: Duration) -> StreamSpec {
        let label = self.label();
        match *self {
            PathContender::QSockSink {
                scheduler,
                transport_cc,
                ..
            } => {
                let stream = StreamSpec::new(
                    label,
                    SinkKind::QSockSink {
                        scheduler,
                        latency_budget,
                    },
                    port,
                );
                if transport_cc {
                    stream.with_transport_cc()
                } else {
                    stream.with_receiver_reports()
                }
            }
            PathContender::UdpSink => StreamSpec::new(label, SinkKind::UdpSink, port),
            PathContender::SrtSink => StreamSpec::new(
                label,
                SinkKind::SrtSink {
                    latency: latency_budget,
                },
                port,
            ),
            PathContender::Gcc => {
                StreamSpec::new(label, SinkKind::UdpSink, port).with_transport_cc()
            }
        }
    }

    /// The sender's pipeline: `video`'s encoder (named `encoder`), a queue
    /// that drops its oldest second rather than stall, a payloader named
    /// `payloader`, and the contender's sink (`sink`; GCC's estimator is
    /// `bwe`). An adaptive sender keeps its bitrate within `bounds`.
    pub(crate) fn sender_description(
        &self,
        bed: &TestBed,
        video: &VideoSettings,
        (min_bitrate, max_bitrate): (u64, u64),
        stream: &StreamSpec,
    ) -> Result<String> {
        let payloader = format!(
            "{} encoded. ! queue leaky=downstream max-size-buffers=0 max-size-bytes=0 \
               max-size-time=1000000000 \
             ! rtph264pay name=payloader config-interval=-1 mtu={RTP_MTU}",
            video.encoder()
        );
        let start_bps = u64::from(video.bitrate_kbit) * 1000;
        // The payloader numbers every packet; the caps name the extension
        // for the receiver's session to answer.
        let numbered =
            format!(" auto-header-extension=true ! application/x-rtp,extmap-1=(string){TWCC_URI}");
        Ok(match self {
            PathContender::QSockSink {
                shape_link,
                transport_cc,
                ..
            } => format!(
                "{payloader}{} ! {} name=sink link-rate={SENDER_LINK_RATE} adapt-bitrate=true \
                 shape-link={shape_link} \
                 qos-interval={QOS_INTERVAL_MS} min-bitrate={min_bitrate} \
                 max-bitrate={max_bitrate}",
                if *transport_cc { numbered.as_str() } else { "" },
                stream.sink_description(bed)
            ),
            PathContender::UdpSink | PathContender::SrtSink => {
                format!("{payloader} ! {} name=sink", stream.sink_description(bed))
            }
            PathContender::Gcc => {
                if gst::ElementFactory::find("rtpgccbwe").is_none() {
                    return Err(Error::Setup(
                        "the GCC contender needs rtpgccbwe: link the gst-plugin-rtp crate and \
                         call gstrsrtp::plugin_register_static() first"
                            .into(),
                    ));
                }
                let (receiver, sender, port) = (bed.receiver_v4(), bed.sender_v4(), stream.port);
                let rtcp_port = port + 1;
                format!(
                    "{payloader}{numbered} \
                     ! rtpgccbwe name=bwe estimated-bitrate={start_bps} \
                       min-bitrate={min_bitrate} max-bitrate={max_bitrate} \
                     ! rtpbin.send_rtp_sink_0 \
                     rtpbin name=rtpbin rtp-profile=avpf \
                     rtpbin.send_rtp_src_0 ! udpsink name=sink host={receiver} port={port} \
                     rtpbin.send_rtcp_src_0 ! udpsink host={receiver} port={rtcp_port} \
                       sync=false async=false \
                     udpsrc address={sender} port={rtcp_port} ! rtpbin.recv_rtcp_sink_0"
                )
            }
        })
    }
}
