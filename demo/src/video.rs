//! The simulated video source: frames of random type and size, cut into
//! datagrams that carry enough to reassemble and time them at the receiver.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Largest datagram payload the source sends; small enough for any path MTU.
pub const PACKET_SIZE: usize = 1400;

/// Bytes of the header at the start of every datagram.
pub const HEADER_SIZE: usize = 24;

/// An MPEG frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Intra-coded: everything after it depends on it; never dropped.
    I,
    /// Predicted from the previous I or P frame.
    P,
    /// Bidirectionally predicted: nothing depends on it.
    B,
}

impl FrameType {
    fn code(self) -> u8 {
        match self {
            FrameType::I => b'I',
            FrameType::P => b'P',
            FrameType::B => b'B',
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            b'I' => Some(FrameType::I),
            b'P' => Some(FrameType::P),
            b'B' => Some(FrameType::B),
            _ => None,
        }
    }
}

/// One frame of the source.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its type.
    pub kind: FrameType,
    /// Its datagrams, header included.
    pub packets: Vec<Vec<u8>>,
}

/// The paper's simulated server: random I/P/B frames, an I-frame every
/// `gop` frames. Seeded, so the managed and the unmanaged stream send the
/// same frames.
#[derive(Debug)]
pub struct Source {
    rng: StdRng,
    gop: u32,
    next: u32,
}

impl Source {
    /// A source with an I-frame every `gop` frames.
    pub fn new(seed: u64, gop: u32) -> Self {
        Source {
            rng: StdRng::seed_from_u64(seed),
            gop: gop.max(1),
            next: 0,
        }
    }

    /// The next frame, made at `made_at` (`CLOCK_MONOTONIC` nanoseconds, which
    /// the receiver shares: the test bed's namespaces are on one host). Sizes vary ±20 % around 20 kB (I), 7 kB (P), 2.8 kB (B):
    /// about 1 Mbit/s at 20 fps, a tenth of the 10 Mbit/s link.
    pub fn next_frame(&mut self, made_at: u64) -> Frame {
        let number = self.next;
        self.next += 1;
        let kind = if number % self.gop == 0 {
            FrameType::I
        } else if self.rng.random_bool(0.4) {
            FrameType::P
        } else {
            FrameType::B
        };
        let mean = match kind {
            FrameType::I => 20_000.0,
            FrameType::P => 7_000.0,
            FrameType::B => 2_800.0,
        };
        let size = (mean * self.rng.random_range(0.8..1.2)) as usize;
        let payload_per_packet = PACKET_SIZE - HEADER_SIZE;
        let count = size.div_ceil(payload_per_packet).max(1);
        let packets = (0..count)
            .map(|index| {
                let body = if index + 1 == count {
                    size - payload_per_packet * (count - 1)
                } else {
                    payload_per_packet
                };
                let mut packet = Header {
                    frame: number,
                    index: index as u16,
                    count: count as u16,
                    kind,
                    made_at,
                }
                .encode()
                .to_vec();
                packet.resize(HEADER_SIZE + body, 0);
                packet
            })
            .collect();
        Frame { kind, packets }
    }
}

/// What every datagram starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The frame's number.
    pub frame: u32,
    /// This packet's index in the frame.
    pub index: u16,
    /// Packets in the frame.
    pub count: u16,
    /// The frame's type.
    pub kind: FrameType,
    /// When the source made the frame, on `CLOCK_MONOTONIC`.
    pub made_at: u64,
}

impl Header {
    fn encode(self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0; HEADER_SIZE];
        bytes[0..4].copy_from_slice(b"QSKV");
        bytes[4..8].copy_from_slice(&self.frame.to_be_bytes());
        bytes[8..10].copy_from_slice(&self.index.to_be_bytes());
        bytes[10..12].copy_from_slice(&self.count.to_be_bytes());
        bytes[12] = self.kind.code();
        bytes[16..24].copy_from_slice(&self.made_at.to_be_bytes());
        bytes
    }

    /// Reads a header, or `None` for a datagram that is not the demo's.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_SIZE || &bytes[0..4] != b"QSKV" {
            return None;
        }
        let header = Header {
            frame: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
            index: u16::from_be_bytes(bytes[8..10].try_into().ok()?),
            count: u16::from_be_bytes(bytes[10..12].try_into().ok()?),
            kind: FrameType::from_code(bytes[12])?,
            made_at: u64::from_be_bytes(bytes[16..24].try_into().ok()?),
        };
        (header.index < header.count).then_some(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cut_into_packets_and_read_back() {
        let mut source = Source::new(7, 10);
        for number in 0..30 {
            let frame = source.next_frame(1_000 + u64::from(number));
            assert_eq!(number % 10 == 0, frame.kind == FrameType::I);
            for (index, packet) in frame.packets.iter().enumerate() {
                assert!(packet.len() <= PACKET_SIZE);
                let header = Header::decode(packet).unwrap();
                assert_eq!(header.frame, number);
                assert_eq!(usize::from(header.index), index);
                assert_eq!(usize::from(header.count), frame.packets.len());
                assert_eq!(header.kind, frame.kind);
                assert_eq!(header.made_at, 1_000 + u64::from(number));
            }
        }
        assert!(Header::decode(b"not a frame at all").is_none());
    }

    #[test]
    fn same_seed_same_frames() {
        let mut a = Source::new(3, 10);
        let mut b = Source::new(3, 10);
        for _ in 0..20 {
            assert_eq!(a.next_frame(5).packets, b.next_frame(5).packets);
        }
    }
}
