//! Replays every test vector in `tests/vectors/` (at the repository root)
//! through the reference model and compares every expected result.

use std::path::{Path, PathBuf};

use qsock::model::trace;

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn vectors() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("tests/vectors exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "vec"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_vector_replays_as_expected() {
    let files = vectors();
    assert!(
        files.len() >= 6,
        "expected the hand-written vectors, found {files:?}"
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let text = std::fs::read_to_string(path).expect("readable vector");
        let parsed = match trace::parse(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                failures.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        if parsed.expected.events.is_empty() && parsed.expected.windows.is_empty() {
            failures.push(format!("{name}: has no expectations"));
            continue;
        }
        match trace::run(&parsed) {
            Ok(actual) => {
                if let Some(diff) = parsed.expected.diff(&actual) {
                    failures.push(format!("{name}:\n{diff}"));
                }
            }
            Err(e) => failures.push(format!("{name}: replay failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The writer and the parser agree on every vector, so generated vectors
/// read back exactly.
#[test]
fn every_vector_survives_a_write_and_parse() {
    for path in vectors() {
        let text = std::fs::read_to_string(&path).expect("readable vector");
        let parsed = trace::parse(&text).expect("vector parses");
        let again = trace::parse(&trace::write(&parsed)).expect("written vector parses");
        assert_eq!(again, parsed, "{}", path.display());
    }
}
