//! qsockctl on a kernel without sch_dwcs, in network namespaces made for
//! each test: `init --scheduler dwcs` says what is missing and how to get it,
//! as qsockinit does (qsock-core/tests/dwcs_netns.rs), and `init` without a
//! scheduler installs htb and says why dwcs was passed over.
//!
//! Needs root (namespaces, qdiscs). Without it the tests fail, saying so,
//! unless `QSOCK_SKIP_PRIVILEGED=1`, which turns them into skips.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

// The integration-test helpers of qsock-core, shared rather than copied.
#[path = "../../qsock-core/tests/support/mod.rs"]
mod support;

use support::assert_says_how_to_get_dwcs;

#[test]
fn qsockctl_init_dwcs_prints_what_is_missing() {
    let Some(bed) = support::bed_without_dwcs("the qsockctl dwcs netns tests") else {
        return;
    };
    let output = bed
        .command_in_sender(
            env!("CARGO_BIN_EXE_qsockctl"),
            [
                "init",
                "--dev",
                bed.sender_dev(),
                "--scheduler",
                "dwcs",
                "--rate",
                "10mbit",
                "--resolution",
                "500us",
            ],
        )
        .output()
        .expect("run qsockctl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("qsockctl: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_says_how_to_get_dwcs(&stderr);

    let output = bed
        .command_in_sender(
            env!("CARGO_BIN_EXE_qsockctl"),
            ["init", "--dev", bed.sender_dev(), "--rate", "10mbit"],
        )
        .output()
        .expect("run qsockctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("htb installed"), "{stdout}");
    assert!(stdout.contains("dwcs passed over"), "{stdout}");

    let output = bed
        .command_in_sender(
            env!("CARGO_BIN_EXE_qsockctl"),
            ["show", "--dev", bed.sender_dev()],
        )
        .output()
        .expect("run qsockctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("scheduler htb"), "{stdout}");
}
