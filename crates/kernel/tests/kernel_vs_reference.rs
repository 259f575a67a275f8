//! Every supported backend against the scalar reference, on random images of many sizes
//! (every width from 1 to 70, so vector tails and border columns are all exercised), for every
//! output mode and magnitude, and with thresholds at the edges of their ranges.

use dsobel_kernel::{Backend, FilterParams, Magnitude, OutputMode, filter_image_with, reference};

fn random_luma(rng: &mut fastrand::Rng, w: usize, h: usize) -> Vec<u8> {
    // Mix fully random pixels with flat runs so both "all edges" and "no edges" occur.
    let mut v = Vec::with_capacity(w * h);
    while v.len() < w * h {
        if rng.u8(..) < 64 {
            let run = rng.usize(1..12);
            let value = rng.u8(..);
            v.extend(std::iter::repeat_n(value, run));
        } else {
            v.push(rng.u8(..));
        }
    }
    v.truncate(w * h);
    v
}

fn all_params() -> Vec<FilterParams> {
    let mut out = Vec::new();
    for output in [OutputMode::Binary, OutputMode::Magnitude] {
        for magnitude in [Magnitude::L2, Magnitude::L1] {
            for threshold in [0u16, 1, 50, 100, 255, 1442, 2040, u16::MAX] {
                out.push(FilterParams { threshold, magnitude, output });
                if output == OutputMode::Magnitude {
                    break; // the threshold does not matter
                }
            }
        }
    }
    out
}

#[test]
fn every_backend_matches_the_reference_on_widths_1_to_70() {
    let mut rng = fastrand::Rng::with_seed(2024);
    let backends: Vec<Backend> = Backend::ALL.into_iter().filter(|b| b.is_supported()).collect();
    for b in Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
        eprintln!("skipping backend {b}: not supported by this CPU");
    }
    for width in 1..=70 {
        for height in [1usize, 2, 3, 4, 7, 16] {
            let luma = random_luma(&mut rng, width, height);
            for params in all_params() {
                let want = reference::filter_image(&luma, width, height, &params);
                for &backend in &backends {
                    let got = filter_image_with(backend, &luma, width, height, &params).unwrap();
                    assert_eq!(got, want, "backend {backend} {width}x{height} {params:?}");
                }
            }
        }
    }
}

#[test]
fn every_backend_matches_the_reference_on_larger_images() {
    let mut rng = fastrand::Rng::with_seed(99);
    for (width, height) in [(127, 33), (256, 64), (1000, 9), (513, 200), (4099, 3)] {
        let luma = random_luma(&mut rng, width, height);
        for params in all_params() {
            let want = reference::filter_image(&luma, width, height, &params);
            for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
                let got = filter_image_with(backend, &luma, width, height, &params).unwrap();
                assert_eq!(got, want, "backend {backend} {width}x{height} {params:?}");
            }
        }
    }
}

#[test]
fn extreme_contrast_saturates_exactly() {
    // A checkerboard of 0 and 255 drives |gx| and |gy| to their maxima.
    for (w, h) in [(9, 9), (66, 5)] {
        let luma: Vec<u8> =
            (0..h).flat_map(|y| (0..w).map(move |x| if (x + y) % 2 == 0 { 255 } else { 0 })).collect();
        for params in all_params() {
            let want = reference::filter_image(&luma, w, h, &params);
            for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
                assert_eq!(filter_image_with(backend, &luma, w, h, &params).unwrap(), want);
            }
        }
    }
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    let p = FilterParams::default();
    assert!(filter_image_with(Backend::Baseline, &[1, 2, 3], 2, 2, &p).is_err());
    assert!(filter_image_with(Backend::Baseline, &[], 0, 0, &p).is_err());
    assert!(filter_image_with(Backend::Baseline, &[], 0, 5, &p).is_err());
    assert!(filter_image_with(Backend::Baseline, &[0; 4], usize::MAX, 2, &p).is_err());
}
