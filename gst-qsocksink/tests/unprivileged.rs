//! `gst-launch-1.0 ... ! qsocksink` run by a user without privilege gets a
//! kernel scheduler's class through the real `qsockd --foreground`, running
//! as root in a test bed's sender namespace; a stream qsockd cannot admit
//! fails the start with `scheduler=htb` and falls back to the user
//! scheduler with `scheduler=auto`, in qsockd's words either way.
//!
//! Needs root (namespaces, `useradd`), x264enc and
//! `target/release/qsockd` (`cargo build --release -p qsockd`).

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use qsock_testbed::{QsockdBed, TestUser};

const RECEIVER_PORT: u16 = 5004;
const LINK_RATE: &str = "100mbit";

/// The plugin this test binary was built with (`target/PROFILE/`).
fn plugin() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile = test.parent().and_then(Path::parent).unwrap();
    let plugin = profile.join("libgstqsocksink.so");
    assert!(
        plugin.is_file(),
        "{} is missing: `cargo build --release -p gst-qsocksink`",
        plugin.display()
    );
    plugin
}

fn setup(tag: &str) -> QsockdBed {
    QsockdBed::start(&plugin(), tag, LINK_RATE, RECEIVER_PORT)
}

/// `gst-launch-1.0 -m` of snow, encoded with x264 and packetised for RTP,
/// into qsocksink with `sink_properties`, as `user`.
fn launch(setup: &QsockdBed, user: &TestUser, buffers: u32, sink_properties: &str) -> Child {
    let pipeline = format!(
        "videotestsrc is-live=true pattern=snow num-buffers={buffers} ! \
         video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=30 ! \
         rtph264pay config-interval=-1 pt=96 ! \
         qsocksink host={} port={} device={} qos-interval=200 {sink_properties}",
        setup.receiver.ip(),
        setup.receiver.port(),
        setup.bed.sender_dev()
    );
    let dir = setup.copy.dir();
    let mut args = vec!["-m".to_owned()];
    args.extend(pipeline.split_whitespace().map(str::to_owned));
    user.command_in_sender(&setup.bed, Path::new("gst-launch-1.0"), args)
        .env("GST_PLUGIN_PATH", dir)
        .env(
            "GST_REGISTRY",
            dir.join(format!("registry-{}.bin", user.name())),
        )
        .env("HOME", dir)
        .env(qsock::daemon::protocol::SOCKET_ENV, setup.daemon.socket())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the pipeline; its standard output and error.
fn finish(mut child: Child) -> (bool, String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.success(), stdout, stderr)
}

#[test]
fn an_unprivileged_pipeline_gets_its_htb_class_through_qsockd() {
    let setup = setup("qsocksink-unprivileged");
    let user = TestUser::create("qsockt4");
    // 300 frames at 30 fps: ten seconds to watch the class's counters.
    let child = launch(&setup, &user, 300, "scheduler=htb");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first: Option<(String, u64)> = None;
    // qsockd keeps empty classes prepared ahead: the stream's is the one
    // that counts bytes.
    let grew = loop {
        let counting: Vec<(String, u64)> = setup
            .stream_classes()
            .into_iter()
            .filter(|(_, bytes)| *bytes > 0)
            .collect();
        match (&first, counting.as_slice()) {
            (None, [(id, bytes)]) => first = Some((id.clone(), *bytes)),
            (Some((id, before)), [(now_id, now)]) if now_id == id && now > before => {
                break Some((id.clone(), *before, *now));
            }
            (_, [_, _, ..]) => panic!("more than one class counts bytes: {counting:?}"),
            _ => {}
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (ok, stdout, stderr) = finish(child);
    assert!(ok, "the pipeline failed:\n{stdout}\n{stderr}");
    let (class, before, after) = grew.unwrap_or_else(|| {
        panic!("no stream class's byte counter grew while the pipeline ran (first seen: {first:?}):\n{stdout}\n{stderr}")
    });
    println!("class {class}: {before} -> {after} bytes");
    assert!(
        stdout.contains("qsocksink-stats") && stdout.contains("scheduler=(string)htb"),
        "the sink's stats do not say htb:\n{stdout}"
    );
    assert!(
        !stdout.contains("scheduler=(string)user"),
        "the sink used the user scheduler:\n{stdout}"
    );
    setup.wait_gone(&class);
}

#[test]
fn a_stream_qsockd_cannot_admit_fails_with_htb_and_falls_back_with_auto() {
    let setup = setup("qsocksink-refused");
    let user = TestUser::create("qsockt5");
    // A full-size packet every 130 µs asks for some 93 Mbit/s: within the
    // 100 Mbit/s link, beyond the 80 % of it qsockd lets users reserve.
    let (ok, stdout, stderr) = finish(launch(&setup, &user, 30, "scheduler=htb ipg=130"));
    assert!(
        !ok,
        "the pipeline started although qsockd cannot admit it:\n{stdout}"
    );
    let said = format!("{stdout}\n{stderr}");
    assert!(
        said.contains("cannot attach a socket to the htb scheduler") && said.contains("qsockd: "),
        "the failure does not give qsockd's refusal:\n{said}"
    );

    let (ok, stdout, stderr) = finish(launch(&setup, &user, 30, "scheduler=auto ipg=130"));
    let said = format!("{stdout}\n{stderr}");
    assert!(ok, "scheduler=auto did not fall back:\n{said}");
    assert!(
        said.contains("uses the user scheduler") && said.contains("qsockd: "),
        "the fallback does not say why in qsockd's words:\n{said}"
    );
    assert!(stdout.contains("scheduler=(string)user"), "{stdout}");
}
