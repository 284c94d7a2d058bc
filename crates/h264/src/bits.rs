//! Reads fixed-width and Exp-Golomb fields (H.264 9.1) from a NAL unit's payload.

/// A bit reader over a NAL unit's payload (header byte excluded) that skips emulation
/// prevention bytes as it goes (7.4.1: `00 00 03` → `00 00`, the `03` only stops a false start
/// code), so a slice header is read without copying the slice.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    index: usize,
    bit: u8,
    zeros: u8,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Self {
        Self {
            bytes: payload,
            index: 0,
            bit: 0,
            zeros: 0,
        }
    }

    /// One bit; `None` past the end.
    pub(crate) fn u1(&mut self) -> Option<u32> {
        if self.bit == 0 {
            let byte = *self.bytes.get(self.index)?;
            if self.zeros >= 2 && byte == 3 {
                self.index += 1;
                self.zeros = 0;
                return self.u1();
            }
            self.zeros = if byte == 0 { self.zeros + 1 } else { 0 };
        }
        let byte = *self.bytes.get(self.index)?;
        let value = u32::from((byte >> (7 - self.bit)) & 1);
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.index += 1;
        }
        Some(value)
    }

    /// `n` bits (at most 32), most significant first.
    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc: u32, _| Some((acc << 1) | self.u1()?))
    }

    /// An unsigned Exp-Golomb code, ue(v); `None` past the end or for codes over 32 bits.
    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut leading = 0;
        while self.u1()? == 0 {
            leading += 1;
            if leading > 31 {
                return None;
            }
        }
        Some((1u32 << leading) - 1 + self.bits(leading)?)
    }

    /// A signed Exp-Golomb code, se(v).
    pub(crate) fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::BitReader;

    #[test]
    fn exp_golomb_codes_and_emulation_prevention() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3, 4; then se of 00110 (k=5) is +3.
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1001_1000]);
        let codes: Vec<u32> = (0..5).filter_map(|_| r.ue()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(r.se(), Some(3));
        // 00 00 03 01: the 03 is skipped, so 24 bits read as 00 00 01.
        let mut r = BitReader::new(&[0, 0, 3, 1]);
        assert_eq!(r.bits(24), Some(1));
        assert_eq!(r.u1(), None);
        // 16 zeros, (03 skipped), then "1" and 16 zero bits: 2^16 - 1.
        let mut r = BitReader::new(&[0x00, 0x00, 0x03, 0x80, 0x00, 0x00, 0x00]);
        assert_eq!(r.ue(), Some(65_535));
        // 33 leading zeros is no valid code.
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0x80]).ue(), None);
    }
}
