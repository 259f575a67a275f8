//! A finished strip as a worker stores it: its share of the result file (a PNG segment, or
//! the rows' samples of a TIFF or NPY) and what it cost, in a small binary format the
//! stitcher reads back.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use dsobel_kernel::FormattedStrip;

/// A finished strip as stored by a worker: its share of the file and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripResult {
    /// The strip's bytes in the result's format.
    pub encoded: FormattedStrip,
    /// Time the task waited in the queue.
    pub queue_wait: Duration,
    /// Filter time.
    pub filter: Duration,
    /// Encode time.
    pub encode: Duration,
}

const STRIP_RESULT_MAGIC: &[u8; 4] = b"DSR1";
/// Magic, adler32, raw length and three durations: 4 + 4 + 8 + 3 × 8 bytes.
const STRIP_RESULT_HEADER: usize = 40;

impl StripResult {
    /// Serialises: magic, adler32, raw length, three durations in µs, then the strip's bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(STRIP_RESULT_HEADER + self.encoded.data.len());
        out.put_slice(STRIP_RESULT_MAGIC);
        out.put_u32(self.encoded.adler32);
        out.put_u64(self.encoded.raw_len);
        for d in [self.queue_wait, self.filter, self.encode] {
            out.put_u64(d.as_micros() as u64);
        }
        out.put_slice(&self.encoded.data);
        out.freeze()
    }

    /// Parses [`StripResult::to_bytes`]; `None` when the bytes are not a strip result.
    pub fn from_bytes(bytes: &[u8]) -> Option<StripResult> {
        let header = bytes.get(..STRIP_RESULT_HEADER)?;
        if &header[..4] != STRIP_RESULT_MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        Some(StripResult {
            encoded: FormattedStrip {
                adler32: u32::from_be_bytes(header[4..8].try_into().expect("4 bytes")),
                raw_len: u64_at(8),
                data: bytes[STRIP_RESULT_HEADER..].to_vec(),
            },
            queue_wait: Duration::from_micros(u64_at(16)),
            filter: Duration::from_micros(u64_at(24)),
            encode: Duration::from_micros(u64_at(32)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_results_round_trip() {
        let r = StripResult {
            encoded: FormattedStrip { data: vec![1, 2, 3], adler32: 0xdead_beef, raw_len: 77 },
            queue_wait: Duration::from_millis(12),
            filter: Duration::from_micros(345),
            encode: Duration::from_micros(678),
        };
        assert_eq!(StripResult::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(StripResult::from_bytes(b"nonsense"), None);
    }
}
