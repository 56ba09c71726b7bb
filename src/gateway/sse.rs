//! Server-sent events: an incremental parser and an encoder.
//!
//! [`SseParser`] takes the bytes of a `text/event-stream` body in whatever pieces the network
//! delivers them (an event may be split anywhere, even inside a `\r\n`) and yields complete
//! [`SseEvent`]s as soon as their terminating blank line arrives, so a proxy can forward a stream
//! event by event without buffering it whole. It follows the WHATWG "event stream interpretation":
//! lines end in `\n`, `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a single
//! space after the colon is removed; lines starting with `:` are comments; an event with no `data`
//! line is not dispatched; unknown fields are ignored. Each event is bounded: when its data (plus
//! the line being read) exceeds `max_event_bytes` the parser fails with
//! [`SseError::EventTooLarge`] and the stream must be abandoned.
//!
//! [`sse_events`] adapts a byte stream (a response body) into a stream of events. [`SseEvent::encode`]
//! and the `encode_*` helpers produce the wire form.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;

/// Default bound on one event: 4 MiB (a single streamed chunk is normally well under 64 KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type (`message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `retry:` field (milliseconds), if it had a valid one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event with only data (OpenAI chunks).
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent { data: data.into(), ..Default::default() }
    }

    /// An event with a type and data (Anthropic events, Responses API events).
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        SseEvent { event: Some(event.into()), data: data.into(), ..Default::default() }
    }

    /// Whether this is OpenAI's end-of-stream marker `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }

    /// The wire form, ending with the blank line. Multi-line data becomes several `data:` lines;
    /// `\r\n` and `\r` inside data are normalised to line breaks (they could not survive the
    /// round trip otherwise).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.data.len() + 32);
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Appends the wire form to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        if let Some(id) = &self.id {
            put_field(out, "id", id);
        }
        if let Some(ev) = &self.event {
            put_field(out, "event", ev);
        }
        if let Some(r) = self.retry {
            out.put_slice(b"retry: ");
            out.put_slice(r.to_string().as_bytes());
            out.put_u8(b'\n');
        }
        for line in split_lines(&self.data) {
            out.put_slice(b"data: ");
            out.put_slice(line.as_bytes());
            out.put_u8(b'\n');
        }
        out.put_u8(b'\n');
    }
}

fn put_field(out: &mut BytesMut, name: &str, value: &str) {
    // A field value cannot hold a line break; keep only its first line.
    let v = split_lines(value).next().unwrap_or("");
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(v.as_bytes());
    out.put_u8(b'\n');
}

/// Splits on `\r\n`, `\n` or `\r`; an empty string is one empty line.
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(r)
            }
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some(&r[..i])
            }
        }
    })
}

/// `data: <json>\n\n`, the form of every OpenAI chunk.
pub fn encode_data(data: &str) -> Bytes {
    SseEvent::data(data).encode()
}

/// `event: <name>\ndata: <json>\n\n`, the form of every Anthropic event.
pub fn encode_named(event: &str, data: &str) -> Bytes {
    SseEvent::named(event, data).encode()
}

/// `data: [DONE]\n\n`.
pub fn encode_done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// A comment line (keep-alive): `: <text>\n\n`.
pub fn encode_comment(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 4);
    for line in split_lines(text) {
        out.put_slice(b": ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// Why a stream cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew beyond the bound.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The bound in bytes.
        limit: usize,
    },
    /// A line is not UTF-8.
    #[error("server-sent event stream is not valid UTF-8")]
    InvalidUtf8,
}

/// Incremental event-stream parser. Feed it with [`SseParser::push`]; call [`SseParser::finish`]
/// at the end of the body.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of the line being read (no terminator yet).
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` of the next chunk belongs to it.
    after_cr: bool,
    /// A UTF-8 byte-order mark may start the stream; stripped once.
    at_start: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    failed: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser refusing events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
            failed: None,
        }
    }

    /// Parses `chunk` and appends every event it completes to `out`. After an error every later
    /// call returns the same error.
    pub fn push_into(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        if self.at_start {
            // Strip a BOM; it may itself be split, so only decide once 3 bytes (or a mismatch) are seen.
            let mut probe = self.line.clone();
            probe.extend_from_slice(&chunk[..chunk.len().min(3)]);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if probe.len() < 3 && BOM.starts_with(&probe) {
                self.line.extend_from_slice(chunk);
                return Ok(());
            }
            self.at_start = false;
            if probe.starts_with(BOM) {
                let from_chunk = 3 - self.line.len();
                self.line.clear();
                chunk = &chunk[from_chunk..];
            }
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(b'\n') = chunk.first() {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.line.extend_from_slice(chunk);
                    self.check_size()?;
                    return Ok(());
                }
                Some(i) => {
                    let line_end = i;
                    let mut next = i + 1;
                    if chunk[i] == b'\r' {
                        if next < chunk.len() {
                            if chunk[next] == b'\n' {
                                next += 1;
                            }
                        } else {
                            self.after_cr = true;
                        }
                    }
                    if self.line.is_empty() {
                        self.line_done(&chunk[..line_end], out)?;
                    } else {
                        self.line.extend_from_slice(&chunk[..line_end]);
                        let line = std::mem::take(&mut self.line);
                        let r = self.line_done(&line, out);
                        self.line = line;
                        self.line.clear();
                        r?;
                    }
                    chunk = &chunk[next..];
                }
            }
        }
        Ok(())
    }

    /// Parses `chunk` and returns the events it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        self.push_into(chunk, &mut out)?;
        Ok(out)
    }

    /// End of the body. A final event whose blank line never came is returned (servers often omit
    /// it after the last event); a dangling partial line is treated as complete.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            if !(self.at_start && b"\xEF\xBB\xBF".starts_with(&line)) {
                self.line_done(&line, &mut out)?;
            }
        }
        self.line_done(b"", &mut out)?;
        Ok(out.pop())
    }

    /// Whether the parser holds nothing of an unfinished event: the bytes pushed so far end
    /// exactly after whole events (a relay may then forward them as they came).
    pub fn at_event_boundary(&self) -> bool {
        self.line.is_empty()
            && !self.has_data
            && self.event.is_none()
            && self.id.is_none()
            && self.retry.is_none()
            && self.failed.is_none()
    }

    /// Bytes held for the event being read (for tests and metrics).
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len()
    }

    fn check_size(&mut self) -> Result<(), SseError> {
        if self.line.len() + self.data.len() > self.max_event_bytes {
            return Err(self.fail(SseError::EventTooLarge { limit: self.max_event_bytes }));
        }
        Ok(())
    }

    fn fail(&mut self, e: SseError) -> SseError {
        self.failed = Some(e.clone());
        self.line.clear();
        self.data.clear();
        e
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.len() + self.data.len() > self.max_event_bytes {
            return Err(self.fail(SseError::EventTooLarge { limit: self.max_event_bytes }));
        }
        if line.is_empty() {
            // Dispatch.
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                    id: self.id.take(),
                    retry: self.retry.take(),
                });
            } else {
                self.event = None;
                self.id = None;
                self.retry = None;
            }
            self.has_data = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(self.fail(SseError::InvalidUtf8));
        };
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }
}

/// Error of [`sse_events`]: the body failed, or its content is not a valid event stream.
#[derive(Debug, thiserror::Error)]
pub enum SseStreamError<E> {
    /// Reading the body failed.
    #[error("reading the event stream: {0}")]
    Body(E),
    /// The content is not a valid event stream.
    #[error(transparent)]
    Parse(#[from] SseError),
}

/// Turns a stream of body chunks into a stream of events. Events are yielded as soon as they are
/// complete; at the end of the body a last unterminated event is yielded too. After an error the
/// stream ends.
pub fn sse_events<S, B, E>(
    body: S,
    max_event_bytes: usize,
) -> impl Stream<Item = Result<SseEvent, SseStreamError<E>>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    struct St<S> {
        body: S,
        parser: SseParser,
        ready: VecDeque<SseEvent>,
        scratch: Vec<SseEvent>,
        done: bool,
    }
    let st = St {
        body,
        parser: SseParser::new(max_event_bytes),
        ready: VecDeque::new(),
        scratch: Vec::new(),
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.ready.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = st.parser.push_into(chunk.as_ref(), &mut st.scratch) {
                        st.done = true;
                        st.ready.clear();
                        return Some((Err(SseStreamError::Parse(e)), st));
                    }
                    st.ready.extend(st.scratch.drain(..));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(SseStreamError::Body(e)), st));
                }
                None => {
                    st.done = true;
                    match st.parser.finish() {
                        Ok(Some(ev)) => return Some((Ok(ev), st)),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(SseStreamError::Parse(e)), st)),
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c).unwrap());
        }
        out.extend(p.finish().unwrap());
        out
    }

    const ANTHROPIC: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n: keep-alive\n\nevent: content_block_delta\ndata: {\"a\":1}\n\n";

    #[test]
    fn parses_named_events_and_skips_comments() {
        let evs = parse_all(&[ANTHROPIC.as_bytes()]);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0], SseEvent::named("message_start", "{\"type\":\"message_start\"}"));
        assert_eq!(evs[1].event.as_deref(), Some("ping"));
        assert_eq!(evs[2].data, "{\"a\":1}");
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let text = ANTHROPIC.replace('\n', "\r\n");
        let whole = parse_all(&[text.as_bytes()]);
        assert_eq!(whole.len(), 3);
        let b = text.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let got = parse_all(&[&b[..i], &b[i..j], &b[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_with_bare_cr() {
        let text = "data: a\rdata: b\r\rdata: c\r\n\r\n";
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        let evs = parse_all(&chunks);
        assert_eq!(evs, vec![SseEvent::data("a\nb"), SseEvent::data("c")]);
    }

    #[test]
    fn multi_line_data_id_retry_and_field_without_space() {
        let evs = parse_all(&[b"id: 7\nretry: 1500\nevent:x\ndata:one\ndata:  two\ndata\n\n"]);
        assert_eq!(
            evs,
            vec![SseEvent {
                event: Some("x".into()),
                data: "one\n two\n".into(),
                id: Some("7".into()),
                retry: Some(1500)
            }]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_resets_fields() {
        let evs = parse_all(&[b"event: ping\n\ndata: x\n\n"]);
        assert_eq!(evs, vec![SseEvent::data("x")]);
    }

    #[test]
    fn bad_retry_is_ignored_and_unknown_fields_too() {
        let evs = parse_all(&[b"retry: 1s\nfoo: bar\ndata: x\n\n"]);
        assert_eq!(evs, vec![SseEvent::data("x")]);
    }

    #[test]
    fn unterminated_last_event_is_returned_at_finish() {
        let evs = parse_all(&[b"data: [DONE]"]);
        assert_eq!(evs.len(), 1);
        assert!(evs[0].is_done());
        let evs = parse_all(&[b"data: x\n"]);
        assert_eq!(evs, vec![SseEvent::data("x")]);
    }

    #[test]
    fn bom_is_stripped_even_when_split() {
        let evs = parse_all(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(evs, vec![SseEvent::data("x")]);
        let evs = parse_all(&[b"\xEF\xBB\xBFdata: y\n\n"]);
        assert_eq!(evs, vec![SseEvent::data("y")]);
    }

    #[test]
    fn oversized_event_fails_clearly_and_stays_failed() {
        let mut p = SseParser::new(16);
        let err = p.push(b"data: 0123456789").map(|_| ()).and_then(|_| p.push(b"0123456789\n").map(|_| ()));
        assert_eq!(err, Err(SseError::EventTooLarge { limit: 16 }));
        assert_eq!(err.unwrap_err().to_string(), "server-sent event larger than 16 bytes");
        assert!(p.push(b"\n").is_err());
        assert!(p.finish().is_err());
        // Many small lines add up too.
        let mut p = SseParser::new(24);
        assert!(p.push(b"data: 012345\ndata: 012345\n").is_ok());
        assert!(p.push(b"data: 012345\n").is_err());
    }

    #[test]
    fn bounded_memory_across_many_events() {
        let mut p = SseParser::new(64);
        for _ in 0..10_000 {
            let evs = p.push(b"data: {\"x\":1}\n\n").unwrap();
            assert_eq!(evs.len(), 1);
        }
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::new(64);
        assert_eq!(p.push(b"data: \xff\n\n"), Err(SseError::InvalidUtf8));
    }

    #[test]
    fn encoder_round_trips() {
        let evs = vec![
            SseEvent::named("message_delta", "{\"x\":1}"),
            SseEvent::data("line1\nline2"),
            SseEvent { event: None, data: String::new(), id: Some("9".into()), retry: Some(10) },
        ];
        let mut wire = Vec::new();
        for e in &evs {
            wire.extend_from_slice(&e.encode());
        }
        assert_eq!(parse_all(&[&wire]), evs);
        assert_eq!(&encode_named("ping", "{}")[..], b"event: ping\ndata: {}\n\n");
        assert_eq!(&encode_data("{}")[..], b"data: {}\n\n");
        assert_eq!(&encode_done()[..], b"data: [DONE]\n\n");
        assert_eq!(&encode_comment("hi")[..], b": hi\n\n");
        assert_eq!(&SseEvent::data("a\r\nb").encode()[..], b"data: a\ndata: b\n\n");
    }

    #[tokio::test]
    async fn stream_adapter_yields_events_then_errors() {
        let chunks: Vec<Result<&[u8], std::io::Error>> =
            vec![Ok(b"data: a\n\nda"), Ok(b"ta: b\n"), Ok(b"\ndata: c"), Err(std::io::Error::other("reset"))];
        let evs: Vec<_> = sse_events(futures_util::stream::iter(chunks), 1024).collect().await;
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].as_ref().unwrap(), &SseEvent::data("a"));
        assert_eq!(evs[1].as_ref().unwrap(), &SseEvent::data("b"));
        assert!(matches!(evs[2], Err(SseStreamError::Body(_))));

        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"data: a\n\ndata: b".to_vec())];
        let evs: Vec<_> = sse_events(futures_util::stream::iter(chunks), 1024).collect().await;
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].as_ref().unwrap(), &SseEvent::data("b"));

        let chunks: Vec<Result<&[u8], std::io::Error>> = vec![Ok(b"data: 0123456789abcdef\n\n")];
        let evs: Vec<_> = sse_events(futures_util::stream::iter(chunks), 8).collect().await;
        assert!(matches!(evs.as_slice(), [Err(SseStreamError::Parse(SseError::EventTooLarge { limit: 8 }))]));
    }
}
