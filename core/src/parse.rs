//! The `text/event-stream` push parser: the WHATWG "interpreting an event stream" algorithm, fed bytes in
//! chunks of any size.
//!
//! Spec: <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>.
//! Each step is quoted beside the code that implements it.
//!
//! How it stays fast: line ends are found with `memchr`; the complete lines of a chunk are validated as
//! UTF-8 in one pass and then only borrowed (an event's type and single data line are slices of the
//! chunk until the event is dispatched or the chunk ends); only a line cut by a chunk boundary is copied,
//! and all buffers are kept and reused, so a warmed-up parser does not allocate.
//!
//! Invariants (checked by the conformance tests and the fuzz target, which compare whole and split input):
//! - `partial_bytes > 0` exactly when a line has started and its line end has not been seen yet.
//! - `skip_lf` is set only when the last byte seen was a CR that ended a line.
//! - `data_span` and `type_span` index the text currently being processed, never an older one: they
//!   are copied into `data` and `event_type` before that text goes away.
//! - When `data_span` is set, `data` is empty; otherwise `data` is the spec's data buffer, which is
//!   empty or ends with LF.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem;

use memchr::{memchr, memchr2, memrchr2};

/// The UTF-8 byte order mark.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event, borrowed from the parser and the chunk being fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message<'a> {
    /// The event type: the last `event:` value of the event, or `message` if there was none or it was
    /// empty.
    pub event_type: &'a str,
    /// The data: the `data:` values joined with LF.
    pub data: &'a str,
    /// The stream's last event id when the event was dispatched (it persists from earlier events).
    pub last_event_id: &'a str,
}

/// Where the parser is in the stream's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// This many bytes of a leading BOM have been seen (0 to 2) and held back.
    Bom(u8),
    /// The BOM question is settled: every byte is line content.
    Lines,
}

/// A push parser for one event stream.
///
/// Feed it the response body in chunks of any size with [`Parser::feed`]; each complete event is
/// passed to the callback. Incomplete input is simply kept for the next chunk. At the end of the body
/// call [`Parser::finish`], which discards the unfinished event as the spec requires; the parser is then
/// ready for the next connection's stream and keeps [`Parser::last_event_id`] and [`Parser::retry_ms`]
/// for the reconnection.
///
/// ```
/// use herald_core::Parser;
///
/// let mut parser = Parser::new();
/// let mut seen = Vec::new();
/// for chunk in [&b"id: 1\nevent: job\nda"[..], b"ta: {\"n\":1}\r", b"\n\r\n"] {
///     parser.feed(chunk, |m| seen.push((m.event_type.to_owned(), m.data.to_owned())));
/// }
/// assert_eq!(seen, [("job".to_owned(), "{\"n\":1}".to_owned())]);
/// assert_eq!(parser.last_event_id(), "1");
/// ```
#[derive(Clone, Debug)]
pub struct Parser {
    start: Start,
    /// The last line ended with a CR at the end of a chunk: an LF starting the next chunk belongs to it.
    skip_lf: bool,
    /// The raw bytes of an unfinished line, at most `line_bytes_max` of them.
    partial: Vec<u8>,
    /// The full length so far of the unfinished line.
    partial_bytes: usize,
    /// The spec's data buffer, when it is not borrowed through `data_span`.
    data: String,
    /// The event's only data line so far, as a range of the current text.
    data_span: Option<(usize, usize)>,
    /// The spec's event type buffer, when it is not borrowed through `type_span`.
    event_type: String,
    /// The event type as a range of the current text.
    type_span: Option<(usize, usize)>,
    /// The spec's last event ID buffer.
    id_buffer: String,
    /// The spec's last event ID string, set from the buffer on dispatch.
    last_event_id: String,
    retry_ms: Option<u64>,
    /// A line or the data of the current event went over `line_bytes_max`.
    oversized: bool,
    oversized_events: u64,
    line_bytes_max: usize,
    /// Reused for lines that need decoding with replacement characters.
    scratch: String,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// The line limit of [`Parser::new`]: 1 MiB.
    pub const LINE_BYTES_MAX_DEFAULT: usize = 1 << 20;

    /// A parser at the start of a stream, with the default line limit.
    pub fn new() -> Parser {
        Parser::with_line_bytes_max(Self::LINE_BYTES_MAX_DEFAULT)
    }

    /// A parser that bounds its memory: any line, and the data of any one event, may hold at most
    /// `line_bytes_max` bytes (after UTF-8 decoding; at least 1).
    ///
    /// An event with a longer line or longer data is not dispatched; it is counted by
    /// [`Parser::oversized_events`]. A longer comment line is ignored like any comment. A long line is
    /// not kept in memory: only its first `line_bytes_max` bytes are.
    pub fn with_line_bytes_max(line_bytes_max: usize) -> Parser {
        Parser {
            start: Start::Bom(0),
            skip_lf: false,
            partial: Vec::new(),
            partial_bytes: 0,
            data: String::new(),
            data_span: None,
            event_type: String::new(),
            type_span: None,
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry_ms: None,
            oversized: false,
            oversized_events: 0,
            line_bytes_max: line_bytes_max.max(1),
            scratch: String::new(),
        }
    }

    /// The last event id: what a reconnecting client sends as `Last-Event-ID` (empty: send none).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time the stream asked for with `retry:`, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// How many events were dropped because a line or their data exceeded the line limit.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// Parses the next bytes of the stream, calling `on_message` for every event they complete.
    pub fn feed(&mut self, chunk: &[u8], mut on_message: impl FnMut(&Message<'_>)) {
        let on_message = &mut on_message;
        let mut rest = self.strip_bom(chunk);
        if rest.is_empty() {
            return;
        }
        // "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair" is one line end even when a
        // chunk boundary falls between the two.
        if mem::take(&mut self.skip_lf) && rest[0] == b'\n' {
            rest = &rest[1..];
        }
        if self.partial_bytes > 0 {
            let Some(end) = memchr2(b'\r', b'\n', rest) else {
                self.extend_partial(rest);
                return;
            };
            self.extend_partial(&rest[..end]);
            self.finish_partial(on_message);
            rest = self.after_line_end(&rest[end..]);
        }
        // The fast path: every complete line left in the chunk, read in place.
        let Some(last_end) = memrchr2(b'\r', b'\n', rest) else {
            self.extend_partial(rest);
            return;
        };
        let (lines, tail) = rest.split_at(last_end + 1);
        match core::str::from_utf8(lines) {
            Ok(text) => self.lines(text, on_message),
            Err(_) => {
                // "The stream must then be decoded using the UTF-8 decode algorithm." Line ends are
                // ASCII, so decoding these whole lines at once equals decoding line by line.
                let mut text = mem::take(&mut self.scratch);
                text.clear();
                decode_lossy(lines, &mut text);
                self.lines(&text, on_message);
                self.scratch = text;
            }
        }
        if !tail.is_empty() {
            // The tail starts after the last CR or LF, so it cannot start with the LF of a CRLF.
            self.skip_lf = false;
            self.extend_partial(tail);
        }
    }

    /// Marks the end of the stream.
    ///
    /// "Once the end of the file is reached, any pending data must be discarded. (If the file ends in
    /// the middle of an event, before the final empty line, the incomplete event is not dispatched.)"
    /// An unfinished line is discarded too, and so is an `id:` of the unfinished event: the last event
    /// id only changes when an event is dispatched. The parser then expects a new stream (which may
    /// start with a BOM) and keeps the last event id and reconnection time.
    pub fn finish(&mut self) {
        self.start = Start::Bom(0);
        self.skip_lf = false;
        self.partial.clear();
        self.partial_bytes = 0;
        self.data.clear();
        self.data_span = None;
        self.event_type.clear();
        self.type_span = None;
        self.oversized = false;
        if self.id_buffer != self.last_event_id {
            self.id_buffer.clone_from(&self.last_event_id);
        }
    }

    /// Consumes a leading BOM, even one split across chunks, and returns the rest of `chunk`.
    ///
    /// The UTF-8 decode algorithm: "If buffer is 0xEF 0xBB 0xBF, then read three bytes from ioQueue.
    /// (Do nothing with those bytes.)" Only at the start of the stream: a second BOM is content.
    fn strip_bom<'c>(&mut self, chunk: &'c [u8]) -> &'c [u8] {
        let Start::Bom(mut matched) = self.start else {
            return chunk;
        };
        let mut at = 0;
        while usize::from(matched) < BOM.len() {
            let Some(&byte) = chunk.get(at) else {
                self.start = Start::Bom(matched);
                return &[];
            };
            if byte != BOM[usize::from(matched)] {
                // Not a BOM after all: the bytes held back begin the first line.
                self.start = Start::Lines;
                self.extend_partial(&BOM[..usize::from(matched)]);
                return &chunk[at..];
            }
            matched += 1;
            at += 1;
        }
        self.start = Start::Lines;
        &chunk[at..]
    }

    /// Skips the line end at the start of `rest` (CR, LF or CRLF) and returns what follows.
    fn after_line_end<'c>(&mut self, rest: &'c [u8]) -> &'c [u8] {
        match rest {
            [b'\r', b'\n', after @ ..] => after,
            [b'\r'] => {
                self.skip_lf = true;
                &[]
            }
            [_, after @ ..] => after,
            [] => rest,
        }
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        self.partial_bytes += bytes.len();
        let room = self.line_bytes_max.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Processes the unfinished line, whose line end has just been found.
    fn finish_partial<F: FnMut(&Message<'_>)>(&mut self, on_message: &mut F) {
        let raw = mem::take(&mut self.partial);
        if self.partial_bytes > self.line_bytes_max {
            // Decoding never shortens text, so the decoded line would be over the limit too.
            if raw.first() != Some(&b':') {
                self.oversized = true;
            }
        } else {
            let mut scratch = mem::take(&mut self.scratch);
            scratch.clear();
            let line = match core::str::from_utf8(&raw) {
                Ok(line) => line,
                Err(_) => {
                    decode_lossy(&raw, &mut scratch);
                    &scratch
                }
            };
            self.line(line, 0, line.len(), on_message);
            self.keep(line);
            self.scratch = scratch;
        }
        self.partial = raw;
        self.partial.clear();
        self.partial_bytes = 0;
    }

    /// Processes `text`, which holds whole lines, each with its line end.
    ///
    /// "The stream must then be parsed by reading everything line by line, with a U+000D CARRIAGE
    /// RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character not
    /// preceded by a U+000D CARRIAGE RETURN (CR) character, and a single U+000D CARRIAGE RETURN (CR)
    /// character not followed by a U+000A LINE FEED (LF) character being the ways in which a line can
    /// end."
    fn lines<F: FnMut(&Message<'_>)>(&mut self, text: &str, on_message: &mut F) {
        let bytes = text.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let end = memchr2(b'\r', b'\n', &bytes[start..]).map_or(bytes.len(), |at| start + at);
            self.line(text, start, end, on_message);
            start = match bytes.get(end..) {
                Some([b'\r', b'\n', ..]) => end + 2,
                Some([b'\r']) => {
                    self.skip_lf = true;
                    end + 1
                }
                _ => end + 1,
            };
        }
        self.keep(text);
    }

    /// Copies what is still borrowed from `text` into the parser's own buffers, before `text` goes away.
    fn keep(&mut self, text: &str) {
        if let Some((start, end)) = self.type_span.take() {
            self.event_type.clear();
            self.event_type.push_str(&text[start..end]);
        }
        if let Some((start, end)) = self.data_span.take() {
            self.data.push_str(&text[start..end]);
            self.data.push('\n');
        }
    }

    /// Processes the line `text[start..end]`.
    ///
    /// "Lines must be processed, in the order they are received, as follows:"
    fn line<F: FnMut(&Message<'_>)>(
        &mut self,
        text: &str,
        start: usize,
        end: usize,
        on_message: &mut F,
    ) {
        let line = &text.as_bytes()[start..end];
        // "If the line is empty (a blank line): Dispatch the event, as defined below."
        if line.is_empty() {
            self.dispatch(text, on_message);
            return;
        }
        // "If the line starts with a U+003A COLON character (:): Ignore the line."
        if line[0] == b':' {
            return;
        }
        if line.len() > self.line_bytes_max {
            self.oversized = true;
            return;
        }
        match memchr(b':', line) {
            // "If the line contains a U+003A COLON character (:): Collect the characters on the line
            // before the first U+003A COLON character (:), and let field be that string. Collect the
            // characters on the line after the first U+003A COLON character (:), and let value be that
            // string. If value starts with a U+0020 SPACE character, remove it from value."
            Some(colon) => {
                let value_start = start + colon + 1;
                let value_start = if line.get(colon + 1) == Some(&b' ') {
                    value_start + 1
                } else {
                    value_start
                };
                self.field(text, &line[..colon], value_start, end);
            }
            // "Otherwise, the string is not empty but does not contain a U+003A COLON character (:):
            // Process the field using the steps described below, using the whole line as the field name,
            // and the empty string as the field value."
            None => self.field(text, line, end, end),
        }
    }

    /// Processes the field `name` with the value `text[start..end]`.
    ///
    /// "Field names must be compared literally, with no case folding performed."
    fn field(&mut self, text: &str, name: &[u8], start: usize, end: usize) {
        match name {
            // "If the field name is "event": Set the event type buffer to field value."
            b"event" => self.type_span = Some((start, end)),
            // "If the field name is "data": Append the field value to the data buffer, then append a
            // single U+000A LINE FEED (LF) character to the data buffer."
            b"data" => {
                if self.oversized {
                    return;
                }
                if self.data_span.is_none() && self.data.is_empty() {
                    self.data_span = Some((start, end));
                } else {
                    if let Some((first_start, first_end)) = self.data_span.take() {
                        self.data.push_str(&text[first_start..first_end]);
                        self.data.push('\n');
                    }
                    self.data.push_str(&text[start..end]);
                    self.data.push('\n');
                }
                let data_bytes = self
                    .data_span
                    .map_or(self.data.len(), |(start, end)| end - start + 1);
                if data_bytes > self.line_bytes_max {
                    self.oversized = true;
                    self.data_span = None;
                    self.data.clear();
                }
            }
            // "If the field name is "id": If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore the field."
            b"id" => {
                let value = &text[start..end];
                if memchr(0, value.as_bytes()).is_none() && self.id_buffer != value {
                    self.id_buffer.clear();
                    self.id_buffer.push_str(value);
                }
            }
            // "If the field name is "retry": If the field value consists of only ASCII digits, then
            // interpret the field value as an integer in base ten, and set the event stream's
            // reconnection time to that integer. Otherwise, ignore the field."
            // An empty value has no integer to interpret; one too large for u64 saturates (it means
            // "a very long time" either way).
            b"retry" => {
                let value = &text.as_bytes()[start..end];
                if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
                    let retry_ms = value.iter().fold(0u64, |acc, digit| {
                        acc.saturating_mul(10)
                            .saturating_add(u64::from(digit - b'0'))
                    });
                    self.retry_ms = Some(retry_ms);
                }
            }
            // "Otherwise: The field is ignored."
            _ => {}
        }
    }

    /// "When the user agent is required to dispatch the event, the user agent must process the data
    /// buffer, the event type buffer, and the last event ID buffer".
    fn dispatch<F: FnMut(&Message<'_>)>(&mut self, text: &str, on_message: &mut F) {
        // "1. Set the last event ID string of the event source to the value of the last event ID buffer.
        // The buffer does not get reset, so the last event ID string of the event source remains set to
        // this value until the next time it is set by the server."
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if mem::take(&mut self.oversized) {
            self.oversized_events += 1;
            self.reset_event();
            return;
        }
        let data = match self.data_span {
            // A borrowed single line: the buffer would be that line plus LF, and step 3 removes the LF.
            Some((start, end)) => &text[start..end],
            // "2. If the data buffer is an empty string, set the data buffer and the event type buffer to
            // the empty string and return."
            None if self.data.is_empty() => {
                self.reset_event();
                return;
            }
            // "3. If the data buffer's last character is a U+000A LINE FEED (LF) character, then remove
            // the last character from the data buffer."
            None => &self.data[..self.data.len() - 1],
        };
        let event_type = match self.type_span {
            Some((start, end)) => &text[start..end],
            None => &self.event_type,
        };
        // "5. Initialize event's type attribute to "message" [...] 6. If the event type buffer has a
        // value other than the empty string, change the type of the newly created event to equal the
        // value of the event type buffer."
        let event_type = if event_type.is_empty() {
            "message"
        } else {
            event_type
        };
        on_message(&Message {
            event_type,
            data,
            last_event_id: &self.last_event_id,
        });
        // "7. Set the data buffer and the event type buffer to the empty string."
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.data_span = None;
        self.event_type.clear();
        self.type_span = None;
    }
}

/// Appends `bytes` to `out` decoded as UTF-8, each maximal invalid subpart replaced by U+FFFD: the
/// WHATWG UTF-8 decoder's output (Rust follows the same "substitution of maximal subparts" practice).
fn decode_lossy(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;
    use alloc::vec;

    fn parse(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<(String, String, String)> {
        let mut seen = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |m| {
                seen.push((
                    m.event_type.to_owned(),
                    m.data.to_owned(),
                    m.last_event_id.to_owned(),
                ));
            });
        }
        seen
    }

    #[test]
    fn oversized_lines_drop_their_event_but_not_the_stream() {
        let mut parser = Parser::with_line_bytes_max(8);
        let long = b"data: 0123456789\n\ndata: ok\n\n";
        assert_eq!(
            parse(&mut parser, &[long]),
            vec![("message".to_owned(), "ok".to_owned(), String::new())]
        );
        assert_eq!(parser.oversized_events(), 1);
        // The same cut by a chunk boundary: the long line is not kept whole.
        let mut parser = Parser::with_line_bytes_max(8);
        let seen = parse(
            &mut parser,
            &[b"data: 0123", b"456789\n\nda", b"ta: ok\n\n"],
        );
        assert_eq!(
            seen,
            vec![("message".to_owned(), "ok".to_owned(), String::new())]
        );
        assert_eq!(parser.oversized_events(), 1);
        assert!(parser.partial.capacity() <= 64);
    }

    #[test]
    fn data_over_the_limit_drops_the_event_and_long_comments_are_harmless() {
        let mut parser = Parser::with_line_bytes_max(8);
        let seen = parse(
            &mut parser,
            &[b"data: 1234\ndata: 5678\n\n: a very long comment\ndata: 1\n\n"],
        );
        assert_eq!(
            seen,
            vec![("message".to_owned(), "1".to_owned(), String::new())]
        );
        assert_eq!(parser.oversized_events(), 1);
    }

    #[test]
    fn the_limit_counts_decoded_bytes_however_the_line_arrives() {
        // Four invalid bytes decode to 12 bytes of U+FFFD: over a limit of 10 whole or split.
        let input = b"data:\xFF\xFF\xFF\xFF\n\n";
        for split in 0..=input.len() {
            let mut parser = Parser::with_line_bytes_max(10);
            let (a, b) = input.split_at(split);
            assert_eq!(parse(&mut parser, &[a, b]), vec![], "split at {split}");
            assert_eq!(parser.oversized_events(), 1, "split at {split}");
        }
    }

    #[test]
    fn a_warm_parser_reuses_its_buffers() {
        let mut parser = Parser::new();
        let stream = b"id: 1\nevent: a\ndata: x\ndata: y\n\nid: 2\nevent: b\ndata: z\n\n";
        parse(&mut parser, &[&stream[..7], &stream[7..]]);
        let capacities = (
            parser.data.capacity(),
            parser.event_type.capacity(),
            parser.id_buffer.capacity(),
        );
        for _ in 0..100 {
            parse(&mut parser, &[&stream[..7], &stream[7..]]);
        }
        let after = (
            parser.data.capacity(),
            parser.event_type.capacity(),
            parser.id_buffer.capacity(),
        );
        assert_eq!(capacities, after);
    }
}
