//! qsocksink started before its receiver, and a receiver restarted
//! mid-stream: as with udpsink, the pipeline keeps running while nobody
//! listens (the receiver's host answers every datagram with ICMP port
//! unreachable), and a receiver that starts later gets the stream.
//!
//! Needs root (namespaces, qdiscs). The `dwcs` case runs where the sch_dwcs
//! module is loaded (kmod-dwcs/test/guest_rust.sh in the test VMs sets
//! `QSOCK_EXPECT_DWCS=1`, and then a missing module fails it); elsewhere it
//! skips.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod plugin;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gst::prelude::*;
use qsock::{qsockinit, InitParams, Rate, SchedulerName};
use qsock_media::{is_eos, NamespacePipeline};
use qsock_testbed::TestBed;

const PORT: u16 = 5004;
/// Frames the source makes, 25 a second: long enough for the receiver to
/// stop and start twice in an emulated VM.
const FRAMES: u32 = 250;
/// Frames qsocksink sends between one change of the receiver and the next.
const FRAMES_PER_PHASE: u64 = 25;

fn bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: this test builds network namespaces and installs qdiscs: root only");
        return None;
    }
    plugin::init();
    let bed = TestBed::new().unwrap_or_else(|err| panic!("cannot build the test bed: {err}"));
    // Port unreachable for every datagram, not six and then one a second.
    bed.run_in_receiver(|| std::fs::write("/proc/sys/net/ipv4/icmp_ratelimit", "0"))
        .unwrap()
        .unwrap();
    Some(bed)
}

/// Frames qsocksink has handed to its scheduler so far (none before it has
/// a socket, when its stats do not have the field yet).
fn frames_sent(sink: &gst::Element) -> u64 {
    sink.property::<gst::Structure>("stats")
        .get::<u64>("send-frame-calls")
        .unwrap_or(0)
}

/// Waits until qsocksink has sent `frames` frames, failing on a pipeline error.
fn wait_for_frames(sender: &NamespacePipeline, sink: &gst::Element, frames: u64) {
    let until = Instant::now() + Duration::from_secs(60);
    while frames_sent(sink) < frames {
        if let Err(err) = sender.check() {
            panic!(
                "the pipeline stopped after {} frames: {err}",
                frames_sent(sink)
            );
        }
        assert!(
            Instant::now() < until,
            "qsocksink sent {} of {frames} frames in 60 s",
            frames_sent(sink)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Datagrams a receiver on the port gets while qsocksink sends
/// `FRAMES_PER_PHASE` more frames.
fn receive_phase(bed: &TestBed, sender: &NamespacePipeline, sink: &gst::Element) -> usize {
    let receiver = bed
        .run_in_receiver(|| UdpSocket::bind((bed.receiver_v4(), PORT)))
        .unwrap()
        .unwrap_or_else(|err| panic!("the receiver cannot bind port {PORT}: {err}"));
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let until = frames_sent(sink) + FRAMES_PER_PHASE;
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while frames_sent(sink) < until {
        if receiver.recv(&mut buf).is_ok() {
            got += 1;
        }
        if let Err(err) = sender.check() {
            panic!("the pipeline stopped while the receiver listened: {err}");
        }
    }
    got
}

fn sender_before_receiver(scheduler: SchedulerName) {
    let Some(bed) = bed() else { return };
    let init = InitParams::new(bed.sender_dev(), scheduler)
        .with_link_rate(Rate::from_bits_per_second(10_000_000));
    bed.run_in_sender(|| qsockinit(&init))
        .unwrap()
        .unwrap_or_else(|err| panic!("qsockinit {scheduler}: {err}"));
    let description = format!(
        "videotestsrc is-live=true num-buffers={FRAMES} ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast bitrate=300 key-int-max=25 ! \
         rtph264pay ! qsocksink name=sink host={} port={PORT} device={} scheduler={}",
        bed.receiver_v4(),
        bed.sender_dev(),
        scheduler.as_str()
    );
    let sender = NamespacePipeline::launch(&description, bed.sender_ns()).unwrap();
    let sink = sender.element("sink").unwrap();
    bed.run_in_sender(|| sender.pipeline().set_state(gst::State::Playing))
        .unwrap()
        .unwrap_or_else(|err| panic!("the sender does not start: {err}"));

    // Nobody listens yet.
    wait_for_frames(&sender, &sink, FRAMES_PER_PHASE);
    let first = receive_phase(&bed, &sender, &sink);
    // The receiver is gone for a while, then back.
    wait_for_frames(&sender, &sink, frames_sent(&sink) + FRAMES_PER_PHASE);
    let second = receive_phase(&bed, &sender, &sink);
    println!(
        "{scheduler}: the late receiver got {first} datagrams, the restarted one {second}, of \
         {} frames sent",
        frames_sent(&sink)
    );
    assert!(first > 0, "the late receiver got nothing");
    assert!(second > 0, "the restarted receiver got nothing");
    sender
        .wait_for("end of stream", Duration::from_secs(60), is_eos)
        .unwrap_or_else(|err| panic!("the sender did not end its stream: {err}"));
}

#[test]
fn a_sender_before_its_receiver_keeps_streaming_on_htb() {
    sender_before_receiver(SchedulerName::Htb);
}

#[test]
fn a_sender_before_its_receiver_keeps_streaming_on_user() {
    sender_before_receiver(SchedulerName::User);
}

#[test]
fn a_sender_before_its_receiver_keeps_streaming_on_dwcs() {
    if !qsock_testbed::dwcs_test_runs() {
        return;
    }
    sender_before_receiver(SchedulerName::Dwcs);
}
