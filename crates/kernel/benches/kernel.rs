//! Kernel benchmarks: the scalar reference against every supported fast backend, one thread,
//! on photograph-like luma at 2, 12 and 48 megapixels; every other output at 12 MP (the
//! unclipped magnitude, the gradients, the direction, other kernels, Otsu and Canny); plus
//! strip PNG encoding.
//!
//! Run with `cargo bench -p dsobel-kernel --bench kernel`. Throughput is reported in pixels, so
//! criterion prints Gelem/s = gigapixels per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsobel_kernel::png::{CompressionLevel, encode_strip};
use dsobel_kernel::{
    Backend, FilterParams, Format, Kernel, Magnitude, Options, Output, OutputMode, RowBlock, Samples,
    Threshold, compute_block_with, compute_image_with, filter_block_with, filter_image_with, reference,
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

/// Every output of the operators at 12 MP on one thread, into a reused buffer (Canny and Otsu
/// from luma to their edge map, allocation included, as `compute_image` gives it).
fn operators(c: &mut Criterion) {
    let pool = single_thread();
    let (w, h) = (4000, 3000);
    let luma = synthetic_luma(w, h);
    let mut group = c.benchmark_group("operators/12MP");
    group.throughput(Throughput::Elements((w * h) as u64));
    group.sample_size(10);
    let npy = Options { format: Format::Npy, ..Options::default() };
    let cases = [
        ("binary-l2", Options::default()),
        ("magnitude16-l2", Options { output: Output::Magnitude16, ..npy }),
        ("magnitude16-l1", Options { output: Output::Magnitude16, magnitude: Magnitude::L1, ..npy }),
        ("gx", Options { output: Output::Gx, ..npy }),
        ("gy", Options { output: Output::Gy, ..npy }),
        ("direction-f32", Options { output: Output::Direction, ..npy }),
        ("direction-u8", Options { output: Output::Direction, ..Options::default() }),
        ("binary-l2-sobel5", Options { ksize: 5, threshold: Threshold::Value(1600), ..Options::default() }),
        ("binary-l2-sobel7", Options { ksize: 7, threshold: Threshold::Value(20_000), ..Options::default() }),
        (
            "binary-l2-scharr",
            Options { kernel: Kernel::Scharr, threshold: Threshold::Value(400), ..Options::default() },
        ),
        ("gx-sobel7", Options { output: Output::Gx, ksize: 7, ..npy }),
        ("binary-otsu", Options { threshold: Threshold::Otsu, ..Options::default() }),
        (
            "canny-l1-100-200",
            Options { output: Output::Canny, magnitude: Magnitude::L1, ..Options::default() },
        ),
        ("canny-l2-100-200", Options { output: Output::Canny, ..Options::default() }),
        ("canny-l2-50-150", Options { output: Output::Canny, low: 50, high: 150, ..Options::default() }),
    ];
    for (name, options) in cases {
        options.validate().expect("valid bench options");
        let backend = Backend::detect();
        if options.output == Output::Canny || options.threshold == Threshold::Otsu {
            group.bench_function(name, |b| {
                pool.install(|| {
                    b.iter(|| compute_image_with(backend, &options, black_box(&luma), w, h).expect("run"))
                })
            });
            continue;
        }
        let mut out = Samples::zeros(options.sample().expect("sample"), w * h);
        group.bench_function(name, |b| {
            pool.install(|| {
                b.iter(|| {
                    let block = RowBlock::whole(black_box(&luma), w, h);
                    compute_block_with(backend, &options, &block, 0..h, out.slice_mut(0..w * h)).expect("run")
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

criterion_group!(benches, kernel, operators, encode);
criterion_main!(benches);
