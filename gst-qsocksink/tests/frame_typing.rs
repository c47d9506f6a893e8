//! The frame classifier on real encoder output, against ffprobe's frame
//! types for the same elementary stream.
//!
//! Each test encodes a short clip in-process, tees the encoder's elementary
//! stream to a file and its payloaded or muxed packets to an appsink, runs
//! the packets through a `Classifier` and ffprobe over the file, and
//! requires the two to agree frame for frame in decode order (for
//! rtpmpvpay, which puts some pairs of pictures under one RTP timestamp,
//! timestamp for timestamp).

use std::path::{Path, PathBuf};
use std::process::Command;

use gst::prelude::*;
use qsock_frame::{Classifier, FrameType, PayloadFormat};

/// A moving, detailed picture: encoders choose B-frames for it and P/I
/// frames are several packets long.
const SOURCE: &str = "videotestsrc num-buffers=30 pattern=zone-plate kx2=20 ky2=20 kt=1";
const FRAMES: usize = 30;
const H264_ENCODER: &str =
    "x264enc key-int-max=15 bframes=2 b-pyramid=false pass=quant quantizer=20 \
     ! video/x-h264,profile=main,stream-format=byte-stream";
const H265_ENCODER: &str = "x265enc key-int-max=15 option-string=bframes=2:b-pyramid=0 \
     ! video/x-h265,stream-format=byte-stream";
// avenc_mpeg2video is not used: the installed gst-libav (1.22.0) hands
// libavcodec a 1/GST_SECOND time base, which its MPEG-2 encoder rejects for
// every framerate ("MPEG-1/2 does not support 1000000000/1 fps").
const MPEG2_ENCODER: &str = "mpeg2enc format=3 b-per-refframe=2 max-gop-size=12 min-gop-size=12";
const RAW_320X240: &str = "video/x-raw,format=I420,width=320,height=240,framerate=25/1";

/// One datagram as the sink would get it.
struct Packet {
    data: Vec<u8>,
    delta_unit_flag: bool,
}

/// Runs `SOURCE ! raw caps ! encoder ! tee`, the tee feeding a file with the
/// elementary stream and `packetizer ! appsink`; returns the packets and the
/// file.
fn encode(name: &str, encoder: &str, packetizer: &str) -> (Vec<Packet>, PathBuf) {
    gst::init().expect("GStreamer initialises");
    let es_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("frame_typing_{name}.es"));
    let description = format!(
        "{SOURCE} ! {RAW_320X240} ! {encoder} ! tee name=split \
         split. ! queue ! filesink location={} \
         split. ! queue ! {packetizer} ! appsink name=packets sync=false",
        es_path.display()
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap_or_else(|error| panic!("{description}: {error}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let appsink = pipeline
        .by_name("packets")
        .expect("appsink in the pipeline")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline
        .set_state(gst::State::Playing)
        .expect("pipeline plays");

    let mut packets = Vec::new();
    // pull_sample fails at end of stream (or on error, reported below).
    while let Ok(sample) = appsink.pull_sample() {
        let buffer = sample.buffer().expect("sample has a buffer");
        let map = buffer.map_readable().expect("buffer is readable");
        packets.push(Packet {
            data: map.as_slice().to_vec(),
            delta_unit_flag: buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        });
    }
    // The file is complete once every sink has had end of stream.
    let bus = pipeline.bus().expect("pipeline has a bus");
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("end of stream or error");
    if let gst::MessageView::Error(error) = message.view() {
        panic!("{description}: {}", error.error());
    }
    pipeline
        .set_state(gst::State::Null)
        .expect("pipeline stops");
    (packets, es_path)
}

/// ffprobe's picture types (I, P, B) of the elementary stream in `path`, in
/// decode order: frames are listed in presentation order, each with the
/// byte position of its packet, which orders them as coded.
fn ffprobe_types(path: &Path, demuxer: &str) -> Vec<char> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-f", demuxer, "-show_frames"])
        .args([
            "-show_entries",
            "frame=pict_type,pkt_pos",
            "-of",
            "compact=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe failed on {}",
        path.display()
    );
    let mut frames: Vec<(u64, char)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let field = |key: &str| {
                line.split('|')
                    .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            };
            let position = field("pkt_pos")?.parse().ok()?;
            let picture_type = field("pict_type")?.chars().next()?;
            Some((position, picture_type))
        })
        .collect();
    frames.sort_unstable();
    frames
        .into_iter()
        .map(|(_, picture_type)| picture_type)
        .collect()
}

/// What the classifier made of the stream.
struct Classified {
    /// Per frame in order, the strongest type over its packets, or for a
    /// frame a datagram of several TS packets held whole (between the end of
    /// one frame and the start of the next), the type the classifier
    /// reported for it.
    frame_types: Vec<FrameType>,
    /// How many frames were held whole inside a datagram.
    hidden: usize,
    /// Delta-unit-flagged packets of frames the classifier found intra.
    flagged_delta_in_intra_frames: usize,
    /// Packets of intra frames.
    packets_in_intra_frames: usize,
}

fn classify(format: PayloadFormat, packets: &[Packet]) -> Classified {
    let mut classifier = Classifier::new(format);
    let mut frames: Vec<(u64, FrameType, Vec<bool>)> = Vec::new();
    let mut hidden = 0;
    for (index, packet) in packets.iter().enumerate() {
        let info = classifier
            .inspect(&packet.data)
            .unwrap_or_else(|error| panic!("packet {index}: {error}"));
        let is_ts = matches!(format, PayloadFormat::MpegTs | PayloadFormat::RtpMp2t);
        if info.starts_frame {
            if is_ts {
                let previous = frames.last().map_or(0, |frame| frame.0);
                assert_eq!(
                    previous + 1 + info.hidden_frames.len() as u64,
                    info.frame,
                    "packet {index}: every frame that went by is reported"
                );
                for (key, frame_type) in (previous + 1..).zip(&info.hidden_frames) {
                    frames.push((key, *frame_type, Vec::new()));
                }
                hidden += info.hidden_frames.len();
            }
            frames.push((info.frame, FrameType::Unknown, Vec::new()));
        }
        let Some(frame) = frames.last_mut() else {
            // Before the first video frame: PAT/PMT only.
            assert!(
                is_ts && info.frame_type == FrameType::Unknown,
                "packet {index}: {info:?}"
            );
            continue;
        };
        assert_eq!(
            frame.0, info.frame,
            "packet {index} belongs to the current frame"
        );
        frame.1 = frame.1.max(info.frame_type);
        frame.2.push(packet.delta_unit_flag);
    }
    let intra_flags: Vec<bool> = frames
        .iter()
        .filter(|frame| frame.1 == FrameType::Intra)
        .flat_map(|frame| frame.2.iter().copied())
        .collect();
    Classified {
        frame_types: frames.iter().map(|frame| frame.1).collect(),
        hidden,
        flagged_delta_in_intra_frames: intra_flags.iter().filter(|flag| **flag).count(),
        packets_in_intra_frames: intra_flags.len(),
    }
}

fn letter(frame_type: FrameType) -> char {
    match frame_type {
        FrameType::Intra => 'I',
        FrameType::Predicted => 'P',
        // The encoders here make B-frames that are never references, and
        // only those.
        FrameType::NonReference => 'B',
        FrameType::Unknown => '?',
    }
}

/// Requires the classifier's frames to be ffprobe's, frame for frame.
fn assert_matches(classified: &Classified, truth: &[char]) {
    assert_eq!(truth.len(), FRAMES, "ffprobe sees every encoded frame");
    assert!(truth.contains(&'B') && truth.contains(&'P') && truth.contains(&'I'));
    let found: String = classified
        .frame_types
        .iter()
        .map(|frame_type| letter(*frame_type))
        .collect();
    let expected: String = truth.iter().collect();
    assert_eq!(found, expected, "frame types (found, then ffprobe's)");
    eprintln!("types {found}\ntruth {expected}");
}

#[test]
fn h264_over_rtp() {
    let (packets, es) = encode("h264_rtp", H264_ENCODER, "rtph264pay mtu=1200");
    let classified = classify(PayloadFormat::RtpH264, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "h264"));
    // rtph264pay flags only the first packet of an IDR frame as a key unit:
    // by buffer flags the rest of the frame would be droppable.
    eprintln!(
        "{} of {} packets of intra frames are flagged delta units",
        classified.flagged_delta_in_intra_frames, classified.packets_in_intra_frames
    );
    assert!(classified.flagged_delta_in_intra_frames > 0);
}

#[test]
fn h265_over_rtp() {
    let (packets, es) = encode("h265_rtp", H265_ENCODER, "rtph265pay mtu=1200");
    let classified = classify(PayloadFormat::RtpH265, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "hevc"));
}

#[test]
fn mpeg2_over_rtp() {
    let (packets, es) = encode("mpeg2_rtp", MPEG2_ENCODER, "mpegvideoparse ! rtpmpvpay");
    let classified = classify(PayloadFormat::RtpMpegVideo, &packets);
    // rtpmpvpay does not flush at every picture: some RTP timestamps carry
    // two pictures. The frame is the timestamp, so its type must be the
    // strongest of its pictures'. Which pictures a timestamp carries is
    // counted here by picture start codes in its payloads.
    let mut pictures_per_frame: Vec<usize> = Vec::new();
    let mut frame_stream: Vec<u8> = Vec::new();
    let mut previous_timestamp = None;
    for packet in &packets {
        const RTP_AND_MPEG_VIDEO_HEADERS: usize = 12 + 4;
        let timestamp = &packet.data[4..8];
        if previous_timestamp != Some(timestamp) && previous_timestamp.is_some() {
            pictures_per_frame.push(picture_starts(&frame_stream));
            frame_stream.clear();
        }
        previous_timestamp = Some(timestamp);
        frame_stream.extend_from_slice(&packet.data[RTP_AND_MPEG_VIDEO_HEADERS..]);
    }
    pictures_per_frame.push(picture_starts(&frame_stream));
    assert_eq!(pictures_per_frame.iter().sum::<usize>(), FRAMES);

    let truth = ffprobe_types(&es, "mpegvideo");
    let mut pictures = truth.iter();
    let strongest_per_frame: Vec<char> = pictures_per_frame
        .iter()
        .map(|&count| {
            let types: Vec<char> = pictures.by_ref().take(count).copied().collect();
            ['I', 'P', 'B']
                .into_iter()
                .find(|strong| types.contains(strong))
                .expect("a frame has a picture")
        })
        .collect();
    let found: String = classified
        .frame_types
        .iter()
        .map(|frame_type| letter(*frame_type))
        .collect();
    let expected: String = strongest_per_frame.into_iter().collect();
    assert_eq!(found, expected, "per RTP timestamp; pictures {truth:?}");
    eprintln!(
        "{} RTP frames for {FRAMES} pictures: {found}",
        pictures_per_frame.len()
    );
    // rtpmpvpay leaves the RFC 2250 header's picture type 0, and the
    // delta-unit flag (right here, after mpegvideoparse) cannot tell a
    // droppable B picture from a P picture that others depend on.
    assert!(packets
        .iter()
        .all(|packet| packet.data[12..16] == [0, 0, 0, 0]));
}

fn picture_starts(stream: &[u8]) -> usize {
    stream
        .windows(4)
        .filter(|window| *window == [0, 0, 1, 0])
        .count()
}

/// The datagrams of several TS packets must hold some frame whole, or the
/// test that uses them tests nothing.
fn assert_some_frame_held_whole(classified: &Classified) {
    eprintln!("{} frames held whole inside a datagram", classified.hidden);
    assert!(
        classified.hidden > 0,
        "the stream has no frame held whole inside a datagram: it tests nothing here"
    );
}

#[test]
fn h264_in_mpegts_one_ts_packet_per_datagram() {
    let (packets, es) = encode(
        "h264_ts1",
        H264_ENCODER,
        "h264parse ! mpegtsmux alignment=1",
    );
    let classified = classify(PayloadFormat::MpegTs, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "h264"));
}

#[test]
fn h264_in_mpegts_seven_ts_packets_per_datagram() {
    let (packets, es) = encode(
        "h264_ts7",
        H264_ENCODER,
        "h264parse ! mpegtsmux alignment=7",
    );
    assert!(packets.iter().all(|packet| packet.data.len() == 7 * 188));
    let classified = classify(PayloadFormat::MpegTs, &packets);
    // x264's B-frames here are a few dozen bytes: a datagram may end one
    // frame, hold a B-frame whole and start the next.
    assert_matches(&classified, &ffprobe_types(&es, "h264"));
    assert_some_frame_held_whole(&classified);
}

#[test]
fn h264_in_mpegts_over_rtp() {
    let (packets, es) = encode(
        "h264_ts_rtp",
        H264_ENCODER,
        "h264parse ! mpegtsmux alignment=7 ! rtpmp2tpay",
    );
    let classified = classify(PayloadFormat::RtpMp2t, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "h264"));
    assert_some_frame_held_whole(&classified);
}

#[test]
fn mpeg2_in_mpegts() {
    let (packets, es) = encode(
        "mpeg2_ts",
        MPEG2_ENCODER,
        "mpegvideoparse ! mpegtsmux alignment=7",
    );
    let classified = classify(PayloadFormat::MpegTs, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "mpegvideo"));
}

#[test]
fn h265_in_mpegts() {
    let (packets, es) = encode("h265_ts", H265_ENCODER, "h265parse ! mpegtsmux alignment=1");
    let classified = classify(PayloadFormat::MpegTs, &packets);
    assert_matches(&classified, &ffprobe_types(&es, "hevc"));
}
