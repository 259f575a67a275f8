//! A reader of Server-Sent Events as the HTML standard defines the stream: lines end in LF,
//! CRLF or CR (a CRLF split across two chunks counts once); a blank line dispatches the event;
//! `data` lines accumulate, joined by LF; lines starting with `:` are comments; `event`, `id`
//! and `retry` set the type, the last event id and the reconnection delay; a leading BOM is
//! skipped; a field without a colon has an empty value; one space after the colon is dropped.
//! An event with no data is not dispatched, and neither is an unfinished one at the end.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, or `message` when none was given.
    pub event: String,
    /// The `data` lines, joined by LF.
    pub data: String,
    /// The last event id seen on the stream (ids persist across events).
    pub id: Option<String>,
}

/// Turns chunks of a stream into events; feed it every chunk in order.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The reconnection delay the server last asked for (`retry:`), in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds the next bytes of the stream; returns the events they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut bytes = chunk;
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse::<u64>()
                    && value.bytes().all(|b| b.is_ascii_digit())
                {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let event = if event.is_empty() { "message".to_owned() } else { event };
        Some(SseEvent { event, data, id: self.last_id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut parser = SseParser::new();
        let events = chunks.iter().flat_map(|c| parser.feed(c)).collect();
        (events, parser)
    }

    fn event(name: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent { event: name.into(), data: data.into(), id: id.map(Into::into) }
    }

    #[test]
    fn every_line_ending_dispatches_the_same_events() {
        for stream in [
            &b"event: progress\ndata: {\"a\":1}\n\ndata: x\n\n"[..],
            b"event: progress\r\ndata: {\"a\":1}\r\n\r\ndata: x\r\n\r\n",
            b"event: progress\rdata: {\"a\":1}\r\rdata: x\r\r",
        ] {
            let (events, _) = parse(&[stream]);
            assert_eq!(
                events,
                [event("progress", "{\"a\":1}", None), event("message", "x", None)],
                "{stream:?}"
            );
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_ends_one_line() {
        let (events, _) = parse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [event("message", "a\nb", None)]);
    }

    #[test]
    fn data_lines_join_with_lf_and_fields_split_anywhere() {
        let (events, _) = parse(&[b"da", b"ta: first\ndata:second\nda", b"ta\n\n"]);
        assert_eq!(events, [event("message", "first\nsecond\n", None)]);
    }

    #[test]
    fn comments_retry_and_ids() {
        let (events, parser) = parse(&[
            b": keep-alive\nretry: 2500\nid: 7\nevent: done\ndata: {}\n\nretry: soon\ndata: again\n\n",
        ]);
        assert_eq!(events, [event("done", "{}", Some("7")), event("message", "again", Some("7"))]);
        assert_eq!(parser.retry_ms(), Some(2500));
    }

    #[test]
    fn events_without_data_and_unfinished_ones_are_not_dispatched() {
        let (events, _) = parse(&[b"event: ping\n\n\ndata: never finished\n"]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_leading_bom_is_skipped_and_one_space_only_is_dropped() {
        let (events, _) = parse(&["\u{feff}data:  two spaces\n\n".as_bytes()]);
        assert_eq!(events, [event("message", " two spaces", None)]);
    }
}
