//! The stream formats qsock-receive takes, and the receiving pipeline for each.

use qsock_frame::PayloadFormat;

/// What arrives on the port: the formats the scripts in `pipelines/` send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// H.264 over RTP (RFC 6184), payload type 96.
    H264Rtp,
    /// MPEG-2 video over RTP (RFC 2250), payload type 32.
    Mpeg2Rtp,
    /// H.264 in an MPEG transport stream, straight over UDP.
    MpegtsUdp,
}

/// Where decoded frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoSink {
    /// Nowhere (`fakesink`): the receiver only counts.
    Discard,
    /// A window (`autovideosink`), played out at the frames' times.
    Display,
}

impl Format {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::H264Rtp => "h264-rtp",
            Format::Mpeg2Rtp => "mpeg2-rtp",
            Format::MpegtsUdp => "mpegts-udp",
        }
    }

    /// The classifier's name for the packets this format carries.
    pub fn payload_format(self) -> PayloadFormat {
        match self {
            Format::H264Rtp => PayloadFormat::RtpH264,
            Format::Mpeg2Rtp => PayloadFormat::RtpMpegVideo,
            Format::MpegtsUdp => PayloadFormat::MpegTs,
        }
    }

    /// True for the RTP formats (losses from sequence numbers), false for
    /// the transport stream (losses from continuity counters).
    pub fn is_rtp(self) -> bool {
        self != Format::MpegtsUdp
    }

    /// The receiving pipeline in `gst-launch-1.0` syntax. Its udpsrc is
    /// named `source` and its decoder `decoder`: the receiver taps packets
    /// at the one and decoded frames at the other.
    pub fn pipeline(self, address: &str, port: u16, latency_ms: u32, sink: VideoSink) -> String {
        let source = format!("udpsrc name=source address={address} port={port}");
        let sink = match sink {
            VideoSink::Discard => "fakesink",
            VideoSink::Display => "videoconvert ! autovideosink",
        };
        match self {
            Format::H264Rtp => format!(
                "{source} caps=\"application/x-rtp,media=video,clock-rate=90000,\
                 encoding-name=H264,payload=96\" \
                 ! rtpjitterbuffer latency={latency_ms} ! rtph264depay ! h264parse \
                 ! avdec_h264 name=decoder ! {sink}"
            ),
            Format::Mpeg2Rtp => format!(
                "{source} caps=\"application/x-rtp,media=video,clock-rate=90000,\
                 encoding-name=MPV,payload=32\" \
                 ! rtpjitterbuffer latency={latency_ms} ! rtpmpvdepay ! mpegvideoparse \
                 ! avdec_mpeg2video name=decoder ! {sink}"
            ),
            // No jitter buffer: the transport stream carries its own clock.
            // Nothing may stand between udpsrc and tsdemux: a tee there
            // stalls udpsrc's thread for good (GStreamer 1.22).
            Format::MpegtsUdp => format!(
                "{source} caps=\"video/mpegts,systemstream=true,packetsize=188\" \
                 ! tsdemux ! h264parse ! avdec_h264 name=decoder ! {sink}"
            ),
        }
    }

    /// The elements the pipeline uses, each with the Debian package that
    /// has it, to name what is missing before the pipeline fails vaguely.
    pub fn elements(self) -> &'static [(&'static str, &'static str)] {
        const RTP: [(&str, &str); 2] = [
            ("udpsrc", "gstreamer1.0-plugins-good"),
            ("rtpjitterbuffer", "gstreamer1.0-plugins-good"),
        ];
        match self {
            Format::H264Rtp => &[
                RTP[0],
                RTP[1],
                ("rtph264depay", "gstreamer1.0-plugins-good"),
                ("h264parse", "gstreamer1.0-plugins-bad"),
                ("avdec_h264", "gstreamer1.0-libav"),
            ],
            Format::Mpeg2Rtp => &[
                RTP[0],
                RTP[1],
                ("rtpmpvdepay", "gstreamer1.0-plugins-good"),
                ("mpegvideoparse", "gstreamer1.0-plugins-bad"),
                ("avdec_mpeg2video", "gstreamer1.0-libav"),
            ],
            Format::MpegtsUdp => &[
                ("udpsrc", "gstreamer1.0-plugins-good"),
                ("tsdemux", "gstreamer1.0-plugins-bad"),
                ("h264parse", "gstreamer1.0-plugins-bad"),
                ("avdec_h264", "gstreamer1.0-libav"),
            ],
        }
    }
}
