//! qsockctl refuses bad input with exit status 1 and one line that says what
//! was wrong and what to do; every subcommand has help.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

const QSOCKCTL: &str = env!("CARGO_BIN_EXE_qsockctl");

fn qsockctl(args: &[&str]) -> Output {
    Command::new(QSOCKCTL)
        .args(args)
        .output()
        .expect("run qsockctl")
}

/// Exit status 1, nothing on standard output, and exactly one line on
/// standard error that contains every one of `needles`.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let output = qsockctl(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "qsockctl {args:?}: status {:?}, stderr {stderr}",
        output.status
    );
    assert!(
        output.stdout.is_empty(),
        "qsockctl {args:?} printed to stdout"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "qsockctl {args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("qsockctl: "), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "qsockctl {args:?}: {stderr:?} does not say {needle:?}"
        );
    }
}

#[test]
fn unknown_scheduler() {
    assert_refused(
        &["init", "--dev", "lo", "--scheduler", "cbq"],
        &[
            "unknown scheduler \"cbq\"",
            "choose one of dwcs, htb, user or auto",
        ],
    );
}

#[test]
fn malformed_rate() {
    for (rate, advice) in [
        ("10furlongs", "e.g. 10mbit"),
        ("fast", "e.g. 10mbit"),
        ("-5mbit", "e.g. 10mbit"),
        ("0bit", "at least 8bit"),
    ] {
        assert_refused(
            &[
                "init",
                "--dev",
                "lo",
                "--scheduler",
                "htb",
                &format!("--rate={rate}"),
            ],
            &[&format!("{rate:?}"), advice],
        );
    }
}

/// `qsockctl init` of htb on a device that does not exist.
const INIT_HTB_ON_NO_DEVICE: &[&str] = &["init", "--dev", "nosuchdev0", "--scheduler", "htb"];

/// Rates the kernel cannot take: HTB refuses less than a byte per second
/// with a bare EINVAL, and 2^64 bit/s does not fit its 64-bit rates. The
/// device does not exist, so nothing is installed whatever happens.
#[test]
fn rates_outside_what_the_kernel_takes() {
    for rate in [
        "1bit",
        "7bit",
        "0.5bps",
        "18446744073709551616",
        "18446744073709551616bit",
    ] {
        assert_refused(
            &[INIT_HTB_ON_NO_DEVICE, &[&format!("--rate={rate}")]].concat(),
            &[
                &format!("the rate {rate:?} is out of range"),
                "at least 8bit",
                "at most 18446744073709551615bit",
            ],
        );
    }
    // The bounds themselves pass the rate check and reach the device's.
    for rate in ["8bit", "18446744073709551615bit"] {
        assert_refused(
            &[INIT_HTB_ON_NO_DEVICE, &["--rate", rate]].concat(),
            &["no network device \"nosuchdev0\""],
        );
    }
}

/// The user scheduler lives in the application's process: installing it
/// from qsockctl, whose process ends at once, would do nothing.
#[test]
fn init_of_the_user_scheduler_is_refused_saying_where_it_runs() {
    assert_refused(
        &["init", "--dev", "lo", "--scheduler", "user"],
        &[
            "runs inside each application",
            "nothing for qsockctl to install",
            "qsocksink scheduler=user",
            "--scheduler dwcs or htb",
        ],
    );
}

/// Without a command qsockctl prints its help, as `--help` does, not a
/// usage error folded into one line.
#[test]
fn no_arguments_print_the_help() {
    let output = qsockctl(&[]);
    assert_eq!(output.status.code(), Some(1), "{:?}", output.status);
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let help = String::from_utf8_lossy(&qsockctl(&["--help"]).stdout).into_owned();
    let short_help = String::from_utf8_lossy(&qsockctl(&["-h"]).stdout).into_owned();
    assert!(stderr.lines().count() > 5, "{stderr}");
    assert!(stderr.contains("Usage: qsockctl <COMMAND>"), "{stderr}");
    assert!(!stderr.contains(", init"), "folded: {stderr}");
    for command in ["init", "show", "prune", "reset"] {
        assert!(
            stderr
                .lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command} missing: {stderr}"
        );
    }
    assert!(
        stderr.trim() == short_help.trim() || stderr.trim() == help.trim(),
        "not the help: {stderr}"
    );
}

#[test]
fn missing_device() {
    for args in [
        &["init", "--scheduler", "htb"][..],
        &["init", "--dev", "", "--scheduler", "htb"],
        &["show"],
        &["prune"],
        &["reset"],
    ] {
        assert_refused(args, &["no device given", "--dev", "ip link"]);
    }
}

#[test]
fn unknown_device() {
    for args in [
        &["init", "--dev", "nosuchdev0", "--scheduler", "htb"][..],
        &["show", "--dev", "nosuchdev0"],
        &["prune", "--dev", "nosuchdev0"],
        &["reset", "--dev", "nosuchdev0"],
    ] {
        assert_refused(args, &["no network device \"nosuchdev0\"", "ip link"]);
    }
    assert_refused(
        &["init", "--dev", "a/b", "--scheduler", "htb"],
        &["not a valid interface name", "at most 15 characters"],
    );
}

#[test]
fn zero_limit() {
    assert_refused(
        &["init", "--dev", "lo", "--scheduler", "htb", "--limit", "0"],
        &["limit of 0", "at least 1"],
    );
    assert_refused(
        &["init", "--dev", "lo", "--limit", "many"],
        &["invalid value 'many'", "--limit", "qsockctl --help"],
    );
}

#[test]
fn usage_errors_are_one_line() {
    assert_refused(
        &["frobnicate"],
        &["unrecognized subcommand", "qsockctl --help"],
    );
    assert_refused(
        &["init", "--dev", "lo", "--speed", "1"],
        &["unexpected argument '--speed'", "qsockctl --help"],
    );
}

#[test]
fn help_for_every_subcommand() {
    for (args, needles) in [
        (
            &["--help"][..],
            &["init", "show", "prune", "reset", "qsockinit"][..],
        ),
        (
            &["init", "--help"],
            &["--dev", "--scheduler", "--rate", "--limit", "CAP_NET_ADMIN"],
        ),
        (&["show", "--help"], &["--dev", "--json", "stale"]),
        (&["prune", "--help"], &["--dev", "live processes"]),
        (
            &["reset", "--help"],
            &["--dev", "default queueing discipline"],
        ),
        (&["help", "init"], &["--scheduler"]),
    ] {
        let output = qsockctl(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "qsockctl {args:?}: {:?}",
            output.status
        );
        for needle in needles {
            assert!(
                stdout.contains(needle),
                "qsockctl {args:?} lacks {needle:?}: {stdout}"
            );
        }
    }
    let output = qsockctl(&["--version"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("qsockctl "));
}

/// Without CAP_NET_ADMIN a kernel scheduler is refused with a message that
/// names the capability and the user fallback. Needs the htb backend.
#[test]
fn htb_without_privilege_names_the_capability_and_the_fallback() {
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let mut command = if root {
        let mut setpriv = Command::new("setpriv");
        setpriv.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            QSOCKCTL,
        ]);
        setpriv
    } else {
        Command::new(QSOCKCTL)
    };
    let output = command
        .args([
            "init",
            "--dev",
            "lo",
            "--scheduler",
            "htb",
            "--rate",
            "100mbit",
        ])
        .output()
        .expect("run qsockctl through setpriv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
    assert!(stderr.contains("`user` scheduler"), "{stderr}");
}
