//! GStreamer started and qsocksink registered, once per test binary.

use std::sync::Once;

/// Starts GStreamer and registers the statically linked qsocksink; later
/// calls do nothing.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstqsocksink::plugin_register_static().expect("qsocksink registers");
    });
}
