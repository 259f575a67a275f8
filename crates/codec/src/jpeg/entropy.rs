//! The entropy decoder: Huffman-coded coefficients of one MCU row at a time, with the DC
//! predictors and restart markers the standard prescribes.

use super::huffman::BitReader;
use super::{BadData, BaselineJpeg, Block};

/// The entropy decoder's state between MCU rows.
pub(super) struct EntropyDecoder<'j, 'a> {
    jpeg: &'j BaselineJpeg<'a>,
    pub(super) reader: BitReader<'a>,
    predictors: Vec<i32>,
    /// MCUs decoded so far (counted from the start of the image).
    mcus: usize,
    /// The MCU the reader started at: no restart marker precedes it in the data given.
    start_mcu: usize,
    /// The next restart marker's number.
    next_restart: u8,
}

impl<'j, 'a> EntropyDecoder<'j, 'a> {
    pub(super) fn new(jpeg: &'j BaselineJpeg<'a>) -> Self {
        EntropyDecoder {
            jpeg,
            reader: BitReader::new(jpeg.scan),
            predictors: vec![0; jpeg.components.len()],
            mcus: 0,
            start_mcu: 0,
            next_restart: 0,
        }
    }

    /// A decoder whose `scan` starts at restart interval `interval` (just after the marker that
    /// ends the one before): its DC predictors start from zero, as the standard resets them.
    pub(super) fn at_interval(jpeg: &'j BaselineJpeg<'a>, scan: &'a [u8], interval: usize) -> Self {
        let first = interval * jpeg.restart_interval;
        EntropyDecoder {
            jpeg,
            reader: BitReader::new(scan),
            predictors: vec![0; jpeg.components.len()],
            mcus: first,
            start_mcu: first,
            next_restart: (interval % 8) as u8,
        }
    }

    /// Handles the restart marker due before the next MCU, if one is.
    #[inline(always)]
    fn restart_if_due(&mut self, reader: BitReader<'a>) -> Result<BitReader<'a>, BadData> {
        let interval = self.jpeg.restart_interval;
        if interval > 0 && self.mcus > self.start_mcu && self.mcus.is_multiple_of(interval) {
            let reader = reader.restart(self.next_restart)?;
            self.next_restart = (self.next_restart + 1) % 8;
            self.predictors.fill(0);
            return Ok(reader);
        }
        Ok(reader)
    }

    /// Decodes `count` MCUs without keeping any block (the rows before a strip's own).
    pub(super) fn skip_mcus(&mut self, count: usize) -> Result<(), BadData> {
        let jpeg = self.jpeg;
        let mut scratch = [0i16; 64];
        let mut reader = self.reader;
        for _ in 0..count {
            reader = self.restart_if_due(reader)?;
            for (index, component) in jpeg.components.iter().enumerate() {
                let (dc, ac) = (&jpeg.dc_tables[index], &jpeg.ac_tables[index]);
                for _ in 0..component.vertical * component.horizontal {
                    reader.decode_block::<false>(dc, ac, &mut self.predictors[index], &mut scratch)?;
                }
            }
            self.mcus += 1;
        }
        self.reader = reader;
        if reader.overran() { Err(BadData::Ended) } else { Ok(()) }
    }

    /// Decodes the next MCU row, storing the luma blocks (which must be zero) and skipping the
    /// others.
    pub(super) fn decode_mcu_row(&mut self, luma_blocks: &mut [Block]) -> Result<(), BadData> {
        let jpeg = self.jpeg;
        let across = jpeg.luma_blocks_across();
        let mut scratch = [0i16; 64];
        // A copy in a local, so that the bit buffer stays in registers; stored back at the end.
        let mut reader = self.reader;
        for mcu in 0..jpeg.mcus_per_row {
            reader = self.restart_if_due(reader)?;
            for (index, component) in jpeg.components.iter().enumerate() {
                let (dc, ac) = (&jpeg.dc_tables[index], &jpeg.ac_tables[index]);
                let predictor = &mut self.predictors[index];
                for v in 0..component.vertical {
                    for h in 0..component.horizontal {
                        if index == jpeg.luma_index {
                            let block = &mut luma_blocks[v * across + mcu * component.horizontal + h];
                            reader.decode_block::<true>(dc, ac, predictor, block)?;
                        } else {
                            reader.decode_block::<false>(dc, ac, predictor, &mut scratch)?;
                        }
                    }
                }
            }
            self.mcus += 1;
        }
        self.reader = reader;
        if reader.overran() { Err(BadData::Ended) } else { Ok(()) }
    }

    /// Checks that the scan held every bit decoded.
    pub(super) fn finish(&self) -> Result<(), BadData> {
        if self.reader.overran() { Err(BadData::Ended) } else { Ok(()) }
    }
}
