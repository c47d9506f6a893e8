//! Waiting for what a sink posts on its bus.

use std::time::{Duration, Instant};

/// What an error message on the bus means while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// It fails the test.
    Fail,
    /// It stays on the bus, unread.
    Leave,
}

/// Waits up to `within` for an element message named `name` that satisfies
/// `wanted`, and returns its structure; fails the test when none comes.
pub fn element_message(
    bus: &gst::Bus,
    name: &str,
    within: Duration,
    on_error: OnError,
    wanted: impl Fn(&gst::StructureRef) -> bool,
) -> gst::Structure {
    let types: &[gst::MessageType] = match on_error {
        OnError::Fail => &[gst::MessageType::Element, gst::MessageType::Error],
        OnError::Leave => &[gst::MessageType::Element],
    };
    let give_up = Instant::now() + within;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let message = bus
            .timed_pop_filtered(gst::ClockTime::from_nseconds(left.as_nanos() as u64), types)
            .unwrap_or_else(|| panic!("no {name} message met the condition within {within:?}"));
        if let gst::MessageView::Error(error) = message.view() {
            panic!("{error:?}");
        }
        if let Some(structure) = message.structure() {
            if structure.name() == name && wanted(structure) {
                return structure.to_owned();
            }
        }
    }
}
