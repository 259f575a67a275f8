//! Fuzzes the whole decode path, and the pipeline behind it, on arbitrary bytes: any input
//! must give a luma image or a typed error, never a panic, a hang or an unbounded allocation,
//! and the streamed pipeline must write the same PNG as the plain one.
#![no_main]

use dsobel_codec::{Limits, ProcessOptions, decode_luma, process_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run cheap while exercising every header check.
    let limits = Limits { max_pixels: 1 << 20, max_dimension: 4096, max_bytes: 1 << 20 };
    if let Ok(image) = decode_luma(data, &limits) {
        assert_eq!(image.pixels.len(), image.width * image.height);
        let options = ProcessOptions { limits, strips: Some(3), ..ProcessOptions::default() };
        let processed = process_bytes(data, &options).expect("a decodable input must process");
        assert!(processed.png.starts_with(&dsobel_kernel::png::PNG_SIGNATURE));
        // The streamed path (decode overlapped with the rest) writes the very same file.
        let streamed = ProcessOptions { overlap_decode: true, ..options };
        let again = process_bytes(data, &streamed).expect("the streamed path must process it too");
        assert!(again.png == processed.png, "the streamed path wrote a different PNG");
    }
});
