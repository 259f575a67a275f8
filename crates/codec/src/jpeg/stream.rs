//! Decoding the Y plane: on one thread, or in two stages on two threads (the entropy
//! decoding of each MCU row, serial by nature, on a second thread; the IDCT of its blocks and
//! the caller's work on the rows, on this one).

use std::sync::mpsc;

use super::entropy::EntropyDecoder;
use super::idct::Idct;
use super::{BadData, BaselineJpeg, Block, ScanError, StreamError};

impl<'a> BaselineJpeg<'a> {
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
    pub(super) fn idct_mcu_row(
        &self,
        idct: Idct,
        row: usize,
        coefficients: &[Block],
        luma: &mut [u8],
        base_row: usize,
    ) {
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
