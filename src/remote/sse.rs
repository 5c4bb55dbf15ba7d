//! An incremental Server-Sent Events parser (WHATWG "event stream interpretation").
//!
//! It is fed chunks as they arrive and touches each byte a bounded number of times, so a
//! 16 MiB event costs linear time (the quadratic rescans of some parsers are the known
//! failure here). Every event is bounded by `max_event`; a larger one is an error rather
//! than unbounded memory.

use std::fmt;

/// One dispatched event. `data` is the joined `data:` lines, as bytes: whoever reads
/// them validates UTF-8 once (the JSON-RPC check does), not twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: Vec<u8>,
    /// The id this event set itself (`id:` in its own block), if any.
    pub id: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SseError {
    TooLarge { limit: usize },
    InvalidUtf8,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::TooLarge { limit } => {
                f.write_str(&crate::error::over_limit("an SSE event", *limit))
            }
            SseError::InvalidUtf8 => f.write_str("an SSE event was not valid UTF-8"),
        }
    }
}

impl std::error::Error for SseError {}

pub struct Parser {
    /// The current, incomplete line.
    line: Vec<u8>,
    /// The data buffer of the event being built.
    data: Vec<u8>,
    has_data: bool,
    /// The current, incomplete line is a `data:` field whose value goes straight into
    /// `data`: a 16 MiB event is then copied once, not held twice (line, then data).
    in_data: bool,
    event: Option<String>,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    skip_lf: bool,
    last_event_id: Option<String>,
    /// The event being built set an id.
    own_id: bool,
    retry_ms: Option<u64>,
    max_event: usize,
}

impl Parser {
    pub fn new(max_event: usize) -> Self {
        Parser {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            in_data: false,
            event: None,
            skip_lf: false,
            last_event_id: None,
            own_id: false,
            retry_ms: None,
            max_event,
        }
    }

    /// The id of the last event seen, including priming events with empty data (H-PRIME).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref().filter(|id| !id.is_empty())
    }

    /// The reconnection delay the server asked for (H-RETRY).
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feed a chunk; complete events are pushed to `out` in order.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        // An empty chunk settles nothing: the `\n` may still come.
        if self.skip_lf && !chunk.is_empty() {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.skip_lf = false;
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.check_size(chunk.len())?;
                    if self.in_data {
                        self.data.extend_from_slice(chunk);
                    } else {
                        self.line.extend_from_slice(chunk);
                        self.start_data_line();
                    }
                    return Ok(());
                }
                Some(end) => {
                    let (segment, rest) = chunk.split_at(end);
                    let cr = rest[0] == b'\r';
                    chunk = &rest[1..];
                    if cr {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            None => self.skip_lf = true,
                            _ => {}
                        }
                    }
                    self.check_size(segment.len())?;
                    if self.in_data {
                        self.data.extend_from_slice(segment);
                        self.in_data = false;
                    } else if self.line.is_empty() {
                        self.process_line(segment, out)?;
                    } else {
                        let mut line = std::mem::take(&mut self.line);
                        line.extend_from_slice(segment);
                        self.process_line(&line, out)?;
                        // Keep a small buffer for the next line, not a huge one.
                        if line.capacity() <= 64 * 1024 {
                            line.clear();
                            self.line = line;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Once a partial line is known to be `data:` plus at least one byte of its value (so
    /// the optional leading space is settled), move it into `data` and append the rest of
    /// the line there as it arrives.
    fn start_data_line(&mut self) {
        if self.line.len() > 5 && self.line.starts_with(b"data:") {
            let value = &self.line[5..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
            self.in_data = true;
            self.line.clear();
        }
    }

    fn check_size(&self, incoming: usize) -> Result<(), SseError> {
        if self.line.len() + self.data.len() + incoming > self.max_event {
            return Err(SseError::TooLarge {
                limit: self.max_event,
            });
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out)?;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment, e.g. a keep-alive (M-LISTEN)
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event = Some(utf8(value)?.to_owned());
            }
            // An id with NUL is ignored, as the SSE specification says.
            b"id" if !value.contains(&0) => {
                self.last_event_id = Some(utf8(value)?.to_owned());
                self.own_id = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = utf8(value)?.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) -> Result<(), SseError> {
        let event = self.event.take();
        let own_id = std::mem::take(&mut self.own_id);
        if !self.has_data {
            return Ok(());
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            // A priming event (H-PRIME): only its id matters, already recorded.
            return Ok(());
        }
        let id = own_id.then(|| self.last_event_id.clone()).flatten();
        out.push(Event { event, data, id });
        Ok(())
    }
}

/// The event ids already delivered from one stream, so that what a server replays after
/// a resume (everything up to and including the `Last-Event-ID` it was sent) is dropped
/// instead of reaching the client twice. Bounded: the latest [`Replays::KEEP`] ids.
#[derive(Default)]
pub(crate) struct Replays {
    recent: std::collections::VecDeque<String>,
    /// A resume happened and no new event has arrived since.
    resumed: bool,
}

impl Replays {
    const KEEP: usize = 256;

    /// The stream is being resumed with `Last-Event-ID`.
    pub(crate) fn resume(&mut self) {
        self.resumed = true;
    }

    /// Whether the event with `id` is new (to deliver), or a replay (to drop).
    pub(crate) fn fresh(&mut self, id: Option<&str>) -> bool {
        if self.resumed {
            if id.is_some_and(|id| self.recent.iter().any(|r| r == id)) {
                return false;
            }
            self.resumed = false;
        }
        if let Some(id) = id {
            if self.recent.len() == Self::KEEP {
                self.recent.pop_front();
            }
            self.recent.push_back(id.to_owned());
        }
        true
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, SseError> {
    std::str::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_after_a_resume_are_dropped() {
        let mut r = Replays::default();
        assert!(r.fresh(Some("1")) && r.fresh(None) && r.fresh(Some("2")));
        r.resume();
        // The server replays from an older event through Last-Event-ID "2".
        assert!(!r.fresh(Some("1")));
        assert!(!r.fresh(Some("2")));
        assert!(r.fresh(Some("3")));
        // Once a new event came, an id seen before is delivered (no longer a replay).
        assert!(r.fresh(Some("1")));
        // A server that replays nothing loses nothing.
        r.resume();
        assert!(r.fresh(Some("4")));
        // Bounded.
        for i in 0..10_000 {
            r.fresh(Some(&i.to_string()));
        }
        assert_eq!(r.recent.len(), Replays::KEEP);
    }

    #[test]
    fn events_carry_their_own_id() {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        p.feed(b"id: a\ndata: 1\n\ndata: 2\n\n", &mut out).unwrap();
        assert_eq!(out[0].id.as_deref(), Some("a"));
        assert_eq!(
            out[1].id, None,
            "the stream's last id is not the event's own"
        );
    }

    fn parse_chunks(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        (out, p)
    }

    #[test]
    fn basic_and_multiline() {
        let (ev, p) = parse_chunks(&[b"id: 1\nevent: message\ndata: a\ndata: b\n\n"]);
        assert_eq!(
            ev,
            vec![Event {
                event: Some("message".into()),
                data: "a\nb".into(),
                id: Some("1".into()),
            }]
        );
        assert_eq!(p.last_event_id(), Some("1"));
    }

    #[test]
    fn split_anywhere_and_crlf() {
        let text = b"retry: 250\r\nid: x\r\ndata: {\"a\":1}\r\n\r\n: keepalive\r\ndata:2\r\r";
        for split in 0..text.len() {
            let (ev, p) = parse_chunks(&[&text[..split], &text[split..]]);
            assert_eq!(ev.len(), 2, "split at {split}");
            assert_eq!(ev[0].data, b"{\"a\":1}");
            assert_eq!(ev[1].data, b"2");
            assert_eq!(p.retry_ms(), Some(250));
            assert_eq!(p.last_event_id(), Some("x"));
        }
    }

    /// Lines that span chunks take the direct-to-data path; every way of cutting the
    /// stream in three must give the same events.
    #[test]
    fn multi_line_data_cut_anywhere() {
        let text = b"data: first\r\ndata:  two spaces\ndata\ndata:x\n\nevent: e\ndata:last\n\n";
        let whole = parse_chunks(&[text]).0;
        assert_eq!(whole[0].data, b"first\n two spaces\n\nx");
        assert_eq!(whole[1].data, b"last");
        for a in 0..text.len() {
            for b in a..text.len() {
                let (ev, _) = parse_chunks(&[&text[..a], &text[a..b], &text[b..]]);
                assert_eq!(ev, whole, "cut at {a} and {b}");
            }
        }
    }

    #[test]
    fn priming_event_sets_id_only() {
        let (ev, p) = parse_chunks(&[b"id: prime-1\ndata:\n\n"]);
        assert!(ev.is_empty());
        assert_eq!(p.last_event_id(), Some("prime-1"));
    }

    #[test]
    fn bounded() {
        let mut p = Parser::new(15);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789abc", &mut out).is_err());
        let mut p = Parser::new(15);
        p.feed(b"data: 01234\n", &mut out).unwrap();
        assert!(p.feed(b"data: 56789\n\n", &mut out).is_err());
    }

    #[test]
    fn large_event_in_small_chunks_is_linear() {
        let payload = vec![b'x'; 4 << 20];
        let mut p = Parser::new(8 << 20);
        let mut out = Vec::new();
        p.feed(b"data: ", &mut out).unwrap();
        for c in payload.chunks(1024) {
            p.feed(c, &mut out).unwrap();
        }
        p.feed(b"\n\n", &mut out).unwrap();
        assert_eq!(out[0].data.len(), 4 << 20);
    }
}
