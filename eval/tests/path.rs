//! `qsock-eval path`, shortened: condition (c) for 15 s with udpsink and
//! GCC. The third host's bulk TCP must cross the router, rtpgccbwe's
//! estimate must reach the encoder and fall below the router's rate, GCC
//! must decode what the fixed-rate udpsink cannot, and the CSVs, the plot
//! and the section must come out. Needs root; without it, the run must say
//! so.

mod common;

use std::collections::BTreeMap;

#[test]
fn the_third_hosts_traffic_crosses_the_router_and_gcc_adapts_to_it() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_qsock-eval"))
        .arg("--out")
        .arg(out.path())
        .args(["path", "--seconds", "15", "--conditions", "c"])
        .args(["--contenders", "udpsink,gcc"])
        .output()
        .expect("qsock-eval runs");
    if !common::ran_as_root(&output) {
        return;
    }

    let summary = out.path().join("path-host-summary.csv");
    let mut reader = csv::Reader::from_path(&summary).expect("the summary CSV");
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (contender, decodable, ratio, cross) = (
        column("contender"),
        column("decodable_fps"),
        column("rate_over_router"),
        column("cross_mbit"),
    );
    let mut runs: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for record in reader.records() {
        let record = record.expect("a well-formed row");
        let number = |at: usize| record[at].parse::<f64>().expect("a number");
        runs.insert(
            record[contender].to_string(),
            (number(decodable), number(ratio), number(cross)),
        );
    }
    let (udp, gcc) = (runs["udpsink"], runs["GCC (rtpgccbwe)"]);
    for (name, run) in [("udpsink", udp), ("GCC", gcc)] {
        assert!(
            run.2 > 0.2,
            "{name}: the third host's bulk TCP delivered only {} Mbit/s through the router",
            run.2
        );
    }
    assert!(
        (udp.1 - 2.5 / 1.5).abs() < 0.01,
        "udpsink's encoder should hold 2.5 Mbit/s against the router's 1.5: {udp:?}"
    );
    assert!(
        gcc.1 < 1.0,
        "rtpgccbwe's estimate stayed above the router's rate under bulk TCP: {gcc:?}"
    );
    assert!(
        gcc.0 > udp.0 + 5.0,
        "GCC should decode more than a 2.5 Mbit/s udpsink through 1.5 Mbit/s: {runs:?}"
    );

    let section = std::fs::read_to_string(out.path().join("path-host.md")).expect("the section");
    for label in ["| c | udpsink |", "| c | GCC (rtpgccbwe) |"] {
        assert!(section.contains(label), "{label} missing from {section}");
    }
    let png = std::fs::read(out.path().join("path-host-c.png")).expect("the plot");
    assert!(png.starts_with(b"\x89PNG"), "path-host-c.png is not a PNG");
    assert!(out.path().join("path-host.csv").exists());
}
