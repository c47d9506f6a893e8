//! qsocksink on a device whose MTU is larger than Ethernet's. The kernel
//! backends size a stream's class for full packets of the device's MTU, so
//! the period the sink starts with (half the link rate) must be reckoned in
//! those packets: reckoned in Ethernet's, a 9000-byte MTU on a 100 Mbit/s
//! link asked HTB for a 281 Mbit/s class, which it refused, and the sink did
//! not start. Needs root (namespaces, qdiscs); without it, it skips.

use std::time::Duration;

use gst::prelude::*;
use qsock::{InitParams, SchedulerName};
use qsock_media::{is_eos, NamespacePipeline};
use qsock_testbed::TestBed;

mod plugin;

#[test]
fn the_sink_starts_and_streams_on_a_jumbo_frame_link() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the test builds network namespaces and installs qdiscs: needs root");
        return;
    }
    plugin::init();
    let bed = TestBed::new().expect("a test bed");
    bed.set_sender_mtu(9000)
        .expect("a 9000-byte MTU on the sender's veth");
    let init = InitParams::new(bed.sender_dev(), SchedulerName::Htb)
        .with_link_rate("100mbit".parse().expect("a rate"));
    bed.run_in_sender(|| qsock::qsockinit(&init))
        .expect("enter the sender's namespace")
        .expect("htb on the sender's veth");
    let sender = NamespacePipeline::launch(
        &format!(
            "videotestsrc num-buffers=25 ! video/x-raw,width=320,height=180,framerate=25/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay \
             ! qsocksink host={} port=5004 device={} scheduler=htb",
            bed.receiver_v4(),
            bed.sender_dev()
        ),
        bed.sender_ns(),
    )
    .expect("the sender builds");
    let playing = bed
        .run_in_sender(|| sender.pipeline().set_state(gst::State::Playing))
        .expect("enter the sender's namespace");
    let started =
        sender.check().and(playing.map(|_| ()).map_err(|err| {
            qsock_media::Error::Pipeline(format!("the sender does not start: {err}"))
        }));
    started.unwrap_or_else(|err| panic!("qsocksink on a 9000-byte MTU: {err}"));
    sender
        .wait_for("end of stream", Duration::from_secs(30), is_eos)
        .unwrap_or_else(|err| panic!("qsocksink on a 9000-byte MTU: {err}"));
}
