//! Publish request bodies: what a publisher may send, checked in full before anything is appended.
//!
//! A body is one of
//! - one event object: `{"event": "job.done", "data": {"id": 7}, "category": "import"}`,
//! - a batch object: `{"events": [<event object>, ...]}`,
//! - a batch array: `[<event object>, ...]`.
//!
//! In an event object, `event` is required and must be a valid event name. `data` is the text of
//! the SSE `data:` field: a JSON string is taken verbatim as text, any other JSON value is sent
//! exactly as the publisher wrote it minus the whitespace between tokens (key order and number
//! spelling are kept, so consumers see the publisher's bytes), and a missing `data` is the empty
//! string. `category` is optional (`null` means absent) and is 1..=64 bytes of `[a-z0-9_]`. Any
//! other key, or a key given twice, is an error, so a typo never silently drops a field.
//!
//! `data` may nest arrays and objects at most [`JSON_DEPTH_MAX`] levels deep and may not hold a
//! lone surrogate escape (`"\ud800"` without its low half): clients could not parse either.
//!
//! A batch is all or nothing: the first bad event rejects the whole body, with an error naming its
//! index (a single event object is index 0). Limits ([`PublishLimits`]) bound the body, the event
//! count and each event's data; exceeding one of them is HTTP 413, any other error is 400
//! ([`PublishError::is_too_large`]).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::{check_identifier, IdentifierError};
use crate::json::{self, Escape, JsonFlaw, JSON_DEPTH_MAX};

use crate::encode::{EventName, NameError};

/// Limits on one publish request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishLimits {
    /// The largest `data` text of one event, in bytes (after re-serialisation). Default 64 KiB.
    pub event_bytes_max: usize,
    /// The most events in one request. Default 100.
    pub batch_events_max: usize,
    /// The largest request body, in bytes, checked before parsing. Default 1 MiB.
    pub batch_bytes_max: usize,
}

impl Default for PublishLimits {
    fn default() -> Self {
        Self {
            event_bytes_max: 64 * 1024,
            batch_events_max: 100,
            batch_bytes_max: 1024 * 1024,
        }
    }
}

impl PublishLimits {
    /// Checks a request body that is not a publish batch (a plan request, a runner's stage move)
    /// against [`PublishLimits::batch_bytes_max`], before it is parsed.
    ///
    /// ```
    /// use herald_core::PublishLimits;
    /// use herald_core::publish::PublishError;
    /// let limits = PublishLimits { batch_bytes_max: 4, ..PublishLimits::default() };
    /// assert_eq!(limits.check_body(b"{}"), Ok(()));
    /// assert_eq!(limits.check_body(b"{\"a\":1}"), Err(PublishError::BodyTooLarge { body_bytes: 7, bytes_max: 4 }));
    /// ```
    pub fn check_body(&self, body: &[u8]) -> Result<(), PublishError> {
        if body.len() > self.batch_bytes_max {
            return Err(PublishError::BodyTooLarge {
                body_bytes: body.len(),
                bytes_max: self.batch_bytes_max,
            });
        }
        Ok(())
    }

    /// Checks the data of events Herald composes itself (SQLMesh plan trackers, which grow with
    /// every stage's details) against [`PublishLimits::event_bytes_max`]: such an event is
    /// stored and replayed like any other, so it must obey the same bound. The first too large
    /// one is named by its position.
    pub fn check_composed<'a>(
        &self,
        data: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), PublishError> {
        for (index, data) in data.into_iter().enumerate() {
            if data.len() > self.event_bytes_max {
                return Err(PublishError::EventTooLarge {
                    index,
                    data_bytes: data.len(),
                    bytes_max: self.event_bytes_max,
                });
            }
        }
        Ok(())
    }
}

/// One event to append, as the publisher sent it (the hub assigns its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The SSE `event:` name.
    pub name: EventName,
    /// The SSE `data:` text.
    pub data: String,
    /// The category filters match on, if any: 1..=64 bytes of `[a-z0-9_]`.
    pub category: Option<String>,
}

/// The event name that marks a stream complete (a finished job): the stream takes no more events,
/// and a client that has seen it gets `204 No Content` on reconnect, which tells EventSource to
/// stop.
pub const STREAM_COMPLETE: &str = "stream.complete";

impl NewEvent {
    /// Whether this event completes its stream ([`STREAM_COMPLETE`]).
    #[must_use]
    pub fn completes_stream(&self) -> bool {
        self.name.as_str() == STREAM_COMPLETE
    }
}

/// The longest category, in bytes.
const CATEGORY_BYTES_MAX: usize = 64;

/// The most of an unknown key an error repeats back, in bytes: enough to spot a typo, not an echo
/// of the body.
const UNKNOWN_FIELD_BYTES_MAX: usize = 64;

/// Why a publish body was refused.
///
/// [`PublishError::is_too_large`] tells 413 (a limit was exceeded) from 400 (the body is wrong).
/// Errors about one event name its `index` in the batch (0 for a single event object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The body is longer than [`PublishLimits::batch_bytes_max`] (413).
    BodyTooLarge {
        /// Length of the body, in bytes.
        body_bytes: usize,
        /// The limit, in bytes.
        bytes_max: usize,
    },
    /// The batch holds more than [`PublishLimits::batch_events_max`] events (413).
    TooManyEvents {
        /// The limit, in events.
        events_max: usize,
    },
    /// One event's `data` text is longer than [`PublishLimits::event_bytes_max`] (413).
    EventTooLarge {
        /// Position of the event in the batch.
        index: usize,
        /// Length of its data text, in bytes.
        data_bytes: usize,
        /// The limit, in bytes.
        bytes_max: usize,
    },
    /// The body is not JSON (400).
    Malformed {
        /// Line of the first error, from 1.
        line: usize,
        /// Column of the first error, from 1.
        column: usize,
    },
    /// The body is JSON but neither an event object, `{"events": [...]}` nor an array (400).
    NotABatch,
    /// The batch holds no events (400).
    EmptyBatch,
    /// An item of the batch is not a JSON object (400).
    NotAnObject {
        /// Position of the item in the batch.
        index: usize,
    },
    /// An object has a key Herald does not know (400).
    UnknownField {
        /// Position of the event in the batch; `None` for a key beside `events` in a batch object.
        index: Option<usize>,
        /// The key, cut to 64 bytes.
        field: String,
    },
    /// An event object gives the same key twice (400).
    DuplicateField {
        /// Position of the event in the batch.
        index: usize,
        /// The key.
        field: &'static str,
    },
    /// An event object has no `event` (400).
    MissingEvent {
        /// Position of the event in the batch.
        index: usize,
    },
    /// A field has the wrong JSON type (400).
    WrongType {
        /// Position of the event in the batch.
        index: usize,
        /// The key.
        field: &'static str,
        /// What the field must be.
        expected: &'static str,
    },
    /// The `event` field is not a valid event name (400).
    InvalidEvent {
        /// Position of the event in the batch.
        index: usize,
        /// What is wrong with it.
        error: NameError,
    },
    /// The `category` field is not a valid category (400).
    InvalidCategory {
        /// Position of the event in the batch.
        index: usize,
        /// What is wrong with it.
        error: IdentifierError,
    },
    /// The `data` value nests arrays and objects deeper than [`JSON_DEPTH_MAX`] (400): consumers'
    /// parsers could not read it.
    DataTooDeep {
        /// Position of the event in the batch.
        index: usize,
        /// The limit, in levels.
        depth_max: usize,
    },
    /// The `data` value holds a `\u` escape of one half of a UTF-16 surrogate pair without the
    /// other (400): it encodes no character, and consumers' parsers refuse or mangle it.
    LoneSurrogate {
        /// Position of the event in the batch.
        index: usize,
        /// The escaped code unit.
        unit: u16,
    },
}

impl PublishError {
    /// Whether a limit was exceeded (HTTP 413) rather than the body being wrong (HTTP 400).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::BodyTooLarge { .. } | Self::TooManyEvents { .. } | Self::EventTooLarge { .. }
        )
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge { body_bytes, bytes_max } => {
                write!(f, "body is {body_bytes} bytes, over the limit of {bytes_max}")
            }
            Self::TooManyEvents { events_max } => {
                write!(f, "batch holds more than {events_max} events")
            }
            Self::EventTooLarge { index, data_bytes, bytes_max } => write!(
                f,
                "event {index}: data is {data_bytes} bytes, over the limit of {bytes_max}"
            ),
            Self::Malformed { line, column } => {
                write!(f, "body is not valid json (line {line}, column {column})")
            }
            Self::NotABatch => f.write_str(
                "body must be an event object, an object with `events` or an array of event objects",
            ),
            Self::EmptyBatch => f.write_str("batch holds no events"),
            Self::NotAnObject { index } => write!(f, "event {index}: not a json object"),
            Self::UnknownField { index: Some(index), field } => write!(
                f,
                "event {index}: unknown field `{field}` (expected `event`, `data` or `category`)"
            ),
            Self::UnknownField { index: None, field } => {
                write!(f, "unknown field `{field}` beside `events`")
            }
            Self::DuplicateField { index, field } => {
                write!(f, "event {index}: field `{field}` given twice")
            }
            Self::MissingEvent { index } => write!(f, "event {index}: field `event` is required"),
            Self::WrongType { index, field, expected } => {
                write!(f, "event {index}: field `{field}` must be {expected}")
            }
            Self::InvalidEvent { index, error } => {
                write!(f, "event {index}: field `event` is not valid: {error}")
            }
            Self::InvalidCategory { index, error } => {
                write!(f, "event {index}: field `category` is not valid: {error}")
            }
            Self::DataTooDeep { index, depth_max } => write!(
                f,
                "event {index}: field `data` nests arrays and objects deeper than {depth_max} levels"
            ),
            Self::LoneSurrogate { index, unit } => write!(
                f,
                "event {index}: field `data` holds the lone surrogate escape `{}` (half of a UTF-16 pair), which encodes no character",
                Escape(*unit)
            ),
        }
    }
}

impl core::error::Error for PublishError {}

/// Parses and checks a publish body: every event, or the first error.
///
/// ```
/// use herald_core::{parse_publish, PublishLimits};
/// let body = br#"{"events": [{"event": "job.done", "data": {"id": 7}}, {"event": "note", "data": "hi"}]}"#;
/// let events = parse_publish(body, &PublishLimits::default()).unwrap();
/// assert_eq!(events[0].name.as_str(), "job.done");
/// assert_eq!(events[0].data, r#"{"id":7}"#);
/// assert_eq!(events[1].data, "hi");
/// ```
pub fn parse_publish(body: &[u8], limits: &PublishLimits) -> Result<Vec<NewEvent>, PublishError> {
    // Checked first so an oversized body costs no parsing.
    if body.len() > limits.batch_bytes_max {
        return Err(PublishError::BodyTooLarge {
            body_bytes: body.len(),
            bytes_max: limits.batch_bytes_max,
        });
    }
    let mut batch = Batch {
        limits,
        events: Vec::new(),
        failure: None,
        shape_error: PublishError::NotABatch,
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed(&mut batch)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    match parsed {
        Ok(()) => Ok(batch.events),
        // serde errors carry only text, so the typed error travels beside them (see `Batch`).
        Err(error) => Err(match batch.failure {
            Some(failure) => failure,
            None if error.is_data() => batch.shape_error,
            None => PublishError::Malformed {
                line: error.line(),
                column: error.column(),
            },
        }),
    }
}

/// The state of one parse, shared by the serde visitors below.
///
/// serde errors are text, so when a visitor refuses something it stores the typed error in
/// `failure` and returns an opaque serde error to stop the parse. serde itself refuses a wrong JSON
/// type (an array item that is a number) before any visitor code runs; `shape_error` is set before
/// each such check to the error that describes it. Syntax errors are neither and become
/// [`PublishError::Malformed`].
struct Batch<'a> {
    limits: &'a PublishLimits,
    events: Vec<NewEvent>,
    failure: Option<PublishError>,
    shape_error: PublishError,
}

impl Batch<'_> {
    fn fail<E: de::Error>(&mut self, error: PublishError) -> E {
        let error_text = E::custom(&error);
        self.failure = Some(error);
        error_text
    }

    fn push(&mut self, event: NewEvent) -> Result<(), PublishError> {
        if self.events.len() == self.limits.batch_events_max {
            return Err(PublishError::TooManyEvents {
                events_max: self.limits.batch_events_max,
            });
        }
        self.events.push(event);
        Ok(())
    }

    /// Reads event objects from an array (the top level, or the value of `events`).
    fn read_items<'de, A: SeqAccess<'de>>(&mut self, mut items: A) -> Result<(), A::Error> {
        loop {
            let index = self.events.len();
            self.shape_error = PublishError::NotAnObject { index };
            if items.next_element_seed(ItemSeed(&mut *self))?.is_none() {
                break;
            }
        }
        if self.events.is_empty() {
            return Err(self.fail(PublishError::EmptyBatch));
        }
        Ok(())
    }

    /// Reads the rest of one event object whose first key (if any) was already read.
    fn read_event<'de, A: MapAccess<'de>>(
        &mut self,
        first_key: Option<String>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let index = self.events.len();
        let mut fields = EventFields::default();
        let mut key = first_key;
        while let Some(name) = key {
            if name == "data" {
                if fields.data.is_some() {
                    return Err(self.fail(PublishError::DuplicateField {
                        index,
                        field: "data",
                    }));
                }
                fields.data = Some(map.next_value::<Box<RawValue>>()?);
                key = map.next_key::<String>()?;
                continue;
            }
            let (slot, field) = match name.as_str() {
                "event" => (&mut fields.event, "event"),
                "category" => (&mut fields.category, "category"),
                _ => {
                    let field = truncate(name, UNKNOWN_FIELD_BYTES_MAX);
                    return Err(self.fail(PublishError::UnknownField {
                        index: Some(index),
                        field,
                    }));
                }
            };
            if slot.is_some() {
                return Err(self.fail(PublishError::DuplicateField { index, field }));
            }
            *slot = Some(map.next_value::<Value>()?);
            key = map.next_key::<String>()?;
        }
        let event = fields
            .into_event(index, self.limits)
            .and_then(|event| self.push(event));
        event.map_err(|error| self.fail(error))
    }
}

/// The raw values of one event object's fields, before they are checked.
#[derive(Default)]
struct EventFields {
    event: Option<Value>,
    data: Option<Box<RawValue>>,
    category: Option<Value>,
}

impl EventFields {
    fn into_event(self, index: usize, limits: &PublishLimits) -> Result<NewEvent, PublishError> {
        let name = match self.event {
            None => return Err(PublishError::MissingEvent { index }),
            Some(Value::String(name)) => EventName::new(&name)
                .map_err(|error| PublishError::InvalidEvent { index, error })?,
            Some(_) => {
                return Err(PublishError::WrongType {
                    index,
                    field: "event",
                    expected: "a string",
                })
            }
        };
        // serde_json keeps `data` raw without counting its depth or decoding its escapes.
        if let Some(raw) = &self.data {
            json::check(raw.get().as_bytes(), JSON_DEPTH_MAX).map_err(|flaw| match flaw {
                JsonFlaw::TooDeep => PublishError::DataTooDeep {
                    index,
                    depth_max: JSON_DEPTH_MAX,
                },
                JsonFlaw::LoneSurrogate { unit } => PublishError::LoneSurrogate { index, unit },
            })?;
        }
        let data = match self.data {
            None => String::new(),
            Some(raw) if raw.get().starts_with('"') => {
                serde_json::from_str(raw.get()).map_err(|_| PublishError::WrongType {
                    index,
                    field: "data",
                    expected: "valid JSON",
                })?
            }
            Some(raw) => compact_json(raw.get()),
        };
        if data.len() > limits.event_bytes_max {
            return Err(PublishError::EventTooLarge {
                index,
                data_bytes: data.len(),
                bytes_max: limits.event_bytes_max,
            });
        }
        let category = match self.category {
            None | Some(Value::Null) => None,
            Some(Value::String(category)) => {
                check_identifier(&category, CATEGORY_BYTES_MAX, |byte| {
                    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
                })
                .map_err(|error| PublishError::InvalidCategory { index, error })?;
                Some(category)
            }
            Some(_) => {
                return Err(PublishError::WrongType {
                    index,
                    field: "category",
                    expected: "a string or null",
                })
            }
        };
        Ok(NewEvent {
            name,
            data,
            category,
        })
    }
}

/// Removes the whitespace JSON allows between tokens from already-validated JSON, keeping
/// everything else (key order, number spelling, escapes) exactly as sent: the form in which a
/// publish's data is stored and measured against [`PublishLimits::event_bytes_max`].
///
/// ```
/// assert_eq!(herald_core::publish::compact_json("{ \"a\" : [1, 2], \"b\": \"x y\" }"), "{\"a\":[1,2],\"b\":\"x y\"}");
/// ```
#[must_use]
pub fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Cuts `text` to at most `bytes_max` bytes on a character boundary.
fn truncate(mut text: String, bytes_max: usize) -> String {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The whole body: an event object, a batch object or a batch array.
struct BodySeed<'b, 'a>(&'b mut Batch<'a>);

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.shape_error = PublishError::NotABatch;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object, an object with `events` or an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<(), A::Error> {
        self.0.read_items(items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let batch = self.0;
        // The first key decides the shape: `events` makes a batch object, anything else an event
        // object.
        let first_key = map.next_key::<String>()?;
        if first_key.as_deref() != Some("events") {
            return batch.read_event(first_key, &mut map);
        }
        map.next_value_seed(EventsSeed(&mut *batch))?;
        if let Some(key) = map.next_key::<String>()? {
            let field = truncate(key, UNKNOWN_FIELD_BYTES_MAX);
            return Err(batch.fail(PublishError::UnknownField { index: None, field }));
        }
        Ok(())
    }
}

/// The value of `events` in a batch object: an array of event objects.
struct EventsSeed<'b, 'a>(&'b mut Batch<'a>);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.shape_error = PublishError::NotABatch;
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<(), A::Error> {
        self.0.read_items(items)
    }
}

/// One item of a batch: an event object.
struct ItemSeed<'b, 'a>(&'b mut Batch<'a>);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // `shape_error` was set by `read_items`, which knows the index.
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let first_key = map.next_key::<String>()?;
        self.0.read_event(first_key, &mut map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate(String::from("abcdef"), 4), "abcd");
        // "é" is two bytes; cutting at 2 would split it.
        assert_eq!(truncate(String::from("aéb"), 2), "a");
        assert_eq!(truncate(String::from("ab"), 4), "ab");
    }
}
