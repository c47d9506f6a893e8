//! Ctrl-C and SIGTERM: an interrupted run removes its test beds and exits
//! with 130, whatever its own threads are doing at that moment.
//!
//! The handler thread owns the exit. The main thread, which sees its lanes
//! fail as their namespaces go, must not exit first (with its own error
//! code, or before every namespace is removed), so once a run is
//! interrupted it, and any thread that panics, waits for the handler.

use std::sync::atomic::{AtomicBool, Ordering};

/// The exit status of a run stopped by a signal, as shells report SIGINT.
const INTERRUPTED_STATUS: i32 = 130;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler. Without it (another handler already installed),
/// an interrupted run leaves its namespaces behind, so say so.
pub fn install() {
    // A thread that panics because its namespace went away must not end the
    // process with 101 before the handler has removed the rest.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if INTERRUPTED.load(Ordering::SeqCst) {
            park_for_good();
        }
        report_panic(info);
    }));
    if let Err(err) = ctrlc::set_handler(on_interrupt) {
        eprintln!(
            "qsock-eval: cannot handle Ctrl-C ({err}); an interrupted run leaves its \
             qsk-* namespaces behind (remove them with `ip netns del`)"
        );
    }
}

/// Blocks for good if the run was interrupted, so that the handler, not the
/// main thread, decides how the process ends.
pub fn wait_for_handler_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        park_for_good();
    }
}

fn park_for_good() -> ! {
    loop {
        std::thread::park();
    }
}

fn on_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let removed = qsock_testbed::remove_this_process_beds();
    eprintln!("qsock-eval: interrupted; removed {removed} test-bed namespaces");
    exit_now(INTERRUPTED_STATUS);
}

/// Ends the process without running `atexit` handlers: GStreamer's and
/// GLib's would tear down state that the still-running streaming threads
/// use, and the process would die of SIGSEGV instead of exiting.
fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` takes a plain status, touches no Rust state and never
    // returns; skipping destructors is its purpose here. Nothing is left
    // unflushed that matters: stderr is unbuffered, and results are written
    // only by a run that finished.
    unsafe { libc::_exit(status) }
}
