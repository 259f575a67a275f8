//! Huffman tables and the entropy decoder of baseline JPEG (ITU T.81 §F.2).
//!
//! The bit reader keeps up to 64 bits in a register and refills it eight bytes at a time when
//! those bytes hold no `0xFF` (so no stuffing and no marker), byte by byte otherwise. A marker
//! or the end of the data feeds zero bits, as libjpeg does, and counts them, so that the caller
//! can tell afterwards whether the scan really held all the bits it decoded. Each table has a
//! 9-bit lookup for short codes and, for AC tables, a second lookup that decodes a short code
//! *and* its magnitude bits in one step, which covers most coefficients of a photograph.

/// Bits looked up at once.
const LOOKAHEAD: u32 = 9;

/// Natural (row-major) position of the k-th coefficient in zig-zag order, padded so that a
/// run past the end lands on the last entry instead of outside the array.
pub(crate) const ZIGZAG_TO_NATURAL: [usize; 80] = {
    let order: [usize; 64] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
        6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38,
        31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];
    let mut padded = [63usize; 80];
    let mut i = 0;
    while i < 64 {
        padded[i] = order[i];
        i += 1;
    }
    padded
};

/// How the entropy-coded data is not what a valid baseline JPEG holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadData {
    /// The data ended (a marker or the end of the file came) before every MCU was decoded.
    Ended,
    /// Bits that are no code of the Huffman table, or a value out of range.
    BadCode,
    /// The restart marker due is missing (`found: None`) or has another number.
    Restart {
        /// The marker number due, 0..=7.
        expected: u8,
        /// The number found instead, if a restart marker was there at all.
        found: Option<u8>,
    },
    /// Every MCU was decoded but the file ends without its end-of-image marker.
    NoEnd,
    /// Every MCU was decoded with this many bytes of data left before the marker.
    Extraneous(u16),
}

/// One Huffman table, ready for decoding.
#[derive(Clone)]
pub(crate) struct HuffmanTable {
    /// Indexed by the next 9 bits: `(length << 8) | symbol`, or 0 for a longer code.
    lookup: [u16; 1 << LOOKAHEAD],
    /// Indexed by the next 9 bits, for AC tables: `(value << 8) | (run << 4) | bits used` when a
    /// code and its magnitude bits fit in 9 bits, else 0.
    fast_ac: [i16; 1 << LOOKAHEAD],
    /// Largest code of each length (index 1..=16), −1 when there is none.
    max_code: [i32; 18],
    /// Added to a code of each length to index `symbols`.
    symbol_offset: [i32; 17],
    /// The symbols, in code order.
    symbols: Vec<u8>,
}

impl HuffmanTable {
    /// Builds a table from a `DHT` definition: the number of codes of each length 1..=16 and
    /// the symbols in order. `None` when the counts describe an impossible code.
    pub(crate) fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<HuffmanTable> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total != symbols.len() || total > 256 {
            return None;
        }
        let mut lookup = [0u16; 1 << LOOKAHEAD];
        let mut max_code = [-1i32; 18];
        let mut symbol_offset = [0i32; 17];
        let mut code: u32 = 0;
        let mut index = 0usize;
        for length in 1..=16u32 {
            symbol_offset[length as usize] = index as i32 - code as i32;
            for _ in 0..counts[length as usize - 1] {
                if code >= 1 << length {
                    return None;
                }
                if length <= LOOKAHEAD {
                    let shift = LOOKAHEAD - length;
                    let first = (code << shift) as usize;
                    let entry = ((length as u16) << 8) | symbols[index] as u16;
                    lookup[first..first + (1 << shift)].fill(entry);
                }
                code += 1;
                index += 1;
            }
            if counts[length as usize - 1] > 0 {
                max_code[length as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        max_code[17] = i32::MAX;
        let mut fast_ac = [0i16; 1 << LOOKAHEAD];
        for (peek, slot) in fast_ac.iter_mut().enumerate() {
            let entry = lookup[peek];
            let (length, symbol) = ((entry >> 8) as u32, (entry & 0xFF) as u32);
            let (run, size) = (symbol >> 4, symbol & 15);
            // A value of up to 7 bits fits the entry's signed high byte.
            if length == 0 || size == 0 || size > 7 || length + size > LOOKAHEAD {
                continue;
            }
            let magnitude = (peek as u32 >> (LOOKAHEAD - length - size)) & ((1 << size) - 1);
            let value = extend(magnitude as i32, size);
            *slot = ((value << 8) as i16) | ((run << 4) as i16) | (length + size) as i16;
        }
        Some(HuffmanTable { lookup, fast_ac, max_code, symbol_offset, symbols: symbols.to_vec() })
    }
}

/// Decodes a code longer than the lookup from the next 16 bits of `bits`: the symbol and the
/// code's length.
#[cold]
#[inline(never)]
fn long_symbol(bits: u64, table: &HuffmanTable) -> Result<(u8, u32), BadData> {
    let mut length = LOOKAHEAD + 1;
    let mut code = (bits >> (64 - length)) as i32;
    while code > table.max_code[length as usize] {
        length += 1;
        if length > 16 {
            return Err(BadData::BadCode);
        }
        code = (bits >> (64 - length)) as i32;
    }
    let index = code + table.symbol_offset[length as usize];
    let symbol =
        *table.symbols.get(usize::try_from(index).map_err(|_| BadData::BadCode)?).ok_or(BadData::BadCode)?;
    Ok((symbol, length))
}

/// The signed value of `size` magnitude bits (T.81 Figure F.12).
#[inline(always)]
fn extend(bits: i32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if bits < 1 << (size - 1) {
        bits - (1 << size) + 1
    } else {
        bits
    }
}

/// True when one of the eight bytes is `0xFF`.
#[inline(always)]
fn has_ff_byte(word: u64) -> bool {
    let inverted = !word;
    (inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080) != 0
}

/// Reads the entropy-coded bits of a scan.
///
/// It is `Copy` so that the block decoder can work on a copy in registers and store it back
/// once per block; the slow paths take and return it by value for the same reason.
#[derive(Clone, Copy)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load.
    position: usize,
    /// Buffered bits, most significant first; bits below `count` are zero.
    bits: u64,
    /// How many of `bits` are valid.
    count: u32,
    /// Zero bytes fed because a marker or the end of the data was reached.
    padding_bytes: u32,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `data` (the bytes after a scan header, or after a restart).
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self::new_at(data, 0)
    }

    fn new_at(data: &'a [u8], position: usize) -> Self {
        BitReader { data, position, bits: 0, count: 0, padding_bytes: 0 }
    }

    /// Whether more bits were decoded than the data held before its marker or end.
    pub(crate) fn overran(&self) -> bool {
        self.padding_bytes * 8 > self.count
    }

    /// The reader just after the restart marker that must come next, which has to be `RSTn`
    /// with `n == expected`; the bits left before it are padding. (By value, like the other
    /// slow paths, so that the caller's copy can live in registers.)
    pub(crate) fn restart(self, expected: u8) -> Result<Self, BadData> {
        if self.overran() {
            return Err(BadData::Ended);
        }
        let at = self.position;
        match self.data.get(at..at + 2) {
            Some(&[0xFF, marker]) if marker == 0xD0 + expected => Ok(BitReader::new_at(self.data, at + 2)),
            Some(&[0xFF, marker @ 0xD0..=0xD7]) => {
                Err(BadData::Restart { expected, found: Some(marker - 0xD0) })
            }
            None => Err(BadData::Ended),
            _ => Err(BadData::Restart { expected, found: None }),
        }
    }

    /// The marker that ends the data after what was decoded, and how many whole bytes of data
    /// were left undecoded before it (0 in a well-formed file: the last byte's unused bits are
    /// padding); `None` when the data ends without a marker.
    pub(crate) fn end_marker(&self) -> Option<(usize, u8)> {
        let rest = self.data.get(self.position..)?;
        let at = rest.windows(2).position(|pair| pair[0] == 0xFF && pair[1] != 0x00 && pair[1] != 0xFF)?;
        let real_bits = self.count.saturating_sub(self.padding_bytes * 8);
        let stuffed = rest[..at].windows(2).filter(|pair| *pair == [0xFF, 0x00]).count();
        let fill = rest[..at].iter().rev().take_while(|&&b| b == 0xFF).count();
        let unread = at - stuffed - fill;
        Some((real_bits as usize / 8 + unread, rest[at + 1]))
    }

    /// Makes sure at least 32 bits are buffered (real or padding).
    #[inline(always)]
    fn fill(&mut self) {
        if self.count >= 32 {
            return;
        }
        if let Some(chunk) = self.data.get(self.position..self.position + 8) {
            let word = u64::from_be_bytes(chunk.try_into().expect("eight bytes"));
            if !has_ff_byte(word) {
                let take = (64 - self.count) / 8;
                let new_bits = take * 8;
                self.bits |= (word >> (64 - new_bits)) << (64 - self.count - new_bits);
                self.count += new_bits;
                self.position += take as usize;
                return;
            }
        }
        *self = self.fill_bytewise();
    }

    #[cold]
    #[inline(never)]
    fn fill_bytewise(mut self) -> Self {
        while self.count <= 56 {
            let byte = match self.data.get(self.position) {
                Some(&0xFF) => {
                    if self.data.get(self.position + 1) == Some(&0x00) {
                        self.position += 2;
                        0xFF
                    } else {
                        // A marker: stay in front of it and feed zeros.
                        self.padding_bytes += 1;
                        0
                    }
                }
                Some(&byte) => {
                    self.position += 1;
                    byte
                }
                None => {
                    self.padding_bytes += 1;
                    0
                }
            };
            self.bits |= (byte as u64) << (56 - self.count);
            self.count += 8;
        }
        self
    }

    #[inline(always)]
    fn peek(&self) -> usize {
        (self.bits >> (64 - LOOKAHEAD)) as usize
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.bits <<= n;
        self.count -= n;
    }

    /// Decodes one Huffman symbol; needs 16 buffered bits.
    #[inline(always)]
    fn symbol(&mut self, table: &HuffmanTable) -> Result<u8, BadData> {
        let entry = table.lookup[self.peek()];
        if entry != 0 {
            self.consume((entry >> 8) as u32);
            return Ok(entry as u8);
        }
        let (symbol, length) = long_symbol(self.bits, table)?;
        self.consume(length);
        Ok(symbol)
    }

    /// Reads `size` (≤ 16) magnitude bits and extends them to a signed value.
    #[inline(always)]
    fn receive_extend(&mut self, size: u32) -> i32 {
        if size == 0 {
            return 0;
        }
        let bits = (self.bits >> (64 - size)) as i32;
        self.consume(size);
        extend(bits, size)
    }

    /// Decodes one 8×8 block: the DC difference (added to `predictor`) and the AC run-lengths.
    /// With `STORE`, writes the coefficients in natural order into `block`, which must be all
    /// zeros; without, only advances past them (for components that are not output).
    ///
    /// Call it on a reader in a local variable (a copy), so that its state stays in registers.
    #[inline(always)]
    pub(crate) fn decode_block<const STORE: bool>(
        &mut self,
        dc: &HuffmanTable,
        ac: &HuffmanTable,
        predictor: &mut i32,
        block: &mut [i16; 64],
    ) -> Result<(), BadData> {
        self.fill();
        let size = self.symbol(dc)? as u32;
        if size > 16 {
            return Err(BadData::BadCode);
        }
        self.fill();
        *predictor = predictor.wrapping_add(self.receive_extend(size));
        if STORE {
            block[0] = *predictor as i16;
        }
        let mut k = 1usize;
        while k < 64 {
            self.fill();
            let fast = ac.fast_ac[self.peek()];
            if fast != 0 {
                k += ((fast >> 4) & 15) as usize;
                self.consume((fast & 15) as u32);
                if STORE {
                    block[ZIGZAG_TO_NATURAL[k]] = fast >> 8;
                }
                k += 1;
                continue;
            }
            let symbol = self.symbol(ac)?;
            let (run, size) = ((symbol >> 4) as usize, (symbol & 15) as u32);
            if size == 0 {
                if run != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += run;
            let value = self.receive_extend(size);
            if STORE {
                block[ZIGZAG_TO_NATURAL[k]] = value as i16;
            }
            k += 1;
        }
        // A run past the 63rd coefficient lands on the last one, as in libjpeg.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_follows_the_standard() {
        assert_eq!(extend(0, 1), -1);
        assert_eq!(extend(1, 1), 1);
        assert_eq!(extend(0b00, 2), -3);
        assert_eq!(extend(0b01, 2), -2);
        assert_eq!(extend(0b10, 2), 2);
        assert_eq!(extend(0b11, 2), 3);
        assert_eq!(extend(0, 11), -2047);
    }

    #[test]
    fn has_ff_byte_finds_it_anywhere() {
        assert!(!has_ff_byte(0x0102_0304_0506_07FE));
        for i in 0..8 {
            assert!(has_ff_byte(0xFFu64 << (8 * i)));
            assert!(has_ff_byte(0x1111_1111_1111_1111 | (0xFFu64 << (8 * i))));
        }
    }

    #[test]
    fn a_short_code_with_a_wide_value_decodes_exactly() {
        // DC: the 1-bit code 0 is size 0. AC: the 1-bit code 0 is (run 0, size 8), 10 is EOB.
        let mut counts = [0u8; 16];
        counts[0] = 1;
        let dc = HuffmanTable::new(&counts, &[0x00]).unwrap();
        counts[1] = 1;
        let ac = HuffmanTable::new(&counts, &[0x08, 0x00]).unwrap();
        // 0 (DC) | 0 11111111 (AC 255) | 10 (EOB) | padding
        let data = [0b0011_1111, 0b1110_0000];
        let mut reader = BitReader::new(&data);
        let (mut predictor, mut block) = (0, [0i16; 64]);
        reader.decode_block::<true>(&dc, &ac, &mut predictor, &mut block).unwrap();
        let mut expected = [0i16; 64];
        expected[1] = 255;
        assert_eq!(block, expected);
        assert!(!reader.overran());
    }

    #[test]
    fn an_oversubscribed_table_is_refused() {
        let mut counts = [0u8; 16];
        counts[0] = 3; // three 1-bit codes cannot exist
        assert!(HuffmanTable::new(&counts, &[1, 2, 3]).is_none());
    }

    #[test]
    fn stuffed_bytes_and_markers_are_read_as_the_standard_says() {
        // 0xFF 0x00 is one data byte 0xFF; then a marker stops the data.
        let data = [0xAB, 0xFF, 0x00, 0xCD, 0xFF, 0xD9];
        let mut reader = BitReader::new(&data);
        reader.fill();
        assert_eq!(reader.bits >> 40, 0xABFFCD);
        assert!(!reader.overran());
        reader.consume(24);
        assert!(!reader.overran(), "every real bit used, none beyond");
        reader.consume(1);
        assert!(reader.overran(), "a padding bit used");
    }
}
