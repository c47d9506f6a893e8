//! One run of live video across a network-namespace test bed: a live source
//! and one encoder in the sender's namespace, whose stream goes to a reference
//! file and, at the same time, out through each network sink under test; in
//! the receiver's namespace one real receiving pipeline per sink that writes
//! what arrived in time to a file and decodes it. What was sent and what
//! arrived is then compared frame by frame (RTP formats, by sequence number)
//! and by ffprobe's picture types (every format).
//!
//! "In time" is a live receiver's playout deadline: each datagram must arrive
//! within the playout delay of when it was handed to its network sink. The
//! jitter buffer does not enforce that: it gives up only on gaps, and passes
//! a packet that is late but in order. So a probe in front of it drops late
//! datagrams, timing each against the moment the sender's probe saw it (both
//! namespaces share the host's monotonic clock; datagrams are recognised by
//! a hash of their bytes, which works for RTP and MPEG-TS alike).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;
use qsock_media::{is_eos, rtp_header, NamespacePipeline};
use qsock_testbed::TestBed;

/// Frames per second of the live source.
pub const FRAMES_PER_SECOND: u32 = 25;

/// One I-frame a second: a dozen per run, each a burst of tens of packets.
const GOP: u32 = FRAMES_PER_SECOND;

/// RTP payload size: a packet plus its headers stays under a 1500-byte MTU.
const RTP_MTU: u32 = 1200;

/// How long a receiver must hear nothing, after the sender finished, before
/// its stream is taken to be over: longer than anything queued on a 4 Mbit/s
/// link can take to drain (HTB's best-effort FIFO holds 1000 packets, 3 s).
const QUIET: Duration = Duration::from_secs(4);

/// The stream a run sends, and how it is sent and received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// H.264 in RTP (RFC 6184): x264enc, rtph264pay, rtph264depay, avdec_h264.
    RtpH264,
    /// MPEG-2 video in RTP (RFC 2250): mpeg2enc, rtpmpvpay, rtpmpvdepay,
    /// avdec_mpeg2video.
    RtpMpeg2,
    /// H.264 in an MPEG transport stream, seven 188-byte packets a datagram:
    /// x264enc, mpegtsmux, tsdemux, avdec_h264.
    MpegTsH264,
}

impl Format {
    /// The live source and encoder, ending in a tee named `encoded`.
    fn encoder(self, frames: u32, video_kbit: u32) -> String {
        let source = format!("videotestsrc is-live=true num-buffers={frames} pattern=pinwheel");
        match self {
            // The caps after h264parse make the tee carry byte-stream access
            // units: the reference file is then readable by ffprobe, and every
            // branch gets the same frames.
            Format::RtpH264 | Format::MpegTsH264 => format!(
                "{source} ! video/x-raw,width=640,height=360,framerate={FRAMES_PER_SECOND}/1 \
                 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={video_kbit} \
                   key-int-max={GOP} \
                 ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! tee name=encoded"
            ),
            // avenc_mpeg2video of GStreamer 1.22 rejects every frame rate
            // ("does not support 1000000000/1 fps"), so mjpegtools' encoder;
            // CIF, because it needs about 20 ms of CPU a frame there. Its DVD
            // profile (9), unlike generic MPEG-2 (3), repeats the sequence
            // header in every GOP, so a receiver that lost the first I-frame
            // can start at the next; constraints=false lets it do CIF.
            Format::RtpMpeg2 => format!(
                "{source} \
                 ! video/x-raw,width=352,height=288,framerate={FRAMES_PER_SECOND}/1,format=I420 \
                 ! mpeg2enc format=9 constraints=false bitrate={video_kbit} b-per-refframe=0 \
                   min-gop-size={GOP} max-gop-size={GOP} \
                 ! mpegvideoparse ! tee name=encoded"
            ),
        }
    }

    /// What turns encoded frames into datagrams for a network sink.
    fn packetizer(self, name: &str) -> String {
        match self {
            Format::RtpH264 => {
                format!("rtph264pay name={name} config-interval=0 mtu={RTP_MTU}")
            }
            // Left alone, rtpmpvpay fills each packet up to the MTU, gathering
            // small P-frames (and the start of the next I-frame) into one
            // packet; max-ptime=0 sends each frame in packets of its own.
            Format::RtpMpeg2 => format!("rtpmpvpay name={name} mtu={RTP_MTU} max-ptime=0"),
            Format::MpegTsH264 => format!("mpegtsmux name={name} alignment=7"),
        }
    }

    fn is_rtp(self) -> bool {
        self != Format::MpegTsH264
    }

    /// A receiver listening on `address:port`: what arrives in time goes to
    /// `file` (the elementary stream) and to a
    /// decoder named `decoder`; RTP formats name their depayloader `depay`.
    fn receiver(self, address: &str, port: u16, latency_ms: u128, file: &Path) -> String {
        let source = format!(
            "udpsrc name=source address={address} port={port} timeout={}",
            QUIET.as_nanos()
        );
        let file = file.display();
        match self {
            Format::RtpH264 => format!(
                "{source} caps=\"application/x-rtp,media=video,clock-rate=90000,\
                   encoding-name=H264,payload=96\" \
                 ! rtpjitterbuffer latency={latency_ms} ! rtph264depay name=depay \
                 ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! tee name=received \
                 received. ! queue ! filesink location=\"{file}\" \
                 received. ! queue ! avdec_h264 name=decoder ! fakesink"
            ),
            Format::RtpMpeg2 => format!(
                "{source} caps=\"application/x-rtp,media=video,clock-rate=90000,\
                   encoding-name=MPV,payload=32\" \
                 ! rtpjitterbuffer latency={latency_ms} ! rtpmpvdepay name=depay \
                 ! mpegvideoparse ! tee name=received \
                 received. ! queue ! filesink location=\"{file}\" \
                 received. ! queue ! avdec_mpeg2video name=decoder ! fakesink"
            ),
            // No jitter buffer: the transport stream carries its own clock.
            // The tee comes after the demuxer: a tee in front of tsdemux
            // stalls udpsrc's thread for good (GStreamer 1.22).
            Format::MpegTsH264 => format!(
                "{source} caps=\"video/mpegts,systemstream=true,packetsize=188\" \
                 ! tsdemux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! tee name=received \
                 received. ! queue ! filesink location=\"{file}\" \
                 received. ! queue ! avdec_h264 name=decoder ! fakesink"
            ),
        }
    }

    /// The elementary stream's file name extension: the reference and the
    /// received files both hold one.
    fn file_extension(self) -> &'static str {
        match self {
            Format::RtpH264 | Format::MpegTsH264 => "h264",
            Format::RtpMpeg2 => "m2v",
        }
    }

    /// ffprobe's name of the elementary stream's format.
    fn ffprobe_format(self) -> &'static str {
        match self {
            Format::RtpH264 | Format::MpegTsH264 => "h264",
            Format::RtpMpeg2 => "mpegvideo",
        }
    }
}

/// A network sink under test, e.g. `udpsink host=H port=P` or a qsocksink.
#[derive(Debug, Clone)]
pub struct NetworkSink {
    /// How the report names it.
    pub label: String,
    /// The element with its properties, in `gst-launch` syntax.
    pub description: String,
    /// The receiver's port it sends to.
    pub port: u16,
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct Run {
    /// The stream.
    pub format: Format,
    /// How many frames the source makes (25 a second).
    pub frames: u32,
    /// The encoder's target bitrate.
    pub video_kbit: u32,
    /// The receivers' playout delay: a datagram that arrives later than this
    /// after it was handed to its sink is dropped. Also the jitter buffer's
    /// latency, the time it waits to put packets back in order.
    pub playout_delay: Duration,
    /// The sinks, all fed from the same encoder at the same time.
    pub sinks: Vec<NetworkSink>,
}

/// Frames by picture type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    /// Intra-coded frames (I, IDR).
    pub intra: u32,
    /// Predicted frames (P; B when an encoder makes them).
    pub predicted: u32,
}

impl fmt::Display for FrameCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I {} P {}", self.intra, self.predicted)
    }
}

/// How many of one kind of frame arrived whole, in part, or not at all,
/// judged by the RTP sequence numbers of the frame's packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Completeness {
    /// Every packet arrived in time.
    pub whole: u32,
    /// Some did.
    pub partial: u32,
    /// None did.
    pub lost: u32,
}

impl Completeness {
    /// Frames not delivered whole.
    pub fn damaged(&self) -> u32 {
        self.partial + self.lost
    }
}

impl fmt::Display for Completeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} whole, {} partial, {} lost",
            self.whole, self.partial, self.lost
        )
    }
}

/// Frame-by-frame delivery of an RTP stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct Delivery {
    /// The I-frames.
    pub intra: Completeness,
    /// The P-frames.
    pub predicted: Completeness,
}

/// How long datagrams took from their sink to the receiver.
#[derive(Debug, Default, Clone)]
pub struct Transit {
    /// Datagrams handed to the sink.
    pub sent: u64,
    /// Datagrams that arrived, in time or not.
    pub arrived: u64,
    /// Of those, how many missed the playout deadline.
    pub late: u64,
    /// Median, 95th percentile and largest delay of those that arrived.
    pub delay_percentiles: [Duration; 3],
}

impl fmt::Display for Transit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [median, p95, max] = self.delay_percentiles.map(|d| d.as_millis());
        write!(
            f,
            "{} datagrams sent, {} arrived, {} of them late; delay median {median} ms, \
             95% {p95} ms, max {max} ms",
            self.sent, self.arrived, self.late
        )
    }
}

/// What happened to one sink's stream.
#[derive(Debug)]
pub struct SinkReport {
    /// The sink's label.
    pub label: String,
    /// Datagrams and their delays.
    pub transit: Transit,
    /// Why the receiving pipeline failed, if it did.
    pub receiver_error: Option<String>,
    /// Frame by frame, for RTP formats.
    pub delivery: Option<Delivery>,
    /// ffprobe's picture types of the received file, or why it failed.
    pub received: Result<FrameCounts, String>,
    /// Frames the receiver's decoder output.
    pub decoded: u64,
    /// Bytes that arrived in time (the received file's size).
    pub received_bytes: u64,
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: received ", self.label)?;
        match &self.received {
            Ok(counts) => write!(f, "{counts}")?,
            Err(err) => write!(f, "(ffprobe failed: {err})")?,
        }
        write!(
            f,
            ", decoded {} frames, {} bytes",
            self.decoded, self.received_bytes
        )?;
        if let Some(delivery) = &self.delivery {
            write!(
                f,
                "; I-frames {}; P-frames {}",
                delivery.intra, delivery.predicted
            )?;
        }
        write!(f, "; {}", self.transit)?;
        if let Some(err) = &self.receiver_error {
            write!(f, "; the receiver failed: {err}")?;
        }
        Ok(())
    }
}

/// What a run sent and what each sink's receiver got.
#[derive(Debug)]
pub struct Report {
    /// ffprobe's picture types of the reference file: what was encoded.
    pub sent: FrameCounts,
    /// One per sink, in the order of [`Run::sinks`].
    pub sinks: Vec<SinkReport>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sent {}", self.sent)?;
        for sink in &self.sinks {
            write!(f, "\n  {sink}")?;
        }
        Ok(())
    }
}

/// A directory for a run's files, removed when dropped unless
/// `QSOCK_E2E_KEEP=1` asks to keep it for a look.
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A fresh directory under the system's temporary directory.
    pub fn new(name: &str) -> WorkDir {
        let path = std::env::temp_dir().join(format!("qsock-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        WorkDir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var("QSOCK_E2E_KEEP").as_deref() == Ok("1") {
            eprintln!("kept the run's files in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Elements a run needs, by the Debian package that has them.
const ELEMENTS: &[(&str, &str)] = &[
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("mpeg2enc", "gstreamer1.0-plugins-bad"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("tsdemux", "gstreamer1.0-plugins-bad"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("mpegvideoparse", "gstreamer1.0-plugins-bad"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtpmpvpay", "gstreamer1.0-plugins-good"),
    ("rtpjitterbuffer", "gstreamer1.0-plugins-good"),
    ("udpsrc", "gstreamer1.0-plugins-good"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("avdec_mpeg2video", "gstreamer1.0-libav"),
];

/// Initialises GStreamer with qsocksink registered, and fails naming the
/// package of any element a run needs that is not installed, or ffprobe.
pub fn init() {
    crate::plugin::init();
    let missing: Vec<String> = ELEMENTS
        .iter()
        .filter(|(name, _)| gst::ElementFactory::find(name).is_none())
        .map(|(name, package)| format!("{name} ({package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "GStreamer elements missing: {}",
        missing.join(", ")
    );
    assert!(
        Command::new("ffprobe").arg("-version").output().is_ok(),
        "ffprobe is not installed (apt-get install ffmpeg)"
    );
}

/// Builds `description` with every streaming thread in `namespace`.
fn launch(description: &str, namespace: &str) -> NamespacePipeline {
    NamespacePipeline::launch(description, namespace)
        .unwrap_or_else(|err| panic!("cannot build `{description}`: {err}"))
}

fn is_udpsrc_timeout(message: &gst::Message) -> bool {
    message
        .structure()
        .is_some_and(|s| s.name() == "GstUDPSrcTimeout")
}

/// Calls `each` for every buffer that passes `pad`, alone or in a list.
fn on_buffers(pad: &gst::Pad, each: impl Fn(&gst::BufferRef) + Send + Sync + 'static) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => each(buffer),
                Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(&each),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// What a packetizer was given and what it made of it.
#[derive(Debug, Default)]
struct Packetized {
    /// Per frame in, whether it is an I-frame.
    frames_intra: Vec<bool>,
    /// Per packet out, its (sequence number, timestamp).
    packets: Vec<(u16, u32)>,
}

impl Packetized {
    /// The sequence numbers of each frame's packets, with its type. Frames
    /// are matched to packets by order: each frame's packets carry one RTP
    /// timestamp, different from its neighbours'.
    fn frames(&self) -> Result<Vec<(bool, Vec<u16>)>, String> {
        let mut frames: Vec<(u32, Vec<u16>)> = Vec::new();
        for &(sequence, timestamp) in &self.packets {
            match frames.last_mut() {
                Some((last, sequences)) if *last == timestamp => sequences.push(sequence),
                _ => frames.push((timestamp, vec![sequence])),
            }
        }
        if frames.len() != self.frames_intra.len() {
            return Err(format!(
                "{} frames went into the payloader and {} RTP timestamps came out",
                self.frames_intra.len(),
                frames.len()
            ));
        }
        Ok(self
            .frames_intra
            .iter()
            .zip(frames)
            .map(|(&intra, (_, sequences))| (intra, sequences))
            .collect())
    }
}

/// When each datagram was handed to a network sink, by [`datagram_key`].
type Departures = Arc<Mutex<HashMap<u64, Instant>>>;

fn datagram_key(buffer: &gst::BufferRef) -> Option<u64> {
    let map = buffer.map_readable().ok()?;
    let mut hasher = DefaultHasher::new();
    map.as_slice().hash(&mut hasher);
    Some(hasher.finish())
}

/// What the probes of one sender branch record.
struct Branch {
    /// RTP formats: frames in and packets out of the payloader.
    packetized: Option<Arc<Mutex<Packetized>>>,
    departures: Departures,
}

/// Watches the packetizer named `name`: every datagram it hands to the
/// network sink, and for RTP which frame each packet belongs to.
fn watch_branch(pipeline: &gst::Pipeline, name: &str, rtp: bool) -> Branch {
    let element = pipeline
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"));
    let departures = Departures::default();
    let departed = Arc::clone(&departures);
    on_buffers(
        &element
            .static_pad("src")
            .expect("a packetizer has a source pad"),
        move |buffer| {
            if let Some(key) = datagram_key(buffer) {
                departed.lock().insert(key, Instant::now());
            }
        },
    );
    Branch {
        packetized: rtp.then(|| watch_packetizer(&element)),
        departures,
    }
}

fn watch_packetizer(element: &gst::Element) -> Arc<Mutex<Packetized>> {
    let packetized = Arc::new(Mutex::new(Packetized::default()));
    let frames = Arc::clone(&packetized);
    on_buffers(
        &element
            .static_pad("sink")
            .expect("a payloader has a sink pad"),
        move |buffer| {
            let intra = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            frames.lock().frames_intra.push(intra);
        },
    );
    let packets = Arc::clone(&packetized);
    on_buffers(
        &element
            .static_pad("src")
            .expect("a payloader has a source pad"),
        move |buffer| {
            if let Some(header) = rtp_header(buffer) {
                packets
                    .lock()
                    .packets
                    .push((header.sequence, header.timestamp));
            }
        },
    );
    packetized
}

/// What the deadline probe in front of a receiver saw.
#[derive(Debug, Default)]
struct Arrivals {
    delays: Vec<Duration>,
    late: u64,
    /// Datagrams no sender probe saw leave: there should be none.
    unknown: u64,
}

/// Drops what `source` (a udpsrc) receives later than `playout_delay` after
/// it left, and records every delay.
fn enforce_playout_deadline(
    source: &gst::Element,
    departures: Departures,
    playout_delay: Duration,
) -> Arc<Mutex<Arrivals>> {
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let seen = Arc::clone(&arrivals);
    source
        .static_pad("src")
        .expect("udpsrc has a source pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let now = Instant::now();
            let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let departed =
                datagram_key(buffer).and_then(|key| departures.lock().get(&key).copied());
            let mut seen = seen.lock();
            let Some(departed) = departed else {
                seen.unknown += 1;
                return gst::PadProbeReturn::Ok;
            };
            let delay = now.saturating_duration_since(departed);
            seen.delays.push(delay);
            if delay > playout_delay {
                seen.late += 1;
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    arrivals
}

/// One receiving pipeline and what its probes saw.
struct Receiver {
    pipeline: NamespacePipeline,
    arrivals: Arc<Mutex<Arrivals>>,
    /// Sequence numbers that left the jitter buffer (RTP formats).
    in_time: Arc<Mutex<HashSet<u16>>>,
    decoded: Arc<AtomicU64>,
    file: PathBuf,
}

fn start_receiver(
    bed: &TestBed,
    format: Format,
    playout_delay: Duration,
    port: u16,
    file: PathBuf,
    departures: Departures,
) -> Receiver {
    let address = bed.receiver_v4().to_string();
    let latency_ms = playout_delay.as_millis();
    let running = launch(
        &format.receiver(&address, port, latency_ms, &file),
        bed.receiver_ns(),
    );
    let pipeline = running.pipeline();
    let arrivals = enforce_playout_deadline(
        &pipeline
            .by_name("source")
            .expect("the receiver has a udpsrc"),
        departures,
        playout_delay,
    );
    let in_time = Arc::new(Mutex::new(HashSet::new()));
    if let Some(depay) = pipeline.by_name("depay") {
        let seen = Arc::clone(&in_time);
        on_buffers(
            &depay
                .static_pad("sink")
                .expect("a depayloader has a sink pad"),
            move |buffer| {
                if let Some(header) = rtp_header(buffer) {
                    seen.lock().insert(header.sequence);
                }
            },
        );
    }
    let decoded = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&decoded);
    on_buffers(
        &pipeline
            .by_name("decoder")
            .expect("the receiver has a decoder")
            .static_pad("src")
            .expect("a decoder has a source pad"),
        move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        },
    );
    // udpsrc binds its socket on the way to PLAYING: in this thread's namespace.
    bed.run_in_receiver(|| pipeline.set_state(gst::State::Playing))
        .expect("enter the receiver's namespace")
        .unwrap_or_else(|err| panic!("the receiver on port {port} does not start: {err}"));
    Receiver {
        pipeline: running,
        arrivals,
        in_time,
        decoded,
        file,
    }
}

/// Makes `run` happen across `bed`: starts the receivers, then the sender;
/// waits for the sender's end of stream, then for each receiver to hear
/// nothing for a while, then ends the receivers' streams so their files are
/// complete; and compares.
pub fn run(bed: &TestBed, run: &Run, dir: &WorkDir) -> Report {
    let format = run.format;
    let reference = dir.file(&format!("reference.{}", format.file_extension()));
    let mut description = format!(
        "{} encoded. ! queue ! filesink location=\"{}\"",
        format.encoder(run.frames, run.video_kbit),
        reference.display()
    );
    for (i, sink) in run.sinks.iter().enumerate() {
        description += &format!(
            " encoded. ! queue ! {} ! {}",
            format.packetizer(&format!("packetizer{i}")),
            sink.description
        );
    }
    let sender = launch(&description, bed.sender_ns());
    let branches: Vec<Branch> = (0..run.sinks.len())
        .map(|i| {
            watch_branch(
                sender.pipeline(),
                &format!("packetizer{i}"),
                format.is_rtp(),
            )
        })
        .collect();

    // Receivers first, so that nothing is sent into the void.
    let receivers: Vec<Receiver> = run
        .sinks
        .iter()
        .zip(&branches)
        .enumerate()
        .map(|(i, (sink, branch))| {
            let file = dir.file(&format!("received-{i}.{}", format.file_extension()));
            let departures = Arc::clone(&branch.departures);
            start_receiver(bed, format, run.playout_delay, sink.port, file, departures)
        })
        .collect();
    // The sinks open their sockets on the way to PLAYING: in this namespace.
    bed.run_in_sender(|| sender.pipeline().set_state(gst::State::Playing))
        .expect("enter the sender's namespace")
        .unwrap_or_else(|err| panic!("the sender does not start: {err}"));

    let duration = Duration::from_secs(u64::from(run.frames / FRAMES_PER_SECOND));
    sender
        .wait_for(
            "end of stream from the sender",
            duration * 3 + Duration::from_secs(20),
            is_eos,
        )
        .unwrap_or_else(|err| panic!("sender: {err}"));
    let mut failures = sender.namespace_failures();
    drop(sender);

    // A receiver's failure is part of the outcome (a control that got
    // nothing decodable makes its parser fail at the end), not of the run.
    let receiver_errors: Vec<Option<String>> = receivers
        .iter()
        .map(|receiver| finish_receiver(&receiver.pipeline).err())
        .collect();

    let sent = ffprobe(format, &reference)
        .unwrap_or_else(|err| panic!("ffprobe cannot read the reference: {err}"));
    let sinks = receivers
        .into_iter()
        .zip(&run.sinks)
        .zip(branches)
        .zip(receiver_errors)
        .map(|(((receiver, sink), branch), receiver_error)| {
            failures.extend(receiver.pipeline.namespace_failures());
            drop(receiver.pipeline);
            let delivery = branch.packetized.map(|packetized| {
                let frames = packetized
                    .lock()
                    .frames()
                    .unwrap_or_else(|err| panic!("{}: {err}", sink.label));
                delivery(&frames, &receiver.in_time.lock())
            });
            let arrivals = receiver.arrivals.lock();
            assert_eq!(
                arrivals.unknown, 0,
                "{}'s receiver got datagrams the sender never sent",
                sink.label
            );
            SinkReport {
                label: sink.label.clone(),
                receiver_error,
                transit: transit(branch.departures.lock().len() as u64, &arrivals),
                delivery,
                received: ffprobe(format, &receiver.file),
                decoded: receiver.decoded.load(Ordering::Relaxed),
                received_bytes: std::fs::metadata(&receiver.file).map_or(0, |m| m.len()),
            }
        })
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    Report { sent, sinks }
}

/// Waits until the receiver heard nothing for a while, then ends its stream
/// and waits for the end to reach its sinks, so that its file is complete.
fn finish_receiver(receiver: &NamespacePipeline) -> Result<(), String> {
    let waited = |what: &str, timeout: Duration, wanted: fn(&gst::Message) -> bool| {
        receiver
            .wait_for(what, timeout, wanted)
            .map_err(|err| err.to_string())
    };
    // A timeout posted while the stream still ran says nothing about its end.
    receiver.check().map_err(|err| err.to_string())?;
    waited("udpsrc timeout", QUIET * 3, is_udpsrc_timeout)?;
    receiver.pipeline().send_event(gst::event::Eos::new());
    waited("end of stream", Duration::from_secs(10), is_eos)
}

fn transit(sent: u64, arrivals: &Arrivals) -> Transit {
    let mut delays = arrivals.delays.clone();
    delays.sort();
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Transit {
        sent,
        arrived: delays.len() as u64,
        late: arrivals.late,
        delay_percentiles: [at(0.5), at(0.95), at(1.0)],
    }
}

fn delivery(frames: &[(bool, Vec<u16>)], in_time: &HashSet<u16>) -> Delivery {
    let mut delivery = Delivery::default();
    for (intra, sequences) in frames {
        let arrived = sequences.iter().filter(|s| in_time.contains(s)).count();
        let counts = if *intra {
            &mut delivery.intra
        } else {
            &mut delivery.predicted
        };
        if arrived == sequences.len() {
            counts.whole += 1;
        } else if arrived == 0 {
            counts.lost += 1;
        } else {
            counts.partial += 1;
        }
    }
    delivery
}

/// The picture types ffprobe finds in `file`; an empty file has no frames.
fn ffprobe(format: Format, file: &Path) -> Result<FrameCounts, String> {
    if std::fs::metadata(file).map_or(0, |m| m.len()) == 0 {
        return Ok(FrameCounts::default());
    }
    let output = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(["-f", format.ffprobe_format()])
        .args([
            "-show_frames",
            "-show_entries",
            "frame=pict_type",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .map_err(|err| format!("cannot run ffprobe: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffprobe {} failed ({}): {}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let mut counts = FrameCounts::default();
    // A frame's line starts with its type; side data may follow on the same
    // line ("I,H.26[45] User Data Unregistered SEI message") or on lines of
    // its own, which start with something else.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        match line.split(',').next() {
            Some("I") => counts.intra += 1,
            Some("P" | "B") => counts.predicted += 1,
            _ => {}
        }
    }
    Ok(counts)
}
