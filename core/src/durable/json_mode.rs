//! JSON mode (PROTOCOL.md §9.1): message boundaries, one-level array flattening, empty arrays.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::value::RawValue;

use crate::json::{check, JsonFlaw, JSON_DEPTH_MAX};

/// Why a JSON-mode body was refused (`400 Bad Request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonModeError {
    /// The body is not one JSON value (§9.1.4 "Servers MUST validate that appended data is valid
    /// JSON").
    Invalid,
    /// A POST body of `[]` (§9.1.3 "Servers MUST reject POST requests containing empty JSON
    /// arrays").
    EmptyArray,
    /// Nesting deeper than [`JSON_DEPTH_MAX`] or a lone surrogate escape.
    Unsafe,
}

impl fmt::Display for JsonModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonModeError::Invalid => "the body is not valid JSON",
            JsonModeError::EmptyArray => "an append of an empty JSON array appends nothing",
            JsonModeError::Unsafe => "the JSON nests too deep or has a lone surrogate escape",
        })
    }
}

impl core::error::Error for JsonModeError {}

/// Whether the body is a PUT's initial content (where `[]` is a valid empty start) or a POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonBodyKind {
    /// `PUT`: `[]` creates an empty stream.
    Create,
    /// `POST`: `[]` is refused.
    Append,
}

/// Splits a JSON-mode body into the messages it stores, each as its JSON text.
///
/// §9.1.2: "When a POST request body contains a JSON array, servers MUST flatten exactly one level
/// of the array, treating each element as a separate message" (`[[1,2],[3,4]]` stores `[1,2]` and
/// `[3,4]`); any other value is one message.
pub fn split_messages(body: &[u8], kind: JsonBodyKind) -> Result<Vec<String>, JsonModeError> {
    check(body, JSON_DEPTH_MAX).map_err(|flaw| match flaw {
        JsonFlaw::TooDeep | JsonFlaw::LoneSurrogate { .. } => JsonModeError::Unsafe,
    })?;
    let text = core::str::from_utf8(body).map_err(|_| JsonModeError::Invalid)?;
    let value: &RawValue = serde_json::from_str(text).map_err(|_| JsonModeError::Invalid)?;
    let raw = value.get();
    if raw.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(raw).map_err(|_| JsonModeError::Invalid)?;
        if items.is_empty() && kind == JsonBodyKind::Append {
            return Err(JsonModeError::EmptyArray);
        }
        Ok(items
            .into_iter()
            .map(|item| String::from(item.get()))
            .collect())
    } else {
        Ok(alloc::vec![String::from(raw)])
    }
}

/// The body of a JSON-mode read (§9.1.5): the messages as one JSON array, `[]` when there are none.
#[must_use]
pub fn join_messages<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::from(*b"[");
    for (i, message) in messages.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(message);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str) -> Result<Vec<String>, JsonModeError> {
        split_messages(body.as_bytes(), JsonBodyKind::Append)
    }

    #[test]
    fn flattens_one_level() {
        assert_eq!(
            split(r#"{"event": "created"}"#).unwrap(),
            [r#"{"event": "created"}"#]
        );
        assert_eq!(
            split(r#"[{"a":1}, {"b":2}]"#).unwrap(),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(split("[[1,2], [3,4]]").unwrap(), ["[1,2]", "[3,4]"]);
        assert_eq!(split("[[[1,2,3]]]").unwrap(), ["[[1,2,3]]"]);
        assert_eq!(split(" 5 ").unwrap(), ["5"]);
        assert_eq!(split("[]"), Err(JsonModeError::EmptyArray));
        assert_eq!(
            split_messages(b"[]", JsonBodyKind::Create).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(split("{"), Err(JsonModeError::Invalid));
        assert_eq!(split("1 2"), Err(JsonModeError::Invalid));
        assert_eq!(split(r#""\ud800""#), Err(JsonModeError::Unsafe));
    }

    #[test]
    fn joins_as_an_array() {
        assert_eq!(join_messages([]), b"[]");
        assert_eq!(join_messages([&b"1"[..], b"{}"]), b"[1,{}]");
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn split_then_join_is_the_array(items in proptest::collection::vec(any::<i32>(), 1..20)) {
                let body = serde_json::to_string(&items).unwrap();
                let messages = split(&body).unwrap();
                let joined = join_messages(messages.iter().map(|m| m.as_bytes()));
                let back: Vec<i32> = serde_json::from_slice(&joined).unwrap();
                prop_assert_eq!(back, items);
            }
        }
    }
}
