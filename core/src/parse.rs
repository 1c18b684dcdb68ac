//! The `text/event-stream` push parser: the WHATWG "interpreting an event stream" algorithm, fed
//! bytes in chunks of any size.
//!
//! Spec: <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>.
//! Each step is quoted beside the code that implements it.
//!
//! How it stays fast: the complete lines of a chunk are validated as UTF-8 in one pass and then
//! only borrowed. While a chunk is read, the event's type, single data line, id and the last event
//! id are slices of it, held in `Borrowed` (a local of `Parser::lines`, so nothing is copied or
//! compared per event); they are copied into the parser's own buffers once, when the chunk ends.
//! Line ends are found by one scan of the text in 64-byte windows (`parse/scan.rs`: on x86_64
//! SSE2 compares give a bit per byte that may be a CR or LF); `Parser::lines` reads each window's
//! mask bit by bit (`tzcnt`, clear the lowest bit), so a line costs no call to a search function.
//! A line is sliced as text once (its value), and a field is recognised by its first bytes rather
//! than by searching for its colon. Only a line cut by a chunk boundary is copied, and all buffers
//! are kept and reused, so a warmed-up parser does not allocate.
//!
//! Measured, not kept: validating and reading a chunk a piece at a time, so that each piece is
//! read while in the cache, was slower at every piece size tried (a piece's unfinished event is
//! copied, and each short validation has a fixed cost), and so was listing a segment's line-end
//! positions before reading its lines. So were pieces that carry what is borrowed from one to the
//! next (nothing copied; 35 ms at 4 KiB against 31 ms), software prefetches of the next piece or
//! of each page of the chunk (slower at every distance tried), and the `simdutf8` validator (no
//! faster: the validation is the pass that reads the chunk from memory, so it waits on memory).
//! Nor is validating cheaper after the lines have been read: in an experiment that read them first
//! (unsafely) and validated the chunk afterwards, validation still cost 8.5–10 ms of the run.
//! Only a scan that also validated could save that pass, and turning the bytes it checked into
//! `&str` needs `unsafe`.
//!
//! Invariants (checked by the conformance tests, the model test in `parse/tests.rs` and the fuzz
//! targets, which compare whole and split input):
//! - `partial_bytes > 0` exactly when a line has started and its line end has not been seen yet.
//! - `skip_lf` is set only when the last byte seen was a CR that ended a line.
//! - A `Borrowed` never outlives the text it borrows from: `Parser::keep` consumes it.
//! - When `Borrowed::data` is set, `Parser::data` is empty; otherwise `Parser::data` is the spec's
//!   data buffer, which is empty or ends with LF.
//! - Each other `Borrowed` field, when set, is the spec's buffer and the parser's own copy is
//!   stale.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem;

use memchr::{memchr, memchr2, memrchr2};

/// The UTF-8 byte order mark.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event, borrowed from the parser and the chunk being fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message<'a> {
    /// The event type: the last `event:` value of the event, or `message` if there was none or it
    /// was empty.
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

/// The fields the spec gives a meaning to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Event,
    Data,
    Id,
    Retry,
    /// Any other name: "The field is ignored."
    Other,
}

impl Field {
    /// "Field names must be compared literally, with no case folding performed."
    fn named(name: &[u8]) -> Field {
        match name {
            b"event" => Field::Event,
            b"data" => Field::Data,
            b"id" => Field::Id,
            b"retry" => Field::Retry,
            _ => Field::Other,
        }
    }
}

/// The spec's buffers while they are slices of the text being read, rather than copies in the
/// [`Parser`]: each field, when set, takes the place of the parser's own buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Borrowed<'t> {
    /// The event's only data line so far, without its LF (`Parser::data` is then empty).
    data: Option<&'t str>,
    /// The event type buffer.
    event_type: Option<&'t str>,
    /// The last event ID buffer.
    id_buffer: Option<&'t str>,
    /// The last event ID string.
    last_event_id: Option<&'t str>,
}

/// A push parser for one event stream.
///
/// Feed it the response body in chunks of any size with [`Parser::feed`]; each complete event is
/// passed to the callback. Incomplete input is simply kept for the next chunk. At the end of the
/// body call [`Parser::finish`], which discards the unfinished event as the spec requires; the
/// parser is then ready for the next connection's stream and keeps [`Parser::last_event_id`] and
/// [`Parser::retry_ms`] for the reconnection.
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
    /// The last line ended with a CR at the end of a chunk: an LF starting the next chunk belongs
    /// to it.
    skip_lf: bool,
    /// The raw bytes of an unfinished line, at most `line_bytes_max` of them.
    partial: Vec<u8>,
    /// The full length so far of the unfinished line.
    partial_bytes: usize,
    /// The spec's data buffer, unless its only line is borrowed (`Borrowed::data`).
    data: String,
    /// The spec's event type buffer, unless it is borrowed.
    event_type: String,
    /// The spec's last event ID buffer, unless it is borrowed.
    id_buffer: String,
    /// The spec's last event ID string, set from the buffer on dispatch, unless it is borrowed.
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
    /// [`Parser::oversized_events`]. A longer comment line is ignored like any comment. A long line
    /// is not kept in memory: only its first `line_bytes_max` bytes are.
    pub fn with_line_bytes_max(line_bytes_max: usize) -> Parser {
        Parser {
            start: Start::Bom(0),
            skip_lf: false,
            partial: Vec::new(),
            partial_bytes: 0,
            data: String::new(),
            event_type: String::new(),
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
        // "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair" is one line end even
        // when a chunk boundary falls between the two.
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
        // The fast path: the chunk is valid UTF-8 (its unfinished last line too), and every
        // complete line is read in place. Validating from the start, rather than first
        // looking for the last line end, reads the chunk in the order it arrives.
        if let Ok(text) = core::str::from_utf8(rest) {
            let tail = self.lines(text, on_message);
            // The tail starts after the last CR or LF, so it cannot start with the LF of a CRLF.
            self.extend_partial(&rest[tail..]);
            return;
        }
        // The unfinished last line may end inside a character, or hold invalid bytes: only the
        // complete lines are decoded now. (A chunk cut inside a character is so validated
        // twice, the second time from the cache; checking its last byte first would cost
        // every chunk a read far ahead.)
        let Some(last_end) = memrchr2(b'\r', b'\n', rest) else {
            self.extend_partial(rest);
            return;
        };
        let (lines, tail) = rest.split_at(last_end + 1);
        match core::str::from_utf8(lines) {
            Ok(text) => {
                self.lines(text, on_message);
            }
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
            // A CR that ended `lines` is followed by the tail, so no LF can belong to it.
            self.skip_lf = false;
            self.extend_partial(tail);
        }
    }

    /// Marks the end of the stream.
    ///
    /// "Once the end of the file is reached, any pending data must be discarded. (If the file ends
    /// in the middle of an event, before the final empty line, the incomplete event is not
    /// dispatched.)" An unfinished line is discarded too, and so is an `id:` of the unfinished
    /// event: the last event id only changes when an event is dispatched. The parser then
    /// expects a new stream (which may start with a BOM) and keeps the last event id and
    /// reconnection time.
    pub fn finish(&mut self) {
        self.start = Start::Bom(0);
        self.skip_lf = false;
        self.partial.clear();
        self.partial_bytes = 0;
        self.data.clear();
        self.event_type.clear();
        self.oversized = false;
        if self.id_buffer != self.last_event_id {
            self.id_buffer.clone_from(&self.last_event_id);
        }
    }

    /// Consumes a leading BOM, even one split across chunks, and returns the rest of `chunk`.
    ///
    /// The UTF-8 decode algorithm: "If buffer is 0xEF 0xBB 0xBF, then read three bytes from
    /// ioQueue. (Do nothing with those bytes.)" Only at the start of the stream: a second BOM
    /// is content.
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
            let mut borrowed = Borrowed::default();
            self.line(&mut borrowed, line, 0, line.len(), on_message);
            self.keep(borrowed);
            self.scratch = scratch;
        }
        self.partial = raw;
        self.partial.clear();
        self.partial_bytes = 0;
    }

    /// Processes the complete lines of `text` and returns where its unfinished last line starts
    /// (its length if there is none).
    ///
    /// "The stream must then be parsed by reading everything line by line, with a U+000D CARRIAGE
    /// RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character not
    /// preceded by a U+000D CARRIAGE RETURN (CR) character, and a single U+000D CARRIAGE RETURN
    /// (CR) character not followed by a U+000A LINE FEED (LF) character being the ways in which
    /// a line can end."
    fn lines<F: FnMut(&Message<'_>)>(&mut self, text: &str, on_message: &mut F) -> usize {
        let bytes = text.as_bytes();
        let mut borrowed = Borrowed::default();
        let mut start = 0;
        for (window_start, mut mask) in scan::line_end_masks(bytes) {
            while mask != 0 {
                let end = window_start + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // The LF of a CRLF, already passed.
                if end < start {
                    continue;
                }
                let next = match bytes.get(end) {
                    Some(b'\n') => end + 1,
                    Some(b'\r') => match bytes.get(end + 1) {
                        Some(b'\n') => end + 2,
                        Some(_) => end + 1,
                        None => {
                            self.skip_lf = true;
                            end + 1
                        }
                    },
                    // Another byte the scan could not tell from a line end.
                    _ => continue,
                };
                self.line(&mut borrowed, text, start, end, on_message);
                start = next;
            }
        }
        self.keep(borrowed);
        start
    }

    /// Copies what is borrowed into the parser's own buffers, before the text goes away.
    fn keep(&mut self, borrowed: Borrowed<'_>) {
        if let Some(event_type) = borrowed.event_type {
            self.event_type.clear();
            self.event_type.push_str(event_type);
        }
        if let Some(data) = borrowed.data {
            self.data.push_str(data);
            self.data.push('\n');
        }
        if let Some(id) = borrowed.id_buffer {
            self.id_buffer.clear();
            self.id_buffer.push_str(id);
        }
        if let Some(id) = borrowed.last_event_id {
            self.last_event_id.clear();
            self.last_event_id.push_str(id);
        }
    }

    /// Processes one line, `text[start..end]` (without its line end).
    ///
    /// "Lines must be processed, in the order they are received, as follows:"
    #[inline(always)]
    fn line<'t, F: FnMut(&Message<'_>)>(
        &mut self,
        borrowed: &mut Borrowed<'t>,
        text: &'t str,
        start: usize,
        end: usize,
        on_message: &mut F,
    ) {
        // Only the value is sliced as text (`start` and `end` are at line ends, so no character
        // is cut; the name is compared as bytes).
        let bytes = &text.as_bytes()[start..end];
        // "If the line is empty (a blank line): Dispatch the event, as defined below."
        let Some(&first) = bytes.first() else {
            self.dispatch(borrowed, on_message);
            return;
        };
        // "If the line starts with a U+003A COLON character (:): Ignore the line."
        if first == b':' {
            return;
        }
        if bytes.len() > self.line_bytes_max {
            self.oversized = true;
            return;
        }
        // "If the line contains a U+003A COLON character (:): Collect the characters on the line
        // before the first U+003A COLON character (:), and let field be that string." The
        // three common fields are recognised by their first bytes: no field name contains a
        // colon, so the first colon is the one after the name.
        //
        // "Collect the characters on the line after the first U+003A COLON character (:), and let
        // value be that string. If value starts with a U+0020 SPACE character, remove it
        // from value."
        let value = |colon: usize| {
            let space = usize::from(bytes.get(colon + 1) == Some(&b' '));
            &text[start + colon + 1 + space..end]
        };
        match bytes {
            [b'd', b'a', b't', b'a', b':', ..] => self.field(borrowed, Field::Data, value(4)),
            [b'i', b'd', b':', ..] => self.field(borrowed, Field::Id, value(2)),
            [b'e', b'v', b'e', b'n', b't', b':', ..] => {
                self.field(borrowed, Field::Event, value(5));
            }
            _ => match memchr(b':', bytes) {
                Some(colon) => self.field(borrowed, Field::named(&bytes[..colon]), value(colon)),
                // "Otherwise, the string is not empty but does not contain a U+003A COLON character
                // (:): Process the field using the steps described below, using the
                // whole line as the field name, and the empty string as the field
                // value."
                None => self.field(borrowed, Field::named(bytes), ""),
            },
        }
    }

    /// Processes a field with `value`.
    #[inline(always)]
    fn field<'t>(&mut self, borrowed: &mut Borrowed<'t>, field: Field, value: &'t str) {
        match field {
            // "If the field name is "event": Set the event type buffer to field value."
            Field::Event => borrowed.event_type = Some(value),
            // "If the field name is "data": Append the field value to the data buffer, then append
            // a single U+000A LINE FEED (LF) character to the data buffer."
            Field::Data => self.data_line(borrowed, value),
            // "If the field name is "id": If the field value does not contain U+0000 NULL, then set
            // the last event ID buffer to the field value. Otherwise, ignore the
            // field."
            Field::Id if !contains_nul(value.as_bytes()) => borrowed.id_buffer = Some(value),
            // "If the field name is "retry": If the field value consists of only ASCII digits, then
            // interpret the field value as an integer in base ten, and set the event stream's
            // reconnection time to that integer. Otherwise, ignore the field."
            // An empty value has no integer to interpret; one too large for u64 saturates (it means
            // "a very long time" either way).
            Field::Retry => {
                let value = value.as_bytes();
                if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
                    let retry_ms = value.iter().fold(0u64, |acc, digit| {
                        acc.saturating_mul(10)
                            .saturating_add(u64::from(digit - b'0'))
                    });
                    self.retry_ms = Some(retry_ms);
                }
            }
            // "Otherwise: The field is ignored."
            Field::Id | Field::Other => {}
        }
    }

    /// Appends a `data:` value to the data buffer, borrowing it if it is the event's first.
    #[inline(always)]
    fn data_line<'t>(&mut self, borrowed: &mut Borrowed<'t>, value: &'t str) {
        if self.oversized {
            return;
        }
        // With its LF, the buffer would hold this many bytes.
        let data_bytes = match borrowed.data.take() {
            None if self.data.is_empty() => {
                borrowed.data = Some(value);
                value.len() + 1
            }
            first => {
                if let Some(first) = first {
                    self.data.push_str(first);
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.data.len()
            }
        };
        if data_bytes > self.line_bytes_max {
            self.oversized = true;
            borrowed.data = None;
            self.data.clear();
        }
    }

    /// "When the user agent is required to dispatch the event, the user agent must process the data
    /// buffer, the event type buffer, and the last event ID buffer".
    #[inline(always)]
    fn dispatch<'t, F: FnMut(&Message<'_>)>(
        &mut self,
        borrowed: &mut Borrowed<'t>,
        on_message: &mut F,
    ) {
        // "1. Set the last event ID string of the event source to the value of the last event ID
        // buffer. The buffer does not get reset, so the last event ID string of the event
        // source remains set to this value until the next time it is set by the server."
        match borrowed.id_buffer {
            Some(id) => borrowed.last_event_id = Some(id),
            // The buffer is only borrowed once an `id:` line of this text set it, and it then stays
            // borrowed: the last event ID string cannot be borrowed here either.
            None if self.last_event_id != self.id_buffer => {
                self.last_event_id.clone_from(&self.id_buffer);
            }
            None => {}
        }
        if mem::take(&mut self.oversized) {
            self.oversized_events += 1;
            self.reset_event(borrowed);
            return;
        }
        let data = match borrowed.data {
            // A borrowed single line: the buffer would be that line plus LF, and step 3 removes the
            // LF.
            Some(data) => data,
            // "2. If the data buffer is an empty string, set the data buffer and the event type
            // buffer to the empty string and return."
            None if self.data.is_empty() => {
                self.reset_event(borrowed);
                return;
            }
            // "3. If the data buffer's last character is a U+000A LINE FEED (LF) character, then
            // remove the last character from the data buffer."
            None => &self.data[..self.data.len() - 1],
        };
        // "5. Initialize event's type attribute to "message" [...] 6. If the event type buffer has
        // a value other than the empty string, change the type of the newly created event
        // to equal the value of the event type buffer."
        let event_type = match borrowed.event_type.unwrap_or(&self.event_type) {
            "" => "message",
            event_type => event_type,
        };
        on_message(&Message {
            event_type,
            data,
            last_event_id: borrowed.last_event_id.unwrap_or(&self.last_event_id),
        });
        // "7. Set the data buffer and the event type buffer to the empty string."
        self.reset_event(borrowed);
    }

    fn reset_event(&mut self, borrowed: &mut Borrowed<'_>) {
        self.data.clear();
        borrowed.data = None;
        self.event_type.clear();
        borrowed.event_type = None;
    }
}

/// Whether `bytes` holds a U+0000, read eight bytes at a time: an id is short, and for a short
/// slice a call to `memchr` costs more than the search.
#[inline(always)]
fn contains_nul(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut zero_bytes = 0;
    for word in &mut words {
        let word = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        // Sets the high bit of the lowest zero byte of `word`, and may set it above one (not
        // below).
        zero_bytes |= word.wrapping_sub(ONES) & !word & HIGHS;
    }
    // A fold rather than `contains`, which calls out to `memchr` for these few bytes.
    let nul_in_rest = words
        .remainder()
        .iter()
        .fold(false, |found, &byte| found | (byte == 0));
    zero_bytes != 0 || nul_in_rest
}

/// Appends `bytes` to `out` decoded as UTF-8, each maximal invalid subpart replaced by U+FFFD: the
/// WHATWG UTF-8 decoder's output (Rust follows the same "substitution of maximal subparts"
/// practice).
fn decode_lossy(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

mod scan;
#[cfg(test)]
mod tests;
