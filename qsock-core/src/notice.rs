//! Things the library must tell a person once, such as a backend that cannot
//! honour what was asked of it.

use std::collections::HashSet;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Says `message` once per process for each `key`: through the `log` facade
/// when the application installed a logger, else on standard error, because a
/// backend that silently ignores a deadline would be pretending.
pub(crate) fn once(key: &str, message: &str) {
    static SAID: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let said = SAID.get_or_init(|| Mutex::new(HashSet::new()));
    let first = said.lock().insert(key.to_owned());
    if !first {
        return;
    }
    if log::max_level() >= log::LevelFilter::Warn {
        log::warn!("{message}");
    } else {
        // One write, so that the line is not split by other threads' output.
        let line = format!("qsock: {message}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }
}
