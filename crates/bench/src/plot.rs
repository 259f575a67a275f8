//! The charts of the performance report, drawn as PNG from the benchmark's CSV.
//!
//! - `latency.png`: latency against image size, one colour per concurrency level (the seed's
//!   own chart, `benchmark_result_plot.png`), every request a dot, the mean a line;
//! - `throughput.png`: images per second against concurrency, one line per worker count, one
//!   panel per image;
//! - `stages.png`: where the time of a request goes, as stacked bars of means per cell: decode,
//!   queue wait, filter and encode (per strip: their CPU time summed over the strips, divided by
//!   the strip count, which is their wall time when the strips run side by side), stitch,
//!   transfer and API wait (upload and download, less the decode the upload waits for: on a
//!   busy backend, mostly the wait for a core to decode on) and the rest (mostly the delivery
//!   of the job's final event).
//!
//! Drawing needs no system font: DejaVu Sans is compiled in (its licence is beside it in
//! `assets/`), and the pixels are encoded with the `png` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::record::{Record, read_csv};

/// DejaVu Sans, the one font of every chart.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Chart colours, distinct in print and for the common kinds of colour blindness.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(80, 80, 80),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Arguments of `dsobel bench plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The CSV written by `dsobel bench` or `dsobel bench matrix`.
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// Folder of the PNG files (created when missing).
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out_dir: PathBuf,
}

/// `dsobel bench plot`: draws the charts of a CSV; returns the exit code.
pub fn plot_command(args: PlotArgs) -> Result<i32> {
    for path in plot(&args.csv, &args.out_dir)? {
        eprintln!("plot written to {}", path.display());
    }
    Ok(0)
}

/// Draws `latency.png`, `throughput.png` and `stages.png` of a CSV into `out_dir`; returns
/// their paths.
pub fn plot(csv: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    plot_records(&read_csv(csv)?, out_dir)
}

/// Draws the charts of measured records into `out_dir`; returns their paths.
pub fn plot_records(records: &[Record], out_dir: &Path) -> Result<Vec<PathBuf>> {
    if !records.iter().any(Record::ok) {
        bail!("no successful request to plot");
    }
    register_font();
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let latency = out_dir.join("latency.png");
    render(&latency, (1200, 800), |area| latency_chart(area, records))?;
    let images = image_labels(records);
    let throughput = out_dir.join("throughput.png");
    let width = (560 * images.len() as u32).clamp(900, 2400);
    render(&throughput, (width, 640), |area| throughput_chart(area, records, &images))?;
    let stages = out_dir.join("stages.png");
    let bars = cells(records).len() as u32;
    let width = (120 + bars * 110 / images.len().max(1) as u32 + 260).clamp(900, 2400);
    render(&stages, (width, 480 * images.len() as u32), |area| stages_chart(area, records, &images))?;
    Ok(vec![latency, throughput, stages])
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are compiled in and known to be a valid font.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws into an RGB buffer, then writes it as PNG.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(())
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e}")
}

/// The series legend, in the upper left, in the style every chart shares.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

/// Image labels, smallest first.
fn image_labels(records: &[Record]) -> Vec<String> {
    let mut sizes: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in records {
        let e = sizes.entry(r.image.clone()).or_insert((0.0, 0));
        e.0 += r.image_kb;
        e.1 += 1;
    }
    let mut labels: Vec<(String, f64)> = sizes.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect();
    labels.sort_by(|a, b| a.1.total_cmp(&b.1));
    labels.into_iter().map(|(k, _)| k).collect()
}

/// Sorted distinct values.
fn distinct<T: Ord + Clone>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = values.collect();
    v.sort();
    v.dedup();
    v
}

/// Worker labels: `embedded` first, then counts in numeric order, then anything else.
fn worker_labels(records: &[Record]) -> Vec<String> {
    let mut labels = distinct(records.iter().map(|r| r.workers.clone()));
    labels.sort_by_key(|l| match (l.as_str(), l.parse::<u64>()) {
        ("embedded", _) => (0, 0, String::new()),
        (_, Ok(n)) => (1, n, String::new()),
        _ => (2, 0, l.clone()),
    });
    labels
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn latency_chart(area: &DrawingArea<BitMapBackend<'_>, Shift>, records: &[Record]) -> Result<()> {
    let ok: Vec<&Record> = records.iter().filter(|r| r.ok()).collect();
    let x_max = ok.iter().map(|r| r.image_kb / 1024.0).fold(0.0, f64::max) * 1.08 + 0.01;
    let y_max = ok.iter().map(|r| r.elapsed_ms / 1e3).fold(0.0, f64::max) * 1.08 + 0.001;
    let mut chart = ChartBuilder::on(area)
        .caption("Latency by image size and concurrency", ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("image size (MB)")
        .y_desc("latency: upload to downloaded result (s)")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    for (i, level) in distinct(ok.iter().map(|r| r.concurrency)).into_iter().enumerate() {
        let c = color(i);
        let rows: Vec<&&Record> = ok.iter().filter(|r| r.concurrency == level).collect();
        chart
            .draw_series(
                rows.iter()
                    .map(|r| Circle::new((r.image_kb / 1024.0, r.elapsed_ms / 1e3), 3, c.mix(0.45).filled())),
            )
            .map_err(plot_error)?
            .label(format!("concurrency {level} (dots: requests, line: mean)"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        let mut means: Vec<(f64, f64)> = distinct(rows.iter().map(|r| r.image.clone()))
            .into_iter()
            .filter_map(|image| {
                let of = || rows.iter().filter(|r| r.image == image);
                Some((mean(of().map(|r| r.image_kb / 1024.0))?, mean(of().map(|r| r.elapsed_ms / 1e3))?))
            })
            .collect();
        means.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(means, c.stroke_width(2))).map_err(plot_error)?;
    }
    draw_legend(&mut chart)?;
    Ok(())
}

/// Successful requests per second of the records of one cell.
fn throughput(rows: &[&Record]) -> f64 {
    let ok = rows.iter().filter(|r| r.ok()).count();
    let start = rows.iter().map(|r| r.start_ms).fold(f64::INFINITY, f64::min);
    let end = rows.iter().map(|r| r.start_ms + r.elapsed_ms).fold(0.0, f64::max);
    if end > start { ok as f64 / ((end - start) / 1e3) } else { 0.0 }
}

fn throughput_chart(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    records: &[Record],
    images: &[String],
) -> Result<()> {
    let levels = distinct(records.iter().map(|r| r.concurrency));
    let workers = worker_labels(records);
    let panels = area.split_evenly((1, images.len().max(1)));
    for (panel, image) in panels.iter().zip(images) {
        let mut lines: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
        for w in &workers {
            let mut points = Vec::new();
            for (i, &level) in levels.iter().enumerate() {
                let rows: Vec<&Record> = records
                    .iter()
                    .filter(|r| &r.workers == w && &r.image == image && r.concurrency == level)
                    .collect();
                if !rows.is_empty() {
                    points.push((i, throughput(&rows)));
                }
            }
            if !points.is_empty() {
                lines.push((w.clone(), points));
            }
        }
        let y_max = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.15 + 0.01;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("Throughput, image {image}"), ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            // A discrete range includes its end: 0..=n-1 is n segments.
            .build_cartesian_2d((0..levels.len().saturating_sub(1)).into_segmented(), 0.0..y_max)
            .map_err(plot_error)?;
        let level_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                levels.get(*i).map(ToString::to_string).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .x_desc("concurrency (clients at once)")
            .y_desc("images per second")
            .x_label_formatter(&level_name)
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_error)?;
        for (k, (label, points)) in lines.into_iter().enumerate() {
            let c = color(k);
            let at = |p: &(usize, f64)| (SegmentValue::CenterOf(p.0), p.1);
            chart
                .draw_series(LineSeries::new(points.iter().map(at), c.stroke_width(3)))
                .map_err(plot_error)?
                .label(match label.parse::<u64>() {
                    Ok(1) => "1 worker".to_owned(),
                    Ok(n) => format!("{n} workers"),
                    Err(_) => label.clone(),
                })
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart
                .draw_series(points.iter().map(|p| Circle::new(at(p), 5, c.filled())))
                .map_err(plot_error)?;
        }
        draw_legend(&mut chart)?;
    }
    Ok(())
}

/// The cells in display order: workers, then image, then concurrency.
fn cells(records: &[Record]) -> Vec<(String, String, usize)> {
    let order = worker_labels(records);
    let mut cells = distinct(records.iter().map(|r| (r.workers.clone(), r.image.clone(), r.concurrency)));
    cells.sort_by_key(|(w, _, c)| (order.iter().position(|o| o == w), *c));
    cells
}

/// A bar's short name: `emb c4`, `w2 c16`.
fn short_label(workers: &str, concurrency: usize) -> String {
    match workers {
        "embedded" => format!("emb c{concurrency}"),
        w if w.parse::<u64>().is_ok() => format!("w{w} c{concurrency}"),
        w => format!("{w} c{concurrency}"),
    }
}

/// Stage names of the stacked bars, bottom first.
const STAGES: [&str; 7] = [
    "decode",
    "queue wait",
    "filter (per strip)",
    "encode (per strip)",
    "stitch",
    "transfer + API wait",
    "other (events, waits)",
];

/// Mean stage times of the successful records of one cell, in milliseconds, [`STAGES`] order.
fn stage_means(rows: &[&Record]) -> [f64; 7] {
    let ok: Vec<&&Record> = rows.iter().filter(|r| r.ok()).collect();
    let m = |f: &dyn Fn(&Record) -> f64| mean(ok.iter().map(|r| f(r))).unwrap_or(0.0);
    let per_strip = |v: Option<f64>, r: &Record| v.unwrap_or(0.0) / f64::from(r.strips.unwrap_or(1).max(1));
    let decode = m(&|r| r.decode_ms.unwrap_or(0.0));
    let queue = m(&|r| r.queue_wait_ms.unwrap_or(0.0));
    let filter = m(&|r| per_strip(r.filter_ms, r));
    let encode = m(&|r| per_strip(r.encode_ms, r));
    let stitch = m(&|r| r.stitch_ms.unwrap_or(0.0));
    let transfer = m(&|r| {
        (r.upload_ms.unwrap_or(0.0) - r.decode_ms.unwrap_or(0.0)).max(0.0) + r.download_ms.unwrap_or(0.0)
    });
    let total = m(&|r| r.elapsed_ms);
    let other = (total - decode - queue - filter - encode - stitch - transfer).max(0.0);
    [decode, queue, filter, encode, stitch, transfer, other]
}

fn stages_chart(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    records: &[Record],
    images: &[String],
) -> Result<()> {
    let panels = area.split_evenly((images.len().max(1), 1));
    for (panel, image) in panels.iter().zip(images) {
        let bars: Vec<(String, usize)> =
            cells(records).into_iter().filter(|(_, i, _)| i == image).map(|(w, _, c)| (w, c)).collect();
        let means: Vec<[f64; 7]> = bars
            .iter()
            .map(|(w, c)| {
                let rows: Vec<&Record> = records
                    .iter()
                    .filter(|r| &r.workers == w && &r.image == image && r.concurrency == *c)
                    .collect();
                stage_means(&rows)
            })
            .collect();
        let y_max = means.iter().map(|m| m.iter().sum::<f64>()).fold(0.0, f64::max) * 1.1 + 0.01;
        let (plot_area, legend_area) = panel.split_horizontally(panel.dim_in_pixel().0.saturating_sub(240));
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(format!("Where the time goes (mean per request), image {image}"), ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((0..bars.len().saturating_sub(1)).into_segmented(), 0.0..y_max)
            .map_err(plot_error)?;
        let bar_name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                bars.get(*i).map(|(w, c)| short_label(w, *c)).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&bar_name)
            .x_desc("run (emb: embedded, wN: N workers) and concurrency (cN)")
            .y_desc("milliseconds")
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_error)?;
        for (s, _) in STAGES.iter().enumerate() {
            let c = color(s);
            let rects = means.iter().enumerate().map(|(i, m)| {
                let bottom: f64 = m[..s].iter().sum();
                let mut rect = Rectangle::new(
                    [(SegmentValue::Exact(i), bottom), (SegmentValue::Exact(i + 1), bottom + m[s])],
                    c.filled(),
                );
                rect.set_margin(0, 0, 8, 8);
                rect
            });
            chart.draw_series(rects).map_err(plot_error)?;
        }
        // The legend beside the chart, top down in the order the stages are stacked.
        for (row, (s, stage)) in STAGES.iter().enumerate().rev().enumerate() {
            let y = 70 + 26 * row as i32;
            legend_area
                .draw(&Rectangle::new([(10, y), (28, y + 16)], color(s).filled()))
                .map_err(plot_error)?;
            legend_area.draw(&Text::new(*stage, (36, y), ("sans-serif", 15))).map_err(plot_error)?;
        }
    }
    Ok(())
}

/// Draws `scaling.png` of `dsobel bench scaling` into `out_dir`: throughput against worker
/// processes, beside the ideal line (the first row's throughput per worker, times the workers).
pub fn scaling_chart(rows: &[crate::scaling::ScalingRow], cpu_cap: f64, out_dir: &Path) -> Result<PathBuf> {
    let distributed: Vec<&crate::scaling::ScalingRow> = rows.iter().filter(|r| r.workers > 0).collect();
    let Some(first) = distributed.first() else { bail!("no distributed row to plot") };
    register_font();
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let path = out_dir.join("scaling.png");
    let per_worker = first.throughput / first.workers as f64;
    let x_max = distributed.iter().map(|r| r.workers).max().unwrap_or(1) as f64 + 0.5;
    let y_max =
        distributed.iter().map(|r| r.throughput.max(per_worker * r.workers as f64)).fold(0.0, f64::max)
            * 1.15
            + 0.01;
    let cap = if cpu_cap > 0.0 { format!("{cpu_cap} core per process") } else { "no CPU cap".to_owned() };
    render(&path, (900, 600), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Throughput by worker processes ({cap})"), ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5..x_max, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("worker processes")
            .y_desc("images per second")
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_error)?;
        let ideal: Vec<(f64, f64)> =
            distributed.iter().map(|r| (r.workers as f64, per_worker * r.workers as f64)).collect();
        let grey = color(7);
        chart
            .draw_series(LineSeries::new(ideal, grey.stroke_width(2)))
            .map_err(plot_error)?
            .label("ideal: each worker adds the first one's throughput")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
        let measured: Vec<(f64, f64)> =
            distributed.iter().map(|r| (r.workers as f64, r.throughput)).collect();
        let blue = color(0);
        chart
            .draw_series(LineSeries::new(measured.clone(), blue.stroke_width(3)))
            .map_err(plot_error)?
            .label("measured")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
        chart
            .draw_series(measured.into_iter().map(|p| Circle::new(p, 5, blue.filled())))
            .map_err(plot_error)?;
        draw_legend(&mut chart)
    })?;
    Ok(path)
}
