//! Cutting a baseline JPEG into strips by its restart intervals, with no decoding.
//!
//! A JPEG written with restart markers (`DRI` in the header, `RSTn` in the scan) resets its DC
//! predictors at the start of every interval, so each interval decodes on its own. The backend
//! scans the entropy-coded data for the markers ([`RestartIndex::read`], a byte scan, no
//! Huffman decoding) and gives each strip the byte range of the intervals that hold its rows
//! and its halo ([`RestartIndex::strip_bytes`]); a worker reads only those bytes and the
//! headers, and decodes only its own rows ([`decode_restart_strip`]). The rows are exactly
//! those of a whole-image decode: the same entropy decoder and IDCT run on the same data.
//!
//! A large strip's data is also cut into pieces of about [`PIECE_BYTES`], each starting at an
//! interval that starts an MCU row, so a worker can decode one piece while it reads the next
//! ([`decode_restart_strip_in_pieces`]) instead of reading all of it first.

use std::ops::Range;

use dsobel_kernel::StripSpec;

use super::idct::Idct;
use super::{BaselineJpeg, Block, EntropyDecoder};
use crate::decode::jpeg_orientation;
use crate::error::DecodeError;
use crate::orientation::Orientation;

/// Where the restart intervals of a baseline JPEG lie in its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartIndex {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Bytes before the entropy-coded data (every header a decoder needs).
    header_len: usize,
    /// Start of each interval's entropy-coded data.
    starts: Vec<usize>,
    /// End of the last interval's data (the `EOI` marker, or the end of the file).
    end: usize,
    /// MCUs per interval.
    interval_mcus: usize,
    mcus_per_row: usize,
    rows_per_mcu_row: usize,
}

/// The bytes one strip needs: the headers, and its intervals' entropy-coded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripBytes {
    /// The headers, `0..header_len` of the file.
    pub header: Range<u64>,
    /// The intervals' data, in the file.
    pub scan: Range<u64>,
    /// Index of the first interval of `scan`.
    pub first_interval: u64,
    /// Where the data after the first piece's may be cut: each is an interval that starts an
    /// MCU row, in increasing order, about [`PIECE_BYTES`] apart. Empty: one piece.
    pub pieces: Vec<PieceStart>,
}

/// About how many bytes of a strip's data make one piece (see [`StripBytes::pieces`]): small
/// enough that the first one arrives at once, large enough that reading a piece is one
/// request among few.
pub const PIECE_BYTES: u64 = 1 << 20;

/// The start of one piece of a strip's data, after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceStart {
    /// Where the interval's data starts in the file (just after its `RST` marker).
    pub offset: u64,
    /// The interval's index.
    pub interval: u64,
}

/// The byte range of each piece of the data `scan`, cut at `pieces`, and the interval each
/// starts at. A piece ends two bytes before the next one starts (the `RST` marker between).
pub fn piece_ranges(scan: &Range<u64>, first_interval: u64, pieces: &[PieceStart]) -> Vec<(Range<u64>, u64)> {
    let mut ranges = Vec::with_capacity(pieces.len() + 1);
    let (mut start, mut interval) = (scan.start, first_interval);
    for piece in pieces {
        ranges.push((start..piece.offset.saturating_sub(2).max(start), interval));
        (start, interval) = (piece.offset, piece.interval);
    }
    ranges.push((start..scan.end.max(start), interval));
    ranges
}

/// The headers' facts an index needs, read once the scan has started.
#[derive(Debug, Clone, Copy)]
struct Layout {
    width: usize,
    height: usize,
    header_len: usize,
    /// Intervals the header promises.
    expected: usize,
    interval_mcus: usize,
    mcus_per_row: usize,
    rows_per_mcu_row: usize,
}

/// How far into a file [`RestartScanner`] looks for the start of the scan before it leaves
/// the file to [`RestartIndex::read`] at the end (headers are rarely longer than a few
/// hundred kilobytes).
const HEADER_SEARCH: usize = 1 << 20;

/// Finds a JPEG's restart markers while its bytes arrive: [`RestartScanner::feed`] it the
/// bytes received so far after each chunk, and [`RestartScanner::finish`] it the whole file;
/// the index is the one [`RestartIndex::read`] gives for the file, found while it was still
/// arriving (each byte is looked at once).
#[derive(Debug, Default)]
pub struct RestartScanner {
    layout: Option<Layout>,
    /// The headers were not found where they should be: [`Self::finish`] reads the file whole.
    gave_up: bool,
    /// The file has no index (no restart interval, an EXIF rotation, a marker out of place).
    none: bool,
    starts: Vec<usize>,
    /// The next byte of the scan to look at.
    at: usize,
    /// Where the scan's data ends (its end marker), once seen.
    end: Option<usize>,
}

impl RestartScanner {
    /// A scanner for a new file.
    pub fn new() -> RestartScanner {
        RestartScanner::default()
    }

    /// Looks at the bytes of `so_far` (the file's first bytes, a longer prefix each call) that
    /// it has not looked at yet.
    pub fn feed(&mut self, so_far: &[u8]) {
        if self.gave_up || self.none || self.end.is_some() {
            return;
        }
        if self.layout.is_none() {
            let Some(jpeg) = BaselineJpeg::parse(so_far) else {
                // Not there yet, or not a file this decoder takes (the end decides which).
                self.gave_up =
                    so_far.len() > HEADER_SEARCH || (so_far.len() >= 2 && !so_far.starts_with(&[0xFF, 0xD8]));
                return;
            };
            if jpeg.restart_interval == 0 || jpeg_orientation(&jpeg) != Orientation::NoTransforms {
                self.none = true;
                return;
            }
            let header_len = so_far.len() - jpeg.scan.len();
            let expected = (jpeg.mcus_per_row * jpeg.mcu_rows).div_ceil(jpeg.restart_interval);
            self.layout = Some(Layout {
                width: jpeg.width,
                height: jpeg.height,
                header_len,
                expected,
                interval_mcus: jpeg.restart_interval,
                mcus_per_row: jpeg.mcus_per_row,
                rows_per_mcu_row: jpeg.rows_per_mcu_row(),
            });
            self.starts = Vec::with_capacity(expected);
            self.starts.push(header_len);
            self.at = header_len;
        }
        // In entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed byte), another 0xFF
        // (fill), RST0..RST7, or the marker that ends the scan.
        while let Some(offset) = memchr::memchr(0xFF, &so_far[self.at..]) {
            let position = self.at + offset;
            match so_far.get(position + 1) {
                Some(&marker @ 0xD0..=0xD7) => {
                    if usize::from(marker - 0xD0) != (self.starts.len() - 1) % 8 {
                        self.none = true;
                        return;
                    }
                    self.starts.push(position + 2);
                    self.at = position + 2;
                }
                Some(0x00) => self.at = position + 2,
                Some(0xFF) => self.at = position + 1,
                Some(_) => {
                    self.end = Some(position);
                    return;
                }
                // What follows this 0xFF has not arrived yet.
                None => {
                    self.at = position;
                    return;
                }
            }
        }
        self.at = so_far.len();
    }

    /// The index of the whole file `bytes` (of which every earlier call saw a prefix).
    pub fn finish(mut self, bytes: &[u8]) -> Option<RestartIndex> {
        self.feed(bytes);
        if self.gave_up {
            return RestartIndex::read(bytes);
        }
        let layout = self.layout.filter(|_| !self.none)?;
        if self.starts.len() != layout.expected || layout.expected < 2 {
            return None;
        }
        Some(RestartIndex {
            width: layout.width,
            height: layout.height,
            header_len: layout.header_len,
            starts: self.starts,
            // A file that ends on a 0xFF, or without an end marker: its data runs to the end.
            end: self.end.unwrap_or(bytes.len()),
            interval_mcus: layout.interval_mcus,
            mcus_per_row: layout.mcus_per_row,
            rows_per_mcu_row: layout.rows_per_mcu_row,
        })
    }
}

impl RestartIndex {
    /// Indexes the restart intervals of `bytes`. `None` when the file is not a baseline JPEG
    /// that dsobel's own decoder takes, has no restart interval, needs an EXIF rotation or
    /// flip (its strips would not be rows of the output), or its markers are not where the
    /// header says they must be (then the file is decoded whole, and its damage reported there).
    pub fn read(bytes: &[u8]) -> Option<RestartIndex> {
        let mut scanner = RestartScanner::new();
        scanner.feed(bytes);
        if scanner.gave_up {
            return None;
        }
        scanner.finish(bytes)
    }

    /// Number of restart intervals.
    pub fn intervals(&self) -> usize {
        self.starts.len()
    }

    /// The most strips worth cutting: one per MCU row, and no more than there are intervals.
    pub fn max_strips(&self) -> usize {
        self.height.div_ceil(self.rows_per_mcu_row).min(self.intervals())
    }

    /// The bytes the strip `spec` needs: the intervals that hold the MCU rows of its input
    /// rows (own rows plus one halo row each side, for 3×3 kernels).
    pub fn strip_bytes(&self, spec: &StripSpec) -> StripBytes {
        self.strip_bytes_in_pieces(spec, PIECE_BYTES)
    }

    /// [`Self::strip_bytes`] for a kernel reaching `halo` rows each side (see
    /// `Options::halo`).
    pub fn strip_bytes_with_halo(&self, spec: &StripSpec, halo: usize) -> StripBytes {
        self.strip_bytes_in_pieces_with_halo(spec, halo, PIECE_BYTES)
    }

    /// [`Self::strip_bytes`], with pieces of about `piece_bytes`.
    pub fn strip_bytes_in_pieces(&self, spec: &StripSpec, piece_bytes: u64) -> StripBytes {
        self.strip_bytes_in_pieces_with_halo(spec, 1, piece_bytes)
    }

    /// [`Self::strip_bytes_with_halo`], with pieces of about `piece_bytes`.
    pub fn strip_bytes_in_pieces_with_halo(
        &self,
        spec: &StripSpec,
        halo: usize,
        piece_bytes: u64,
    ) -> StripBytes {
        let (first_mcu, end_mcu) = mcu_span(spec, halo, self.rows_per_mcu_row, self.mcus_per_row);
        let first = first_mcu / self.interval_mcus;
        let last = (end_mcu.div_ceil(self.interval_mcus)).min(self.intervals()) - 1;
        // An interval ends two bytes before the next one starts (its RST marker).
        let end = if last + 1 < self.intervals() { self.starts[last + 1] - 2 } else { self.end };
        StripBytes {
            header: 0..self.header_len as u64,
            scan: self.starts[first] as u64..end as u64,
            first_interval: first as u64,
            pieces: self.piece_starts(first, last, piece_bytes),
        }
    }

    /// The intervals among `first + 1..=last` that start a piece: the first one that starts an
    /// MCU row once the piece before holds `piece_bytes`.
    fn piece_starts(&self, first: usize, last: usize, piece_bytes: u64) -> Vec<PieceStart> {
        let mut pieces = Vec::new();
        let mut start = self.starts[first];
        for interval in first + 1..=last {
            let at = self.starts[interval];
            let starts_row = (interval * self.interval_mcus).is_multiple_of(self.mcus_per_row);
            if starts_row && (at - start) as u64 >= piece_bytes {
                pieces.push(PieceStart { offset: at as u64, interval: interval as u64 });
                start = at;
            }
        }
        pieces
    }
}

/// The MCUs `first..end` (in scan order) that hold the input rows of `spec` for `halo`.
fn mcu_span(spec: &StripSpec, halo: usize, rows_per_mcu_row: usize, mcus_per_row: usize) -> (usize, usize) {
    let rows = spec.input_rows_with_halo(halo);
    (rows.start / rows_per_mcu_row * mcus_per_row, rows.end.div_ceil(rows_per_mcu_row) * mcus_per_row)
}

fn corrupt(detail: &str) -> DecodeError {
    DecodeError::Corrupt { format: "JPEG", detail: detail.to_owned() }
}

/// Decodes the input rows of the strip `spec` (its own rows plus halo, as
/// [`StripSpec::input_rows`] says) from the headers and the intervals' data that
/// [`RestartIndex::strip_bytes`] named.
pub fn decode_restart_strip(
    header: &[u8],
    scan: &[u8],
    first_interval: u64,
    spec: &StripSpec,
) -> Result<Vec<u8>, DecodeError> {
    decode_restart_strip_with_halo(header, scan, first_interval, spec, 1)
}

/// [`decode_restart_strip`] for a kernel reaching `halo` rows each side: the rows
/// [`StripSpec::input_rows_with_halo`] names, from the bytes
/// [`RestartIndex::strip_bytes_with_halo`] named.
pub fn decode_restart_strip_with_halo(
    header: &[u8],
    scan: &[u8],
    first_interval: u64,
    spec: &StripSpec,
    halo: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut whole = Some(scan);
    let rows =
        decode_restart_strip_in_pieces_with_halo(header, first_interval, &[], spec, halo, || whole.take())?;
    Ok(rows.expect("the one piece was given"))
}

/// [`decode_restart_strip`] from the data in pieces, given one after the other by
/// `next_piece` as [`piece_ranges`] cuts it, each decoded as soon as it is given. The first
/// piece starts at `first_interval`, each later one at the interval of its entry in `pieces`
/// (their `offset`s are not read here). `Ok(None)` when `next_piece` gives `None` before the
/// last piece: the caller knows why its data ended.
pub fn decode_restart_strip_in_pieces<P: AsRef<[u8]>>(
    header: &[u8],
    first_interval: u64,
    pieces: &[PieceStart],
    spec: &StripSpec,
    next_piece: impl FnMut() -> Option<P>,
) -> Result<Option<Vec<u8>>, DecodeError> {
    decode_restart_strip_in_pieces_with_halo(header, first_interval, pieces, spec, 1, next_piece)
}

/// [`decode_restart_strip_in_pieces`] for a kernel reaching `halo` rows each side.
pub fn decode_restart_strip_in_pieces_with_halo<P: AsRef<[u8]>>(
    header: &[u8],
    first_interval: u64,
    pieces: &[PieceStart],
    spec: &StripSpec,
    halo: usize,
    mut next_piece: impl FnMut() -> Option<P>,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let jpeg =
        BaselineJpeg::parse(header).ok_or_else(|| corrupt("the headers of the strip cannot be read"))?;
    if (jpeg.width, jpeg.height) != (spec.width, spec.image_height) || jpeg.restart_interval == 0 {
        return Err(corrupt("the strip does not belong to this image"));
    }
    let (rows_per_mcu_row, mcus_per_row) = (jpeg.rows_per_mcu_row(), jpeg.mcus_per_row);
    let (first_mcu, end_mcu) = mcu_span(spec, halo, rows_per_mcu_row, mcus_per_row);
    let first_mcu_of =
        |interval: u64| usize::try_from(interval).ok().and_then(|i| i.checked_mul(jpeg.restart_interval));
    let start_mcu = first_mcu_of(first_interval).ok_or_else(|| corrupt("no such interval"))?;
    if start_mcu > first_mcu {
        return Err(corrupt("the strip's data starts after its rows"));
    }
    let (first_mcu_row, end_mcu_row) = (first_mcu / mcus_per_row, end_mcu / mcus_per_row);
    let bad = |bad, row| corrupt(&jpeg.scan_error(bad, row).to_string());
    let base_row = first_mcu_row * rows_per_mcu_row;
    let end_row = (end_mcu_row * rows_per_mcu_row).min(jpeg.height);
    let mut luma = vec![0u8; (end_row - base_row) * jpeg.width];
    let mut coefficients: Vec<Block> = vec![[0; 64]; jpeg.luma_blocks_per_mcu_row()];
    let idct = Idct::detect();
    let mut row = first_mcu_row;
    let starts = std::iter::once(first_interval).chain(pieces.iter().map(|p| p.interval));
    for (k, interval) in starts.enumerate() {
        // Every piece after the first starts the MCU row the one before ended at.
        let piece_mcu = first_mcu_of(interval).ok_or_else(|| corrupt("no such interval"))?;
        if k > 0 && piece_mcu != row * mcus_per_row {
            return Err(corrupt("the pieces of the strip do not follow each other"));
        }
        // A piece's rows end where the next one's start, which must be a later MCU row.
        let piece_end_row = match pieces.get(k).map(|next| first_mcu_of(next.interval)) {
            None => end_mcu_row,
            Some(Some(mcu)) if mcu.is_multiple_of(mcus_per_row) && mcu / mcus_per_row > row => {
                (mcu / mcus_per_row).min(end_mcu_row)
            }
            Some(_) => return Err(corrupt("the pieces of the strip do not start MCU rows in order")),
        };
        let Some(piece) = next_piece() else { return Ok(None) };
        let index = usize::try_from(interval).map_err(|_| corrupt("no such interval"))?;
        let mut entropy = EntropyDecoder::at_interval(&jpeg, piece.as_ref(), index);
        if k == 0 {
            entropy.skip_mcus(first_mcu - start_mcu).map_err(|b| bad(b, first_mcu_row))?;
        }
        while row < piece_end_row {
            coefficients.fill([0; 64]);
            entropy.decode_mcu_row(&mut coefficients).map_err(|b| bad(b, row))?;
            jpeg.idct_mcu_row(idct, row, &coefficients, &mut luma, base_row);
            row += 1;
        }
        entropy.finish().map_err(|b| bad(b, row))?;
    }
    let rows = spec.input_rows_with_halo(halo);
    Ok(Some(luma[(rows.start - base_row) * jpeg.width..(rows.end - base_row) * jpeg.width].to_vec()))
}

#[cfg(test)]
mod tests {
    use dsobel_kernel::{plan_strips, strip_input};

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg").join(name);
        std::fs::read(path).expect("fixture")
    }

    fn whole_luma(bytes: &[u8]) -> Vec<u8> {
        let jpeg = BaselineJpeg::parse(bytes).unwrap();
        let mut luma = vec![0; jpeg.width * jpeg.height];
        jpeg.decode_luma(&mut luma).unwrap();
        luma
    }

    #[test]
    fn every_strip_of_every_plan_decodes_to_the_rows_of_the_whole_image() {
        // Intervals of 3 MCUs (not a divisor of a row), of 1 MCU, and a grayscale file.
        for name in ["q50-420-restart.jpg", "q98-444-restart1.jpg", "gray-q100-restart.jpg"] {
            let bytes = fixture(name);
            let index = RestartIndex::read(&bytes).expect("the fixture has restart markers");
            let whole = whole_luma(&bytes);
            every_plan_matches(&bytes, &index, &whole);
        }
    }

    fn every_plan_matches(bytes: &[u8], index: &RestartIndex, whole: &[u8]) {
        for count in 1..=index.max_strips().min(24) {
            for spec in plan_strips(index.width, index.height, count) {
                let part = index.strip_bytes(&spec);
                let header = &bytes[part.header.start as usize..part.header.end as usize];
                let scan = &bytes[part.scan.start as usize..part.scan.end as usize];
                let rows = decode_restart_strip(header, scan, part.first_interval, &spec)
                    .unwrap_or_else(|e| panic!("strip {spec:?}: {e}"));
                assert_eq!(rows, strip_input(whole, &spec), "strip {} of {count}", spec.index);
                // In pieces of every size from one interval up: the same rows.
                for piece_bytes in [1, 200, 1500] {
                    let part = index.strip_bytes_in_pieces(&spec, piece_bytes);
                    let mut pieces = piece_ranges(&part.scan, part.first_interval, &part.pieces)
                        .into_iter()
                        .map(|(range, _)| &bytes[range.start as usize..range.end as usize]);
                    let rows = decode_restart_strip_in_pieces(
                        header,
                        part.first_interval,
                        &part.pieces,
                        &spec,
                        || pieces.next(),
                    )
                    .unwrap_or_else(|e| panic!("strip {spec:?} in pieces of {piece_bytes}: {e}"))
                    .expect("every piece given");
                    assert_eq!(
                        rows,
                        strip_input(whole, &spec),
                        "strip {} of {count}, pieces of {piece_bytes}",
                        spec.index
                    );
                }
            }
        }
    }

    #[test]
    fn strips_with_wider_halos_decode_to_their_rows_of_the_whole_image() {
        for name in ["q50-420-restart.jpg", "q98-444-restart1.jpg", "gray-q100-restart.jpg"] {
            let bytes = fixture(name);
            let index = RestartIndex::read(&bytes).expect("the fixture has restart markers");
            let whole = whole_luma(&bytes);
            for halo in [2, 3, 4] {
                for count in 1..=index.max_strips().min(8) {
                    for spec in plan_strips(index.width, index.height, count) {
                        let part = index.strip_bytes_in_pieces_with_halo(&spec, halo, 300);
                        let header = &bytes[part.header.start as usize..part.header.end as usize];
                        let mut pieces = piece_ranges(&part.scan, part.first_interval, &part.pieces)
                            .into_iter()
                            .map(|(range, _)| &bytes[range.start as usize..range.end as usize]);
                        let rows = decode_restart_strip_in_pieces_with_halo(
                            header,
                            part.first_interval,
                            &part.pieces,
                            &spec,
                            halo,
                            || pieces.next(),
                        )
                        .unwrap_or_else(|e| panic!("strip {spec:?} halo {halo}: {e}"))
                        .expect("every piece given");
                        let want = dsobel_kernel::strip_input_with_halo(&whole, &spec, halo);
                        assert_eq!(rows, want, "{name}: strip {} of {count}, halo {halo}", spec.index);
                    }
                }
            }
        }
    }

    #[test]
    fn pieces_start_rows_and_a_missing_or_misplaced_piece_is_told() {
        let bytes = fixture("q98-444-restart1.jpg");
        let index = RestartIndex::read(&bytes).unwrap();
        let spec = plan_strips(index.width, index.height, 2)[1];
        let part = index.strip_bytes_in_pieces(&spec, 1);
        assert!(part.pieces.len() >= 2, "one piece per MCU row: {:?}", part.pieces);
        let ranges = piece_ranges(&part.scan, part.first_interval, &part.pieces);
        assert_eq!(ranges.len(), part.pieces.len() + 1);
        assert_eq!(ranges[0].0.start, part.scan.start);
        assert_eq!(ranges.last().unwrap().0.end, part.scan.end);
        for (piece, (range, interval)) in part.pieces.iter().zip(&ranges[1..]) {
            assert_eq!((range.start, *interval), (piece.offset, piece.interval));
            assert_eq!(&bytes[piece.offset as usize - 2..piece.offset as usize - 1], &[0xFF]);
        }
        let header = &bytes[..part.header.end as usize];
        let piece = |k: usize| &bytes[ranges[k].0.start as usize..ranges[k].0.end as usize];
        // The data stops after the first piece: no rows, and no error either.
        let mut given = 0;
        let stopped =
            decode_restart_strip_in_pieces(header, part.first_interval, &part.pieces, &spec, || {
                given += 1;
                (given == 1).then(|| piece(0))
            });
        assert_eq!(stopped, Ok(None));
        // A piece said to start an interval later than it does.
        let mut shifted = part.pieces.clone();
        shifted[0].interval += 1;
        let mut k = 0;
        let misplaced = decode_restart_strip_in_pieces(header, part.first_interval, &shifted, &spec, || {
            k += 1;
            Some(piece(k - 1))
        });
        assert!(matches!(misplaced, Err(DecodeError::Corrupt { .. })), "{misplaced:?}");
    }

    #[test]
    fn a_file_scanned_while_it_arrives_gets_the_index_of_the_whole_file() {
        let mut files: Vec<Vec<u8>> = [
            "q50-420-restart.jpg",
            "q98-444-restart1.jpg",
            "gray-q100-restart.jpg",
            "q90-420.jpg",
            "progressive-420.jpg",
        ]
        .into_iter()
        .map(fixture)
        .collect();
        let restart = fixture("q50-420-restart.jpg");
        let index = RestartIndex::read(&restart).unwrap();
        // A marker out of sequence, a file cut in its data, one ending on a 0xFF, and not a JPEG.
        let mut renumbered = restart.clone();
        renumbered[index.starts[2] - 1] = 0xD6;
        files.push(renumbered);
        files.push(restart[..restart.len() * 7 / 10].to_vec());
        files.push([&restart[..index.starts[3]], &[0xFF][..]].concat());
        files.push(b"\x89PNG\r\n\x1a\n and the rest".to_vec());
        let mut rng = 7u64;
        for bytes in &files {
            let whole = RestartIndex::read(bytes);
            for chunk in [1, 2, 3, 64, 1000, usize::MAX] {
                let mut scanner = RestartScanner::new();
                let mut received = 0;
                while received < bytes.len() {
                    // Chunks of this size, or of random sizes up to it.
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let size = if chunk == 3 { 1 + (rng >> 33) as usize % 700 } else { chunk };
                    received = (received + size.min(bytes.len())).min(bytes.len());
                    scanner.feed(&bytes[..received]);
                }
                assert_eq!(scanner.finish(bytes), whole, "chunks of {chunk}");
            }
        }
    }

    #[test]
    fn files_without_usable_markers_are_not_indexed() {
        assert!(RestartIndex::read(&fixture("q90-420.jpg")).is_none(), "no restart interval");
        assert!(RestartIndex::read(&fixture("progressive-420.jpg")).is_none());
        let mut bytes = fixture("q50-420-restart.jpg");
        // Renumber the first RST marker: the sequence no longer holds.
        let index = RestartIndex::read(&bytes).unwrap();
        let marker = index.starts[1] - 1;
        bytes[marker] = 0xD5;
        assert!(RestartIndex::read(&bytes).is_none());
    }

    #[test]
    fn a_damaged_interval_is_reported() {
        let bytes = fixture("q50-420-restart.jpg");
        let index = RestartIndex::read(&bytes).unwrap();
        let spec = plan_strips(index.width, index.height, 2)[1];
        let part = index.strip_bytes(&spec);
        let header = &bytes[..part.header.end as usize];
        // Only the first few bytes of the strip's data.
        let cut = &bytes[part.scan.start as usize..part.scan.start as usize + 8];
        assert!(matches!(
            decode_restart_strip(header, cut, part.first_interval, &spec),
            Err(DecodeError::Corrupt { .. })
        ));
        // Data that starts at a later interval than the task says.
        let later = &bytes[part.scan.start as usize..part.scan.end as usize];
        assert!(decode_restart_strip(header, later, part.first_interval + 1, &spec).is_err());
    }
}
