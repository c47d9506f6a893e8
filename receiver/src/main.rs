//! qsock-receive: receives one of the streams `pipelines/` sends, decodes
//! it, and prints one line a second: frames decoded per second, inter-frame
//! jitter, and lost frames by type.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use gst::prelude::*;
use parking_lot::Mutex;
use qsock_receiver::{Format, FrameAccounting, Line, VideoSink};

/// Receive live video and print, each second, frames per second, jitter and
/// lost frames by type.
///
/// Each line reads `second=N fps=F jitter-ms=J frames=C lost-packets=L
/// lost-I=.. lost-P=.. lost-B=.. lost-unknown=..`:
///
/// fps: frames out of the decoder in that second.
///
/// jitter-ms: for each frame that arrived whole after another whole one, how
/// far the time between their arrivals was from the media time between them
/// (timestamps: the nominal frame interval for consecutive frames), as a
/// magnitude; the mean over the second. `-` when fewer than two whole frames
/// arrived in a row.
///
/// frames: frames that arrived whole.
///
/// lost-*: frames damaged (a packet of theirs lost; RTP sequence numbers or
/// transport stream continuity counters tell) or missing (no packet arrived;
/// counted from the timestamp step between the frames around them against
/// the frame rate in the stream's headers), by type
/// as qsocksink's classifier reads the packets that arrived: I intra, P
/// predicted reference, B non-reference. A missing frame, or a damaged one
/// none of whose packets showed a type, is unknown: types are not guessed
/// from the GOP pattern.
#[derive(Debug, Parser)]
#[command(name = "qsock-receive", version)]
struct Args {
    /// The stream: h264-rtp, mpeg2-rtp or mpegts-udp (H.264 inside).
    #[arg(long, value_enum)]
    format: Format,
    /// The UDP port to listen on.
    #[arg(long)]
    port: u16,
    /// The local address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    address: String,
    /// The jitter buffer's latency, ms (RTP formats).
    #[arg(long, default_value_t = 200)]
    latency: u32,
    /// Stop after this many lines; without it, run until Ctrl-C.
    #[arg(long)]
    seconds: Option<u64>,
    /// Also write every line to this CSV file (columns as the line's keys).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Show the video in a window instead of only counting it.
    #[arg(long)]
    display: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(error) = run(&args) {
        eprintln!("qsock-receive: {error}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    gst::init().map_err(|error| format!("GStreamer would not start: {error}"))?;
    for (element, package) in args.format.elements() {
        if gst::ElementFactory::find(element).is_none() {
            return Err(format!(
                "GStreamer element {element} is missing: install the Debian package {package}"
            )
            .into());
        }
    }
    let sink = if args.display {
        VideoSink::Display
    } else {
        VideoSink::Discard
    };
    let description = args
        .format
        .pipeline(&args.address, args.port, args.latency, sink);
    eprintln!("qsock-receive: running {description}");
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the receiving pipeline is not a pipeline")?;
    let _stop_on_exit = StopOnDrop(pipeline.clone());

    let epoch = Instant::now();
    let accounting = Arc::new(Mutex::new(FrameAccounting::new(args.format)));
    tap_packets(&pipeline, epoch, Arc::clone(&accounting))?;
    follow_frame_rate(&pipeline, Arc::clone(&accounting))?;
    let decoded = Arc::new(AtomicU32::new(0));
    count_decoded(&pipeline, Arc::clone(&decoded))?;

    let mut csv =
        match &args.csv {
            Some(path) => Some(csv::Writer::from_path(path).map_err(|error| {
                format!("cannot write the CSV file {}: {error}", path.display())
            })?),
            None => None,
        };

    let interrupted = Arc::new(AtomicBool::new(false));
    let on_interrupt = Arc::clone(&interrupted);
    ctrlc::set_handler(move || on_interrupt.store(true, Ordering::SeqCst))?;

    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        pipeline_error(&bus).unwrap_or_else(|| {
            format!(
                "the receiving pipeline would not start (is port {} in use?)",
                args.port
            )
        })
    })?;

    // Scripts and tests wait for this line: the port is bound from here on.
    eprintln!(
        "qsock-receive: listening on {}:{} for {}",
        args.address,
        args.port,
        args.format.name()
    );
    let mut reordering_said = false;
    let mut interval_start = Instant::now();
    let mut second = 0;
    while args.seconds.is_none_or(|seconds| second < seconds) {
        let due = interval_start + Duration::from_secs(1);
        // Wait on the bus until the second is up, so that an error ends the
        // run at once. Ctrl-C is seen within a tenth of a second.
        loop {
            let now = Instant::now();
            if now >= due || interrupted.load(Ordering::SeqCst) {
                break;
            }
            let wait = (due - now).min(Duration::from_millis(100));
            let timeout = gst::ClockTime::from_nseconds(wait.as_nanos() as u64);
            if let Some(message) =
                bus.timed_pop_filtered(timeout, &[gst::MessageType::Error, gst::MessageType::Eos])
            {
                return Err(match message.view() {
                    gst::MessageView::Error(error) => format!(
                        "the receiving pipeline failed: {} ({})",
                        error.error(),
                        error.debug().unwrap_or_default()
                    ),
                    _ => "the receiving pipeline ended (end of stream)".to_owned(),
                }
                .into());
            }
        }
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        let seconds = now.duration_since(interval_start).as_secs_f64();
        interval_start = now;
        second += 1;
        let (tally, reorders) = {
            let mut accounting = accounting.lock();
            (accounting.take_tally(), accounting.reorders_frames())
        };
        if reorders && !reordering_said {
            reordering_said = true;
            eprintln!(
                "qsock-receive: the stream's timestamps go backwards (B-frames): \
                 missing frames are no longer counted, only damaged ones"
            );
        }
        let line = Line::new(second, seconds, decoded.swap(0, Ordering::SeqCst), &tally);
        println!("{line}");
        if let Some(csv) = csv.as_mut() {
            csv.serialize(line)?;
            csv.flush()?;
        }
    }
    Ok(())
}

/// Every datagram udpsrc receives goes to the accounting, timed as it
/// leaves udpsrc, before the jitter buffer can hold it.
fn tap_packets(
    pipeline: &gst::Pipeline,
    epoch: Instant,
    accounting: Arc<Mutex<FrameAccounting>>,
) -> Result<(), Box<dyn Error>> {
    let pad = named_pad(pipeline, "source", "src")?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            if let Ok(map) = buffer.map_readable() {
                accounting.lock().packet(map.as_slice(), epoch.elapsed());
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn count_decoded(pipeline: &gst::Pipeline, decoded: Arc<AtomicU32>) -> Result<(), Box<dyn Error>> {
    let pad = named_pad(pipeline, "decoder", "src")?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        decoded.fetch_add(1, Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Gives the accounting the frame rate the parser read from the stream's
/// headers (sequence header, VUI) as soon as the decoder's input caps carry
/// it.
fn follow_frame_rate(
    pipeline: &gst::Pipeline,
    accounting: Arc<Mutex<FrameAccounting>>,
) -> Result<(), Box<dyn Error>> {
    let pad = named_pad(pipeline, "decoder", "sink")?;
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Caps(caps)) = info.event().map(|event| event.view()) {
            if let Some((numerator, denominator)) = frame_rate(caps.caps()) {
                accounting.lock().set_frame_rate(numerator, denominator);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// The static pad `pad` of the receiving pipeline's element named `element`.
fn named_pad(
    pipeline: &gst::Pipeline,
    element: &str,
    pad: &str,
) -> Result<gst::Pad, Box<dyn Error>> {
    pipeline
        .by_name(element)
        .and_then(|found| found.static_pad(pad))
        .ok_or_else(|| {
            format!("the receiving pipeline has no element {element} with a {pad} pad").into()
        })
}

fn frame_rate(caps: &gst::CapsRef) -> Option<(u32, u32)> {
    let rate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
    let numerator = u32::try_from(rate.numer()).ok()?;
    let denominator = u32::try_from(rate.denom()).ok()?;
    (numerator > 0 && denominator > 0).then_some((numerator, denominator))
}

/// The text of an error the bus holds, if any.
fn pipeline_error(bus: &gst::Bus) -> Option<String> {
    let message = bus.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(error) => Some(format!(
            "the receiving pipeline would not start: {} ({})",
            error.error(),
            error.debug().unwrap_or_default()
        )),
        _ => None,
    }
}

/// Sets the pipeline to NULL when the run ends, however it ends.
struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}
