//! What the evaluation's run tests share.

use std::process::Output;

/// Whether a run's figures can be checked: as root, after the run
/// succeeded; without root, after checking that it failed saying it needs
/// root (the test then skips the rest).
pub fn ran_as_root(output: &Output) -> bool {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !nix::unistd::geteuid().is_root() {
        assert!(!output.status.success(), "{stdout}");
        assert!(
            stderr.contains("root") || stderr.contains("CAP_NET_ADMIN"),
            "{stderr}"
        );
        eprintln!("SKIPPED the run: the test beds need root");
        return false;
    }
    assert!(
        output.status.success(),
        "qsock-eval failed: {stderr}\n{stdout}"
    );
    true
}
