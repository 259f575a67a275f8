//! The byte encodings shared by the intermediates that travel between machines: unsigned
//! LEB128 varints, a magic-and-version header, and a reader that refuses truncated or
//! malformed input with a [`KernelError::Wire`] instead of panicking.

use crate::filter::KernelError;

/// Appends `v` as an unsigned LEB128 varint (7 bits a byte, low bits first).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends the 4-byte magic and the 1-byte version.
pub(crate) fn put_header(out: &mut Vec<u8>, magic: &[u8; 4], version: u8) {
    out.extend_from_slice(magic);
    out.push(version);
}

/// Reads what [`put_varint`] and friends wrote, refusing anything else.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes` that checks the magic and version first; `what` names the format in
    /// errors.
    pub(crate) fn new(
        bytes: &'a [u8],
        magic: &[u8; 4],
        version: u8,
        what: &'static str,
    ) -> Result<Self, KernelError> {
        let mut reader = Reader { bytes, at: 0, what };
        let head = reader.take(5)?;
        if &head[..4] != magic {
            return Err(reader.error("it does not start with its magic bytes"));
        }
        if head[4] != version {
            return Err(reader.error(&format!("version {} is not the supported {version}", head[4])));
        }
        Ok(reader)
    }

    /// An error about this input.
    pub(crate) fn error(&self, detail: &str) -> KernelError {
        KernelError::Wire { what: self.what, detail: format!("{detail} (at byte {})", self.at) }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], KernelError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| self.error("it ends too early"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> Result<u8, KernelError> {
        Ok(self.take(1)?[0])
    }

    /// The next varint.
    pub(crate) fn varint(&mut self) -> Result<u64, KernelError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("a number overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("a number overflows 64 bits"))
    }

    /// The next varint, which must fit a `usize` no larger than `max`.
    pub(crate) fn count(&mut self, max: u64, name: &str) -> Result<usize, KernelError> {
        let v = self.varint()?;
        if v > max {
            return Err(self.error(&format!("{name} {v} is above its bound {max}")));
        }
        Ok(v as usize)
    }

    /// Refuses bytes left over.
    pub(crate) fn finish(self) -> Result<(), KernelError> {
        if self.at != self.bytes.len() {
            return Err(self.error("bytes are left over after its end"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_garbage_is_refused() {
        let values = [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX];
        let mut out = Vec::new();
        put_header(&mut out, b"TEST", 1);
        for v in values {
            put_varint(&mut out, v);
        }
        let mut r = Reader::new(&out, b"TEST", 1, "test").unwrap();
        for v in values {
            assert_eq!(r.varint().unwrap(), v);
        }
        r.finish().unwrap();
        assert!(Reader::new(&out, b"TEXT", 1, "test").is_err());
        assert!(Reader::new(&out, b"TEST", 2, "test").is_err());
        let mut r = Reader::new(&out[..out.len() - 1], b"TEST", 1, "test").unwrap();
        assert!((0..values.len()).try_for_each(|_| r.varint().map(|_| ())).is_err());
        let mut r = Reader::new(
            &[b'T', b'E', b'S', b'T', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            b"TEST",
            1,
            "test",
        )
        .unwrap();
        assert!(r.varint().is_err());
    }
}
