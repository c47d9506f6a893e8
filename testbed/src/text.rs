//! Checks of what a program or an error said.

/// Fails, naming the missing one and the whole `text`, unless `text`
/// contains every one of `needles`.
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}
