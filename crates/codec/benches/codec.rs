//! Decode and end-to-end benchmarks: photograph-like JPEGs (YCbCr 4:2:0, the common camera
//! case) decoded to luma, a PNG decoded to luma, and JPEG bytes → binary PNG bytes on one and
//! two threads. Run with `cargo bench -p dsobel-codec --bench codec`; throughput is in pixels.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsobel_codec::{Limits, ProcessOptions, decode_luma, process_bytes};

/// Smooth gradients, discs, stripes and noise, as RGB.
fn photo_like(width: u32, height: u32) -> image::RgbImage {
    let mut rng = fastrand::Rng::with_seed(7);
    image::RgbImage::from_fn(width, height, |x, y| {
        let base = (x * 160 / width + y * 80 / height) as i32;
        let disc = ((x as i64 - width as i64 / 2).pow(2) + (y as i64 - height as i64 / 2).pow(2)
            < (height as i64 / 3).pow(2)) as i32
            * 70;
        let stripes = if (x / 37 + y / 53) % 2 == 0 { 20 } else { 0 };
        let v = base + disc + stripes + rng.i32(-5..=5);
        image::Rgb([v.clamp(0, 255) as u8, (v / 2 + 40).clamp(0, 255) as u8, (220 - v).clamp(0, 255) as u8])
    })
}

fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    if format == image::ImageFormat::Jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        photo_like(width, height).write_with_encoder(encoder).expect("encode");
    } else {
        photo_like(width, height).write_to(&mut out, format).expect("encode");
    }
    out.into_inner()
}

const SIZES: [(&str, u32, u32); 2] = [("2MP", 1920, 1080), ("12MP", 4000, 3000)];

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for (label, w, h) in SIZES {
        let jpeg = encoded(w, h, image::ImageFormat::Jpeg);
        group.throughput(Throughput::Elements((w * h) as u64));
        group.bench_function(format!("jpeg-ycbcr-to-luma/{label}"), |b| {
            b.iter(|| decode_luma(black_box(&jpeg), &Limits::default()).expect("decode"))
        });
    }
    let (w, h) = (1920, 1080);
    let png = encoded(w, h, image::ImageFormat::Png);
    group.throughput(Throughput::Elements((w * h) as u64));
    group.bench_function("png-rgb-to-luma/2MP", |b| {
        b.iter(|| decode_luma(black_box(&png), &Limits::default()).expect("decode"))
    });
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end-to-end/jpeg-to-binary-png");
    group.sample_size(10);
    for (label, w, h) in SIZES {
        let jpeg = encoded(w, h, image::ImageFormat::Jpeg);
        group.throughput(Throughput::Elements((w * h) as u64));
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            // One image: with two threads, its decode overlaps the filter and encode.
            let options = ProcessOptions { overlap_decode: threads > 1, ..ProcessOptions::default() };
            group.bench_function(format!("{label}/{threads}-thread"), |b| {
                pool.install(|| b.iter(|| process_bytes(black_box(&jpeg), &options).expect("process")))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode, end_to_end);
criterion_main!(benches);
