//! The line qsock-receive prints each second, and its CSV row.

use std::fmt;

use serde::Serialize;

use crate::frames::Tally;

/// One second of the stream, as printed and as written to CSV (whose
/// columns are named as the printed keys).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Line {
    /// Seconds since the receiver started (the end of the interval).
    pub second: u64,
    /// Frames out of the decoder per second.
    pub fps: f64,
    /// Mean inter-frame jitter of the complete frames, ms; None (an empty
    /// CSV field, `-` on the terminal) with fewer than two complete frames
    /// in a row.
    #[serde(rename = "jitter-ms")]
    pub jitter_ms: Option<f64>,
    /// Frames that arrived whole.
    #[serde(rename = "frames")]
    pub complete_frames: u32,
    /// Packets lost (RTP packets, or transport stream packets).
    #[serde(rename = "lost-packets")]
    pub lost_packets: u64,
    /// Lost (damaged or missing) intra frames.
    #[serde(rename = "lost-I")]
    pub lost_i: u32,
    /// Lost predicted reference frames.
    #[serde(rename = "lost-P")]
    pub lost_p: u32,
    /// Lost non-reference frames.
    #[serde(rename = "lost-B")]
    pub lost_b: u32,
    /// Lost frames of unknown type, missing frames among them.
    #[serde(rename = "lost-unknown")]
    pub lost_unknown: u32,
}

impl Line {
    /// The line for an interval of `seconds` ending at `second`, in which
    /// the decoder put out `decoded` frames.
    pub fn new(second: u64, seconds: f64, decoded: u32, tally: &Tally) -> Line {
        Line {
            second,
            fps: f64::from(decoded) / seconds,
            jitter_ms: tally.mean_jitter().map(|jitter| jitter.as_secs_f64() * 1e3),
            complete_frames: tally.complete_frames,
            lost_packets: tally.lost_packets,
            lost_i: tally.lost_frames.intra,
            lost_p: tally.lost_frames.predicted,
            lost_b: tally.lost_frames.non_reference,
            lost_unknown: tally.lost_frames.unknown,
        }
    }
}

/// `second=3 fps=25.0 jitter-ms=0.41 frames=25 lost-packets=0 lost-I=0
/// lost-P=0 lost-B=0 lost-unknown=0`: one key=value pair per field, for
/// people and for `grep`.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "second={} fps={:.1} jitter-ms=", self.second, self.fps)?;
        match self.jitter_ms {
            Some(jitter) => write!(f, "{jitter:.2}")?,
            None => f.write_str("-")?,
        }
        write!(
            f,
            " frames={} lost-packets={} lost-I={} lost-P={} lost-B={} lost-unknown={}",
            self.complete_frames,
            self.lost_packets,
            self.lost_i,
            self.lost_p,
            self.lost_b,
            self.lost_unknown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_as_key_value_pairs() {
        let line = Line {
            second: 3,
            fps: 24.96,
            jitter_ms: Some(0.414),
            complete_frames: 25,
            lost_packets: 2,
            lost_i: 0,
            lost_p: 1,
            lost_b: 0,
            lost_unknown: 1,
        };
        assert_eq!(
            line.to_string(),
            "second=3 fps=25.0 jitter-ms=0.41 frames=25 lost-packets=2 lost-I=0 lost-P=1 \
             lost-B=0 lost-unknown=1"
        );
        let quiet = Line {
            jitter_ms: None,
            ..line
        };
        assert!(quiet.to_string().contains(" jitter-ms=- "));
    }
}
