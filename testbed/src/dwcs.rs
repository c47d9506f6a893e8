//! Whether a test of the sch_dwcs kernel scheduler can run here. The module
//! is loaded only in the test VM (kmod-dwcs/test/guest_rust.sh), which sets
//! `QSOCK_EXPECT_DWCS=1` so that a missing module fails its tests there
//! instead of skipping them.

use std::path::Path;

/// Where the kernel lists sch_dwcs once it is loaded.
pub const DWCS_MODULE: &str = "/sys/module/sch_dwcs";

/// Whether the VM runner said sch_dwcs must be here: `QSOCK_EXPECT_DWCS` set
/// to anything but empty or 0.
pub fn dwcs_expected() -> bool {
    std::env::var("QSOCK_EXPECT_DWCS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether sch_dwcs is loaded.
pub fn dwcs_loaded() -> bool {
    Path::new(DWCS_MODULE).exists()
}

/// Whether a test that needs sch_dwcs runs: true where the module is loaded;
/// where it is not, false after a SKIPPED line, or a panic when
/// [`dwcs_expected`].
pub fn dwcs_test_runs() -> bool {
    if dwcs_loaded() {
        return true;
    }
    assert!(
        !dwcs_expected(),
        "QSOCK_EXPECT_DWCS is set but the sch_dwcs module is not loaded ({DWCS_MODULE} is \
         missing): build it from kmod-dwcs/ for this kernel and insmod it"
    );
    eprintln!(
        "SKIPPED: the sch_dwcs kernel module is not loaded; this test runs in the VM \
         (kmod-dwcs/test/guest_rust.sh)"
    );
    false
}
