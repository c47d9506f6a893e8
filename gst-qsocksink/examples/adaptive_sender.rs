//! A live H.264 sender that follows qsocksink's estimate of what the path
//! carries: it sets its encoder's bitrate to `estimated-bitrate` and picks a
//! resolution that suits that bitrate, switching the capsfilter in front of
//! the encoder.
//!
//! ```sh
//! cargo run --release -p gst-qsocksink --example adaptive_sender -- 127.0.0.1 5004 [seconds]
//! ```
//!
//! Receive with
//! `gst-launch-1.0 udpsrc port=5004 caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96" ! rtph264depay ! avdec_h264 ! autovideosink`.

use std::error::Error;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Resolutions from the smallest, each with the least bitrate (bit/s) that
/// codes it acceptably with x264's ultrafast preset.
const LADDER: [(i32, i32, u64); 4] = [
    (320, 180, 0),
    (640, 360, 600_000),
    (960, 540, 1_500_000),
    (1280, 720, 3_000_000),
];

/// Bitrates within this share above a step's floor keep the lower step, so
/// that an estimate wavering around a floor does not switch resolution on
/// every report.
const SWITCH_MARGIN: f64 = 0.2;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u32 = args.next().as_deref().unwrap_or("5004").parse()?;
    let seconds: u64 = args.next().as_deref().unwrap_or("30").parse()?;

    gst::init()?;
    gstqsocksink::plugin_register_static()?;

    let (width, height, _) = LADDER[1];
    let pipeline = gst::Pipeline::new();
    let source = gst::ElementFactory::make("videotestsrc")
        .property("is-live", true)
        .property_from_str("pattern", "ball")
        .build()?;
    let scale = gst::ElementFactory::make("videoscale").build()?;
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", resolution_caps(width, height))
        .build()?;
    let encoder = gst::ElementFactory::make("x264enc")
        .property_from_str("tune", "zerolatency")
        .property_from_str("speed-preset", "ultrafast")
        .property("bitrate", 1000u32)
        .property("key-int-max", 60u32)
        .build()?;
    let payloader = gst::ElementFactory::make("rtph264pay")
        .property("config-interval", -1i32)
        .build()?;
    // The application steers the encoder itself, so the sink only estimates.
    let sink = gst::ElementFactory::make("qsocksink")
        .property("host", &host)
        .property("port", port)
        .property("qos-interval", 500u32)
        .property("min-bitrate", 200_000u64)
        .property("max-bitrate", 4_000_000u64)
        .build()?;
    pipeline.add_many([&source, &scale, &filter, &encoder, &payloader, &sink])?;
    gst::Element::link_many([&source, &scale, &filter, &encoder, &payloader, &sink])?;

    // Notifications come from the sink's feedback thread; the main loop
    // below acts on them, so they only pass the value on.
    let (estimates, estimated) = std::sync::mpsc::channel::<u64>();
    sink.connect_notify(Some("estimated-bitrate"), move |sink, _| {
        let _ = estimates.send(sink.property::<u64>("estimated-bitrate"));
    });

    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let reason = bus
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|message| match message.view() {
                gst::MessageView::Error(error) => Some(error.error().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "no element said why".into());
        pipeline.set_state(gst::State::Null)?;
        return Err(format!("the pipeline cannot start: {reason}").into());
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut step = 1;
    while Instant::now() < end {
        if let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match message.view() {
                gst::MessageView::Error(error) => {
                    pipeline.set_state(gst::State::Null)?;
                    return Err(format!(
                        "{}: {}",
                        error.src().map(|s| s.name()).unwrap_or_default(),
                        error.error()
                    )
                    .into());
                }
                gst::MessageView::Warning(warning) => {
                    eprintln!("warning: {}", warning.error());
                }
                gst::MessageView::Element(element) => {
                    if let Some(stats) = element.structure() {
                        if stats.name() == "qsocksink-stats" {
                            print_stats(stats);
                        }
                    }
                }
                _ => {}
            }
        }
        while let Ok(bps) = estimated.try_recv() {
            let kbits = u32::try_from(bps / 1000).unwrap_or(u32::MAX).max(1);
            encoder.set_property("bitrate", kbits);
            let wanted = ladder_step(bps, step);
            if wanted != step {
                step = wanted;
                let (width, height, _) = LADDER[step];
                filter.set_property("caps", resolution_caps(width, height));
                println!("estimate {bps} bit/s: {width}x{height} at {kbits} kbit/s");
            }
        }
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}

fn resolution_caps(width: i32, height: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("width", width)
        .field("height", height)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// The ladder step for `bps`: the highest whose floor it reaches, except that
/// a step up needs the floor plus the margin.
fn ladder_step(bps: u64, current: usize) -> usize {
    let reachable = LADDER
        .iter()
        .rposition(|&(_, _, floor)| bps >= floor)
        .unwrap_or(0);
    if reachable > current {
        let floor = LADDER[reachable].2 as f64;
        if (bps as f64) < floor * (1.0 + SWITCH_MARGIN) {
            return reachable - 1;
        }
    }
    reachable
}

fn print_stats(stats: &gst::StructureRef) {
    let field = |name: &str| stats.get::<u64>(name).unwrap_or(0);
    println!(
        "{}: {} frames sent, {} deadline misses, {} dropped late, delivered {} bit/s, estimate {} bit/s, on time {:.3}",
        stats.get::<&str>("scheduler").unwrap_or("?"),
        field("frames-intra") + field("frames-predicted") + field("frames-non-reference") + field("frames-unknown"),
        field("deadline-misses"),
        field("dropped-late"),
        field("delivered-bitrate"),
        field("estimated-bitrate"),
        stats.get::<f64>("on-time-share").unwrap_or(1.0),
    );
}
