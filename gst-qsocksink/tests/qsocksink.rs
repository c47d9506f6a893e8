//! qsocksink in a harness, sending through qsock's `user` scheduler on
//! loopback to a real UDP socket: caps, one datagram per buffer and one
//! `send_frame` per frame, feedback upstream and on the bus, properties.
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use qsock_testbed::assert_mentions;

mod loopback;
mod messages;
mod plugin;

use loopback::receiver;
use plugin::init;

/// A sink on the user scheduler, sending to `port` on loopback, in a harness.
fn harness(port: u16, caps: &str) -> (Harness, gst::Bus) {
    harness_reporting_every(port, caps, 20)
}

/// The same, with a report every `qos_interval_ms`.
fn harness_reporting_every(port: u16, caps: &str, qos_interval_ms: u32) -> (Harness, gst::Bus) {
    init();
    let sink = gst::ElementFactory::make("qsocksink")
        .property("port", u32::from(port))
        .property_from_str("scheduler", "user")
        .property("qos-interval", qos_interval_ms)
        .property("sync", false)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    sink.set_bus(Some(&bus));
    let mut h = Harness::with_element(&sink, Some("sink"), None);
    h.play();
    h.set_src_caps_str(caps);
    (h, bus)
}

const H264: &str = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";

/// The start of an IDR slice (H.264 NAL type 5): an intra frame.
const IDR_SLICE: [u8; 2] = [0x65, 0x88];
/// The start of a reference P slice (NAL type 1, nal_ref_idc 2; slice
/// header: first_mb_in_slice 0, slice_type 0 = P).
const P_SLICE: [u8; 2] = [0x41, 0xe0];

/// An RTP packet of one H.264 slice: sequence number, timestamp, marker, the
/// slice's first bytes, then `fill`.
fn rtp(sequence: u16, timestamp: u32, marker: bool, slice: [u8; 2], fill: u8) -> gst::Buffer {
    let mut bytes = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
    bytes.extend_from_slice(&sequence.to_be_bytes());
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 1]);
    bytes.extend_from_slice(&slice);
    bytes.extend_from_slice(&[fill; 398]);
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    let pts = gst::ClockTime::from_nseconds(u64::from(timestamp) * 100_000 / 9);
    buffer.get_mut().unwrap().set_pts(pts);
    buffer
}

/// `frames` frames of `per_frame` packets, 30 fps; every fifth frame, from
/// the first, is an IDR frame, the others P frames.
fn frames(frames: u32, per_frame: u16) -> Vec<gst::Buffer> {
    let mut buffers = Vec::new();
    for frame in 0..frames {
        for packet in 0..per_frame {
            let sequence = (frame as u16) * per_frame + packet;
            buffers.push(rtp(
                sequence,
                frame * 3000,
                packet + 1 == per_frame,
                if frame % 5 == 0 { IDR_SLICE } else { P_SLICE },
                sequence as u8,
            ));
        }
    }
    buffers
}

fn receive(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    let mut buffer = [0u8; 2048];
    while datagrams.len() < count {
        let length = socket.recv(&mut buffer).unwrap_or_else(|err| {
            panic!("{} of {count} datagrams arrived: {err}", datagrams.len())
        });
        datagrams.push(buffer[..length].to_vec());
    }
    datagrams
}

/// Waits for a `qsocksink-stats` message that satisfies `done`.
fn stats_until(bus: &gst::Bus, done: impl Fn(&gst::StructureRef) -> bool) -> gst::Structure {
    messages::element_message(bus, "qsocksink-stats", Duration::from_secs(10), false, done)
}

/// Pushes each of `buffers` into the harness, each accepted.
fn push_all(h: &mut Harness, buffers: &[gst::Buffer]) {
    for buffer in buffers {
        assert_eq!(h.push(buffer.clone()), Ok(gst::FlowSuccess::Ok));
    }
}

/// A receiving socket, and a sink on the user scheduler sending H.264 to it
/// in a harness, with its bus, after `buffers` were pushed.
fn pushed_on_h264(buffers: &[gst::Buffer]) -> (UdpSocket, Harness, gst::Bus) {
    let (rx, port) = receiver();
    let (mut h, bus) = harness(port, H264);
    push_all(&mut h, buffers);
    (rx, h, bus)
}

fn count(structure: &gst::StructureRef, field: &str) -> u64 {
    structure
        .get::<u64>(field)
        .unwrap_or_else(|err| panic!("{field}: {err} in {structure}"))
}

#[test]
fn accepts_the_payloads_it_can_classify() {
    for caps in [
        H264,
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=H265",
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=MPV",
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=MP2T",
        "video/mpegts,packetsize=188,systemstream=true",
    ] {
        let (_rx, port) = receiver();
        let (mut h, _bus) = harness(port, caps);
        assert_eq!(
            h.push(rtp(1, 0, true, IDR_SLICE, 0)),
            Ok(gst::FlowSuccess::Ok),
            "{caps}"
        );
    }
}

#[test]
fn only_the_encodings_it_can_type_negotiate() {
    init();
    let sink = gst::ElementFactory::make("qsocksink").build().unwrap();
    let pad = sink.static_pad("sink").unwrap();
    for (caps, accepted) in [
        (H264, true),
        (
            "application/x-rtp,media=video,clock-rate=90000,encoding-name=MP2T",
            true,
        ),
        (
            "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8",
            false,
        ),
        (
            "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS",
            false,
        ),
    ] {
        let caps: gst::Caps = caps.parse().unwrap();
        assert_eq!(pad.query_accept_caps(&caps), accepted, "{caps}");
    }
}

#[test]
fn linking_a_payloader_it_cannot_type_fails_at_link_time() {
    init();
    for payloader in ["rtpvp8pay", "rtpopuspay"] {
        let err = gst::parse::launch(&format!("{payloader} ! qsocksink"))
            .err()
            .unwrap_or_else(|| panic!("{payloader} ! qsocksink linked"));
        let text = err.to_string();
        assert!(
            text.contains("could not link") && text.contains("qsocksink"),
            "{payloader}: {text}"
        );
    }
    assert!(gst::parse::launch("rtph264pay ! qsocksink").is_ok());
}

#[test]
fn every_packet_arrives_and_each_frame_is_one_send() {
    let sent = frames(10, 3);
    let (rx, h, bus) = pushed_on_h264(&sent);
    let received = receive(&rx, sent.len());
    for (buffer, datagram) in sent.iter().zip(&received) {
        assert_eq!(
            buffer.map_readable().unwrap().as_slice(),
            datagram.as_slice()
        );
    }
    // Frames come from the RTP timestamps and markers, types from the
    // slices: frames 0 and 5 are IDR frames.
    let stats = stats_until(&bus, |s| {
        s.get::<u64>("frames-intra") == Ok(2) && s.get::<u64>("frames-predicted") == Ok(8)
    });
    assert_eq!(count(&stats, "send-frame-calls"), 10, "{stats}");
    assert_eq!(count(&stats, "packets-intra"), 6, "{stats}");
    assert_eq!(count(&stats, "packets-predicted"), 24, "{stats}");
    assert_eq!(count(&stats, "packets-unknown"), 0, "{stats}");
    assert_eq!(stats.get::<&str>("scheduler").unwrap(), "user");
    assert_eq!(stats.get::<&str>("device").unwrap(), "lo");
    let property = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(property.name(), "qsocksink-stats");
    assert!(property.has_field("deadline-misses"), "{property}");
}

#[test]
fn buffer_lists_are_sent_frame_by_frame() {
    let (rx, port) = receiver();
    let (h, bus) = harness(port, H264);
    let mut list = gst::BufferList::new();
    for buffer in frames(2, 2) {
        list.get_mut().unwrap().add(buffer);
    }
    let pad = h.srcpad().unwrap();
    assert_eq!(pad.push_list(list), Ok(gst::FlowSuccess::Ok));
    assert_eq!(receive(&rx, 4).len(), 4);
    let stats = stats_until(&bus, |s| {
        s.get::<u64>("frames-intra") == Ok(1) && s.get::<u64>("frames-predicted") == Ok(1)
    });
    assert_eq!(count(&stats, "send-frame-calls"), 2, "{stats}");
}

#[test]
fn eos_sends_the_frame_nothing_else_would_close() {
    // MPEG-TS datagrams carry no marker: a frame ends when the next starts,
    // and the last one at EOS.
    let (rx, port) = receiver();
    let (mut h, bus) = harness(port, "video/mpegts,packetsize=188,systemstream=true");
    for (index, pts_ms) in [0u64, 0, 40, 40].into_iter().enumerate() {
        let mut buffer = gst::Buffer::from_mut_slice(vec![index as u8; 188 * 7]);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(pts_ms));
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    assert_eq!(receive(&rx, 4).len(), 4);
    let stats = stats_until(&bus, |s| s.get::<u64>("frames-unknown") == Ok(2));
    assert_eq!(count(&stats, "send-frame-calls"), 2, "{stats}");
}

#[test]
fn reports_upstream_with_qos_events() {
    let sent = frames(5, 2);
    let (rx, mut h, _bus) = pushed_on_h264(&sent);
    receive(&rx, sent.len());
    let give_up = Instant::now() + Duration::from_secs(10);
    let qos = loop {
        assert!(
            Instant::now() < give_up,
            "no QoS event upstream within 10 s"
        );
        let event = h.pull_upstream_event().expect("an upstream event");
        if let gst::EventView::Qos(qos) = event.view() {
            break qos.get();
        }
    };
    let (kind, proportion, _diff, timestamp) = qos;
    assert_eq!(kind, gst::QOSType::Overflow);
    assert!((0.0..=1.0).contains(&proportion), "{proportion}");
    assert!(timestamp.is_some());
}

#[test]
fn every_property_is_documented() {
    init();
    let sink = gst::ElementFactory::make("qsocksink").build().unwrap();
    let own = sink.type_();
    let mut checked = 0;
    for pspec in sink.list_properties() {
        if pspec.owner_type() != own {
            continue;
        }
        let blurb = pspec.blurb().unwrap_or_default();
        assert!(
            blurb.len() > 20,
            "property {} has no useful blurb: {blurb:?}",
            pspec.name()
        );
        assert!(pspec
            .name()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-'));
        checked += 1;
    }
    assert_eq!(checked, 23, "the sink's own properties");
}

#[test]
fn a_missing_scheduler_is_explained() {
    let text = refusal(&[("device", "no-such-dev0"), ("scheduler", "user")]);
    assert!(text.contains("no-such-dev0"), "{text}");
}

/// A link rate no scheduler can take (less than a byte per second, more
/// than 2^64-1 bit/s) stops the sink with the range qsockctl gives, also
/// when the device already has its scheduler and the rate would not be used.
#[test]
fn a_link_rate_out_of_range_is_refused_with_the_range() {
    let (_socket, port) = receiver();
    // The user scheduler now runs for loopback in this process.
    let (_running, _bus) = harness(port, H264);
    for rate in ["7bit", "18446744073709551616"] {
        let text = refusal(&[
            ("port", &port.to_string()),
            ("device", "lo"),
            ("scheduler", "user"),
            ("link-rate", rate),
        ]);
        assert_mentions(
            &text,
            &[
                &format!("link-rate: the rate {rate:?} is out of range"),
                "at least 8bit",
                "at most 18446744073709551615bit",
            ],
        );
    }
}

#[test]
fn eos_reports_the_last_interval() {
    // No report falls due during the run: only the one at EOS can count it.
    let (_rx, port) = receiver();
    let (mut h, bus) = harness_reporting_every(port, H264, 60_000);
    let sent = frames(90, 2);
    push_all(&mut h, &sent);
    assert!(h.push_event(gst::event::Eos::new()));
    let stats = stats_until(&bus, |s| s.get::<bool>("end-of-stream") == Ok(true));
    assert_eq!(count(&stats, "frames-intra"), 18, "{stats}");
    assert_eq!(count(&stats, "frames-predicted"), 72, "{stats}");
    assert_eq!(count(&stats, "send-frame-calls"), 90, "{stats}");
    let property = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(property, stats);
}

#[test]
fn an_interval_without_packets_is_not_reported_on_time() {
    let (_rx, port) = receiver();
    let (_h, bus) = harness(port, H264);
    // Nothing is pushed: every interval is idle.
    for _ in 0..3 {
        let stats = stats_until(&bus, |_| true);
        assert_eq!(count(&stats, "sent-packets"), 0, "{stats}");
        assert!(!stats.has_field("on-time-share"), "{stats}");
    }
}

/// The text of the error a qsocksink with `properties` (as gst-launch
/// writes them) posts, within 5 s, when it refuses to go to PAUSED; the sink
/// is back in NULL after.
fn refusal(properties: &[(&str, &str)]) -> String {
    init();
    let mut builder = gst::ElementFactory::make("qsocksink");
    for (name, value) in properties {
        builder = builder.property_from_str(name, value);
    }
    let sink = builder.build().unwrap();
    let bus = gst::Bus::new();
    sink.set_bus(Some(&bus));
    assert!(
        sink.set_state(gst::State::Paused).is_err(),
        "a qsocksink with {properties:?} started"
    );
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    sink.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(error) = message.view() else {
        unreachable!()
    };
    error.error().to_string()
}

#[test]
fn min_bitrate_above_max_bitrate_is_refused_at_start() {
    let text = refusal(&[
        ("scheduler", "user"),
        ("min-bitrate", "5000000"),
        ("max-bitrate", "1000000"),
    ]);
    assert_mentions(
        &text,
        &[
            "min-bitrate 5000000 is above max-bitrate 1000000",
            "min-bitrate <= max-bitrate",
        ],
    );
}

#[test]
fn a_live_change_crossing_the_bitrate_limits_is_refused() {
    let (_rx, port) = receiver();
    let (h, bus) = harness(port, H264);
    let sink = h.element().unwrap();
    sink.set_property("max-bitrate", 2_000_000u64);
    sink.set_property("min-bitrate", 3_000_000u64);
    assert_eq!(sink.property::<u64>("min-bitrate"), 250_000);
    assert_eq!(sink.property::<u64>("max-bitrate"), 2_000_000);
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Warning],
        )
        .expect("a warning that the change was refused");
    let gst::MessageView::Warning(warning) = message.view() else {
        unreachable!()
    };
    let text = warning.error().to_string();
    assert_mentions(
        &text,
        &[
            "min-bitrate 3000000 is above max-bitrate 2000000",
            "refused",
        ],
    );
    // Raising max-bitrate first lets min-bitrate follow.
    sink.set_property("max-bitrate", 4_000_000u64);
    sink.set_property("min-bitrate", 3_000_000u64);
    assert_eq!(sink.property::<u64>("min-bitrate"), 3_000_000);
}

#[test]
fn a_bind_address_of_the_other_family_is_named_as_such() {
    let text = refusal(&[
        ("host", "::1"),
        ("bind-address", "127.0.0.1"),
        ("scheduler", "user"),
    ]);
    assert_mentions(
        &text,
        &["bind-address 127.0.0.1 is an IPv4 address", "is IPv6"],
    );
}
