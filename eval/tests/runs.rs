//! `qsock-eval` runs, shortened, as the evaluation runs them. Figure 6 on
//! htb for 10 s: every lane (qsocksink on htb, udpsink in an
//! administrator's HTB port classes, srtsink) must set up, carry live video
//! to its receivers and come out in the CSV, the markdown section and the
//! plots. And a run stopped by Ctrl-C must leave no test bed behind. Both
//! need root for the namespaces and qdiscs; without it, the first checks
//! that the run says so and the second is skipped.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn eval() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qsock-eval"))
}

#[test]
fn every_lane_of_figure_6_carries_its_streams() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let output = eval()
        .arg("--out")
        .arg(out.path())
        .args(["fig6", "--seconds", "10", "--schedulers", "htb"])
        .output()
        .expect("qsock-eval runs");
    if !common::ran_as_root(&output) {
        return;
    }

    // Decodable frames per stream over the second interval (5 s to 10 s).
    let mut reader = csv::Reader::from_path(out.path().join("fig6-host.csv")).expect("the CSV");
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (stream, start, decodable) = (column("stream"), column("start_s"), column("decodable_fps"));
    let mut settled: BTreeMap<String, f64> = BTreeMap::new();
    for record in reader.records() {
        let record = record.expect("a well-formed row");
        if record[start].parse::<f64>().expect("a start") >= 5.0 {
            let fps: f64 = record[decodable].parse().expect("a rate");
            settled.insert(record[stream].to_string(), fps);
        }
    }
    let expected = [
        "20 fps (qsocksink htb)",
        "15 fps (qsocksink htb)",
        "unmanaged 20 fps (qsocksink htb lane)",
        "20 fps (udpsink + admin HTB class)",
        "15 fps (udpsink + admin HTB class)",
        "unmanaged 20 fps (udpsink + admin HTB class lane)",
        "20 fps (srtsink)",
        "15 fps (srtsink)",
        "unmanaged 20 fps (srtsink lane)",
    ];
    assert_eq!(settled.len(), expected.len(), "{settled:?}");
    for label in expected {
        let nominal: f64 = if label.contains("15 fps") { 15.0 } else { 20.0 };
        let fps = settled.get(label).copied().unwrap_or_default();
        // Every lane carries its video: a lane that did not set up, or a
        // sink that sends nothing, shows here as a rate near 0.
        assert!(
            fps >= nominal / 2.0,
            "{label}: {fps} decodable fps of {nominal} while bulk TCP ran: {settled:?}"
        );
    }

    let section = std::fs::read_to_string(out.path().join("fig6-host.md")).expect("the section");
    for label in expected {
        assert!(
            section.contains(&format!("| {label} |")),
            "{label} missing from {section}"
        );
    }
    for png in ["fig6-host.png", "fig6-host-jitter.png"] {
        let bytes = std::fs::read(out.path().join(png)).expect("the plot");
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
    }
}

#[test]
fn an_interrupted_run_removes_its_test_beds() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the test beds need root");
        return;
    }
    let out = tempfile::tempdir().expect("a temporary folder");
    let mut child = eval()
        .arg("--out")
        .arg(out.path())
        .args(["fig4", "--seconds", "45", "--schedulers", "htb"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qsock-eval starts");
    let pid = child.id();
    // Both pipes are read to the end, so that the run never meets a full or
    // closed pipe, and its errors can be shown.
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    // The run says so once every bed is set up.
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let started = stdout
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("test beds up"));
    let stdout = std::thread::spawn(move || stdout.map_while(Result::ok).count());
    assert!(
        started,
        "qsock-eval never started its lanes: {}",
        stderr.join().unwrap_or_default()
    );
    let beds = || qsock_testbed::namespaces_of(pid);
    assert!(
        beds().len() >= 2,
        "the running lanes have namespaces of their own"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("SIGINT");
    let status = child.wait().expect("qsock-eval exits");
    stdout.join().expect("stdout is read");
    let stderr = stderr.join().expect("stderr is read");
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits with 130 ({status}); it said: {stderr}"
    );
    assert!(
        !stderr.contains("could not delete"),
        "the run and its handler both reported on the namespaces: {stderr}"
    );
    assert_eq!(beds(), Vec::<String>::new(), "namespaces outlived the run");
}
