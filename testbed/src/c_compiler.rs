//! The C compiler for the tests that check a Rust mirror of a C header by
//! compiling C against it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory for one test's files, unique per process and tag.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qsock-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory for C files");
    dir
}

/// The C compiler (`$CC`, else `cc`) in C standard `standard` (e.g.
/// `gnu11`), every warning an error, with the headers below `include`.
pub fn strict_cc(standard: &str, include: &Path) -> Command {
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.arg(format!("-std={standard}"))
        .args(["-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include);
    cc
}

/// Runs `compiler`; when it fails, panics with `failure` and the compiler's
/// messages.
#[track_caller]
pub fn assert_compiles(compiler: &mut Command, failure: &str) {
    let output = compiler.output().expect("run the C compiler (cc)");
    assert!(
        output.status.success(),
        "{failure}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
