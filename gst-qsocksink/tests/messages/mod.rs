//! Waiting for what a sink posts on its bus.

use std::time::{Duration, Instant};

/// Waits up to `within` for an element message named `name` that satisfies
/// `wanted`, and returns its structure; fails the test when none comes, and,
/// with `fail_on_error`, at an error message (which otherwise stays on the
/// bus, unread).
pub fn element_message(
    bus: &gst::Bus,
    name: &str,
    within: Duration,
    fail_on_error: bool,
    wanted: impl Fn(&gst::StructureRef) -> bool,
) -> gst::Structure {
    let types: &[gst::MessageType] = if fail_on_error {
        &[gst::MessageType::Element, gst::MessageType::Error]
    } else {
        &[gst::MessageType::Element]
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
