//! Canny's hysteresis across strips: edges whose only path to a strong pixel runs through
//! several strips (down and back up again) are found for every strip count, the phases'
//! intermediates survive their bytes, and summaries that do not fit together are refused.

use dsobel_kernel::canny::{CannyStrip, CannySummary, CannyVerdict, canny_finish, canny_join, canny_phase1};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{
    Format, Magnitude, Options, Output, plan_strips, reference, run_strips, strip_input_with_halo,
};
use proptest::prelude::*;

fn canny(low: u32, high: u32) -> Options {
    Options {
        output: Output::Canny,
        low,
        high,
        magnitude: Magnitude::L1,
        format: Format::Npy,
        ..Options::default()
    }
}

/// A dark image with a one-pixel line drawn along `path` at `level`, and one short bright
/// segment at `bright` (strong), everything else of the line weak.
fn serpentine(w: usize, h: usize) -> Vec<u8> {
    let mut luma = vec![10u8; w * h];
    // Down column 5, across row h-3, up column 20, across row 2, down column 35 to the bottom.
    let mut draw = |x: usize, y: usize, v: u8| luma[y * w + x] = v;
    for y in 2..h - 2 {
        draw(5, y, 60);
        draw(20, y, 60);
    }
    for x in 5..=20 {
        draw(x, h - 3, 60);
    }
    for x in 20..=35 {
        draw(x, 2, 60);
    }
    for y in 2..h - 1 {
        draw(35, y, 60);
    }
    // The only strong part: the bottom of column 35.
    for y in h - 4..h - 1 {
        draw(35, y, 250);
    }
    luma
}

fn edges_of(file: &[u8], w: usize, h: usize) -> Vec<u8> {
    let header_len = u16::from_le_bytes([file[8], file[9]]) as usize;
    let data = &file[10 + header_len..];
    assert_eq!(data.len(), w * h);
    data.to_vec()
}

#[test]
fn a_weak_line_through_every_strip_is_found_for_every_strip_count() {
    let (w, h) = (41, 40);
    let luma = serpentine(w, h);
    let options = canny(100, 600);
    let want = reference::canny::canny(&luma, w, h, &options);
    // Only the bottom of column 35 is strong; the edge beside column 20 is reached from there
    // only up column 34 through every strip, along row 3, and down again through every strip.
    assert_eq!(want[30 * w + 21], 255, "the far side of the line");
    assert_eq!(want[3 * w + 27], 255, "the top of the line");
    let strong_only = reference::canny::canny(&luma, w, h, &canny(599, 600));
    assert!(
        want.iter().filter(|&&e| e == 255).count() > 4 * strong_only.iter().filter(|&&e| e == 255).count()
    );
    for count in 1..=8 {
        let (file, report) = run_strips(&options, &luma, w, h, count, CompressionLevel::default()).unwrap();
        assert_eq!(edges_of(&file, w, h), want, "{count} strips");
        if count > 2 {
            assert!(report.canny_labels > 0, "{count} strips: the join had labels to decide");
        }
    }
}

#[test]
fn the_phases_through_their_bytes_give_the_same_edges() {
    let (w, h) = (41, 40);
    let luma = serpentine(w, h);
    let options = canny(100, 600);
    let want = reference::canny::canny(&luma, w, h, &options);
    let plan = plan_strips(w, h, 5);
    let mut strips = Vec::new();
    let mut summaries = Vec::new();
    for spec in &plan {
        let (strip, summary) =
            canny_phase1(&options, spec, strip_input_with_halo(&luma, spec, options.halo())).unwrap();
        let strip_bytes = strip.to_bytes();
        assert_eq!(CannyStrip::from_bytes(&strip_bytes).unwrap(), strip);
        assert!(CannyStrip::from_bytes(&strip_bytes[..strip_bytes.len() - 1]).is_err());
        let bytes = summary.to_bytes();
        assert!(bytes.len() < 64 + 4 * w, "a summary is small: {} bytes", bytes.len());
        assert_eq!(CannySummary::from_bytes(&bytes).unwrap(), summary);
        strips.push(CannyStrip::from_bytes(&strip_bytes).unwrap());
        summaries.push(CannySummary::from_bytes(&bytes).unwrap());
    }
    let verdicts = canny_join(&summaries).unwrap();
    let mut got = Vec::new();
    for (strip, verdict) in strips.into_iter().zip(&verdicts) {
        let verdict = CannyVerdict::from_bytes(&verdict.to_bytes()).unwrap();
        got.extend(canny_finish(strip, &verdict).unwrap());
    }
    assert_eq!(got, want);
    // Summaries that do not make one image are refused.
    assert!(canny_join(&summaries[1..]).is_err(), "the first strip missing");
    assert!(canny_join(&summaries[..4]).is_err(), "the last strip missing");
    let mut swapped = summaries.clone();
    swapped.swap(1, 2);
    assert!(canny_join(&swapped).is_err(), "out of order");
    assert!(canny_join(&[]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn canny_strips_equal_the_reference(
        (w, h, luma) in (1usize..40, 1usize..40).prop_flat_map(|(w, h)| (Just(w), Just(h), prop::collection::vec(any::<u8>(), w * h))),
        blur in 0usize..3,
        count in 1usize..=8,
        ksize in prop::sample::select(vec![3u8, 5, 7]),
        l2 in any::<bool>(),
        (low, high) in (0u32..400).prop_flat_map(|low| (Just(low), low..800)),
    ) {
        // Smooth the noise a little so that connected weak edges are common.
        let mut luma = luma;
        for _ in 0..blur {
            let copy = luma.clone();
            for y in 0..h {
                for x in 1..w.saturating_sub(1) {
                    luma[y * w + x] = ((copy[y * w + x - 1] as u16 + 2 * copy[y * w + x] as u16 + copy[y * w + x + 1] as u16) / 4) as u8;
                }
            }
        }
        let scale = match ksize { 3 => 1, 5 => 8, _ => 100 };
        let options = Options {
            output: Output::Canny,
            ksize,
            magnitude: if l2 { Magnitude::L2 } else { Magnitude::L1 },
            low: low * scale,
            high: high * scale,
            format: Format::Npy,
            ..Options::default()
        };
        let want = reference::canny::canny(&luma, w, h, &options);
        let (file, _) = run_strips(&options, &luma, w, h, count, CompressionLevel::default()).unwrap();
        prop_assert_eq!(edges_of(&file, w, h), want);
    }
}
