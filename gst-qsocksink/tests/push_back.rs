//! Push-back: when the scheduler's queue is full a non-droppable packet is
//! waited for, never dropped, and stopping the pipeline interrupts the wait.
//!
//! The user scheduler on `lo` is given a small queue and a slow link here;
//! it is per process, so these tests live in their own test binary and take
//! turns.
#![allow(clippy::unwrap_used)] // a test that cannot set up should stop at once

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::{Mutex, MutexGuard};
use qsock::{InitParams, SchedulerName};

mod loopback;
mod messages;
mod plugin;

use loopback::receiver;
use plugin::init;

/// Installs the user scheduler on `lo` with `rate` and a queue of `limit`
/// packets, for the duration of one test.
fn slow_link(rate: &str, limit: u32) -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock();
    init();
    let mut params =
        InitParams::new("lo", SchedulerName::User).with_link_rate(rate.parse().unwrap());
    params.limit = Some(limit);
    qsock::qsockinit(&params).unwrap();
    turn
}

/// appsrc ! qsocksink, with `packets` one-packet RTP frames (IDR slices) queued in appsrc.
fn pipeline(port: u16, packets: u16) -> gst::Pipeline {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=application/x-rtp,media=video,clock-rate=90000,\
         encoding-name=H264 ! qsocksink name=sink scheduler=user port={port} sync=false \
         qos-interval=20"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_max_bytes(0);
    for sequence in 0..packets {
        let mut bytes = vec![0x80, 0x80 | 96];
        bytes.extend_from_slice(&sequence.to_be_bytes());
        bytes.extend_from_slice(&(u32::from(sequence) * 3000).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        // An IDR slice's NAL header: intra, so never droppable.
        bytes.push(0x65);
        bytes.extend_from_slice(&[sequence as u8; 987]);
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(u64::from(sequence) * 33));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    pipeline
}

/// [`pipeline`], playing, and its bus.
fn playing(port: u16, packets: u16) -> (gst::Pipeline, gst::Bus) {
    let pipeline = pipeline(port, packets);
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, bus)
}

/// Waits for an element message named `name` that satisfies `wanted`,
/// failing on an error.
fn element_message(
    bus: &gst::Bus,
    name: &str,
    wanted: impl Fn(&gst::StructureRef) -> bool,
) -> gst::Structure {
    messages::element_message(bus, name, Duration::from_secs(20), true, wanted)
}

#[test]
fn stopping_interrupts_a_wait_for_room() {
    // 8 kbit/s carries one 1000-byte packet a second: 200 packets queued
    // behind a queue of 2 would take minutes to leave.
    let _turn = slow_link("8kbit", 2);
    let (_rx, port) = receiver();
    let (pipeline, bus) = playing(port, 200);
    let push_back = element_message(&bus, "qsocksink-push-back", |_| true);
    assert_eq!(push_back.get::<&str>("frame-type").unwrap(), "intra");

    let (done, stopped) = mpsc::channel();
    let stopping = pipeline.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        let result = stopping.set_state(gst::State::Null);
        done.send((result, started.elapsed())).unwrap();
    });
    let (result, took) = stopped
        .recv_timeout(Duration::from_secs(10))
        .expect("setting the pipeline to NULL did not return within 10 s");
    result.unwrap();
    assert!(
        took < Duration::from_secs(1),
        "stopping took {took:?}: the push-back wait was not interrupted"
    );
}

#[test]
fn pushed_back_packets_all_arrive() {
    // 2 Mbit/s carries 250 packets a second; a queue of 4 pushes back
    // almost every packet of a burst of 60.
    let _turn = slow_link("2mbit", 4);
    let (rx, port) = receiver();
    let (pipeline, bus) = playing(port, 60);
    let mut buffer = [0u8; 2048];
    for expected in 0..60u16 {
        let length = rx
            .recv(&mut buffer)
            .unwrap_or_else(|err| panic!("packet {expected} did not arrive: {err}"));
        assert_eq!(length, 1000);
        let sequence = u16::from_be_bytes([buffer[2], buffer[3]]);
        assert_eq!(sequence, expected, "lost or reordered");
    }
    // Every packet was offered once, and the queue pushed back.
    element_message(&bus, "qsocksink-stats", |stats| {
        stats.get::<u64>("packets-intra") == Ok(60)
            && stats
                .get::<u64>("push-back-waits")
                .is_ok_and(|waits| waits > 0)
    });
    pipeline.set_state(gst::State::Null).unwrap();
}
