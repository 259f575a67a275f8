//! Strips with halo: for random sizes, contents and strip counts, filtering each strip on its
//! own and concatenating equals filtering the whole image, byte for byte.

use dsobel_kernel::{
    FilterParams, Magnitude, OutputMode, filter_image, filter_strip, plan_strips, strip_input,
};
use proptest::prelude::*;

fn params_strategy() -> impl Strategy<Value = FilterParams> {
    (any::<u16>(), prop::bool::ANY, prop::bool::ANY).prop_map(|(t, l1, mag)| FilterParams {
        threshold: t % 400,
        magnitude: if l1 { Magnitude::L1 } else { Magnitude::L2 },
        output: if mag { OutputMode::Magnitude } else { OutputMode::Binary },
    })
}

fn image_strategy() -> impl Strategy<Value = (usize, usize, Vec<u8>, usize)> {
    (1usize..48, 1usize..40)
        .prop_flat_map(|(w, h)| (Just(w), Just(h), prop::collection::vec(any::<u8>(), w * h), 1..=h))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn stitched_strips_equal_the_whole_image((w, h, luma, count) in image_strategy(), params in params_strategy()) {
        let whole = filter_image(&luma, w, h, &params).unwrap();
        let mut stitched = Vec::with_capacity(whole.len());
        for spec in plan_strips(w, h, count) {
            // Each strip sees only its own input rows, copied out as a worker would get them.
            let input = strip_input(&luma, &spec).to_vec();
            stitched.extend(filter_strip(&spec, &input, &params).unwrap());
        }
        prop_assert_eq!(stitched, whole);
    }
}

#[test]
fn every_strip_count_on_small_images() {
    let mut rng = fastrand::Rng::with_seed(5);
    let params = FilterParams { threshold: 60, ..FilterParams::default() };
    for h in 1..=12 {
        for w in [1usize, 2, 3, 17] {
            let luma: Vec<u8> = (0..w * h).map(|_| rng.u8(..)).collect();
            let whole = filter_image(&luma, w, h, &params).unwrap();
            for count in 1..=h {
                let stitched: Vec<u8> = plan_strips(w, h, count)
                    .iter()
                    .flat_map(|s| filter_strip(s, strip_input(&luma, s), &params).unwrap())
                    .collect();
                assert_eq!(stitched, whole, "{w}x{h} in {count} strips");
            }
        }
    }
}

#[test]
fn a_strip_given_the_wrong_rows_is_refused() {
    let spec = plan_strips(4, 10, 3)[1];
    assert!(filter_strip(&spec, &[0u8; 4 * 3], &FilterParams::default()).is_err());
}
