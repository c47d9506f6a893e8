//! adapt-bitrate in a real pipeline: the sink finds x264enc upstream, sets
//! its bitrate (kbit/s) within min-bitrate and max-bitrate, and keeps its
//! rate-control buffer within latency-budget.
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gst::prelude::*;

mod plugin;

/// What the sink left the encoder at once it adapted.
struct Adapted {
    estimate: u64,
    kbits: u32,
    vbv_ms: u32,
    stats: gst::Structure,
}

/// Runs a 30 fps x264enc (with `encoder_properties`) into a qsocksink
/// adapting its bitrate (with `sink_properties`) until the sink reports an
/// estimate and a period.
fn adapt(encoder_properties: &str, sink_properties: &str) -> Adapted {
    plugin::init();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc name=encoder bitrate=2000 tune=zerolatency speed-preset=ultrafast \
         {encoder_properties} ! rtph264pay ! qsocksink name=sink scheduler=user port={port} \
         qos-interval=100 adapt-bitrate=true min-bitrate=300000 max-bitrate=1000000 \
         {sink_properties}"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let encoder = pipeline.by_name("encoder").unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();

    // The first report seeds the estimate from the encoder's 2000 kbit/s,
    // clamped to the 1 Mbit/s maximum, and sets the encoder to it.
    let give_up = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let message = bus
            .timed_pop_filtered(
                gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                &[gst::MessageType::Element, gst::MessageType::Error],
            )
            .expect("no report with an estimate within 20 s");
        if let gst::MessageView::Error(error) = message.view() {
            panic!("{error:?}");
        }
        let structure = message.structure().unwrap();
        if structure.name() == "qsocksink-stats"
            && structure.get::<u64>("estimated-bitrate").unwrap_or(0) > 0
            && structure.get::<u64>("ipg-us").unwrap_or(0) > 0
        {
            break structure.to_owned();
        }
    };
    let adapted = Adapted {
        estimate: sink.property::<u64>("estimated-bitrate"),
        kbits: encoder.property::<u32>("bitrate"),
        vbv_ms: encoder.property::<u32>("vbv-buf-capacity"),
        stats,
    };
    pipeline.set_state(gst::State::Null).unwrap();
    adapted
}

#[test]
fn sets_the_upstream_x264enc_bitrate_within_limits() {
    let Adapted {
        estimate,
        kbits,
        vbv_ms,
        stats,
    } = adapt("", "latency-budget=120");
    assert!((300_000..=1_000_000).contains(&estimate), "{estimate}");
    assert!(
        (300..=1000).contains(&kbits),
        "x264enc bitrate {kbits} kbit/s is outside 300..1000 ({stats})"
    );
    // The period comes from the 30 fps upstream: at most a frame interval.
    let ipg = stats.get::<u64>("ipg-us").unwrap();
    assert!(ipg <= 33_334, "{stats}");
    // x264enc's 600 ms buffer would let an I-frame take 600 ms to leave at
    // the bitrate: the sink lowers it to the 120 ms budget.
    assert_eq!(vbv_ms, 120, "{stats}");
}

#[test]
fn a_smaller_encoder_buffer_than_the_budget_asks_is_kept() {
    let adapted = adapt("vbv-buf-capacity=90", "latency-budget=400");
    assert!((300..=1000).contains(&adapted.kbits), "{}", adapted.stats);
    assert_eq!(adapted.vbv_ms, 90, "{}", adapted.stats);
}
