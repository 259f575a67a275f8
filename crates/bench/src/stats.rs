//! The summary of a benchmark: one line per cell (workers × image × concurrency) with the
//! request count, failures, throughput and latency percentiles, and the failures counted by
//! error code.
//!
//! Latency percentiles are over the successful requests only: a `429` answered in a
//! millisecond is not a fast request. Throughput is the successful requests of a cell over the
//! time from its first recorded request's start to its last one's end (warm-up excluded).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::record::Record;

/// The summary of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSummary {
    /// Worker label of the run.
    pub workers: String,
    /// Image label.
    pub image: String,
    /// Mean upload size in KB.
    pub image_kb: f64,
    /// Clients at once.
    pub concurrency: usize,
    /// Requests recorded.
    pub requests: usize,
    /// Requests that failed.
    pub failures: usize,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency percentiles of the successful requests, in milliseconds (0 when none).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Everything a benchmark measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every recorded request, in the order they finished.
    pub records: Vec<Record>,
    /// One summary per cell, in the order the cells first appear in `records`.
    pub cells: Vec<CellSummary>,
    /// Failures counted by error code.
    pub failures: BTreeMap<String, usize>,
}

impl Report {
    /// Summarises `records`.
    pub fn new(records: Vec<Record>) -> Report {
        let cells = summarize(&records);
        let mut failures = BTreeMap::new();
        for r in records.iter().filter(|r| !r.ok()) {
            let code = if r.error.is_empty() { format!("http-{}", r.status) } else { r.error.clone() };
            *failures.entry(code).or_insert(0) += 1;
        }
        Report { records, cells, failures }
    }

    /// Total failed requests.
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// The exit code: 0 when every request succeeded, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.failed() == 0 { 0 } else { 1 }
    }

    /// The summary as a plain-text table, followed by the failures by code.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<9} {:<12} {:>9} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "workers",
            "image",
            "size_kb",
            "conc",
            "requests",
            "failed",
            "img/s",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms"
        );
        for c in &self.cells {
            let _ = writeln!(
                out,
                "{:<9} {:<12} {:>9.0} {:>5} {:>8} {:>6} {:>9.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                c.workers,
                c.image,
                c.image_kb,
                c.concurrency,
                c.requests,
                c.failures,
                c.throughput,
                c.p50_ms,
                c.p95_ms,
                c.p99_ms,
                c.max_ms
            );
        }
        if self.failures.is_empty() {
            let _ = writeln!(out, "all {} requests succeeded", self.records.len());
        } else {
            let _ = writeln!(out, "{} of {} requests failed:", self.failed(), self.records.len());
            for (code, n) in &self.failures {
                let _ = writeln!(out, "  {code}: {n}");
            }
        }
        out
    }
}

/// The `q`-quantile (0..=1) of sorted values, by the nearest-rank method.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One summary per (workers, image, concurrency), in order of first appearance.
pub fn summarize(records: &[Record]) -> Vec<CellSummary> {
    let mut order: Vec<(String, String, usize)> = Vec::new();
    let mut groups: BTreeMap<(String, String, usize), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let key = (r.workers.clone(), r.image.clone(), r.concurrency);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    order
        .into_iter()
        .map(|key| {
            let rows = &groups[&key];
            let mut latencies: Vec<f64> = rows.iter().filter(|r| r.ok()).map(|r| r.elapsed_ms).collect();
            latencies.sort_by(f64::total_cmp);
            let start = rows.iter().map(|r| r.start_ms).fold(f64::INFINITY, f64::min);
            let end = rows.iter().map(|r| r.start_ms + r.elapsed_ms).fold(0.0, f64::max);
            let window_s = (end - start) / 1e3;
            let throughput = if window_s > 0.0 { latencies.len() as f64 / window_s } else { 0.0 };
            CellSummary {
                image_kb: rows.iter().map(|r| r.image_kb).sum::<f64>() / rows.len() as f64,
                workers: key.0,
                image: key.1,
                concurrency: key.2,
                requests: rows.len(),
                failures: rows.iter().filter(|r| !r.ok()).count(),
                throughput,
                p50_ms: percentile(&latencies, 0.50),
                p95_ms: percentile(&latencies, 0.95),
                p99_ms: percentile(&latencies, 0.99),
                max_ms: latencies.last().copied().unwrap_or(0.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn cells_and_failures() {
        let ok = |c, start, ms| Record {
            status: 200,
            elapsed_ms: ms,
            start_ms: start,
            concurrency: c,
            image: "1mb".into(),
            workers: "2".into(),
            image_kb: 1000.0,
            ..Record::default()
        };
        let busy = Record { status: 429, error: "too-busy".into(), ..ok(2, 0.0, 1.0) };
        let report = Report::new(vec![ok(1, 0.0, 500.0), ok(1, 500.0, 500.0), ok(2, 0.0, 1000.0), busy]);
        assert_eq!(report.cells.len(), 2);
        assert_eq!(report.cells[0].requests, 2);
        assert!((report.cells[0].throughput - 2.0).abs() < 1e-9);
        assert_eq!(report.cells[1].failures, 1);
        assert_eq!(report.cells[1].p50_ms, 1000.0);
        assert_eq!(report.failures.get("too-busy"), Some(&1));
        assert_eq!(report.exit_code(), 1);
        assert!(report.table().contains("too-busy: 1"));
    }
}
