//! Test helpers for checking Rust mirrors of C headers by compiling C.

use std::path::PathBuf;
use std::process::Command;

/// The C compiler: `$CC`, else `cc`.
pub(crate) fn cc() -> Command {
    Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
}

/// A fresh directory for one test's C files, unique per process and tag.
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qsock-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory for C files");
    dir
}
