//! The scripts in `pipelines/`, run as the README prints them: each sender
//! script in the sender's namespace of a test bed, its receiver script in the
//! receiver's, as separate processes, for a few seconds. On a clear link the
//! receiver must decode at the sender's frame rate and lose nothing; behind
//! a TBF bottleneck below the video's rate it must report losses, typed.
//!
//! Needs root (namespaces, qdiscs); without it each test prints why it
//! skips. The scripts use the release builds of the plugin and of
//! qsock-receive; the tests build both first.
//! `cargo test --release -p qsock-receiver --test pipelines -- --nocapture`
//! prints every line the receivers printed.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use parking_lot::{Mutex, MutexGuard};
use qsock_testbed::TestBed;

const PORT: &str = "5004";
/// The senders' frame rate (the scripts' default FPS).
const FPS: f64 = 25.0;
/// How many lines each receiver prints; the first ones are left out of the
/// checks, while the decoder waits for the first I-frame.
const SECONDS: usize = 8;
const WARM_UP: usize = 2;
/// The bottleneck, well below the senders' default 1000 kbit/s.
const BOTTLENECK: &str = "400kbit";

/// Runs take turns: two encoders on the machine's cores at once would
/// measure the CPU, not the link.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The scripts run what `target/release` holds: build it, once.
fn build_release() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repository())
            .args([
                "build",
                "--release",
                "-p",
                "gst-qsocksink",
                "-p",
                "qsock-receiver",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release failed");
    });
}

/// A fresh test bed, or None (after saying why) when not root.
fn bed() -> Option<TestBed> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: these tests build network namespaces and qdiscs, which needs root");
        return None;
    }
    build_release();
    Some(TestBed::new().unwrap_or_else(|err| panic!("cannot build the test bed: {err}")))
}

/// A process in a group of its own (the script, and what it runs), killed
/// with the group when dropped, also when the test fails.
struct Process {
    name: String,
    child: Child,
}

impl Process {
    fn spawn(name: &str, mut command: Command) -> Process {
        command.process_group(0).stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Process {
            name: name.to_owned(),
            child,
        }
    }

    fn group(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// Interrupts the group (gst-launch -e ends the stream on SIGINT) and
    /// waits for the script to exit; kills the group if it does not in time.
    fn interrupt(mut self) {
        let _ = killpg(self.group(), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGINT; killing it", self.name);
    }

    /// Still running? If not, what it wrote on standard error.
    fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait().unwrap() {
            None => Ok(()),
            Some(status) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                Err(format!("{} exited ({status}): {stderr}", self.name))
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = killpg(self.group(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The lines a reader thread takes from `pipe`, as they come.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// One receiver line, `key=value ...`.
#[derive(Debug)]
struct Second(HashMap<String, String>);

impl Second {
    fn parse(line: &str) -> Second {
        Second(
            line.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
        )
    }

    fn number(&self, key: &str) -> f64 {
        let value = self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.0));
        value
            .parse()
            .unwrap_or_else(|_| panic!("{key}={value} is not a number"))
    }

    fn lost_frames(&self) -> f64 {
        ["lost-I", "lost-P", "lost-B", "lost-unknown"]
            .iter()
            .map(|key| self.number(key))
            .sum()
    }
}

/// What one sender script and one receiver script did.
struct Run {
    sender: &'static str,
    receiver: &'static str,
    scheduler: &'static str,
    environment: &'static [(&'static str, &'static str)],
}

impl Run {
    /// Starts the receiver, waits until it listens, starts the sender, and
    /// returns the receiver's SECONDS lines and what the sender printed.
    fn go(&self, bed: &TestBed) -> (Vec<Second>, Vec<String>) {
        let pipelines = repository().join("pipelines");
        let mut receiver_command = bed.command_in_receiver(
            pipelines.join(self.receiver).to_str().unwrap(),
            [PORT, "--seconds", &SECONDS.to_string()],
        );
        receiver_command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut receiver = Process::spawn(self.receiver, receiver_command);
        let lines = lines_of(receiver.child.stdout.take().unwrap());
        let messages = lines_of(receiver.child.stderr.take().unwrap());
        loop {
            match messages.recv_timeout(Duration::from_secs(20)) {
                Ok(message) if message.starts_with("qsock-receive: listening") => break,
                Ok(message) => eprintln!("{}: {message}", self.receiver),
                Err(err) => panic!("{} never listened ({err})", self.receiver),
            }
        }

        let receiver_address = bed.receiver_v4().to_string();
        let mut sender_command = bed.command_in_sender(
            pipelines.join(self.sender).to_str().unwrap(),
            [receiver_address.as_str(), PORT, self.scheduler],
        );
        sender_command
            .envs(self.environment.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        println!(
            "{} {} {PORT} {} (environment {:?}) -> {} {PORT}",
            self.sender, receiver_address, self.scheduler, self.environment, self.receiver
        );
        let mut sender = Process::spawn(self.sender, sender_command);
        let printed = lines_of(sender.child.stdout.take().unwrap());

        let mut seconds = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(SECONDS as u64 + 30);
        while seconds.len() < SECONDS {
            let wait = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(wait.min(Duration::from_secs(1))) {
                Ok(line) => {
                    println!("  {line}");
                    seconds.push(Second::parse(&line));
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(err) => {
                    let why = receiver.check_running().err().unwrap_or_default();
                    panic!(
                        "{} stopped after {} lines ({err}) {why}",
                        self.receiver,
                        seconds.len()
                    );
                }
            }
            if let Err(why) = sender.check_running() {
                panic!("the sender stopped while the receiver ran: {why}");
            }
        }
        while let Ok(message) = messages.try_recv() {
            eprintln!("{}: {message}", self.receiver);
        }
        sender.interrupt();
        (seconds, printed.try_iter().collect())
    }
}

fn mean_fps(seconds: &[Second]) -> f64 {
    seconds
        .iter()
        .map(|second| second.number("fps"))
        .sum::<f64>()
        / seconds.len() as f64
}

/// After the warm-up: every second decodes frames and loses nothing, and
/// the decoder keeps the sender's frame rate on the whole. (Not each second:
/// on a busy machine mpeg2enc can fall behind for a moment and catch up in
/// the next second.)
fn assert_clear((seconds, _): &(Vec<Second>, Vec<String>)) {
    let after = &seconds[WARM_UP..];
    for second in after {
        assert!(
            second.number("fps") > 0.0,
            "decoding stalled: {:?}",
            second.0
        );
        assert_eq!(second.number("lost-packets"), 0.0, "{:?}", second.0);
        assert_eq!(second.lost_frames(), 0.0, "{:?}", second.0);
    }
    let fps = mean_fps(after);
    assert!(
        (fps - FPS).abs() <= 2.0,
        "decoded {fps} fps on a clear link, expected {FPS}"
    );
}

/// After the warm-up: frames are lost, and some of them typed (I or P) from
/// what arrived of them.
fn assert_losses_typed((seconds, _): &(Vec<Second>, Vec<String>)) {
    let after = &seconds[WARM_UP..];
    let total = |key: &str| after.iter().map(|second| second.number(key)).sum::<f64>();
    let lost: f64 = after.iter().map(Second::lost_frames).sum();
    assert!(
        total("lost-packets") > 0.0,
        "nothing lost behind {BOTTLENECK}"
    );
    assert!(lost > 0.0, "no frame lost behind {BOTTLENECK}");
    assert!(
        total("lost-I") + total("lost-P") > 0.0,
        "none of the {lost} lost frames was typed"
    );
    let fps: f64 =
        after.iter().map(|second| second.number("fps")).sum::<f64>() / after.len() as f64;
    assert!(fps < FPS - 1.0, "decoded {fps} fps behind {BOTTLENECK}");
}

/// A clear link: qsocksink on HTB, with a link rate far above the video's.
const CLEAR: &[(&str, &str)] = &[("LINK_RATE", "100mbit")];

/// Runs `sender` and `receiver` (scripts in pipelines/) across a clear link
/// and checks that nothing was lost.
fn on_a_clear_link(sender: &'static str, receiver: &'static str) {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    let run = Run {
        sender,
        receiver,
        scheduler: "htb",
        environment: CLEAR,
    };
    assert_clear(&run.go(&bed));
}

#[test]
fn h264_rtp_on_a_clear_link() {
    on_a_clear_link("h264-rtp-send.sh", "h264-rtp-receive.sh");
}

#[test]
fn mpeg2_rtp_on_a_clear_link() {
    on_a_clear_link("mpeg2-rtp-send.sh", "mpeg2-rtp-receive.sh");
}

#[test]
fn mpegts_udp_on_a_clear_link() {
    on_a_clear_link("mpegts-udp-send.sh", "mpegts-udp-receive.sh");
}

#[test]
fn adaptive_sender_on_a_clear_link() {
    on_a_clear_link("adaptive-send.sh", "h264-rtp-receive.sh");
}

/// Behind a TBF the `user` scheduler leaves in place (a kernel scheduler
/// would replace the TBF as the device's root qdisc).
#[test]
fn h264_rtp_behind_a_bottleneck_loses_typed_frames() {
    behind_a_bottleneck("h264-rtp-send.sh", "h264-rtp-receive.sh");
}

#[test]
fn mpegts_udp_behind_a_bottleneck_loses_typed_frames() {
    behind_a_bottleneck("mpegts-udp-send.sh", "mpegts-udp-receive.sh");
}

fn behind_a_bottleneck(sender: &'static str, receiver: &'static str) {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    let bed = bed.with_bottleneck(BOTTLENECK).unwrap();
    let run = Run {
        sender,
        receiver,
        scheduler: "user",
        environment: &[],
    };
    assert_losses_typed(&run.go(&bed));
}

/// The adaptive sender squeezed by the scheduler's own link rate: the sink
/// sees its frames queue and cuts x264enc's bitrate (its estimate is in the
/// qsocksink-stats messages adaptive-send.sh prints), and the stream keeps
/// its frame rate. The sink keeps probing upwards, so a frame may still be
/// lost now and then.
#[test]
fn adaptive_sender_cuts_its_bitrate_to_the_link() {
    let _turn = turn();
    let Some(bed) = bed() else { return };
    let run = Run {
        sender: "adaptive-send.sh",
        receiver: "h264-rtp-receive.sh",
        scheduler: "htb",
        environment: &[("LINK_RATE", "500kbit"), ("BITRATE", "1500")],
    };
    let (seconds, printed) = run.go(&bed);
    let estimate = printed
        .iter()
        .rev()
        .find_map(|line| {
            let (_, rest) = line.split_once("estimated-bitrate=(guint64)")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .expect("adaptive-send.sh printed no qsocksink-stats with estimated-bitrate");
    println!("  last estimated-bitrate: {estimate} bit/s");
    assert!(
        estimate < 1_000_000,
        "the estimate stayed at {estimate} bit/s on a 500 kbit/s link"
    );
    let fps = mean_fps(&seconds[SECONDS / 2..]);
    assert!(fps >= FPS - 3.0, "decoded {fps} fps once adapted");
}

/// The last `key=(type)value` of `key` that `lines` (gst-launch-1.0 -m
/// output) show, as a number.
fn last_field(lines: &[String], key: &str) -> Option<u64> {
    let prefix = format!("{key}=(guint64)");
    lines.iter().rev().find_map(|line| {
        let (_, rest) = line.split_once(&prefix)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Frames decoded so far, from fpsdisplaysink's `rendered: N, ...` line.
fn rendered(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("rendered: ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// adaptive-send.sh to a stock RTCP receiver script (`receiver`) across the
/// test bed, the sender with `environment` added: the receiver decodes, and
/// the sink reads the receiver's reports (adaptive-send.sh prints its
/// qsocksink-stats). Returns the sink's last stats lines.
fn with_a_stock_rtcp_receiver(
    receiver: &'static str,
    environment: &[(&str, &str)],
) -> Option<Vec<String>> {
    /// Frames the receiver must decode, and reports the sink must read.
    const FRAMES: u64 = 100;
    const REPORTS: u64 = 3;
    let _turn = turn();
    let bed = bed()?;
    let pipelines = repository().join("pipelines");
    let sender_address = bed.sender_v4().to_string();
    let mut receiver_command = bed.command_in_receiver(
        pipelines.join(receiver).to_str().unwrap(),
        [PORT, sender_address.as_str()],
    );
    receiver_command
        .env("VIDEO_SINK", "fakesink")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut receiving = Process::spawn(receiver, receiver_command);
    let received = lines_of(receiving.child.stdout.take().unwrap());
    loop {
        match received.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("Setting pipeline to PLAYING") => break,
            Ok(_) => {}
            Err(err) => {
                let why = receiving.check_running().err().unwrap_or_default();
                panic!("{receiver} never played ({err}) {why}");
            }
        }
    }

    let receiver_address = bed.receiver_v4().to_string();
    let mut sender_command = bed.command_in_sender(
        pipelines.join("adaptive-send.sh").to_str().unwrap(),
        [receiver_address.as_str(), PORT, "htb"],
    );
    sender_command
        .envs(CLEAR.iter().copied())
        .envs(environment.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!("adaptive-send.sh {receiver_address} {PORT} htb {environment:?} -> {receiver} {PORT} {sender_address}");
    let mut sender = Process::spawn("adaptive-send.sh", sender_command);
    let printed = lines_of(sender.child.stdout.take().unwrap());

    let mut frames = 0;
    let mut stats = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while frames < FRAMES || last_field(&stats, "receiver-reports").unwrap_or(0) < REPORTS {
        for line in received.try_iter() {
            frames = rendered(&line).unwrap_or(frames);
        }
        stats.extend(
            printed
                .try_iter()
                .filter(|line| line.contains("qsocksink-stats")),
        );
        if let Err(why) = receiving.check_running() {
            panic!("the receiver stopped: {why}");
        }
        if let Err(why) = sender.check_running() {
            panic!("the sender stopped: {why}");
        }
        assert!(
            Instant::now() < deadline,
            "in 40 s {receiver} decoded {frames} frames (expected {FRAMES}) and the sink read \
             {:?} receiver reports (expected {REPORTS})",
            last_field(&stats, "receiver-reports")
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
    sender.interrupt();
    let fields = [
        "receiver-reports",
        "round-trip-us",
        "estimated-bitrate",
        "rtcp-ignored-malformed",
        "rtcp-ignored-other-source",
        "rtcp-ignored-other-address",
        "rtcp-ignored-flood",
    ]
    .map(|key| format!("{key}={:?}", last_field(&stats, key)));
    println!(
        "  {receiver} decoded {frames} frames; the sink: {}",
        fields.join(" ")
    );
    for refusal in ["malformed", "other-address", "flood"] {
        let key = format!("rtcp-ignored-{refusal}");
        assert_eq!(
            last_field(&stats, &key),
            Some(0),
            "the sink refused the stock receiver's RTCP ({key})"
        );
    }
    // Before the stream's first packet the sink cannot tell a report about
    // it: a receiver reporting every 500 ms sends one or two then. After
    // it, rtpsession's minimal compound packets (an RR without blocks and
    // its SDES, tens a second beside TWCC) are no refusal.
    let other_source = last_field(&stats, "rtcp-ignored-other-source").unwrap_or(0);
    assert!(
        other_source <= 4,
        "the sink refused {other_source} of the stock receiver's RTCP datagrams as about \
         another source"
    );
    assert!(
        last_field(&stats, "round-trip-us").is_some(),
        "no round-trip-us: the receiver's reports did not echo the sink's sender reports"
    );
    Some(stats)
}

/// A stock receiver sending RTCP (h264-rtp-receive-rtcp.sh): the sink reads
/// its reports and measures the round trip from them.
#[test]
fn adaptive_sender_reads_a_stock_receivers_rtcp() {
    with_a_stock_rtcp_receiver("h264-rtp-receive-rtcp.sh", &[("PATTERN", "snow")]);
}

/// The same with transport-wide congestion control feedback: the sender
/// adds the header extension (TWCC=1), and the receiver's reports still
/// come through beside the per-packet feedback.
#[test]
fn adaptive_sender_with_twcc_reads_a_stock_receivers_rtcp() {
    with_a_stock_rtcp_receiver(
        "h264-rtp-receive-twcc.sh",
        &[("PATTERN", "snow"), ("TWCC", "1")],
    );
}
