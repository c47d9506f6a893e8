//! The `dwcs` backend on a kernel without sch_dwcs, in network namespaces made
//! for each test: qsockinit says what is missing and how to get it, `auto`
//! passes over dwcs to htb and says why (qsockctl/tests/without_dwcs.rs
//! checks that qsockctl prints the same).
//! (With the module loaded, tests/dwcs_vm.rs applies instead.)
//!
//! Needs root (namespaces, qdiscs). Without it the tests fail, saying so,
//! unless `QSOCK_SKIP_PRIVILEGED=1`, which turns them into skips.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod support;

use qsock::{qsockinit, report, ErrorKind, InitParams, Rate, SchedulerName};
use qsock_testbed::TestBed;

fn bed() -> Option<TestBed> {
    support::bed_without_dwcs("the dwcs netns tests")
}

fn ten_mbit() -> Rate {
    Rate::from_bits_per_second(10_000_000)
}

#[test]
fn dwcs_without_the_module_says_how_to_get_it() {
    let Some(bed) = bed() else { return };
    let init = InitParams::new(bed.sender_dev(), SchedulerName::Dwcs).with_link_rate(ten_mbit());
    let err = bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
    assert_eq!(err.errno(), libc::EOPNOTSUPP);
    support::assert_says_how_to_get_dwcs(&err.to_string());
    // Nothing was left behind: the kernel's default is still the root.
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap_err();
    assert_eq!(shown.kind(), ErrorKind::NotSupported, "{shown}");
}

#[test]
fn auto_passes_over_dwcs_to_htb_and_says_why() {
    let Some(bed) = bed() else { return };
    let init = InitParams::new(bed.sender_dev(), SchedulerName::Auto).with_link_rate(ten_mbit());
    let chosen = bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    assert_eq!(chosen.scheduler, SchedulerName::Htb, "{chosen:?}");
    assert!(chosen.installed_now);
    assert!(
        chosen.reason.contains("dwcs passed over"),
        "{}",
        chosen.reason
    );
    support::assert_says_how_to_get_dwcs(&chosen.reason);
    let shown = bed
        .run_in_sender(|| report(bed.sender_dev()))
        .unwrap()
        .unwrap();
    assert_eq!(shown.scheduler, Some(SchedulerName::Htb));
}
