//! `output=canny`, fast, and split into phases that can run on different machines.
//!
//! Canny's edges are the suppressed survivors connected to a strong one, and that connection
//! can run through any number of strips. So a strip is done in three steps:
//!
//! 1. **Phase 1** ([`canny_phase1`], per strip, from its luma rows plus a halo of
//!    `ksize/2 + 1` rows): gradients, magnitudes and non-maximum suppression of its own rows
//!    (the rows beside them are in the halo), then hysteresis *inside* the strip: every
//!    survivor connected within the strip to a strong one is an edge. What is left are weak
//!    components with no strong pixel in the strip; those that touch the strip's first or
//!    last row (and only those: the others cannot reach another strip) get a label. The
//!    strip's [`CannyStrip`] holds its edges so far and the pixels of each label; its
//!    [`CannySummary`] holds only its first and last rows, each pixel marked 0 (nothing), 1
//!    (an edge already) or `2 + label`.
//! 2. **The join** ([`canny_join`], once per image, from the summaries only): a union-find
//!    over every strip's labels, joining the marks of each strip's last row with those of
//!    the next strip's first row that are 8-connected to them (the same column or the next
//!    one each side). A label is on when it is joined, through any chain of strips, to a mark
//!    1. It answers each strip with a [`CannyVerdict`]: which of its labels are on.
//! 3. **Phase 2** ([`canny_finish`], per strip): the labels that are on become edges.
//!
//! The summaries are a few bytes per column of a strip's boundary rows, the verdicts a bit per
//! label. All three travel as bytes (`to_bytes`/`from_bytes`, versioned; `docs/operators.md`
//! has the layouts). The result is the same for any cut, and equals the scalar reference
//! ([`crate::reference::canny`]), which follows `cv2.Canny`.

use crate::backend::Backend;
use crate::filter::{KernelError, RowBlock};
use crate::gradient::Separable;
use crate::params::{Magnitude, Options, Output};
use crate::reference::Border;
use crate::reference::canny::thresholds;
use crate::row::{Job, run};
use crate::strip::StripSpec;
use crate::wire::{Reader, put_header, put_varint};

/// Suppression classes in the padded map.
const NONE: u8 = 0;
const WEAK: u8 = 1;
const STRONG: u8 = 2;
/// A weak pixel already given a label.
const LABELLED: u8 = 3;

/// Boundary marks of a [`CannySummary`].
const MARK_NONE: u32 = 0;
const MARK_EDGE: u32 = 1;
const MARK_FIRST_LABEL: u32 = 2;

/// tan 22.5° in 15-bit fixed point (OpenCV's `TG22`).
const TG22: i32 = 13573;

/// One strip after phase 1: its edges so far, and the pixels of each weak component that
/// touches its first or last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannyStrip {
    /// Image width.
    pub width: usize,
    /// First image row of the strip.
    pub first_row: usize,
    /// Rows of the strip.
    pub rows: usize,
    /// 255 for an edge, 0 otherwise, `rows × width`.
    pub edges: Vec<u8>,
    /// Where each label's pixels start in `label_pixels` (one more entry than labels).
    label_starts: Vec<u32>,
    /// The labels' pixels, as `y·width + x` within the strip, in increasing order per label.
    label_pixels: Vec<u32>,
}

/// What the join needs of one strip: its place and its boundary rows' marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannySummary {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub image_height: usize,
    /// First image row of the strip.
    pub first_row: usize,
    /// Rows of the strip.
    pub rows: usize,
    /// Labels of the strip.
    pub labels: u32,
    /// Marks of the first row (empty when the strip starts the image).
    pub top: Vec<u32>,
    /// Marks of the last row (empty when the strip ends the image).
    pub bottom: Vec<u32>,
}

/// Which labels of one strip the join turned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannyVerdict {
    /// `on[k]`: label `k` is an edge.
    pub on: Vec<bool>,
}

/// Gradient rows of Canny: Sobel with replicated borders, in 16 bits, `ksize` 7 scaled by
/// 1/16 with ties to even (as OpenCV's Canny).
enum Gradients {
    Fused,
    Separable { sep: Separable, gx: Vec<i32>, gy: Vec<i32>, scaled: bool },
}

impl Gradients {
    fn new(options: &Options, width: usize) -> Gradients {
        if options.ksize == 3 {
            Gradients::Fused
        } else {
            Gradients::Separable {
                sep: Separable::new(options.kernel, options.ksize, Border::Replicate, width),
                gx: vec![0; width],
                gy: vec![0; width],
                scaled: options.ksize == 7,
            }
        }
    }

    #[inline(always)]
    fn row(&mut self, block: &RowBlock<'_>, y: usize, gx: &mut [i16], gy: &mut [i16]) {
        let h = block.image_height;
        match self {
            Gradients::Fused => {
                let above = block.row(Border::Replicate.index(y as isize - 1, h));
                let below = block.row(Border::Replicate.index(y as isize + 1, h));
                sobel3_pair(above, block.row(y), below, gx, gy);
            }
            Gradients::Separable { sep, gx: gx32, gy: gy32, scaled } => {
                sep.row(block, y, gx32, gy32);
                if *scaled {
                    narrow(gx32, gx, div16_even);
                    narrow(gy32, gy, div16_even);
                } else {
                    narrow(gx32, gx, |v| v);
                    narrow(gy32, gy, |v| v);
                }
            }
        }
    }
}

/// `v / 16` rounded to nearest, ties to even.
#[inline(always)]
fn div16_even(v: i32) -> i32 {
    let q = v >> 4;
    let r = v & 15;
    q + ((r > 8) | ((r == 8) & (q & 1 == 1))) as i32
}

#[inline(always)]
fn narrow(src: &[i32], dst: &mut [i16], f: impl Fn(i32) -> i32) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f(s) as i16;
    }
}

/// Sobel 3×3 `gx` and `gy` of one row, replicated borders.
#[inline(always)]
fn sobel3_pair(above: &[u8], cur: &[u8], below: &[u8], gx: &mut [i16], gy: &mut [i16]) {
    let w = gx.len();
    let edge = |x: usize| -> (i16, i16) {
        let l = x.saturating_sub(1);
        let r = (x + 1).min(w - 1);
        let px = |row: &[u8], i: usize| row[i] as i16;
        (
            (px(above, r) + 2 * px(cur, r) + px(below, r)) - (px(above, l) + 2 * px(cur, l) + px(below, l)),
            (px(below, l) + 2 * px(below, x) + px(below, r))
                - (px(above, l) + 2 * px(above, x) + px(above, r)),
        )
    };
    (gx[0], gy[0]) = edge(0);
    if w == 1 {
        return;
    }
    (gx[w - 1], gy[w - 1]) = edge(w - 1);
    let n = w - 2;
    let (a0, a1, a2) = (&above[..n], &above[1..n + 1], &above[2..n + 2]);
    let (c0, c2) = (&cur[..n], &cur[2..n + 2]);
    let (b0, b1, b2) = (&below[..n], &below[1..n + 1], &below[2..n + 2]);
    let (ox, oy) = (&mut gx[1..n + 1], &mut gy[1..n + 1]);
    for i in 0..n {
        let left = a0[i] as i16 + 2 * c0[i] as i16 + b0[i] as i16;
        let right = a2[i] as i16 + 2 * c2[i] as i16 + b2[i] as i16;
        let top = a0[i] as i16 + 2 * a1[i] as i16 + a2[i] as i16;
        let bottom = b0[i] as i16 + 2 * b1[i] as i16 + b2[i] as i16;
        ox[i] = right - left;
        oy[i] = bottom - top;
    }
}

/// The magnitude row (padded by a 0 each side) of a gradient row.
#[inline(always)]
fn magnitude_row(gx: &[i16], gy: &[i16], l2: bool, out: &mut [i32]) {
    let w = gx.len();
    let inner = &mut out[1..w + 1];
    if l2 {
        for ((m, &x), &y) in inner.iter_mut().zip(gx).zip(gy) {
            *m = x as i32 * x as i32 + y as i32 * y as i32;
        }
    } else {
        for ((m, &x), &y) in inner.iter_mut().zip(gx).zip(gy) {
            *m = (x as i32).abs() + (y as i32).abs();
        }
    }
}

/// A row's gradients and the magnitudes of the three rows around it, each slice aligned on
/// the row's pixels (`p` above, `a` the row, `n` below; `0` left, `1` same column, `2` right).
struct Neighbourhood<'a> {
    gx: &'a [i16],
    gy: &'a [i16],
    p0: &'a [i32],
    p1: &'a [i32],
    p2: &'a [i32],
    a0: &'a [i32],
    a1: &'a [i32],
    a2: &'a [i32],
    n0: &'a [i32],
    n1: &'a [i32],
    n2: &'a [i32],
}

impl Neighbourhood<'_> {
    /// The class of pixel `i` (0, 1 weak, 2 strong), branch-free.
    #[inline(always)]
    fn class(&self, i: usize, low: i32, high: i32) -> u8 {
        let m = self.a1[i];
        let xs = self.gx[i] as i32;
        let ys = self.gy[i] as i32;
        let ax = xs.abs();
        let ay = ys.abs() << 15;
        let tg22 = ax * TG22;
        let tg67 = tg22 + (ax << 16);
        let horizontal = ay < tg22;
        let vertical = !horizontal & (ay > tg67);
        let diagonal = !horizontal & !vertical;
        let opposite = (xs ^ ys) < 0;
        let keep_h = (m > self.a0[i]) & (m >= self.a2[i]);
        let keep_v = (m > self.p1[i]) & (m >= self.n1[i]);
        let keep_same = (m > self.p0[i]) & (m > self.n2[i]);
        let keep_opposite = (m > self.p2[i]) & (m > self.n0[i]);
        let keep = (horizontal & keep_h)
            | (vertical & keep_v)
            | (diagonal & ((!opposite & keep_same) | (opposite & keep_opposite)));
        let candidate = keep & (m > low);
        candidate as u8 + (candidate & (m > high)) as u8
    }
}

/// Non-maximum suppression of one row: `class[x]` is 0, 1 (weak) or 2 (strong). `above`,
/// `here` and `below` are padded magnitude rows (`w + 2`, zero past the edges).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn suppress_row(
    gx: &[i16],
    gy: &[i16],
    above: &[i32],
    here: &[i32],
    below: &[i32],
    low: i32,
    high: i32,
    class: &mut [u8],
) {
    let w = class.len();
    let (gx, gy) = (&gx[..w], &gy[..w]);
    let rows = Neighbourhood {
        gx,
        gy,
        p0: &above[..w],
        p1: &above[1..w + 1],
        p2: &above[2..w + 2],
        a0: &here[..w],
        a1: &here[1..w + 1],
        a2: &here[2..w + 2],
        n0: &below[..w],
        n1: &below[1..w + 1],
        n2: &below[2..w + 2],
    };
    let a1 = rows.a1;
    // Most pixels of a photograph are below `low`: a run of them is written as zeros after
    // one vector comparison, and only runs holding a candidate go through the suppression.
    const RUN: usize = 32;
    let mut x = 0;
    while x + RUN <= w {
        let any = a1[x..x + RUN].iter().fold(false, |any, &m| any | (m > low));
        let out = &mut class[x..x + RUN];
        if any {
            for (k, c) in out.iter_mut().enumerate() {
                *c = rows.class(x + k, low, high);
            }
        } else {
            out.fill(NONE);
        }
        x += RUN;
    }
    for (k, c) in class[x..].iter_mut().enumerate() {
        *c = rows.class(x + k, low, high);
    }
}

/// The suppressed, tracked map of the rows `rows` of `block`: a padded map of
/// `(rows + 2) × (width + 2)` classes, after hysteresis inside those rows.
struct Tracked {
    width: usize,
    rows: usize,
    map: Vec<u8>,
}

impl Tracked {
    fn stride(&self) -> usize {
        self.width + 2
    }

    /// Index in the map of pixel `(x, y)` of the strip.
    fn at(&self, x: usize, y: usize) -> usize {
        (y + 1) * self.stride() + x + 1
    }

    /// The 8 neighbours' offsets in the map.
    fn neighbours(&self) -> [isize; 8] {
        let s = self.stride() as isize;
        [-s - 1, -s, -s + 1, -1, 1, s - 1, s, s + 1]
    }

    /// Flood from every pixel on `stack`, turning `from` into `to` (each pushed pixel must
    /// already be `to`); `visit` sees each pixel turned.
    fn flood(&mut self, stack: &mut Vec<u32>, from: u8, to: u8, mut visit: impl FnMut(usize)) {
        let offsets = self.neighbours();
        while let Some(p) = stack.pop() {
            let p = p as usize;
            for o in offsets {
                let q = (p as isize + o) as usize;
                if self.map[q] == from {
                    self.map[q] = to;
                    visit(q);
                    stack.push(q as u32);
                }
            }
        }
    }
}

/// The rows of a strip through gradients, magnitudes and suppression, into the padded map,
/// with the strong pixels pushed on `stack`: one [`Job`], compiled for each backend.
struct SuppressRows<'a, 'b> {
    options: &'a Options,
    block: &'a RowBlock<'b>,
    rows: std::ops::Range<usize>,
    map: &'a mut [u8],
    stack: &'a mut Vec<u32>,
}

/// Gradients and padded magnitudes of image row `y` into ring slot `slot` (zero magnitudes
/// for a row outside the image).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fill_slot(
    gradients: &mut Gradients,
    block: &RowBlock<'_>,
    y: isize,
    l2: bool,
    gx: &mut [i16],
    gy: &mut [i16],
    mag: &mut [i32],
) {
    if y < 0 || y >= block.image_height as isize {
        mag.fill(0);
    } else {
        gradients.row(block, y as usize, gx, gy);
        magnitude_row(gx, gy, l2, mag);
    }
}

impl Job for SuppressRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let SuppressRows { options, block, rows, map, stack } = self;
        let w = block.width;
        let stride = w + 2;
        let (low, high) = thresholds(options);
        let (low, high) = (low as i32, high as i32);
        let l2 = options.magnitude == Magnitude::L2;
        let mut gradients = Gradients::new(options, w);
        // Ring of three rows: gradients and padded magnitudes of rows y-1, y, y+1.
        let mut gx = [vec![0i16; w], vec![0i16; w], vec![0i16; w]];
        let mut gy = [vec![0i16; w], vec![0i16; w], vec![0i16; w]];
        let mut mag = [vec![0i32; stride], vec![0i32; stride], vec![0i32; stride]];
        let (mut p, mut a, mut n) = (0usize, 1usize, 2usize);
        let first = rows.start as isize;
        fill_slot(&mut gradients, block, first - 1, l2, &mut gx[p], &mut gy[p], &mut mag[p]);
        fill_slot(&mut gradients, block, first, l2, &mut gx[a], &mut gy[a], &mut mag[a]);
        for (i, y) in rows.enumerate() {
            fill_slot(&mut gradients, block, y as isize + 1, l2, &mut gx[n], &mut gy[n], &mut mag[n]);
            let start = (i + 1) * stride + 1;
            let class = &mut map[start..start + w];
            suppress_row(&gx[a], &gy[a], &mag[p], &mag[a], &mag[n], low, high, class);
            // Strong pixels seed the hysteresis; most rows have few, so words of zeros are
            // skipped eight pixels at a time.
            let mut x = 0;
            for word in class.chunks_exact(8) {
                let bits = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                if bits & 0x0202_0202_0202_0202 != 0 {
                    for (k, &c) in word.iter().enumerate() {
                        if c == STRONG {
                            stack.push((start + x + k) as u32);
                        }
                    }
                }
                x += 8;
            }
            for (k, &c) in class[x..].iter().enumerate() {
                if c == STRONG {
                    stack.push((start + x + k) as u32);
                }
            }
            (p, a, n) = (a, n, p);
        }
    }
}

/// Gradients, suppression and hysteresis inside the rows `rows` of `block`.
fn suppress_and_track(
    backend: Backend,
    options: &Options,
    block: &RowBlock<'_>,
    rows: std::ops::Range<usize>,
) -> Tracked {
    let w = block.width;
    let n = rows.len();
    let mut map = vec![NONE; (n + 2) * (w + 2)];
    let mut stack: Vec<u32> = Vec::new();
    run(backend, SuppressRows { options, block, rows, map: &mut map, stack: &mut stack });
    let mut tracked = Tracked { width: w, rows: n, map };
    tracked.flood(&mut stack, WEAK, STRONG, |_| {});
    tracked
}

/// Canny's phase 1 on the strip `spec` from its input rows (its rows plus
/// [`Options::halo`] rows each side, as `strip_input_with_halo` cuts them).
pub fn canny_phase1(
    options: &Options,
    spec: &StripSpec,
    input: &[u8],
) -> Result<(CannyStrip, CannySummary), KernelError> {
    canny_phase1_with(Backend::detect(), options, spec, input)
}

/// [`canny_phase1`] with an explicit backend.
pub fn canny_phase1_with(
    backend: Backend,
    options: &Options,
    spec: &StripSpec,
    input: &[u8],
) -> Result<(CannyStrip, CannySummary), KernelError> {
    check(backend, options)?;
    let block = spec.block_with_halo(input, options.halo())?;
    let rows = spec.output_rows();
    block.validate_halo(&rows, options.halo(), Border::Replicate)?;
    let mut tracked = suppress_and_track(backend, options, &block, rows.clone());
    let (w, n) = (spec.width, spec.rows);
    let link_top = !spec.touches_top();
    let link_bottom = !spec.touches_bottom();
    // Labels of the weak components that touch a linked boundary row.
    let mut top = if link_top { vec![MARK_NONE; w] } else { Vec::new() };
    let mut bottom = if link_bottom { vec![MARK_NONE; w] } else { Vec::new() };
    let mut label_starts = vec![0u32];
    let mut label_pixels: Vec<u32> = Vec::new();
    let mut stack = Vec::new();
    let stride = tracked.stride();
    let boundary_rows: Vec<usize> = [(link_top, 0), (link_bottom, n - 1)]
        .into_iter()
        .filter_map(|(linked, y)| linked.then_some(y))
        .collect();
    for &y in &boundary_rows {
        for x in 0..w {
            let at = tracked.at(x, y);
            if tracked.map[at] != WEAK {
                continue;
            }
            let label = label_starts.len() as u32 - 1;
            let mark = MARK_FIRST_LABEL + label;
            tracked.map[at] = LABELLED;
            stack.push(at as u32);
            let mut visit = |q: usize| {
                let (qy, qx) = (q / stride - 1, q % stride - 1);
                label_pixels.push((qy * w + qx) as u32);
                if link_top && qy == 0 {
                    top[qx] = mark;
                }
                if link_bottom && qy == n - 1 {
                    bottom[qx] = mark;
                }
            };
            visit(at);
            tracked.flood(&mut stack, WEAK, LABELLED, visit);
            // In raster order, as the bytes carry them.
            let first = *label_starts.last().expect("one start at least") as usize;
            label_pixels[first..].sort_unstable();
            label_starts.push(label_pixels.len() as u32);
        }
    }
    for (marks, y) in [(&mut top, 0), (&mut bottom, n - 1)] {
        if marks.is_empty() {
            continue;
        }
        for (x, mark) in marks.iter_mut().enumerate() {
            if tracked.map[tracked.at(x, y)] == STRONG {
                *mark = MARK_EDGE;
            }
        }
    }
    let edges = edges_of(tracked);
    let labels = label_starts.len() as u32 - 1;
    let strip =
        CannyStrip { width: w, first_row: spec.first_row, rows: n, edges, label_starts, label_pixels };
    let summary = CannySummary {
        width: w,
        image_height: spec.image_height,
        first_row: spec.first_row,
        rows: n,
        labels,
        top,
        bottom,
    };
    Ok((strip, summary))
}

/// 255 where the tracked map is an edge, row by row without the padding: written over the
/// map itself (each row moves towards the start), so no second image-sized buffer is touched.
fn edges_of(tracked: Tracked) -> Vec<u8> {
    let (w, stride, rows) = (tracked.width, tracked.stride(), tracked.rows);
    let mut map = tracked.map;
    for y in 0..rows {
        let from = (y + 1) * stride + 1;
        for x in 0..w {
            map[y * w + x] = 0u8.wrapping_sub((map[from + x] == STRONG) as u8);
        }
    }
    map.truncate(rows * w);
    map
}

fn check(backend: Backend, options: &Options) -> Result<(), KernelError> {
    options.validate()?;
    if options.output != Output::Canny {
        return Err(crate::params::OptionError::Invalid {
            option: "output",
            message: format!("the Canny phases compute output=canny, not output={}", options.output),
        }
        .into());
    }
    if !backend.is_supported() {
        return Err(KernelError::Unsupported(backend));
    }
    Ok(())
}

/// Canny on a block holding a whole image: one strip, nothing to join.
pub(crate) fn canny_image_with(
    backend: Backend,
    options: &Options,
    block: &RowBlock<'_>,
) -> Result<Vec<u8>, KernelError> {
    check(backend, options)?;
    let rows = 0..block.image_height;
    block.validate_halo(&rows, options.halo(), Border::Replicate)?;
    Ok(edges_of(suppress_and_track(backend, options, block, rows)))
}

/// A union-find over label nodes; node 0 stands for "an edge".
struct UnionFind(Vec<u32>);

impl UnionFind {
    fn find(&mut self, mut a: u32) -> u32 {
        while self.0[a as usize] != a {
            let parent = self.0[a as usize];
            self.0[a as usize] = self.0[parent as usize];
            a = parent;
        }
        a
    }

    fn union(&mut self, a: u32, b: u32) {
        let (a, b) = (self.find(a), self.find(b));
        // The smaller root wins, so node 0 ("an edge") stays a root.
        if a < b {
            self.0[b as usize] = a;
        } else if b < a {
            self.0[a as usize] = b;
        }
    }
}

/// The join: which labels of each strip are edges, from every strip's summary in order (top
/// to bottom).
pub fn canny_join(summaries: &[CannySummary]) -> Result<Vec<CannyVerdict>, KernelError> {
    let bad = |why: String| Err(KernelError::Strips(why));
    let Some(first) = summaries.first() else { return bad("no strips".into()) };
    let (w, h) = (first.width, first.image_height);
    let mut next_row = 0;
    let mut bases = Vec::with_capacity(summaries.len());
    let mut nodes = 1u64;
    for (i, s) in summaries.iter().enumerate() {
        if (s.width, s.image_height) != (w, h) {
            return bad(format!(
                "strip {i} is of a {}x{} image, strip 0 of {w}x{h}",
                s.width, s.image_height
            ));
        }
        if s.first_row != next_row || s.rows == 0 {
            return bad(format!("strip {i} starts at row {} where row {next_row} was expected", s.first_row));
        }
        next_row += s.rows;
        let (want_top, want_bottom) = (s.first_row > 0, next_row < h);
        if (s.top.len() == w) != want_top
            || (s.top.is_empty() == want_top)
            || (s.bottom.len() == w) != want_bottom
            || (s.bottom.is_empty() == want_bottom)
        {
            return bad(format!("strip {i} does not carry the boundary rows its place needs"));
        }
        if s.top.iter().chain(&s.bottom).any(|&m| m >= MARK_FIRST_LABEL + s.labels) {
            return bad(format!("strip {i} marks a label it does not have"));
        }
        bases.push(nodes);
        nodes += s.labels as u64;
    }
    if next_row != h {
        return bad(format!("the strips end at row {next_row} of {h}"));
    }
    let Ok(nodes) = u32::try_from(nodes) else { return bad("too many labels".into()) };
    let mut uf = UnionFind((0..nodes).collect());
    let node = |strip: usize, mark: u32| -> u32 {
        if mark == MARK_EDGE { 0 } else { (bases[strip] + (mark - MARK_FIRST_LABEL) as u64) as u32 }
    };
    for (i, pair) in summaries.windows(2).enumerate() {
        let (upper, lower) = (&pair[0].bottom, &pair[1].top);
        for (x, &a) in upper.iter().enumerate() {
            if a == MARK_NONE {
                continue;
            }
            for &b in &lower[x.saturating_sub(1)..(x + 2).min(w)] {
                if b != MARK_NONE {
                    uf.union(node(i, a), node(i + 1, b));
                }
            }
        }
    }
    Ok(summaries
        .iter()
        .enumerate()
        .map(|(i, s)| CannyVerdict {
            on: (0..s.labels).map(|k| uf.find(node(i, MARK_FIRST_LABEL + k)) == 0).collect(),
        })
        .collect())
}

/// Phase 2: the strip's final edge rows (`rows × width` bytes of 0 or 255).
pub fn canny_finish(strip: CannyStrip, verdict: &CannyVerdict) -> Result<Vec<u8>, KernelError> {
    let labels = strip.label_starts.len() - 1;
    if verdict.on.len() != labels {
        return Err(KernelError::Strips(format!(
            "the verdict speaks of {} labels, the strip has {labels}",
            verdict.on.len()
        )));
    }
    let mut edges = strip.edges;
    for (k, &on) in verdict.on.iter().enumerate() {
        if on {
            let (a, b) = (strip.label_starts[k] as usize, strip.label_starts[k + 1] as usize);
            for &p in &strip.label_pixels[a..b] {
                edges[p as usize] = 255;
            }
        }
    }
    Ok(edges)
}

const STRIP_MAGIC: &[u8; 4] = b"DSCP";
const SUMMARY_MAGIC: &[u8; 4] = b"DSCS";
const VERDICT_MAGIC: &[u8; 4] = b"DSCV";
const VERSION: u8 = 1;
/// Bound on any dimension read back (far above any image the limits let in).
const MAX_DIMENSION: u64 = 1 << 31;

fn put_marks(out: &mut Vec<u8>, marks: &[u32]) {
    // Pairs (zeros skipped, mark) for each nonzero mark, after their count.
    let nonzero = marks.iter().filter(|&&m| m != MARK_NONE).count();
    put_varint(out, nonzero as u64);
    let mut last = 0usize;
    for (x, &m) in marks.iter().enumerate() {
        if m != MARK_NONE {
            put_varint(out, (x - last) as u64);
            put_varint(out, m as u64);
            last = x + 1;
        }
    }
}

fn read_marks(r: &mut Reader<'_>, width: usize) -> Result<Vec<u32>, KernelError> {
    let mut marks = vec![MARK_NONE; width];
    let count = r.count(width as u64, "mark count")?;
    let mut x = 0usize;
    for _ in 0..count {
        x += r.count(width as u64, "gap")?;
        let mark = r.count(u32::MAX as u64, "mark")?;
        if x >= width || mark == 0 {
            return Err(r.error("a mark lies outside its row"));
        }
        marks[x] = mark as u32;
        x += 1;
    }
    Ok(marks)
}

impl CannySummary {
    /// `DSCS`, version 1, then varints: width, image height, first row, rows, labels, a flag
    /// byte (bit 0: first row's marks follow, bit 1: last row's), and each row of marks as the
    /// count of nonzero marks and, for each, the zeros skipped since the previous one and the
    /// mark.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        put_header(&mut out, SUMMARY_MAGIC, VERSION);
        for v in [self.width, self.image_height, self.first_row, self.rows, self.labels as usize] {
            put_varint(&mut out, v as u64);
        }
        out.push(u8::from(!self.top.is_empty()) | u8::from(!self.bottom.is_empty()) << 1);
        for marks in [&self.top, &self.bottom] {
            if !marks.is_empty() {
                put_marks(&mut out, marks);
            }
        }
        out
    }

    /// Reads what [`Self::to_bytes`] wrote, refusing anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernelError> {
        let mut r = Reader::new(bytes, SUMMARY_MAGIC, VERSION, "Canny summary")?;
        let width = r.count(MAX_DIMENSION, "width")?;
        let image_height = r.count(MAX_DIMENSION, "height")?;
        let first_row = r.count(MAX_DIMENSION, "first row")?;
        let rows = r.count(MAX_DIMENSION, "rows")?;
        let labels = r.count(u32::MAX as u64, "labels")? as u32;
        let flags = r.byte()?;
        if flags > 3 {
            return Err(r.error("unknown flags"));
        }
        let top = if flags & 1 != 0 { read_marks(&mut r, width)? } else { Vec::new() };
        let bottom = if flags & 2 != 0 { read_marks(&mut r, width)? } else { Vec::new() };
        r.finish()?;
        Ok(CannySummary { width, image_height, first_row, rows, labels, top, bottom })
    }
}

impl CannyVerdict {
    /// `DSCV`, version 1, the label count (varint), then one bit per label, least
    /// significant first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.on.len() / 8);
        put_header(&mut out, VERDICT_MAGIC, VERSION);
        put_varint(&mut out, self.on.len() as u64);
        out.extend(self.on.chunks(8).map(|bits| bits.iter().rev().fold(0u8, |acc, &b| acc << 1 | b as u8)));
        out
    }

    /// Reads what [`Self::to_bytes`] wrote, refusing anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernelError> {
        let mut r = Reader::new(bytes, VERDICT_MAGIC, VERSION, "Canny verdict")?;
        let labels = r.count(u32::MAX as u64, "labels")?;
        let packed = r.take(labels.div_ceil(8))?;
        r.finish()?;
        Ok(CannyVerdict { on: (0..labels).map(|k| packed[k / 8] >> (k % 8) & 1 == 1).collect() })
    }
}

impl CannyStrip {
    /// Number of labels.
    pub fn labels(&self) -> usize {
        self.label_starts.len() - 1
    }

    /// `DSCP`, version 1, then varints: width, first row, rows, then the edges packed one bit
    /// per pixel (most significant first, each row padded to a byte), then the label count
    /// and, for each label, its pixel count and its pixels (`y·width + x` in the strip) as
    /// increasing gaps.
    pub fn to_bytes(&self) -> Vec<u8> {
        let line = self.width.div_ceil(8);
        let mut out = Vec::with_capacity(32 + line * self.rows + self.label_pixels.len() * 2);
        put_header(&mut out, STRIP_MAGIC, VERSION);
        for v in [self.width, self.first_row, self.rows] {
            put_varint(&mut out, v as u64);
        }
        for row in self.edges.chunks_exact(self.width.max(1)) {
            let start = out.len();
            out.resize(start + line, 0);
            crate::png::pack_binary_row(row, &mut out[start..]);
        }
        put_varint(&mut out, self.labels() as u64);
        for k in 0..self.labels() {
            let pixels = &self.label_pixels[self.label_starts[k] as usize..self.label_starts[k + 1] as usize];
            put_varint(&mut out, pixels.len() as u64);
            let mut last = 0u64;
            for &p in pixels {
                put_varint(&mut out, p as u64 - last);
                last = p as u64;
            }
        }
        out
    }

    /// Reads what [`Self::to_bytes`] wrote, refusing anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernelError> {
        let mut r = Reader::new(bytes, STRIP_MAGIC, VERSION, "Canny strip")?;
        let width = r.count(MAX_DIMENSION, "width")?;
        let first_row = r.count(MAX_DIMENSION, "first row")?;
        let rows = r.count(MAX_DIMENSION, "rows")?;
        let pixels =
            width.checked_mul(rows).filter(|&p| p < 1 << 32).ok_or_else(|| r.error("too many pixels"))?;
        let line = width.div_ceil(8);
        let packed = r.take(line * rows)?;
        let mut edges = vec![0u8; pixels];
        for (row, bits) in edges.chunks_exact_mut(width.max(1)).zip(packed.chunks_exact(line.max(1))) {
            for (x, e) in row.iter_mut().enumerate() {
                *e = 0u8.wrapping_sub(bits[x / 8] >> (7 - x % 8) & 1);
            }
        }
        let labels = r.count(pixels as u64, "labels")?;
        let mut label_starts = vec![0u32];
        let mut label_pixels = Vec::new();
        for _ in 0..labels {
            let count = r.count(pixels as u64, "label size")?;
            let mut at = 0u64;
            for i in 0..count {
                let gap = r.varint()?;
                at = at.checked_add(gap).ok_or_else(|| r.error("a pixel overflows"))?;
                if at >= pixels as u64 || (i > 0 && gap == 0) {
                    return Err(r.error("a label's pixel lies outside the strip or repeats"));
                }
                label_pixels.push(at as u32);
            }
            label_starts.push(label_pixels.len() as u32);
        }
        r.finish()?;
        Ok(CannyStrip { width, first_row, rows, edges, label_starts, label_pixels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_to_even() {
        for v in -100_000..100_000 {
            assert_eq!(div16_even(v) as i64, crate::reference::canny::div16_round_even(v as i64), "{v}");
        }
    }
}
