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

//!
//! The decoder is split by concern: [`headers`] reads the segments up to the scan,
//! [`entropy`] decodes MCU rows of Huffman-coded coefficients, [`stream`] runs the two-stage
//! pipeline (entropy decoding on one thread, IDCT and the caller's work on another), and
//! [`error`] says what is wrong with a scan and where. [`restart`] reads single restart
//! intervals, for strips decoded on their own.

mod entropy;
mod error;
mod headers;
mod huffman;
mod idct;
pub(crate) mod restart;
mod stream;

use entropy::EntropyDecoder;
pub(crate) use error::{Geometry, ScanError, StreamError};
pub(crate) use huffman::BadData;
use huffman::HuffmanTable;

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

impl<'a> BaselineJpeg<'a> {
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
