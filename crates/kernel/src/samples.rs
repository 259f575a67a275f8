//! A whole image (or a run of rows) of output samples, typed by what the output holds.
//!
//! The scalar reference and the fast paths both produce [`Samples`], so a test compares them
//! with one `==`; the format writers (`format`) turn them into file bytes.

use crate::params::Sample;

/// Output samples, row-major. An edge map (`binary`, `canny`) is held as bytes of 0 or 255.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Unsigned 8-bit samples (also edge maps).
    U8(Vec<u8>),
    /// Unsigned 16-bit samples.
    U16(Vec<u16>),
    /// Unsigned 32-bit samples.
    U32(Vec<u32>),
    /// Signed 16-bit samples.
    I16(Vec<i16>),
    /// Signed 32-bit samples.
    I32(Vec<i32>),
    /// Single-precision samples.
    F32(Vec<f32>),
}

impl Samples {
    /// `len` zeros of the in-memory type of `sample`.
    pub fn zeros(sample: Sample, len: usize) -> Samples {
        match sample {
            Sample::Bit | Sample::U8 => Samples::U8(vec![0; len]),
            Sample::U16 => Samples::U16(vec![0; len]),
            Sample::U32 => Samples::U32(vec![0; len]),
            Sample::I16 => Samples::I16(vec![0; len]),
            Sample::I32 => Samples::I32(vec![0; len]),
            Sample::F32 => Samples::F32(vec![0.0; len]),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::U16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::I16(v) => v.len(),
            Samples::I32(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples `range` as a borrowed row run.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Rows<'_> {
        match self {
            Samples::U8(v) => Rows::U8(&v[range]),
            Samples::U16(v) => Rows::U16(&v[range]),
            Samples::U32(v) => Rows::U32(&v[range]),
            Samples::I16(v) => Rows::I16(&v[range]),
            Samples::I32(v) => Rows::I32(&v[range]),
            Samples::F32(v) => Rows::F32(&v[range]),
        }
    }

    /// The samples `range`, mutably.
    pub fn slice_mut(&mut self, range: std::ops::Range<usize>) -> RowsMut<'_> {
        match self {
            Samples::U8(v) => RowsMut::U8(&mut v[range]),
            Samples::U16(v) => RowsMut::U16(&mut v[range]),
            Samples::U32(v) => RowsMut::U32(&mut v[range]),
            Samples::I16(v) => RowsMut::I16(&mut v[range]),
            Samples::I32(v) => RowsMut::I32(&mut v[range]),
            Samples::F32(v) => RowsMut::F32(&mut v[range]),
        }
    }

    /// Whether both hold the same type and the same values, bit for bit (`-0.0` and `0.0`
    /// differ, as they would in a file).
    pub fn bit_equal(&self, other: &Samples) -> bool {
        match (self, other) {
            (Samples::F32(a), Samples::F32(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => self == other,
        }
    }
}

/// Borrowed output samples (one row or consecutive rows).
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// See [`Samples::U8`].
    U8(&'a [u8]),
    /// See [`Samples::U16`].
    U16(&'a [u16]),
    /// See [`Samples::U32`].
    U32(&'a [u32]),
    /// See [`Samples::I16`].
    I16(&'a [i16]),
    /// See [`Samples::I32`].
    I32(&'a [i32]),
    /// See [`Samples::F32`].
    F32(&'a [f32]),
}

impl Rows<'_> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Rows::U8(v) => v.len(),
            Rows::U16(v) => v.len(),
            Rows::U32(v) => v.len(),
            Rows::I16(v) => v.len(),
            Rows::I32(v) => v.len(),
            Rows::F32(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Mutably borrowed output samples.
#[derive(Debug)]
pub enum RowsMut<'a> {
    /// See [`Samples::U8`].
    U8(&'a mut [u8]),
    /// See [`Samples::U16`].
    U16(&'a mut [u16]),
    /// See [`Samples::U32`].
    U32(&'a mut [u32]),
    /// See [`Samples::I16`].
    I16(&'a mut [i16]),
    /// See [`Samples::I32`].
    I32(&'a mut [i32]),
    /// See [`Samples::F32`].
    F32(&'a mut [f32]),
}

impl RowsMut<'_> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            RowsMut::U8(v) => v.len(),
            RowsMut::U16(v) => v.len(),
            RowsMut::U32(v) => v.len(),
            RowsMut::I16(v) => v.len(),
            RowsMut::I32(v) => v.len(),
            RowsMut::F32(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A shorter reborrow: the samples `range`.
    pub fn sub(&mut self, range: std::ops::Range<usize>) -> RowsMut<'_> {
        match self {
            RowsMut::U8(v) => RowsMut::U8(&mut v[range]),
            RowsMut::U16(v) => RowsMut::U16(&mut v[range]),
            RowsMut::U32(v) => RowsMut::U32(&mut v[range]),
            RowsMut::I16(v) => RowsMut::I16(&mut v[range]),
            RowsMut::I32(v) => RowsMut::I32(&mut v[range]),
            RowsMut::F32(v) => RowsMut::F32(&mut v[range]),
        }
    }
}
