//! The receiver's reports as an RTP session upstream of the sink saw them.
//!
//! With `rtpbin` (or `rtpsession`) upstream, the application's own RTCP
//! sockets receive the receiver's reports, answer PLI and FIR with
//! key-unit requests upstream, and send sender reports: the sink then reads
//! the session's statistics of the stream's source instead of listening for
//! RTCP itself (which would contend for the same port).

use gst::prelude::*;

use super::encoder::upstream_elements;
use super::rtcp::{self, ReceptionReport};

/// The internal RTP session of an `rtpbin` or `rtpsession` upstream.
#[derive(Debug)]
pub(super) struct SessionReports {
    owner: SessionOwner,
    /// What the last report block read said, to take each one once.
    last: Option<(u32, u32, i32)>,
}

/// The element that holds the session (the session object itself is not
/// shared between threads, the element is).
#[derive(Debug)]
enum SessionOwner {
    Session(gst::Element),
    /// rtpbin, and the session's id.
    Bin(gst::Element, u32),
}

impl SessionOwner {
    fn session(&self) -> Option<gst::glib::Object> {
        match self {
            SessionOwner::Session(element) => {
                Some(element.property::<gst::glib::Object>("internal-session"))
            }
            SessionOwner::Bin(rtpbin, id) => {
                rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-internal-session", &[id])
            }
        }
    }
}

impl SessionReports {
    /// The session feeding `pad`, if an `rtpbin` or `rtpsession` is
    /// upstream: rtpbin's session is the one whose `send_rtp_src_N` pad is
    /// upstream of the sink.
    pub fn upstream_of(pad: &gst::Pad) -> Option<SessionReports> {
        let owner = upstream_elements(pad).into_iter().find_map(|element| {
            let factory = element.factory()?;
            match factory.name().as_str() {
                "rtpsession" => Some(SessionOwner::Session(element)),
                "rtpbin" => {
                    let id = session_id_toward(&element, pad)?;
                    Some(SessionOwner::Bin(element, id))
                }
                _ => None,
            }
        })?;
        Some(SessionReports { owner, last: None })
    }

    /// The newest report block a receiver in the session sent, once. The
    /// session keeps each remote source's last report block about the
    /// session's own sources, of which the sink's stream is the sender.
    pub fn next_report(&mut self) -> Option<ReceptionReport> {
        let sources = self.owner.session()?.property_value("sources");
        let sources = sources.get::<gst::glib::ValueArray>().ok()?;
        let stats = sources.iter().find_map(|source| {
            let stats = source
                .get::<gst::glib::Object>()
                .ok()?
                .property::<gst::Structure>("stats");
            let remote = stats.get::<bool>("internal") == Ok(false);
            (remote && stats.get::<bool>("have-rb") == Ok(true)).then_some(stats)
        })?;
        let unsigned = |field: &str| stats.get::<u32>(field).unwrap_or(0);
        let highest_sequence = unsigned("rb-exthighestseq");
        let cumulative_lost = stats.get::<i32>("rb-packetslost").unwrap_or(0);
        let key = (highest_sequence, unsigned("rb-lsr"), cumulative_lost);
        if self.last.replace(key) == Some(key) {
            return None;
        }
        // The session keeps the round trip in 1/65536 s, as LSR and DLSR.
        let round_trip = Some(unsigned("rb-round-trip"))
            .filter(|&units| units > 0)
            .map(rtcp::compact_ntp_duration);
        Some(ReceptionReport {
            fraction_lost: f64::from(unsigned("rb-fractionlost")) / 256.0,
            cumulative_lost,
            highest_sequence,
            jitter_ticks: unsigned("rb-jitter"),
            round_trip,
            echoed_sender_report: unsigned("rb-lsr"),
        })
    }
}

/// N of the `send_rtp_src_N` pad of `rtpbin` that leads toward `pad`.
fn session_id_toward(rtpbin: &gst::Element, pad: &gst::Pad) -> Option<u32> {
    let mut current = pad.peer()?;
    // Elements between rtpbin and the sink (a queue, say) are walked back
    // through their first sink pad.
    for _ in 0..16 {
        let parent = current.parent_element()?;
        if &parent == rtpbin {
            return current.name().strip_prefix("send_rtp_src_")?.parse().ok();
        }
        current = parent.sink_pads().first()?.peer()?;
    }
    None
}
