//! qsockctl reports what happened on a device, and qsock keeps track of what
//! it owns there: a class whose process was killed is marked stale, removed
//! by `qsockctl prune` and by the next qsocket, and counts no more against
//! the link; a stream the link cannot also hold is refused; a root qdisc
//! that has qsock's handle but that qsock did not install is neither
//! adopted nor removed. The killed owners are real processes: this test
//! binary run again in the sender's namespace, attaching a stream and
//! waiting, then sent SIGKILL.
//!
//! Needs root (namespaces, qdiscs). Without it the tests fail, saying so,
//! unless `QSOCK_SKIP_PRIVILEGED=1`, which turns them into skips.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

// The integration-test helpers of qsock-core, shared rather than copied.
#[path = "../../qsock-core/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::time::Duration;

use qsock::{qsockinit, ErrorKind, InitParams, QSocket, QosParams, SchedulerName, StreamParams};
use qsock_testbed::{assert_mentions, TestBed};
use socket2::{Domain, Protocol, Type};
use support::{mbit, tc_show, Reaped};

const QSOCKCTL: &str = env!("CARGO_BIN_EXE_qsockctl");
/// Set in the environment of the child that attaches and waits: its device.
const CHILD_DEVICE: &str = "QSOCK_OWNERSHIP_CHILD_DEVICE";

fn bed() -> Option<TestBed> {
    support::privileged_bed("the ownership tests")
}

/// 938 bytes of payload (1000 on the wire) every 2.5 ms: 3.2 Mbit/s, the
/// class of the killed pipeline.
fn stream_of_3_2_mbit() -> StreamParams {
    StreamParams::periodic(Duration::from_micros(2500), 0, 0).with_packet_size(938)
}

fn install_htb(bed: &TestBed, rate_mbit: u64) {
    let init =
        InitParams::new(bed.sender_dev(), SchedulerName::Htb).with_link_rate(mbit(rate_mbit));
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
}

/// `qsockctl ARGS` in the sender's namespace.
fn qsockctl(bed: &TestBed, args: &[&str]) -> Output {
    bed.command_in_sender(QSOCKCTL, args)
        .output()
        .expect("run qsockctl")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "qsockctl failed: {:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit status 1 and a standard error that says every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{stderr:?} does not say {needle:?}"
        );
    }
}

/// The class a qsocket's packets go to, as `tc` prints it (`7173:2`).
fn class_of(socket: &QSocket) -> String {
    let priority = socket.socket().priority().unwrap();
    format!("{:x}:{:x}", priority >> 16, priority & 0xffff)
}

/// A stream of another process: this test binary again, in the sender's
/// namespace, which attaches a 3.2 Mbit/s stream and waits.
struct Owner {
    child: Reaped,
    class: String,
}

impl Owner {
    fn start(bed: &TestBed) -> Owner {
        let exe = std::env::current_exe().unwrap();
        let mut child = bed
            .command_in_sender(
                exe.to_str().unwrap(),
                [
                    "--exact",
                    "attach_a_stream_and_wait",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ],
            )
            .env(CHILD_DEVICE, bed.sender_dev())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the owner process");
        let stdout = child.stdout.take().unwrap();
        let child = Reaped(child);
        let mut lines = BufReader::new(stdout).lines();
        let class = loop {
            let line = lines
                .next()
                .expect("the owner process ended before it attached")
                .unwrap();
            // The harness starts the line with the test's name.
            if let Some((_, class)) = line.split_once("attached ") {
                break class.trim().to_owned();
            }
        };
        Owner { child, class }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// `kill -9`, and waits until it is gone.
    fn kill(mut self) -> String {
        self.child.0.kill().unwrap();
        let status = self.child.0.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        self.class.clone()
    }
}

/// Not a test of its own: the owner process of [`Owner::start`].
#[test]
#[ignore = "run by the ownership tests as the process they kill"]
fn attach_a_stream_and_wait() {
    let Ok(device) = std::env::var(CHILD_DEVICE) else {
        return;
    };
    let params = QosParams::new(device, SchedulerName::Htb, stream_of_3_2_mbit());
    let socket =
        QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), &params).expect("attach");
    println!("attached {}", class_of(&socket));
    // Until the test kills this process (or ends, closing the pipe).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn has_class(bed: &TestBed, class: &str) -> bool {
    tc_show(bed, "class").contains(&format!("class htb {class} "))
}

#[test]
fn a_killed_senders_class_is_marked_stale_and_pruned() {
    let Some(bed) = bed() else { return };
    install_htb(&bed, 20);
    let live = Owner::start(&bed);
    let doomed = Owner::start(&bed);
    let doomed_pid = doomed.pid();
    let class = doomed.kill();
    assert!(has_class(&bed, &class), "the kernel kept no class {class}");

    let shown = stdout_of(&qsockctl(&bed, &["show", "--dev", bed.sender_dev()]));
    let line_of = |class: &str| {
        shown
            .lines()
            .find(|line| line.starts_with(&format!("stream {class} ")))
            .unwrap_or_else(|| panic!("no stream {class} in {shown}"))
            .to_owned()
    };
    let stale = line_of(&class);
    assert!(stale.contains("STALE"), "{stale}");
    assert!(stale.contains(&format!("pid {doomed_pid} ")), "{stale}");
    let alive = line_of(&live.class);
    assert!(!alive.contains("STALE"), "{alive}");
    assert!(alive.contains(&format!("pid {} ", live.pid())), "{alive}");
    assert!(shown.contains("qsockctl prune --dev"), "{shown}");
    let json = stdout_of(&qsockctl(
        &bed,
        &["show", "--dev", bed.sender_dev(), "--json"],
    ));
    assert!(json.contains("\"stale\": true"), "{json}");

    let pruned = stdout_of(&qsockctl(&bed, &["prune", "--dev", bed.sender_dev()]));
    assert!(
        pruned.contains(&format!("removed stream {class} ")),
        "{pruned}"
    );
    assert!(pruned.contains(&format!("pid {doomed_pid} ")), "{pruned}");
    assert!(!has_class(&bed, &class), "{class} is still there");
    assert!(has_class(&bed, &live.class), "a live stream was pruned");
    let again = stdout_of(&qsockctl(&bed, &["prune", "--dev", bed.sender_dev()]));
    assert!(again.contains("nothing to remove"), "{again}");
}

/// The case: killed senders' classes promised more than the root
/// has, and new streams were still admitted. Now the next qsocket removes
/// them first, and the link is reckoned with the live streams only.
#[test]
fn the_next_qsocket_reclaims_killed_classes_and_admission_holds_the_link() {
    let Some(bed) = bed() else { return };
    install_htb(&bed, 10);
    let killed: Vec<String> = (0..3).map(|_| Owner::start(&bed).kill()).collect();
    for class in &killed {
        assert!(has_class(&bed, class), "no class {class}");
    }
    let params = QosParams::new(bed.sender_dev(), SchedulerName::Htb, stream_of_3_2_mbit());
    let attach = || {
        bed.run_in_sender(|| QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), &params))
            .unwrap()
    };
    // 3 x 3.2 Mbit/s fit in 10 Mbit/s beside best effort's 100 kbit/s, once
    // the killed streams' 9.6 Mbit/s are given back.
    let live: Vec<QSocket> = (0..3).map(|_| attach().expect("admitted")).collect();
    let classes = tc_show(&bed, "class");
    let stream_classes = classes
        .lines()
        .filter(|line| line.starts_with("class htb 7173:") && line.contains("parent 7173:1 "))
        .filter(|line| !line.starts_with("class htb 7173:fffe "))
        .count();
    assert_eq!(stream_classes, 3, "{classes}");
    for socket in &live {
        assert!(has_class(&bed, &class_of(socket)));
    }
    let err = attach().expect_err("a fourth 3.2 Mbit/s stream on 10 Mbit/s");
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_mentions(
        err.message(),
        &[
            "cannot admit a stream of 3200kbit",
            "3 live stream(s) hold 9600kbit",
            "300kbit is left",
            "raise the link rate",
        ],
    );
    // Nothing was left behind by the refusal.
    let after = tc_show(&bed, "class");
    assert_eq!(
        after.matches("class htb").count(),
        classes.matches("class htb").count(),
        "{after}"
    );
    for socket in live {
        socket.close().unwrap();
    }
    attach()
        .expect("admitted once the others closed")
        .close()
        .unwrap();
}

/// qchange may not grow a stream past what the link has left either.
#[test]
fn a_change_the_link_cannot_hold_is_refused_and_the_stream_kept() {
    let Some(bed) = bed() else { return };
    install_htb(&bed, 10);
    let params = QosParams::new(bed.sender_dev(), SchedulerName::Htb, stream_of_3_2_mbit());
    let (mut first, _second) = bed
        .run_in_sender(|| {
            let open = || QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), &params);
            (open().unwrap(), open().unwrap())
        })
        .unwrap();
    // 1000 bytes every 1 ms: 8 Mbit/s, beside the other's 3.2.
    let faster = QosParams::new(
        bed.sender_dev(),
        SchedulerName::Htb,
        StreamParams::periodic(Duration::from_millis(1), 0, 0).with_packet_size(938),
    );
    let err = bed
        .run_in_sender(|| first.change(&faster))
        .unwrap()
        .expect_err("8 + 3.2 Mbit/s on 10 Mbit/s");
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.message().contains("6700kbit is left"), "{err}");
    let classes = tc_show(&bed, "class");
    assert!(classes.contains("rate 3200Kbit ceil 3200Kbit"), "{classes}");
    assert!(!classes.contains("rate 8Mbit"), "{classes}");
}

#[test]
fn a_foreign_qdisc_with_qsocks_handle_is_neither_removed_nor_adopted() {
    let Some(bed) = bed() else { return };
    let dev = bed.sender_dev();
    for default in ["10", "fffe"] {
        let _ = bed.tc_in_sender(&["qdisc", "del", "dev", dev, "root"]);
        bed.tc_in_sender(&[
            "qdisc", "add", "dev", dev, "root", "handle", "7173:", "htb", "default", default,
        ])
        .unwrap();
        let why = if default == "fffe" {
            "no record of installing it"
        } else {
            "qsock did not install it"
        };
        let fix = format!("tc qdisc del dev {dev} root");
        assert_refused(
            &qsockctl(&bed, &["reset", "--dev", dev]),
            &["has qsock's handle", why, &fix],
        );
        assert_refused(
            &qsockctl(
                &bed,
                &[
                    "init",
                    "--dev",
                    dev,
                    "--scheduler",
                    "htb",
                    "--rate",
                    "10mbit",
                ],
            ),
            &["has qsock's handle", why, &fix],
        );
        assert_refused(
            &qsockctl(&bed, &["show", "--dev", dev]),
            &["has qsock's handle", why],
        );
        let qdiscs = tc_show(&bed, "qdisc");
        assert!(qdiscs.contains("qdisc htb 7173: root"), "{qdiscs}");
        assert!(
            qdiscs.contains(&format!(
                "default {:#x}",
                u32::from_str_radix(default, 16).unwrap()
            )),
            "{qdiscs}"
        );
        assert!(
            !tc_show(&bed, "class").contains("7173:1"),
            "classes were added"
        );
    }
    bed.tc_in_sender(&["qdisc", "del", "dev", dev, "root"])
        .unwrap();
    // qsock's own, replaced by hand with another of the same handle.
    install_htb(&bed, 10);
    bed.tc_in_sender(&["qdisc", "del", "dev", dev, "root"])
        .unwrap();
    bed.tc_in_sender(&[
        "qdisc", "add", "dev", dev, "root", "handle", "7173:", "htb", "default", "10",
    ])
    .unwrap();
    assert_refused(
        &qsockctl(&bed, &["reset", "--dev", dev]),
        &["its default class is 10, qsock's is fffe"],
    );
    assert!(tc_show(&bed, "qdisc").contains("default 0x10"));
    bed.tc_in_sender(&["qdisc", "del", "dev", dev, "root"])
        .unwrap();
    install_htb(&bed, 10);
    let removed = stdout_of(&qsockctl(&bed, &["reset", "--dev", dev]));
    assert!(
        removed.contains("qsock's htb scheduler removed"),
        "{removed}"
    );
    assert!(!tc_show(&bed, "qdisc").contains("7173:"));
}

#[test]
fn reset_says_when_there_was_nothing_to_remove() {
    let Some(bed) = bed() else { return };
    let dev = bed.sender_dev();
    let output = stdout_of(&qsockctl(&bed, &["reset", "--dev", dev]));
    assert!(
        output.contains("there was no qsock scheduler to remove"),
        "{output}"
    );
    assert!(!output.contains("removed ("), "{output}");
    bed.tc_in_sender(&[
        "qdisc", "replace", "dev", dev, "root", "handle", "1:", "tbf", "rate", "10mbit", "burst",
        "32kbit", "latency", "100ms",
    ])
    .unwrap();
    let output = stdout_of(&qsockctl(&bed, &["reset", "--dev", dev]));
    assert!(
        output.contains("no qsock scheduler to remove (root qdisc tbf 1:)"),
        "{output}"
    );
    assert!(tc_show(&bed, "qdisc").contains("qdisc tbf 1: root"));
}

#[test]
fn init_of_another_scheduler_names_qsocks_own_and_how_to_switch() {
    let Some(bed) = bed() else { return };
    let dev = bed.sender_dev();
    install_htb(&bed, 10);
    let reset = format!("qsockctl reset --dev {dev}");
    let init = format!("qsockctl init --dev {dev} --scheduler dwcs");
    let output = qsockctl(
        &bed,
        &[
            "init",
            "--dev",
            dev,
            "--scheduler",
            "dwcs",
            "--rate",
            "10mbit",
        ],
    );
    assert_refused(
        &output,
        &["already has qsock's htb scheduler", &reset, &init],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("on purpose"), "{stderr}");
}
