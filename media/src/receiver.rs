//! A receiver per stream, in the receiver's namespace, that records when
//! each frame arrived whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;
use qsock_frame::rtp::{self, FixedHeader};
use qsock_frame::{Classifier, FrameType, PayloadFormat};
use qsock_testbed::TestBed;

use crate::pipeline::NamespacePipeline;
use crate::{Result, StreamSpec, VideoSettings};

/// One frame that reached the depayloader whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameArrival {
    /// The frame's RTP timestamp: its identity on the wire.
    pub rtp_timestamp: u32,
    /// The frame's number, counted from the first frame this receiver saw
    /// (from the RTP timestamp, so lost frames leave gaps).
    pub frame: u64,
    /// When the last of its packets came off the network (or, for SRT, out
    /// of srtsrc), since the run's epoch.
    pub arrived: Duration,
    /// Whether a decoder could show it correctly: an intra frame, or a frame
    /// predicted from references that all arrived whole since the last
    /// intra frame. A whole frame after a lost reference is not decodable:
    /// the picture is wrong until the next intra frame repairs it.
    pub decodable: bool,
}

/// A receiving pipeline: source (udpsrc, or srtsrc for SRT), rtpjitterbuffer,
/// rtph264depay. A probe on the source stamps each RTP packet as it arrives;
/// one in front of the depayloader, which sees packets in order after the
/// jitter buffer, puts them together into frames. A frame counts when its
/// packets run without a gap from the one after the previous frame's last
/// packet to its own last (marker) packet. It is decodable when, besides,
/// no reference frame was lost since the last intra frame (frame types come
/// from qsocksink's classifier). Its arrival is its last packet's, not the
/// jitter buffer's release, which would hide the network's jitter behind
/// the buffer's.
#[derive(Debug)]
pub struct Receiver {
    running: NamespacePipeline,
    frames: Arc<Mutex<Vec<FrameArrival>>>,
    label: String,
}

/// When each RTP packet came in, by sequence number, until it is assembled.
type PacketArrivals = Arc<Mutex<HashMap<u16, Instant>>>;

impl Receiver {
    /// Starts receiving `stream` in the receiver's namespace. The jitter
    /// buffer waits up to `jitter_latency` for a missing packet; `epoch` is
    /// the run's time zero.
    pub fn start(
        bed: &TestBed,
        stream: &StreamSpec,
        video: &VideoSettings,
        jitter_latency: Duration,
        epoch: Instant,
    ) -> Result<Receiver> {
        let description = format!(
            "{} ! rtpjitterbuffer latency={} ! rtph264depay name=depay \
             ! fakesink sync=false async=false",
            stream.source_description(bed),
            jitter_latency.as_millis()
        );
        let running = NamespacePipeline::launch(&description, bed.receiver_ns())?;
        let packet_arrivals = PacketArrivals::default();
        let stamped = Arc::clone(&packet_arrivals);
        running.on_rtp_packets("source", "src", move |_, header| {
            stamped.lock().insert(header.sequence, Instant::now());
        })?;
        let frames = Arc::new(Mutex::new(Vec::new()));
        let assembly = Mutex::new(Assembly::new(video.rtp_ticks_per_frame(), epoch));
        let assembled = Arc::clone(&frames);
        running.on_rtp_packets("depay", "sink", move |buffer, header| {
            let arrived = packet_arrivals.lock().remove(&header.sequence);
            let mut assembly = assembly.lock();
            let shows = assembly.classify(buffer);
            if let Some(frame) = assembly.packet(header, shows, arrived) {
                assembled.lock().push(frame);
            }
        })?;
        // The source binds its socket on the way to PLAYING: in this namespace.
        bed.run_in_receiver(|| running.pipeline().set_state(gst::State::Playing))?
            .map_err(|err| {
                crate::Error::Pipeline(format!(
                    "the receiver of {} on port {} does not start: {err}",
                    stream.label, stream.port
                ))
            })?;
        Ok(Receiver {
            running,
            frames,
            label: stream.label.clone(),
        })
    }

    /// The stream's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The frames that arrived so far, in the order they were assembled.
    pub fn frames(&self) -> Vec<FrameArrival> {
        self.frames.lock().clone()
    }

    /// How many frames arrived so far.
    pub fn frame_count(&self) -> usize {
        self.frames.lock().len()
    }

    /// Fails if the receiver has failed since it started.
    pub fn check(&self) -> Result<()> {
        self.running.check()
    }

    /// Stops receiving and returns every frame that arrived.
    pub fn stop(self) -> Result<Vec<FrameArrival>> {
        let outcome = self.running.check();
        drop(self.running);
        outcome?;
        Ok(std::mem::take(&mut *self.frames.lock()))
    }
}

/// Puts in-order RTP packets together into frames.
#[derive(Debug)]
struct Assembly {
    ticks_per_frame: u32,
    epoch: Instant,
    /// The packet before: its sequence number and whether it ended a frame.
    previous: Option<(u16, bool)>,
    /// The frame being assembled.
    current: Option<Partial>,
    /// The RTP timestamp of the last frame that arrived whole.
    last_timestamp: Option<u32>,
    /// RTP ticks from the first frame that arrived whole to that one.
    ticks_since_first: i64,
    /// Types each packet's frame.
    classifier: Classifier,
    /// Every reference frame since the last intra frame arrived whole.
    references_intact: bool,
    /// The number of the last frame that ended, whole or not.
    last_frame: Option<u64>,
}

/// What one packet shows of its frame.
#[derive(Debug, Clone, Copy)]
struct Shows {
    frame_type: FrameType,
    /// It opens an access unit with everything a decoder needs first (see
    /// [`opens_access_unit`]).
    opens_access_unit: bool,
}

impl Default for Shows {
    fn default() -> Self {
        Shows {
            frame_type: FrameType::Unknown,
            opens_access_unit: false,
        }
    }
}

/// Does this RTP packet (RFC 6184) begin with an access unit delimiter or a
/// sequence parameter set? Either comes before everything else of its
/// access unit that a decoder needs, so a receiver that starts listening
/// with such a packet has the whole access unit.
fn opens_access_unit(packet: &[u8]) -> bool {
    const SEQUENCE_PARAMETER_SET: u8 = 7;
    const ACCESS_UNIT_DELIMITER: u8 = 9;
    const STAP_A: u8 = 24;
    let Ok(payload) = rtp::parse(packet).map(|rtp| rtp.payload) else {
        return false;
    };
    let nal_type = |at: usize| payload.get(at).map(|byte| byte & 0x1f);
    let first_nal = match nal_type(0) {
        // An aggregation packet's first unit follows its 2-byte size.
        Some(STAP_A) => nal_type(3),
        other => other,
    };
    matches!(
        first_nal,
        Some(SEQUENCE_PARAMETER_SET | ACCESS_UNIT_DELIMITER)
    )
}

#[derive(Debug)]
struct Partial {
    timestamp: u32,
    whole_so_far: bool,
    last_arrival: Option<Instant>,
    /// The strongest type its packets show.
    frame_type: FrameType,
}

impl Assembly {
    fn new(ticks_per_frame: u32, epoch: Instant) -> Assembly {
        Assembly {
            ticks_per_frame: ticks_per_frame.max(1),
            epoch,
            previous: None,
            current: None,
            last_timestamp: None,
            ticks_since_first: 0,
            classifier: Classifier::new(PayloadFormat::RtpH264),
            references_intact: false,
            last_frame: None,
        }
    }

    /// What an RTP packet shows of its frame; nothing for one that does not
    /// parse.
    fn classify(&mut self, packet: &gst::BufferRef) -> Shows {
        let Ok(map) = packet.map_readable() else {
            return Shows::default();
        };
        let bytes = map.as_slice();
        self.classifier
            .inspect(bytes)
            .map_or(Shows::default(), |info| Shows {
                frame_type: info.frame_type,
                opens_access_unit: opens_access_unit(bytes),
            })
    }

    /// Takes the next packet out of the jitter buffer, with what it shows;
    /// returns the frame it completed, if it completed one whole.
    fn packet(
        &mut self,
        header: FixedHeader,
        shows: Shows,
        arrived: Option<Instant>,
    ) -> Option<FrameArrival> {
        let frame_type = shows.frame_type;
        let follows = self
            .previous
            .is_some_and(|(sequence, _)| header.sequence == sequence.wrapping_add(1));
        // The very first packet begins a frame if it opens an access unit;
        // otherwise the receiver joined part way into a frame.
        let begins_frame = match self.previous {
            Some((_, marker)) => follows && marker,
            None => shows.opens_access_unit,
        };
        self.previous = Some((header.sequence, header.marker));
        match &mut self.current {
            Some(partial) if partial.timestamp == header.timestamp => {
                partial.whole_so_far &= follows;
                partial.last_arrival = partial.last_arrival.max(arrived);
                partial.frame_type = partial.frame_type.max(frame_type);
            }
            _ => {
                // A frame still open lost its marker packet.
                if let Some(unfinished) = self.current.take() {
                    self.ended(unfinished.timestamp, unfinished.frame_type, false);
                }
                self.current = Some(Partial {
                    timestamp: header.timestamp,
                    whole_so_far: begins_frame,
                    last_arrival: arrived,
                    frame_type,
                })
            }
        }
        if !header.marker {
            return None;
        }
        let partial = self.current.take()?;
        let Some(arrival) = partial.last_arrival.filter(|_| partial.whole_so_far) else {
            self.ended(partial.timestamp, partial.frame_type, false);
            return None;
        };
        let (frame, decodable) = self.ended(partial.timestamp, partial.frame_type, true);
        Some(FrameArrival {
            rtp_timestamp: partial.timestamp,
            frame,
            arrived: arrival.saturating_duration_since(self.epoch),
            decodable,
        })
    }

    /// Accounts for a frame that ended, whole or not: returns its number and
    /// whether it is decodable. A lost frame breaks the chain of references
    /// unless it showed itself a non-reference frame; a missing frame (a
    /// step in the numbers) always does, as nothing of it told its type.
    fn ended(&mut self, timestamp: u32, frame_type: FrameType, whole: bool) -> (u64, bool) {
        let frame = self.frame_number(timestamp);
        if self.last_frame.is_some_and(|last| frame > last + 1) {
            self.references_intact = false;
        }
        self.last_frame = Some(self.last_frame.map_or(frame, |last| last.max(frame)));
        if !whole {
            if frame_type != FrameType::NonReference {
                self.references_intact = false;
            }
            return (frame, false);
        }
        let decodable = match frame_type {
            FrameType::Intra => {
                self.references_intact = true;
                true
            }
            _ => self.references_intact,
        };
        (frame, decodable)
    }

    /// The frame's number from its RTP timestamp, which wraps at 2^32.
    fn frame_number(&mut self, timestamp: u32) -> u64 {
        if let Some(last) = self.last_timestamp {
            // Frames come in order out of the jitter buffer, so the step from
            // the last one is small either way round the wrap.
            self.ticks_since_first += i64::from(timestamp.wrapping_sub(last) as i32);
        }
        self.last_timestamp = Some(timestamp);
        let ticks = u64::try_from(self.ticks_since_first).unwrap_or(0);
        let per_frame = u64::from(self.ticks_per_frame);
        (ticks + per_frame / 2) / per_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn shows(frame_type: FrameType) -> Shows {
        Shows {
            frame_type,
            opens_access_unit: false,
        }
    }
    const I: Shows = shows(FrameType::Intra);
    const P: Shows = shows(FrameType::Predicted);
    const B: Shows = shows(FrameType::NonReference);
    /// The first packet of an access unit: its delimiter.
    const DELIMITER: Shows = Shows {
        frame_type: FrameType::Unknown,
        opens_access_unit: true,
    };

    fn header(sequence: u16, timestamp: u32, marker: bool) -> FixedHeader {
        FixedHeader {
            payload_type: 96,
            sequence,
            timestamp,
            marker,
        }
    }

    #[test]
    fn frames_whole_from_marker_to_marker_count_and_gaps_do_not() {
        let epoch = Instant::now();
        let at = Some(epoch + Duration::from_millis(7));
        let mut assembly = Assembly::new(4500, epoch);
        // The first frame: nothing is known about what came before it.
        assert_eq!(assembly.packet(header(10, 1000, true), I, at), None);
        assert!(assembly.packet(header(11, 5500, false), I, at).is_none());
        let whole = assembly
            .packet(header(12, 5500, true), I, at)
            .expect("whole");
        assert_eq!((whole.rtp_timestamp, whole.frame), (5500, 1));
        assert_eq!(whole.arrived, Duration::from_millis(7));
        // Packet 14 lost: the frame of 13..15 is not whole, and the next one,
        // whose first packet follows a marker, is.
        assert!(assembly.packet(header(13, 10000, false), I, at).is_none());
        assert!(assembly.packet(header(15, 10000, true), I, at).is_none());
        let next = assembly
            .packet(header(16, 14500, true), I, at)
            .expect("whole");
        assert_eq!(next.frame, 3);
        // A frame whose first packet was lost with the previous one's marker.
        assert!(assembly.packet(header(18, 19000, true), I, at).is_none());
        // RTP timestamps wrap.
        let mut wrapping = Assembly::new(4500, epoch);
        assert!(wrapping
            .packet(header(1, u32::MAX - 4000, true), I, at)
            .is_none());
        let first = wrapping
            .packet(header(2, u32::MAX - 100, true), I, at)
            .expect("whole");
        let after_wrap = wrapping
            .packet(header(3, 4400, true), I, at)
            .expect("whole");
        assert_eq!(after_wrap.frame - first.frame, 1);
    }

    /// Feeds one-packet frames (timestamp step 4500 each), leaving out those
    /// that do not arrive, and returns (frame number, decodable) of each
    /// whole one.
    fn decodability(frames: &[(Shows, bool)]) -> Vec<(u64, bool)> {
        let epoch = Instant::now();
        let mut assembly = Assembly::new(4500, epoch);
        let mut whole = Vec::new();
        for (n, &(shows, arrives)) in frames.iter().enumerate() {
            if !arrives {
                continue;
            }
            let header = header(n as u16 + 1, n as u32 * 4500, true);
            if let Some(frame) = assembly.packet(header, shows, Some(epoch)) {
                whole.push((frame.frame, frame.decodable));
            }
        }
        whole
    }

    #[test]
    fn a_lost_reference_leaves_the_frames_after_it_undecodable_until_the_next_intra() {
        // Frame 0 only tells the assembly where packets begin.
        let whole = decodability(&[
            (P, true),
            (P, true),  // 1: no intra frame seen yet
            (I, true),  // 2
            (P, true),  // 3
            (P, false), // 4: lost
            (P, true),  // 5: follows the gap, so not known whole
            (P, true),  // 6: whole, but its reference is gone
            (I, true),  // 7: repairs
            (P, true),  // 8
        ]);
        assert_eq!(
            whole,
            [
                (1, false),
                (2, true),
                (3, true),
                (6, false),
                (7, true),
                (8, true)
            ]
        );
    }

    #[test]
    fn a_damaged_non_reference_frame_breaks_nothing_and_a_damaged_reference_does() {
        let epoch = Instant::now();
        let at = Some(epoch);
        let mut assembly = Assembly::new(4500, epoch);
        assert!(assembly.packet(header(1, 0, true), I, at).is_none());
        let intra = assembly.packet(header(2, 4500, true), I, at);
        assert!(intra.expect("whole").decodable);
        // A B-frame of three packets loses its middle one; the P-frame
        // after it refers to the I-frame and still decodes.
        assert!(assembly.packet(header(3, 9000, false), B, at).is_none());
        assert!(assembly.packet(header(5, 9000, true), B, at).is_none());
        let predicted = assembly.packet(header(6, 13500, true), P, at);
        assert!(predicted.expect("whole").decodable);
        // A P-frame loses its marker packet: the frame after it is whole but
        // refers to a broken picture.
        assert!(assembly.packet(header(7, 18000, false), P, at).is_none());
        let after_gap = assembly.packet(header(9, 22500, true), P, at);
        assert!(after_gap.is_none(), "its first packet follows a gap");
        let next = assembly.packet(header(10, 27000, true), P, at);
        assert_eq!(next.map(|f| (f.frame, f.decodable)), Some((6, false)));
    }

    #[test]
    fn a_first_packet_that_opens_an_access_unit_begins_a_frame() {
        let epoch = Instant::now();
        let at = Some(epoch);
        let mut assembly = Assembly::new(4500, epoch);
        assert!(assembly
            .packet(header(1, 0, false), DELIMITER, at)
            .is_none());
        let first = assembly.packet(header(2, 0, true), I, at).expect("whole");
        assert_eq!((first.frame, first.decodable), (0, true));
    }

    #[test]
    fn access_units_open_with_a_delimiter_or_a_sequence_parameter_set() {
        let rtp =
            |payload: &[u8]| [&[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1][..], payload].concat();
        assert!(opens_access_unit(&rtp(&[0x09, 0xf0])));
        assert!(opens_access_unit(&rtp(&[0x67, 0x42])));
        // STAP-A with an SPS first.
        assert!(opens_access_unit(&rtp(&[0x18, 0x00, 0x02, 0x67, 0x42])));
        // A PPS, an IDR slice, an FU-A fragment: part way in.
        assert!(!opens_access_unit(&rtp(&[0x68, 0xce])));
        assert!(!opens_access_unit(&rtp(&[0x65, 0x88])));
        assert!(!opens_access_unit(&rtp(&[0x7c, 0x85])));
        // A CSRC and a header extension move the payload.
        let mut extended = vec![0x91, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9];
        extended.extend([0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x09, 0xf0]);
        assert!(opens_access_unit(&extended));
        assert!(!opens_access_unit(&[]));
        assert!(!opens_access_unit(&extended[..20]));
    }
}
