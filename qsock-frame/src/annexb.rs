//! Start-code scanning over an elementary stream that arrives in pieces:
//! H.264/H.265 Annex B byte streams and MPEG-1/2 video both delimit their
//! units with `00 00 01`. A unit's first bytes (NAL header and slice header,
//! or picture header) may be split across packets, so the scanner keeps the
//! bytes of a unit it could not classify yet and retries when more arrive.

use super::{Shows, UnitError};

/// A unit not classified after this many bytes is classified from these
/// bytes alone; bounds the carry kept between packets.
const MAX_CARRY: usize = 256;

/// Where the scanner is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the first start code, or inside a unit already classified:
    /// the bytes up to the next start code are not looked at.
    Skipping,
    /// Inside a unit whose type is not known yet; `carry` holds its bytes.
    Collecting,
}

/// Finds start-code units in a stream given piece by piece.
#[derive(Debug)]
pub(crate) struct StartCodeScanner {
    position: Position,
    /// Collecting: the unit's bytes so far. Skipping: the last two bytes
    /// seen, which may begin a start code finished by the next piece.
    carry: Vec<u8>,
}

impl Default for StartCodeScanner {
    fn default() -> Self {
        StartCodeScanner {
            position: Position::Skipping,
            carry: Vec::new(),
        }
    }
}

fn start_codes(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    data.windows(3)
        .enumerate()
        .filter(|(_, window)| *window == [0, 0, 1])
        .map(|(position, _)| position)
}

/// Classifies one unit from its bytes after `00 00 01`, told whether the
/// unit is complete.
pub(crate) type UnitClassifier<'a> = dyn FnMut(&[u8], bool) -> Result<Shows, UnitError> + 'a;

/// A complete unit too short to hold what tells its type shows nothing.
fn classify_complete(unit: &[u8], classify: &mut UnitClassifier<'_>) -> Result<Shows, UnitError> {
    match classify(unit, true) {
        Err(UnitError::Truncated) => Ok(Shows::NOTHING),
        other => other,
    }
}

impl StartCodeScanner {
    /// Forgets everything: the stream restarts (a new PES packet).
    pub(crate) fn reset(&mut self) {
        self.position = Position::Skipping;
        self.carry.clear();
    }

    /// Ends the stream here (its PES packet is over): a unit still waiting
    /// for bytes is complete as it is, and shows what it can. Then forgets
    /// everything, as [`reset`](Self::reset) does.
    pub(crate) fn finish(&mut self, classify: &mut UnitClassifier<'_>) -> Result<Shows, UnitError> {
        let pending = std::mem::take(&mut self.carry);
        let position = self.position;
        self.reset();
        match position {
            Position::Collecting => classify_complete(&pending, classify),
            Position::Skipping => Ok(Shows::NOTHING),
        }
    }

    /// Scans the next piece of the stream. `classify` is given each unit's
    /// bytes from the one after `00 00 01`, and whether the unit is complete;
    /// an incomplete unit may answer `Truncated` to wait for more bytes.
    /// Returns what the units classified in this piece show.
    pub(crate) fn push(
        &mut self,
        piece: &[u8],
        classify: &mut UnitClassifier<'_>,
    ) -> Result<Shows, UnitError> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(piece);
        let mut shows = Shows::NOTHING;

        let mut unit_start = match self.position {
            Position::Collecting => Some(0),
            Position::Skipping => None,
        };
        // Start codes cannot overlap: 00 00 01 has no suffix that begins
        // another one.
        for code in start_codes(&data) {
            if let Some(start) = unit_start {
                shows.merge(classify_complete(&data[start..code], classify)?);
            }
            unit_start = Some(code + 3);
        }

        let Some(start) = unit_start else {
            self.keep_tail(&data);
            return Ok(shows);
        };
        // The last two bytes may be the start of the next start code rather
        // than the unit's.
        let unit_end = data.len().saturating_sub(2).max(start);
        match classify(&data[start..unit_end], false) {
            Ok(unit_shows) => {
                shows.merge(unit_shows);
                self.keep_tail(&data);
            }
            Err(UnitError::Truncated) if data.len() - start <= MAX_CARRY => {
                self.position = Position::Collecting;
                self.carry.extend_from_slice(&data[start..]);
            }
            Err(UnitError::Truncated) => {
                shows.merge(classify_complete(&data[start..unit_end], classify)?);
                self.keep_tail(&data);
            }
            Err(error) => {
                self.keep_tail(&data);
                return Err(error);
            }
        }
        Ok(shows)
    }

    fn keep_tail(&mut self, data: &[u8]) {
        self.position = Position::Skipping;
        self.carry.clear();
        self.carry
            .extend_from_slice(&data[data.len().saturating_sub(2)..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameType;

    /// Units that need their first two bytes: `01 x` shows Intra,
    /// `02 x` NonReference.
    fn two_byte_units(unit: &[u8], complete: bool) -> Result<Shows, UnitError> {
        match unit {
            [1, _, ..] => Ok(Shows::frame(FrameType::Intra)),
            [2, _, ..] => Ok(Shows::frame(FrameType::NonReference)),
            [_, _, ..] => Ok(Shows::NOTHING),
            _ if complete => Ok(Shows::NOTHING),
            _ => Err(UnitError::Truncated),
        }
    }

    #[test]
    fn units_in_one_piece() {
        let mut scanner = StartCodeScanner::default();
        let shows = scanner
            .push(
                &[9, 0, 0, 1, 2, 5, 5, 0, 0, 0, 1, 1, 7, 7, 7],
                &mut two_byte_units,
            )
            .expect("valid");
        assert_eq!(shows.frame_type, FrameType::Intra);
    }

    #[test]
    fn start_code_and_unit_split_over_pieces() {
        let stream = [7, 7, 0, 0, 1, 1, 9, 9, 9];
        for split_at in 0..stream.len() {
            let mut scanner = StartCodeScanner::default();
            let first = scanner
                .push(&stream[..split_at], &mut two_byte_units)
                .expect("valid");
            let second = scanner
                .push(&stream[split_at..], &mut two_byte_units)
                .expect("valid");
            // The unit's two bytes end at offset 7; it is classified in the
            // piece that completes them (or, with the last two bytes held
            // back, the one after).
            let found = [first.frame_type, second.frame_type];
            assert_eq!(
                found.iter().filter(|t| **t == FrameType::Intra).count(),
                1,
                "split at {split_at}: {found:?}"
            );
        }
    }

    #[test]
    fn reset_forgets_a_partial_unit() {
        let mut scanner = StartCodeScanner::default();
        scanner
            .push(&[0, 0, 1, 1], &mut two_byte_units)
            .expect("valid");
        scanner.reset();
        let shows = scanner
            .push(&[5, 5, 5], &mut two_byte_units)
            .expect("valid");
        assert_eq!(shows, Shows::NOTHING);
    }
}
