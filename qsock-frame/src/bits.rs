//! Reading H.264/H.265 syntax elements: RBSP extraction and an MSB-first bit
//! reader with unsigned Exp-Golomb codes (the only kind the headers read
//! here need).

/// The bytes of a NAL unit with emulation prevention removed: every
/// `00 00 03` becomes `00 00`. Slice headers are short, so callers pass only
/// the first few dozen bytes of a NAL unit.
pub(crate) fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        if byte == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(byte);
    }
    out
}

/// Ran out of bits: the data ends before the syntax element does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfBits;

/// Reads bits most significant first, as H.264/H.265 syntax is written.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    bit_position: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            bit_position: 0,
        }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, OutOfBits> {
        let byte = *self.data.get(self.bit_position / 8).ok_or(OutOfBits)?;
        let bit = (byte >> (7 - self.bit_position % 8)) & 1;
        self.bit_position += 1;
        Ok(bit == 1)
    }

    /// `u(n)` for `n` up to 32.
    pub(crate) fn bits(&mut self, count: u32) -> Result<u32, OutOfBits> {
        debug_assert!(count <= 32);
        let mut value: u64 = 0;
        for _ in 0..count {
            value = (value << 1) | u64::from(self.bit()?);
        }
        // At most 32 bits were shifted in.
        Ok(value as u32)
    }

    pub(crate) fn skip(&mut self, count: usize) -> Result<(), OutOfBits> {
        let end = self.bit_position.checked_add(count).ok_or(OutOfBits)?;
        if end > self.data.len() * 8 {
            return Err(OutOfBits);
        }
        self.bit_position = end;
        Ok(())
    }

    /// `ue(v)`: Exp-Golomb unsigned. Values beyond 32 bits cannot occur in a
    /// valid stream and are reported as running out of bits, the same as a
    /// cut-off code.
    pub(crate) fn ue(&mut self) -> Result<u32, OutOfBits> {
        let mut leading_zeros = 0u32;
        while !self.bit()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(OutOfBits);
            }
        }
        let suffix = self.bits(leading_zeros)?;
        Ok(((1u64 << leading_zeros) - 1 + u64::from(suffix)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            rbsp(&[0x65, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x03]),
            vec![0x65, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03]
        );
        // A 03 not after two zeros is data.
        assert_eq!(rbsp(&[0x00, 0x03, 0x03]), vec![0x00, 0x03, 0x03]);
    }

    #[test]
    fn exp_golomb_codes_decode() {
        // 1 | 010 | 011 | 00100 | 00101 | 0001000 -> ue 0,1,2,3,4,7
        // packed: 1010 0110 0100 0010 1000 1000 (then padding)
        let data = [0b1010_0110, 0b0100_0010, 0b1000_1000, 0];
        let mut reader = BitReader::new(&data);
        let values: Vec<u32> = (0..6).map(|_| reader.ue().expect("ue")).collect();
        assert_eq!(values, vec![0, 1, 2, 3, 4, 7]);
    }

    #[test]
    fn reading_past_the_end_is_reported() {
        let mut reader = BitReader::new(&[0b0000_0001]);
        assert_eq!(reader.ue(), Err(OutOfBits));
        let mut reader = BitReader::new(&[0xff]);
        assert_eq!(reader.bits(8), Ok(0xff));
        assert_eq!(reader.bit(), Err(OutOfBits));
        assert_eq!(BitReader::new(&[0; 8]).ue(), Err(OutOfBits));
        let mut reader = BitReader::new(&[0xab, 0xcd]);
        assert_eq!(reader.skip(12), Ok(()));
        assert_eq!(reader.bits(4), Ok(0xd));
        assert_eq!(reader.skip(1), Err(OutOfBits));
    }
}
