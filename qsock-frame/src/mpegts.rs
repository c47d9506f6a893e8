//! MPEG-2 transport streams (ISO/IEC 13818-1 §2.4): PAT and PMT to find the
//! video PID, PES packets on it to delimit frames, and the video elementary
//! stream inside them to type the frames.

use super::annexb::{StartCodeScanner, UnitClassifier};
use super::h265::ParameterSets;
use super::ts_packet::{TsPacket, TS_PACKET_SIZE as PACKET_SIZE};
use super::{h264, mpeg_video, PacketInfo, ParseError, Shows, UnitError};

const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const PAT_TABLE_ID: u8 = 0x00;
const PMT_TABLE_ID: u8 = 0x02;

/// The video codecs whose frames can be typed, by PMT stream_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoCodec {
    H264,
    H265,
    MpegVideo,
}

impl VideoCodec {
    fn from_stream_type(stream_type: u8) -> Option<VideoCodec> {
        match stream_type {
            0x01 | 0x02 => Some(VideoCodec::MpegVideo),
            0x1b => Some(VideoCodec::H264),
            0x24 => Some(VideoCodec::H265),
            _ => None,
        }
    }
}

/// The transport stream's state between datagrams.
#[derive(Debug, Default)]
pub(crate) struct TransportStream {
    pmt_pids: Vec<u16>,
    video: Option<(u16, VideoCodec)>,
    /// Video PES packets started so far: the frame number.
    frames_started: u64,
    /// A video PES packet has started, so elementary stream bytes belong to
    /// a known frame (false until the first one, when joining mid-stream).
    in_video_pes: bool,
    /// The PES header's bytes while it is incomplete (it may be split over
    /// TS packets); None once the elementary stream has been reached.
    pes_header: Option<Vec<u8>>,
    scanner: StartCodeScanner,
    h265_parameters: ParameterSets,
}

impl TransportStream {
    /// Classifies a datagram of whole transport stream packets.
    pub(crate) fn inspect(&mut self, datagram: &[u8]) -> Result<PacketInfo, ParseError> {
        if datagram.is_empty() || datagram.len() % PACKET_SIZE != 0 {
            return Err(ParseError(format!(
                "{} bytes are not a whole number of 188-byte transport stream packets",
                datagram.len()
            )));
        }
        let mut info = PacketInfo::of_frame(self.frames_started);
        let mut video_shows = Shows::NOTHING;
        let mut video_seen = false;
        for (index, packet) in datagram.chunks_exact(PACKET_SIZE).enumerate() {
            if packet[0] != SYNC_BYTE {
                return Err(ParseError(format!(
                    "transport stream packet {index} of the datagram starts with 0x{:02x}; expected sync byte 0x47",
                    packet[0]
                )));
            }
            let TsPacket {
                pid,
                payload_unit_start,
                payload,
                ..
            } = TsPacket::parse(packet)?;
            let payload = payload.unwrap_or_default();

            if pid == PAT_PID {
                info.configuration = true;
                if payload_unit_start {
                    self.read_pat(payload);
                }
                continue;
            }
            if self.pmt_pids.contains(&pid) {
                info.configuration = true;
                if payload_unit_start {
                    self.read_pmt(payload);
                }
                continue;
            }
            let Some((video_pid, codec)) = self.video else {
                continue;
            };
            if pid != video_pid {
                continue;
            }
            if payload_unit_start {
                if info.starts_frame && self.in_video_pes {
                    // The frame that began earlier in this datagram ends
                    // here: the datagram holds it whole.
                    let mut hidden = video_shows;
                    hidden.merge(self.finish_scan(codec)?);
                    info.hidden_frames.push(hidden.frame_type);
                    info.configuration |= hidden.configuration;
                }
                // What this datagram showed so far was of an earlier frame;
                // the packet now belongs to the new one.
                info.also_ends_previous |= video_seen && self.in_video_pes;
                video_shows = Shows::NOTHING;
                self.frames_started += 1;
                info.starts_frame = true;
                self.in_video_pes = true;
                self.pes_header = Some(Vec::new());
                self.scanner.reset();
            }
            video_seen = true;
            if !self.in_video_pes {
                continue;
            }
            let elementary_stream: Vec<u8>;
            let elementary_stream: &[u8] = match self.pes_header.take() {
                None => payload,
                Some(mut header) => {
                    header.extend_from_slice(payload);
                    match pes_header_length(&header, pid) {
                        Ok(Some(length)) => {
                            elementary_stream = header.split_off(length);
                            &elementary_stream
                        }
                        Ok(None) => {
                            self.pes_header = Some(header);
                            continue;
                        }
                        Err(error) => {
                            self.in_video_pes = false;
                            return Err(error);
                        }
                    }
                }
            };
            video_shows.merge(self.scan(elementary_stream, codec)?);
        }
        info.frame = self.frames_started;
        info.frame_type = video_shows.frame_type;
        info.configuration |= video_shows.configuration;
        Ok(info)
    }

    fn scan(&mut self, elementary_stream: &[u8], codec: VideoCodec) -> Result<Shows, ParseError> {
        self.with_unit_classifier(codec, |scanner, classify| {
            scanner.push(elementary_stream, classify)
        })
    }

    /// What the unit still collecting at the end of a PES packet shows.
    fn finish_scan(&mut self, codec: VideoCodec) -> Result<Shows, ParseError> {
        self.with_unit_classifier(codec, |scanner, classify| scanner.finish(classify))
    }

    /// Runs `scan` on the scanner with `codec`'s unit classifier.
    fn with_unit_classifier(
        &mut self,
        codec: VideoCodec,
        scan: impl FnOnce(&mut StartCodeScanner, &mut UnitClassifier<'_>) -> Result<Shows, UnitError>,
    ) -> Result<Shows, ParseError> {
        let parameters = &mut self.h265_parameters;
        let scanner = &mut self.scanner;
        let result = match codec {
            VideoCodec::H264 => scan(scanner, &mut h264::classify_nal),
            VideoCodec::H265 => scan(scanner, &mut |unit, complete| {
                parameters.classify_nal(unit, complete)
            }),
            VideoCodec::MpegVideo => scan(scanner, &mut mpeg_video::classify_unit),
        };
        result.map_err(|error| match error {
            UnitError::Invalid(message) => ParseError(message),
            UnitError::Truncated => ParseError("video elementary stream unit cut short".into()),
        })
    }

    fn read_pat(&mut self, payload: &[u8]) {
        let Some(body) = section_body(payload, PAT_TABLE_ID) else {
            return;
        };
        self.pmt_pids = body
            .chunks_exact(4)
            .filter(|entry| u16::from_be_bytes([entry[0], entry[1]]) != 0) // network PID
            .map(|entry| u16::from_be_bytes([entry[2] & 0x1f, entry[3]]))
            .collect();
    }

    fn read_pmt(&mut self, payload: &[u8]) {
        let Some(body) = section_body(payload, PMT_TABLE_ID) else {
            return;
        };
        let Some(info_length) = body.get(2..4) else {
            return;
        };
        let program_info_length =
            usize::from(u16::from_be_bytes([info_length[0] & 0x0f, info_length[1]]));
        let mut streams = body.get(4 + program_info_length..).unwrap_or_default();
        while let [stream_type, pid_high, pid_low, info_high, info_low, rest @ ..] = streams {
            let pid = u16::from_be_bytes([pid_high & 0x1f, *pid_low]);
            if let Some(codec) = VideoCodec::from_stream_type(*stream_type) {
                if self.video != Some((pid, codec)) {
                    self.video = Some((pid, codec));
                    self.in_video_pes = false;
                    self.pes_header = None;
                    self.scanner.reset();
                    self.h265_parameters = ParameterSets::default();
                }
                return;
            }
            let es_info_length = usize::from(u16::from_be_bytes([info_high & 0x0f, *info_low]));
            streams = rest.get(es_info_length..).unwrap_or_default();
        }
    }
}

/// The length of the PES header at the start of `pes`, or None when `pes`
/// ends before it does.
fn pes_header_length(pes: &[u8], pid: u16) -> Result<Option<usize>, ParseError> {
    let Some(fixed) = pes.get(..6) else {
        return Ok(None);
    };
    if fixed[..3] != [0, 0, 1] {
        return Err(ParseError(format!(
            "PES packet on PID {pid} starts with {:02x} {:02x} {:02x}; expected 00 00 01",
            fixed[0], fixed[1], fixed[2]
        )));
    }
    let stream_id = fixed[3];
    // Stream ids whose PES packets carry no optional header
    // (ISO/IEC 13818-1 Table 2-21).
    const WITHOUT_OPTIONAL_HEADER: [u8; 8] = [0xbc, 0xbe, 0xbf, 0xf0, 0xf1, 0xf2, 0xf8, 0xff];
    if WITHOUT_OPTIONAL_HEADER.contains(&stream_id) {
        return Ok(Some(6));
    }
    let Some(&header_data_length) = pes.get(8) else {
        return Ok(None);
    };
    let length = 9 + usize::from(header_data_length);
    Ok((pes.len() >= length).then_some(length))
}

/// The body of a long-form PSI section (between its 8-byte header and its
/// CRC) in the payload of a packet that starts one; None when the section is
/// not of `table_id`. A section longer than the packet is cut at its end.
fn section_body(payload: &[u8], table_id: u8) -> Option<&[u8]> {
    let pointer_field = usize::from(*payload.first()?);
    let section = payload.get(1 + pointer_field..)?;
    if *section.first()? != table_id {
        return None;
    }
    let section_length = usize::from(u16::from_be_bytes([
        section.get(1)? & 0x0f,
        *section.get(2)?,
    ]));
    let end = (3 + section_length).saturating_sub(4).min(section.len());
    section.get(8..end)
}

/// When `payload` (of a packet that starts a payload unit) begins a video
/// PES packet (stream_id 0xE0 to 0xEF), Some with its PTS in 90 kHz ticks,
/// if it has one; None when it is not a video PES packet.
pub fn video_pes_start(payload: &[u8]) -> Option<Option<u64>> {
    let [0, 0, 1, stream_id, ..] = payload else {
        return None;
    };
    if stream_id & 0xf0 != 0xe0 {
        return None;
    }
    let has_pts = payload.get(7).is_some_and(|flags| flags & 0x80 != 0);
    let pts = payload.get(9..14).filter(|_| has_pts).map(|bytes| {
        (u64::from(bytes[0] >> 1) & 0x07) << 30
            | u64::from(bytes[1]) << 22
            | u64::from(bytes[2] >> 1) << 15
            | u64::from(bytes[3]) << 7
            | u64::from(bytes[4] >> 1)
    });
    Some(pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_pes_start_and_pts() {
        // PES header: video stream, PTS only, PTS = 0x1_2345_6789 & 33 bits.
        let pts: u64 = 0x1_2345_6789;
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&[
            0x21 | ((pts >> 29) as u8 & 0x0e),
            (pts >> 22) as u8,
            ((pts >> 14) as u8 & 0xfe) | 1,
            (pts >> 7) as u8,
            ((pts << 1) as u8) | 1,
        ]);
        assert_eq!(video_pes_start(&pes), Some(Some(pts)));
        pes[7] = 0;
        assert_eq!(video_pes_start(&pes), Some(None), "no PTS");
        assert_eq!(video_pes_start(&[0, 0, 1, 0xc0]), None, "audio");
    }
}
