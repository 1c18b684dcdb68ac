//! The `text/event-stream` encoder: validated ids and event names, and the [`Frame`] builder.
//!
//! Field injection cannot happen by construction: [`EventId`] and [`EventName`] refuse CR, LF and
//! NUL, and free text (data and comments) is split on every line break (CR, LF or CRLF) into one
//! field line per line. What a WHATWG parser gets back is therefore exactly the text given, with
//! its line breaks normalised to LF.
//!
//! Output conventions: lines end with LF only, no BOM is ever written, a field with a value is
//! written as `name: value` (one space, so a value that itself starts with a space survives the
//! parser's removal of one leading space), and a field with an empty value is written as `name:`
//! alone.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use memchr::memchr2;

/// A comment-only frame: `:` then a blank line.
///
/// Write it on an idle stream so that proxies do not cut the connection (the spec's authoring notes
/// suggest one roughly every 15 seconds). It dispatches nothing and moves no client's last event
/// id.
pub const KEEP_ALIVE: &[u8] = b":\n\n";

/// Longest [`EventId`] and [`EventName`] in bytes.
///
/// 128 bytes is the Fetch limit for a CORS-safelisted `Last-Event-ID` header: a longer id would
/// make a cross-origin reconnect send a preflight.
const BYTES_MAX: usize = 128;

/// Why a string is not a valid [`EventId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdError {
    /// The id is the empty string (an empty `id:` would reset the client's last event id).
    Empty,
    /// The id is longer than 128 bytes.
    TooLong,
    /// The id contains a byte outside the CORS-safe printable ASCII range.
    ForbiddenByte(u8),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("event id is empty"),
            Self::TooLong => write!(f, "event id is longer than {BYTES_MAX} bytes"),
            Self::ForbiddenByte(byte) => write!(f, "event id contains forbidden byte 0x{byte:02x}"),
        }
    }
}

impl core::error::Error for IdError {}

/// Why a string is not a valid [`EventName`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameError {
    /// The name is the empty string (an empty `event:` dispatches as `message`).
    Empty,
    /// The name is longer than 128 bytes.
    TooLong,
    /// The name contains CR, LF or NUL.
    ForbiddenByte(u8),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("event name is empty"),
            Self::TooLong => write!(f, "event name is longer than {BYTES_MAX} bytes"),
            Self::ForbiddenByte(byte) => {
                write!(f, "event name contains forbidden byte 0x{byte:02x}")
            }
        }
    }
}

impl core::error::Error for NameError {}

/// Whether `byte` may appear in an [`EventId`].
///
/// Printable ASCII (0x21..=0x7E) minus the Fetch "CORS-unsafe request-header bytes", so that the
/// id, sent back as `Last-Event-ID`, never triggers a CORS preflight. Space is refused too: the
/// parser strips one leading space from a value, and ids are compared byte for byte.
const fn is_id_byte(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7E)
        && !matches!(
            byte,
            b'"' | b'('
                | b')'
                | b':'
                | b'<'
                | b'>'
                | b'?'
                | b'@'
                | b'['
                | b'\\'
                | b']'
                | b'{'
                | b'}'
        )
}

/// An event id that is safe to write after `id:` and to receive back as `Last-Event-ID`.
///
/// 1 to 128 bytes of printable ASCII without the CORS-unsafe bytes `" ( ) : < > ? @ [ \ ] { }`; so
/// never CR, LF, NUL or space.
// Holds its whole field line, `id: <id>\n`, rendered once so that encoding copies it in one go. The
// derived comparisons see the same order as comparing the ids: LF sorts below every id byte.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(Box<str>);

impl EventId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<EventId, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > BYTES_MAX {
            return Err(IdError::TooLong);
        }
        match id.bytes().find(|&byte| !is_id_byte(byte)) {
            Some(byte) => Err(IdError::ForbiddenByte(byte)),
            None => Ok(EventId(render(ID, id))),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0[ID.len()..self.0.len() - 1]
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for EventId {
    type Err = IdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        EventId::new(id)
    }
}

/// `const` so that [`EventName::from_static`] can check names at compile time.
const fn check_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > BYTES_MAX {
        return Err(NameError::TooLong);
    }
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'\r' | b'\n' | 0) {
            return Err(NameError::ForbiddenByte(bytes[i]));
        }
        i += 1;
    }
    Ok(())
}

/// An event type that is safe to write after `event:`.
///
/// 1 to 128 bytes of UTF-8 without CR, LF or NUL. Prefer names other than `message`, `open` and
/// `error`: a browser delivers those to its connection-level handlers too.
#[derive(Clone)]
pub struct EventName(Name);

/// How an [`EventName`] is held: a static name as is (so that `from_static` can be `const`), any
/// other as its whole field line, `event: <name>\n`, rendered once so that encoding copies it in
/// one go.
#[derive(Clone)]
enum Name {
    Static(&'static str),
    Line(Box<str>),
}

impl EventName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<EventName, NameError> {
        match check_name(name) {
            Ok(()) => Ok(EventName(Name::Line(render(EVENT, name)))),
            Err(error) => Err(error),
        }
    }

    /// A name known when the program is written, without allocating.
    ///
    /// # Panics
    ///
    /// If `name` is not valid (at compile time when used in a `const`).
    pub const fn from_static(name: &'static str) -> EventName {
        match check_name(name) {
            Ok(()) => EventName(Name::Static(name)),
            Err(_) => panic!(
                "invalid event name: empty, longer than 128 bytes, or contains CR, LF or NUL"
            ),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Name::Static(name) => name,
            Name::Line(line) => &line[EVENT.len()..line.len() - 1],
        }
    }

    /// Appends the `event:` field line.
    #[inline]
    fn write_field(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Name::Static(name) => field(out, EVENT, name.as_bytes()),
            Name::Line(line) => out.extend_from_slice(line.as_bytes()),
        }
    }

    #[inline]
    fn field_len(&self) -> usize {
        match &self.0 {
            Name::Static(name) => field_len(EVENT, name.as_bytes()),
            Name::Line(line) => line.len(),
        }
    }
}

// Compared as names, however they are held.
impl PartialEq for EventName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventName {}

impl PartialOrd for EventName {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventName {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl core::hash::Hash for EventName {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventName").field(&self.as_str()).finish()
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for EventName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for EventName {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventName::new(name)
    }
}

/// One event (or comment, or field update) ready to be written to an event stream.
///
/// Built by value and borrowed: nothing is copied until [`Frame::encode_into`]. The output lists,
/// in order: comment lines, `id:`, `event:`, `retry:`, `data:` lines, then the blank line that ends
/// the event. Only a frame with [`Frame::data`] makes a client fire an event; without it a frame
/// can still move the client's last event id (`id:`) or reconnection time (`retry:`).
///
/// ```
/// use herald_core::{EventId, EventName, Frame};
///
/// let id = EventId::new("7-42").unwrap();
/// let name = EventName::from_static("job");
/// let frame = Frame::new().id(&id).event(&name).data("{\"state\":\"done\"}");
/// assert_eq!(&frame.to_bytes()[..], b"id: 7-42\nevent: job\ndata: {\"state\":\"done\"}\n\n");
/// ```
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame<'a> {
    comment: Option<&'a str>,
    id: Option<&'a EventId>,
    event: Option<&'a EventName>,
    retry_ms: Option<u64>,
    data: Option<&'a str>,
}

impl<'a> Frame<'a> {
    /// A frame with no fields: it encodes as a lone blank line until fields are added.
    pub const fn new() -> Frame<'a> {
        Frame {
            comment: None,
            id: None,
            event: None,
            retry_ms: None,
            data: None,
        }
    }

    /// Sets the `id:` field, which becomes the client's last event id once the frame is received.
    pub const fn id(mut self, id: &'a EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the `event:` field (without it the client sees type `message`).
    pub const fn event(mut self, event: &'a EventName) -> Self {
        self.event = Some(event);
        self
    }

    /// Sets the `retry:` field: the client's reconnection time in milliseconds.
    pub const fn retry_ms(mut self, retry_ms: u64) -> Self {
        self.retry_ms = Some(retry_ms);
        self
    }

    /// Sets the event data. Any text is allowed: each line becomes one `data:` line, and empty data
    /// still makes the client fire an event (with empty data).
    pub const fn data(mut self, data: &'a str) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets a comment (ignored by clients; useful to flush bytes through proxies). Each line of the
    /// text becomes one `:` line.
    pub const fn comment(mut self, comment: &'a str) -> Self {
        self.comment = Some(comment);
        self
    }

    /// Appends the encoded frame to `out`, reserving its exact length once.
    // Always inlined: at the call site the builder chain tells the compiler which fields are
    // absent, so their branches disappear (the multi-line path stays out of line).
    #[inline(always)]
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_with(out, self.is_multi_line());
    }

    /// Whether the frame needs the line-splitting path (a comment, or data holding a line break).
    #[inline]
    fn is_multi_line(&self) -> bool {
        self.comment.is_some()
            || self
                .data
                .is_some_and(|data| has_line_break(data.as_bytes()))
    }

    /// [`Frame::encode_into`] once the data has been scanned, so that [`Frame::to_bytes`] scans it
    /// once.
    #[inline(always)]
    fn encode_with(&self, out: &mut Vec<u8>, multi_line: bool) {
        // The common frame has no comment and one line of data: then every field is one write and
        // the length is a sum; anything else takes the line-splitting path.
        if multi_line {
            self.encode_lines_into(out);
            return;
        }
        out.reserve(self.len_single_lines());
        self.encode_header_into(out);
        match self.data {
            // The data line and the blank line that ends the event, in one write.
            Some(data) => field_then(out, DATA, data.as_bytes(), b"\n\n"),
            None => out.push(b'\n'),
        }
    }

    /// The exact number of bytes [`Frame::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        self.len_with(self.is_multi_line())
    }

    fn len_with(&self, multi_line: bool) -> usize {
        if multi_line {
            self.len_lines()
        } else {
            self.len_single_lines()
        }
    }

    /// The encoded frame as one reference-counted buffer, to clone into every subscriber's queue.
    pub fn to_bytes(&self) -> bytes::Bytes {
        let multi_line = self.is_multi_line();
        let mut out = Vec::with_capacity(self.len_with(multi_line));
        self.encode_with(&mut out, multi_line);
        bytes::Bytes::from(out)
    }

    /// The fields that are always one line: `id:`, `event:`, `retry:`.
    #[inline]
    fn encode_header_into(&self, out: &mut Vec<u8>) {
        if let Some(id) = self.id {
            out.extend_from_slice(id.0.as_bytes());
        }
        if let Some(event) = self.event {
            event.write_field(out);
        }
        if let Some(retry_ms) = self.retry_ms {
            field(out, RETRY, Digits::new().format(retry_ms));
        }
    }

    #[inline]
    fn len_header(&self) -> usize {
        self.id.map_or(0, |id| id.0.len())
            + self.event.map_or(0, EventName::field_len)
            + self.retry_ms.map_or(0, |retry_ms| {
                field_len(RETRY, Digits::new().format(retry_ms))
            })
    }

    /// The length when there is no comment and the data (if any) is one line.
    #[inline]
    fn len_single_lines(&self) -> usize {
        self.len_header() + self.data.map_or(0, |data| field_len(DATA, data.as_bytes())) + 1
    }

    /// The general case: a comment, or data with line breaks.
    #[cold]
    fn encode_lines_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.len_lines());
        if let Some(comment) = self.comment {
            for line in split_lines(comment.as_bytes()) {
                field(out, COMMENT, line);
            }
        }
        self.encode_header_into(out);
        if let Some(data) = self.data {
            for line in split_lines(data.as_bytes()) {
                field(out, DATA, line);
            }
        }
        out.push(b'\n');
    }

    fn len_lines(&self) -> usize {
        let lines_len = |prefix: &[u8], text: &str| -> usize {
            split_lines(text.as_bytes())
                .map(|line| field_len(prefix, line))
                .sum()
        };
        self.comment
            .map_or(0, |comment| lines_len(COMMENT, comment))
            + self.len_header()
            + self.data.map_or(0, |data| lines_len(DATA, data))
            + 1
    }
}

// Field prefixes, each with the separating space; the bare form (for empty values) drops the space.
const COMMENT: &[u8] = b": ";
const ID: &[u8] = b"id: ";
const EVENT: &[u8] = b"event: ";
const RETRY: &[u8] = b"retry: ";
const DATA: &[u8] = b"data: ";

/// A field line: `name: value\n`, or `name:\n` when the value is empty.
#[inline]
fn field(out: &mut Vec<u8>, prefix: &[u8], value: &[u8]) {
    field_then(out, prefix, value, b"\n");
}

/// The one field writer: `name: value` or, when the value is empty, `name:`; then `end` (a line
/// end, or a line end and the blank line that ends the event).
///
/// `value` never holds CR or LF: callers pass validated ids and names, digits, or one line of
/// [`split_lines`].
#[inline]
fn field_then(out: &mut Vec<u8>, prefix: &[u8], value: &[u8], end: &[u8]) {
    if value.is_empty() {
        out.extend_from_slice(&prefix[..prefix.len() - 1]);
    } else {
        out.extend_from_slice(prefix);
        out.extend_from_slice(value);
    }
    out.extend_from_slice(end);
}

/// The field line of a validated id or name, written once by [`field`].
fn render(prefix: &[u8], value: &str) -> Box<str> {
    let mut line = Vec::with_capacity(field_len(prefix, value.as_bytes()));
    field(&mut line, prefix, value.as_bytes());
    // The prefixes are ASCII and the value is a `str`, so the line is UTF-8.
    String::from_utf8(line).map_or_else(|_| unreachable!(), String::into_boxed_str)
}

/// What [`field`] writes, in bytes.
#[inline]
fn field_len(prefix: &[u8], value: &[u8]) -> usize {
    if value.is_empty() {
        prefix.len()
    } else {
        prefix.len() + value.len() + 1
    }
}

/// Whether `text` holds a CR or LF.
///
/// `memchr2` brings its own vectorised search, so it stays fast in the size-optimised (`opt-level =
/// "z"`) build the worker ships, where a plain byte loop would not be vectorised.
#[inline]
fn has_line_break(text: &[u8]) -> bool {
    memchr2(b'\r', b'\n', text).is_some()
}

/// The lines of `text` split on CR, LF and CRLF, as a WHATWG parser would split them: at least one
/// (possibly empty) line, and a trailing line break yields a final empty line.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    core::iter::from_fn(move || {
        let text = rest?;
        match memchr2(b'\r', b'\n', text) {
            None => {
                rest = None;
                Some(text)
            }
            Some(at) => {
                let after = if text[at] == b'\r' && text.get(at + 1) == Some(&b'\n') {
                    at + 2
                } else {
                    at + 1
                };
                rest = Some(&text[after..]);
                Some(&text[..at])
            }
        }
    })
}

/// Decimal digits of a `u64` without allocating.
struct Digits([u8; 20]);

impl Digits {
    fn new() -> Self {
        Digits([0; 20])
    }

    fn format(&mut self, mut value: u64) -> &[u8] {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                return &self.0[at..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn line_breaks_are_found_past_the_prefilter() {
        assert!(!has_line_break(b""));
        assert!(!has_line_break(b"{\"a\":1}"));
        // Control bytes below CR that are not line breaks pass the prefilter to the exact search.
        assert!(!has_line_break(b"a\tb\x0bc\x0cd\0"));
        for at in [0, 1, 15, 16, 31, 32, 199, 1023, 1024, 4000] {
            for byte in [b'\r', b'\n'] {
                let mut text = vec![b'x'; 4001];
                text[at] = byte;
                assert!(has_line_break(&text), "0x{byte:02x} at {at}");
                assert!(has_line_break(&text[..=at]), "0x{byte:02x} last, at {at}");
                assert!(!has_line_break(&text[..at]), "before 0x{byte:02x} at {at}");
            }
        }
    }

    #[test]
    fn digits_cover_the_range() {
        assert_eq!(Digits::new().format(0), b"0");
        assert_eq!(Digits::new().format(1000), b"1000");
        assert_eq!(Digits::new().format(u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn split_lines_matches_the_parser_view() {
        fn lines(text: &str) -> Vec<&[u8]> {
            split_lines(text.as_bytes()).collect()
        }
        assert_eq!(lines(""), vec![&b""[..]]);
        assert_eq!(lines("a"), vec![&b"a"[..]]);
        assert_eq!(lines("a\r\nb\rc\nd"), vec![&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(lines("\r\r\n\n"), vec![&b""[..], b"", b"", b""]);
        assert_eq!(lines("a\n"), vec![&b"a"[..], b""]);
    }

    #[test]
    fn id_bytes_are_exactly_the_cors_safe_printable_ones() {
        let unsafe_bytes = b"\"():<>?@[\\]{}";
        for byte in 0..=255u8 {
            let expected = (0x21..=0x7E).contains(&byte) && !unsafe_bytes.contains(&byte);
            assert_eq!(is_id_byte(byte), expected, "byte 0x{byte:02x}");
        }
    }
}
