//! CPU cost per buffer of qsocksink against udpsink, on the same input in the
//! same run: `appsrc ! qsocksink` and `appsrc ! udpsink` each send pre-made
//! RTP packets of H.264 slices (frames of four; an IDR frame every 30th, P
//! frames between) to a loopback port, and the process's CPU time is
//! measured from the first push until the last packet has left (for the
//! user scheduler: until its queue is empty, so that its thread is counted).
//!
//! As root the run moves into a network namespace of its own and installs
//! HTB on its loopback device, so that qsocksink is also measured on a
//! kernel scheduler; udpsink's packets cross the same HTB (its best-effort
//! class), so the ratio is the sink's own cost.
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
            // An IDR slice (NAL type 5) or a reference P slice (type 1,
            // slice_type 0): what the classifier reads.
            if (index / PACKETS_PER_FRAME) % 30 == 0 {
                bytes.extend_from_slice(&[0x65, 0x88]);
            } else {
                bytes.extend_from_slice(&[0x41, 0xe0]);
            }
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

/// As root: a network namespace of this process's own with HTB on its
/// loopback device. Before any thread starts, so that all are in it.
fn private_loopback_with_htb() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("not root: qsocksink is measured on the user scheduler only");
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2)");
    assert!(up.success(), "ip link set lo up failed");
    let params = qsock::InitParams::new("lo", qsock::SchedulerName::Htb)
        .with_link_rate("10gbit".parse().expect("a rate"));
    qsock::qsockinit(&params).expect("htb on the namespace's loopback device");
    true
}

fn main() {
    let htb = private_loopback_with_htb();
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

    let mut sinks = vec![
        ("udpsink", "udpsink host=127.0.0.1"),
        ("qsocksink-user", "qsocksink host=127.0.0.1 scheduler=user"),
    ];
    if htb {
        sinks.push(("qsocksink-htb", "qsocksink host=127.0.0.1 scheduler=htb"));
    }
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
    println!(
        "\nprocess CPU per buffer (frames of {PACKETS_PER_FRAME} packets of {PAYLOAD} bytes): \
         udpsink {udpsink:.0} ns"
    );
    for ((name, _), total) in sinks.iter().zip(&totals).skip(1) {
        let cost = per_buffer(total);
        println!(
            "  {name}: {cost:.0} ns, ratio to udpsink {:.2}",
            cost / udpsink
        );
    }
    drop(receiver);
}
