//! CPU cost per buffer of qsocksink against udpsink, on the same input in the
//! same run: `appsrc ! qsocksink` and `appsrc ! udpsink` each send pre-made
//! RTP packets (frames of four) to a loopback port, and the process's CPU
//! time is measured from the first push until the last packet has left
//! (for qsocksink: until the user scheduler's queue is empty, so that its
//! scheduler thread is counted too).
//!
//! `cargo bench -p gst-qsocksink --bench sink`

use std::cell::Cell;
use std::net::UdpSocket;
use std::time::Duration;

use criterion::Criterion;
use gst::prelude::*;
use nix::time::{clock_gettime, ClockId};

const PACKETS_PER_FRAME: u32 = 4;
const PAYLOAD: usize = 1000;
const POOL: u32 = 4096;

/// Distinct RTP packets, cycled through by every run.
fn packets() -> Vec<gst::Buffer> {
    (0..POOL)
        .map(|index| {
            let marker = index % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1;
            let timestamp = (index / PACKETS_PER_FRAME) * 3000;
            let mut bytes = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
            bytes.extend_from_slice(&(index as u16).to_be_bytes());
            bytes.extend_from_slice(&timestamp.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 1]);
            bytes.resize(PAYLOAD, index as u8);
            gst::Buffer::from_mut_slice(bytes)
        })
        .collect()
}

fn process_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("process CPU clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

/// Packets waiting in the user scheduler on `lo`.
fn user_backlog() -> u64 {
    qsock::report("lo")
        .map(|report| report.streams.iter().map(|s| s.stats.backlog_packets).sum())
        .unwrap_or(0)
}

/// Pushes `count` packets through `sink`; returns the process CPU time taken.
fn run(sink: &str, port: u16, pool: &[gst::Buffer], count: u64) -> Duration {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time max-bytes=0 caps=application/x-rtp,media=video,\
         clock-rate=90000,encoding-name=H264 ! {sink} port={port} sync=false"
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = pipeline
        .by_name("src")
        .expect("appsrc")
        .downcast::<gst_app::AppSrc>()
        .expect("an appsrc");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let start = process_cpu_time();
    for index in 0..count {
        src.push_buffer(pool[(index % u64::from(POOL)) as usize].clone())
            .expect("push");
    }
    src.end_of_stream().expect("eos");
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("{sink}: {}", error.error()),
            _ => {}
        }
    }
    while user_backlog() > 0 {
        std::thread::yield_now();
    }
    let taken = process_cpu_time() - start;
    pipeline.set_state(gst::State::Null).expect("null");
    taken
}

fn main() {
    gst::init().expect("gstreamer");
    gstqsocksink::plugin_register_static().expect("qsocksink registers");
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("receiver");
    let port = receiver.local_addr().expect("address").port();
    let pool = packets();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let sinks = [
        ("udpsink", "udpsink host=127.0.0.1"),
        ("qsocksink", "qsocksink host=127.0.0.1 scheduler=user"),
    ];
    // CPU time and buffers over every sample of this run, per sink.
    let totals: Vec<(Cell<Duration>, Cell<u64>)> = sinks
        .iter()
        .map(|_| (Cell::new(Duration::ZERO), Cell::new(0)))
        .collect();
    let mut group = criterion.benchmark_group("cpu per buffer");
    for ((name, sink), (cpu, buffers)) in sinks.iter().zip(&totals) {
        group.bench_function(*name, |b| {
            b.iter_custom(|count| {
                let taken = run(sink, port, &pool, count);
                cpu.set(cpu.get() + taken);
                buffers.set(buffers.get() + count);
                taken
            })
        });
    }
    group.finish();

    let per_buffer = |(cpu, buffers): &(Cell<Duration>, Cell<u64>)| {
        cpu.get().as_nanos() as f64 / buffers.get().max(1) as f64
    };
    let udpsink = per_buffer(&totals[0]);
    let qsocksink = per_buffer(&totals[1]);
    println!(
        "\nprocess CPU per buffer (frames of {PACKETS_PER_FRAME} packets of {PAYLOAD} bytes): \
         udpsink {udpsink:.0} ns, qsocksink {qsocksink:.0} ns, ratio qsocksink/udpsink {:.2}",
        qsocksink / udpsink
    );
    drop(receiver);
}
