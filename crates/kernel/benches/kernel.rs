//! Kernel benchmarks: the scalar reference against every supported fast backend, one thread,
//! on photograph-like luma at 2, 12 and 48 megapixels; plus strip PNG encoding.
//!
//! Run with `cargo bench -p dsobel-kernel --bench kernel`. Throughput is reported in pixels, so
//! criterion prints Gelem/s = gigapixels per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsobel_kernel::png::{CompressionLevel, encode_strip};
use dsobel_kernel::{
    Backend, FilterParams, Magnitude, OutputMode, RowBlock, filter_block_with, filter_image_with, reference,
};

/// Smooth gradients with shapes and a little noise: edges where a photograph would have them.
fn synthetic_luma(width: usize, height: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut luma = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let base = ((x * 255) / width.max(1) + (y * 127) / height.max(1)) as i32 / 2;
            let disc = if ((x as i64 - width as i64 / 2).pow(2) + (y as i64 - height as i64 / 2).pow(2))
                < (height as i64 / 3).pow(2)
            {
                90
            } else {
                0
            };
            let stripes = if (x / 40 + y / 60) % 2 == 0 { 25 } else { 0 };
            luma.push((base + disc + stripes + rng.i32(-6..=6)).clamp(0, 255) as u8);
        }
    }
    luma
}

const SIZES: [(&str, usize, usize); 3] = [("2MP", 1920, 1080), ("12MP", 4000, 3000), ("48MP", 8000, 6000)];

fn single_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool")
}

fn kernel(c: &mut Criterion) {
    let pool = single_thread();
    let params = FilterParams::default();
    for (label, w, h) in SIZES {
        let luma = synthetic_luma(w, h);
        let mut group = c.benchmark_group(format!("kernel/binary-l2/{label}"));
        group.throughput(Throughput::Elements((w * h) as u64));
        group.sample_size(10);
        // The output buffer is reused, as the pipeline reuses its batch buffer: this measures
        // the kernel, not the operating system handing out fresh pages for every call.
        let mut out = vec![0u8; w * h];
        for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
            group.bench_function(backend.name(), |b| {
                pool.install(|| {
                    b.iter(|| {
                        let block = RowBlock::whole(black_box(&luma), w, h);
                        filter_block_with(backend, &block, 0..h, &params, &mut out).expect("filter")
                    })
                })
            });
        }
        if label == "2MP" {
            group.bench_function("scalar-reference", |b| {
                b.iter(|| reference::filter_image(black_box(&luma), w, h, &params))
            });
        }
        group.finish();
    }
    let (w, h) = (4000, 3000);
    let luma = synthetic_luma(w, h);
    let mut group = c.benchmark_group("kernel/modes/12MP");
    group.throughput(Throughput::Elements((w * h) as u64));
    group.sample_size(10);
    for (name, magnitude, output) in [
        ("binary-l1", Magnitude::L1, OutputMode::Binary),
        ("magnitude-l2", Magnitude::L2, OutputMode::Magnitude),
        ("magnitude-l1", Magnitude::L1, OutputMode::Magnitude),
    ] {
        let params = FilterParams { magnitude, output, ..FilterParams::default() };
        let mut out = vec![0u8; w * h];
        group.bench_function(name, |b| {
            pool.install(|| {
                b.iter(|| {
                    let block = RowBlock::whole(black_box(&luma), w, h);
                    filter_block_with(Backend::detect(), &block, 0..h, &params, &mut out).expect("filter")
                })
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let (w, h) = (4000, 3000);
    let luma = synthetic_luma(w, h);
    let mut group = c.benchmark_group("encode/12MP");
    group.throughput(Throughput::Elements((w * h) as u64));
    group.sample_size(10);
    for output in [OutputMode::Binary, OutputMode::Magnitude] {
        let params = FilterParams { output, ..FilterParams::default() };
        let edges = filter_image_with(Backend::detect(), &luma, w, h, &params).expect("filter");
        for level in [1u8, 3, 6] {
            group.bench_function(format!("{output}/level{level}"), |b| {
                b.iter(|| encode_strip(black_box(&edges), w, output, true, CompressionLevel(level)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernel, encode);
criterion_main!(benches);
