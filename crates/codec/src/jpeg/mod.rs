//! dsobel's own decoder for the JPEGs that matter most: baseline (sequential, Huffman,
//! 8-bit) grayscale or YCbCr files in one scan, which is what cameras, phones and almost every
//! encoder write. It decodes only the Y plane, exactly as libjpeg does with its default IDCT
//! (so the luma is the one DESIGN §2 names), and it splits the work in two stages that can run
//! on two threads: the entropy decoding of each MCU row, which is serial by nature, and the
//! IDCT of its blocks, which the caller can overlap with everything after it (filter, encode).
//!
//! [`BaselineJpeg::parse`] returns `None` for anything else (progressive, arithmetic-coded,
//! 12-bit, several scans, RGB, CMYK); the caller then uses the general decoder. Corrupt or
//! truncated entropy data is never guessed at: it is reported as a [`ScanError`] that says
//! what is wrong and at which rows, and the image is refused.

mod huffman;
mod idct;
pub(crate) mod restart;

use std::sync::mpsc;

pub(crate) use huffman::BadData;
use huffman::{BitReader, HuffmanTable, ZIGZAG_TO_NATURAL};
use idct::Idct;

/// Coefficients of one 8×8 block, natural order.
type Block = [i16; 64];

/// One component of the frame, as the frame and scan headers describe it.
#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    horizontal: usize,
    vertical: usize,
    quant_table: usize,
    dc_table: usize,
    ac_table: usize,
}

/// A baseline JPEG whose headers have been read, ready to decode its Y plane.
pub(crate) struct BaselineJpeg<'a> {
    /// Image width in pixels.
    pub(crate) width: usize,
    /// Image height in pixels.
    pub(crate) height: usize,
    /// The `APP1` EXIF payload, if any (with its `Exif\0\0` prefix).
    pub(crate) exif: Option<&'a [u8]>,
    /// Components in scan order; the Y (or only) component is the one at `luma_index`.
    components: Vec<Component>,
    luma_index: usize,
    /// The Y component's quantization table, natural order.
    luma_quant: Block,
    /// Each scan component's DC and AC tables, in scan order.
    dc_tables: Vec<HuffmanTable>,
    ac_tables: Vec<HuffmanTable>,
    restart_interval: usize,
    mcus_per_row: usize,
    mcu_rows: usize,
    /// The entropy-coded data, from just after the scan header to the end of the file.
    scan: &'a [u8],
}

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize)
}

/// The frame header: size and components.
struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
}

/// What the segments before the first scan have said so far.
#[derive(Default)]
struct Headers<'a> {
    /// Quantization tables by slot, natural order.
    quant: [Option<Block>; 4],
    /// DC and AC Huffman tables by slot, as indexes into `tables`.
    dc: [Option<usize>; 4],
    ac: [Option<usize>; 4],
    tables: Vec<HuffmanTable>,
    frame: Option<Frame>,
    restart_interval: usize,
    exif: Option<&'a [u8]>,
    jfif: bool,
    adobe_transform: Option<u8>,
}

impl<'a> Headers<'a> {
    /// `SOF0`/`SOF1`: 8-bit samples, one or three components.
    fn read_frame(&mut self, segment: &[u8]) -> Option<()> {
        if self.frame.is_some() || segment.len() < 6 || segment[0] != 8 {
            return None;
        }
        let (height, width, count) = (be16(segment, 1)?, be16(segment, 3)?, segment[5] as usize);
        if width == 0 || height == 0 || !(count == 1 || count == 3) || segment.len() < 6 + 3 * count {
            return None;
        }
        let components = segment[6..6 + 3 * count]
            .chunks_exact(3)
            .map(|c| {
                let (horizontal, vertical) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
                let valid = (1..=4).contains(&horizontal) && (1..=4).contains(&vertical) && c[2] < 4;
                valid.then_some(Component {
                    id: c[0],
                    horizontal,
                    vertical,
                    quant_table: c[2] as usize,
                    dc_table: 0,
                    ac_table: 0,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        self.frame = Some(Frame { width, height, components });
        Some(())
    }

    /// `DHT`: one or more Huffman tables.
    fn read_huffman_tables(&mut self, segment: &[u8]) -> Option<()> {
        let mut at = 0;
        while at < segment.len() {
            let (class, slot) = (segment[at] >> 4, (segment[at] & 15) as usize);
            let counts: &[u8; 16] = segment.get(at + 1..at + 17)?.try_into().ok()?;
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let symbols = segment.get(at + 17..at + 17 + total)?;
            if slot > 3 || class > 1 {
                return None;
            }
            self.tables.push(HuffmanTable::new(counts, symbols)?);
            let slots = if class == 0 { &mut self.dc } else { &mut self.ac };
            slots[slot] = Some(self.tables.len() - 1);
            at += 17 + total;
        }
        Some(())
    }

    /// `DQT`: one or more quantization tables, 8- or 16-bit.
    fn read_quant_tables(&mut self, segment: &[u8]) -> Option<()> {
        let mut at = 0;
        while at < segment.len() {
            let (precision, slot) = (segment[at] >> 4, (segment[at] & 15) as usize);
            let size = if precision == 0 { 64 } else { 128 };
            let values = segment.get(at + 1..at + 1 + size)?;
            if slot > 3 || precision > 1 {
                return None;
            }
            let mut table = [0i16; 64];
            for k in 0..64 {
                let value = if precision == 0 { values[k] as u16 } else { be16(values, 2 * k)? as u16 };
                // libjpeg keeps quantizers in 16-bit signed multipliers.
                table[ZIGZAG_TO_NATURAL[k]] = value as i16;
            }
            self.quant[slot] = Some(table);
            at += 1 + size;
        }
        Some(())
    }

    /// Whether three components are RGB rather than YCbCr, by libjpeg's rules: JFIF means
    /// YCbCr, else an Adobe marker's transform flag decides, else component ids `R`, `G`, `B`.
    fn is_rgb(&self, components: &[Component]) -> bool {
        match self.adobe_transform {
            _ if self.jfif => false,
            Some(transform) => transform == 0,
            None => components.iter().map(|c| c.id).eq(*b"RGB"),
        }
    }

    /// `SOS`: the scan must hold every component, all 64 coefficients, in one pass.
    fn start_scan(self, segment: &[u8], scan: &'a [u8]) -> Option<BaselineJpeg<'a>> {
        let Frame { width, height, components } = self.frame.as_ref()?;
        let (width, height) = (*width, *height);
        let count = *segment.first()? as usize;
        if count != components.len() || segment.len() < 4 + 2 * count {
            return None;
        }
        let spectral = (segment[1 + 2 * count], segment[2 + 2 * count], segment[3 + 2 * count]);
        if spectral != (0, 63, 0) || (count == 3 && self.is_rgb(components)) {
            return None;
        }
        // Components in scan order, with their tables.
        let mut ordered: Vec<Component> = Vec::with_capacity(count);
        let (mut dc_tables, mut ac_tables) = (Vec::new(), Vec::new());
        for pair in segment[1..1 + 2 * count].chunks_exact(2) {
            let (id, selectors) = (pair[0], pair[1]);
            if ordered.iter().any(|c| c.id == id) {
                return None;
            }
            let mut component = *components.iter().find(|c| c.id == id)?;
            component.dc_table = (selectors >> 4) as usize;
            component.ac_table = (selectors & 15) as usize;
            dc_tables.push(self.tables.get((*self.dc.get(component.dc_table)?)?)?.clone());
            ac_tables.push(self.tables.get((*self.ac.get(component.ac_table)?)?)?.clone());
            ordered.push(component);
        }
        // The first frame component is Y (or the only one).
        let luma_index = ordered.iter().position(|c| c.id == components[0].id)?;
        let luma = ordered[luma_index];
        let luma_quant = self.quant[luma.quant_table]?;
        let (mcus_per_row, mcu_rows) = if count == 1 {
            // A single-component scan is not interleaved: one block per MCU.
            ordered[0].horizontal = 1;
            ordered[0].vertical = 1;
            (width.div_ceil(8), height.div_ceil(8))
        } else {
            let h_max = ordered.iter().map(|c| c.horizontal).max()?;
            let v_max = ordered.iter().map(|c| c.vertical).max()?;
            let blocks_per_mcu: usize = ordered.iter().map(|c| c.horizontal * c.vertical).sum();
            // Y must have the full resolution for its plane to be the image.
            if luma.horizontal != h_max || luma.vertical != v_max || blocks_per_mcu > 10 {
                return None;
            }
            (width.div_ceil(8 * h_max), height.div_ceil(8 * v_max))
        };
        Some(BaselineJpeg {
            width,
            height,
            exif: self.exif,
            components: ordered,
            luma_index,
            luma_quant,
            dc_tables,
            ac_tables,
            restart_interval: self.restart_interval,
            mcus_per_row,
            mcu_rows,
            scan,
        })
    }
}

impl<'a> BaselineJpeg<'a> {
    /// Reads the headers up to the first scan. `None` when the file is not one this decoder
    /// handles (or its headers are broken: the general decoder then gives the error).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<BaselineJpeg<'a>> {
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        let mut headers = Headers::default();
        let mut position = 2;
        loop {
            if *bytes.get(position)? != 0xFF {
                return None;
            }
            while *bytes.get(position)? == 0xFF {
                position += 1;
            }
            let marker = bytes[position];
            position += 1;
            if matches!(marker, 0x01 | 0xD0..=0xD9) {
                return None;
            }
            let length = be16(bytes, position)?;
            let segment = bytes.get(position + 2..position + length.checked_sub(2)? + 2)?;
            position += length;
            match marker {
                0xC0 | 0xC1 => headers.read_frame(segment)?,
                // Progressive, lossless, hierarchical and arithmetic-coded frames, and
                // arithmetic conditioning: the general decoder's.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCC | 0xCD..=0xCF => return None,
                0xC4 => headers.read_huffman_tables(segment)?,
                0xDB => headers.read_quant_tables(segment)?,
                0xDD => headers.restart_interval = be16(segment, 0)?,
                0xE0 => headers.jfif |= segment.starts_with(b"JFIF\0"),
                0xE1 if headers.exif.is_none() && segment.starts_with(b"Exif\0\0") => {
                    headers.exif = Some(segment)
                }
                0xEE if segment.starts_with(b"Adobe") && segment.len() >= 12 => {
                    headers.adobe_transform = Some(segment[11])
                }
                0xDA => return headers.start_scan(segment, &bytes[position..]),
                _ => {}
            }
        }
    }

    fn luma(&self) -> &Component {
        &self.components[self.luma_index]
    }

    /// Luma pixel rows covered by one MCU row.
    fn rows_per_mcu_row(&self) -> usize {
        8 * self.luma().vertical
    }

    /// Luma blocks across one MCU row (including those past the right edge).
    fn luma_blocks_across(&self) -> usize {
        self.mcus_per_row * self.luma().horizontal
    }

    /// Luma blocks in one MCU row.
    fn luma_blocks_per_mcu_row(&self) -> usize {
        self.luma_blocks_across() * self.luma().vertical
    }

    /// Decodes the Y plane into `luma` (`width × height` bytes) on this thread.
    pub(crate) fn decode_luma(&self, luma: &mut [u8]) -> Result<(), ScanError> {
        self.decode_luma_streaming(luma, None, |_, _| Ok::<(), std::convert::Infallible>(())).map_err(|e| {
            match e {
                StreamError::Data(bad) => bad,
                // Only a decode on two threads asks for a thread.
                StreamError::NoThread => ScanError { bad: BadData::Ended, mcu_row: 0, jpeg: self.geometry() },
                StreamError::Consumer(never) => match never {},
            }
        })
    }

    fn geometry(&self) -> Geometry {
        Geometry { height: self.height, rows_per_mcu_row: self.rows_per_mcu_row() }
    }

    /// The error for `bad` met while decoding MCU row `mcu_row` (`mcu_rows` for the end).
    pub(crate) fn scan_error(&self, bad: BadData, mcu_row: usize) -> ScanError {
        ScanError { bad, mcu_row, jpeg: self.geometry() }
    }

    /// The end of a whole scan: every bit decoded was in the data, and a marker follows.
    fn check_end(&self, entropy: &EntropyDecoder<'_, 'a>) -> Result<(), ScanError> {
        entropy.finish().map_err(|bad| self.scan_error(bad, self.mcu_rows))?;
        match entropy.reader.end_marker() {
            Some((0, _)) => Ok(()),
            // Data the frame has no room for: the header or the data is wrong.
            Some((extra, _)) => {
                Err(self
                    .scan_error(BadData::Extraneous(u16::try_from(extra).unwrap_or(u16::MAX)), self.mcu_rows))
            }
            None => Err(self.scan_error(BadData::NoEnd, self.mcu_rows)),
        }
    }

    /// Decodes the Y plane into `luma`, calling `rows_ready(luma, n)` each time the first `n`
    /// rows are final. With `two_threads: Some(burst_rows)`, the entropy decoding runs on a
    /// second thread while this thread runs the IDCT and `rows_ready`; the second thread may
    /// run ahead by `burst_rows` rows (and a little more), so that it need not wait while
    /// `rows_ready` does that many rows' work at once.
    pub(crate) fn decode_luma_streaming<E>(
        &self,
        luma: &mut [u8],
        two_threads: Option<usize>,
        mut rows_ready: impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), StreamError<E>> {
        assert_eq!(luma.len(), self.width * self.height, "luma buffer of the wrong size");
        let idct = Idct::detect();
        let blocks = self.luma_blocks_per_mcu_row();
        let mut finish_row = |row: usize, coefficients: &[Block], luma: &mut [u8]| {
            self.idct_mcu_row(idct, row, coefficients, luma, 0);
            let done = ((row + 1) * self.rows_per_mcu_row()).min(self.height);
            rows_ready(&luma[..done * self.width], done).map_err(StreamError::Consumer)
        };
        let Some(burst_rows) = two_threads else {
            let mut entropy = EntropyDecoder::new(self);
            let mut coefficients = vec![[0i16; 64]; blocks];
            for row in 0..self.mcu_rows {
                coefficients.fill([0; 64]);
                entropy
                    .decode_mcu_row(&mut coefficients)
                    .map_err(|bad| StreamError::Data(self.scan_error(bad, row)))?;
                finish_row(row, &coefficients, luma)?;
            }
            return self.check_end(&entropy).map_err(StreamError::Data);
        };
        // Coefficient buffers in flight between the two threads: enough for the burst, but at
        // most an eighth of the MCU rows (coefficients take two bytes a pixel, so a quarter
        // of the luma's size), so that a huge burst does not hold the whole image twice.
        let buffers = (burst_rows.div_ceil(self.rows_per_mcu_row()) + 2)
            .min((self.mcu_rows / 8).max(4))
            .min(self.mcu_rows + 1);
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<Vec<Block>, ScanError>>(buffers);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<Block>>(buffers);
        for _ in 0..buffers {
            empty_tx.send(vec![[0i16; 64]; blocks]).expect("the receiver is here");
        }
        std::thread::scope(|scope| {
            // Owned by this closure, so that an early return drops them, which stops the
            // producer, before the scope waits for it.
            let (full_rx, empty_tx) = (full_rx, empty_tx);
            let producer =
                std::thread::Builder::new().name("jpeg-entropy".into()).spawn_scoped(scope, move || {
                    let mut entropy = EntropyDecoder::new(self);
                    for row in 0..self.mcu_rows {
                        // Buffers come back zeroed by the consumer, which has them in cache.
                        let Ok(mut coefficients) = empty_rx.recv() else { return };
                        let result = entropy
                            .decode_mcu_row(&mut coefficients)
                            .map(|()| coefficients)
                            .map_err(|bad| self.scan_error(bad, row));
                        let failed = result.is_err();
                        if full_tx.send(result).is_err() || failed {
                            return;
                        }
                    }
                    let _ = full_tx.send(self.check_end(&entropy).map(|()| Vec::new()));
                });
            if producer.is_err() {
                // No second thread to be had: the caller decodes on this one.
                return Err(StreamError::NoThread);
            }
            // The producer only hangs up after sending its error, or when this side is gone.
            let lost = |row| StreamError::Data(self.scan_error(BadData::Ended, row));
            for row in 0..self.mcu_rows {
                let mut coefficients = full_rx.recv().map_err(|_| lost(row))?.map_err(StreamError::Data)?;
                finish_row(row, &coefficients, luma)?;
                coefficients.fill([0; 64]);
                // The producer may have stopped already; then the buffer is simply dropped.
                let _ = empty_tx.send(coefficients);
            }
            full_rx.recv().map_err(|_| lost(self.mcu_rows))?.map_err(StreamError::Data)?;
            Ok(())
        })
    }

    /// The IDCT of one MCU row's luma blocks into `luma`, cropped to the image; `luma` holds
    /// the image's rows from `base_row` on.
    fn idct_mcu_row(&self, idct: Idct, row: usize, coefficients: &[Block], luma: &mut [u8], base_row: usize) {
        let (width, height) = (self.width, self.height);
        let across = self.luma_blocks_across();
        let mut edge = [0u8; 64];
        for (v, blocks) in coefficients.chunks_exact(across).enumerate() {
            let top = row * self.rows_per_mcu_row() + 8 * v;
            if top >= height {
                break;
            }
            for (h, block) in blocks.iter().enumerate().take(width.div_ceil(8)) {
                let left = 8 * h;
                if left + 8 <= width && top + 8 <= height {
                    idct.run(block, &self.luma_quant, &mut luma[(top - base_row) * width + left..], width);
                } else {
                    idct.run(block, &self.luma_quant, &mut edge, 8);
                    let (w, h) = ((width - left).min(8), (height - top).min(8));
                    for y in 0..h {
                        let at = (top - base_row + y) * width + left;
                        luma[at..at + w].copy_from_slice(&edge[8 * y..8 * y + w]);
                    }
                }
            }
        }
    }
}

/// Why a streaming decode stopped.
#[derive(Debug)]
pub(crate) enum StreamError<E> {
    /// The entropy-coded data is corrupt or truncated.
    Data(ScanError),
    /// A decode on two threads could not start its second thread.
    NoThread,
    /// The consumer of the rows failed.
    Consumer(E),
}

/// The image's rows, for saying where a scan went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    height: usize,
    rows_per_mcu_row: usize,
}

/// What is wrong with a scan, and where: said in plain words by its `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError {
    /// What is wrong.
    pub(crate) bad: BadData,
    /// The MCU row being decoded (the number of MCU rows when the end was checked).
    pub(crate) mcu_row: usize,
    jpeg: Geometry,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Geometry { height, rows_per_mcu_row } = self.jpeg;
        let first = (self.mcu_row * rows_per_mcu_row).min(height);
        let last = ((self.mcu_row + 1) * rows_per_mcu_row).min(height);
        match self.bad {
            BadData::Ended => write!(f, "the data ends after row {first} of {height}"),
            BadData::BadCode => write!(f, "the data is corrupt in rows {}–{last} of {height}", first + 1),
            BadData::Restart { expected, found: Some(found) } => write!(
                f,
                "restart marker {found} found where {expected} was expected (rows {}–{last} of {height})",
                first + 1
            ),
            BadData::Restart { expected, found: None } => {
                write!(f, "restart marker {expected} is missing (rows {}–{last} of {height})", first + 1)
            }
            BadData::NoEnd => write!(f, "the file ends without its end-of-image marker"),
            BadData::Extraneous(bytes) => {
                write!(f, "the data is corrupt: {bytes} bytes are left over after the last of {height} rows")
            }
        }
    }
}

/// The entropy decoder's state between MCU rows.
struct EntropyDecoder<'j, 'a> {
    jpeg: &'j BaselineJpeg<'a>,
    reader: BitReader<'a>,
    predictors: Vec<i32>,
    /// MCUs decoded so far (counted from the start of the image).
    mcus: usize,
    /// The MCU the reader started at: no restart marker precedes it in the data given.
    start_mcu: usize,
    /// The next restart marker's number.
    next_restart: u8,
}

impl<'j, 'a> EntropyDecoder<'j, 'a> {
    fn new(jpeg: &'j BaselineJpeg<'a>) -> Self {
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
    fn at_interval(jpeg: &'j BaselineJpeg<'a>, scan: &'a [u8], interval: usize) -> Self {
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
    fn skip_mcus(&mut self, count: usize) -> Result<(), BadData> {
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
    fn decode_mcu_row(&mut self, luma_blocks: &mut [Block]) -> Result<(), BadData> {
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
    fn finish(&self) -> Result<(), BadData> {
        if self.reader.overran() { Err(BadData::Ended) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg").join(name);
        std::fs::read(path).expect("fixture")
    }

    #[test]
    fn baseline_files_take_this_decoder_and_progressive_ones_do_not() {
        for name in ["q90-420.jpg", "q100-444.jpg", "gray-q90.jpg", "q50-420-restart.jpg", "tiny-1x1.jpg"] {
            let bytes = fixture(name);
            let jpeg = BaselineJpeg::parse(&bytes).unwrap_or_else(|| panic!("{name} refused"));
            let mut luma = vec![0; jpeg.width * jpeg.height];
            jpeg.decode_luma(&mut luma).unwrap_or_else(|_| panic!("{name} failed"));
        }
        assert!(BaselineJpeg::parse(&fixture("progressive-420.jpg")).is_none());
    }

    #[test]
    fn both_threadings_decode_the_same_rows_in_order() {
        let bytes = fixture("q90-420.jpg");
        let jpeg = BaselineJpeg::parse(&bytes).unwrap();
        let mut alone = vec![0; jpeg.width * jpeg.height];
        jpeg.decode_luma(&mut alone).unwrap();
        let mut streamed = vec![0; jpeg.width * jpeg.height];
        let mut seen = Vec::new();
        jpeg.decode_luma_streaming(&mut streamed, Some(16), |rows, ready| {
            assert_eq!(rows.len(), ready * jpeg.width);
            assert_eq!(rows, &alone[..rows.len()], "rows reported ready are final");
            seen.push(ready);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(streamed, alone);
        assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen.last() == Some(&jpeg.height), "{seen:?}");
    }

    #[test]
    fn a_consumer_that_gives_up_stops_the_entropy_thread() {
        let bytes = fixture("q90-420.jpg");
        let jpeg = BaselineJpeg::parse(&bytes).unwrap();
        let mut luma = vec![0; jpeg.width * jpeg.height];
        // The entropy thread fills every buffer and then waits for one back; it must be told.
        let result =
            jpeg.decode_luma_streaming(
                &mut luma,
                Some(8),
                |_, ready| {
                    if ready >= 16 { Err("enough") } else { Ok(()) }
                },
            );
        assert!(matches!(result, Err(StreamError::Consumer("enough"))));
    }

    #[test]
    fn a_truncated_scan_is_reported_not_guessed() {
        let bytes = fixture("q90-420.jpg");
        let cut = &bytes[..bytes.len() / 2];
        let jpeg = BaselineJpeg::parse(cut).unwrap();
        let mut luma = vec![0; jpeg.width * jpeg.height];
        let error = jpeg.decode_luma(&mut luma).unwrap_err();
        assert_eq!(error.bad, BadData::Ended);
        let message = error.to_string();
        assert!(message.starts_with("the data ends after row "), "{message}");
        assert!(message.ends_with(&format!(" of {}", jpeg.height)), "{message}");
        let streamed = jpeg.decode_luma_streaming(&mut luma, Some(64), |_, _| Ok::<(), ()>(()));
        assert!(matches!(streamed, Err(StreamError::Data(ScanError { bad: BadData::Ended, .. }))));
    }

    #[test]
    fn a_scan_without_its_end_marker_is_reported() {
        let bytes = fixture("q90-420.jpg");
        assert_eq!(&bytes[bytes.len() - 2..], [0xFF, 0xD9]);
        let cut = &bytes[..bytes.len() - 2];
        let jpeg = BaselineJpeg::parse(cut).unwrap();
        let mut luma = vec![0; jpeg.width * jpeg.height];
        let error = jpeg.decode_luma(&mut luma).unwrap_err();
        assert_eq!(error.to_string(), "the file ends without its end-of-image marker");
    }
}
