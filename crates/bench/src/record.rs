//! One CSV row per request: what was sent, what came back, and how long each part took.
//!
//! The first four columns are the seed's (`benchmark_results.csv`: HTTP status, elapsed time,
//! image size in KB, concurrency), so its plotting habits still work; the rest split the time
//! into upload, queue wait, processing and download, and name the run (`workers`) and the
//! reason of a failure (`error`, the API's stable error code). The file is written by hand (a
//! CSV this simple needs no library) and read back by [`read_csv`] for the plots.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The CSV header, in column order.
pub const COLUMNS: [&str; 22] = [
    "status",
    "elapsed_ms",
    "image_kb",
    "concurrency",
    "upload_ms",
    "queue_wait_ms",
    "processing_ms",
    "download_ms",
    "result_bytes",
    "strips",
    "workers",
    "error",
    "image",
    "width",
    "height",
    "decode_ms",
    "filter_ms",
    "encode_ms",
    "stitch_ms",
    "server_total_ms",
    "start_ms",
    "job_id",
];

/// The measurements of one request (upload, wait, download).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Final HTTP status: 200 when the PNG was downloaded; the refusal's status (413, 415,
    /// 422, 429, …) otherwise; 0 when no answer came (connection error, timeout).
    pub status: u16,
    /// Upload sent → result downloaded, in milliseconds.
    pub elapsed_ms: f64,
    /// Upload size in KB (1024 bytes).
    pub image_kb: f64,
    /// Clients running at once.
    pub concurrency: usize,
    /// Time to send the upload and get its `202`, in milliseconds (includes the server's
    /// decode and the queuing of the strips).
    pub upload_ms: Option<f64>,
    /// Longest wait of a strip in the queue, from the job's timings.
    pub queue_wait_ms: Option<f64>,
    /// Filter + encode from the job's timings (CPU time summed over strips).
    pub processing_ms: Option<f64>,
    /// Time to download the PNG, in milliseconds.
    pub download_ms: Option<f64>,
    /// Size of the PNG.
    pub result_bytes: Option<u64>,
    /// Strips the job was cut into.
    pub strips: Option<u32>,
    /// The run's worker label (`embedded`, `4`, …): the generator cannot know it.
    pub workers: String,
    /// Empty on success; else the API's error code (`too-busy`, `unsupported-format`, …) or
    /// `timeout`, `connect`, `http-NNN`.
    pub error: String,
    /// The image's label (`1mb`, `640x480`, a file name).
    pub image: String,
    /// Image width, when known.
    pub width: Option<u32>,
    /// Image height, when known.
    pub height: Option<u32>,
    /// Server's decode time.
    pub decode_ms: Option<f64>,
    /// Filter time summed over strips.
    pub filter_ms: Option<f64>,
    /// Encode time summed over strips.
    pub encode_ms: Option<f64>,
    /// Server's stitch time.
    pub stitch_ms: Option<f64>,
    /// Server's upload received → result ready.
    pub server_total_ms: Option<f64>,
    /// When the request started, in milliseconds since the benchmark started.
    pub start_ms: f64,
    /// The job id, when the upload was accepted.
    pub job_id: String,
}

impl Record {
    /// Whether the request succeeded (the PNG was downloaded).
    pub fn ok(&self) -> bool {
        self.status == 200 && self.error.is_empty()
    }

    /// The row's fields, in [`COLUMNS`] order.
    pub fn fields(&self) -> Vec<String> {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map(T::to_string).unwrap_or_default()
        }
        fn ms(v: &Option<f64>) -> String {
            v.map(|v| format!("{v:.3}")).unwrap_or_default()
        }
        vec![
            self.status.to_string(),
            format!("{:.3}", self.elapsed_ms),
            format!("{:.1}", self.image_kb),
            self.concurrency.to_string(),
            ms(&self.upload_ms),
            ms(&self.queue_wait_ms),
            ms(&self.processing_ms),
            ms(&self.download_ms),
            opt(&self.result_bytes),
            opt(&self.strips),
            self.workers.clone(),
            self.error.clone(),
            self.image.clone(),
            opt(&self.width),
            opt(&self.height),
            ms(&self.decode_ms),
            ms(&self.filter_ms),
            ms(&self.encode_ms),
            ms(&self.stitch_ms),
            ms(&self.server_total_ms),
            format!("{:.3}", self.start_ms),
            self.job_id.clone(),
        ]
    }

    /// Parses a row given the header's column positions.
    fn from_fields(header: &[String], fields: &[String]) -> Result<Record> {
        let get = |name: &str| -> &str {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| fields.get(i))
                .map(String::as_str)
                .unwrap_or("")
        };
        fn num<T: std::str::FromStr>(s: &str, name: &str) -> Result<Option<T>> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            s.trim().parse().map(Some).map_err(|_| anyhow::anyhow!("column {name}: {s:?} is not a number"))
        }
        let required = |name: &str| -> Result<f64> {
            num(get(name), name)?.ok_or_else(|| anyhow::anyhow!("column {name} is empty"))
        };
        Ok(Record {
            status: num(get("status"), "status")?.unwrap_or(0),
            elapsed_ms: required("elapsed_ms")?,
            image_kb: required("image_kb")?,
            concurrency: num(get("concurrency"), "concurrency")?.unwrap_or(1),
            upload_ms: num(get("upload_ms"), "upload_ms")?,
            queue_wait_ms: num(get("queue_wait_ms"), "queue_wait_ms")?,
            processing_ms: num(get("processing_ms"), "processing_ms")?,
            download_ms: num(get("download_ms"), "download_ms")?,
            result_bytes: num(get("result_bytes"), "result_bytes")?,
            strips: num(get("strips"), "strips")?,
            workers: get("workers").to_owned(),
            error: get("error").to_owned(),
            image: get("image").to_owned(),
            width: num(get("width"), "width")?,
            height: num(get("height"), "height")?,
            decode_ms: num(get("decode_ms"), "decode_ms")?,
            filter_ms: num(get("filter_ms"), "filter_ms")?,
            encode_ms: num(get("encode_ms"), "encode_ms")?,
            stitch_ms: num(get("stitch_ms"), "stitch_ms")?,
            server_total_ms: num(get("server_total_ms"), "server_total_ms")?,
            start_ms: num(get("start_ms"), "start_ms")?.unwrap_or(0.0),
            job_id: get("job_id").to_owned(),
        })
    }
}

/// Quotes a field when it holds a comma, a quote or a line break.
fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Writes CSV rows as they come: the header first, then one line per record, flushed each time
/// so an interrupted run keeps what it measured.
pub struct CsvWriter {
    out: std::io::BufWriter<std::fs::File>,
}

impl CsvWriter {
    /// Creates (or truncates) `path`, and its folder when missing, and writes the header.
    pub fn create(path: &Path) -> Result<CsvWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file =
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = CsvWriter { out: std::io::BufWriter::new(file) };
        writer.line(&COLUMNS.map(str::to_owned))?;
        Ok(writer)
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Record) -> Result<()> {
        self.line(&record.fields())
    }

    fn line(&mut self, fields: &[String]) -> Result<()> {
        let line: Vec<String> = fields.iter().map(|f| escape(f)).collect();
        writeln!(self.out, "{}", line.join(","))?;
        self.out.flush()?;
        Ok(())
    }
}

/// Splits one CSV line into fields (quotes as written by [`CsvWriter`]).
fn split_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Reads a CSV written by the benchmark (columns found by name, so files from older versions
/// with fewer columns still read).
pub fn read_csv(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { bail!("{} is empty", path.display()) };
    let header = split_line(header.trim_start_matches('\u{feff}'));
    for needed in ["status", "elapsed_ms", "image_kb", "concurrency"] {
        if !header.iter().any(|h| h == needed) {
            bail!("{}: no {needed:?} column", path.display());
        }
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            Record::from_fields(&header, &split_line(line))
                .with_context(|| format!("{}: line {}", path.display(), i + 2))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/r.csv");
        let a = Record {
            status: 200,
            elapsed_ms: 12.5,
            image_kb: 1024.0,
            concurrency: 4,
            upload_ms: Some(3.0),
            strips: Some(2),
            workers: "embedded".into(),
            image: "odd, \"name\".jpg".into(),
            result_bytes: Some(77),
            ..Record::default()
        };
        let b = Record { status: 429, error: "too-busy".into(), ..a.clone() };
        let mut w = CsvWriter::create(&path).unwrap();
        w.write(&a).unwrap();
        w.write(&b).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("status,elapsed_ms,image_kb,concurrency,"));
        assert_eq!(read_csv(&path).unwrap(), vec![a, b]);
    }
}
