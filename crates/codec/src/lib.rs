//! Image decoding to luma and result encoding.
